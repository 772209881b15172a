package sipside

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// fastPathOf returns the fast path of u's UDP listener, nil when it has
// none (WithFastPath(false)).
func fastPathOf(t *testing.T, u *UA) *fastPath {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.state == nil {
		t.Fatal("UA not started")
	}
	return u.state.fast
}

// fastCounts returns the server and client transactions the fast path
// holds.
func fastCounts(f *fastPath) (srv, cli int) {
	for i := range f.srv {
		sh := &f.srv[i]
		sh.mu.Lock()
		srv += len(sh.m)
		sh.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return srv, len(f.cli)
}

// readResponse reads datagrams until a response arrives, or returns nil
// after timeout.
func (r *rawUDP) readResponse(timeout time.Duration) (*sip.Response, []byte) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		data, _ := r.read(left)
		if data == nil {
			return nil, nil
		}
		msg, err := sip.ParseMessage(data)
		if err != nil {
			r.t.Fatalf("peer got unparsable data: %v\n%s", err, data)
		}
		if res, ok := msg.(*sip.Response); ok {
			return res, data
		}
	}
}

func (r *rawUDP) send(to netip.AddrPort, data string) {
	r.t.Helper()
	if _, err := r.conn.WriteToUDPAddrPort([]byte(data), to); err != nil {
		r.t.Fatal(err)
	}
}

func toTag(res *sip.Response) string {
	tag, _ := res.To().Params.Get("tag")
	return tag
}

// blockingHandler calls count, signals entered and blocks until release is
// closed (or the UA closes), then answers 202.
type blockingHandler struct {
	entered chan *IncomingMessage
	release chan struct{}
	calls   chan struct{} // one value per call
}

func newBlockingHandler() *blockingHandler {
	return &blockingHandler{
		entered: make(chan *IncomingMessage, 16),
		release: make(chan struct{}),
		calls:   make(chan struct{}, 16),
	}
}

func (h *blockingHandler) handle(ctx context.Context, m *IncomingMessage) Reply {
	h.calls <- struct{}{}
	h.entered <- m
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return Reply{Code: 202}
}

func (h *blockingHandler) waitEntered(t *testing.T) *IncomingMessage {
	t.Helper()
	select {
	case m := <-h.entered:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("handler not called")
		return nil
	}
}

// TestFastPathAbsorbsRetransmissions: a MESSAGE retransmitted while its
// handler runs reaches the handler once and gets nothing; after the
// handler, each retransmission gets the same final response again, with
// the same To tag (RFC 3261 §17.2.2).
func TestFastPathAbsorbsRetransmissions(t *testing.T) {
	checkLeaks(t)
	h := newBlockingHandler()
	u := startUAOn(t, []string{"udp:127.0.0.1:0"}, WithMessageHandler(h.handle), fastCalls)
	f := fastPathOf(t, u)
	if f == nil {
		t.Fatal("no fast path")
	}
	peer := newRawUDP(t)
	to := addr(t, u, "udp")
	data := rawMessage("MESSAGE", fmt.Sprintf("sip:juliet@%s", to), stdHeaders("UDP", peer.port()), "hi")
	if _, ok := readRequest(data); !ok {
		t.Fatalf("the fast path declines the test request\n%s", data)
	}

	peer.send(to, data)
	peer.send(to, data)
	m := h.waitEntered(t)
	if string(m.Body) != "hi" || m.Transport != "udp" {
		t.Errorf("handler got %+v", m)
	}
	peer.send(to, data)
	if res, _ := peer.readResponse(100 * time.Millisecond); res != nil {
		t.Fatalf("response while the handler runs: %d", res.StatusCode)
	}
	if srv, _ := fastCounts(f); srv != 1 {
		t.Errorf("fast path holds %d server transactions, want 1", srv)
	}
	close(h.release)

	first, _ := peer.readResponse(2 * time.Second)
	if first == nil || first.StatusCode != 202 {
		t.Fatalf("first response %v", first)
	}
	peer.send(to, data)
	second, _ := peer.readResponse(2 * time.Second)
	if second == nil || second.StatusCode != 202 {
		t.Fatalf("second response %v", second)
	}
	if toTag(first) == "" || toTag(first) != toTag(second) {
		t.Errorf("To tags %q and %q", toTag(first), toTag(second))
	}
	if viaBranch := first.Via(); viaBranch == nil {
		t.Error("no Via in the response")
	} else if rp, _ := viaBranch.Params.Get("rport"); rp != fmt.Sprint(peer.port()) {
		t.Errorf("rport=%q, want %d", rp, peer.port())
	}
	if n := len(h.calls); n != 1 {
		t.Errorf("handler called %d times", n)
	}
	if st := u.Stats(); st.FastIn != 1 || st.UsualIn != 0 {
		t.Errorf("stats %+v, want one fast incoming", st)
	}
	if res, _ := peer.readResponse(50 * time.Millisecond); res != nil {
		t.Errorf("an extra response: %d", res.StatusCode)
	}
}

// TestFastPathSheds: beyond WithMaxIncoming a MESSAGE is answered 503 with
// Retry-After at once, and its retransmission gets the same answer; the
// handler never sees it.
func TestFastPathSheds(t *testing.T) {
	checkLeaks(t)
	h := newBlockingHandler()
	u := startUAOn(t, []string{"udp:127.0.0.1:0"}, WithMessageHandler(h.handle), WithMaxIncoming(1), fastCalls)
	peer := newRawUDP(t)
	to := addr(t, u, "udp")
	ruri := fmt.Sprintf("sip:juliet@%s", to)
	first := rawMessage("MESSAGE", ruri, stdHeaders("UDP", peer.port()), "one")
	second := rawMessage("MESSAGE", ruri, stdHeaders("UDP", peer.port()), "two")

	peer.send(to, first)
	h.waitEntered(t)
	peer.send(to, second)
	shed, _ := peer.readResponse(2 * time.Second)
	if shed == nil || shed.StatusCode != 503 {
		t.Fatalf("response %v, want 503", shed)
	}
	if ra := shed.GetHeader("Retry-After"); ra == nil || ra.Value() != fmt.Sprint(OverloadRetryAfter) {
		t.Errorf("Retry-After %v", ra)
	}
	peer.send(to, second)
	again, _ := peer.readResponse(2 * time.Second)
	if again == nil || again.StatusCode != 503 || toTag(again) != toTag(shed) {
		t.Errorf("retransmission answered %v", again)
	}
	close(h.release)
	if ok, _ := peer.readResponse(2 * time.Second); ok == nil || ok.StatusCode != 202 {
		t.Fatalf("first MESSAGE answered %v", ok)
	}
	if n := len(h.calls); n != 1 {
		t.Errorf("handler called %d times", n)
	}
}

type sendOutcome struct {
	res Result
	err error
}

func sendAsync(ctx context.Context, u *UA, m *OutgoingMessage) <-chan sendOutcome {
	done := make(chan sendOutcome, 1)
	go func() {
		res, err := u.SendMessage(ctx, m)
		done <- sendOutcome{res, err}
	}()
	return done
}

func messageTo(peer *rawUDP) *OutgoingMessage {
	return &OutgoingMessage{
		RequestURI: fmt.Sprintf("sip:juliet@127.0.0.1:%d", peer.port()),
		From:       "sip:romeo@example.net",
		To:         "sip:juliet@example.com",
		Body:       []byte("hi"),
	}
}

// readCopy reads the next datagram at the peer and checks that it is data
// again.
func readCopy(t *testing.T, peer *rawUDP, data []byte, timeout time.Duration) bool {
	t.Helper()
	got, _ := peer.read(timeout)
	if got == nil {
		return false
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("retransmission differs:\n%s\nfirst copy:\n%s", got, data)
	}
	return true
}

// TestFastPathClientRetransmits: a MESSAGE that gets no answer is sent
// again (Timer E), also after a provisional response (every T2), until the
// final response, which SendMessage returns.
func TestFastPathClientRetransmits(t *testing.T) {
	checkLeaks(t)
	u := startUAOn(t, []string{"udp:127.0.0.1:0"}, fastCalls)
	f := fastPathOf(t, u)
	peer := newRawUDP(t)
	ctx := ctxTimeout(t, 5*time.Second)

	done := sendAsync(ctx, u, messageTo(peer))
	req, data, from := peer.readRequest(2*time.Second, nil)
	if req == nil {
		t.Fatal("no request at the peer")
	}
	if _, cli := fastCounts(f); cli != 1 {
		t.Errorf("fast path holds %d client transactions, want 1", cli)
	}
	for i := range 2 {
		if !readCopy(t, peer, data, time.Second) {
			t.Fatalf("no retransmission %d", i+1)
		}
	}
	peer.respond(req, from, 100)
	if !readCopy(t, peer, data, time.Second) {
		t.Fatal("no retransmission after 100 Trying (Timer E at T2)")
	}
	peer.respond(req, from, 200)
	select {
	case o := <-done:
		if o.err != nil || o.res.Code != 200 || o.res.Parts != 1 {
			t.Fatalf("SendMessage: %+v %v", o.res, o.err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("SendMessage did not return")
	}
	if _, cli := fastCounts(f); cli != 0 {
		t.Errorf("fast path holds %d client transactions after the final response", cli)
	}
	if st := u.Stats(); st.FastOut != 1 || st.UsualOut != 0 {
		t.Errorf("stats %+v, want one fast outgoing", st)
	}
	// The final response again (a retransmission) finds no transaction.
	peer.respond(req, from, 200)
}

// TestFastPathClientTimeout: a peer that never answers gives ErrTimeout
// after WithTransactionTimeout (Timer F), with retransmissions before.
func TestFastPathClientTimeout(t *testing.T) {
	checkLeaks(t)
	u := startUAOn(t, []string{"udp:127.0.0.1:0"}, fastCalls, WithTransactionTimeout(300*time.Millisecond))
	f := fastPathOf(t, u)
	peer := newRawUDP(t)
	ctx := ctxTimeout(t, 5*time.Second)

	start := time.Now()
	done := sendAsync(ctx, u, messageTo(peer))
	_, data, _ := peer.readRequest(2*time.Second, nil)
	if data == nil {
		t.Fatal("no request at the peer")
	}
	copies := 1
	for readCopy(t, peer, data, 400*time.Millisecond) {
		copies++
	}
	var o sendOutcome
	select {
	case o = <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("SendMessage did not return")
	}
	if !errors.Is(o.err, ErrTimeout) {
		t.Fatalf("SendMessage: %+v %v, want ErrTimeout", o.res, o.err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("timed out after %v", took)
	}
	if copies < 3 {
		t.Errorf("%d copies sent, want retransmissions", copies)
	}
	if _, cli := fastCounts(f); cli != 0 {
		t.Errorf("fast path holds %d client transactions after Timer F", cli)
	}
}

// TestFastPathTimerE: Timer E doubles from T1 (RFC 3261 §17.1.2.2): the
// retransmissions come T1, 2*T1, 4*T1 apart. Only the lower bound of the
// second gap is checked: a late first retransmission may not make it
// shorter, as the timer is reset when it fires.
func TestFastPathTimerE(t *testing.T) {
	checkLeaks(t)
	const t1 = 100 * time.Millisecond
	slow := Option(func(c *config) error {
		c.callT1, c.callT2 = t1, 4*time.Second
		return nil
	})
	u := startUAOn(t, []string{"udp:127.0.0.1:0"}, slow)
	peer := newRawUDP(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := sendAsync(ctx, u, messageTo(peer))
	_, data, _ := peer.readRequest(2*time.Second, nil)
	if data == nil {
		t.Fatal("no request at the peer")
	}
	var at []time.Time
	for range 2 {
		if !readCopy(t, peer, data, time.Second) {
			t.Fatal("no retransmission")
		}
		at = append(at, time.Now())
	}
	if gap := at[1].Sub(at[0]); gap < 3*t1/2 {
		t.Errorf("second retransmission %v after the first, want 2*T1 = %v", gap, 2*t1)
	}
	cancel()
	<-done
}

// TestFastPathResponses: the fast path takes only the responses of its own
// client transactions; anything else goes on to sipgo.
func TestFastPathResponses(t *testing.T) {
	u := &UA{cfg: defaultConfig(), parser: sip.NewParser(sip.WithHeadersParsers(lenientHeaders()))}
	f := newFastPath(u, nil)
	from := netip.MustParseAddrPort("127.0.0.1:5060")
	response := func(code int, branch, method string, extra ...string) []byte {
		return []byte(wire(append([]string{
			fmt.Sprintf("SIP/2.0 %d %s", code, reasonPhrase(code)),
			"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=" + branch + ";rport=5070;received=127.0.0.1",
			"From: <sip:romeo@example.net>;tag=1",
			"To: <sip:juliet@example.com>;tag=2",
			"Call-ID: c1",
			"CSeq: 1 " + method,
		}, append(extra, "Content-Length: 0", "", "")...)...))
	}
	done := make(chan fastOutcome, 1)
	tx := &fastClientTx{interval: u.cfg.callT1, finish: func(res Result, err error) { done <- fastOutcome{res, err} }}
	f.cli["z9hG4bKknown"] = tx

	if f.handle(response(200, "z9hG4bKunknown", "MESSAGE"), from, false, nil) {
		t.Error("a response with an unknown branch was consumed")
	}
	if f.handle(response(200, "z9hG4bKknown", "INVITE"), from, false, nil) {
		t.Error("a response to another method was consumed")
	}
	if f.handle([]byte("SIP/2.0 200 OK\r\nCSeq: 1 MESSAGE\r\n\r\n"), from, false, nil) {
		t.Error("a response without Via was consumed")
	}
	if !f.handle(response(180, "z9hG4bKknown", "MESSAGE"), from, false, nil) {
		t.Error("a provisional response of a transaction was not consumed")
	}
	if _, cli := fastCounts(f); cli != 1 || tx.interval != u.cfg.callT2 {
		t.Errorf("after 180: %d transactions, interval %v", cli, tx.interval)
	}
	if !f.handle(response(302, "z9hG4bKknown", "MESSAGE", `Contact: "Juliet" <sip:juliet@192.0.2.20;gr=x>;q=1`), from, false, nil) {
		t.Fatal("the final response of a transaction was not consumed")
	}
	select {
	case o := <-done:
		want := Result{Code: 302, Reason: reasonPhrase(302), Contact: "sip:juliet@192.0.2.20;gr=x"}
		if o.err != nil || o.res != want {
			t.Errorf("outcome %+v %v, want %+v", o.res, o.err, want)
		}
	default:
		t.Error("no outcome")
	}
	if f.handle(response(302, "z9hG4bKknown", "MESSAGE"), from, false, nil) {
		t.Error("a retransmitted final response was consumed")
	}
	if f.handle([]byte("OPTIONS sip:a@b SIP/2.0\r\n\r\n"), from, false, nil) {
		t.Error("an OPTIONS was consumed")
	}
}

// TestFastPathUnknownResponseReachesSipgo: on a running UA, a response that
// matches no transaction goes on to sipgo, which drops it (IM-15).
func TestFastPathUnknownResponseReachesSipgo(t *testing.T) {
	checkLeaks(t)
	log, buf := newLogger(slog.LevelDebug)
	u := startUAOn(t, []string{"udp:127.0.0.1:0"}, WithLogger(log))
	peer := newRawUDP(t)
	peer.send(addr(t, u, "udp"), wire(
		"SIP/2.0 200 OK",
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKnobody;rport=5070",
		"From: <sip:romeo@example.net>;tag=1",
		"To: <sip:juliet@example.com>;tag=2",
		"Call-ID: c1",
		"CSeq: 1 MESSAGE",
		"Content-Length: 0", "", ""))
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(buf.String(), "sip response without transaction") {
		if time.Now().After(deadline) {
			t.Fatalf("sipgo did not see the response; log:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFastPathOff: WithFastPath(false) leaves MESSAGE to sipgo both ways.
func TestFastPathOff(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	u := startUAOn(t, []string{"udp:127.0.0.1:0"}, WithFastPath(false), WithMessageHandler(rec.handle), fastCalls)
	if f := fastPathOf(t, u); f != nil {
		t.Fatal("fast path present")
	}
	peer := newRawUDP(t)
	ctx := ctxTimeout(t, 5*time.Second)

	done := sendAsync(ctx, u, messageTo(peer))
	req, _, from := peer.readRequest(2*time.Second, nil)
	if req == nil {
		t.Fatal("no request at the peer")
	}
	peer.respond(req, from, 200)
	if o := <-done; o.err != nil || o.res.Code != 200 {
		t.Fatalf("SendMessage: %+v %v", o.res, o.err)
	}

	to := addr(t, u, "udp")
	peer.send(to, rawMessage("MESSAGE", fmt.Sprintf("sip:juliet@%s", to), stdHeaders("UDP", peer.port()), "hi"))
	res, _ := peer.readResponse(2 * time.Second)
	if res == nil || res.StatusCode != 202 {
		t.Fatalf("response %v", res)
	}
	if m := rec.wait(t); string(m.Body) != "hi" {
		t.Errorf("handler got %+v", m)
	}
	if st := u.Stats(); st.FastIn != 0 || st.FastOut != 0 || st.UsualIn != 1 || st.UsualOut != 1 {
		t.Errorf("stats %+v, want one usual each way", st)
	}
}

// TestStartMessage: StartMessage sends on the fast path and reports once,
// from another goroutine, what SendMessage would return; it declines what
// needs SendMessage; a cancelled context and Close end its transaction.
func TestStartMessage(t *testing.T) {
	checkLeaks(t)
	peer := newRawUDP(t)
	proxy := WithOutboundProxy(fmt.Sprintf("sip:127.0.0.1:%d", peer.port()))
	u := startUAOn(t, []string{"udp:127.0.0.1:0"}, proxy, fastCalls)
	outcomes := make(chan sendOutcome, 4)
	done := func(res Result, err error) { outcomes <- sendOutcome{res, err} }
	next := func(what string) sendOutcome {
		t.Helper()
		select {
		case o := <-outcomes:
			return o
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: no outcome", what)
		}
		return sendOutcome{}
	}

	if !u.StartMessage(context.Background(), messageTo(peer), done) {
		t.Fatal("StartMessage declined a MESSAGE to an IP outbound proxy over UDP")
	}
	req, _, from := peer.readRequest(2*time.Second, nil)
	if req == nil {
		t.Fatal("no request at the peer")
	}
	peer.respond(req, from, 202)
	if o := next("202"); o.err != nil || o.res.Code != 202 || o.res.Parts != 1 {
		t.Fatalf("outcome %+v %v", o.res, o.err)
	}
	if st := u.Stats(); st.FastOut != 1 {
		t.Errorf("stats %+v", st)
	}

	big := messageTo(peer)
	big.Body = bytes.Repeat([]byte("x"), 1400)
	if u.StartMessage(context.Background(), big, done) {
		t.Error("StartMessage took a MESSAGE over 1300 bytes")
	}
	bad := messageTo(peer)
	bad.CallID = "bad\r\nX: y"
	if u.StartMessage(context.Background(), bad, done) {
		t.Error("StartMessage took a Call-ID that SendMessage refuses")
	}

	ctx, cancel := context.WithCancel(context.Background())
	if !u.StartMessage(ctx, messageTo(peer), done) {
		t.Fatal("declined")
	}
	if req, _, _ := peer.readRequest(2*time.Second, nil); req == nil {
		t.Fatal("no request at the peer")
	}
	cancel()
	if o := next("cancel"); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("after cancel: %+v %v", o.res, o.err)
	}

	if !u.StartMessage(context.Background(), messageTo(peer), done) {
		t.Fatal("declined")
	}
	if req, _, _ := peer.readRequest(2*time.Second, nil); req == nil {
		t.Fatal("no request at the peer")
	}
	u.Close()
	if o := next("close"); !errors.Is(o.err, ErrClosed) {
		t.Fatalf("after Close: %+v %v", o.res, o.err)
	}
	select {
	case o := <-outcomes:
		t.Fatalf("a second outcome: %+v %v", o.res, o.err)
	default:
	}

	direct := startUAOn(t, []string{"udp:127.0.0.1:0"}, fastCalls)
	if direct.StartMessage(context.Background(), messageTo(peer), done) {
		t.Error("StartMessage took a MESSAGE without an outbound proxy (the next hop may need a lookup)")
	}
}

// TestFastPathInline: with WithInlineHandler, a MESSAGE whose turn has come
// is handled on the read loop while ready says so (OnReadLoop is true for
// the handler); otherwise, and when an earlier MESSAGE of its conversation
// is still being handled, on a worker, in its turn.
func TestFastPathInline(t *testing.T) {
	checkLeaks(t)
	type call struct {
		body   string
		onLoop bool
	}
	calls := make(chan call, 8)
	release := make(chan struct{})
	handler := func(ctx context.Context, m *IncomingMessage) Reply {
		calls <- call{string(m.Body), OnReadLoop(ctx)}
		if string(m.Body) == "blocks" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return Reply{Code: 202}
	}
	var ready atomic.Bool
	u := startUAOn(t, []string{"udp:127.0.0.1:0"}, WithMessageHandler(handler), WithInlineHandler(ready.Load), fastCalls)
	peer := newRawUDP(t)
	to := addr(t, u, "udp")
	ruri := fmt.Sprintf("sip:juliet@%s", to)
	send := func(body string) { peer.send(to, rawMessage("MESSAGE", ruri, stdHeaders("UDP", peer.port()), body)) }
	expectCall := func(want call) {
		t.Helper()
		select {
		case c := <-calls:
			if c != want {
				t.Fatalf("handler call %+v, want %+v", c, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no handler call for %q", want.body)
		}
	}
	expect202 := func() {
		t.Helper()
		if res, _ := peer.readResponse(5 * time.Second); res == nil || res.StatusCode != 202 {
			t.Fatalf("response %v, want 202", res)
		}
	}

	ready.Store(true)
	send("one")
	expectCall(call{"one", true})
	expect202()

	ready.Store(false)
	send("blocks")
	expectCall(call{"blocks", false})

	ready.Store(true)
	send("after") // same conversation: waits for "blocks", on a worker
	select {
	case c := <-calls:
		t.Fatalf("handler called for %+v before the earlier MESSAGE of its conversation ended", c)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	expectCall(call{"after", false})
	expect202()
	expect202()
	if st := u.Stats(); st.FastIn != 3 || st.FastInline != 1 {
		t.Errorf("stats %+v, want 3 fast incoming, 1 of them inline", st)
	}
}

// QueueMessage holds requests back until FlushMessages sends them, more
// than one system call's batch included; a request nobody flushes leaves
// with the next tick of the retransmission timers.
func TestQueueMessage(t *testing.T) {
	checkLeaks(t)
	peer := newRawUDP(t)
	proxy := WithOutboundProxy(fmt.Sprintf("sip:127.0.0.1:%d", peer.port()))
	slowTimers := Option(func(c *config) error {
		c.callT1, c.callT2 = 2*time.Second, 4*time.Second // ticks every 500 ms
		return nil
	})
	u := startUAOn(t, []string{"udp:127.0.0.1:0"}, proxy, slowTimers)
	const n = batchSlots + 4
	outcomes := make(chan sendOutcome, n+1)
	done := func(res Result, err error) { outcomes <- sendOutcome{res, err} }
	for i := range n {
		m := messageTo(peer)
		m.Body = []byte(fmt.Sprintf("message %d", i))
		if !u.QueueMessage(context.Background(), m, done) {
			t.Fatalf("QueueMessage declined message %d", i)
		}
	}
	if held := u.Stats().FastOut; held != n {
		t.Errorf("FastOut %d, want %d", held, n)
	}
	u.mu.Lock()
	batched := u.state.fast.held != nil
	u.mu.Unlock()
	if batched {
		if req, _, _ := peer.readRequest(100*time.Millisecond, nil); req != nil {
			t.Fatal("a held request left before FlushMessages")
		}
	}
	u.FlushMessages()
	for i := range n {
		req, _, from := peer.readRequest(2*time.Second, nil)
		if req == nil {
			t.Fatalf("request %d of %d did not arrive", i, n)
		}
		if want := fmt.Sprintf("message %d", i); string(req.Body()) != want {
			t.Errorf("request %d: body %q, want %q", i, req.Body(), want)
		}
		peer.respond(req, from, 202)
	}
	for i := range n {
		select {
		case o := <-outcomes:
			if o.err != nil || o.res.Code != 202 {
				t.Fatalf("outcome %d: %+v %v", i, o.res, o.err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("outcome %d of %d missing", i, n)
		}
	}

	// Nobody flushes: the timers' tick sends it, before Timer E (2 s).
	if !u.QueueMessage(context.Background(), messageTo(peer), done) {
		t.Fatal("declined")
	}
	start := time.Now()
	req, _, from := peer.readRequest(3*time.Second, nil)
	if req == nil {
		t.Fatal("an unflushed request never left")
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("the unflushed request left after %v, not at the next tick", d)
	}
	peer.respond(req, from, 202)
	if o := <-outcomes; o.err != nil || o.res.Code != 202 {
		t.Fatalf("outcome %+v %v", o.res, o.err)
	}
}

// The sweep forgets exactly the transactions whose Timer J has fired, in
// any mix of sweeps, compactions and additions.
func TestSrvShardSweep(t *testing.T) {
	sh := &srvShard{m: map[string]*fastServerTx{}}
	add := func(k string, at int64) {
		sh.m[k] = &fastServerTx{completed: true}
		sh.expiry = append(sh.expiry, srvExpiry{key: k, at: at})
	}
	want := map[string]int64{}
	next := 0
	for round := range 50 {
		for range round % 7 {
			k := fmt.Sprint("k", next)
			add(k, int64(next))
			want[k] = int64(next)
			next++
		}
		now := int64(next - round%5)
		sh.sweepLocked(now)
		for k, at := range want {
			if at <= now {
				delete(want, k)
			}
		}
		if len(sh.m) != len(want) || len(sh.expiry)-sh.head != len(want) {
			t.Fatalf("round %d: map %d, expiry %d, want %d", round, len(sh.m), len(sh.expiry)-sh.head, len(want))
		}
		for k := range want {
			if sh.m[k] == nil {
				t.Fatalf("round %d: %s forgotten early", round, k)
			}
		}
		if sh.head > len(sh.expiry)/2 && sh.head > 0 {
			t.Fatalf("round %d: not compacted: head %d of %d", round, sh.head, len(sh.expiry))
		}
	}
}
