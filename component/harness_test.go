package component

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/sipside"
)

// The in-memory scenario harness (STYLE.md): stanzas in, stanzas out and SIP
// requests recorded, with deterministic ids and no network.

type sipCall struct {
	msg   *sipside.OutgoingMessage
	reply chan sipReply
}

type sipReply struct {
	res sipside.Result
	err error
}

// fakeSIP records every MESSAGE; the test answers each one.
type fakeSIP struct {
	calls chan *sipCall
	// auto, when set, answers at once instead of handing the call to the test.
	auto func(*sipside.OutgoingMessage) (sipside.Result, error)

	mu       sync.Mutex
	inFlight map[string]int // per Request-URI
	maxSeen  int
	noStart  bool // StartMessage declines
}

func (f *fakeSIP) SendMessage(ctx context.Context, m *sipside.OutgoingMessage) (sipside.Result, error) {
	if m.Timeout > 0 { // as sipside bounds the send
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.Timeout)
		defer cancel()
	}
	f.mu.Lock()
	f.inFlight[m.RequestURI]++
	f.maxSeen = max(f.maxSeen, f.inFlight[m.RequestURI])
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight[m.RequestURI]--
		f.mu.Unlock()
	}()
	if f.auto != nil {
		f.calls <- &sipCall{msg: m}
		return f.auto(m)
	}
	c := &sipCall{msg: m, reply: make(chan sipReply, 1)}
	select {
	case f.calls <- c:
	case <-ctx.Done():
		return sipside.Result{}, ctx.Err()
	}
	select {
	case r := <-c.reply:
		return r.res, r.err
	case <-ctx.Done():
		return sipside.Result{}, ctx.Err()
	}
}

// StartMessage makes the fake a sipStarter, as sipside.UA is: the send
// runs on a goroutine of the fake and done gets its outcome. With noStart
// set it declines, and sessions fall back to SendMessage on their senders.
func (f *fakeSIP) StartMessage(ctx context.Context, m *sipside.OutgoingMessage, done func(sipside.Result, error)) bool {
	f.mu.Lock()
	no := f.noStart
	f.mu.Unlock()
	if no {
		return false
	}
	go func() { done(f.SendMessage(ctx, m)) }()
	return true
}

// sendModes runs a test with sends started by StartMessage (the fast path)
// and with sends on the session's senders (SendMessage).
func sendModes(t *testing.T, test func(t *testing.T, noStart bool)) {
	for _, noStart := range []bool{false, true} {
		name := "StartMessage"
		if noStart {
			name = "SendMessage"
		}
		t.Run(name, func(t *testing.T) { test(t, noStart) })
	}
}

type harness struct {
	t   *testing.T
	g   *Gateway
	sip *fakeSIP
	out chan *Element

	mu      sync.Mutex
	failing bool // the fake stream refuses writes
}

type harnessOpt func(*Config)

func newHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	addr, err := mapping.NewAddressing(mapping.AddressingConfig{
		Component:      "sip.example.com",
		ServedDomains:  []string{"example.com"},
		ForeignDomains: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Component:   "sip.example.com",
		Server:      "127.0.0.1:1",
		Secret:      "s",
		Addressing:  addr,
		SendTimeout: 5 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h := &harness{t: t, sip: &fakeSIP{calls: make(chan *sipCall, 1000), inFlight: map[string]int{}}, out: make(chan *Element, 1000)}
	n := 0
	var idMu sync.Mutex
	ids := func() string {
		idMu.Lock()
		defer idMu.Unlock()
		n++
		return fmt.Sprintf("id%d", n)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g, err := New(cfg, h.sip, WithIDs(ids), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	h.g = g
	h.connect()
	t.Cleanup(func() { g.Close(time.Second) })
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// connect attaches the fake stream (as after a handshake).
func (h *harness) connect() int {
	n, err := h.g.out.attach(h.write)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) write(b []byte) error {
	h.mu.Lock()
	failing := h.failing
	h.mu.Unlock()
	if failing {
		return ErrNotConnected
	}
	e, err := parseStanza(string(b))
	if err != nil {
		h.t.Errorf("gateway wrote malformed XML %q: %v", b, err)
		return nil
	}
	h.out <- e
	return nil
}

// in feeds one stanza as the server would send it.
func (h *harness) in(raw string) {
	h.t.Helper()
	e, err := parseStanza(raw)
	if err != nil {
		h.t.Fatalf("bad test stanza: %v", err)
	}
	h.g.dispatch(e)
}

// next returns the next stanza the gateway sent to XMPP.
func (h *harness) next() *Element {
	h.t.Helper()
	select {
	case e := <-h.out:
		return e
	case <-time.After(5 * time.Second):
		h.t.Fatal("no stanza from the gateway")
		return nil
	}
}

// none asserts that nothing more is sent within a short while.
func (h *harness) none() {
	h.t.Helper()
	select {
	case e := <-h.out:
		h.t.Fatalf("unexpected stanza %s", e)
	case <-time.After(50 * time.Millisecond):
	}
}

// call returns the next SIP MESSAGE the gateway sent.
func (h *harness) call() *sipCall {
	h.t.Helper()
	select {
	case c := <-h.sip.calls:
		return c
	case <-time.After(5 * time.Second):
		h.t.Fatal("no SIP MESSAGE from the gateway")
		return nil
	}
}

func (h *harness) noCall() {
	h.t.Helper()
	select {
	case c := <-h.sip.calls:
		h.t.Fatalf("unexpected SIP MESSAGE %+v", c.msg)
	case <-time.After(50 * time.Millisecond):
	}
}

// sipIn hands a SIP MESSAGE to the gateway as sipside would.
func (h *harness) sipIn(m *sipside.IncomingMessage) sipside.Reply {
	if !m.Source.IsValid() {
		m.Source = netip.MustParseAddrPort("127.0.0.1:5060")
	}
	if m.Transport == "" {
		m.Transport = "udp"
	}
	return h.g.HandleSIPMessage(context.Background(), m)
}

// errorCondition returns the error type and condition of an error stanza.
func errorCondition(e *Element) (typ, cond string) {
	er := e.Child(nsComponent, "error")
	if er == nil {
		return "", ""
	}
	for _, c := range er.Children {
		if c.Space == nsStanzas && c.Local != "text" {
			return er.AttrValue("type"), c.Local
		}
	}
	return er.AttrValue("type"), ""
}

// parseStanza parses a stanza as it appears inside the component stream,
// where the default namespace is jabber:component:accept.
func parseStanza(raw string) (*Element, error) {
	w, err := ParseElement("<stream xmlns='" + nsComponent + "'>" + raw + "</stream>")
	if err != nil {
		return nil, err
	}
	if len(w.Children) != 1 {
		return nil, fmt.Errorf("want one stanza, got %d", len(w.Children))
	}
	return w.Children[0], nil
}
