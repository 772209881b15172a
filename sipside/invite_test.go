package sipside

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/stox-gw/stox/sipside/sdp"
)

// fastCalls shortens T1 and T2 of INVITE sessions: 2xx retransmissions
// every 20..80 ms and an ACK timeout of 64*T1 = 1.28 s.
var fastCalls = Option(func(c *config) error {
	c.callT1, c.callT2 = 20*time.Millisecond, 80*time.Millisecond
	return nil
})

func msrpSDP(t *testing.T, offer bool, port int) []byte {
	t.Helper()
	m := sdp.MSRPMedia{
		Addr: "127.0.0.1", Port: port,
		Path:        []string{fmt.Sprintf("msrp://127.0.0.1:%d/s%d;tcp", port, port)},
		AcceptTypes: []string{"message/cpim", "text/plain"},
	}
	var b []byte
	var err error
	if offer {
		b, err = sdp.BuildOffer(sdp.Origin{Username: "stox", SessionID: 1, SessionVersion: 1}, m)
	} else {
		b, err = sdp.BuildAnswer(sdp.Origin{Username: "stox", SessionID: 2, SessionVersion: 1}, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// callee is an InviteHandler test double. Its reply function decides; by
// default it accepts with an SDP answer. Then reports every call (or nil)
// on thens.
type callee struct {
	t     *testing.T
	mu    sync.Mutex
	invs  []*IncomingInvite
	reply func(ctx context.Context, inv *IncomingInvite) InviteReply
	got   chan *IncomingInvite
	thens chan *Call
}

func newCallee(t *testing.T) *callee {
	return &callee{t: t, got: make(chan *IncomingInvite, 16), thens: make(chan *Call, 16)}
}

func (c *callee) handle(ctx context.Context, inv *IncomingInvite) InviteReply {
	c.mu.Lock()
	c.invs = append(c.invs, inv)
	f := c.reply
	c.mu.Unlock()
	c.got <- inv
	var r InviteReply
	if f != nil {
		r = f(ctx, inv)
	} else {
		r = InviteReply{Code: 200, Body: msrpSDP(c.t, false, 2856)}
	}
	r.Then = func(call *Call) { c.thens <- call }
	return r
}

func (c *callee) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.invs)
}

func (c *callee) waitInvite(t *testing.T) *IncomingInvite {
	t.Helper()
	select {
	case inv := <-c.got:
		return inv
	case <-time.After(5 * time.Second):
		t.Fatal("no INVITE reached the handler")
		return nil
	}
}

func (c *callee) waitThen(t *testing.T) *Call {
	t.Helper()
	select {
	case call := <-c.thens:
		return call
	case <-time.After(5 * time.Second):
		t.Fatal("Then was not called")
		return nil
	}
}

func waitDone(t *testing.T, c *Call, reason string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("call %s did not end", c.ID())
	}
	if got := c.EndReason(); got != reason {
		t.Errorf("end reason %q, want %q", got, reason)
	}
}

func waitNoCalls(t *testing.T, uas ...*UA) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, u := range uas {
		for {
			u.calls.mu.Lock()
			n := len(u.calls.byKey) + u.calls.pending
			u.calls.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d calls left", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestCallBothWays: two sipside UAs call each other over UDP and TCP with
// an MSRP offer and answer, each side ends one call with BYE (RFC 3261
// §13, §15; RFC 7573 §4, §5).
func TestCallBothWays(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			checkLeaks(t)
			ca, cb := newCallee(t), newCallee(t)
			a := startUA(t, WithInviteHandler(ca.handle))
			b := startUA(t, WithInviteHandler(cb.handle))
			ctx := ctxTimeout(t, 10*time.Second)
			for i, dir := range []struct {
				name     string
				from, to *UA
				rec      *callee
			}{{"a->b", a, b, cb}, {"b->a", b, a, ca}} {
				offer := msrpSDP(t, true, 2855)
				ruri := fmt.Sprintf("sip:juliet@%s;transport=%s", addr(t, dir.to, tp), tp)
				call, res, err := dir.from.Invite(ctx, &OutgoingInvite{
					RequestURI: ruri, From: "sip:romeo@example.net", To: "sip:juliet@example.com",
					FromDisplay: `Romeo "M"`, Subject: "chat", Body: offer,
				})
				if err != nil || call == nil {
					t.Fatalf("%s: Invite: %v", dir.name, err)
				}
				if res.Code != 200 || res.Err() != nil || res.ContentType != "application/sdp" {
					t.Fatalf("%s: result %+v", dir.name, res)
				}
				if m, err := sdp.ParseMSRP(res.Body); err != nil || m.Port != 2856 {
					t.Errorf("%s: answer %+v %v", dir.name, m, err)
				}
				inv := dir.rec.waitInvite(t)
				if inv.From != "sip:romeo@example.net" || inv.To != "sip:juliet@example.com" || inv.FromDisplay != `Romeo "M"` ||
					inv.Subject != "chat" || inv.ContentType != "application/sdp" || string(inv.Body) != string(offer) ||
					inv.Transport != tp || inv.RequestURI != ruri || inv.Source.Addr() != netip.MustParseAddr("127.0.0.1") {
					t.Errorf("%s: incoming %+v", dir.name, inv)
				}
				peer := dir.rec.waitThen(t)
				if peer == nil {
					t.Fatalf("%s: Then got no call", dir.name)
				}
				cd, pd := call.Dialog(), peer.Dialog()
				if cd.CallID != pd.CallID || cd.LocalTag != pd.RemoteTag || cd.RemoteTag != pd.LocalTag || cd.LocalTag == "" || cd.RemoteTag == "" {
					t.Errorf("%s: dialogs do not mirror:\n%+v\n%+v", dir.name, cd, pd)
				}
				if !strings.Contains(cd.RemoteTarget, addr(t, dir.to, tp).String()) || !strings.Contains(pd.RemoteTarget, addr(t, dir.from, tp).String()) {
					t.Errorf("%s: remote targets %q %q", dir.name, cd.RemoteTarget, pd.RemoteTarget)
				}
				if inv.Dialog.LocalTag != pd.LocalTag {
					t.Errorf("%s: handler saw local tag %q, call has %q", dir.name, inv.Dialog.LocalTag, pd.LocalTag)
				}
				if call.ID() == peer.ID() || !strings.HasPrefix(call.ID(), cd.CallID) || call.Incoming() || !peer.Incoming() {
					t.Errorf("%s: ids %q %q", dir.name, call.ID(), peer.ID())
				}
				// The caller ends the first call, the callee the second.
				ender, other := call, peer
				if i == 1 {
					ender, other = peer, call
				}
				if err := ender.Bye(ctx); err != nil {
					t.Fatalf("%s: Bye: %v", dir.name, err)
				}
				waitDone(t, ender, EndLocal)
				waitDone(t, other, EndBye)
				if err := ender.Bye(ctx); err != nil {
					t.Errorf("%s: second Bye: %v", dir.name, err)
				}
				if err := other.Bye(ctx); err != nil {
					t.Errorf("%s: Bye after the peer's: %v", dir.name, err)
				}
				if d := ender.Dialog(); d.LocalCSeq != cd.LocalCSeq+1 && d.LocalCSeq != pd.LocalCSeq+1 {
					t.Errorf("%s: CSeq after BYE %d", dir.name, d.LocalCSeq)
				}
			}
			waitNoCalls(t, a, b)
		})
	}
}

// TestInviteRefused: failure replies reach the caller as a Result with a
// nil Call; Then sees nil.
func TestInviteRefused(t *testing.T) {
	checkLeaks(t)
	cb := newCallee(t)
	a := startUA(t)
	b := startUA(t, WithInviteHandler(cb.handle))
	ctx := ctxTimeout(t, 10*time.Second)
	for _, c := range []struct {
		reply InviteReply
		code  int
	}{
		{InviteReply{Code: 486, Headers: map[string]string{"Retry-After": "60"}}, 486},
		{InviteReply{Code: 488, Headers: map[string]string{"Accept": "application/sdp", "Via": "x"}}, 488},
		{InviteReply{Code: 603, Reason: "Not Now"}, 603},
		{InviteReply{Code: 200}, 500}, // a 2xx without an answer
		{InviteReply{Code: 42}, 500},  // not a final status
		{InviteReply{Code: 180}, 500}, // provisional
		{InviteReply{Code: 302, Headers: map[string]string{"Contact": "<sip:elsewhere@example.com>"}}, 302},
	} {
		t.Run(fmt.Sprint(c.reply.Code), func(t *testing.T) {
			cb.mu.Lock()
			cb.reply = func(context.Context, *IncomingInvite) InviteReply { return c.reply }
			cb.mu.Unlock()
			call, res, err := a.Invite(ctx, &OutgoingInvite{
				RequestURI: fmt.Sprintf("sip:juliet@%s", addr(t, b, "udp")),
				From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: msrpSDP(t, true, 2855),
			})
			if err != nil || call != nil {
				t.Fatalf("Invite: %v %v", call, err)
			}
			var se *StatusError
			if res.Code != c.code || !errors.As(res.Err(), &se) || se.Code != c.code {
				t.Errorf("result %+v, want %d", res, c.code)
			}
			if c.reply.Reason != "" && res.Reason != c.reply.Reason {
				t.Errorf("reason %q", res.Reason)
			}
			if c.code == 302 && res.Contact != "sip:elsewhere@example.com" {
				t.Errorf("302 contact %q", res.Contact)
			}
			if got := cb.waitThen(t); got != nil {
				t.Errorf("Then got a call")
			}
			cb.waitInvite(t)
		})
	}
	waitNoCalls(t, a, b)
}

// TestInviteCancel: a caller that gives up CANCELs (RFC 3261 §9.1); the
// callee's handler sees its context end, and nothing is left behind.
func TestInviteCancel(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			checkLeaks(t)
			cb := newCallee(t)
			ended := make(chan error, 1)
			cb.reply = func(ctx context.Context, _ *IncomingInvite) InviteReply {
				<-ctx.Done()
				ended <- ctx.Err()
				return InviteReply{Code: 200, Body: []byte("v=0\r\n")}
			}
			a := startUA(t, fastCalls)
			b := startUA(t, WithInviteHandler(cb.handle), fastCalls)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				cb.waitInvite(t)
				time.Sleep(300 * time.Millisecond) // after sipgo's 100 Trying (200 ms)
				cancel()
			}()
			call, _, err := a.Invite(ctx, &OutgoingInvite{
				RequestURI: fmt.Sprintf("sip:juliet@%s;transport=%s", addr(t, b, tp), tp),
				From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: msrpSDP(t, true, 2855),
			})
			if call != nil || !errors.Is(err, context.Canceled) {
				t.Fatalf("Invite: %v %v", call, err)
			}
			select {
			case err := <-ended:
				if err == nil {
					t.Error("handler context not cancelled")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the CANCEL did not reach the handler")
			}
			if got := cb.waitThen(t); got != nil {
				t.Error("Then got a call after CANCEL")
			}
			waitNoCalls(t, a, b)
		})
	}
}

// rawPeer is a raw UDP SIP peer for wire-level tests.
type rawPeer struct {
	*rawUDP
	ua     netip.AddrPort // the UA's UDP listener
	callID string
	tag    string
}

func newRawPeer(t *testing.T, ua *UA) *rawPeer {
	return &rawPeer{rawUDP: newRawUDP(t), ua: addr(t, ua, "udp"), callID: "call-" + nextBranch(), tag: "raw" + nextBranch()[14:]}
}

func (p *rawPeer) send(data string) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort([]byte(data), p.ua); err != nil {
		p.t.Fatal(err)
	}
}

// headers are those of a request of the raw peer's dialog.
func (p *rawPeer) headers(method string, cseq int, branch, toTag string, extra ...string) []string {
	to := "To: <sip:juliet@example.com>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	return append([]string{
		fmt.Sprintf("Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport", p.port(), branch),
		"Max-Forwards: 70",
		fmt.Sprintf("From: \"Romeo\" <sip:romeo@example.net>;tag=%s", p.tag),
		to,
		"Call-ID: " + p.callID,
		fmt.Sprintf("CSeq: %d %s", cseq, method),
		fmt.Sprintf("Contact: <sip:romeo@127.0.0.1:%d>", p.port()),
	}, extra...)
}

func (p *rawPeer) ruri() string { return "sip:juliet@" + p.ua.String() }

// next returns the next message, nil after timeout.
func (p *rawPeer) next(timeout time.Duration) sip.Message {
	p.t.Helper()
	data, _ := p.read(timeout)
	if data == nil {
		return nil
	}
	msg, err := sip.ParseMessage(data)
	if err != nil {
		p.t.Fatalf("unparsable: %v\n%s", err, data)
	}
	return msg
}

// final returns the next final response, skipping provisional ones.
func (p *rawPeer) final(timeout time.Duration) *sip.Response {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		msg := p.next(time.Until(deadline))
		if res, ok := msg.(*sip.Response); ok && !res.IsProvisional() {
			return res
		}
		if msg == nil {
			return nil
		}
	}
	return nil
}

// TestInviteRefusals: answers sipside gives before the handler, to raw
// requests over UDP.
func TestInviteRefusals(t *testing.T) {
	checkLeaks(t)
	cb := newCallee(t)
	b := startUA(t, WithInviteHandler(cb.handle))
	offer := string(msrpSDP(t, true, 2855))
	p := newRawPeer(t, b)
	inv := func(extra ...string) []string { return p.headers("INVITE", 1, nextBranch(), "", extra...) }
	cases := []struct {
		name    string
		method  string
		headers []string
		body    string
		code    int
		header  string // "Name: value" the response must carry
	}{
		{"text body", "INVITE", inv("Content-Type: text/plain"), "hello", 415, "Accept: application/sdp"},
		{"no body", "INVITE", inv(), "", 488, ""},
		{"gzip", "INVITE", inv("Content-Type: application/sdp", "Content-Encoding: gzip"), offer, 415, "Accept-Encoding: identity"},
		{"no contact", "INVITE", replace(inv("Content-Type: application/sdp"), "Contact:", ""), offer, 400, ""},
		{"require", "INVITE", inv("Content-Type: application/sdp", "Require: 100rel"), offer, 420, "Unsupported: 100rel"},
		{"unknown dialog", "INVITE", p.headers("INVITE", 2, nextBranch(), "nope", "Content-Type: application/sdp"), offer, 481, ""},
		{"malformed", "INVITE", replace(inv("Content-Type: application/sdp"), "Call-ID:", ""), offer, 400, ""},
		{"bye unknown dialog", "BYE", p.headers("BYE", 2, nextBranch(), "nope"), "", 481, ""},
		{"bye no to tag", "BYE", p.headers("BYE", 2, nextBranch(), ""), "", 481, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := sendRawUDP(t, p.ua, rawMessage(c.method, p.ruri(), c.headers, c.body))
			if res == nil || res.StatusCode != c.code {
				t.Fatalf("response %v, want %d", res, c.code)
			}
			if c.header != "" {
				name, value, _ := strings.Cut(c.header, ": ")
				if h := res.GetHeader(name); h == nil || h.Value() != value {
					t.Errorf("%s = %v, want %q", name, h, value)
				}
			}
		})
	}
	if n := cb.count(); n != 0 {
		t.Errorf("handler called %d times", n)
	}

	// An untrusted source gets 403 before anything else.
	log, _ := newLogger(0)
	strict, err := New(WithListen("udp:127.0.0.1:0"), WithTrusted(netip.MustParsePrefix("10.0.0.0/8")), WithInviteHandler(cb.handle), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := strict.Start(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	if res := sendRawUDP(t, addr(t, strict, "udp"), rawMessage("INVITE", p.ruri(), inv("Content-Type: application/sdp"), offer)); res == nil || res.StatusCode != 403 {
		t.Errorf("untrusted: %v", res)
	}
	// OPTIONS lists the INVITE methods.
	res := sendRawUDP(t, p.ua, rawMessage("OPTIONS", p.ruri(), p.headers("OPTIONS", 1, nextBranch(), ""), ""))
	if h := res.GetHeader("Allow"); h == nil || h.Value() != "ACK, BYE, CANCEL, INVITE, OPTIONS" {
		t.Errorf("Allow %v", h)
	}
}

// TestInviteRawDialog drives a call from a raw UAC over UDP: the 2xx (To
// tag, Contact, Record-Route, Allow), the ACK, a re-INVITE (488), the
// callee's BYE along the route set, then BYE for the ended dialog (481).
func TestInviteRawDialog(t *testing.T) {
	checkLeaks(t)
	cb := newCallee(t)
	b := startUA(t, WithInviteHandler(cb.handle))
	p := newRawPeer(t, b)
	offer := string(msrpSDP(t, true, 2855))
	rr := fmt.Sprintf("<sip:127.0.0.1:%d;lr>", p.port())
	p.send(rawMessage("INVITE", p.ruri(), p.headers("INVITE", 1, nextBranch(), "",
		"Record-Route: "+rr, "Content-Type: application/sdp"), offer))
	inv := cb.waitInvite(t)
	if !slices.Equal(inv.Dialog.RouteSet, []string{strings.Trim(rr, "<>")}) || inv.Dialog.RemoteCSeq != 1 || inv.Dialog.RemoteTag != p.tag {
		t.Errorf("dialog %+v", inv.Dialog)
	}
	res := p.final(5 * time.Second)
	if res == nil || res.StatusCode != 200 {
		t.Fatalf("response %v", res)
	}
	toTag, _ := res.To().Params.Get("tag")
	if toTag != inv.Dialog.LocalTag || res.Contact() == nil || res.GetHeader("Record-Route") == nil ||
		!strings.Contains(res.GetHeader("Allow").Value(), "INVITE") || res.ContentType().Value() != "application/sdp" {
		t.Errorf("2xx:\n%s", res)
	}
	if !strings.Contains(res.Contact().Address.String(), addr(t, b, "udp").String()) || res.Contact().Address.User != "juliet" {
		t.Errorf("contact %s", res.Contact())
	}
	// ACK in a new transaction.
	p.send(rawMessage("ACK", res.Contact().Address.String(), replace(p.headers("ACK", 1, nextBranch(), toTag), "Contact:", ""), ""))
	call := cb.waitThen(t)
	if call == nil {
		t.Fatal("no call after ACK")
	}
	// A re-INVITE is refused (no renegotiation) and its 488 ACKed.
	branch := nextBranch()
	p.send(rawMessage("INVITE", p.ruri(), p.headers("INVITE", 2, branch, toTag, "Content-Type: application/sdp"), offer))
	if res := p.final(5 * time.Second); res == nil || res.StatusCode != 488 {
		t.Fatalf("re-INVITE: %v", res)
	}
	p.send(rawMessage("ACK", p.ruri(), replace(p.headers("ACK", 2, branch, toTag), "Contact:", ""), ""))
	select {
	case <-call.Done():
		t.Fatal("re-INVITE ended the call")
	default:
	}

	// The callee's BYE goes to the first route, with the Route header.
	byeErr := make(chan error, 1)
	go func() { byeErr <- call.Bye(context.Background()) }()
	bye, _, from := p.readRequest(5*time.Second, map[string]bool{})
	if bye == nil || bye.Method != sip.BYE {
		t.Fatalf("got %v", bye)
	}
	if r := bye.Route(); r == nil || r.Address.String() != strings.Trim(rr, "<>") || bye.Recipient.Port != p.port() ||
		bye.CSeq().SeqNo != 1 || bye.Contact() != nil {
		t.Errorf("BYE:\n%s", bye)
	}
	if tag, _ := bye.From().Params.Get("tag"); tag != toTag {
		t.Errorf("BYE From tag %q", tag)
	}
	p.respond(bye, from, 200)
	if err := <-byeErr; err != nil {
		t.Errorf("Bye: %v", err)
	}
	waitDone(t, call, EndLocal)
	res = sendRawUDP(t, p.ua, rawMessage("BYE", p.ruri(), p.headers("BYE", 3, nextBranch(), toTag), ""))
	if res == nil || res.StatusCode != 481 {
		t.Errorf("BYE after the end: %v", res)
	}
	waitNoCalls(t, b)
}

// TestInviteAckTimeout: a caller that never ACKs gets the 2xx again and
// again (RFC 3261 §13.3.1.4: T1 doubling to T2), then, after 64*T1, a BYE;
// Then sees nil.
func TestInviteAckTimeout(t *testing.T) {
	checkLeaks(t)
	cb := newCallee(t)
	b := startUA(t, WithInviteHandler(cb.handle), fastCalls)
	p := newRawPeer(t, b)
	p.send(rawMessage("INVITE", p.ruri(), p.headers("INVITE", 1, nextBranch(), "", "Content-Type: application/sdp"), string(msrpSDP(t, true, 2855))))
	oks := 0
	var bye *sip.Request
	var from *net.UDPAddr
	deadline := time.Now().Add(5 * time.Second)
	for bye == nil && time.Now().Before(deadline) {
		data, a := p.read(time.Until(deadline))
		if data == nil {
			t.Fatal("no BYE")
		}
		msg, err := sip.ParseMessage(data)
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *sip.Response:
			if m.StatusCode == 200 {
				oks++
			}
		case *sip.Request:
			bye, from = m, a
		}
	}
	if bye == nil || bye.Method != sip.BYE {
		t.Fatalf("got %v", bye)
	}
	if oks < 5 {
		t.Errorf("2xx sent %d times before the BYE", oks)
	}
	p.respond(bye, from, 200)
	if got := cb.waitThen(t); got != nil {
		t.Error("Then got a call without ACK")
	}
	waitNoCalls(t, b)
}

// TestInviteRawUAS: our INVITE on the wire and the dialog built from the
// 2xx: route set from Record-Route reversed (RFC 3261 §12.1.2), ACK and
// BYE along it, the ACK repeated for a retransmitted 2xx.
func TestInviteRawUAS(t *testing.T) {
	checkLeaks(t)
	a := startUA(t)
	p := newRawUDP(t)
	ctx := ctxTimeout(t, 10*time.Second)
	type outcome struct {
		call *Call
		res  InviteResult
		err  error
	}
	done := make(chan outcome, 1)
	go func() {
		call, res, err := a.Invite(ctx, &OutgoingInvite{
			RequestURI: fmt.Sprintf("sip:bob@127.0.0.1:%d", p.port()), From: "sip:juliet@example.com;gr=x",
			To: "sip:bob@example.net", Body: msrpSDP(t, true, 2855), CallID: "thread-42",
		})
		done <- outcome{call, res, err}
	}()
	seen := map[string]bool{}
	inv, _, from := p.readRequest(5*time.Second, seen)
	if inv == nil || inv.Method != sip.INVITE {
		t.Fatalf("got %v", inv)
	}
	if tag, _ := inv.To().Params.Get("tag"); tag != "" || inv.CallID().Value() != "thread-42" || inv.ContentType().Value() != "application/sdp" ||
		inv.Contact() == nil || !strings.Contains(inv.Contact().Address.String(), addr(t, a, "udp").String()) ||
		inv.GetHeader("Allow") == nil || inv.CSeq().SeqNo != 1 {
		t.Errorf("INVITE:\n%s", inv)
	}
	rr := fmt.Sprintf("sip:127.0.0.1:%d;lr", p.port())
	ok := sip.NewResponseFromRequest(inv, 200, "OK", msrpSDP(t, false, 2856))
	ok.To().Params.Add("tag", "uas1")
	ok.AppendHeader(sip.NewHeader("Record-Route", "<sip:10.0.0.9;lr>"))
	ok.AppendHeader(sip.NewHeader("Record-Route", "<"+rr+">"))
	ok.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: p.port()}})
	ct := sip.ContentTypeHeader("application/sdp")
	ok.AppendHeader(&ct)
	wire := []byte(ok.String())
	p.conn.WriteToUDP([]byte(sip.NewResponseFromRequest(inv, 180, "Ringing", nil).String()), from)
	p.conn.WriteToUDP(wire, from)
	o := <-done
	if o.err != nil || o.call == nil || o.res.Code != 200 || len(o.res.Body) == 0 {
		t.Fatalf("Invite: %+v", o)
	}
	d := o.call.Dialog()
	if !slices.Equal(d.RouteSet, []string{rr, "sip:10.0.0.9;lr"}) || d.RemoteTag != "uas1" || d.RemoteTarget != fmt.Sprintf("sip:bob@127.0.0.1:%d", p.port()) || d.CallID != "thread-42" {
		t.Errorf("dialog %+v", d)
	}
	checkInDialog := func(req *sip.Request, method sip.RequestMethod, cseq uint32) {
		t.Helper()
		if req == nil || req.Method != method {
			t.Fatalf("want %s, got %v", method, req)
		}
		routes := req.GetHeaders("Route")
		if len(routes) != 2 || !strings.Contains(routes[0].Value(), rr) || !strings.Contains(routes[1].Value(), "10.0.0.9") ||
			req.Recipient.User != "bob" || req.CSeq().SeqNo != cseq || req.Contact() != nil {
			t.Errorf("%s:\n%s", method, req)
		}
		if tag, _ := req.To().Params.Get("tag"); tag != "uas1" {
			t.Errorf("%s To tag %q", method, tag)
		}
	}
	ack, _, _ := p.readRequest(5*time.Second, seen)
	checkInDialog(ack, sip.ACK, 1)
	// A retransmitted 2xx gets the ACK again.
	p.conn.WriteToUDP(wire, from)
	ack2, _, _ := p.readRequest(5*time.Second, nil)
	checkInDialog(ack2, sip.ACK, 1)

	byeErr := make(chan error, 1)
	go func() { byeErr <- o.call.Bye(ctx) }()
	bye, _, bfrom := p.readRequest(5*time.Second, seen)
	checkInDialog(bye, sip.BYE, 2)
	p.respond(bye, bfrom, 200)
	if err := <-byeErr; err != nil {
		t.Errorf("Bye: %v", err)
	}
	waitNoCalls(t, a)
}

// TestCloseEndsCalls: UA Close ends every call without BYE; Invite after
// Close fails.
func TestCloseEndsCalls(t *testing.T) {
	checkLeaks(t)
	ca, cb := newCallee(t), newCallee(t)
	a := startUA(t, WithInviteHandler(ca.handle))
	b := startUA(t, WithInviteHandler(cb.handle))
	ctx := ctxTimeout(t, 10*time.Second)
	out := &OutgoingInvite{
		RequestURI: fmt.Sprintf("sip:juliet@%s", addr(t, b, "udp")),
		From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: msrpSDP(t, true, 2855),
	}
	call, _, err := a.Invite(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	peer := cb.waitThen(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, peer, EndClosed)
	select {
	case <-call.Done():
		t.Error("the caller's call ended: Close sent BYE?")
	case <-time.After(200 * time.Millisecond):
	}
	if err := peer.Bye(ctx); err != nil {
		t.Errorf("Bye after Close: %v", err)
	}
	if _, _, err := b.Invite(ctx, out); !errors.Is(err, ErrClosed) {
		t.Errorf("Invite after Close: %v", err)
	}
	a.Close()
	waitDone(t, call, EndClosed)
}

// TestMaxCalls: WithMaxCalls bounds both directions: 503 with Retry-After
// for an incoming INVITE, ErrTooManyCalls for Invite.
func TestMaxCalls(t *testing.T) {
	checkLeaks(t)
	cb := newCallee(t)
	a := startUA(t, WithMaxCalls(1))
	b := startUA(t, WithInviteHandler(cb.handle), WithMaxCalls(1))
	c := startUA(t)
	ctx := ctxTimeout(t, 10*time.Second)
	out := &OutgoingInvite{
		RequestURI: fmt.Sprintf("sip:juliet@%s", addr(t, b, "udp")),
		From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: msrpSDP(t, true, 2855),
	}
	call, _, err := a.Invite(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	peer := cb.waitThen(t)
	if _, _, err := a.Invite(ctx, out); !errors.Is(err, ErrTooManyCalls) {
		t.Errorf("second outgoing call: %v", err)
	}
	if _, res, err := c.Invite(ctx, out); err != nil || res.Code != 503 {
		t.Errorf("incoming beyond the limit: %+v %v", res, err)
	}
	p := newRawPeer(t, b)
	res := sendRawUDP(t, p.ua, rawMessage("INVITE", p.ruri(), p.headers("INVITE", 1, nextBranch(), "", "Content-Type: application/sdp"), string(msrpSDP(t, true, 2855))))
	if res == nil || res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Errorf("raw INVITE beyond the limit: %v", res)
	}
	if err := call.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, peer, EndBye)
	if call, _, err := a.Invite(ctx, out); err != nil {
		t.Errorf("a call after the first ended: %v", err)
	} else {
		cb.waitThen(t)
		call.Bye(ctx)
	}
	if _, err := New(WithMaxCalls(0)); !errors.Is(err, ErrOption) {
		t.Errorf("WithMaxCalls(0): %v", err)
	}
	if _, err := New(WithInviteHandler(nil)); !errors.Is(err, ErrOption) {
		t.Errorf("WithInviteHandler(nil): %v", err)
	}
}

// TestInviteLarge: an INVITE over 1300 bytes goes over TCP although the
// Request-URI says UDP (RFC 3261 §18.1.1, D1); bad values are refused.
func TestInviteLarge(t *testing.T) {
	checkLeaks(t)
	cb := newCallee(t)
	a := startUA(t)
	// The same port for UDP and TCP, so that TCP to the UDP URI's host:port
	// reaches the UA.
	port := sameFreePort(t)
	b2 := startUAOn(t, []string{fmt.Sprintf("udp:127.0.0.1:%d", port), fmt.Sprintf("tcp:127.0.0.1:%d", port)}, WithInviteHandler(cb.handle))
	ctx := ctxTimeout(t, 10*time.Second)
	body := append(msrpSDP(t, true, 2855), []byte("a=x-padding:"+strings.Repeat("p", 1500)+"\r\n")...)
	call, res, err := a.Invite(ctx, &OutgoingInvite{
		RequestURI: fmt.Sprintf("sip:juliet@%s;transport=udp", addr(t, b2, "udp")),
		From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: body,
	})
	if err != nil || res.Code != 200 {
		t.Fatalf("Invite: %+v %v", res, err)
	}
	if inv := cb.waitInvite(t); inv.Transport != "tcp" || len(inv.Body) != len(body) {
		t.Errorf("large INVITE arrived over %s", inv.Transport)
	}
	peer := cb.waitThen(t)
	if err := call.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, peer, EndBye)

	for _, bad := range []*OutgoingInvite{
		nil,
		{RequestURI: "sip:x@127.0.0.1", From: "sip:a@b", To: "sip:x@127.0.0.1"}, // no body
		{RequestURI: "sip:x@127.0.0.1", From: "sip:a@b", To: "sip:x@127.0.0.1", Body: body, CallID: "bad id"},
		{RequestURI: "sip:x@127.0.0.1", From: "sip:a@b", To: "sip:x@127.0.0.1", Body: body, Contact: "sip:a@b>\r\nX: y"},
		{RequestURI: "sip:x@127.0.0.1", From: "sip:a@b", To: "sip:x@127.0.0.1", Body: body, ContentType: "application/sdp\r\nX: y"},
	} {
		if _, _, err := a.Invite(ctx, bad); !errors.Is(err, ErrHeaderValue) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// TestInviteCancelRaw: a CANCEL of a pending INVITE gets 200 and the INVITE
// 487 (RFC 3261 §9.2, done by sipgo's transaction); the handler's context
// ends and Then sees nil.
func TestInviteCancelRaw(t *testing.T) {
	checkLeaks(t)
	cb := newCallee(t)
	cb.reply = func(ctx context.Context, _ *IncomingInvite) InviteReply {
		<-ctx.Done()
		return InviteReply{Code: 486}
	}
	b := startUA(t, WithInviteHandler(cb.handle))
	p := newRawPeer(t, b)
	branch := nextBranch()
	p.send(rawMessage("INVITE", p.ruri(), p.headers("INVITE", 1, branch, "", "Content-Type: application/sdp"), string(msrpSDP(t, true, 2855))))
	cb.waitInvite(t)
	if m, ok := p.next(5 * time.Second).(*sip.Response); !ok || m.StatusCode != 100 {
		t.Fatalf("want 100 Trying, got %v", m)
	}
	p.send(rawMessage("CANCEL", p.ruri(), replace(p.headers("CANCEL", 1, branch, ""), "Contact:", ""), ""))
	got := map[string]int{}
	for range 2 {
		res, ok := p.next(5 * time.Second).(*sip.Response)
		if !ok {
			t.Fatal("missing response")
		}
		got[string(res.CSeq().MethodName)] = res.StatusCode
	}
	if got["CANCEL"] != 200 || got["INVITE"] != 487 {
		t.Errorf("responses %v, want CANCEL 200 and INVITE 487", got)
	}
	p.send(rawMessage("ACK", p.ruri(), replace(p.headers("ACK", 1, branch, ""), "Contact:", ""), ""))
	if call := cb.waitThen(t); call != nil {
		t.Error("Then got a call")
	}
	// The handler's late 486 is not sent: the 487 stands.
	if m := p.next(300 * time.Millisecond); m != nil {
		t.Errorf("unexpected %v", m)
	}
	waitNoCalls(t, b)
}

// TestInviteCancelRace: the caller gives up, but the callee's 2xx crosses
// the CANCEL: sipside ACKs it and ends the session with BYE. Before any
// provisional response it waits for one before sending CANCEL (RFC 3261
// §9.1).
func TestInviteCancelRace(t *testing.T) {
	checkLeaks(t)
	a := startUA(t, fastCalls)
	p := newRawUDP(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := a.Invite(ctx, &OutgoingInvite{
			RequestURI: fmt.Sprintf("sip:bob@127.0.0.1:%d", p.port()), From: "sip:juliet@example.com",
			To: "sip:bob@example.net", Body: msrpSDP(t, true, 2855),
		})
		done <- err
	}()
	seen := map[string]bool{}
	inv, _, from := readNew(p, 5*time.Second, seen)
	if inv == nil || inv.Method != sip.INVITE {
		t.Fatalf("got %v", inv)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Invite: %v", err)
	}
	// No CANCEL before a provisional response.
	if req, _, _ := readNew(p, 200*time.Millisecond, seen); req != nil {
		t.Fatalf("%s before any provisional response", req.Method)
	}
	ringing := sip.NewResponseFromRequest(inv, 180, "Ringing", nil)
	ringing.To().Params.Add("tag", "uas2")
	p.conn.WriteToUDP([]byte(ringing.String()), from)
	can, _, cfrom := readNew(p, 5*time.Second, seen)
	if can == nil || can.Method != sip.CANCEL || viaBranch(can) != viaBranch(inv) || can.CSeq().SeqNo != inv.CSeq().SeqNo {
		t.Fatalf("want CANCEL of the INVITE, got %v", can)
	}
	p.respond(can, cfrom, 200)
	ok := sip.NewResponseFromRequest(inv, 200, "OK", msrpSDP(t, false, 2856))
	ok.To().Params.Add("tag", "uas2")
	ok.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: p.port()}})
	p.conn.WriteToUDP([]byte(ok.String()), from)
	ack, _, _ := readNew(p, 5*time.Second, seen)
	if ack == nil || ack.Method != sip.ACK {
		t.Fatalf("want ACK, got %v", ack)
	}
	bye, _, bfrom := readNew(p, 5*time.Second, seen)
	if bye == nil || bye.Method != sip.BYE {
		t.Fatalf("want BYE, got %v", bye)
	}
	if tag, _ := bye.To().Params.Get("tag"); tag != "uas2" {
		t.Errorf("BYE To tag %q", tag)
	}
	p.respond(bye, bfrom, 200)
	waitNoCalls(t, a)
}

// readNew reads the next request not seen before by method and branch
// (the CANCEL shares the INVITE's branch; UDP retransmissions are skipped).
func readNew(p *rawUDP, timeout time.Duration, seen map[string]bool) (*sip.Request, []byte, *net.UDPAddr) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		req, data, a := p.readRequest(time.Until(deadline), nil)
		if req == nil {
			return nil, nil, nil
		}
		k := string(req.Method) + " " + viaBranch(req)
		if !seen[k] {
			seen[k] = true
			return req, data, a
		}
	}
}
