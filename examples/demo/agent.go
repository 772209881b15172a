//go:build unix

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// agent is the demo's SIP side: stox's outbound proxy, the scripted SIP user
// bob (any host; also bob's presence agent and a presence watcher, see
// agent_presence.go, and an MSRP chat endpoint, see agent_chat.go), and a
// small registrar that relays MESSAGEs for phones that
// registered with it. It is a B2BUA for the relayed MESSAGEs (new
// transaction, same From, To, Call-ID and body), which is enough here.
type agent struct {
	con        *console
	addr       string // 127.0.0.1:port, UDP and TCP
	stoxAddr   string // stox's SIP listener, UDP and TCP
	sipDomain  string // the gateway's SIP domain (sip.example.com)
	xmppDomain string // the XMPP domain behind stox (example.com)

	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cli *sipgo.Client
	udp net.PacketConn
	tcp net.Listener
	wg  sync.WaitGroup

	// bobGot gets every MESSAGE bob answered 200 (never blocks: the
	// script reads it, later nobody does).
	bobGot chan received
	// echo makes bob answer what he gets from XMPP users (after the script).
	echo atomic.Bool

	// pres is bob's presence agent and bob as a watcher
	// (agent_presence.go).
	pres presenceAgent
	// chat is bob's MSRP chat sessions (agent_chat.go).
	chat chatSide

	mu     sync.Mutex
	phones map[string]binding // "user@host" -> the phone registered for it
	ctx    context.Context    // bounds relayed and echoed requests; cancelled under mu
	cancel context.CancelFunc
}

// received is one MESSAGE the agent took.
type received struct {
	ruri, from, body string
}

// binding is a registered phone.
type binding struct {
	contact   sip.Uri
	transport string // "UDP" or "TCP": the contact's transport parameter, else how it registered
	dest      string // host:port of the contact
	expires   time.Time
}

// sipgo's own warnings go to the console of the running demo. sipgo's default
// logger is a package global without synchronisation, so it is set once per
// process and writes wherever sipConsole points.
var (
	sipConsole    atomic.Pointer[console]
	sipLoggerOnce sync.Once
	sipLog        *slog.Logger
)

func sipLogger(con *console) *slog.Logger {
	sipConsole.Store(con)
	sipLoggerOnce.Do(func() {
		sipLog = slog.New(slog.NewTextHandler(sipLogWriter{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		sip.SetDefaultLogger(sipLog)
	})
	return sipLog
}

type sipLogWriter struct{}

func (sipLogWriter) Write(p []byte) (int, error) {
	if con := sipConsole.Load(); con != nil {
		con.printf("sip", "sipgo: %s", p)
	}
	return len(p), nil
}

// startAgent listens on 127.0.0.1:port (UDP and TCP); port 0 is not allowed
// (stox's outbound_proxy must name it).
func startAgent(con *console, port int, stoxAddr, sipDomain, xmppDomain string) (*agent, error) {
	a := &agent{
		con:        con,
		addr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		stoxAddr:   stoxAddr,
		sipDomain:  sipDomain,
		xmppDomain: xmppDomain,
		bobGot:     make(chan received, 64),
		phones:     map[string]binding{},
	}
	a.pres.init()
	a.ctx, a.cancel = context.WithCancel(context.Background())
	var err error
	if a.udp, err = net.ListenPacket("udp", a.addr); err != nil {
		return nil, fmt.Errorf("demo SIP agent: %w", err)
	}
	if a.tcp, err = net.Listen("tcp", a.addr); err != nil {
		a.udp.Close()
		return nil, fmt.Errorf("demo SIP agent: %w", err)
	}
	log := sipLogger(con)
	a.ua, err = sipgo.NewUA(sipgo.WithUserAgent("stox-demo"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err == nil {
		a.srv, err = sipgo.NewServer(a.ua, sipgo.WithServerLogger(log))
	}
	if err == nil {
		a.cli, err = sipgo.NewClient(a.ua, sipgo.WithClientLogger(log), sipgo.WithClientHostname("127.0.0.1"))
	}
	if err != nil {
		a.udp.Close()
		a.tcp.Close()
		if a.ua != nil {
			a.ua.Close()
		}
		return nil, fmt.Errorf("demo SIP agent: %w", err)
	}
	if err := a.chat.init(a); err != nil {
		a.udp.Close()
		a.tcp.Close()
		a.ua.Close()
		return nil, fmt.Errorf("demo SIP agent: %w", err)
	}
	a.srv.OnMessage(a.onMessage)
	a.srv.OnInvite(a.onInvite)
	a.srv.OnAck(a.onAck)
	a.srv.OnBye(a.onBye)
	a.srv.OnRegister(a.onRegister)
	a.srv.OnSubscribe(a.onSubscribe)
	a.srv.OnNotify(a.onNotify)
	a.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	a.wg.Add(2)
	go func() { defer a.wg.Done(); _ = a.srv.ServeUDP(a.udp) }()
	go func() { defer a.wg.Done(); _ = a.srv.ServeTCP(a.tcp) }()
	return a, nil
}

func (a *agent) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.cancel()
	a.mu.Unlock()
	_ = a.udp.Close()
	_ = a.tcp.Close()
	_ = a.ua.Close()
	a.wg.Wait()
	a.chat.close()
}

func (a *agent) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	ruri := req.Recipient
	from := ""
	if f := req.From(); f != nil {
		from = f.Address.String()
	}
	body := string(req.Body())
	aor := ruri.User + "@" + ruri.Host
	switch {
	case strings.EqualFold(ruri.Host, a.xmppDomain):
		// From a phone, for an XMPP user: on to stox.
		res, err := a.relay(req, ruri, a.stoxAddr)
		a.answerRelayed(req, tx, res, err, fmt.Sprintf("%s -> %s (via stox)", from, ruri.String()))
	case ruri.User == "bob":
		a.con.printf("sip", "SIP %s got: %q (from %s) -> 200 OK", aor, body, from)
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		select {
		case a.bobGot <- received{ruri: ruri.String(), from: from, body: body}:
		default:
		}
		if a.echo.Load() && req.From() != nil && !isScriptedAlice(req.From().Address, a.xmppDomain) {
			a.bobReplies(aor, req.From().Address, body)
		}
	default:
		a.mu.Lock()
		b, ok := a.phones[strings.ToLower(aor)]
		if ok && time.Now().After(b.expires) {
			delete(a.phones, strings.ToLower(aor))
			ok = false
		}
		a.mu.Unlock()
		if !ok {
			a.con.printf("sip", "MESSAGE for %s (from %s): no such SIP user here -> 404 Not Found", aor, from)
			_ = tx.Respond(sip.NewResponseFromRequest(req, 404, "Not Found", nil))
			return
		}
		res, err := a.relayTo(req, b.contact, b.transport, b.dest)
		a.answerRelayed(req, tx, res, err, fmt.Sprintf("%s -> %s (the phone at %s %s)", from, aor, strings.ToLower(b.transport), b.dest))
	}
}

// isScriptedAlice: bob does not answer the scripted alice (she does not
// answer him either), so the two never talk in a loop.
func isScriptedAlice(u sip.Uri, xmppDomain string) bool {
	if u.User != "alice" || !strings.EqualFold(u.Host, xmppDomain) || u.UriParams == nil {
		return false
	}
	gr, _ := u.UriParams.Get("gr")
	return gr == aliceResource
}

// bobReplies sends bob's answer to an XMPP user, through stox.
func (a *agent) bobReplies(bob string, to sip.Uri, body string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil { // closing: wg.Wait may have begun
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		text := "bob (the demo's SIP user) got your message: " + body
		res, err := a.send(a.ctx, "sip:"+bob, to.String(), text)
		if err != nil {
			if a.ctx.Err() == nil {
				a.con.printf("sip", "SIP %s -> %s: %v", bob, to.String(), err)
			}
			return
		}
		a.con.printf("sip", "SIP %s replied to %s: %d %s", bob, to.String(), res.StatusCode, res.Reason)
	}()
}

// relay sends req on to stox over UDP (TCP for a large body).
func (a *agent) relay(req *sip.Request, ruri sip.Uri, dest string) (*sip.Response, error) {
	transport := "UDP"
	if len(req.Body()) > 1000 {
		transport = "TCP"
	}
	return a.relayTo(req, ruri, transport, dest)
}

func (a *agent) relayTo(req *sip.Request, ruri sip.Uri, transport, dest string) (*sip.Response, error) {
	out := sip.NewRequest(sip.MESSAGE, ruri)
	for _, name := range []string{"From", "To", "Call-ID", "Content-Type", "Subject", "Date", "Content-Language"} {
		for _, h := range req.GetHeaders(name) {
			out.AppendHeader(sip.HeaderClone(h))
		}
	}
	out.SetBody(req.Body())
	out.SetTransport(transport)
	out.SetDestination(dest)
	ctx, cancel := context.WithTimeout(a.ctx, 30*time.Second)
	defer cancel()
	return a.cli.Do(ctx, out)
}

func (a *agent) answerRelayed(req *sip.Request, tx sip.ServerTransaction, res *sip.Response, err error, what string) {
	if err != nil {
		a.con.printf("sip", "relayed MESSAGE %s: %v -> 408", what, err)
		_ = tx.Respond(sip.NewResponseFromRequest(req, 408, "Request Timeout", nil))
		return
	}
	a.con.printf("sip", "relayed MESSAGE %s: %d %s", what, res.StatusCode, res.Reason)
	out := sip.NewResponseFromRequest(req, res.StatusCode, res.Reason, nil)
	for _, name := range []string{"Retry-After", "Accept"} {
		for _, h := range res.GetHeaders(name) {
			out.AppendHeader(sip.HeaderClone(h))
		}
	}
	_ = tx.Respond(out)
}

func (a *agent) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	to := req.To()
	contacts := req.GetHeaders("Contact")
	if to == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	aor := strings.ToLower(to.Address.User + "@" + to.Address.Host)
	expires := 3600
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			expires = n
		}
	}
	var contact *sip.ContactHeader
	if len(contacts) > 0 {
		contact, _ = contacts[0].(*sip.ContactHeader)
	}
	if contact != nil && contact.Address.Wildcard {
		contact = nil
		expires = 0
	}
	if contact != nil {
		if v, ok := contact.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				expires = n
			}
		}
	}
	if expires > 3600 {
		expires = 3600
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	a.mu.Lock()
	switch {
	case contact == nil && len(contacts) == 0 && expires != 0: // a query
		if b, ok := a.phones[aor]; ok {
			c := &sip.ContactHeader{Address: b.contact}
			c.Params.Add("expires", strconv.Itoa(int(time.Until(b.expires).Seconds())))
			res.AppendHeader(c)
		}
	case expires == 0:
		delete(a.phones, aor)
		a.con.printf("sip", "phone unregistered: %s", aor)
	default:
		b := binding{
			contact:   contact.Address,
			transport: strings.ToUpper(req.Transport()),
			expires:   time.Now().Add(time.Duration(expires) * time.Second),
		}
		if contact.Address.UriParams != nil {
			if t, ok := contact.Address.UriParams.Get("transport"); ok && t != "" {
				b.transport = strings.ToUpper(t)
			}
		}
		port := contact.Address.Port
		if port == 0 {
			port = 5060
		}
		b.dest = net.JoinHostPort(contact.Address.Host, strconv.Itoa(port))
		a.phones[aor] = b
		c := contact.Clone()
		c.Params.Remove("expires")
		c.Params.Add("expires", strconv.Itoa(expires))
		res.AppendHeader(c)
		a.con.printf("sip", "phone registered: %s at %s (%s from %s, %d s)", aor, contact.Address.String(),
			strings.ToLower(req.Transport()), req.Source(), expires)
	}
	a.mu.Unlock()
	_ = tx.Respond(res)
}

// send originates a MESSAGE (as a SIP user of the agent) to stox over UDP.
func (a *agent) send(ctx context.Context, from, to, body string) (*sip.Response, error) {
	var fromURI, toURI sip.Uri
	if err := sip.ParseUri(from, &fromURI); err != nil {
		return nil, fmt.Errorf("from %q: %w", from, err)
	}
	if err := sip.ParseUri(to, &toURI); err != nil {
		return nil, fmt.Errorf("to %q: %w", to, err)
	}
	req := sip.NewRequest(sip.MESSAGE, toURI)
	fh := &sip.FromHeader{Address: fromURI, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(fh)
	th := &sip.ToHeader{Address: sip.Uri{Scheme: toURI.Scheme, User: toURI.User, Host: toURI.Host}}
	req.AppendHeader(th)
	ct := sip.ContentTypeHeader("text/plain;charset=UTF-8")
	req.AppendHeader(&ct)
	req.SetBody([]byte(body))
	req.SetTransport("UDP")
	req.SetDestination(a.stoxAddr)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return a.cli.Do(ctx, req)
}
