//go:build unix

package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stox-gw/stox/integration/testbed"
)

// The demo deployment: Prosody serves example.com, stox is its component
// sip.example.com, and every SIP user is reached through the demo's SIP
// agent (stox's outbound proxy).
const (
	xmppDomain    = "example.com"
	component     = "sip.example.com"
	secret        = "demo-secret"
	aliceResource = "demo"

	stepTimeout = 15 * time.Second
)

// accounts registered on Prosody: alice is the scripted user, charlie is
// spare for your own client.
var accounts = map[string]string{"alice": "alice", "charlie": "charlie"}

type options struct {
	once        bool   // run the script, check it, exit
	stoxBin     string // "" builds ./examples/gateway
	stoxLog     string // stox's log.level
	randomPorts bool   // never try the standard SIP ports
}

type demo struct {
	o   options
	con *console

	buildDir string // where we built stox, removed at close
	storeDir string // stox's store.path is in it, removed at close
	prosody  *testbed.Prosody
	stox     *testbed.Stox
	agent    *agent
	alice    *testbed.Client

	sipPort  int // stox's SIP port (UDP and TCP)
	msrpPort int // stox's MSRP port (TCP)
	tails    []*tailer
	readStop context.CancelFunc
	readDone chan struct{}
	aliceGot chan *testbed.Stanza // messages alice got (the script reads them)
	// alicePres gets the presence stanzas and roster pushes alice got
	// (the script reads them).
	alicePres chan *testbed.Stanza
	// chatBacklog holds events of bob's chats that the script did not
	// wait for yet (awaitChat; the script's goroutine only).
	chatBacklog []chatEvent
	echoMu      sync.Mutex
	echo        bool // alice answers what she gets (after the script)
}

func newDemo(o options, out io.Writer) *demo {
	if o.stoxLog == "" {
		o.stoxLog = "info"
	}
	return &demo{o: o, con: &console{w: out}, aliceGot: make(chan *testbed.Stanza, 64), alicePres: make(chan *testbed.Stanza, 64)}
}

func (d *demo) say(format string, args ...any) { d.con.printf("demo", format, args...) }

// start brings up the SIP agent, Prosody and stox, and logs alice in.
func (d *demo) start(ctx context.Context) error {
	for _, bin := range []string{"prosody", "prosodyctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed: run `make demo` (it installs it) or apt-get install prosody", bin)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	bin := d.o.stoxBin
	if bin == "" {
		d.say("building stox (go build ./examples/gateway) ...")
		var err error
		if bin, err = d.build(ctx); err != nil {
			return err
		}
	}

	// Ports: the standard ones when they are free (interactive runs), so
	// that phones can use their defaults; random ones otherwise.
	var err error
	d.sipPort, err = d.port(5060)
	if err != nil {
		return err
	}
	agentPort, err := d.port(5070)
	if err != nil {
		return err
	}
	if !d.o.randomPorts && bindableTCP(2855) {
		d.msrpPort = 2855 // the MSRP default (RFC 4975 s15.4)
	} else if d.msrpPort, err = testbed.ReservePort(testbed.TCP); err != nil {
		return err
	}
	stoxAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(d.sipPort))
	if d.agent, err = startAgent(d.con, agentPort, stoxAddr, component, xmppDomain); err != nil {
		return err
	}
	d.say("demo SIP agent (SIP user bob and his presence agent, stox's outbound proxy) listening on udp+tcp %s", d.agent.addr)

	d.say("starting Prosody (domain %s, component %s) ...", xmppDomain, component)
	d.prosody, err = testbed.StartProsody(ctx, testbed.ProsodyConfig{
		Domain:     xmppDomain,
		Components: map[string]string{component: secret},
		Users:      accounts,
		LogLevel:   "warn",
	})
	if err != nil {
		return fmt.Errorf("prosody: %w", err)
	}
	d.say("Prosody runs (pid %d): c2s %s, component port %s", d.prosody.PID(), d.prosody.C2SAddr, d.prosody.ComponentAddr)

	// stox keeps presence subscriptions in its store: a temporary one.
	if d.storeDir, err = os.MkdirTemp("", "stox-demo-store-*"); err != nil {
		return err
	}
	d.stox, err = testbed.StartStox(ctx, bin, d.stoxConfig())
	if err != nil {
		return fmt.Errorf("stox: %w", err)
	}
	d.say("stox runs (pid %d), config %s:", d.stox.PID, d.stox.Conf)
	d.say("%s", indent(d.stoxConfig(), "    "))
	t, err := tail(d.con, "stox", filepath.Join(d.stox.Dir, "stox.log"), false)
	if err != nil {
		return fmt.Errorf("stox log: %w", err)
	}
	d.tails = append(d.tails, t)

	d.alice, err = testbed.Dial(ctx, d.prosody.C2SAddr, "alice@"+xmppDomain, accounts["alice"], aliceResource, testbed.WithPresence())
	if err != nil {
		return fmt.Errorf("logging alice in: %w", err)
	}
	// Asking for her roster makes her an interested resource: Prosody
	// pushes roster changes to her (RFC 6121 §2.1.6).
	if err := d.alice.Send(`<iq type='get' id='roster-1'><query xmlns='` + nsRoster + `'/></iq>`); err != nil {
		return fmt.Errorf("alice's roster: %w", err)
	}
	d.say("XMPP user %s logged in, available", d.alice.JID)
	if err := d.stox.WaitReady(ctx, d.alice, component); err != nil {
		return fmt.Errorf("stox never became ready: %w", err)
	}
	d.flushLogs()
	d.say("stox is connected to Prosody as %s (it answers disco#info)", component)
	// Prosody's warnings from here on (before, it warned about the
	// disco#info probes that reached it before stox did).
	if t, err := tail(d.con, "pros", filepath.Join(d.prosody.Dir, "prosody.log"), true); err == nil {
		d.tails = append(d.tails, t)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	d.readStop = rcancel
	d.readDone = make(chan struct{})
	go d.readAlice(rctx)
	return nil
}

// build compiles the gateway without the race detector (a demo need not pay
// for it) into a temporary directory.
func (d *demo) build(ctx context.Context) (string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", err
	}
	d.buildDir, err = os.MkdirTemp("", "stox-demo-build-*")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(d.buildDir, "stox")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./examples/gateway")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./examples/gateway: %w\n%s", err, out)
	}
	return bin, nil
}

// port returns preferred when it is free on 127.0.0.1 for UDP and TCP and
// standard ports are wanted, else a reserved random one.
func (d *demo) port(preferred int) (int, error) {
	if !d.o.randomPorts && bindable(preferred) {
		return preferred, nil
	}
	return testbed.ReservePort(testbed.TCPUDP)
}

func bindable(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func bindableTCP(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func (d *demo) stoxConfig() string {
	return fmt.Sprintf(`[xmpp]
component = %q
server    = %q
secret    = %q
domains   = [%q]

[sip]
domain         = %q
listen         = ["udp:127.0.0.1:%d", "tcp:127.0.0.1:%d"]
outbound_proxy = "sip:%s;transport=udp"
trusted        = ["127.0.0.1/32"]

[msrp]
listen = "tcp:127.0.0.1:%d"

[chat]
mode         = "auto"
idle_timeout = "5m"

[presence]
notify_interval = "1s"

[store]
path = %q

[log]
level = %q
`, component, d.prosody.ComponentAddr, secret, xmppDomain, component, d.sipPort, d.sipPort, d.agent.addr,
		d.msrpPort, filepath.Join(d.storeDir, "stox.db"), d.o.stoxLog)
}

// readAlice prints everything alice gets, hands messages to the script and,
// after it, answers messages and IQs.
func (d *demo) readAlice(ctx context.Context) {
	defer close(d.readDone)
	for {
		s, err := d.alice.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				d.con.printf("xmpp", "alice's stream ended: %v", err)
			}
			return
		}
		from := s.Attr("from")
		switch s.Name() {
		case "message":
			if s.Attr("type") == "error" {
				d.con.printf("xmpp", "XMPP alice got an error back from %s: %s (for her message id %q)", from, s.ErrorCondition(), s.Attr("id"))
			} else {
				d.con.printf("xmpp", "XMPP alice got: %s", describeMessage(s))
				d.aliceAnswers(s)
			}
			select {
			case d.aliceGot <- s:
			default:
			}
		case "presence":
			d.con.printf("xmpp", "alice sees presence from %s: %s", from, describePresence(s))
			d.aliceApproves(s)
			select {
			case d.alicePres <- s:
			default:
			}
		case "iq":
			if d.rosterPush(s) {
				select {
				case d.alicePres <- s:
				default:
				}
				continue
			}
			if t := s.Attr("type"); t == "get" || t == "set" {
				_ = d.alice.Send(fmt.Sprintf(`<iq type='error' to='%s' id='%s'><error type='cancel'><service-unavailable xmlns='%s'/></error></iq>`,
					xmlEscape(from), xmlEscape(s.Attr("id")), testbed.NSStanzas))
			}
		}
	}
}

// aliceAnswers replies to a message, except during the script, to bob (who
// answers her: they would talk forever) and to herself.
func (d *demo) aliceAnswers(s *testbed.Stanza) {
	d.echoMu.Lock()
	on := d.echo
	d.echoMu.Unlock()
	from := s.Attr("from")
	bare, _, _ := strings.Cut(from, "/")
	if !on || s.Body() == "" || bare == "bob@"+component || from == d.alice.JID {
		return
	}
	typ := s.Attr("type")
	if typ == "" {
		typ = "normal"
	}
	_ = d.alice.Send(fmt.Sprintf(`<message to='%s' type='%s' id='echo-%d'><body>%s</body></message>`,
		xmlEscape(from), xmlEscape(typ), time.Now().UnixNano(), xmlEscape("alice (the demo's XMPP user) got your message: "+s.Body())))
}

// aliceApproves grants subscription requests, except during the script
// (which approves bob's itself).
func (d *demo) aliceApproves(s *testbed.Stanza) {
	d.echoMu.Lock()
	on := d.echo
	d.echoMu.Unlock()
	if !on || s.Attr("type") != "subscribe" {
		return
	}
	from, _, _ := strings.Cut(s.Attr("from"), "/")
	d.con.printf("xmpp", "XMPP alice approves: <presence to='%s' type='subscribed'/>", from)
	_ = d.alice.Send(fmt.Sprintf(`<presence to='%s' type='subscribed'/>`, xmlEscape(from)))
}

// flushLogs gives stox a moment to log what just happened and prints it, so
// that its lines come out next to the step they belong to.
func (d *demo) flushLogs() {
	time.Sleep(100 * time.Millisecond)
	for _, t := range d.tails {
		t.flush()
	}
}

// script runs the scripted exchange and checks every step.
func (d *demo) script(ctx context.Context) error {
	steps := []struct {
		name string
		run  func(context.Context) (string, error)
	}{
		{"XMPP -> SIP: alice@" + xmppDomain + " sends a chat message to bob@" + component, d.stepXMPPToSIP},
		{"SIP -> XMPP: sip:bob@" + component + " sends a MESSAGE to sip:alice@" + xmppDomain, d.stepSIPToXMPP},
		{"error, SIP -> XMPP: alice writes to nobody@" + component + "; the SIP side answers 404", d.stepXMPPError},
		{"error, at stox: bob sends a MESSAGE to sip:alice@example.net, a domain stox does not serve", d.stepSIPError},
		{"presence, XMPP watches SIP: alice subscribes to bob@" + component + "; the demo agent is bob's presence agent", d.stepXMPPWatchesSIP},
		{"presence, SIP watches XMPP: SIP bob SUBSCRIBEs to sip:alice@" + xmppDomain + " through stox; alice approves", d.stepSIPWatchesXMPP},
		{"chat, SIP starts: bob INVITEs sip:alice@" + xmppDomain + " with an MSRP offer; they chat over MSRP; her <gone/> hangs up", d.stepSIPStartsChat},
		{"chat, XMPP starts: alice writes to bob@" + component + ", now known to take MSRP; stox INVITEs him; he hangs up", d.stepXMPPStartsChat},
	}
	for i, st := range steps {
		d.say("")
		d.say("step %d/%d: %s", i+1, len(steps), st.name)
		sctx, cancel := context.WithTimeout(ctx, stepTimeout)
		ok, err := st.run(sctx)
		cancel()
		d.flushLogs()
		if err != nil {
			d.say("step %d FAILED: %v", i+1, err)
			return fmt.Errorf("step %d (%s): %w", i+1, st.name, err)
		}
		d.say("ok: %s", ok)
	}
	d.say("")
	return nil
}

func (d *demo) stepXMPPToSIP(ctx context.Context) (string, error) {
	const body = "Hello from XMPP"
	if err := d.alice.Send(`<message to='bob@` + component + `' id='demo-1' type='chat'><body>` + body + `</body></message>`); err != nil {
		return "", err
	}
	for {
		select {
		case m := <-d.agent.bobGot:
			if m.body != body {
				continue
			}
			if !strings.HasPrefix(m.from, "sip:alice@"+xmppDomain) {
				return "", fmt.Errorf("bob got it from %s, want sip:alice@%s", m.from, xmppDomain)
			}
			return "the SIP user got alice's message", nil
		case <-ctx.Done():
			return "", fmt.Errorf("bob never got %q: %w", body, ctx.Err())
		}
	}
}

func (d *demo) stepSIPToXMPP(ctx context.Context) (string, error) {
	const body = "Hello from SIP"
	res, err := d.agent.send(ctx, "sip:bob@"+component, "sip:alice@"+xmppDomain, body)
	if err != nil {
		return "", fmt.Errorf("MESSAGE to stox: %w", err)
	}
	d.con.printf("sip", "SIP bob -> sip:alice@%s: stox answered %d %s", xmppDomain, res.StatusCode, res.Reason)
	if res.StatusCode != 202 {
		return "", fmt.Errorf("stox answered %d %s, want 202", res.StatusCode, res.Reason)
	}
	s, err := d.awaitAlice(ctx, func(s *testbed.Stanza) bool { return s.Body() == body })
	if err != nil {
		return "", fmt.Errorf("alice never got %q: %w", body, err)
	}
	if from := s.Attr("from"); from != "bob@"+component {
		return "", fmt.Errorf("alice got it from %q, want bob@%s", from, component)
	}
	return "the XMPP user got bob's message", nil
}

func (d *demo) stepXMPPError(ctx context.Context) (string, error) {
	if err := d.alice.Send(`<message to='nobody@` + component + `' id='demo-2' type='chat'><body>Is anybody there?</body></message>`); err != nil {
		return "", err
	}
	s, err := d.awaitAlice(ctx, func(s *testbed.Stanza) bool { return s.Attr("type") == "error" && s.Attr("id") == "demo-2" })
	if err != nil {
		return "", fmt.Errorf("no error came back: %w", err)
	}
	if cond := s.ErrorCondition(); cond != "item-not-found" {
		return "", fmt.Errorf("error condition %q, want item-not-found: %s", cond, s.Raw)
	}
	return "SIP 404 came back to alice as <item-not-found/>, with her message's id", nil
}

func (d *demo) stepSIPError(ctx context.Context) (string, error) {
	res, err := d.agent.send(ctx, "sip:bob@"+component, "sip:alice@example.net", "Hello, open relay?")
	if err != nil {
		return "", fmt.Errorf("MESSAGE to stox: %w", err)
	}
	d.con.printf("sip", "SIP bob -> sip:alice@example.net: stox answered %d %s", res.StatusCode, res.Reason)
	if res.StatusCode != 404 {
		return "", fmt.Errorf("stox answered %d %s, want 404", res.StatusCode, res.Reason)
	}
	return "stox is not an open relay", nil
}

func (d *demo) awaitAlice(ctx context.Context, match func(*testbed.Stanza) bool) (*testbed.Stanza, error) {
	for {
		select {
		case s := <-d.aliceGot:
			if match(s) {
				return s, nil
			}
		case <-d.readDone:
			return nil, errors.New("alice's stream ended")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// interactive makes alice and bob answer what they get (and alice approve
// subscription requests) from now on, and brings bob online again.
func (d *demo) interactive() {
	d.echoMu.Lock()
	d.echo = true
	d.echoMu.Unlock()
	d.agent.echo.Store(true)
	d.agent.setBob(true, "online (the demo's SIP user)")
}

func (d *demo) banner() {
	c2sHost, c2sPort, _ := net.SplitHostPort(d.prosody.C2SAddr)
	lines := []string{
		"================================================================================",
		"The scripted exchange worked. Everything keeps running, on 127.0.0.1 only:",
		"",
		fmt.Sprintf("  Prosody   XMPP domain %s, c2s %s (plain TCP, no TLS), component port %s", xmppDomain, d.prosody.C2SAddr, d.prosody.ComponentAddr),
		fmt.Sprintf("  stox      component %s, SIP on udp+tcp 127.0.0.1:%d, MSRP on tcp 127.0.0.1:%d", component, d.sipPort, d.msrpPort),
		fmt.Sprintf("  SIP agent udp+tcp %s: stox's outbound proxy, the SIP user bob (his MSRP endpoint on", d.agent.addr),
		fmt.Sprintf("            tcp %s) and his presence agent, a registrar for your phone", d.agent.chat.lis.Addr()),
		"",
		"Connect your own XMPP client:",
		fmt.Sprintf("  account charlie@%s, password charlie (or alice@%s / alice, the scripted user)", xmppDomain, xmppDomain),
		fmt.Sprintf("  server/host %s, port %s, set by hand (%s does not resolve to it)", c2sHost, c2sPort, xmppDomain),
		"  no TLS: allow plain-text authentication / an unencrypted connection in the client",
		fmt.Sprintf("  more accounts: prosodyctl --config %s register USER %s PASSWORD",
			filepath.Join(d.prosody.Dir, "prosody.cfg.lua"), xmppDomain),
		"  then write to:",
		fmt.Sprintf("    bob@%s                the demo's SIP user bob: printed here, and he answers", component),
		fmt.Sprintf("    bob\\40other.net@%s    the SIP user sip:bob@other.net (also the demo's bob)", component),
		fmt.Sprintf("    nobody@%s             any other SIP user: 404, an <item-not-found/> error comes back", component),
		fmt.Sprintf("    alice@%s                  the scripted XMPP user: she answers", xmppDomain),
		"",
		"Connect your own SIP phone (on this machine):",
		fmt.Sprintf("  register as USER@%s (any USER, any password) with proxy/registrar %s, UDP or TCP;",
			component, d.agent.addr),
		fmt.Sprintf("  XMPP users then reach it as USER@%s, and its MESSAGEs to sip:alice@%s", component, xmppDomain),
		"  go through the agent to stox (page mode only: MESSAGE, no calls; the agent does not relay presence).",
		fmt.Sprintf("  Or send MESSAGE sip:alice@%s straight to stox at 127.0.0.1:%d (udp or tcp); answers", xmppDomain, d.sipPort),
		"  from XMPP to an unregistered SIP user then end at the demo agent (printed here).",
		"",
		fmt.Sprintf("Presence (RFC 8048; stox keeps subscriptions in %s, removed at the end):", filepath.Join(d.storeDir, "stox.db")),
		fmt.Sprintf("  subscribe to bob@%s: he is online; the demo's SIP agent is his presence agent", component),
		fmt.Sprintf("  subscribe to alice@%s: she approves every request (after the script)", xmppDomain),
		"  SIP bob watches alice: log in as alice yourself and change your status; the NOTIFYs that",
		"  bob gets are printed here",
		"",
		`MSRP chat sessions (RFC 7573; chat.mode = "auto": MSRP only to SIP users known to take it):`,
		fmt.Sprintf("  from your XMPP client, write to bob@%s: he took MSRP in the script, so stox INVITEs him", component),
		"  and your chat runs over MSRP (printed here, bob answers); it ends when your client sends <gone/>",
		"  (closing the chat, in some clients) or after 5 min idle. Every other SIP user gets page mode.",
		fmt.Sprintf("  from a SIP client that does MSRP (Blink, for example): INVITE sip:alice@%s straight to stox at", xmppDomain),
		fmt.Sprintf("  127.0.0.1:%d (udp or tcp); stox accepts for alice and she answers (the agent relays no INVITE)", d.sipPort),
		"",
		"Ctrl-C stops everything this demo started.",
		"================================================================================",
	}
	d.say("%s", strings.Join(lines, "\n"))
}

// close stops everything start started, in reverse order; it returns the
// first failure of a stop (stox not exiting cleanly, for example).
func (d *demo) close() error {
	var errs []error
	if d.readStop != nil {
		d.readStop()
		<-d.readDone
	}
	if d.agent != nil && d.stox != nil && !d.stox.Exited() {
		d.endWatches()
	}
	if d.alice != nil {
		_ = d.alice.Close()
	}
	if d.stox != nil {
		if err := d.stox.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stox did not stop cleanly: %w", err))
		}
	}
	if d.prosody != nil {
		if err := d.prosody.Close(); err != nil {
			errs = append(errs, fmt.Errorf("prosody: %w", err))
		}
	}
	for _, t := range d.tails {
		t.close()
	}
	d.agent.close()
	if d.buildDir != "" {
		_ = os.RemoveAll(d.buildDir)
	}
	if d.storeDir != "" {
		_ = os.RemoveAll(d.storeDir)
	}
	if len(errs) == 0 {
		d.say("stopped everything it started")
	}
	d.con.close()
	return errors.Join(errs...)
}

func typeOr(t, def string) string {
	if t == "" {
		return def
	}
	return t
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
