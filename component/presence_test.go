package component

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stox-gw/stox/component/store"
	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/sipside"
)

// Fast, in-memory tests of the presence engine (CHECKLIST section 4): the
// scenario harness of harness_test.go with a fake SIP side that records
// every SUBSCRIBE and NOTIFY and answers each one as the test says. The
// same flows against real Kamailio and Prosody are in
// integration/presence_test.go.

// Addresses of the scenarios (the harness serves example.com under
// sip.example.com with foreign SIP domains allowed).
const (
	julietJID   = "juliet@example.com"
	julietURI   = "sip:juliet@example.com"
	romeoJID    = `romeo\40example.net@sip.example.com`
	romeoURI    = "sip:romeo@example.net"
	benvolioJID = `benvolio\40example.org@sip.example.com`
	benvolioURI = "sip:benvolio@example.org"
)

// --- fake SIP side ---

// dlgCall is one SUBSCRIBE or NOTIFY the engine sent.
type dlgCall struct {
	d     sipside.Dialog
	req   sipside.DialogRequest
	reply chan dlgReply // nil when answered automatically
}

type dlgReply struct {
	res sipside.DialogResult
	err error
}

// result is the final response a UA would return for c with code: the
// dialog with LocalCSeq advanced; a 2xx to an initial SUBSCRIBE also
// establishes it (RemoteTag, RemoteTarget), and a 2xx to a SUBSCRIBE echoes
// the Expires asked for.
func (c *dlgCall) result(code int) sipside.DialogResult {
	d := c.d
	d.LocalCSeq++
	res := sipside.DialogResult{Result: sipside.Result{Code: code}, Dialog: d, Expires: -1}
	if code >= 200 && code < 300 {
		if !d.Established() {
			d.RemoteTag = "nt-" + d.CallID[:8]
			d.RemoteTarget = strings.Replace(d.RemoteURI, "@", "@192.0.2.7;x=", 1)
		}
		res.Dialog = d
		if c.req.Method == "SUBSCRIBE" {
			res.Expires = c.req.Expires
		}
	}
	return res
}

// answer replies code to c.
func (c *dlgCall) answer(code int) sipside.DialogResult {
	res := c.result(code)
	c.answerWith(res, nil)
	return res
}

func (c *dlgCall) answerWith(res sipside.DialogResult, err error) {
	if c.reply == nil {
		panic("answering an automatically answered request")
	}
	c.reply <- dlgReply{res, err}
}

func (c *dlgCall) String() string {
	return fmt.Sprintf("%s call-id=%s cseq=%d state=%q expires=%d body=%q", c.req.Method, c.d.CallID, c.d.LocalCSeq+1, c.req.SubscriptionState, c.req.Expires, c.req.Body)
}

// fakeDialogSIP is the SIP side of the presence tests: SendMessage of
// fakeSIP (so the gateway is a SIPSender) and SendInDialog (so presence is
// on). Requests go to calls and wait for the test's answer unless auto
// answers them; quiet ones are only counted.
type fakeDialogSIP struct {
	*fakeSIP
	calls chan *dlgCall
	sent  atomic.Int64
	// answered, when set, gets a token for every request answered
	// automatically (benchmarks wait on it).
	answered chan struct{}

	mu    sync.Mutex
	auto  func(*dlgCall) (sipside.DialogResult, bool)
	quiet bool
}

func newFakeDialogSIP() *fakeDialogSIP {
	return &fakeDialogSIP{
		fakeSIP: &fakeSIP{calls: make(chan *sipCall, 1000), inFlight: map[string]int{}},
		calls:   make(chan *dlgCall, 10000),
	}
}

func (f *fakeDialogSIP) setAuto(quiet bool, auto func(*dlgCall) (sipside.DialogResult, bool)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auto, f.quiet = auto, quiet
}

func (f *fakeDialogSIP) SendInDialog(ctx context.Context, d sipside.Dialog, r sipside.DialogRequest) (sipside.DialogResult, error) {
	f.sent.Add(1)
	c := &dlgCall{d: d, req: r}
	none := sipside.DialogResult{Dialog: d, Expires: -1}
	f.mu.Lock()
	auto, quiet := f.auto, f.quiet
	f.mu.Unlock()
	if auto != nil {
		if res, ok := auto(c); ok {
			if !quiet {
				select {
				case f.calls <- c:
				case <-ctx.Done():
					return none, ctx.Err()
				}
			}
			if f.answered != nil {
				f.answered <- struct{}{}
			}
			return res, nil
		}
	}
	c.reply = make(chan dlgReply, 1)
	select {
	case f.calls <- c:
	case <-ctx.Done():
		return none, ctx.Err()
	}
	select {
	case r := <-c.reply:
		return r.res, r.err
	case <-ctx.Done():
		return none, ctx.Err()
	}
}

// answerAll answers every request code at once.
func answerAll(code int) func(*dlgCall) (sipside.DialogResult, bool) {
	return func(c *dlgCall) (sipside.DialogResult, bool) { return c.result(code), true }
}

var _ DialogSender = (*fakeDialogSIP)(nil)

// --- harness ---

// presHarness is the scenario harness with presence on.
type presHarness struct {
	*harness
	ds *fakeDialogSIP
}

// newPresenceGateway returns a started gateway with presence on, writing
// stanzas to write.
func newPresenceGateway(tb testing.TB, ds *fakeDialogSIP, pc PresenceConfig, ids func() string, write func([]byte) error) *Gateway {
	tb.Helper()
	addr, err := mapping.NewAddressing(mapping.AddressingConfig{
		Component:      "sip.example.com",
		ServedDomains:  []string{"example.com"},
		ForeignDomains: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if t, ok := tb.(*testing.T); ok && testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts := []Option{WithLogger(logger)}
	if ids != nil {
		opts = append(opts, WithIDs(ids))
	}
	g, err := New(Config{
		Component:   "sip.example.com",
		Server:      "127.0.0.1:1",
		Secret:      "s",
		Addressing:  addr,
		SendTimeout: 5 * time.Second,
		Presence:    pc,
	}, ds, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	if g.presence == nil {
		tb.Fatal("presence is off although the SIP side is a DialogSender")
	}
	if _, err := g.out.attach(write); err != nil {
		tb.Fatal(err)
	}
	return g
}

// fastPresence is the configuration of most tests: short enough timers for
// the tests to see them fire.
func fastPresence() PresenceConfig {
	return PresenceConfig{NotifyInterval: 50 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}
}

func newPresenceHarness(t *testing.T, pc PresenceConfig) *presHarness {
	t.Helper()
	ds := newFakeDialogSIP()
	h := &presHarness{harness: &harness{t: t, sip: ds.fakeSIP, out: make(chan *Element, 1000)}, ds: ds}
	var n atomic.Int64
	ids := func() string { return fmt.Sprintf("id%d", n.Add(1)) }
	h.g = newPresenceGateway(t, ds, pc, ids, h.write)
	t.Cleanup(func() { h.g.Close(time.Second) })
	return h
}

// checkPresenceLeaks fails the test if goroutines of the presence engine
// (its loop, SIP transactions) outlive the gateway's Close (STYLE.md: every
// goroutine has an owner that stops and waits for it). Call it first, so
// that its cleanup runs last.
func checkPresenceLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			var leaked []string
			for _, g := range strings.Split(string(buf), "\n\n") {
				if strings.Contains(g, "component.(*presenceEngine)") || strings.Contains(g, "component.(*fakeDialogSIP)") {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d presence goroutines leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// onLoop runs f on the engine's loop and waits for it: a barrier after
// which everything queued before has been handled, and the way to look at
// loop-owned state.
func (h *presHarness) onLoop(f func(p *presenceEngine)) {
	h.t.Helper()
	onLoop(h.t, h.g.presence, f)
}

func onLoop(tb testing.TB, p *presenceEngine, f func(p *presenceEngine)) {
	tb.Helper()
	done := make(chan struct{})
	if !p.postWait(func() { f(p); close(done) }) {
		tb.Fatal("presence engine stopped")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		tb.Fatal("presence loop stuck")
	}
}

// eventually waits until cond, run on the loop, holds: for the results of
// SIP transactions, which reach the loop after the fake has answered.
func (h *presHarness) eventually(what string, cond func(p *presenceEngine) bool) {
	h.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		ok := false
		h.onLoop(func(p *presenceEngine) { ok = cond(p) })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// req returns the next SUBSCRIBE or NOTIFY the engine sent.
func (h *presHarness) req() *dlgCall {
	h.t.Helper()
	select {
	case c := <-h.ds.calls:
		return c
	case <-time.After(5 * time.Second):
		h.t.Fatal("no SIP request from the presence engine")
		return nil
	}
}

// noReq asserts that no SIP request is sent within a short while.
func (h *presHarness) noReq() {
	h.t.Helper()
	select {
	case c := <-h.ds.calls:
		h.t.Fatalf("unexpected SIP request %s", c)
	case <-time.After(60 * time.Millisecond):
	}
}

// notified takes the next request, checks that it is a NOTIFY whose
// Subscription-State starts with state, and answers it 200.
func (h *presHarness) notified(state string) *dlgCall {
	h.t.Helper()
	c := h.req()
	h.checkNotify(c, state)
	c.answer(200)
	return c
}

func (h *presHarness) checkNotify(c *dlgCall, state string) {
	h.t.Helper()
	if c.req.Method != "NOTIFY" || !strings.HasPrefix(c.req.SubscriptionState, state) {
		h.t.Fatalf("got %s, want NOTIFY %s", c, state)
	}
	if (c.req.ContentType == "") != (len(c.req.Body) == 0) {
		h.t.Fatalf("NOTIFY body %q with Content-Type %q", c.req.Body, c.req.ContentType)
	}
	if c.req.ContentType != "" && c.req.ContentType != mapping.ContentTypePIDF {
		h.t.Fatalf("NOTIFY Content-Type %q", c.req.ContentType)
	}
	if st, _ := mapping.ParseSubscriptionState(c.req.SubscriptionState); st.State != mapping.SubStateTerminated && !st.HasExpires {
		h.t.Fatalf("NOTIFY %q without expires (PRES-22)", c.req.SubscriptionState)
	}
}

// subscribeReq takes the next request and checks that it is a SUBSCRIBE
// with expires and Accept: application/pidf+xml (PRES-10d).
func (h *presHarness) subscribeReq(expires int) *dlgCall {
	h.t.Helper()
	c := h.req()
	if c.req.Method != "SUBSCRIBE" || c.req.Expires != expires || c.req.Accept != mapping.ContentTypePIDF || c.d.Event != "presence" {
		h.t.Fatalf("got %s (accept %q, event %q), want SUBSCRIBE Expires %d", c, c.req.Accept, c.d.Event, expires)
	}
	return c
}

// presenceOut takes the next stanza and checks that it is a presence with
// these from, to and type.
func (h *presHarness) presenceOut(from, to, typ string) *Element {
	h.t.Helper()
	e := h.next()
	if e.Local != "presence" || e.AttrValue("from") != from || e.AttrValue("to") != to || e.AttrValue("type") != typ {
		h.t.Fatalf("got %s, want presence type=%q from %s to %s", e, typ, from, to)
	}
	return e
}

// presences takes the next n stanzas and returns them by from.
func (h *presHarness) presences(n int) map[string]*Element {
	h.t.Helper()
	got := map[string]*Element{}
	for range n {
		e := h.next()
		if e.Local != "presence" {
			h.t.Fatalf("got %s, want presence", e)
		}
		if got[e.AttrValue("from")] != nil {
			h.t.Fatalf("two presences from %s: %s", e.AttrValue("from"), e)
		}
		got[e.AttrValue("from")] = e
	}
	return got
}

// --- SIP watcher side (S->X) ---

// watcherDialog is what a SIP watcher's SUBSCRIBE looks like after sipside
// checked it: our side is juliet, the remote side the watcher.
func watcherDialog(callID, watcherURI string) sipside.Dialog {
	return sipside.Dialog{
		CallID: callID, LocalURI: julietURI, LocalTag: "lt-" + callID,
		RemoteURI: watcherURI, RemoteTag: "rt-" + callID,
		RemoteTarget: strings.Replace(watcherURI, "@", "@192.0.2.1;x=", 1),
		RemoteCSeq:   1, Event: "presence",
	}
}

// sipSubscribe hands a SUBSCRIBE to the gateway as sipside would and,
// after a 2xx, runs Then as sipside does once the response is out.
func sipSubscribe(g *Gateway, d sipside.Dialog, initial bool, expires int) sipside.SubscribeReply {
	s := &sipside.IncomingSubscribe{
		Dialog: d, Initial: initial, Package: "presence", Requested: expires, Expires: expires,
		RequestURI: d.LocalURI, Source: netip.MustParseAddrPort("192.0.2.1:5060"), Transport: "udp",
	}
	if !initial {
		s.RequestURI = "sip:juliet@192.0.2.9"
	}
	r := g.HandleSIPSubscribe(context.Background(), s)
	if r.Code >= 200 && r.Code < 300 && r.Then != nil {
		r.Then()
	}
	return r
}

// watch makes romeo (or watcherURI) watch juliet with a new dialog: 200,
// the first NOTIFY pending, and a subscribe stanza; no probe (PRES-21..23).
func (h *presHarness) watch(callID, watcherURI, watcherJID string) sipside.Dialog {
	h.t.Helper()
	d := watcherDialog(callID, watcherURI)
	if r := sipSubscribe(h.g, d, true, 600); r.Code != 200 {
		h.t.Fatalf("SUBSCRIBE answered %d, want 200 (PRES-21)", r.Code)
	}
	c := h.notified("pending;expires=")
	if c.d.CallID != callID || c.d.LocalTag != d.LocalTag || c.d.RemoteTag != d.RemoteTag || len(c.req.Body) != 0 {
		h.t.Fatalf("first NOTIFY %s in dialog %+v (PRES-22a)", c, c.d)
	}
	h.presenceOut(watcherJID, julietJID, "subscribe") // PRES-23
	return d
}

// pidfTuples reads a NOTIFY body: tuple id -> basic.
func pidfTuples(t *testing.T, body []byte) map[string]string {
	t.Helper()
	d, err := mapping.ParsePIDF(body)
	if err != nil {
		t.Fatalf("NOTIFY body is not PIDF: %v\n%s", err, body)
	}
	if d.Entity != "pres:juliet@example.com" {
		t.Fatalf("entity %q (PRES-40b)", d.Entity)
	}
	out := map[string]string{}
	for _, tp := range d.Tuples {
		out[tp.ID] = tp.Basic
	}
	return out
}

func TestPresenceSIPWatcherLifecycle(t *testing.T) {
	// PRES-21..PRES-24, PRES-28, PRES-29, PRES-41, PRES-26.
	checkPresenceLeaks(t)
	pc := fastPresence()
	pc.NotifyInterval = 300 * time.Millisecond // long enough to see a burst merged
	h := newPresenceHarness(t, pc)
	d := h.watch("w1", romeoURI, romeoJID)
	h.none()  // PRES-23: no probe while the watcher is not authorized
	h.noReq() // one NOTIFY only
	// Prosody answers the subscribe it holds for approval with an
	// unavailable from the bare JID: not her presence for this watcher.
	h.in(`<presence type='unavailable' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	h.onLoop(func(p *presenceEngine) {
		if s := p.ins[pairKey{jid: "juliet@example.com", uri: romeoURI}]; s == nil || s.known {
			t.Errorf("presence before approval was taken as the user's state")
		}
	})
	h.noReq()

	// The XMPP user approves: NOTIFY active, empty as her presence is not
	// known yet (PRES-24). It is held in flight while her two resources
	// come online.
	h.in(`<presence type='subscribed' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	active := h.req()
	h.checkNotify(active, "active;expires=")
	if len(active.req.Body) != 0 {
		t.Fatalf("active NOTIFY with a body before any presence: %s", active)
	}
	h.in(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'><show>away</show><priority>5</priority></presence>`)
	h.in(`<presence from='juliet@example.com/chamber' to='romeo\40example.net@sip.example.com' xml:lang='en'><status>reading</status></presence>`)
	h.onLoop(func(*presenceEngine) {})
	h.noReq() // one NOTIFY at a time per dialog
	active.answer(200)

	// PRES-28, PRES-29: both changes merged into one NOTIFY with both tuples.
	both := h.notified("active;expires=")
	if got := pidfTuples(t, both.req.Body); len(got) != 2 || got["ID-balcony"] != "open" || got["ID-chamber"] != "open" {
		t.Fatalf("tuples %v, want balcony and chamber open (PRES-29)\n%s", got, both.req.Body)
	}
	if both.d.LocalCSeq <= active.d.LocalCSeq || both.d.CallID != d.CallID {
		t.Fatalf("NOTIFY CSeq %d after %d, call-id %s", both.d.LocalCSeq, active.d.LocalCSeq, both.d.CallID)
	}
	h.noReq()

	// PRES-28: a burst within NotifyInterval of the last NOTIFY waits for
	// the interval and goes as one NOTIFY with the last state.
	var last time.Time
	h.in(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'><show>dnd</show><status>one</status><priority>5</priority></presence>`)
	h.in(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'><show>dnd</show><status>two</status><priority>5</priority></presence>`)
	h.onLoop(func(p *presenceEngine) { last = time.Unix(0, p.inDlg[dlgKey(d.CallID, d.LocalTag)].lastSent) })
	inTime := time.Since(last) < h.g.presence.cfg.NotifyInterval
	merged := h.notified("active;expires=")
	if inTime {
		if sent := time.Now(); sent.Before(last.Add(h.g.presence.cfg.NotifyInterval)) {
			t.Errorf("NOTIFY %v after the last one, want at least NotifyInterval (PRES-28)", sent.Sub(last))
		}
		if body := string(merged.req.Body); !strings.Contains(body, ">two<") || strings.Contains(body, ">one<") {
			t.Fatalf("burst not merged into the last state (PRES-28):\n%s", body)
		}
		h.noReq()
	} else {
		t.Log("machine too slow to check the merge of a burst")
	}

	// PRES-41: one resource goes; the other's tuple is kept and the one
	// gone is not open.
	h.in(`<presence type='unavailable' from='juliet@example.com/chamber' to='romeo\40example.net@sip.example.com'/>`)
	one := h.notified("active;expires=")
	got := pidfTuples(t, one.req.Body)
	if got["ID-balcony"] != "open" || got["ID-chamber"] == "open" {
		t.Fatalf("tuples %v after chamber went, want balcony open, chamber not (PRES-41)\n%s", got, one.req.Body)
	}
	if got["ID-chamber"] != "closed" {
		t.Errorf("chamber's tuple %q, want closed (PRES-41)\n%s", got["ID-chamber"], one.req.Body)
	}

	// A refresh in the dialog: 200, then a NOTIFY with the complete state
	// (PRES-25).
	d.RemoteCSeq = 2
	if r := sipSubscribe(h.g, d, false, 600); r.Code != 200 || r.Expires != 600 {
		t.Fatalf("refresh answered %+v", r)
	}
	ref := h.notified("active;expires=")
	if got := pidfTuples(t, ref.req.Body); got["ID-balcony"] != "open" {
		t.Fatalf("refresh NOTIFY tuples %v (PRES-25)", got)
	}
	h.none() // no second subscribe stanza on a refresh

	// Expires 0: the final NOTIFY terminated;reason=timeout with the
	// current state, and unavailable from the watcher (PRES-26); no
	// unsubscribe (RFC 8048 §5.3.3).
	d.RemoteCSeq = 3
	if r := sipSubscribe(h.g, d, false, 0); r.Code != 200 {
		t.Fatalf("unsubscribe answered %d", r.Code)
	}
	h.presenceOut(romeoJID, julietJID, "unavailable")
	final := h.notified("terminated;reason=timeout")
	if got := pidfTuples(t, final.req.Body); got["ID-balcony"] != "open" {
		t.Fatalf("final NOTIFY tuples %v, want the current state (PRES-26a)", got)
	}
	h.none()
	h.noReq()

	// The dialog is gone; the authorization stays.
	d.RemoteCSeq = 4
	if r := sipSubscribe(h.g, d, false, 600); r.Code != 481 {
		t.Fatalf("refresh of an ended dialog: %d, want 481", r.Code)
	}
	h.onLoop(func(p *presenceEngine) {
		s := p.ins[pairKey{julietJID, romeoURI}]
		if s == nil || s.auth != authGranted || len(s.dialogs) != 0 || len(p.inDlg) != 0 {
			t.Errorf("after the last dialog: sub %+v, %d dialogs", s, len(p.inDlg))
		}
	})
}

func TestPresenceSIPWatcherTwoDialogs(t *testing.T) {
	// PRES-02: two watcher devices on one virtual subscription; every
	// change goes to both; unsubscribed ends both (PRES-24).
	checkPresenceLeaks(t)
	h := newPresenceHarness(t, fastPresence())
	d1 := h.watch("w1", romeoURI, romeoJID)
	d2 := h.watch("w2", romeoURI, romeoJID)
	h.in(`<presence type='subscribed' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	calls := map[string]*dlgCall{}
	for range 2 {
		c := h.notified("active;expires=")
		calls[c.d.CallID] = c
	}
	if calls["w1"] == nil || calls["w2"] == nil {
		t.Fatalf("active NOTIFYs in %v, want w1 and w2", slices.Collect(maps.Keys(calls)))
	}
	h.in(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'/>`)
	clear(calls)
	for range 2 {
		c := h.notified("active;expires=")
		if got := pidfTuples(t, c.req.Body); got["ID-balcony"] != "open" {
			t.Fatalf("tuples %v", got)
		}
		calls[c.d.CallID] = c
	}
	if calls["w1"] == nil || calls["w2"] == nil {
		t.Fatalf("presence NOTIFYs in %v, want w1 and w2 (PRES-02)", slices.Collect(maps.Keys(calls)))
	}

	// Refreshes are found by their dialog (not by the addresses); a
	// refresh of an unknown dialog is 481; a CSeq going back is 500.
	d2.RemoteCSeq = 5
	if r := sipSubscribe(h.g, d2, false, 300); r.Code != 200 {
		t.Fatalf("refresh of w2: %d", r.Code)
	}
	if c := h.notified("active;expires="); c.d.CallID != "w2" {
		t.Fatalf("refresh NOTIFY in %s, want w2", c.d.CallID)
	}
	d2.RemoteCSeq = 4
	if r := sipSubscribe(h.g, d2, false, 300); r.Code != 500 {
		t.Fatalf("CSeq going back: %d, want 500 (RFC 3261 §12.2.2)", r.Code)
	}
	unknown := d1
	unknown.CallID = "nope"
	unknown.RemoteCSeq = 9
	if r := sipSubscribe(h.g, unknown, false, 300); r.Code != 481 {
		t.Fatalf("unknown dialog: %d, want 481", r.Code)
	}
	wrongTag := d1
	wrongTag.RemoteTag = "other"
	wrongTag.RemoteCSeq = 9
	if r := sipSubscribe(h.g, wrongTag, false, 300); r.Code != 481 {
		t.Fatalf("wrong remote tag: %d, want 481", r.Code)
	}
	h.noReq()

	// PRES-24: unsubscribed ends every dialog with an empty
	// terminated;reason=rejected.
	h.in(`<presence type='unsubscribed' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	clear(calls)
	for range 2 {
		c := h.notified("terminated;reason=rejected")
		if len(c.req.Body) != 0 {
			t.Fatalf("rejected NOTIFY with a body: %s", c)
		}
		calls[c.d.CallID] = c
	}
	if calls["w1"] == nil || calls["w2"] == nil {
		t.Fatalf("terminating NOTIFYs in %v, want w1 and w2 (PRES-24)", slices.Collect(maps.Keys(calls)))
	}
	h.presenceOut(romeoJID, julietJID, "unavailable")
	h.none()
	h.in(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'><status>x</status></presence>`)
	h.noReq()
}

func TestPresenceNotifyFailureRemovesDialog(t *testing.T) {
	// PRES-27: a NOTIFY answered 481 removes its dialog; the other dialog
	// of the virtual subscription lives on.
	for _, code := range []int{481, 404} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			checkPresenceLeaks(t)
			h := newPresenceHarness(t, fastPresence())
			h.watch("w1", romeoURI, romeoJID)
			h.watch("w2", romeoURI, romeoJID)
			h.in(`<presence type='subscribed' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
			for range 2 {
				c := h.req()
				h.checkNotify(c, "active")
				if c.d.CallID == "w1" {
					c.answer(code)
				} else {
					c.answer(200)
				}
			}
			h.eventually("w1 removed", func(p *presenceEngine) bool {
				return p.inDlg[dlgKey("w1", "lt-w1")] == nil && p.inDlg[dlgKey("w2", "lt-w2")] != nil
			})
			h.none() // w2 remains: no unavailable yet
			h.in(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'/>`)
			if c := h.notified("active"); c.d.CallID != "w2" {
				t.Fatalf("NOTIFY in %s after w1 was removed", c.d.CallID)
			}
			h.noReq()
			// The last dialog fails too: the watcher is gone for the XMPP
			// user (PRES-26b).
			h.in(`<presence from='juliet@example.com/chamber' to='romeo\40example.net@sip.example.com'/>`)
			h.req().answer(code)
			h.presenceOut(romeoJID, julietJID, "unavailable")
			d := watcherDialog("w2", romeoURI)
			d.RemoteCSeq = 2
			if r := sipSubscribe(h.g, d, false, 600); r.Code != 481 {
				t.Fatalf("refresh of a removed dialog: %d, want 481", r.Code)
			}
		})
	}
}

func TestPresenceStateChangeNotRateLimited(t *testing.T) {
	// PRES-24, PRES-28: the NOTIFY of a new subscription state (active
	// after subscribed) is not held back by the rate limit of presence
	// changes, even when it has to wait for the NOTIFY in flight.
	checkPresenceLeaks(t)
	pc := fastPresence()
	pc.NotifyInterval = time.Hour
	h := newPresenceHarness(t, pc)
	if r := sipSubscribe(h.g, watcherDialog("w1", romeoURI), true, 600); r.Code != 200 {
		t.Fatal(r.Code)
	}
	pending := h.req()
	h.checkNotify(pending, "pending")
	h.presenceOut(romeoJID, julietJID, "subscribe")
	h.in(`<presence type='subscribed' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	h.onLoop(func(*presenceEngine) {}) // subscribed taken while pending is in flight
	pending.answer(200)
	h.notified("active")
	// A presence change within the interval waits (PRES-28).
	h.in(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'/>`)
	h.noReq()
}

func TestPresenceSIPWatcherBounds(t *testing.T) {
	// MaxDialogsPerPair and MaxSubscriptions: 503, nothing kept, nothing
	// sent.
	checkPresenceLeaks(t)
	pc := fastPresence()
	pc.MaxDialogsPerPair = 2
	pc.MaxSubscriptions = 3
	h := newPresenceHarness(t, pc)
	h.watch("w1", romeoURI, romeoJID)
	h.watch("w2", romeoURI, romeoJID)
	if r := sipSubscribe(h.g, watcherDialog("w3", romeoURI), true, 600); r.Code != 503 {
		t.Fatalf("third dialog on one pair: %d, want 503", r.Code)
	}
	h.noReq()
	h.none()
	// One more dialog fits the engine (3), from another watcher.
	h.watch("b1", benvolioURI, benvolioJID)
	if r := sipSubscribe(h.g, watcherDialog("c1", "sip:mercutio@example.net"), true, 600); r.Code != 503 {
		t.Fatalf("over MaxSubscriptions: %d, want 503", r.Code)
	}
	h.onLoop(func(p *presenceEngine) {
		if len(p.ins) != 2 || len(p.inDlg) != 3 {
			t.Errorf("%d subscriptions, %d dialogs; want 2, 3", len(p.ins), len(p.inDlg))
		}
	})
	h.noReq()
	h.none()
}

func TestPresenceSIPWatcherExpiresAndFetch(t *testing.T) {
	// PRES-26: a dialog that is not refreshed ends with
	// terminated;reason=timeout and a closed PIDF; an initial SUBSCRIBE
	// with Expires 0 (a fetch) of an authorized watcher probes first and
	// answers with the presence that comes back.
	checkPresenceLeaks(t)
	h := newPresenceHarness(t, fastPresence())
	d := watcherDialog("w1", romeoURI)
	if r := sipSubscribe(h.g, d, true, 1); r.Code != 200 {
		t.Fatal(r.Code)
	}
	h.notified("pending;expires=1")
	h.presenceOut(romeoJID, julietJID, "subscribe")
	// Not refreshed within a second.
	h.presenceOut(romeoJID, julietJID, "unavailable")
	c := h.notified("terminated;reason=timeout")
	if got := pidfTuples(t, c.req.Body); len(got) != 1 || got["ID-"] != "closed" {
		t.Fatalf("expired NOTIFY tuples %v, want one closed (PRES-26a)", got)
	}
	h.none()

	h.in(`<presence type='subscribed' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	h.none()
	f := watcherDialog("f1", romeoURI)
	if r := sipSubscribe(h.g, f, true, 0); r.Code != 200 {
		t.Fatal(r.Code)
	}
	h.presenceOut(romeoJID, julietJID, "probe") // PRES-26: no presence held yet
	h.noReq()
	h.in(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'/>`)
	h.presenceOut(romeoJID, julietJID, "unavailable")
	c = h.notified("terminated;reason=timeout")
	if got := pidfTuples(t, c.req.Body); got["ID-balcony"] != "open" || c.d.CallID != "f1" {
		t.Fatalf("fetch answer %v in %s, want balcony open", got, c.d.CallID)
	}
	h.noReq()
}

// --- XMPP watcher side (X->S) ---

// notifier is the SIP presentity's side of one of our subscriptions.
type notifier struct {
	h        *presHarness
	callID   string
	localTag string // ours
	remote   string // the notifier's tag
	from     string
	cseq     uint32
}

// notifierOf answers the dialog of c as its notifier.
func (h *presHarness) notifierOf(c *dlgCall, remoteTag string) *notifier {
	return &notifier{h: h, callID: c.d.CallID, localTag: c.d.LocalTag, remote: remoteTag, from: c.d.RemoteURI}
}

// send hands the gateway a NOTIFY as sipside would (the next CSeq).
func (n *notifier) send(state, contentType string, body []byte) sipside.Reply {
	n.cseq++
	return n.sendCSeq(n.cseq, state, contentType, body)
}

func (n *notifier) sendCSeq(cseq uint32, state, contentType string, body []byte) sipside.Reply {
	return n.h.g.HandleSIPNotify(context.Background(), &sipside.IncomingNotify{
		CallID: n.callID, LocalTag: n.localTag, RemoteTag: n.remote,
		From: n.from, To: julietURI, RequestURI: "sip:juliet@192.0.2.9",
		Package: "presence", Event: "presence", SubscriptionState: state,
		Contact: strings.Replace(n.from, "@", "@192.0.2.7;x=", 1),
		CSeq:    cseq, ContentType: contentType, Body: body, BodySize: len(body),
		Source: netip.MustParseAddrPort("192.0.2.7:5060"),
	})
}

// notifyOK sends a NOTIFY and checks it is answered 200.
func (n *notifier) notifyOK(state string, body []byte) {
	n.h.t.Helper()
	ct := ""
	if body != nil {
		ct = mapping.ContentTypePIDF
	}
	if r := n.send(state, ct, body); r.Code != 200 {
		n.h.t.Fatalf("NOTIFY %s answered %d, want 200", state, r.Code)
	}
}

// pidfBody is a PIDF document of a SIP user with tuples id=basic.
func pidfBody(entity string, tuples ...string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="` + entity + `">`)
	for _, t := range tuples {
		id, basic, _ := strings.Cut(t, "=")
		fmt.Fprintf(&b, `<tuple id="%s"><status><basic>%s</basic></status><note>%s is %s</note></tuple>`, id, basic, id, basic)
	}
	b.WriteString(`</presence>`)
	return []byte(b.String())
}

// subscribeOut makes juliet subscribe to romeo: the SUBSCRIBE (PRES-10),
// answered 200.
func (h *presHarness) subscribeOut() (*dlgCall, *notifier) {
	h.t.Helper()
	h.in(`<presence type='subscribe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	c := h.subscribeReq(3600)
	if c.d.Established() || c.d.LocalURI != julietURI || c.d.RemoteURI != romeoURI || c.d.CallID == "" || c.d.LocalTag == "" {
		h.t.Fatalf("initial SUBSCRIBE in dialog %+v (PRES-10)", c.d)
	}
	res := c.answer(200)
	h.eventually("the 2xx taken", func(p *presenceEngine) bool { return !p.outs[pairKey{julietJID, romeoURI}].inFlight })
	return c, h.notifierOf(c, res.Dialog.RemoteTag)
}

// authorized runs subscribeOut and a first active NOTIFY with desk and
// phone open: subscribed and their presence reach juliet (PRES-13).
func (h *presHarness) authorized() (*dlgCall, *notifier) {
	h.t.Helper()
	c, n := h.subscribeOut()
	n.notifyOK("active;expires=3600", pidfBody("pres:romeo@example.net", "ID-desk=open", "ID-phone=open"))
	h.presenceOut(romeoJID, julietJID, "subscribed")
	got := h.presences(2)
	for _, r := range []string{"desk", "phone"} {
		e := got[romeoJID+"/"+r]
		if e == nil || e.AttrValue("type") != "" || e.AttrValue("to") != julietJID {
			h.t.Fatalf("no presence of %s in %v", r, got)
		}
		if st := e.ChildText(nsComponent, "status"); st != "ID-"+r+" is open" {
			h.t.Fatalf("status %q of %s", st, r)
		}
	}
	return c, n
}

func TestPresenceXMPPWatcherLifecycle(t *testing.T) {
	// PRES-10..PRES-13, PRES-42, PRES-17 and the refusals of a NOTIFY.
	checkPresenceLeaks(t)
	h := newPresenceHarness(t, fastPresence())
	c, n := h.subscribeOut()

	// PRES-12: pending is answered 200 and nothing goes to XMPP.
	n.notifyOK("pending;expires=3600", nil)
	h.none()
	// PRES-13: the first active NOTIFY: subscribed, then one presence per
	// tuple.
	n.notifyOK("active;expires=3600", pidfBody("pres:romeo@example.net", "ID-desk=open", "ID-phone=open"))
	h.presenceOut(romeoJID, julietJID, "subscribed")
	if got := h.presences(2); got[romeoJID+"/desk"] == nil || got[romeoJID+"/phone"] == nil {
		t.Fatalf("presences %v", got)
	}
	h.none()
	// PRES-42: a tuple missing from the next document is unavailable.
	n.notifyOK("active;expires=3600", pidfBody("pres:romeo@example.net", "ID-desk=open"))
	// The unchanged desk resource is not sent again.
	h.presenceOut(romeoJID+"/phone", julietJID, "unavailable")
	h.none()
	// An empty body changes nothing (RFC 3856 §6.8).
	n.notifyOK("active;expires=3600", nil)
	h.none()

	// Refusals: nothing changes and nothing goes to XMPP.
	if r := n.send("active;expires=3600", mapping.ContentTypePIDF, []byte("<presence")); r.Code != 400 {
		t.Errorf("malformed PIDF: %d, want 400", r.Code)
	}
	if r := n.send("active;expires=3600", "text/plain", []byte("hello")); r.Code != 415 || r.Headers["Accept"] != mapping.ContentTypePIDF {
		t.Errorf("wrong content type: %+v, want 415 with Accept", r)
	}
	if r := n.send("bogus;;", "", nil); r.Code != 400 {
		t.Errorf("bad Subscription-State: %d, want 400", r.Code)
	}
	if r := n.sendCSeq(1, "active;expires=3600", "", nil); r.Code != 500 {
		t.Errorf("CSeq going back: %d, want 500", r.Code)
	}
	other := *n
	other.remote = "fork-2"
	if r := other.send("active;expires=3600", "", nil); r.Code != 481 {
		t.Errorf("NOTIFY of a second fork: %d, want 481 (PRES-03)", r.Code)
	}
	unknown := *n
	unknown.callID = "no-such-call"
	if r := unknown.send("active;expires=3600", "", nil); r.Code != 481 {
		t.Errorf("NOTIFY of an unknown dialog: %d, want 481", r.Code)
	}
	h.none()
	h.noReq()

	// PRES-17: unsubscribe is a SUBSCRIBE Expires 0 in the same dialog,
	// then unsubscribed from the contact (after unavailable for what was
	// known); the final NOTIFY is answered 200.
	h.in(`<presence type='unsubscribe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	u := h.subscribeReq(0)
	if u.d.CallID != c.d.CallID || u.d.LocalTag != c.d.LocalTag || u.d.RemoteTag != n.remote || u.d.LocalCSeq <= c.d.LocalCSeq {
		t.Fatalf("unsubscribe in dialog %+v, want the subscription's (after CSeq %d)", u.d, c.d.LocalCSeq)
	}
	h.none() // unsubscribed waits for the answer
	u.answer(200)
	h.presenceOut(romeoJID+"/desk", julietJID, "unavailable")
	h.presenceOut(romeoJID, julietJID, "unsubscribed")
	n.notifyOK("terminated;reason=timeout", nil)
	h.none()
	h.noReq()
	h.onLoop(func(p *presenceEngine) {
		if len(p.outs) != 0 {
			t.Errorf("%d outbound subscriptions after unsubscribe", len(p.outs))
		}
	})
}

func TestPresenceXMPPWatcherAuthorized(t *testing.T) {
	// PRES-18, PRES-32a, PRES-14b, PRES-16c.
	checkPresenceLeaks(t)
	h := newPresenceHarness(t, fastPresence())
	_, n := h.authorized()

	// PRES-18: a repeated subscribe gets subscribed and the presence from
	// the gateway; no new SUBSCRIBE.
	h.in(`<presence type='subscribe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	h.presenceOut(romeoJID, julietJID, "subscribed")
	h.presences(2)
	h.noReq()

	// PRES-32a: a probe gets the last known presence, addressed to the
	// prober; a recent subscription is not refreshed.
	h.in(`<presence type='probe' from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'/>`)
	got := h.presences(2)
	for _, e := range got {
		if e.AttrValue("to") != "juliet@example.com/balcony" || e.AttrValue("type") != "" {
			t.Fatalf("probe answer %s", e)
		}
	}
	h.noReq()
	// PRES-14b: a probe long after the last SUBSCRIBE refreshes the
	// dialog.
	h.onLoop(func(p *presenceEngine) {
		p.outs[pairKey{julietJID, romeoURI}].lastSub = time.Now().Add(-2 * probeRefresh)
	})
	h.in(`<presence type='probe' from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'/>`)
	h.presences(2)
	ref := h.subscribeReq(3600)
	if ref.d.CallID != n.callID || ref.d.RemoteTag != n.remote {
		t.Fatalf("refresh in %+v, want the dialog", ref.d)
	}
	ref.answer(200)

	// PRES-16c: terminated;reason=rejected: unavailable for what was
	// known, unsubscribed, no retry.
	n.notifyOK("terminated;reason=rejected", nil)
	h.presences(2) // desk and phone unavailable
	h.presenceOut(romeoJID, julietJID, "unsubscribed")
	h.noReq()
	if r := n.send("active;expires=60", "", nil); r.Code != 481 {
		t.Fatalf("NOTIFY after the end: %d, want 481", r.Code)
	}
}

func TestPresenceTerminatedDuringRefresh(t *testing.T) {
	// PRES-16a: a terminated NOTIFY that comes while a refresh is in
	// flight still gets its new dialog once the refresh is answered.
	for _, code := range []int{200, 481} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			checkPresenceLeaks(t)
			h := newPresenceHarness(t, fastPresence())
			c, n := h.authorized()
			h.onLoop(func(p *presenceEngine) { p.outs[pairKey{julietJID, romeoURI}].lastSub = time.Time{} })
			h.in(`<presence type='probe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
			h.presences(2)
			ref := h.subscribeReq(3600) // held
			n.notifyOK("terminated;reason=deactivated", nil)
			h.onLoop(func(*presenceEngine) {})
			ref.answer(code)
			s := h.subscribeReq(3600)
			if s.d.CallID == c.d.CallID || s.d.Established() {
				t.Fatalf("re-SUBSCRIBE in %+v, want a new dialog", s.d)
			}
			s.answer(200)
			h.none()
		})
	}
}

func TestPresenceXMPPWatcherDeactivated(t *testing.T) {
	// PRES-16a: deactivated re-subscribes at once, in a new dialog, and
	// tells XMPP nothing.
	checkPresenceLeaks(t)
	h := newPresenceHarness(t, fastPresence())
	c, n := h.authorized()
	n.notifyOK("terminated;reason=deactivated", nil)
	s := h.subscribeReq(3600)
	if s.d.CallID == c.d.CallID || s.d.Established() {
		t.Fatalf("re-SUBSCRIBE in %+v, want a new dialog", s.d)
	}
	h.none()
	s.answer(200)
}

func TestPresenceSubscribeFailures(t *testing.T) {
	// PRES-15: the answers to an initial SUBSCRIBE.
	t.Run("unsubscribed", func(t *testing.T) {
		for _, code := range []int{403, 489, 603} {
			t.Run(fmt.Sprint(code), func(t *testing.T) {
				checkPresenceLeaks(t)
				h := newPresenceHarness(t, fastPresence())
				h.in(`<presence type='subscribe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
				c := h.subscribeReq(3600)
				c.answer(code)
				h.presenceOut(romeoJID, julietJID, "unsubscribed")
				h.noReq()
				h.none()
				n := h.notifierOf(c, "late")
				if r := n.send("active;expires=60", "", nil); r.Code != 481 {
					t.Fatalf("NOTIFY after %d: %d, want 481", code, r.Code)
				}
			})
		}
	})
	t.Run("481 new dialog", func(t *testing.T) {
		checkPresenceLeaks(t)
		h := newPresenceHarness(t, fastPresence())
		h.in(`<presence type='subscribe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
		c := h.subscribeReq(3600)
		c.answer(481)
		again := h.subscribeReq(3600)
		if again.d.CallID == c.d.CallID || again.d.LocalTag == c.d.LocalTag {
			t.Fatalf("after 481: same Call-ID or tag %+v", again.d)
		}
		again.answer(200)
		h.none()
	})
	t.Run("423 Min-Expires", func(t *testing.T) {
		checkPresenceLeaks(t)
		h := newPresenceHarness(t, fastPresence())
		h.in(`<presence type='subscribe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
		c := h.subscribeReq(3600)
		res := c.result(423)
		res.MinExpires = 7200
		c.answerWith(res, nil)
		again := h.subscribeReq(7200)
		if again.d.CallID != c.d.CallID || again.d.LocalCSeq != c.d.LocalCSeq+1 {
			t.Fatalf("423 retry in %+v after CSeq %d", again.d, c.d.LocalCSeq)
		}
		again.answer(200)
		h.none()
		h.noReq()
	})
	t.Run("5xx retry", func(t *testing.T) {
		checkPresenceLeaks(t)
		h := newPresenceHarness(t, fastPresence())
		h.in(`<presence type='subscribe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
		c := h.subscribeReq(3600)
		c.answer(503)
		h.subscribeReq(3600).answer(500) // after RetryMin
		again := h.subscribeReq(3600)    // after twice RetryMin
		again.answer(200)
		n := h.notifierOf(again, again.result(200).Dialog.RemoteTag)
		n.notifyOK("active;expires=3600", nil)
		h.presenceOut(romeoJID, julietJID, "subscribed")
		h.none()
		h.noReq()
	})
	t.Run("timeout retry", func(t *testing.T) {
		checkPresenceLeaks(t)
		h := newPresenceHarness(t, fastPresence())
		h.in(`<presence type='subscribe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
		c := h.subscribeReq(3600)
		c.answerWith(c.result(0), sipside.ErrTimeout) // counts as 408
		h.subscribeReq(3600).answer(200)
		h.none()
	})
	t.Run("refresh 481", func(t *testing.T) {
		// A refresh answered 481: the authorization stands; a new dialog
		// at once, nothing to XMPP.
		checkPresenceLeaks(t)
		h := newPresenceHarness(t, fastPresence())
		c, _ := h.authorized()
		h.onLoop(func(p *presenceEngine) { p.outs[pairKey{julietJID, romeoURI}].lastSub = time.Time{} })
		h.in(`<presence type='probe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
		h.presences(2)
		ref := h.subscribeReq(3600)
		if !ref.d.Established() || ref.d.CallID != c.d.CallID {
			t.Fatalf("refresh in %+v", ref.d)
		}
		ref.answer(481)
		again := h.subscribeReq(3600)
		if again.d.Established() || again.d.CallID == c.d.CallID {
			t.Fatalf("after 481 on a refresh: %+v, want a new dialog", again.d)
		}
		again.answer(200)
		h.none()
	})
}

func TestPresenceNotifyBeforeOK(t *testing.T) {
	// PRES-11: a NOTIFY that overtakes the 2xx establishes the dialog; the
	// 2xx then keeps what it learnt.
	checkPresenceLeaks(t)
	h := newPresenceHarness(t, fastPresence())
	h.in(`<presence type='subscribe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	c := h.subscribeReq(3600)
	res := c.result(200)
	n := h.notifierOf(c, res.Dialog.RemoteTag)
	n.notifyOK("active;expires=3600", pidfBody("pres:romeo@example.net", "ID-desk=open"))
	h.presenceOut(romeoJID, julietJID, "subscribed")
	h.presenceOut(romeoJID+"/desk", julietJID, "")
	c.answerWith(res, nil)
	h.eventually("the 2xx taken", func(p *presenceEngine) bool { return !p.outs[pairKey{julietJID, romeoURI}].inFlight })
	h.onLoop(func(p *presenceEngine) {
		o := p.outs[pairKey{julietJID, romeoURI}]
		if o.d.RemoteTag != n.remote || o.d.RemoteCSeq != 1 || o.d.LocalCSeq != res.Dialog.LocalCSeq || o.expiresAt.IsZero() || o.refresh == nil {
			t.Fatalf("after the 2xx: %+v", o)
		}
	})
	if r := n.sendCSeq(1, "active;expires=3600", "", nil); r.Code != 500 {
		t.Errorf("the NOTIFY's CSeq again: %d, want 500", r.Code)
	}
	n.notifyOK("active;expires=3600", pidfBody("pres:romeo@example.net", "ID-desk=closed"))
	h.presenceOut(romeoJID+"/desk", julietJID, "unavailable")
	h.none()
	h.noReq()
}

func TestPresenceProbeFetch(t *testing.T) {
	// PRES-33b: a probe without a subscription is a SUBSCRIBE Expires 0 in
	// a new dialog; its NOTIFY goes to the prober only.
	checkPresenceLeaks(t)
	h := newPresenceHarness(t, fastPresence())
	h.in(`<presence type='probe' from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'/>`)
	c := h.subscribeReq(0)
	if c.d.Established() || c.d.RemoteURI != romeoURI {
		t.Fatalf("fetch in %+v, want a new dialog to romeo", c.d)
	}
	res := c.answer(200)
	h.none()
	n := h.notifierOf(c, res.Dialog.RemoteTag)
	n.notifyOK("terminated;reason=timeout", pidfBody("pres:romeo@example.net", "ID-desk=open"))
	e := h.presenceOut(romeoJID+"/desk", "juliet@example.com/balcony", "")
	if st := e.ChildText(nsComponent, "status"); st != "ID-desk is open" {
		t.Errorf("status %q", st)
	}
	h.none()
	h.noReq()
	if r := n.send("terminated;reason=timeout", "", nil); r.Code != 481 {
		t.Fatalf("second NOTIFY of a finished fetch: %d, want 481", r.Code)
	}
	h.onLoop(func(p *presenceEngine) {
		if len(p.fetches) != 0 || len(p.outs) != 0 {
			t.Errorf("fetches %d, outs %d after the fetch", len(p.fetches), len(p.outs))
		}
	})

	// A fetch refused 403: unsubscribed to the prober (PRES-32b).
	h.in(`<presence type='probe' from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'/>`)
	h.subscribeReq(0).answer(403)
	h.presenceOut(romeoJID, "juliet@example.com/balcony", "unsubscribed")
	h.none()
}

// --- persistence ---

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPresenceRestore(t *testing.T) {
	// Both directions survive a restart: the same dialogs with a higher
	// CSeq, refresh and probe scheduled, and no stanza at the restore
	// (no spurious unsubscribed).
	checkPresenceLeaks(t)
	path := filepath.Join(t.TempDir(), "stox.db")
	st := openStore(t, path)
	pc := fastPresence()
	pc.Store = st
	h := newPresenceHarness(t, pc)

	// romeo (SIP) watches juliet (XMPP), authorized, with her presence.
	d := h.watch("w1", romeoURI, romeoJID)
	h.in(`<presence type='subscribed' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	h.notified("active")
	h.in(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'/>`)
	inLast := h.notified("active")
	// juliet (XMPP) watches benvolio (SIP), authorized, with his presence.
	h.in(`<presence type='subscribe' from='juliet@example.com' to='benvolio\40example.org@sip.example.com'/>`)
	c := h.subscribeReq(3600)
	res := c.answer(200)
	n := h.notifierOf(c, res.Dialog.RemoteTag)
	n.notifyOK("active;expires=3600", pidfBody("pres:benvolio@example.org", "ID-desk=open"))
	h.presenceOut(benvolioJID, julietJID, "subscribed")
	h.presenceOut(benvolioJID+"/desk", julietJID, "")
	h.eventually("the 2xx taken", func(p *presenceEngine) bool { return !p.outs[pairKey{julietJID, benvolioURI}].inFlight })
	h.g.Close(time.Second)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A new gateway on the same file.
	st = openStore(t, path)
	t.Cleanup(func() { st.Close() })
	pc.Store = st
	h2 := newPresenceHarness(t, pc)
	h2.none()
	h2.noReq()
	h2.onLoop(func(p *presenceEngine) {
		s := p.ins[pairKey{julietJID, romeoURI}]
		if s == nil || s.auth != authGranted || s.watcher != romeoJID || len(s.dialogs) != 1 {
			t.Fatalf("inbound subscription restored as %+v", s)
		}
		dl := p.inDlg[dlgKey(d.CallID, d.LocalTag)]
		if dl == nil || dl.d.RemoteTag != d.RemoteTag || dl.d.LocalCSeq <= inLast.d.LocalCSeq+1 || dl.expiry == nil {
			t.Fatalf("watcher dialog restored as %+v (last NOTIFY CSeq %d)", dl, inLast.d.LocalCSeq+1)
		}
		if s.probeDue == nil || time.Until(s.probeDue.at) > 2*time.Second {
			t.Fatal("no probe scheduled soon for the restored watcher (PRES-30)")
		}
		// Seen scheduled; cancelled so that its stanza does not come in the
		// middle of what follows.
		p.cancel(s.probeDue)
		s.probeDue = nil
		o := p.outs[pairKey{julietJID, benvolioURI}]
		if o == nil || !o.authorized || o.stopped || o.d.CallID != c.d.CallID || o.d.RemoteTag != n.remote || o.sipJID != benvolioJID {
			t.Fatalf("outbound subscription restored as %+v", o)
		}
		if o.d.LocalCSeq <= res.Dialog.LocalCSeq || o.refresh == nil || o.pres.Len() != 1 {
			t.Fatalf("outbound dialog CSeq %d (was %d), refresh %v, %d resources", o.d.LocalCSeq, res.Dialog.LocalCSeq, o.refresh, o.pres.Len())
		}
		if p.outDlg[dlgKey(c.d.CallID, c.d.LocalTag)] != o {
			t.Fatal("outbound dialog not found by its key")
		}
	})

	// The outbound dialog goes on: a NOTIFY in it is taken, a probe gets
	// the stored presence and refreshes in the dialog with a higher CSeq.
	n.h = h2
	n.notifyOK("active;expires=3600", pidfBody("pres:benvolio@example.org", "ID-desk=open"))
	h2.presenceOut(benvolioJID+"/desk", julietJID, "")
	h2.in(`<presence type='probe' from='juliet@example.com/balcony' to='benvolio\40example.org@sip.example.com'/>`)
	h2.presenceOut(benvolioJID+"/desk", "juliet@example.com/balcony", "")
	ref := h2.subscribeReq(3600)
	if ref.d.CallID != c.d.CallID || ref.d.RemoteTag != n.remote || ref.d.LocalCSeq <= res.Dialog.LocalCSeq {
		t.Fatalf("refresh after restore in %+v, was CSeq %d", ref.d, res.Dialog.LocalCSeq)
	}
	ref.answer(200)

	// The watcher dialog goes on: juliet's presence is NOTIFYed in it.
	h2.in(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'><status>back</status></presence>`)
	nt := h2.notified("active")
	if nt.d.CallID != d.CallID || nt.d.LocalCSeq <= inLast.d.LocalCSeq {
		t.Fatalf("NOTIFY after restore in %+v, last CSeq was %d", nt.d, inLast.d.LocalCSeq+1)
	}
	if got := pidfTuples(t, nt.req.Body); got["ID-balcony"] != "open" {
		t.Fatalf("tuples %v", got)
	}
	h2.g.Close(time.Second)
	for {
		select {
		case e := <-h2.out:
			if typ := e.AttrValue("type"); typ == "unsubscribed" || typ == "unsubscribe" {
				t.Errorf("spurious %s after the restore: %s", typ, e)
			}
			continue
		default:
		}
		break
	}
}

func TestPresenceRefusedNotRestored(t *testing.T) {
	// A subscription refused for good (403 to the initial SUBSCRIBE,
	// PRES-15) is not in the store: a restart does not subscribe again.
	checkPresenceLeaks(t)
	path := filepath.Join(t.TempDir(), "stox.db")
	st := openStore(t, path)
	t.Cleanup(func() { st.Close() })
	pc := fastPresence()
	pc.Store = st
	h := newPresenceHarness(t, pc)
	h.in(`<presence type='subscribe' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
	h.subscribeReq(3600).answer(403)
	h.presenceOut(romeoJID, julietJID, "unsubscribed")
	h.onLoop(func(*presenceEngine) {})
	h.g.Close(time.Second)
	st.Close()
	st = openStore(t, path) // what a restart reads
	n := 0
	if err := st.ForEach(bucketOut, func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d outbound records after a 403", n)
	}
}

// --- benchmarks ---

// settle waits until no NOTIFY or SUBSCRIBE of the engine is in flight or
// due.
func settle(tb testing.TB, p *presenceEngine) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		busy := false
		onLoop(tb, p, func(p *presenceEngine) {
			for _, dl := range p.inDlg {
				if dl.inFlight || dl.later != nil {
					busy = true
					return
				}
			}
			for _, o := range p.outs {
				if o.inFlight {
					busy = true
					return
				}
			}
		})
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("presence engine does not settle")
		}
		runtime.Gosched()
	}
}

// BenchmarkPresenceNotifyFanout: one XMPP presence change of a user fanned
// out as NOTIFYs to N watcher dialogs on one virtual subscription (PRES-02),
// through the fake SIP side answering 200 at once.
func BenchmarkPresenceNotifyFanout(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprint("dialogs=", n), func(b *testing.B) {
			ds := newFakeDialogSIP()
			ds.setAuto(true, answerAll(200))
			ds.answered = make(chan struct{}, 4*n)
			g := newPresenceGateway(b, ds, PresenceConfig{NotifyInterval: time.Nanosecond, MaxDialogsPerPair: n}, nil, func([]byte) error { return nil })
			b.Cleanup(func() { g.Close(time.Second) })
			for i := range n {
				if r := sipSubscribe(g, watcherDialog(fmt.Sprint("w", i), romeoURI), true, 3600); r.Code != 200 {
					b.Fatal(r.Code)
				}
			}
			sub, _ := parseStanza(`<presence type='subscribed' from='juliet@example.com' to='romeo\40example.net@sip.example.com'/>`)
			g.dispatch(sub)
			for range 2 * n { // pending and active
				<-ds.answered
			}
			settle(b, g.presence)
			var pres [2]*Element
			for i := range pres {
				pres[i], _ = parseStanza(fmt.Sprintf(`<presence from='juliet@example.com/balcony' to='romeo\40example.net@sip.example.com'><show>away</show><status>s%d</status><priority>1</priority></presence>`, i))
			}
			time.Sleep(time.Millisecond) // past NotifyInterval
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				g.dispatch(pres[i%2])
				i++
				for range n {
					<-ds.answered
				}
				settle(b, g.presence)
			}
			b.ReportMetric(float64(n), "notifies/op")
		})
	}
}

// BenchmarkPresenceHold: the memory one held subscription costs, from the
// heap before and after holding 10k of them: SIP watchers of XMPP users
// (one dialog each, authorized, presence known) and XMPP watchers of SIP
// users (one dialog each, active, one resource).
func BenchmarkPresenceHold(b *testing.B) {
	const subs = 10000
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	b.Run("sip_watches_xmpp", func(b *testing.B) {
		var total float64
		for range b.N {
			ds := newFakeDialogSIP()
			ds.setAuto(true, answerAll(200))
			g := newPresenceGateway(b, ds, PresenceConfig{NotifyInterval: time.Nanosecond}, nil, func([]byte) error { return nil })
			before := heap()
			for i := range subs {
				if r := sipSubscribe(g, watcherDialog(fmt.Sprint("w", i), fmt.Sprintf("sip:romeo%d@example.net", i)), true, 3600); r.Code != 200 {
					b.Fatal(r.Code)
				}
				if i%1000 == 999 {
					settle(b, g.presence)
				}
			}
			for i := range subs {
				for _, s := range []string{
					`<presence type='subscribed' from='juliet@example.com' to='romeo%d\40example.net@sip.example.com'/>`,
					`<presence from='juliet@example.com/balcony' to='romeo%d\40example.net@sip.example.com'/>`,
				} {
					e, _ := parseStanza(fmt.Sprintf(s, i))
					g.dispatch(e)
				}
				if i%1000 == 999 {
					settle(b, g.presence)
				}
			}
			settle(b, g.presence)
			onLoop(b, g.presence, func(p *presenceEngine) {
				if len(p.inDlg) != subs {
					b.Fatalf("%d dialogs", len(p.inDlg))
				}
			})
			total += float64(int64(heap())-int64(before)) / subs
			runtime.KeepAlive(g)
			g.Close(time.Second)
		}
		b.ReportMetric(total/float64(b.N), "bytes/sub")
	})
	b.Run("xmpp_watches_sip", func(b *testing.B) {
		var total float64
		for range b.N {
			ds := newFakeDialogSIP()
			var mu sync.Mutex
			var dialogs []sipside.Dialog // grown after the first heap reading
			ds.setAuto(true, func(c *dlgCall) (sipside.DialogResult, bool) {
				res := c.result(200)
				mu.Lock()
				dialogs = append(dialogs, res.Dialog)
				mu.Unlock()
				return res, true
			})
			g := newPresenceGateway(b, ds, PresenceConfig{}, nil, func([]byte) error { return nil })
			before := heap()
			for i := range subs {
				e, _ := parseStanza(fmt.Sprintf(`<presence type='subscribe' from='juliet@example.com' to='romeo%d\40example.net@sip.example.com'/>`, i))
				g.dispatch(e)
				if i%1000 == 999 {
					settle(b, g.presence)
				}
			}
			settle(b, g.presence)
			mu.Lock()
			ds2 := dialogs
			dialogs = nil
			mu.Unlock()
			if len(ds2) != subs {
				b.Fatalf("%d SUBSCRIBEs", len(ds2))
			}
			for _, d := range ds2 {
				user := strings.TrimPrefix(d.RemoteURI, "sip:")
				r := g.HandleSIPNotify(context.Background(), &sipside.IncomingNotify{
					CallID: d.CallID, LocalTag: d.LocalTag, RemoteTag: d.RemoteTag, From: d.RemoteURI, To: julietURI,
					Package: "presence", Event: "presence", SubscriptionState: "active;expires=3600", CSeq: 1,
					ContentType: mapping.ContentTypePIDF, Body: pidfBody("pres:"+user, "ID-desk=open"),
				})
				if r.Code != 200 {
					b.Fatal(r.Code)
				}
			}
			ds2 = nil
			settle(b, g.presence)
			total += float64(int64(heap())-int64(before)) / subs
			runtime.KeepAlive(g)
			g.Close(time.Second)
		}
		b.ReportMetric(total/float64(b.N), "bytes/sub")
	})
}
