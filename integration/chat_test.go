//go:build unix

package integration

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stox-gw/stox/integration/testbed"
)

// One-to-one chat sessions (RFC 7573; CHECKLIST section 5) against real
// peers: SIPp plays the SIP user's INVITE leg, Kamailio's msrp module is an
// RFC 4976 relay in the MSRP path, and testbed.MSRPPeer (a raw MSRP
// endpoint independent of stox's msrp package) is the SIP user's MSRP
// client behind it.

type chatRig struct {
	*rig
	callee   *testbed.Callee // stox's outbound proxy, when asked for
	kam      *testbed.Kamailio
	peer     *testbed.MSRPPeer
	usePath  string // the relay's URI for the peer
	msrpPort int    // stox's MSRP listener
}

// newChatRig starts Kamailio's MSRP relay, an MSRP peer authenticated at
// it, and the rig with stox's MSRP listener in mode msrp; withCallee makes
// a SIPp callee answering with the peer's SDP stox's outbound proxy.
func newChatRig(t *testing.T, withCallee bool) *chatRig {
	t.Helper()
	testbed.Need(t, "kamailio", "sipp", "prosody", "prosodyctl")
	testbed.NeedKamailioModules(t, "msrp")
	ctx := timeoutCtx(t, 4*time.Minute)
	k, err := testbed.StartKamailio(ctx, testbed.KamailioConfig{MSRP: true})
	if err != nil {
		t.Fatalf("kamailio: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- kamailio ---\n%s", k.Logs())
		}
		k.Close()
	})
	peer, err := testbed.DialMSRP(ctx, k.MSRPAddr, fmt.Sprintf("peer%d", time.Now().UnixNano()%1e9))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	usePath, err := peer.Auth(ctx, k.MSRPURI, "")
	if err != nil {
		t.Fatalf("AUTH at the relay: %v", err)
	}
	cr := &chatRig{kam: k, peer: peer, usePath: usePath, msrpPort: testbed.FreePort(t, testbed.TCP)}
	opts := []rigOption{withConfig(fmt.Sprintf("\n[msrp]\nlisten = \"tcp:127.0.0.1:%d\"\n\n[chat]\nmode = \"msrp\"\n", cr.msrpPort))}
	if withCallee {
		cal, err := testbed.StartCallee(ctx, t.TempDir(), testbed.Answer{SDP: cr.peerSDP()}, "u1")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cal.Stop() })
		cr.callee = cal
		opts = append(opts, withProxy("sip:"+cal.Addr()+";transport=udp"))
	}
	cr.rig = newRig(t, opts...)
	return cr
}

// peerSDP is the SIP user's session description: its path goes through
// the relay (RFC 4976).
func (r *chatRig) peerSDP() string {
	port := 0
	if m := regexp.MustCompile(`:(\d+)/`).FindStringSubmatch(r.peer.URI); m != nil {
		port, _ = strconv.Atoi(m[1])
	}
	return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		fmt.Sprintf("m=message %d TCP/MSRP *\r\n", port) +
		"a=accept-types:text/plain message/cpim application/im-iscomposing+xml\r\n" +
		"a=path:" + r.usePath + " " + r.peer.URI + "\r\n"
}

// nextFrame reads the peer's next frame that matches.
func (r *chatRig) nextFrame(what string, match func(*testbed.MSRPFrame) bool) *testbed.MSRPFrame {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 15*time.Second)
	defer cancel()
	for {
		f, err := r.peer.Next(ctx)
		if err != nil {
			r.t.Fatalf("waiting for %s: %v%s", what, err, r.logs())
		}
		if match(f) {
			return f
		}
	}
}

func isSendWithBody(f *testbed.MSRPFrame) bool { return f.Method == "SEND" && f.Body != "" }

// message reads a whole message from SENDs with one Message-ID, chunks in
// order (the relay keeps the order of one connection).
func (r *chatRig) message(what string) (first *testbed.MSRPFrame, body string) {
	r.t.Helper()
	first = r.nextFrame(what, isSendWithBody)
	var b strings.Builder
	b.WriteString(first.Body)
	for f := first; f.Flag == '+'; {
		f = r.nextFrame(what+" (next chunk)", func(g *testbed.MSRPFrame) bool {
			return g.Method == "SEND" && g.Header("Message-ID") == first.Header("Message-ID")
		})
		b.WriteString(f.Body)
		if f.Flag == '$' {
			break
		}
	}
	return first, b.String()
}

// send sends the peer's message to stox through the relay, in chunks of at
// most chunk bytes.
func (r *chatRig) send(stoxURI, msgID, ctype, body string, chunk int, extra ...testbed.Header) {
	r.t.Helper()
	peerSend(r.t, r.peer, []string{r.usePath, stoxURI}, msgID, ctype, body, chunk, extra...)
}

// peerSend writes a message as SEND chunks of at most chunk bytes (0: one),
// To-Path toPath, back to back.
func peerSend(t *testing.T, peer *testbed.MSRPPeer, toPath []string, msgID, ctype, body string, chunk int, extra ...testbed.Header) {
	t.Helper()
	total := len(body)
	if total == 0 || chunk <= 0 {
		chunk = total
	}
	for start := 0; start < total; start += chunk {
		end := min(start+chunk, total)
		flag := byte('+')
		if end == total {
			flag = '$'
		}
		hs := append([]testbed.Header{
			{Name: "Message-ID", Value: msgID},
			{Name: "Byte-Range", Value: fmt.Sprintf("%d-%d/%d", start+1, end, total)},
		}, extra...)
		hs = append(hs, testbed.Header{Name: "Content-Type", Value: ctype})
		tid := fmt.Sprintf("t%d%s", start, msgID)
		raw := testbed.FormatMSRPRequest(tid, "SEND", toPath, []string{peer.URI}, hs, body[start:end], flag)
		if err := peer.Write(raw); err != nil {
			t.Fatal(err)
		}
	}
}

func sdpPath(sdp string) []string {
	for _, l := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=path:"); ok {
			return strings.Fields(v)
		}
	}
	return nil
}

func chatFrom(from string) func(*testbed.Stanza) bool {
	return func(s *testbed.Stanza) bool {
		return s.Name() == "message" && strings.HasPrefix(s.Attr("from"), from)
	}
}

// TestChatXMPPStarts: an XMPP chat opens a session (RFC 7573 §4, CHAT-01..05)
// through the relay; messages, a receipt, chat states and large messages
// chunked both ways; the SIP user's BYE ends it with gone (CHAT-60).
func TestChatXMPPStarts(t *testing.T) {
	r := newChatRig(t, true)
	cal := r.callee
	bob := "bob@" + component
	if err := r.alice.Send(fmt.Sprintf(`<message type='chat' to='%s' id='m1'><body>hello over msrp</body><thread>th-1</thread><request xmlns='urn:xmpp:receipts'/></message>`, bob)); err != nil {
		t.Fatal(err)
	}
	inv, err := cal.Invite(r.ctx)
	if err != nil {
		t.Fatalf("INVITE: %v%s", err, r.logs())
	}
	if got := inv.Header("Call-ID"); got != "th-1" {
		t.Errorf("INVITE Call-ID %q, want the thread (CHAT-01d)", got)
	}
	if !strings.Contains(inv.Body, "m=message ") || !strings.Contains(inv.Body, "TCP/MSRP") {
		t.Errorf("offer lacks the MSRP m-line (CHAT-02):\n%s", inv.Body)
	}
	if !regexp.MustCompile(`a=accept-types: ?message/cpim`).MatchString(inv.Body) {
		t.Errorf("offer does not list message/cpim first (CHAT-03):\n%s", inv.Body)
	}
	stoxPath := sdpPath(inv.Body)
	if len(stoxPath) != 1 || !strings.HasPrefix(stoxPath[0], fmt.Sprintf("msrp://127.0.0.1:%d/", r.msrpPort)) {
		t.Fatalf("offer path %v (CHAT-02d)", stoxPath)
	}
	stoxURI := stoxPath[0]

	first, body := r.message("the first message through the relay")
	if body != "hello over msrp" {
		t.Errorf("body %q", body)
	}
	if first.Header("Success-Report") != "yes" || first.Header("Message-ID") == "" {
		t.Errorf("SEND for a message with <request/> (CHAT-40):\n%s", first.Raw)
	}
	if got := first.Path("From-Path"); len(got) == 0 || got[len(got)-1] != stoxURI {
		t.Errorf("From-Path %v, want it to end with stox's URI %s", got, stoxURI)
	}
	// The success REPORT becomes a receipt (CHAT-41).
	if _, err := r.peer.Request("REPORT", []string{r.usePath, stoxURI}, []testbed.Header{
		{Name: "Message-ID", Value: first.Header("Message-ID")},
		{Name: "Byte-Range", Value: fmt.Sprintf("1-%d/%d", len(body), len(body))},
		{Name: "Status", Value: "000 200 OK"},
	}, ""); err != nil {
		t.Fatal(err)
	}
	rc := r.expect(r.alice, "receipt", chatFrom(bob))
	if rc.Child("urn:xmpp:receipts", "received") == nil || rc.Child("urn:xmpp:receipts", "received").SelectAttrValue("id", "") != "m1" {
		t.Errorf("receipt: %s", rc.Raw)
	}

	// The SIP user answers; alice gets it with the thread.
	r.send(stoxURI, "peer-1", "text/plain", "hi from sip", 0)
	got := r.expect(r.alice, "the SIP user's reply", func(s *testbed.Stanza) bool { return chatFrom(bob)(s) && s.Body() != "" })
	if got.Body() != "hi from sip" || got.Attr("type") != "chat" || got.Text(testbed.NSClient, "thread") != "th-1" {
		t.Errorf("reply stanza: %s", got.Raw)
	}

	// Chat state -> isComposing (CHAT-50, CHAT-51).
	if err := r.alice.Send(fmt.Sprintf(`<message type='chat' to='%s'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, bob)); err != nil {
		t.Fatal(err)
	}
	cs := r.nextFrame("isComposing", isSendWithBody)
	if !strings.Contains(cs.Header("Content-Type"), "im-iscomposing+xml") || !strings.Contains(cs.Body, "<state>active</state>") {
		t.Errorf("isComposing frame:\n%s", cs.Raw)
	}
	// isComposing from SIP -> <composing/>.
	r.send(stoxURI, "peer-2", "application/im-iscomposing+xml",
		`<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><refresh>60</refresh></isComposing>`, 0)
	r.expect(r.alice, "composing", func(s *testbed.Stanza) bool {
		return chatFrom(bob)(s) && s.Child("http://jabber.org/protocol/chatstates", "composing") != nil
	})

	// A 40 KB message each way, chunked below the relay's frame limit
	// (CHAT-26) and reassembled intact.
	big := strings.Repeat("0123456789abcdef", 2560)
	if err := r.alice.Send(fmt.Sprintf(`<message type='chat' to='%s' id='big'><body>%s</body></message>`, bob, big)); err != nil {
		t.Fatal(err)
	}
	if _, got := r.message("the 40 KB message"); got != big {
		t.Errorf("40 KB message arrived with %d bytes, intact=%v", len(got), got == big)
	}
	r.send(stoxURI, "peer-big", "text/plain", big, 8000)
	bigIn := r.expect(r.alice, "the 40 KB message from SIP", func(s *testbed.Stanza) bool { return chatFrom(bob)(s) && len(s.Body()) > 1000 })
	if bigIn.Body() != big {
		t.Errorf("40 KB message from SIP arrived with %d bytes", len(bigIn.Body()))
	}

	// The SIP user hangs up: gone (CHAT-60a).
	if err := cal.Hangup(r.ctx); err != nil {
		t.Fatalf("hangup: %v%s", err, r.logs())
	}
	r.expect(r.alice, "gone", func(s *testbed.Stanza) bool {
		return chatFrom(bob)(s) && s.Child("http://jabber.org/protocol/chatstates", "gone") != nil
	})
}

// TestChatSIPStarts: a SIP INVITE with an MSRP offer through the relay
// reaches an XMPP user (RFC 7573 §5, CHAT-10..12); a receipt goes back as a
// REPORT (CHAT-42); her reply goes over the session; her gone ends it with
// BYE (CHAT-60b).
func TestChatSIPStarts(t *testing.T) {
	r := newChatRig(t, false)
	bob := "bob@" + component
	caller, err := testbed.StartCaller(r.ctx, t.TempDir(), testbed.Invite{
		RequestURI: "sip:alice@" + xmppDomain, From: "sip:" + bob, SDP: r.peerSDP(),
	}, r.stoxAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caller.Stop() })
	res, err := caller.Response(r.ctx)
	if err != nil {
		t.Fatalf("INVITE: %v%s", err, r.logs())
	}
	if res.StatusCode() != 200 {
		t.Fatalf("INVITE answered %s%s", res.StartLine, r.logs())
	}
	stoxPath := sdpPath(res.Body)
	if len(stoxPath) != 1 {
		t.Fatalf("answer path %v:\n%s", stoxPath, res.Body)
	}
	stoxURI := stoxPath[0]

	// The peer's SEND makes the relay connect to stox (the passive side).
	r.send(stoxURI, "s1", "text/plain", "hello alice", 0, testbed.Header{Name: "Success-Report", Value: "yes"})
	got := r.expect(r.alice, "the SIP user's message", func(s *testbed.Stanza) bool { return chatFrom(bob)(s) && s.Body() != "" })
	if got.Body() != "hello alice" || got.Attr("type") != "chat" || got.Text(testbed.NSClient, "thread") != res.Header("Call-ID") {
		t.Errorf("stanza: %s", got.Raw)
	}
	if got.Child("urn:xmpp:receipts", "request") == nil {
		t.Fatalf("no <request/> for Success-Report: yes (CHAT-42): %s", got.Raw)
	}
	// Her receipt -> REPORT 200.
	if err := r.alice.Send(fmt.Sprintf(`<message to='%s' id='rcpt'><received xmlns='urn:xmpp:receipts' id='%s'/></message>`, got.Attr("from"), got.Attr("id"))); err != nil {
		t.Fatal(err)
	}
	rep := r.nextFrame("the REPORT", func(f *testbed.MSRPFrame) bool { return f.Method == "REPORT" })
	if rep.Header("Message-ID") != "s1" || !strings.HasPrefix(rep.Header("Status"), "000 200") {
		t.Errorf("REPORT:\n%s", rep.Raw)
	}
	// Her reply goes over the session, from her full JID (CHAT-12).
	if err := r.alice.Send(fmt.Sprintf(`<message type='chat' to='%s'><body>hi bob</body></message>`, bob)); err != nil {
		t.Fatal(err)
	}
	if _, body := r.message("alice's reply"); body != "hi bob" {
		t.Errorf("reply body %q", body)
	}
	// gone -> BYE.
	if err := r.alice.Send(fmt.Sprintf(`<message type='chat' to='%s'><gone xmlns='http://jabber.org/protocol/chatstates'/></message>`, bob)); err != nil {
		t.Fatal(err)
	}
	if err := caller.WaitBye(r.ctx); err != nil {
		t.Fatalf("no BYE after gone: %v%s", err, r.logs())
	}
}
