package component

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/msrp"
	"github.com/stox-gw/stox/sipside"
	"github.com/stox-gw/stox/sipside/sdp"
)

// Fast tests of the chat engine (RFC 7573; CHECKLIST section 5). A Call
// cannot be faked, so SIP is real: the gateway's sipside UA (wrapped to
// record page-mode MESSAGEs) and the SIP user's UAs, all on loopback; MSRP
// is real too (msrp listeners and sessions on loopback). XMPP is the
// in-memory harness. The same flows against SIPp and Kamailio's MSRP relay
// are in integration/chat_test.go.

const julietFull = "juliet@example.com/balcony"

var chatLoopback = netip.MustParsePrefix("127.0.0.1/32")

// --- the gateway's SIP side ---

// chatSIP is the gateway's SIP side: a real UA for INVITEs, page-mode
// MESSAGEs recorded and answered 202. It is neither a DialogSender
// (presence stays off) nor anything else.
type chatSIP struct {
	ua   *sipside.UA
	msgs chan *sipside.OutgoingMessage
}

func (s *chatSIP) SendMessage(_ context.Context, m *sipside.OutgoingMessage) (sipside.Result, error) {
	s.msgs <- m
	return sipside.Result{Code: 202, Reason: "Accepted"}, nil
}

func (s *chatSIP) Invite(ctx context.Context, inv *sipside.OutgoingInvite) (*sipside.Call, sipside.InviteResult, error) {
	return s.ua.Invite(ctx, inv)
}

var _ CallSender = (*chatSIP)(nil)

// --- the SIP user (romeo) ---

// peerAnswer is how romeo answers the gateway's INVITEs.
type peerAnswer struct {
	code  int           // 200 (default) or a failure
	types []string      // accept-types of the answer; default text, CPIM, isComposing
	wrap  []string      // accept-wrapped-types
	gate  chan struct{} // when set, the answer waits until it is closed
}

// chatPeer is romeo: a UA that answers INVITEs (the gateway's outbound
// proxy), a UA that sends them (its outbound proxy is the gateway), and an
// MSRP listener.
type chatPeer struct {
	t      *testing.T
	callee *sipside.UA
	caller *sipside.UA
	lis    *msrp.Listener

	invites  chan *sipside.IncomingInvite
	calls    chan *peerCall
	answered chan *peerCall // every session romeo answered 200, before his call is up

	mu       sync.Mutex
	answer   peerAnswer
	sessions []*msrp.Session
}

// peerCall is one session at romeo's end.
type peerCall struct {
	inv     *sipside.IncomingInvite // the gateway's INVITE, nil when romeo called
	call    *sipside.Call
	ms      *msrp.Session
	msgs    chan *msrp.Message
	reports chan *msrp.Report
	settled chan *sipside.Call // romeo's answer: the call once acknowledged, or nil
}

func newPeerCall() *peerCall {
	return &peerCall{msgs: make(chan *msrp.Message, 100), reports: make(chan *msrp.Report, 100), settled: make(chan *sipside.Call, 1)}
}

func (pc *peerCall) handler() msrp.Handler {
	return msrp.Handler{
		Message: func(_ *msrp.Session, m *msrp.Message) { pc.msgs <- m },
		Report:  func(_ *msrp.Session, r *msrp.Report) { pc.reports <- r },
	}
}

func (p *chatPeer) setAnswer(a peerAnswer) {
	p.mu.Lock()
	p.answer = a
	p.mu.Unlock()
}

func (p *chatPeer) track(ms *msrp.Session) {
	p.mu.Lock()
	p.sessions = append(p.sessions, ms)
	p.mu.Unlock()
}

// handle is romeo's InviteHandler.
func (p *chatPeer) handle(ctx context.Context, inv *sipside.IncomingInvite) sipside.InviteReply {
	p.invites <- inv
	p.mu.Lock()
	a := p.answer
	p.mu.Unlock()
	if a.gate != nil {
		select {
		case <-a.gate:
		case <-ctx.Done():
			return sipside.InviteReply{Code: 487}
		}
	}
	if a.code != 0 && a.code != 200 {
		return sipside.InviteReply{Code: a.code}
	}
	offer, err := sdp.ParseMSRP(inv.Body)
	if err != nil {
		return sipside.InviteReply{Code: 488}
	}
	remote, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		return sipside.InviteReply{Code: 488}
	}
	pc := newPeerCall()
	pc.inv = inv
	local := p.lis.URL("127.0.0.1")
	ms, err := p.lis.Expect(local, remote, msrp.WithHandler(pc.handler()))
	if err != nil {
		return sipside.InviteReply{Code: 500}
	}
	p.track(ms)
	types := a.types
	if types == nil {
		types = []string{"text/plain", "message/cpim", mapping.IsComposingContentType}
	}
	answer, err := sdp.BuildAnswer(sdp.Origin{SessionID: 2, SessionVersion: 1}, sdp.MSRPMedia{
		Addr: "127.0.0.1", Port: local.Port, Path: []string{local.String()},
		AcceptTypes: types, AcceptWrappedTypes: a.wrap,
	})
	if err != nil {
		ms.Close()
		return sipside.InviteReply{Code: 500}
	}
	pc.ms = ms
	p.answered <- pc
	return sipside.InviteReply{Code: 200, Body: answer, Then: func(c *sipside.Call) {
		if c == nil {
			pc.settled <- nil
			return // the listener closes ms
		}
		pc.call = c
		pc.settled <- c
		p.calls <- pc
	}}
}

// invite returns the next INVITE romeo got.
func (p *chatPeer) invite() *sipside.IncomingInvite {
	p.t.Helper()
	select {
	case inv := <-p.invites:
		return inv
	case <-time.After(waitLong):
		p.t.Fatal("no INVITE reached the SIP user")
		return nil
	}
}

func (p *chatPeer) noInvite() {
	p.t.Helper()
	select {
	case inv := <-p.invites:
		p.t.Fatalf("unexpected INVITE, Call-ID %s", inv.Dialog.CallID)
	case <-time.After(50 * time.Millisecond):
	}
}

// session returns the next session romeo accepted, once its call is up
// and the gateway's MSRP connection is bound.
func (p *chatPeer) session() *peerCall {
	p.t.Helper()
	return p.bound(p.calls, "no session at the SIP user")
}

// answeredSession returns the next session romeo answered 200, once the gateway's
// MSRP connection is bound, whether or not his call came up: a BYE that
// overtakes the ACK in his stack leaves none (see peerCall.settled).
func (p *chatPeer) answeredSession() *peerCall {
	p.t.Helper()
	return p.bound(p.answered, "the SIP user answered no session")
}

// bound returns the next session from ch once the gateway's MSRP
// connection is bound; none fails the test with none.
func (p *chatPeer) bound(ch <-chan *peerCall, none string) *peerCall {
	p.t.Helper()
	select {
	case pc := <-ch:
		select {
		case <-pc.ms.Bound():
		case <-time.After(waitLong):
			p.t.Fatal("the gateway never connected to the SIP user's MSRP path")
		}
		return pc
	case <-time.After(waitLong):
		p.t.Fatal(none)
		return nil
	}
}

// start makes romeo open a session to juliet (RFC 7573 §5) with these
// accept-types; it returns once romeo's MSRP connection is up.
func (p *chatPeer) start(types ...string) (*peerCall, sdp.MSRPMedia) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	local := p.lis.URL("127.0.0.1")
	offer, err := sdp.BuildOffer(sdp.Origin{SessionID: 3, SessionVersion: 1}, sdp.MSRPMedia{
		Addr: "127.0.0.1", Port: local.Port, Path: []string{local.String()}, AcceptTypes: types,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	call, res, err := p.caller.Invite(ctx, &sipside.OutgoingInvite{RequestURI: julietURI, From: romeoURI, To: julietURI, Body: offer})
	if err != nil || call == nil {
		p.t.Fatalf("INVITE to the gateway: %+v %v", res, err)
	}
	ans, err := sdp.ParseMSRP(res.Body)
	if err != nil {
		p.t.Fatalf("answer: %v\n%s", err, res.Body)
	}
	remote, err := msrp.ParsePath(strings.Join(ans.Path, " "))
	if err != nil {
		p.t.Fatal(err)
	}
	pc := newPeerCall()
	pc.call = call
	ms, err := msrp.Dial(ctx, local, remote, msrp.WithHandler(pc.handler()))
	if err != nil {
		p.t.Fatalf("MSRP connection to the gateway: %v", err)
	}
	p.track(ms)
	pc.ms = ms
	return pc, ans
}

// next returns the next message the gateway sent romeo in this session.
func (pc *peerCall) next(t *testing.T) *msrp.Message {
	t.Helper()
	select {
	case m := <-pc.msgs:
		return m
	case <-time.After(waitLong):
		t.Fatal("no MSRP message from the gateway")
		return nil
	}
}

// text returns the next text/plain message, skipping isComposing.
func (pc *peerCall) text(t *testing.T) *msrp.Message {
	t.Helper()
	for {
		m := pc.next(t)
		if !strings.HasPrefix(m.ContentType, mapping.IsComposingContentType) {
			if !strings.HasPrefix(m.ContentType, "text/plain") {
				t.Fatalf("message of type %q: %q", m.ContentType, m.Body)
			}
			return m
		}
	}
}

// state returns the isComposing state of the next message.
func (pc *peerCall) state(t *testing.T) string {
	t.Helper()
	m := pc.next(t)
	if m.ContentType != mapping.IsComposingContentType {
		t.Fatalf("want isComposing, got %q: %q", m.ContentType, m.Body)
	}
	ic, err := mapping.ParseIsComposing(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	return ic.State
}

func (pc *peerCall) noMessage(t *testing.T) {
	t.Helper()
	select {
	case m := <-pc.msgs:
		t.Fatalf("unexpected MSRP message %q: %q", m.ContentType, m.Body)
	case <-time.After(50 * time.Millisecond):
	}
}

func (pc *peerCall) report(t *testing.T) *msrp.Report {
	t.Helper()
	select {
	case r := <-pc.reports:
		return r
	case <-time.After(waitLong):
		t.Fatal("no REPORT from the gateway")
		return nil
	}
}

// send sends romeo's message and waits for its 200.
func (pc *peerCall) send(t *testing.T, m *msrp.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pc.ms.Send(ctx, m); err != nil {
		t.Fatalf("MSRP SEND to the gateway: %v", err)
	}
}

func (pc *peerCall) sendText(t *testing.T, text string) {
	t.Helper()
	pc.send(t, &msrp.Message{ContentType: "text/plain", Body: []byte(text)})
}

func (pc *peerCall) sendState(t *testing.T, state string) {
	t.Helper()
	b := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>%s</state><contenttype>text/plain</contenttype></isComposing>`, state)
	pc.send(t, &msrp.Message{ContentType: mapping.IsComposingContentType, Body: []byte(b)})
}

// ended waits for romeo's call to end for reason (sipside.EndBye: the
// gateway sent BYE).
func (pc *peerCall) ended(t *testing.T, reason string) {
	t.Helper()
	select {
	case <-pc.call.Done():
	case <-time.After(waitLong):
		t.Fatal("the SIP user's call did not end")
	}
	if got := pc.call.EndReason(); got != reason {
		t.Errorf("call ended with %q, want %q", got, reason)
	}
}

func (pc *peerCall) bye(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pc.call.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
}

// --- the rig ---

type chatRig struct {
	*harness
	sip  *chatSIP
	peer *chatPeer
	lis  *msrp.Listener // the gateway's
}

func chatLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startChatUA(t *testing.T, opts ...sipside.Option) *sipside.UA {
	t.Helper()
	base := []sipside.Option{
		sipside.WithListen("udp:127.0.0.1:0"),
		sipside.WithTrusted(chatLoopback),
		sipside.WithLogger(chatLogger(t)),
	}
	u, err := sipside.New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Errorf("UA close: %v", err)
		}
	})
	return u
}

func proxyOf(t *testing.T, u *sipside.UA) sipside.Option {
	t.Helper()
	ls := u.Listeners()
	if len(ls) == 0 {
		t.Fatal("UA has no listener")
	}
	return sipside.WithOutboundProxy(fmt.Sprintf("sip:%s;transport=udp", ls[0].Addr))
}

func listenMSRP(t *testing.T) *msrp.Listener {
	t.Helper()
	l, err := msrp.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// newChatRig starts romeo and a gateway with chat config cc (its Listener
// is set here). Call checkChatLeaks first.
func newChatRig(t *testing.T, cc ChatConfig) *chatRig {
	t.Helper()
	p := &chatPeer{t: t, invites: make(chan *sipside.IncomingInvite, 16), calls: make(chan *peerCall, 16), answered: make(chan *peerCall, 16)}
	p.lis = listenMSRP(t)
	p.callee = startChatUA(t, sipside.WithDomain("example.net"), sipside.WithInviteHandler(p.handle))

	var gp atomic.Pointer[Gateway]
	gwUA := startChatUA(t, sipside.WithDomain("sip.example.com"), proxyOf(t, p.callee),
		sipside.WithInviteHandler(func(ctx context.Context, inv *sipside.IncomingInvite) sipside.InviteReply {
			g := gp.Load()
			if g == nil {
				return sipside.InviteReply{Code: 503}
			}
			return g.HandleSIPInvite(ctx, inv)
		}))
	p.caller = startChatUA(t, sipside.WithDomain("example.net"), proxyOf(t, gwUA))
	t.Cleanup(func() {
		p.mu.Lock()
		all := p.sessions
		p.mu.Unlock()
		for _, ms := range all {
			ms.Close()
		}
	})

	addr, err := mapping.NewAddressing(mapping.AddressingConfig{
		Component:      "sip.example.com",
		ServedDomains:  []string{"example.com"},
		ForeignDomains: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	cc.Listener = listenMSRP(t)
	r := &chatRig{
		harness: &harness{t: t, out: make(chan *Element, 1000)},
		sip:     &chatSIP{ua: gwUA, msgs: make(chan *sipside.OutgoingMessage, 100)},
		peer:    p,
		lis:     cc.Listener,
	}
	var n atomic.Int64
	ids := func() string { return fmt.Sprintf("id%d", n.Add(1)) }
	g, err := New(Config{
		Component:   "sip.example.com",
		Server:      "127.0.0.1:1",
		Secret:      "s",
		Addressing:  addr,
		SendTimeout: 5 * time.Second,
		Chat:        cc,
	}, r.sip, WithIDs(ids), WithLogger(chatLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	if g.chats == nil || g.presence != nil {
		t.Fatal("want chat sessions on and presence off")
	}
	r.g = g
	gp.Store(g)
	r.connect()
	t.Cleanup(func() { g.Close(time.Second) })
	return r
}

// checkChatLeaks fails the test if goroutines of chats, MSRP sessions or
// SIP UAs outlive the test's cleanups (STYLE.md: every goroutine has an
// owner that stops and waits for it). Call it first, so that its cleanup
// runs last.
func checkChatLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitLong)
		for {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			var leaked []string
			// The first goroutine is this one.
			for _, g := range strings.Split(string(buf), "\n\n")[1:] {
				for _, mark := range []string{"component.(*chat).", "component.(*chatEngine).", "stox/msrp.", "stox/sipside.", "emiago/sipgo"} {
					if strings.Contains(g, mark) {
						leaked = append(leaked, g)
						break
					}
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d chat goroutines leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// say sends juliet's chat message with a body and extra children.
func (r *chatRig) say(id, body, extra string) {
	r.t.Helper()
	r.in(fmt.Sprintf(`<message type='chat' from='%s' to='%s' id='%s'><body>%s</body>%s</message>`, julietFull, romeoJID, id, body, extra))
}

// state sends juliet's chat state alone.
func (r *chatRig) state(state string) {
	r.t.Helper()
	r.in(fmt.Sprintf(`<message type='chat' from='%s' to='%s' id='st-%s'><%s xmlns='%s'/></message>`, julietFull, romeoJID, state, state, nsChatStates))
}

// up opens a session from juliet's first message and returns romeo's end
// once a message went each way (so that romeo's 200 for hers has reached
// the gateway: romeo answers before he sends).
func (r *chatRig) up(thread string) *peerCall {
	r.t.Helper()
	r.say("first", "hello", "<thread>"+thread+"</thread>")
	r.peer.invite()
	pc := r.peer.session()
	if m := pc.text(r.t); string(m.Body) != "hello" {
		r.t.Fatalf("first message %q", m.Body)
	}
	pc.sendText(r.t, "hello back")
	if e := r.chatStanza(julietFull, thread); bodyOf(e) != "hello back" {
		r.t.Fatalf("stanza %s", e)
	}
	return pc
}

// pageMessage returns the next page-mode MESSAGE the gateway sent.
func (r *chatRig) pageMessage() *sipside.OutgoingMessage {
	r.t.Helper()
	select {
	case m := <-r.sip.msgs:
		return m
	case <-time.After(waitLong):
		r.t.Fatal("no page-mode MESSAGE")
		return nil
	}
}

// chatStanza returns the next stanza, checking what every stanza of a
// session carries (CHAT-12): from romeo, to want, type chat, the thread.
func (r *chatRig) chatStanza(to, thread string) *Element {
	r.t.Helper()
	e := r.next()
	if e.Local != "message" || e.AttrValue("from") != romeoJID || e.AttrValue("to") != to || e.AttrValue("type") != "chat" {
		r.t.Fatalf("stanza %s: want a chat message from %s to %s", e, romeoJID, to)
	}
	if th := e.Child(nsComponent, "thread"); th == nil || th.Text != thread {
		r.t.Errorf("stanza %s: want thread %q", e, thread)
	}
	return e
}

func hasChild(e *Element, space, local string) bool { return e.Child(space, local) != nil }

func bodyOf(e *Element) string {
	if b := e.Child(nsComponent, "body"); b != nil {
		return b.Text
	}
	return ""
}

func (r *chatRig) waitNoChats() {
	r.t.Helper()
	for deadline := time.Now().Add(waitLong); r.g.chats.count() != 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatalf("%d chats left", r.g.chats.count())
		}
	}
}

// --- XMPP starts (RFC 7573 §4) ---

// TestChatXMPPStarts: juliet's chat opens a session (CHAT-01..04): the
// INVITE carries our offer and the thread as Call-ID; messages queued while
// it is set up go out in order; later ones reuse the session; romeo's
// messages come back as chat with the thread, to her full JID (CHAT-12).
func TestChatXMPPStarts(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	gate := make(chan struct{})
	r.peer.setAnswer(peerAnswer{gate: gate})
	r.say("m1", "one", "<thread>th-1</thread>")
	inv := r.peer.invite()
	r.say("m2", "two", "<thread>th-1</thread>")
	r.say("m3", "three", "<thread>th-1</thread>")

	if inv.Dialog.CallID != "th-1" {
		t.Errorf("Call-ID %q, want the thread (CHAT-01d)", inv.Dialog.CallID)
	}
	if inv.RequestURI != romeoURI || inv.To != romeoURI || inv.From != julietURI {
		t.Errorf("INVITE %s from %s to %s", inv.RequestURI, inv.From, inv.To)
	}
	if !strings.HasPrefix(inv.ContentType, "application/sdp") {
		t.Errorf("Content-Type %q", inv.ContentType)
	}
	port := r.lis.Addr().(*net.TCPAddr).Port
	offer, err := sdp.ParseMSRP(inv.Body)
	if err != nil {
		t.Fatalf("offer: %v\n%s", err, inv.Body)
	}
	if !strings.Contains(string(inv.Body), fmt.Sprintf("m=message %d TCP/MSRP *", port)) {
		t.Errorf("offer without m=message on the listener's port (CHAT-02b):\n%s", inv.Body)
	}
	if offer.Addr != "127.0.0.1" || offer.Port != port || offer.TLS {
		t.Errorf("offer address %s:%d tls %v, want the listener 127.0.0.1:%d", offer.Addr, offer.Port, offer.TLS, port)
	}
	if len(offer.AcceptTypes) < 2 || offer.AcceptTypes[0] != "message/cpim" || offer.AcceptTypes[1] != "text/plain" {
		t.Errorf("accept-types %q: message/cpim first, then text/plain (CHAT-03)", offer.AcceptTypes)
	}
	if offer.MaxSize <= 0 || offer.MaxSize > 65536 {
		t.Errorf("max-size %d (CHAT-02e)", offer.MaxSize)
	}
	if len(offer.Path) != 1 {
		t.Fatalf("path %q", offer.Path)
	}
	u, err := msrp.ParseURL(offer.Path[0])
	if err != nil || u.Port != port || u.Host != "127.0.0.1" || u.SessionID == "" {
		t.Errorf("path %q: want msrp://127.0.0.1:%d/<id>;tcp (CHAT-02d): %v", offer.Path[0], port, err)
	}
	r.none() // nothing goes to XMPP while the session is set up

	close(gate)
	pc := r.peer.session()
	for _, want := range []string{"one", "two", "three"} {
		m := pc.text(t)
		if string(m.Body) != want {
			t.Fatalf("message %q, want %q (queued messages in order, CHAT-04)", m.Body, want)
		}
		if m.SuccessReport {
			t.Errorf("Success-Report without <request/> (CHAT-28)")
		}
	}
	// A later message reuses the session.
	r.say("m4", "four", "<thread>th-1</thread>")
	if m := pc.text(t); string(m.Body) != "four" {
		t.Errorf("message %q, want four", m.Body)
	}
	r.peer.noInvite()
	if n := r.g.chats.count(); n != 1 {
		t.Errorf("%d chats, want 1", n)
	}

	// Romeo answers: type chat, thread = Call-ID, to her full JID.
	pc.sendText(t, "hi juliet")
	e := r.chatStanza(julietFull, "th-1")
	if bodyOf(e) != "hi juliet" || hasChild(e, nsReceipts, "request") {
		t.Errorf("stanza %s", e)
	}
	r.none()
}

// TestChatUnsafeThread: a thread that cannot be a Call-ID as it is gives
// a fresh Call-ID, which the session's stanzas then carry (CHAT-01d,
// CHAT-12).
func TestChatUnsafeThread(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	r.say("m1", "one", "<thread>a thread@with spaces</thread>")
	inv := r.peer.invite()
	if inv.Dialog.CallID == "" || strings.Contains(inv.Dialog.CallID, " ") {
		t.Errorf("Call-ID %q", inv.Dialog.CallID)
	}
	pc := r.peer.session()
	pc.text(t)
	pc.sendText(t, "back")
	r.chatStanza(julietFull, inv.Dialog.CallID)
}

func TestSafeCallID(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"th-1", true},
		{"a.b_c~d+e!f%g*h", true},
		{"", false},
		{"a b", false},
		{"a@b", false},
		{"a\r\nb", false},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
	} {
		if got := safeCallID(c.in); got != c.ok {
			t.Errorf("safeCallID(%q) = %v, want %v", c.in, got, c.ok)
		}
	}
}

// TestChatReceipts: XEP-0184 both ways (CHAT-40..42).
func TestChatReceipts(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	pc := r.up("th-r")

	// Hers: <request/> -> Success-Report: yes -> REPORT 200 (romeo's
	// session sends it) -> <received id='her id'/>.
	r.say("ask1", "receipt please", "<thread>th-r</thread><request xmlns='urn:xmpp:receipts'/>")
	m := pc.text(t)
	if !m.SuccessReport || string(m.Body) != "receipt please" {
		t.Fatalf("SEND success-report %v body %q (CHAT-40)", m.SuccessReport, m.Body)
	}
	e := r.next()
	rc := e.Child(nsReceipts, "received")
	if e.AttrValue("from") != romeoJID || e.AttrValue("to") != julietFull || rc == nil || rc.AttrValue("id") != "ask1" {
		t.Fatalf("receipt stanza %s, want <received id='ask1'/> to %s (CHAT-41)", e, julietFull)
	}
	if bodyOf(e) != "" || hasChild(e, nsReceipts, "request") {
		t.Errorf("receipt stanza carries more than the receipt: %s", e)
	}

	// His: Success-Report: yes -> <request/>; her <received/> -> REPORT
	// 200 with his Message-ID, and not before (CHAT-42).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in := &msrp.Message{ContentType: "text/plain", Body: []byte("did you get this"), SuccessReport: true}
	wait, err := pc.ms.Enqueue(in)
	if err != nil {
		t.Fatal(err)
	}
	reported := make(chan error, 1)
	go func() { reported <- wait(ctx) }()
	st := r.chatStanza(julietFull, "th-r")
	if bodyOf(st) != "did you get this" || !hasChild(st, nsReceipts, "request") {
		t.Fatalf("stanza %s: want the body and <request/> (CHAT-42)", st)
	}
	select {
	case err := <-reported:
		t.Fatalf("REPORT before juliet's receipt (err %v): the gateway must not report delivery it has not seen (CHAT-42)", err)
	case <-time.After(100 * time.Millisecond):
	}
	// XEP-0184 receipts carry no type.
	r.in(fmt.Sprintf(`<message from='%s' to='%s' id='rc1'><received xmlns='urn:xmpp:receipts' id='%s'/></message>`, julietFull, romeoJID, st.AttrValue("id")))
	select {
	case err := <-reported:
		if err != nil {
			t.Fatalf("REPORT: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("no REPORT after juliet's receipt")
	}
	// A receipt for an unknown id sends nothing.
	r.in(fmt.Sprintf(`<message type='chat' from='%s' to='%s' id='rc2'><received xmlns='urn:xmpp:receipts' id='nope'/></message>`, julietFull, romeoJID))
	pc.noMessage(t)
	r.none()
	if len(r.sip.msgs) != 0 {
		t.Errorf("receipts went out in page mode")
	}
}

// TestChatStates: XEP-0085 <-> isComposing (CHAT-50, CHAT-51).
func TestChatStates(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	pc := r.up("th-s")

	for _, c := range []struct{ xmpp, ic string }{
		{"composing", "active"},
		{"paused", "idle"},
		{"active", "idle"},
		{"inactive", "idle"},
	} {
		r.state(c.xmpp)
		if got := pc.state(t); got != c.ic {
			t.Errorf("<%s/> -> isComposing %q, want %q", c.xmpp, got, c.ic)
		}
	}
	r.none() // chat states are never answered

	for _, c := range []struct{ ic, xmpp string }{
		{"active", "composing"},
		{"idle", "active"},
		{"bogus", "active"}, // unknown states read as idle (CHAT-51)
	} {
		pc.sendState(t, c.ic)
		e := r.chatStanza(julietFull, "th-s")
		if !hasChild(e, nsChatStates, c.xmpp) || bodyOf(e) != "" {
			t.Errorf("isComposing %s -> %s, want <%s/> alone", c.ic, e, c.xmpp)
		}
	}
}

// TestChatCPIMOnlyPeer: a peer that takes only message/cpim gets the text
// wrapped, From and To set (CHAT-29, CHAT-30), and no isComposing.
func TestChatCPIMOnlyPeer(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	r.peer.setAnswer(peerAnswer{types: []string{"message/cpim"}, wrap: []string{"text/plain"}})
	r.say("m1", "wrapped", "<thread>th-c</thread>")
	r.peer.invite()
	pc := r.peer.session()
	m := pc.next(t)
	if m.ContentType != "message/cpim" {
		t.Fatalf("Content-Type %q, want message/cpim", m.ContentType)
	}
	cm, err := mapping.ParseCPIM(m.Body)
	if err != nil {
		t.Fatalf("CPIM: %v\n%s", err, m.Body)
	}
	from, ok := cm.From()
	to := cm.To()
	if !ok || from.URI != julietURI || len(to) != 1 || to[0].URI != romeoURI {
		t.Errorf("CPIM From %+v To %+v", from, to)
	}
	if _, ok := cm.DateTime(); !ok {
		t.Errorf("CPIM without DateTime")
	}
	if !strings.HasPrefix(cm.ContentType(), "text/plain") || string(cm.Body) != "wrapped" {
		t.Errorf("CPIM content %q %q", cm.ContentType(), cm.Body)
	}
	r.state("composing")
	pc.noMessage(t) // CHAT-51: only to a peer that takes isComposing
}

// cpimText is romeo's text wrapped in CPIM with this From.
func cpimText(t *testing.T, from, text string) *msrp.Message {
	t.Helper()
	var cm mapping.CPIMMessage
	cm.AddAddress("From", mapping.CPIMAddress{URI: from})
	cm.AddAddress("To", mapping.CPIMAddress{URI: julietURI})
	cm.AddDateTime("2024-01-02T03:04:05Z")
	cm.AddMIME("Content-Type", "text/plain;charset=UTF-8")
	cm.Body = []byte(text)
	b, err := cm.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &msrp.Message{ContentType: "message/cpim", Body: b}
}

// TestChatCPIMFrom: romeo's CPIM is unwrapped; a CPIM From that is not the
// session's SIP user is refused with a 403 failure REPORT and never
// reaches XMPP (CHAT-30).
func TestChatCPIMFrom(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	pc := r.up("th-f")

	pc.send(t, cpimText(t, romeoURI, "it is me"))
	if e := r.chatStanza(julietFull, "th-f"); bodyOf(e) != "it is me" {
		t.Errorf("stanza %s", e)
	}

	// The 403 REPORT settles romeo's SEND when it overtakes the end of
	// the SEND's write, else it reaches his Handler.Report.
	spoof := cpimText(t, "sip:mallory@example.net", "it is me, romeo")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wait, err := pc.ms.Enqueue(spoof)
	if err != nil {
		t.Fatal(err)
	}
	var st *msrp.StatusError
	switch err := wait(ctx); {
	case errors.As(err, &st):
		if st.Code != 403 {
			t.Errorf("SEND failed with %d, want a 403 REPORT", st.Code)
		}
	case err != nil:
		t.Fatalf("SEND: %v", err)
	default:
		rep := pc.report(t)
		if rep.MessageID != spoof.ID || rep.Status.Code != 403 {
			t.Errorf("REPORT %s %d, want 403 for %s", rep.MessageID, rep.Status.Code, spoof.ID)
		}
	}
	r.none()
}

// --- setup failures ---

// TestChatFallbackToPageMode: a peer without MSRP (488) gets the queued
// message as a page-mode MESSAGE (CHAT-00).
// waitLong bounds each wait for something that must happen: generous, as
// go test runs packages in parallel and -race slows everything.
const waitLong = 20 * time.Second

func TestChatFallbackToPageMode(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	r.peer.setAnswer(peerAnswer{code: 488})
	r.say("m1", "by page mode", "<thread>th-p</thread>")
	r.peer.invite()
	m := r.pageMessage()
	if string(m.Body) != "by page mode" || m.RequestURI != romeoURI || !strings.HasPrefix(m.From, julietURI) {
		t.Errorf("MESSAGE %s from %s: %q", m.RequestURI, m.From, m.Body)
	}
	r.none() // delivered: no error
	r.waitNoChats()
}

// refusingSIP answers every INVITE 488 at once, without a network, and
// records page-mode MESSAGEs as chatSIP does.
type refusingSIP struct{ msgs chan *sipside.OutgoingMessage }

func (s *refusingSIP) SendMessage(_ context.Context, m *sipside.OutgoingMessage) (sipside.Result, error) {
	s.msgs <- m
	return sipside.Result{Code: 202, Reason: "Accepted"}, nil
}

func (s *refusingSIP) Invite(context.Context, *sipside.OutgoingInvite) (*sipside.Call, sipside.InviteResult, error) {
	return nil, sipside.InviteResult{Result: sipside.Result{Code: 488, Reason: "Not Acceptable Here"}}, nil
}

// TestChatFallbackAtOnce: a setup that fails before the dispatcher has
// moved on still finds the message that opened the session, and sends it
// in page mode (CHAT-00), never refusing it as sent to a session that has
// ended. Many users at once, so that some setups win that race.
func TestChatFallbackAtOnce(t *testing.T) {
	checkChatLeaks(t)
	addr, err := mapping.NewAddressing(mapping.AddressingConfig{
		Component: "sip.example.com", ServedDomains: []string{"example.com"}, ForeignDomains: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	const users = 200
	sip := &refusingSIP{msgs: make(chan *sipside.OutgoingMessage, users)}
	h := &harness{t: t, out: make(chan *Element, users)}
	g, err := New(Config{
		Component: "sip.example.com", Server: "127.0.0.1:1", Secret: "s", Addressing: addr,
		SendTimeout: 5 * time.Second, Chat: ChatConfig{Mode: ChatModeMSRP, Listener: listenMSRP(t)},
	}, sip, WithLogger(chatLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	h.g = g
	h.connect()
	t.Cleanup(func() { g.Close(time.Second) })
	for i := range users {
		h.in(fmt.Sprintf(`<message type='chat' from='u%d@example.com/r' to='%s' id='m%d'><body>%d</body></message>`, i, romeoJID, i, i))
	}
	got := make(map[string]bool)
	for len(got) < users {
		select {
		case m := <-sip.msgs:
			got[string(m.Body)] = true
		case e := <-h.out:
			t.Fatalf("stanza %s, want every message in page mode", e)
		case <-time.After(waitLong):
			t.Fatalf("%d of %d messages in page mode", len(got), users)
		}
	}
	h.none()
}

// TestChatSetupRefused: other failures answer each queued text message
// with the RFC 7247 condition (ERR-04); chat states are dropped.
func TestChatSetupRefused(t *testing.T) {
	for _, c := range []struct {
		code      int
		typ, cond string
	}{
		{486, "wait", "recipient-unavailable"},
		{404, "cancel", "item-not-found"},
	} {
		t.Run(fmt.Sprint(c.code), func(t *testing.T) {
			checkChatLeaks(t)
			r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
			gate := make(chan struct{})
			r.peer.setAnswer(peerAnswer{code: c.code, gate: gate})
			r.say("m1", "one", "")
			r.peer.invite()
			r.state("composing")
			r.say("m2", "two", "")
			close(gate)
			for _, id := range []string{"m1", "m2"} {
				e := r.next()
				typ, cond := errorCondition(e)
				if e.AttrValue("type") != "error" || e.AttrValue("id") != id || typ != c.typ || cond != c.cond {
					t.Errorf("reply %s, want %s/%s for %s", e, c.typ, c.cond, id)
				}
			}
			r.none()
			if len(r.sip.msgs) != 0 {
				t.Errorf("page-mode fallback after %d", c.code)
			}
		})
	}
}

// TestChatQueueFull: a full session queue answers resource-constraint;
// what was queued still goes out.
func TestChatQueueFull(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP, Queue: 2})
	gate := make(chan struct{})
	r.peer.setAnswer(peerAnswer{gate: gate})
	r.say("m1", "one", "")
	r.peer.invite()
	r.say("m2", "two", "")
	r.say("m3", "three", "")
	e := r.next()
	if typ, cond := errorCondition(e); e.AttrValue("id") != "m3" || typ != "wait" || cond != "resource-constraint" {
		t.Errorf("reply %s, want wait/resource-constraint for m3", e)
	}
	close(gate)
	pc := r.peer.session()
	for _, want := range []string{"one", "two"} {
		if m := pc.text(t); string(m.Body) != want {
			t.Errorf("message %q, want %q", m.Body, want)
		}
	}
	pc.noMessage(t)
	r.none()
}

// --- ending (CHAT-60..62) ---

// TestChatGoneSendsBye: her <gone/> ends the session with BYE (CHAT-60b);
// the message she sent just before is delivered first, and nothing goes
// back to her.
func TestChatGoneSendsBye(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	pc := r.up("th-g")
	r.say("last", "good night", "")
	r.state("gone")
	if m := pc.text(t); string(m.Body) != "good night" {
		t.Errorf("message %q", m.Body)
	}
	pc.ended(t, sipside.EndBye)
	r.waitNoChats()
	r.none()
	pc.noMessage(t)
}

// TestChatGoneDuringSetup: her <gone/> while the session is still being
// set up ends it as soon as it is up (CHAT-60b): what she sent before goes
// out first, then the BYE.
func TestChatGoneDuringSetup(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	gate := make(chan struct{})
	r.peer.setAnswer(peerAnswer{gate: gate})
	r.say("m1", "good night", "<thread>th-gs</thread>")
	r.peer.invite()
	r.state("gone")
	close(gate)
	pc := r.peer.answeredSession()
	if m := pc.text(t); string(m.Body) != "good night" {
		t.Errorf("message %q", m.Body)
	}
	// The BYE follows the ACK so closely that romeo's stack may take it
	// first: then no call comes of his 200 (nil), which is the end too.
	select {
	case c := <-pc.settled:
		if c != nil {
			pc.ended(t, sipside.EndBye)
		}
	case <-time.After(waitLong):
		t.Fatal("the SIP user's 200 was neither acknowledged nor ended")
	}
	select {
	case <-pc.ms.Done():
	case <-time.After(waitLong):
		t.Fatal("the gateway kept the MSRP session")
	}
	r.waitNoChats()
	r.none()
}

// TestChatPeerBye: romeo's BYE -> <gone/> with the thread (CHAT-60a);
// her next message opens a new session.
func TestChatPeerBye(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	pc := r.up("th-b")
	pc.bye(t)
	e := r.chatStanza(julietFull, "th-b")
	if !hasChild(e, nsChatStates, "gone") || bodyOf(e) != "" {
		t.Errorf("stanza %s, want <gone/>", e)
	}
	r.waitNoChats()
	r.say("again", "again", "<thread>th-b2</thread>")
	if inv := r.peer.invite(); inv.Dialog.CallID != "th-b2" {
		t.Errorf("Call-ID %q", inv.Dialog.CallID)
	}
	if m := r.peer.session().text(t); string(m.Body) != "again" {
		t.Errorf("message %q", m.Body)
	}
}

// TestChatOnePeerPort: romeo's client takes all its sessions on one MSRP
// port, as clients do (the session-id in the path tells them apart, RFC
// 4975 §6.1). Two XMPP users chat with him at once, and both sessions come
// up: the gateway connects to a peer without relays from a port of its
// own, not from its listener's, or the second connection would need the
// very addresses (both ends) the first one holds, and connect fails
// (EADDRNOTAVAIL). The same happens when a session follows one whose
// connection is still closing (TestChatPeerBye on a busy machine).
func TestChatOnePeerPort(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	first := r.up("th-1")
	const nurseFull = "nurse@example.com/kitchen"
	r.in(fmt.Sprintf(`<message type='chat' from='%s' to='%s' id='n1'><body>from the nurse</body><thread>th-2</thread></message>`, nurseFull, romeoJID))
	if inv := r.peer.invite(); inv.Dialog.CallID != "th-2" {
		t.Errorf("Call-ID %q", inv.Dialog.CallID)
	}
	second := r.peer.session()
	if m := second.text(t); string(m.Body) != "from the nurse" {
		t.Errorf("message %q", m.Body)
	}
	second.sendText(t, "hello nurse")
	if e := r.chatStanza(nurseFull, "th-2"); bodyOf(e) != "hello nurse" {
		t.Errorf("stanza %s", e)
	}
	first.sendText(t, "still here")
	if e := r.chatStanza(julietFull, "th-1"); bodyOf(e) != "still here" {
		t.Errorf("stanza %s", e)
	}
	if n := r.g.chats.count(); n != 2 {
		t.Errorf("%d chats, want 2", n)
	}
}

// TestChatMSRPLost: the MSRP connection fails -> <gone/> and BYE (CHAT-62).
func TestChatMSRPLost(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	pc := r.up("th-l")
	pc.ms.Close()
	e := r.chatStanza(julietFull, "th-l")
	if !hasChild(e, nsChatStates, "gone") {
		t.Errorf("stanza %s, want <gone/>", e)
	}
	pc.ended(t, sipside.EndBye)
	r.waitNoChats()
}

// TestChatIdle: no message either way for ChatConfig.Idle -> BYE and
// <gone/> (CHAT-61).
func TestChatIdle(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP, Idle: 300 * time.Millisecond})
	pc := r.up("th-i")
	e := r.chatStanza(julietFull, "th-i")
	if !hasChild(e, nsChatStates, "gone") {
		t.Errorf("stanza %s, want <gone/>", e)
	}
	pc.ended(t, sipside.EndBye)
	r.waitNoChats()
}

// TestChatCloseEndsSessions: Gateway.Close sends BYE for every session and
// <gone/> to the XMPP user, and does not wait for a session still being set
// up; a session replaced by a newer one of the same pair ends without
// <gone/>.
func TestChatCloseEndsSessions(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	out := r.up("th-x")
	in, _ := r.peer.start("text/plain")
	in.sendText(t, "from romeo")
	// The SIP-started session has the same pair: it replaces hers.
	out.ended(t, sipside.EndBye)
	if e := r.next(); bodyOf(e) != "from romeo" {
		t.Fatalf("stanza %s", e)
	}
	done := make(chan struct{})
	go func() { r.g.Close(time.Second); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLong):
		t.Fatal("Close did not return")
	}
	in.ended(t, sipside.EndBye)
	if n := r.g.chats.count(); n != 0 {
		t.Errorf("%d chats after Close", n)
	}
	// The session is over for romeo (he got BYE): she is told with <gone/>.
	if e := r.next(); !hasChild(e, nsChatStates, "gone") {
		t.Errorf("stanza %s, want <gone/> after Close", e)
	}
	r.none()
}

// TestChatCloseDuringSetup: Close does not wait for an INVITE that is not
// answered; the queued message gets an error.
func TestChatCloseDuringSetup(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	r.peer.setAnswer(peerAnswer{gate: make(chan struct{})}) // never answers
	r.say("m1", "one", "")
	r.peer.invite()
	done := make(chan struct{})
	go func() { r.g.Close(time.Second); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLong):
		t.Fatal("Close waits for the INVITE")
	}
	e := r.next()
	if typ, cond := errorCondition(e); e.AttrValue("id") != "m1" || typ == "" || cond == "" {
		t.Errorf("reply %s, want an error for m1", e)
	}
	r.none()
}

// --- modes (CHAT-00) ---

// TestChatModeMessage: in mode message, type chat goes out as page-mode
// MESSAGE; no INVITE.
func TestChatModeMessage(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMessage})
	r.say("m1", "page", "<thread>th-m</thread>")
	m := r.pageMessage()
	if string(m.Body) != "page" || m.RequestURI != romeoURI {
		t.Errorf("MESSAGE %s %q", m.RequestURI, m.Body)
	}
	r.peer.noInvite()
	r.none()
	if n := r.g.chats.count(); n != 0 {
		t.Errorf("%d chats in mode message", n)
	}
}

// TestChatModeAuto: mode auto opens a session only toward a SIP user known
// to take one (it started one earlier).
func TestChatModeAuto(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeAuto})
	r.say("m1", "unknown peer", "")
	if m := r.pageMessage(); string(m.Body) != "unknown peer" {
		t.Errorf("MESSAGE %q", m.Body)
	}
	r.peer.noInvite()

	in, _ := r.peer.start("text/plain", "message/cpim")
	callID := in.call.Dialog().CallID
	in.sendText(t, "let us talk")
	if e := r.chatStanza(julietJID, callID); bodyOf(e) != "let us talk" {
		t.Errorf("stanza %s", e)
	}
	in.bye(t)
	r.chatStanza(julietJID, callID) // <gone/>
	r.waitNoChats()

	r.say("m2", "known peer", "<thread>th-a</thread>")
	r.peer.invite()
	if m := r.peer.session().text(t); string(m.Body) != "known peer" {
		t.Errorf("message %q", m.Body)
	}
	if len(r.sip.msgs) != 0 {
		t.Errorf("page mode toward a peer that takes sessions")
	}
}

// --- SIP starts (RFC 7573 §5) ---

// TestChatSIPStarts: romeo's INVITE is accepted with our path and the
// common types (CHAT-10); his messages reach the bare JID with the Call-ID
// as thread until she answers from a full JID (CHAT-12); her replies go
// over the session.
func TestChatSIPStarts(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{}) // mode message: sessions are accepted all the same
	pc, ans := r.peer.start("text/plain", "message/cpim", "image/png", mapping.IsComposingContentType)
	port := r.lis.Addr().(*net.TCPAddr).Port
	if ans.Port != port || len(ans.Path) != 1 || !strings.Contains(ans.Path[0], fmt.Sprintf("127.0.0.1:%d/", port)) {
		t.Errorf("answer port %d path %q, want the listener's %d", ans.Port, ans.Path, port)
	}
	if strings.Join(ans.AcceptTypes, " ") != "message/cpim text/plain "+mapping.IsComposingContentType {
		t.Errorf("answer accept-types %q", ans.AcceptTypes)
	}
	callID := pc.call.Dialog().CallID

	pc.sendText(t, "hello juliet")
	e := r.chatStanza(julietJID, callID)
	if bodyOf(e) != "hello juliet" {
		t.Errorf("stanza %s", e)
	}
	r.say("re", "hello romeo", "<thread>"+callID+"</thread>")
	if m := pc.text(t); string(m.Body) != "hello romeo" {
		t.Errorf("reply %q", m.Body)
	}
	pc.sendText(t, "now to your resource")
	r.chatStanza(julietFull, callID)
	if len(r.sip.msgs) != 0 {
		t.Errorf("the reply went out in page mode")
	}
	r.state("gone")
	pc.ended(t, sipside.EndBye)
	r.waitNoChats()
}

// TestChatSIPInviteRefused: what HandleSIPInvite refuses (CHAT-10c, ADDR).
func TestChatSIPInviteRefused(t *testing.T) {
	checkChatLeaks(t)
	r := newChatRig(t, ChatConfig{Mode: ChatModeMSRP})
	local := r.peer.lis.URL("127.0.0.1")
	offer := func(types ...string) []byte {
		b, err := sdp.BuildOffer(sdp.Origin{SessionID: 9, SessionVersion: 1}, sdp.MSRPMedia{
			Addr: "127.0.0.1", Port: local.Port, Path: []string{local.String()}, AcceptTypes: types,
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	audio := []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
	for _, c := range []struct {
		name       string
		ruri, from string
		ctype      string
		body       []byte
		code       int
	}{
		{"not sdp", julietURI, romeoURI, "text/plain", []byte("hello"), 415},
		{"no msrp stream", julietURI, romeoURI, "application/sdp", audio, 488},
		{"no common type", julietURI, romeoURI, "application/sdp", offer("image/png"), 488},
		{"isComposing only", julietURI, romeoURI, "application/sdp", offer(mapping.IsComposingContentType), 488},
		{"unserved domain", "sip:juliet@example.org", romeoURI, "application/sdp", offer("text/plain"), 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			reply := r.g.HandleSIPInvite(context.Background(), &sipside.IncomingInvite{
				Dialog:     sipside.Dialog{CallID: "refused-" + strings.ReplaceAll(c.name, " ", "-"), RemoteURI: c.from, RemoteTag: "t1", LocalURI: c.ruri, LocalTag: "t2"},
				RequestURI: c.ruri, From: c.from, To: c.ruri,
				ContentType: c.ctype, Body: c.body,
				Source: netip.MustParseAddrPort("127.0.0.1:5060"), Transport: "udp",
			})
			if reply.Code != c.code || reply.Then != nil {
				t.Errorf("reply %d (then %v), want %d", reply.Code, reply.Then != nil, c.code)
			}
			if c.code == 415 && reply.Headers["Accept"] != "application/sdp" {
				t.Errorf("415 without Accept: application/sdp: %v", reply.Headers)
			}
		})
	}
	if n := r.g.chats.count(); n != 0 {
		t.Errorf("%d chats after refusals", n)
	}
	r.none()
}
