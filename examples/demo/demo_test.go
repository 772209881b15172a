//go:build unix

package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/stox-gw/stox/integration/testbed"
)

// The demo is part of `make test`: what `make demo` shows must keep working.

// logWriter sends the demo's console to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(line)
	}
	return len(p), nil
}

// recorder is a logWriter that also keeps what the console printed.
type recorder struct {
	logWriter
	mu  sync.Mutex
	out strings.Builder
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.out.Write(p)
	r.mu.Unlock()
	return r.logWriter.Write(p)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// TestDemoOnce is `go run ./examples/demo -once`: every scripted step must
// work and everything must stop cleanly (stox is the -race build here, so a
// data race fails the test). Each step checks its own outcome; the test
// checks that the steps ran, the MSRP chat steps included.
func TestDemoOnce(t *testing.T) {
	testbed.Need(t, "prosody", "prosodyctl")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin, err := testbed.BuildStox(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{logWriter: logWriter{t}}
	if err := runDemo(ctx, options{once: true, randomPorts: true, stoxBin: bin}, rec); err != nil {
		t.Fatal(err)
	}
	out := rec.String()
	for _, want := range []string{
		"step 7/8: chat, SIP starts",
		`XMPP alice got: "hello over MSRP" (from bob@` + component + ", type chat, thread bob-",
		"SIP bob got over MSRP: isComposing, state active",
		`SIP bob got over MSRP: "hi bob, alice here: your MSRP chat reached me"`,
		"SIP bob got BYE from stox",
		"step 8/8: chat, XMPP starts",
		"SIP bob@" + component + " got INVITE from sip:alice@" + xmppDomain + " (Call-ID demo-chat-2)",
		"stox connected to bob's MSRP path msrp://127.0.0.1:",
		`SIP bob got over MSRP: "bob, are you there? (alice starts this chat)"`,
		"XMPP alice got: <composing/> (from bob@" + component,
		`XMPP alice got: "yes, here over MSRP too" (from bob@` + component + ", type chat, thread demo-chat-2",
		"XMPP alice got: <gone/> (from bob@" + component + ", type chat, thread demo-chat-2)",
		"all steps worked",
		"stopped everything it started",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the console never printed %q", want)
		}
	}
	if n := strings.Count(out, "demo | ok: "); n != 8 {
		t.Errorf("%d steps reported ok, want 8", n)
	}
}

// TestDemoChat checks what the banner promises about MSRP chats once the
// script is over: an XMPP client writing to bob gets an MSRP session (bob
// took MSRP in the script, chat.mode is auto), bob answers over it, the
// client's <gone/> ends it with a BYE; a session still open when the demo
// stops is hung up cleanly.
func TestDemoChat(t *testing.T) {
	testbed.Need(t, "prosody", "prosodyctl")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin, err := testbed.BuildStox(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	d := newDemo(options{randomPorts: true, stoxBin: bin}, logWriter{t})
	defer func() {
		if err := d.close(); err != nil {
			t.Error(err)
		}
	}()
	if err := d.start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.script(ctx); err != nil {
		t.Fatal(err)
	}
	d.banner()
	d.interactive()

	charlie, err := testbed.Dial(ctx, d.prosody.C2SAddr, "charlie@"+xmppDomain, accounts["charlie"], "client", testbed.WithPresence())
	if err != nil {
		t.Fatal(err)
	}
	defer charlie.Close()
	sctx, scancel := context.WithTimeout(ctx, 2*stepTimeout)
	defer scancel()
	bob := "bob@" + component

	for i, end := range []bool{true, false} {
		text := fmt.Sprintf("hi bob, charlie here (%d)", i+1)
		if err := charlie.Send(`<message type='chat' to='` + bob + `'><body>` + text + `</body></message>`); err != nil {
			t.Fatal(err)
		}
		up, err := d.awaitChat(sctx, "charlie's INVITE", func(ev chatEvent) bool { return ev.kind == evUp })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(up.peer, "sip:charlie@"+xmppDomain) {
			t.Errorf("INVITE from %s", up.peer)
		}
		echo, err := charlie.Expect(sctx, func(s *testbed.Stanza) bool {
			return s.Name() == "message" && strings.HasSuffix(s.Body(), "over MSRP: "+text)
		})
		if err != nil {
			t.Fatalf("bob's answer never came: %v (skipped %v)", err, charlie.Skipped())
		}
		if echo.Attr("from") != bob || echo.Text(testbed.NSClient, "thread") != up.callID {
			t.Errorf("bob's answer: %s", echo.Raw)
		}
		if !end {
			break // left open: stox hangs up when the demo stops
		}
		if err := charlie.Send(`<message type='chat' to='` + bob + `'><gone xmlns='` + nsChatStates + `'/></message>`); err != nil {
			t.Fatal(err)
		}
		if _, err := d.awaitChat(sctx, "the BYE after charlie's <gone/>", func(ev chatEvent) bool {
			return ev.kind == evBye && ev.callID == up.callID
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFlags(t *testing.T) {
	var out, errs strings.Builder
	if code := run([]string{"-stox-log", "loud"}, &out, &errs); code != 2 || !strings.Contains(errs.String(), "-stox-log") {
		t.Errorf("bad -stox-log: exit %d, %q", code, errs.String())
	}
	if code := run([]string{"extra"}, &out, &errs); code != 2 {
		t.Errorf("extra argument: exit %d", code)
	}
}

// TestDemoPhone checks what the banner promises a SIP phone: it registers
// with the demo's SIP agent, XMPP users reach it, its MESSAGEs reach them
// through the agent, and the scripted alice answers it.
func TestDemoPhone(t *testing.T) {
	testbed.Need(t, "prosody", "prosodyctl")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin, err := testbed.BuildStox(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	d := newDemo(options{randomPorts: true, stoxBin: bin}, logWriter{t})
	defer func() {
		if err := d.close(); err != nil {
			t.Error(err)
		}
	}()
	if err := d.start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.script(ctx); err != nil {
		t.Fatal(err)
	}
	d.banner()
	d.interactive()

	ph := newPhone(t, d.agent.addr)
	if res := ph.do(ctx, t, sip.REGISTER, "sip:"+component, ""); res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}

	// XMPP -> phone, through stox and the agent.
	if err := d.alice.Send(`<message to='carol@` + component + `' id='p1' type='chat'><body>Hi carol</body></message>`); err != nil {
		t.Fatal(err)
	}
	if body := ph.next(ctx, t); body != "Hi carol" {
		t.Fatalf("the phone got %q", body)
	}

	// phone -> XMPP through the agent; alice answers, and the answer
	// reaches the phone.
	if res := ph.do(ctx, t, sip.MESSAGE, "sip:alice@"+xmppDomain, "Hi alice"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE to alice: %d %s", res.StatusCode, res.Reason)
	}
	sctx, scancel := context.WithTimeout(ctx, stepTimeout)
	defer scancel()
	s, err := d.awaitAlice(sctx, func(s *testbed.Stanza) bool { return s.Body() == "Hi alice" })
	if err != nil {
		t.Fatal(err)
	}
	if from := s.Attr("from"); from != "carol@"+component {
		t.Errorf("alice got it from %q", from)
	}
	if body := ph.next(ctx, t); !strings.HasSuffix(body, "got your message: Hi alice") {
		t.Errorf("alice's answer: %q", body)
	}

	// Unregistered: 404 again, as an error stanza.
	if res := ph.do(ctx, t, sip.REGISTER, "sip:"+component, "unregister"); res.StatusCode != 200 {
		t.Fatalf("REGISTER expires=0: %d", res.StatusCode)
	}
	if err := d.alice.Send(`<message to='carol@` + component + `' id='p2' type='chat'><body>Gone?</body></message>`); err != nil {
		t.Fatal(err)
	}
	s, err = d.awaitAlice(sctx, func(s *testbed.Stanza) bool { return s.Attr("id") == "p2" })
	if err != nil {
		t.Fatal(err)
	}
	if s.ErrorCondition() != "item-not-found" {
		t.Errorf("after unregistering: %s", s.Raw)
	}
}

// TestDemoPresence checks what the banner promises about presence once the
// script is over: an XMPP client that subscribes to bob sees him online, one
// that subscribes to alice is approved and sees her, and a status change of
// alice reaches SIP bob, who still watches her, as a NOTIFY.
func TestDemoPresence(t *testing.T) {
	testbed.Need(t, "prosody", "prosodyctl")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin, err := testbed.BuildStox(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	d := newDemo(options{randomPorts: true, stoxBin: bin}, logWriter{t})
	defer func() {
		if err := d.close(); err != nil {
			t.Error(err)
		}
	}()
	if err := d.start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.script(ctx); err != nil {
		t.Fatal(err)
	}
	d.banner()
	d.interactive()

	charlie, err := testbed.Dial(ctx, d.prosody.C2SAddr, "charlie@"+xmppDomain, accounts["charlie"], "client", testbed.WithPresence())
	if err != nil {
		t.Fatal(err)
	}
	defer charlie.Close()
	sctx, scancel := context.WithTimeout(ctx, stepTimeout)
	defer scancel()

	bob := "bob@" + component
	if err := charlie.Send(`<presence to='` + bob + `' type='subscribe'/>`); err != nil {
		t.Fatal(err)
	}
	if _, err := charlie.Expect(sctx, presenceFrom(bob+"/"+bobDevice, "", "online (the demo's SIP user)")); err != nil {
		t.Fatalf("charlie never saw bob online: %v (skipped %v)", err, charlie.Skipped())
	}

	alice := "alice@" + xmppDomain
	if err := charlie.Send(`<presence to='` + alice + `' type='subscribe'/>`); err != nil {
		t.Fatal(err)
	}
	if _, err := charlie.Expect(sctx, presenceFrom(alice+"/"+aliceResource, "", "")); err != nil {
		t.Fatalf("charlie never saw alice: %v (skipped %v)", err, charlie.Skipped())
	}

	if err := d.alice.Send(`<presence><show>dnd</show><status>in a meeting</status></presence>`); err != nil {
		t.Fatal(err)
	}
	n, err := d.awaitNotify(sctx, "alice in a meeting", func(n watchNotify) bool { return hasBasic(n, "open", "in a meeting") })
	if err != nil {
		t.Fatal(err)
	}
	if n.tuples[0].Show != "dnd" {
		t.Errorf("NOTIFY tuple %+v, want show dnd", n.tuples[0])
	}
}

func TestPIDF(t *testing.T) {
	body := bobPIDF("pres:bob@"+component, "sip:bob@127.0.0.1:5070", bobState{open: true, note: "a <b> & c"})
	ts, err := parsePIDF(body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if len(ts) != 1 || ts[0].ID != bobTupleID || ts[0].Basic != "open" || ts[0].Note != "a <b> & c" {
		t.Errorf("parsed %+v from\n%s", ts, body)
	}
	if _, err := parsePIDF([]byte(`<presence xmlns="urn:example:other"/>`)); err == nil {
		t.Error("a document outside the PIDF namespace was read")
	}
}

// phone is a SIP phone for carol@sip.example.com, on UDP.
type phone struct {
	ua    *sipgo.UserAgent
	cli   *sipgo.Client
	conn  net.PacketConn
	port  int
	proxy string
	got   chan string
}

func newPhone(t *testing.T, proxy string) *phone {
	t.Helper()
	port, err := testbed.ReservePort(testbed.UDP)
	if err != nil {
		t.Fatal(err)
	}
	p := &phone{port: port, proxy: proxy, got: make(chan string, 8)}
	p.conn, err = net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("carol"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(p.ua)
	if err != nil {
		t.Fatal(err)
	}
	p.cli, err = sipgo.NewClient(p.ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		p.got <- string(req.Body())
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUDP(p.conn) }()
	t.Cleanup(func() {
		p.conn.Close()
		p.ua.Close()
		<-done
	})
	return p
}

func (p *phone) do(ctx context.Context, t *testing.T, method sip.RequestMethod, ruri, body string) *sip.Response {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(ruri, &u); err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(method, u)
	aor := sip.Uri{Scheme: "sip", User: "carol", Host: component}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	if method == sip.REGISTER {
		req.AppendHeader(&sip.ToHeader{Address: aor})
		req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "carol", Host: "127.0.0.1", Port: p.port}})
		exp := sip.ExpiresHeader(60)
		if body == "unregister" {
			exp = 0
		}
		req.AppendHeader(&exp)
	} else {
		ct := sip.ContentTypeHeader("text/plain")
		req.AppendHeader(&ct)
		req.SetBody([]byte(body))
	}
	req.SetTransport("UDP")
	req.SetDestination(p.proxy)
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, ruri, err)
	}
	return res
}

func (p *phone) next(ctx context.Context, t *testing.T) string {
	t.Helper()
	select {
	case b := <-p.got:
		return b
	case <-time.After(stepTimeout):
		t.Fatal("the phone got no MESSAGE")
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return ""
}
