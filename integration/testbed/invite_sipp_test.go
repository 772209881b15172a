//go:build unix

package testbed

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testSDP is an MSRP session description (RFC 4975 section 8.1) with CRLF
// line ends and the ';' of a path URI, which -inf injection could not carry.
func testSDP(port int, session string) string {
	return "v=0\r\n" +
		"o=- 2890844526 2890844527 IN IP4 127.0.0.1\r\n" +
		"s= \r\n" +
		"c=IN IP4 127.0.0.1\r\n" +
		"t=0 0\r\n" +
		"m=message " + strconv.Itoa(port) + " TCP/MSRP *\r\n" +
		"a=accept-types:message/cpim text/plain\r\n" +
		"a=accept-wrapped-types:*\r\n" +
		"a=path:msrp://127.0.0.1:" + strconv.Itoa(port) + "/" + session + ";tcp\r\n"
}

func startCallee(t *testing.T, ctx context.Context, a Answer, transport string) *Callee {
	t.Helper()
	c, err := StartCallee(ctx, t.TempDir(), a, transport)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Stop()
		if t.Failed() {
			t.Logf("callee:\n%s%s", c.ErrLog(), c.Stats())
		}
	})
	return c
}

func startCaller(t *testing.T, ctx context.Context, inv Invite, dest string) *Caller {
	t.Helper()
	c, err := StartCaller(ctx, t.TempDir(), inv, dest)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Stop()
		if t.Failed() {
			t.Logf("caller:\n%s%s", c.ErrLog(), c.Stats())
		}
	})
	return c
}

func TestCallerCalleeSession(t *testing.T) {
	Need(t, "sipp")
	for _, tc := range []struct{ transport, hangup string }{
		{"u1", "caller"}, {"u1", "callee"}, {"t1", "caller"}, {"t1", "callee"},
	} {
		transport, hangup := tc.transport, tc.hangup
		t.Run(transport+"-"+hangup+"-hangs-up", func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			offer, answer := testSDP(7654, "offer;x"), testSDP(7655, "answer")
			callee := startCallee(t, ctx, Answer{SDP: answer}, transport)
			inv := Invite{
				RequestURI: "sip:alice@example.test;gr=phone",
				From:       `"Bob" <sip:bob@sip.example.test>`,
				SDP:        offer,
				Transport:  transport,
			}
			caller := startCaller(t, ctx, inv, callee.Addr())

			got, err := callee.Invite(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got.RequestURI() != inv.RequestURI || got.Body != offer || got.Header("Content-Type") != "application/sdp" ||
				got.Header("Content-Length") != strconv.Itoa(len(offer)) ||
				!strings.HasPrefix(got.Header("From"), `"Bob" <sip:bob@sip.example.test>;tag=`) ||
				got.Header("To") != "<sip:alice@example.test;gr=phone>" || !strings.HasPrefix(got.Header("Contact"), "<sip:sipp@127.0.0.1:") {
				t.Errorf("callee got INVITE %q", got.Raw)
			}
			resp, err := caller.Response(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != 200 || resp.Body != answer || resp.Header("Content-Type") != "application/sdp" ||
				!strings.Contains(resp.Header("To"), ";tag=") || resp.Header("Call-ID") != got.Header("Call-ID") {
				t.Errorf("caller got response %q", resp.Raw)
			}

			var first, second func(context.Context) error
			if hangup == "caller" {
				first, second = caller.Hangup, callee.WaitBye
			} else {
				first, second = callee.Hangup, caller.WaitBye
			}
			if err := first(ctx); err != nil {
				t.Fatalf("%s hangs up: %v", hangup, err)
			}
			if err := second(ctx); err != nil {
				t.Fatalf("the other side: %v", err)
			}

			// The callee saw the ACK and both sides the BYE and its 200, in
			// the dialog of the INVITE.
			callID := got.Header("Call-ID")
			for name, s := range map[string]*SIPp{"caller": caller.SIPp, "callee": callee.SIPp} {
				msgs, err := s.Messages()
				if err != nil {
					t.Fatal(err)
				}
				var seq []string
				for _, m := range msgs {
					if want := map[string]string{"u1": "UDP", "t1": "TCP"}[transport]; m.Transport != want {
						t.Errorf("%s: %s message %q", name, m.Transport, m.StartLine)
					}
					if m.Header("Call-ID") != callID {
						t.Errorf("%s: message outside the call: %q", name, m.Raw)
					}
					dir := "<"
					if m.Sent {
						dir = ">"
					}
					if m.IsRequest() {
						seq = append(seq, dir+m.Method())
					} else {
						seq = append(seq, dir+strconv.Itoa(m.StatusCode())+"/"+m.Method())
					}
				}
				want := map[string]string{
					"caller/caller": ">INVITE <200/INVITE >ACK <MESSAGE >BYE <200/BYE", // MESSAGE: the go-ahead
					"callee/caller": "<INVITE >200/INVITE <ACK <BYE >200/BYE",
					"caller/callee": ">INVITE <200/INVITE >ACK <BYE >200/BYE",
					"callee/callee": "<INVITE >200/INVITE <ACK <MESSAGE >BYE <200/BYE",
				}[name+"/"+hangup]
				if got := strings.Join(seq, " "); got != want {
					t.Errorf("%s exchanged %s, want %s", name, got, want)
				}
			}
			msgs, _ := callee.Received()
			for _, m := range msgs {
				switch m.Method() {
				case "ACK":
					if m.RequestURI() != strings.Trim(resp.Header("Contact"), "<>") || m.Header("To") != resp.Header("To") {
						t.Errorf("ACK %q", m.Raw)
					}
				case "BYE":
					if m.IsRequest() && m.RequestURI() != strings.Trim(resp.Header("Contact"), "<>") {
						t.Errorf("BYE %q", m.Raw)
					}
				}
			}
			msgs, _ = caller.Received()
			for _, m := range msgs {
				if m.IsRequest() && m.Method() == "BYE" {
					if m.RequestURI() != strings.Trim(got.Header("Contact"), "<>") || m.Header("To") != got.Header("From") ||
						!strings.HasPrefix(m.Header("From"), got.Header("To")+";tag=") {
						t.Errorf("callee's BYE %q", m.Raw)
					}
				}
			}
		})
	}
}

func TestCallerCalleeRejected(t *testing.T) {
	Need(t, "sipp")
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offer := testSDP(7656, "busy")

	// Expected: the run succeeds and records the status.
	callee := startCallee(t, ctx, Answer{Code: 486}, "u1")
	caller := startCaller(t, ctx, Invite{RequestURI: "sip:alice@example.test", SDP: offer, Expect: 486}, callee.Addr())
	resp, err := caller.Response(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 486 || resp.StartLine != "SIP/2.0 486 Busy Here" {
		t.Errorf("response %q", resp.Raw)
	}
	if err := caller.Hangup(ctx); err != nil { // nothing to hang up: waits for the end
		t.Errorf("caller expecting 486: %v", err)
	}
	if err := callee.Wait(); err != nil {
		t.Errorf("callee answering 486: %v", err)
	}
	if got, err := callee.Received(); err != nil || len(got) != 2 || got[0].Body != offer || got[1].Method() != "ACK" ||
		got[1].Header("CSeq") != "1 ACK" || got[1].Header("Via") != got[0].Header("Via") {
		t.Errorf("callee received %v (%v)", got, err)
	}

	// Not expected: the run fails and says why.
	callee = startCallee(t, ctx, Answer{Code: 486, Reason: "Not Now"}, "u1")
	caller = startCaller(t, ctx, Invite{RequestURI: "sip:alice@example.test", SDP: offer}, callee.Addr())
	if resp, err := caller.Response(ctx); err != nil || resp.StartLine != "SIP/2.0 486 Not Now" {
		t.Fatalf("response %v (%v)", resp, err)
	}
	err = caller.WaitBye(ctx)
	var se *SIPpError
	if !errors.As(err, &se) || se.Code != 1 || !strings.Contains(se.Log, "expected status 200, got 486") {
		t.Errorf("caller expecting 200, answered 486: %v", err)
	}
	if err := callee.Wait(); err != nil {
		t.Errorf("callee answering 486: %v", err)
	}
}

func TestCallerUnexpected200(t *testing.T) {
	Need(t, "sipp")
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callee := startCallee(t, ctx, Answer{SDP: testSDP(7657, "b")}, "u1")
	caller := startCaller(t, ctx, Invite{RequestURI: "sip:alice@example.test", SDP: testSDP(7658, "a"), Expect: 488}, callee.Addr())
	err := caller.Hangup(ctx)
	var se *SIPpError
	if !errors.As(err, &se) || se.Code != 1 || !strings.Contains(se.Log, "expected status 488, got 200") {
		t.Errorf("caller expecting 488, answered 200: %v", err)
	}
	// The caller ended the call it did not want.
	if err := callee.WaitBye(ctx); err != nil {
		t.Errorf("callee: %v", err)
	}
}

func TestCallerCalleeArgs(t *testing.T) {
	dir := t.TempDir()
	for _, inv := range []Invite{
		{SDP: "v=0\r\n"},
		{RequestURI: "sip:a@example.test"},
		{RequestURI: "sip:a@example.test", SDP: "v=0\r\n", Expect: 302},
		{RequestURI: "sip:a@example.test\r\nX: y", SDP: "v=0\r\n"},
	} {
		if _, err := inv.Args(dir); err == nil {
			t.Errorf("Invite %+v accepted", inv)
		}
	}
	for _, a := range []Answer{{}, {Code: 180}, {Code: 299, SDP: "v=0\r\n"}, {Code: 486, Reason: "a\nb"}} {
		if _, err := a.Args(dir); err == nil {
			t.Errorf("Answer %+v accepted", a)
		}
	}
	if _, err := StartCallee(context.Background(), dir, Answer{Code: 486}, "l1"); err == nil {
		t.Error("StartCallee over TLS accepted")
	}
	if _, err := StartCaller(context.Background(), dir, Invite{RequestURI: "sip:a@example.test", SDP: "v=0\r\n", Transport: "u"}, "127.0.0.1:9"); err == nil {
		t.Error("StartCaller over transport u accepted")
	}
}

// TestCalleeRecordRoute plays a caller behind two proxies with raw SIP: the
// callee echoes the Record-Route set in its 200, and its BYE goes to the
// caller's Contact along that route set (RFC 3261 12.1.1, 12.2.1.1).
func TestCalleeRecordRoute(t *testing.T) {
	Need(t, "sipp")
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	answer := testSDP(7659, "rr")
	callee := startCallee(t, ctx, Answer{SDP: answer}, "")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_ = pc.SetDeadline(time.Now().Add(20 * time.Second))
	to, err := net.ResolveUDPAddr("udp", callee.Addr())
	if err != nil {
		t.Fatal(err)
	}
	local := pc.LocalAddr().String()
	offer := testSDP(7660, "raw")
	send := func(raw string) {
		t.Helper()
		if _, err := pc.WriteTo([]byte(raw), to); err != nil {
			t.Fatal(err)
		}
	}
	read := func() *SIPMessage {
		t.Helper()
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseSIPMessage(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			if m.StatusCode() != 100 {
				return m
			}
		}
	}
	send("INVITE sip:alice@example.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-rr-1\r\n" +
		"Record-Route: <sip:p2.example.test;lr>\r\n" +
		"Record-Route: <sip:p1.example.test;lr>\r\n" +
		"From: <sip:bob@example.net>;tag=rr1\r\n" +
		"To: <sip:alice@example.test>\r\n" +
		"Call-ID: rr-1@testbed\r\n" +
		"CSeq: 10 INVITE\r\n" +
		"Contact: <sip:bob@" + local + ">\r\n" +
		"Max-Forwards: 70\r\n" +
		"Content-Type: application/sdp\r\n" +
		"Content-Length: " + strconv.Itoa(len(offer)) + "\r\n\r\n" + offer)
	ok := read()
	if ok.StatusCode() != 200 || ok.Body != answer || ok.Header("CSeq") != "10 INVITE" ||
		strings.Join(ok.Values("Record-Route"), ", ") != "<sip:p2.example.test;lr>, <sip:p1.example.test;lr>" {
		t.Fatalf("200 %q", ok.Raw)
	}
	send("ACK sip:sipp@" + callee.Addr() + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-rr-2\r\n" +
		"From: <sip:bob@example.net>;tag=rr1\r\n" +
		"To: " + ok.Header("To") + "\r\n" +
		"Call-ID: rr-1@testbed\r\n" +
		"CSeq: 10 ACK\r\n" +
		"Max-Forwards: 70\r\n" +
		"Content-Length: 0\r\n\r\n")
	hungUp := make(chan error, 1)
	go func() { hungUp <- callee.Hangup(ctx) }()
	bye := read()
	routes := strings.Join(bye.Values("Route"), ", ")
	if bye.Method() != "BYE" || bye.RequestURI() != "sip:bob@"+local ||
		(routes != "<sip:p2.example.test;lr>, <sip:p1.example.test;lr>" && routes != "<sip:p2.example.test;lr>,<sip:p1.example.test;lr>") ||
		bye.Header("To") != "<sip:bob@example.net>;tag=rr1" || bye.Header("From") != ok.Header("To") || bye.Header("Call-ID") != "rr-1@testbed" {
		t.Errorf("BYE %q", bye.Raw)
	}
	send("SIP/2.0 200 OK\r\n" +
		strings.Join(func() []string {
			var hs []string
			for _, h := range bye.Headers {
				switch strings.ToLower(h.Name) {
				case "via", "from", "to", "call-id", "cseq":
					hs = append(hs, h.Name+": "+h.Value)
				}
			}
			return hs
		}(), "\r\n") + "\r\nContent-Length: 0\r\n\r\n")
	if err := <-hungUp; err != nil {
		t.Errorf("callee hangs up: %v", err)
	}
}
