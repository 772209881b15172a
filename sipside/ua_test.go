package sipside

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestMessageBothWays: MESSAGE with every field, A->B and B->A, over each
// transport (IM-03, IM-07, IM-09, TV-02, TV-03).
func TestMessageBothWays(t *testing.T) {
	certFile, keyFile, pool := writeCert(t)
	for _, tp := range []string{"udp", "tcp", "tls"} {
		t.Run(tp, func(t *testing.T) {
			checkLeaks(t)
			ra, rb := newRecorder(), newRecorder()
			opts := func(r *recorder) []Option {
				return []Option{
					WithTLS(certFile, keyFile),
					WithTLSClientConfig(tlsClient(pool)),
					WithMessageHandler(r.handle),
				}
			}
			listen := []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0"}
			a := startUAOn(t, listen, opts(ra)...)
			b := startUAOn(t, listen, opts(rb)...)
			ctx := ctxTimeout(t, 10*time.Second)

			for _, dir := range []struct {
				name     string
				from, to *UA
				rec      *recorder
			}{{"a->b", a, b, rb}, {"b->a", b, a, ra}} {
				peer := addr(t, dir.to, tp)
				ruri := fmt.Sprintf("sip:juliet@%s;gr=yn0cl4bnw0yr3vym;transport=%s", peer, tp)
				out := &OutgoingMessage{
					RequestURI:      ruri,
					From:            "sip:romeo@example.net;gr=balcony",
					To:              "sip:juliet@example.com",
					FromDisplay:     `Romeo "the" Montague`,
					CallID:          "29377446-0CBB-4296-8958-590D79094C50",
					Subject:         "Hi",
					ContentType:     "text/plain;charset=UTF-8",
					ContentLanguage: "en",
					Body:            []byte("Art thou not Romeo, and a Montague? ü"),
				}
				res, err := dir.from.SendMessage(ctx, out)
				if err != nil {
					t.Fatalf("%s: SendMessage: %v", dir.name, err)
				}
				if res.Code != 202 || res.Parts != 1 || res.Err() != nil {
					t.Fatalf("%s: result %+v", dir.name, res)
				}
				m := dir.rec.wait(t)
				want := IncomingMessage{
					RequestURI:      ruri,
					From:            "sip:romeo@example.net;gr=balcony",
					To:              "sip:juliet@example.com",
					FromDisplay:     `Romeo "the" Montague`,
					CallID:          out.CallID,
					Subject:         "Hi",
					ContentType:     "text/plain;charset=UTF-8",
					ContentLanguage: "en",
					Transport:       tp,
				}
				got := *m
				got.Body, got.Source, got.TransactionID, got.BodySize = nil, netip.AddrPort{}, "", 0
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s:\n got %+v\nwant %+v", dir.name, got, want)
				}
				if string(m.Body) != string(out.Body) || m.BodySize != len(out.Body) {
					t.Errorf("%s: body %q", dir.name, m.Body)
				}
				if m.Source.Addr() != netip.MustParseAddr("127.0.0.1") || !strings.HasPrefix(m.TransactionID, "z9hG4bK") {
					t.Errorf("%s: source %v transaction %q", dir.name, m.Source, m.TransactionID)
				}
			}
		})
	}
}

// TestWireFormat checks the request on the wire (TV-01, TV-02; IM-04, IM-05,
// IM-06; ADDR-15) through an outbound proxy, which here is a raw socket.
func TestWireFormat(t *testing.T) {
	checkLeaks(t)
	peer := newRawUDP(t)
	proxy := fmt.Sprintf("sip:127.0.0.1:%d;transport=udp", peer.port())
	a := startUA(t, WithOutboundProxy(proxy))
	ctx := ctxTimeout(t, 10*time.Second)

	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := a.SendMessage(ctx, &OutgoingMessage{
			RequestURI: "sip:romeo@example.net",
			From:       "sip:juliet@example.com;gr=yn0cl4bnw0yr3vym",
			To:         "sip:romeo@example.net",
			Body:       []byte("Art thou not Romeo, and a Montague?"),
		})
		done <- outcome{res, err}
	}()
	req, data, from := peer.readRequest(5*time.Second, nil)
	if req == nil {
		t.Fatal("no request at the proxy")
	}
	text := string(data)
	for _, want := range []string{
		"MESSAGE sip:romeo@example.net SIP/2.0\r\n",
		"\r\nMax-Forwards: 70\r\n",
		fmt.Sprintf("\r\nRoute: <sip:127.0.0.1:%d;transport=udp;lr>\r\n", peer.port()),
		"\r\nTo: <sip:romeo@example.net>\r\n",
		"\r\nCSeq: 1 MESSAGE\r\n",
		"\r\nContent-Type: text/plain;charset=UTF-8\r\n",
		"\r\nContent-Length: 35\r\n",
		"\r\nUser-Agent: stox (sip.example.test)\r\n",
		"\r\n\r\nArt thou not Romeo, and a Montague?",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
	for _, not := range []string{"\r\nContact:", "\r\nSubject:", "\r\nContent-Language:"} {
		if strings.Contains(text, not) {
			t.Errorf("unexpected %q in\n%s", not, text)
		}
	}
	if f := req.From(); f == nil || f.Address.String() != "sip:juliet@example.com;gr=yn0cl4bnw0yr3vym" || f.Params.GetOr("tag", "") == "" {
		t.Errorf("From %v", req.From())
	}
	if _, ok := req.To().Params.Get("tag"); ok {
		t.Error("To has a tag")
	}
	if cid := req.CallID(); cid == nil || len(string(*cid)) < 16 {
		t.Errorf("Call-ID %v", cid)
	}
	if v := req.Via(); v.Host != "127.0.0.1" || v.Port != int(addr(t, a, "udp").Port()) || v.Transport != "UDP" {
		t.Errorf("Via %v", v)
	}
	if from.Port != int(addr(t, a, "udp").Port()) {
		t.Errorf("sent from port %d, not the listener", from.Port)
	}
	if got := requestSizeOfWire(t, data); got != len(data) {
		t.Errorf("size %d != %d", got, len(data))
	}
	// Two final responses back to back (a fork, IM-15): exactly one
	// result. sipgo hands each response to its transaction on a new
	// goroutine, so which of the two wins is not defined.
	peer.respond(req, from, 200)
	peer.respond(req, from, 486)
	o := <-done
	if o.err != nil || o.res.Code != 200 && o.res.Code != 486 {
		t.Fatalf("result %+v %v", o.res, o.err)
	}
}

func requestSizeOfWire(t *testing.T, data []byte) int {
	msg, err := sip.ParseMessage(data)
	if err != nil {
		t.Fatal(err)
	}
	return requestSize(msg.(*sip.Request))
}

// TestHeaderInjection: CR/LF in caller values never make a header (STYLE.md,
// LIBRARIES.md: sipgo does not check values).
func TestHeaderInjection(t *testing.T) {
	checkLeaks(t)
	rb := newRecorder()
	b := startUA(t, WithMessageHandler(rb.handle))
	peer := newRawUDP(t)
	a := startUA(t)
	ctx := ctxTimeout(t, 10*time.Second)

	// Free text is cleaned, and what arrives has no extra header.
	ruri := fmt.Sprintf("sip:juliet@%s", addr(t, b, "udp"))
	res, err := a.SendMessage(ctx, &OutgoingMessage{
		RequestURI:  ruri,
		From:        "sip:romeo@example.net",
		To:          "sip:juliet@example.com",
		FromDisplay: "Evil\r\nX-Injected: display",
		Subject:     "hi\r\nX-Injected: yes\x00\n",
		Body:        []byte("x"),
	})
	if err != nil || res.Code != 202 {
		t.Fatalf("send: %+v %v", res, err)
	}
	m := rb.wait(t)
	// The parser trims the trailing spaces.
	if m.Subject != "hi  X-Injected: yes" || m.FromDisplay != "Evil  X-Injected: display" {
		t.Errorf("subject %q display %q", m.Subject, m.FromDisplay)
	}

	// On the wire: look at the raw request.
	go a.SendMessage(ctx, &OutgoingMessage{
		RequestURI: fmt.Sprintf("sip:juliet@127.0.0.1:%d", peer.port()),
		From:       "sip:romeo@example.net", To: "sip:juliet@example.com",
		FromDisplay: "a\"b\\c\nX-Injected: d",
		Subject:     "s\r\nX-Injected: e",
		Body:        []byte("x"),
	})
	req, data, _ := peer.readRequest(5*time.Second, nil)
	if req == nil {
		t.Fatal("no request")
	}
	if strings.Contains(string(data), "\nX-Injected") || len(req.GetHeaders("X-Injected")) != 0 {
		t.Errorf("injected header on the wire:\n%s", data)
	}
	if !strings.Contains(string(data), `From: "a\"b\\c X-Injected: d" <sip:romeo@example.net>;tag=`) {
		t.Errorf("display name not escaped:\n%s", data)
	}

	// Structured values are refused.
	for name, m := range map[string]*OutgoingMessage{
		"uri crlf":      {RequestURI: "sip:a@b\r\nX: y", From: "sip:a@b", To: "sip:a@b"},
		"uri angle":     {RequestURI: "sip:a@b", From: "sip:a@b>;x", To: "sip:a@b"},
		"uri space":     {RequestURI: "sip:a@b", From: "sip:a@b", To: "sip:a b@c"},
		"uri scheme":    {RequestURI: "tel:+123", From: "sip:a@b", To: "sip:a@b"},
		"uri empty":     {RequestURI: "", From: "sip:a@b", To: "sip:a@b"},
		"uri non-ascii": {RequestURI: "sip:fü@b", From: "sip:a@b", To: "sip:a@b"},
		"uri headers":   {RequestURI: "sip:a@b", From: "sip:a@b?Subject=x", To: "sip:a@b"},
		"call-id":       {RequestURI: "sip:a@b", From: "sip:a@b", To: "sip:a@b", CallID: "x\r\nX: y"},
		"call-id space": {RequestURI: "sip:a@b", From: "sip:a@b", To: "sip:a@b", CallID: "a b"},
		"content-type":  {RequestURI: "sip:a@b", From: "sip:a@b", To: "sip:a@b", ContentType: "text/plain\r\nX: y"},
		"language":      {RequestURI: "sip:a@b", From: "sip:a@b", To: "sip:a@b", ContentLanguage: "en\r\nX: y"},
	} {
		if _, err := a.SendMessage(ctx, m); !errors.Is(err, ErrHeaderValue) {
			t.Errorf("%s: err %v, want ErrHeaderValue", name, err)
		}
	}
}

// TestUntrusted: a source outside WithTrusted gets 403 for any method, and
// the refusal is logged (DESIGN.md order of refusals).
func TestUntrusted(t *testing.T) {
	checkLeaks(t)
	log, buf := newLogger(slog.LevelInfo)
	rb := newRecorder()
	b2, err := New(WithListen("udp:127.0.0.1:0", "tcp:127.0.0.1:0"), WithTrusted(netip.MustParsePrefix("10.0.0.0/8")),
		WithMessageHandler(rb.handle), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	a := startUA(t)
	ctx := ctxTimeout(t, 10*time.Second)
	for _, tp := range []string{"udp", "tcp"} {
		res, err := a.SendMessage(ctx, &OutgoingMessage{
			RequestURI: fmt.Sprintf("sip:juliet@%s;transport=%s", addr(t, b2, tp), tp),
			From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: []byte("secret body"),
		})
		if err != nil || res.Code != 403 {
			t.Errorf("%s: %+v %v", tp, res, err)
		}
		var se *StatusError
		if !errors.As(res.Err(), &se) || se.Code != 403 {
			t.Errorf("Err() = %v", res.Err())
		}
	}
	// Malformed and untrusted: still 403 first.
	bad := rawMessage("MESSAGE", "sip:juliet@example.com", replace(stdHeaders("UDP", 5060), "Call-ID", ""), "x")
	if r := sendRawUDP(t, addr(t, b2, "udp"), bad); r == nil || r.StatusCode != 403 {
		t.Errorf("malformed untrusted: %v", r)
	}
	opt := rawMessage("OPTIONS", "sip:juliet@example.com", replace(stdHeaders("UDP", 5060), "CSeq", "CSeq: 1 OPTIONS"), "")
	if r := sendRawUDP(t, addr(t, b2, "udp"), opt); r == nil || r.StatusCode != 403 {
		t.Errorf("options untrusted: %v", r)
	}
	if rb.count() != 0 {
		t.Errorf("handler called %d times", rb.count())
	}
	logs := buf.String()
	if !strings.Contains(logs, `msg="sip request refused" source=127.0.0.1:`) || !strings.Contains(logs, "method=MESSAGE code=403") {
		t.Errorf("refusal not logged:\n%s", logs)
	}
	if strings.Contains(logs, "secret body") {
		t.Errorf("body logged above debug:\n%s", logs)
	}
}

// TestMalformed: raw requests over UDP and TCP that must be refused before
// the handler (400/416/483/505), and other methods (405/501/481, OPTIONS).
func TestMalformed(t *testing.T) {
	checkLeaks(t)
	rb := newRecorder()
	b := startUA(t, WithMessageHandler(rb.handle))
	std := func(tp string) []string { return stdHeaders(tp, 5060) }
	ruri := "sip:juliet@example.com"
	cases := []struct {
		name   string
		udp    bool // datagram only (Content-Length frames streams)
		build  func(tp string) string
		code   int
		reason string
	}{
		{"missing Call-ID", false, func(tp string) string {
			return rawMessage("MESSAGE", ruri, replace(std(tp), "Call-ID", ""), "x")
		}, 400, "Missing Call-ID"},
		{"missing From", false, func(tp string) string {
			return rawMessage("MESSAGE", ruri, replace(std(tp), "From", ""), "x")
		}, 400, "Missing From"},
		{"missing To", false, func(tp string) string {
			return rawMessage("MESSAGE", ruri, replace(std(tp), "To", ""), "x")
		}, 400, "Missing To"},
		{"duplicate From", false, func(tp string) string {
			return rawMessage("MESSAGE", ruri, append(std(tp), "f: <sip:tybalt@example.net>;tag=1"), "x")
		}, 400, "Duplicate From"},
		{"duplicate Call-ID", false, func(tp string) string {
			return rawMessage("MESSAGE", ruri, append(std(tp), "i: other"), "x")
		}, 400, "Duplicate Call-ID"},
		{"CSeq mismatch", false, func(tp string) string {
			return rawMessage("MESSAGE", ruri, replace(std(tp), "CSeq", "CSeq: 1 INVITE"), "x")
		}, 400, "CSeq Method Mismatch"},
		{"bad Max-Forwards", false, func(tp string) string {
			return rawMessage("MESSAGE", ruri, replace(std(tp), "Max-Forwards", "Max-Forwards: many"), "x")
		}, 400, "Malformed Max-Forwards"},
		{"bad From", false, func(tp string) string {
			return rawMessage("MESSAGE", ruri, replace(std(tp), "From", "From: <sip:romeo@example.net"), "x")
		}, 400, "Malformed From"},
		{"LF in Subject", false, func(tp string) string {
			return rawMessage("MESSAGE", ruri, append(std(tp), "Subject: a\nX-Injected: b"), "x")
		}, 400, "Control Character In Header"},
		{"Max-Forwards 0", false, func(tp string) string {
			return rawMessage("MESSAGE", ruri, replace(std(tp), "Max-Forwards", "Max-Forwards: 0"), "x")
		}, 483, "Too Many Hops"},
		{"tel URI", false, func(tp string) string {
			return rawMessage("MESSAGE", "tel:+15551234", std(tp), "x")
		}, 416, "Unsupported URI Scheme"},
		{"version", false, func(tp string) string {
			return strings.Replace(rawMessage("MESSAGE", ruri, std(tp), "x"), "SIP/2.0\r\n", "SIP/3.0\r\n", 1)
		}, 505, "Version Not Supported"},
		{"Content-Length larger", true, func(tp string) string {
			return rawMessage("MESSAGE", ruri, append(std(tp), "Content-Length: 10"), "x")
		}, 400, "Content-Length Larger Than Message"},
		{"Content-Length malformed", true, func(tp string) string {
			return rawMessage("MESSAGE", ruri, append(std(tp), "Content-Length: x1"), "x")
		}, 400, "Malformed Content-Length"},
		{"BYE", false, func(tp string) string {
			return rawMessage("BYE", ruri, replace(std(tp), "CSeq", "CSeq: 2 BYE"), "")
		}, 405, ""},
		{"unknown method", false, func(tp string) string {
			return rawMessage("FROB", ruri, replace(std(tp), "CSeq", "CSeq: 2 FROB"), "")
		}, 501, ""},
		{"CANCEL", false, func(tp string) string {
			return rawMessage("CANCEL", ruri, replace(std(tp), "CSeq", "CSeq: 1 CANCEL"), "")
		}, 481, ""},
		{"OPTIONS Max-Forwards 0", false, func(tp string) string {
			h := replace(replace(std(tp), "CSeq", "CSeq: 1 OPTIONS"), "Max-Forwards", "Max-Forwards: 0")
			return rawMessage("OPTIONS", ruri, h, "")
		}, 200, ""},
	}
	for _, tp := range []string{"UDP", "TCP"} {
		for _, c := range cases {
			if c.udp && tp != "UDP" {
				continue
			}
			t.Run(tp+"/"+c.name, func(t *testing.T) {
				data := c.build(tp)
				var res *sip.Response
				if tp == "UDP" {
					res = sendRawUDP(t, addr(t, b, "udp"), data)
				} else {
					res = sendRawTCP(t, addr(t, b, "tcp"), data)
				}
				if res == nil {
					t.Fatalf("no response to\n%s", data)
				}
				if res.StatusCode != c.code || c.reason != "" && res.Reason != c.reason {
					t.Errorf("got %d %q, want %d %q", res.StatusCode, res.Reason, c.code, c.reason)
				}
				switch c.code {
				case 405:
					if h := res.GetHeader("Allow"); h == nil || h.Value() != "MESSAGE, OPTIONS" {
						t.Errorf("Allow %v", h)
					}
				case 200:
					if h := res.GetHeader("Accept"); h == nil || h.Value() != "text/plain, message/cpim, text/html" {
						t.Errorf("Accept %v", h)
					}
					if h := res.GetHeader("Allow"); h == nil || h.Value() != "MESSAGE, OPTIONS" {
						t.Errorf("Allow %v", h)
					}
				}
				if res.Contact() != nil {
					t.Error("response has Contact")
				}
			})
		}
	}
	if n := rb.count(); n != 0 {
		t.Errorf("handler called %d times", n)
	}
	// A good one passes, so the cases above were refused for their fault.
	if r := sendRawUDP(t, addr(t, b, "udp"), rawMessage("MESSAGE", ruri, std("UDP"), "x")); r == nil || r.StatusCode != 202 {
		t.Errorf("good request: %v", r)
	}
}

// TestOversize: WithMaxMessageBody; a larger body reaches the handler as
// TooLarge (so that 404/415 come first), and a 2xx becomes 413; a datagram
// beyond the parser limit is answered 513.
func TestOversize(t *testing.T) {
	checkLeaks(t)
	rb := newRecorder()
	rb.reply = func(m *IncomingMessage) Reply {
		if strings.HasPrefix(m.RequestURI, "sip:nobody@") {
			return Reply{Code: 404}
		}
		return Reply{Code: 202}
	}
	b := startUA(t, WithMessageHandler(rb.handle), WithMaxMessageBody(100))
	a := startUA(t)
	ctx := ctxTimeout(t, 10*time.Second)
	body := []byte(strings.Repeat("a", 500))
	res, err := a.SendMessage(ctx, &OutgoingMessage{
		RequestURI: fmt.Sprintf("sip:juliet@%s;transport=tcp", addr(t, b, "tcp")),
		From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: body,
	})
	if err != nil || res.Code != 413 {
		t.Fatalf("got %+v %v, want 413", res, err)
	}
	m := rb.wait(t)
	if !m.TooLarge || m.Body != nil || m.BodySize != 500 {
		t.Errorf("message %+v", m)
	}
	res, err = a.SendMessage(ctx, &OutgoingMessage{
		RequestURI: fmt.Sprintf("sip:nobody@%s;transport=tcp", addr(t, b, "tcp")),
		From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: body,
	})
	if err != nil || res.Code != 404 {
		t.Fatalf("got %+v %v, want 404", res, err)
	}
	// 20 KB datagram: beyond 100 + 16 KiB.
	big := rawMessage("MESSAGE", "sip:juliet@example.com", stdHeaders("UDP", 5060), strings.Repeat("b", 20000))
	if r := sendRawUDP(t, addr(t, b, "udp"), big); r == nil || r.StatusCode != 513 {
		t.Errorf("20 KB datagram: %v", r)
	}
}

// TestLargePolicy: the 1300-byte rule for each policy (D1, IM-11, IM-12,
// TV-06).
func TestLargePolicy(t *testing.T) {
	body := []byte(strings.Repeat("a", 1500))

	t.Run("tcp", func(t *testing.T) {
		checkLeaks(t)
		rb := newRecorder()
		port := sameFreePort(t)
		startUAOn(t, []string{fmt.Sprintf("udp:127.0.0.1:%d", port), fmt.Sprintf("tcp:127.0.0.1:%d", port)}, WithMessageHandler(rb.handle))
		a := startUA(t, WithOutboundProxy(fmt.Sprintf("sip:127.0.0.1:%d;transport=udp", port)))
		ctx := ctxTimeout(t, 10*time.Second)
		res, err := a.SendMessage(ctx, &OutgoingMessage{
			RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", To: "sip:juliet@example.com", Body: body,
		})
		if err != nil || res.Code != 202 || res.Parts != 1 {
			t.Fatalf("%+v %v", res, err)
		}
		m := rb.wait(t)
		if m.Transport != "tcp" || string(m.Body) != string(body) {
			t.Errorf("transport %s, %d bytes", m.Transport, len(m.Body))
		}
	})

	t.Run("small stays udp", func(t *testing.T) {
		checkLeaks(t)
		rb := newRecorder()
		b := startUA(t, WithMessageHandler(rb.handle))
		a := startUA(t)
		ctx := ctxTimeout(t, 10*time.Second)
		res, err := a.SendMessage(ctx, &OutgoingMessage{
			RequestURI: fmt.Sprintf("sip:juliet@%s", addr(t, b, "udp")), From: "sip:romeo@example.net", To: "sip:juliet@example.com",
			Body: []byte(strings.Repeat("a", 900)),
		})
		if err != nil || res.Code != 202 {
			t.Fatalf("%+v %v", res, err)
		}
		if m := rb.wait(t); m.Transport != "udp" {
			t.Errorf("transport %s", m.Transport)
		}
	})

	t.Run("chunk", func(t *testing.T) {
		checkLeaks(t)
		peer := newRawUDP(t)
		a := startUA(t, WithLargeMessages(LargeChunk))
		ctx := ctxTimeout(t, 10*time.Second)
		// Multi-byte characters so that cuts must respect UTF-8.
		text := strings.Repeat("Ж€😀a", 300) // 10 bytes per group: 3000 bytes
		type outcome struct {
			res Result
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := a.SendMessage(ctx, &OutgoingMessage{
				RequestURI: fmt.Sprintf("sip:juliet@127.0.0.1:%d", peer.port()),
				From:       "sip:romeo@example.net", To: "sip:juliet@example.com",
				Subject: "chunked", CallID: "thread-1", Body: []byte(text),
			})
			done <- outcome{res, err}
		}()
		var joined strings.Builder
		seen := map[string]bool{}
		tags := map[string]bool{}
		parts := 0
		for {
			req, data, from := peer.readRequest(5*time.Second, seen)
			if req == nil {
				break
			}
			parts++
			if len(data) > 1300 {
				t.Errorf("part %d is %d bytes", parts, len(data))
			}
			// Each part is a MESSAGE of its own (IM-05): CSeq 1, a fresh
			// From tag, and the caller's Call-ID (the XMPP thread).
			if cs := req.CSeq(); cs.SeqNo != 1 || string(*req.CallID()) != "thread-1" {
				t.Errorf("part %d: CSeq %v Call-ID %v", parts, cs, req.CallID())
			}
			tag, _ := req.From().Params.Get("tag")
			if tags[tag] {
				t.Errorf("part %d reuses From tag %q", parts, tag)
			}
			tags[tag] = true
			if !isValidUTF8(req.Body()) {
				t.Errorf("part %d cut inside a character", parts)
			}
			joined.Write(req.Body())
			// The next part must wait for this final response (IM-12 d).
			if next, _ := peer.read(150 * time.Millisecond); next != nil {
				if m, _ := sip.ParseMessage(next); m != nil && viaBranch(m.(*sip.Request)) != viaBranch(req) {
					t.Fatalf("part %d sent before the final response of part %d", parts+1, parts)
				}
			}
			peer.respond(req, from, 200)
			if joined.Len() == len(text) {
				break
			}
		}
		o := <-done
		if o.err != nil || o.res.Code != 200 || o.res.Parts != parts || parts < 2 {
			t.Fatalf("result %+v %v after %d parts", o.res, o.err, parts)
		}
		if joined.String() != text {
			t.Error("parts do not join to the body")
		}
	})

	t.Run("chunk stops at failure", func(t *testing.T) {
		checkLeaks(t)
		peer := newRawUDP(t)
		a := startUA(t, WithLargeMessages(LargeChunk))
		ctx := ctxTimeout(t, 10*time.Second)
		done := make(chan Result, 1)
		go func() {
			res, _ := a.SendMessage(ctx, &OutgoingMessage{
				RequestURI: fmt.Sprintf("sip:juliet@127.0.0.1:%d", peer.port()),
				From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: []byte(strings.Repeat("z", 4000)),
			})
			done <- res
		}()
		seen := map[string]bool{}
		for i, code := range []int{200, 486} {
			req, _, from := peer.readRequest(5*time.Second, seen)
			if req == nil {
				t.Fatalf("no part %d", i+1)
			}
			peer.respond(req, from, code)
		}
		if req, _, _ := peer.readRequest(300*time.Millisecond, seen); req != nil {
			t.Error("a part was sent after a failure")
		}
		if res := <-done; res.Code != 486 || res.Parts != 2 {
			t.Errorf("result %+v", res)
		}
	})

	t.Run("chunk not over tcp", func(t *testing.T) {
		checkLeaks(t)
		rb := newRecorder()
		b := startUA(t, WithMessageHandler(rb.handle))
		a := startUA(t, WithLargeMessages(LargeChunk))
		ctx := ctxTimeout(t, 10*time.Second)
		res, err := a.SendMessage(ctx, &OutgoingMessage{
			RequestURI: fmt.Sprintf("sip:juliet@%s;transport=tcp", addr(t, b, "tcp")),
			From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: body,
		})
		if err != nil || res.Parts != 1 || res.Code != 202 {
			t.Fatalf("%+v %v", res, err)
		}
		if m := rb.wait(t); string(m.Body) != string(body) {
			t.Error("body changed")
		}
	})

	t.Run("reject", func(t *testing.T) {
		checkLeaks(t)
		peer := newRawUDP(t)
		a := startUA(t, WithLargeMessages(LargeReject))
		ctx := ctxTimeout(t, 10*time.Second)
		_, err := a.SendMessage(ctx, &OutgoingMessage{
			RequestURI: fmt.Sprintf("sip:juliet@127.0.0.1:%d", peer.port()),
			From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: body,
		})
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err %v, want ErrTooLarge", err)
		}
		if data, _ := peer.read(200 * time.Millisecond); data != nil {
			t.Error("something was sent")
		}
	})
}

func isValidUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

// TestFinalCodes: final responses surface in Result (TV-07, TV-08).
func TestFinalCodes(t *testing.T) {
	checkLeaks(t)
	rb := newRecorder()
	rb.reply = func(m *IncomingMessage) Reply {
		var code int
		fmt.Sscan(m.Subject, &code)
		r := Reply{Code: code}
		switch code {
		case 301:
			r.Headers = map[string]string{"Contact": "<sip:romeo@example.org>"}
		case 503:
			r.Headers = map[string]string{"Retry-After": "5", "Bad\r\nName": "x", "Via": "evil"}
		case 415:
			r.Headers = map[string]string{"Accept": "text/plain, message/cpim, text/html"}
		case 480:
			r.Reason = "Gone Fishing"
		}
		return r
	}
	b := startUA(t, WithMessageHandler(rb.handle))
	a := startUA(t)
	ctx := ctxTimeout(t, 10*time.Second)
	for _, code := range []int{200, 301, 404, 415, 480, 486, 503, 606} {
		res, err := a.SendMessage(ctx, &OutgoingMessage{
			RequestURI: fmt.Sprintf("sip:juliet@%s", addr(t, b, "udp")),
			From:       "sip:romeo@example.net", To: "sip:juliet@example.com",
			Subject: fmt.Sprint(code), Body: []byte("x"),
		})
		if err != nil || res.Code != code {
			t.Errorf("%d: %+v %v", code, res, err)
			continue
		}
		switch code {
		case 301:
			if res.Contact != "sip:romeo@example.org" {
				t.Errorf("Contact %q", res.Contact)
			}
		case 480:
			if res.Reason != "Gone Fishing" {
				t.Errorf("reason %q", res.Reason)
			}
		case 486:
			if res.Reason != "Busy Here" {
				t.Errorf("reason %q", res.Reason)
			}
		}
		if (res.Err() == nil) != (code < 300) {
			t.Errorf("%d: Err() %v", code, res.Err())
		}
	}
}

// TestReplyHeaders checks what a Reply's headers put on the wire.
func TestReplyHeaders(t *testing.T) {
	checkLeaks(t)
	rb := newRecorder()
	rb.reply = func(m *IncomingMessage) Reply {
		return Reply{Code: 503, Headers: map[string]string{
			"Retry-After": "5", "Bad\r\nName": "x", "Via": "evil", "Contact": "<sip:x@y>", "X-Note": "a\r\nX-Injected: b",
		}}
	}
	b := startUA(t, WithMessageHandler(rb.handle))
	r := sendRawUDP(t, addr(t, b, "udp"), rawMessage("MESSAGE", "sip:juliet@example.com", stdHeaders("UDP", 5060), "x"))
	if r == nil || r.StatusCode != 503 {
		t.Fatalf("response %v", r)
	}
	if h := r.GetHeader("Retry-After"); h == nil || h.Value() != "5" {
		t.Errorf("Retry-After %v", h)
	}
	if len(r.GetHeaders("Via")) != 1 || len(r.GetHeaders("X-Injected")) != 0 {
		t.Errorf("headers:\n%s", r)
	}
	if r.Contact() == nil {
		t.Error("a 503 may carry Contact")
	}
	// A 2xx never carries Contact (IM-04).
	rb.mu.Lock()
	rb.reply = func(*IncomingMessage) Reply {
		return Reply{Code: 200, Headers: map[string]string{"Contact": "<sip:x@y>"}}
	}
	rb.mu.Unlock()
	r = sendRawUDP(t, addr(t, b, "udp"), rawMessage("MESSAGE", "sip:juliet@example.com", stdHeaders("UDP", 5060), "x"))
	if r == nil || r.StatusCode != 200 || r.Contact() != nil || len(r.Body()) != 0 {
		t.Errorf("2xx: %v", r)
	}
}

// TestTimeout: a peer that never answers gives ErrTimeout (ERR-04); a
// cancelled context gives context.Canceled.
func TestTimeout(t *testing.T) {
	checkLeaks(t)
	peer := newRawUDP(t)
	a := startUA(t, WithTransactionTimeout(300*time.Millisecond))
	ruri := fmt.Sprintf("sip:juliet@127.0.0.1:%d", peer.port())
	msg := &OutgoingMessage{RequestURI: ruri, From: "sip:romeo@example.net", To: "sip:juliet@example.com", Body: []byte("x")}

	start := time.Now()
	_, err := a.SendMessage(ctxTimeout(t, 10*time.Second), msg)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}

	// The caller's deadline is a timeout too.
	a2 := startUA(t)
	_, err = a2.SendMessage(ctxTimeout(t, 200*time.Millisecond), msg)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}

	// Cancellation is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = a2.SendMessage(ctx, msg)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

// TestMaxInFlight: with one slot, a second SendMessage waits for it.
func TestMaxInFlight(t *testing.T) {
	checkLeaks(t)
	peer := newRawUDP(t)
	a := startUA(t, WithMaxInFlight(1), WithTransactionTimeout(2*time.Second))
	msg := &OutgoingMessage{RequestURI: fmt.Sprintf("sip:juliet@127.0.0.1:%d", peer.port()),
		From: "sip:romeo@example.net", To: "sip:juliet@example.com", Body: []byte("x")}
	first := make(chan error, 1)
	go func() {
		_, err := a.SendMessage(ctxTimeout(t, 10*time.Second), msg)
		first <- err
	}()
	req, _, from := peer.readRequest(5*time.Second, nil)
	if req == nil {
		t.Fatal("no first request")
	}
	_, err := a.SendMessage(ctxTimeout(t, 150*time.Millisecond), msg)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "slot") {
		t.Errorf("second: %v, want a timeout waiting for a slot", err)
	}
	peer.respond(req, from, 200)
	if err := <-first; err != nil {
		t.Errorf("first: %v", err)
	}
}

// TestMaxIncomingSheds: beyond WithMaxIncoming a MESSAGE is answered 503
// with Retry-After at once, without the handler; its conversation is not
// held up; the handler's own MESSAGE still gets its answer. Over TCP (over
// UDP the guard sheds first, TestOverloadShedsStatelessly).
func TestMaxIncomingSheds(t *testing.T) {
	checkLeaks(t)
	release := make(chan struct{})
	var calls atomic.Int32
	u := startUA(t, WithMaxIncoming(1), WithMessageHandler(func(ctx context.Context, m *IncomingMessage) Reply {
		if calls.Add(1) == 1 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return Reply{Code: 202}
	}))
	to := addr(t, u, "udp")
	first := make(chan *sip.Response, 1)
	go func() {
		first <- sendRawUDP(t, to, rawMessage("MESSAGE", "sip:juliet@example.com", stdHeaders("UDP", 5999), "one"))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Same conversation, then another one: both shed while the first waits.
	for _, from := range []string{"From: <sip:romeo@example.net>;tag=vwxyz", "From: <sip:tybalt@example.net>;tag=a"} {
		res := sendRawTCP(t, addr(t, u, "tcp"), rawMessage("MESSAGE", "sip:juliet@example.com",
			replace(stdHeaders("TCP", 5999), "From:", from), "two"))
		if res == nil || res.StatusCode != 503 {
			t.Fatalf("over the bound: %v, want 503", res)
		}
		if h := res.GetHeader("Retry-After"); h == nil || h.Value() != strconv.Itoa(OverloadRetryAfter) {
			t.Errorf("503 without Retry-After %d: %v", OverloadRetryAfter, h)
		}
	}
	close(release)
	if res := <-first; res == nil || res.StatusCode != 202 {
		t.Fatalf("first: %v, want 202", res)
	}
	// The bound is free again (a shed request whose turn was issued after
	// it was answered holds it until that turn expires), and the
	// conversation is not blocked by the shed request's turn.
	for deadline := time.Now().Add(3 * time.Second); u.overloaded() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	res := sendRawUDP(t, to, rawMessage("MESSAGE", "sip:juliet@example.com", stdHeaders("UDP", 5999), "three"))
	if res == nil || res.StatusCode != 202 {
		t.Fatalf("after the load: %v, want 202", res)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("handler called %d times, want 2 (shed requests never reach it)", n)
	}
}

// TestLifecycle: Start/Close rules and errors.
func TestLifecycle(t *testing.T) {
	checkLeaks(t)
	u, err := New(WithListen("udp:127.0.0.1:0"), WithTrusted(loopback))
	if err != nil {
		t.Fatal(err)
	}
	msg := &OutgoingMessage{RequestURI: "sip:a@127.0.0.1:9", From: "sip:b@c", To: "sip:a@b"}
	if _, err := u.SendMessage(context.Background(), msg); !errors.Is(err, ErrNotStarted) {
		t.Errorf("before Start: %v", err)
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	if l := u.Listeners(); len(l) != 1 || l[0].Transport != "udp" || l[0].Addr.Port() == 0 {
		t.Errorf("listeners %v", l)
	}
	if err := u.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := u.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := u.SendMessage(context.Background(), msg); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := u.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}

	// A port in use fails Start and leaves nothing bound.
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	u2, err := New(WithListen("tcp:127.0.0.1:0", "udp:"+busy.LocalAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	if err := u2.Start(context.Background()); !errors.Is(err, ErrTransport) {
		t.Errorf("Start on a busy port: %v", err)
	}
	u2.Close()
}

// TestCloseWhileBusy: Close returns while a handler and a send are blocked,
// and the handler's context is cancelled.
func TestCloseWhileBusy(t *testing.T) {
	checkLeaks(t)
	entered := make(chan struct{}, 1)
	b := startUA(t, WithMessageHandler(func(ctx context.Context, m *IncomingMessage) Reply {
		entered <- struct{}{}
		<-ctx.Done()
		return Reply{Code: 503}
	}))
	a := startUA(t)
	sendErr := make(chan error, 1)
	go func() {
		_, err := a.SendMessage(context.Background(), &OutgoingMessage{
			RequestURI: fmt.Sprintf("sip:juliet@%s;transport=tcp", addr(t, b, "tcp")),
			From:       "sip:romeo@example.net", To: "sip:juliet@example.com", Body: []byte("x"),
		})
		sendErr <- err
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not called")
	}
	closed := make(chan struct{})
	go func() { a.Close(); b.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	if err := <-sendErr; !errors.Is(err, ErrClosed) {
		t.Errorf("send: %v", err)
	}
}

// TestOrderingPipelinedTCP: 100 MESSAGEs written back to back on one TCP
// connection reach the handler in order, although sipgo runs each on its
// own goroutine (LIBRARIES.md).
func TestOrderingPipelinedTCP(t *testing.T) {
	checkLeaks(t)
	var got []int
	var mu sync.Mutex
	// A generous bound on waiting for a late handler goroutine keeps a
	// loaded test machine from turning a slow start into a reorder.
	patient := func(c *config) error { c.orderWait = 2 * time.Second; return nil }
	b := startUA(t, patient, WithMessageHandler(func(ctx context.Context, m *IncomingMessage) Reply {
		var n int
		fmt.Sscan(string(m.Body), &n)
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
		// Uneven handler time makes reordering likely without sequencing.
		time.Sleep(time.Duration(n%3) * 200 * time.Microsecond)
		return Reply{Code: 200}
	}))
	c, err := net.Dial("tcp", addr(t, b, "tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 100
	var all strings.Builder
	port := c.LocalAddr().(*net.TCPAddr).Port
	for i := range n {
		h := stdHeaders("TCP", port)
		h = replace(h, "CSeq", fmt.Sprintf("CSeq: %d MESSAGE", i+1))
		all.WriteString(rawMessage("MESSAGE", "sip:juliet@example.com", h, fmt.Sprint(i)))
	}
	if _, err := c.Write([]byte(all.String())); err != nil {
		t.Fatal(err)
	}
	count := readResponses(t, c, n, 10*time.Second, func(r *sip.Response) {
		if r.StatusCode != 200 {
			t.Errorf("status %d", r.StatusCode)
		}
	})
	if count != n {
		t.Fatalf("%d responses", count)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, v := range got {
		if v != i {
			t.Fatalf("handler order %v", got)
		}
	}
	_, _, dropped, unordered := b.seq.stats()
	if dropped != 0 || unordered != 0 {
		t.Errorf("dropped %d unordered %d", dropped, unordered)
	}
}

// TestRetransmissionNoTicket: a UDP retransmission (same branch) is
// absorbed by the transaction layer and must not stall the conversation.
func TestRetransmissionNoTicket(t *testing.T) {
	checkLeaks(t)
	rb := newRecorder()
	b := startUA(t, WithMessageHandler(rb.handle))
	r := newRawUDP(t)
	h := stdHeaders("UDP", r.port())
	data := rawMessage("MESSAGE", "sip:juliet@example.com", h, "one")
	for range 3 {
		r.conn.WriteToUDPAddrPort([]byte(data), addr(t, b, "udp"))
	}
	start := time.Now()
	h2 := replace(stdHeaders("UDP", r.port()), "CSeq", "CSeq: 2 MESSAGE")
	r.conn.WriteToUDPAddrPort([]byte(rawMessage("MESSAGE", "sip:juliet@example.com", h2, "two")), addr(t, b, "udp"))
	for range 2 {
		rb.wait(t)
	}
	if d := time.Since(start); d > 90*time.Millisecond {
		t.Logf("second message took %v (a ticket may have been orphaned)", d)
	}
	time.Sleep(100 * time.Millisecond)
	if rb.count() != 2 {
		t.Errorf("handler called %d times", rb.count())
	}
	if _, _, dropped, _ := b.seq.stats(); dropped != 0 {
		t.Errorf("%d tickets dropped", dropped)
	}
}

// TestRedactedLogs: sipgo logs unparsable messages with their bytes at
// Error; above Debug the bytes are replaced.
func TestRedactedLogs(t *testing.T) {
	checkLeaks(t)
	log, buf := newLogger(slog.LevelInfo)
	b := startUA(t, WithLogger(log))
	r := newRawUDP(t)
	r.conn.WriteToUDPAddrPort([]byte("MESSAGE sip:a@b SIP/2.0\r\nVia: ???\r\nsecret-body-text"), addr(t, b, "udp"))
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(buf.String(), "redacted") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := buf.String(); strings.Contains(s, "secret-body-text") || !strings.Contains(s, "redacted") {
		t.Errorf("logs:\n%s", s)
	}
}

// TestOptionErrors: New validates its options.
func TestOptionErrors(t *testing.T) {
	for name, opts := range map[string][]Option{
		"tls without cert":  {WithListen("tls:127.0.0.1:0")},
		"bad transport":     {WithListen("sctp:127.0.0.1:0")},
		"bad address":       {WithListen("udp:localhost:5060")},
		"no port":           {WithListen("udp:127.0.0.1")},
		"insecure tls":      {WithTLSClientConfig(&tls.Config{InsecureSkipVerify: true})},
		"proxy scheme":      {WithOutboundProxy("http://127.0.0.1")},
		"proxy transport":   {WithOutboundProxy("sip:127.0.0.1;transport=sctp")},
		"proxy crlf":        {WithOutboundProxy("sip:127.0.0.1\r\nX: y")},
		"policy":            {WithLargeMessages("split")},
		"body":              {WithMaxMessageBody(0)},
		"timeout":           {WithTransactionTimeout(0)},
		"in flight":         {WithMaxInFlight(-1)},
		"nil logger":        {WithLogger(nil)},
		"nil handler":       {WithMessageHandler(nil)},
		"domain":            {WithDomain("a b")},
		"trusted":           {WithTrusted(netip.Prefix{})},
		"accept":            {WithAccept("text/plain\r\n")},
		"missing cert file": {WithListen("tls:127.0.0.1:0"), WithTLS("/nonexistent/c", "/nonexistent/k")},
	} {
		if _, err := New(opts...); !errors.Is(err, ErrOption) {
			t.Errorf("%s: err %v, want ErrOption", name, err)
		}
	}
}

// TestOverloadShedsStatelessly: while the bound is reached, a new MESSAGE
// is answered 503 before sipgo sees it, but a retransmission of a MESSAGE
// being handled is not: its transaction gives the one final response.
func TestOverloadShedsStatelessly(t *testing.T) {
	checkLeaks(t)
	release := make(chan struct{})
	var calls atomic.Int32
	u := startUA(t, WithMaxIncoming(1), WithMessageHandler(func(ctx context.Context, m *IncomingMessage) Reply {
		calls.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Reply{Code: 202}
	}))
	to := addr(t, u, "udp")
	a := newRawUDP(t)
	first := rawMessage("MESSAGE", "sip:juliet@example.com", stdHeaders("UDP", a.port()), "one")
	if _, err := a.conn.WriteToUDPAddrPort([]byte(first), to); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	res := sendRawUDP(t, to, rawMessage("MESSAGE", "sip:juliet@example.com",
		replace(stdHeaders("UDP", 5999), "From:", "From: <sip:tybalt@example.net>;tag=b"), "two"))
	if res == nil || res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("new MESSAGE under overload: %v, want 503 with Retry-After", res)
	}
	// A retransmission of the first: absorbed by its transaction, no 503.
	if _, err := a.conn.WriteToUDPAddrPort([]byte(first), to); err != nil {
		t.Fatal(err)
	}
	if b, _ := a.read(300 * time.Millisecond); b != nil {
		t.Fatalf("retransmission answered while its transaction is pending: %s", b)
	}
	close(release)
	b, _ := a.read(3 * time.Second)
	if b == nil || !strings.HasPrefix(string(b), "SIP/2.0 202") {
		t.Fatalf("first: %q, want 202", b)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
}
