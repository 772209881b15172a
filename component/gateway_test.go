package component

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stox-gw/stox/sipside"
)

func TestHandshakeToken(t *testing.T) {
	// TV-14 (XEP-0114 s3 example).
	if got, want := handshakeToken("3BF96D32", "secret"), "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"; got != want {
		t.Fatalf("handshake = %s, want %s", got, want)
	}
}

func TestDiscoInfoComponent(t *testing.T) {
	// COMP-10, TV-16, ADDR-12.
	h := newHarness(t)
	h.in(`<iq xmlns='jabber:component:accept' type='get' id='d1' from='juliet@example.com/a' to='sip.example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	r := h.next()
	if r.AttrValue("type") != "result" || r.AttrValue("id") != "d1" || r.AttrValue("to") != "juliet@example.com/a" || r.AttrValue("from") != "sip.example.com" {
		t.Fatalf("reply = %s", r)
	}
	q := r.Child(nsDiscoInfo, "query")
	id := q.Child(nsDiscoInfo, "identity")
	if id.AttrValue("category") != "gateway" || id.AttrValue("type") != "simple" {
		t.Fatalf("identity = %s (TV-16 fails on type sip)", id)
	}
	var got []string
	for _, f := range q.Children {
		if f.Local == "feature" {
			got = append(got, f.AttrValue("var"))
		}
	}
	want := []string{nsDiscoInfo, nsDiscoItems, "jabber:iq:gateway", "jabber:iq:version", `jid\20escaping`, "urn:xmpp:ping"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("features = %v, want %v", got, want)
	}
}

func TestIQAnsweredExactlyOnce(t *testing.T) {
	// COMP-05, COMP-11, COMP-14, TV-41.
	cases := []struct {
		name, iq, typ, cond string
	}{
		{"ping", `<iq type='get' id='p1' from='a@example.com/r' to='sip.example.com'><ping xmlns='urn:xmpp:ping'/></iq>`, "result", ""},
		{"unknown namespace", `<iq type='get' id='u1' from='a@example.com/r' to='sip.example.com'><query xmlns='urn:example:unknown'/></iq>`, "error", "service-unavailable"},
		{"set unknown", `<iq type='set' id='u2' from='a@example.com/r' to='sip.example.com'><x xmlns='jabber:iq:register'/></iq>`, "error", "service-unavailable"},
		{"disco node", `<iq type='get' id='n1' from='a@example.com/r' to='sip.example.com'><query xmlns='http://jabber.org/protocol/disco#info' node='nope'/></iq>`, "error", "item-not-found"},
		{"disco items", `<iq type='get' id='i1' from='a@example.com/r' to='sip.example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`, "result", ""},
		{"two payloads", `<iq type='get' id='t1' from='a@example.com/r' to='sip.example.com'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>`, "error", "bad-request"},
		{"no payload", `<iq type='get' id='t2' from='a@example.com/r' to='sip.example.com'/>`, "error", "bad-request"},
		{"ping to user", `<iq type='get' id='p2' from='a@example.com/r' to='bob@sip.example.com'><ping xmlns='urn:xmpp:ping'/></iq>`, "error", "service-unavailable"},
		{"disco user", `<iq type='get' id='d2' from='a@example.com/r' to='bob@sip.example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "result", ""},
		{"component resource", `<iq type='get' id='d3' from='a@example.com/r' to='sip.example.com/x'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "error", "item-not-found"},
		{"bad type", `<iq type='bogus' id='b1' from='a@example.com/r' to='sip.example.com'><ping xmlns='urn:xmpp:ping'/></iq>`, "error", "bad-request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.in(c.iq)
			r := h.next()
			if r.AttrValue("type") != c.typ {
				t.Fatalf("reply = %s, want type %s", r, c.typ)
			}
			if _, cond := errorCondition(r); cond != c.cond {
				t.Fatalf("condition = %q, want %q", cond, c.cond)
			}
			h.none()
		})
	}
}

func TestIQResultNeverAnswered(t *testing.T) {
	h := newHarness(t)
	h.in(`<iq type='result' id='x' from='example.com' to='sip.example.com'/>`)
	h.in(`<iq type='error' id='y' from='example.com' to='sip.example.com'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	h.none()
}

func TestJabberIQGateway(t *testing.T) {
	// ADDR-13, TV-13.
	h := newHarness(t)
	h.in(`<iq type='get' id='g0' from='a@example.com/r' to='sip.example.com'><query xmlns='jabber:iq:gateway'/></iq>`)
	r := h.next()
	if q := r.Child(nsGateway, "query"); q == nil || q.Child(nsGateway, "prompt") == nil || q.Child(nsGateway, "desc") == nil {
		t.Fatalf("get reply = %s", r)
	}
	for _, c := range []struct{ prompt, jid string }{
		{"romeo@example.net", `romeo\40example.net@sip.example.com`},
		{"sip:romeo@example.net", `romeo\40example.net@sip.example.com`},
		{"bob@sip.example.com", "bob@sip.example.com"},
	} {
		h.in(`<iq type='set' id='g1' from='a@example.com/r' to='sip.example.com'><query xmlns='jabber:iq:gateway'><prompt>` + c.prompt + `</prompt></query></iq>`)
		r := h.next()
		if got := r.Child(nsGateway, "query").ChildText(nsGateway, "jid"); got != c.jid {
			t.Errorf("prompt %q -> %q, want %q (%s)", c.prompt, got, c.jid, r)
		}
	}
	h.in(`<iq type='set' id='g2' from='a@example.com/r' to='sip.example.com'><query xmlns='jabber:iq:gateway'><prompt></prompt></query></iq>`)
	if _, cond := errorCondition(h.next()); cond != "jid-malformed" {
		t.Fatalf("empty prompt: condition %q", cond)
	}
}

func TestMessageToSIP(t *testing.T) {
	// TV-01, TV-02, IM-03, ADDR-09.
	h := newHarness(t)
	h.sip.auto = func(*sipside.OutgoingMessage) (sipside.Result, error) { return sipside.Result{Code: 200}, nil }
	h.in(`<message from='juliet@example.com/yn0cl4bnw0yr3vym' to='romeo\40example.net@sip.example.com' id='m1' xml:lang='en'><subject>Hi</subject><thread>29377446-0CBB-4296-8958-590D79094C50</thread><body>Art thou not Romeo, and a Montague?</body></message>`)
	m := h.call().msg
	if m.RequestURI != "sip:romeo@example.net" || m.To != "sip:romeo@example.net" {
		t.Errorf("Request-URI/To = %q / %q", m.RequestURI, m.To)
	}
	if m.From != "sip:juliet@example.com;gr=yn0cl4bnw0yr3vym" {
		t.Errorf("From = %q", m.From)
	}
	if m.Subject != "Hi" || m.CallID != "29377446-0CBB-4296-8958-590D79094C50" || m.ContentLanguage != "en" {
		t.Errorf("subject/call-id/lang = %q %q %q", m.Subject, m.CallID, m.ContentLanguage)
	}
	if string(m.Body) != "Art thou not Romeo, and a Montague?" || !strings.HasPrefix(m.ContentType, "text/plain") {
		t.Errorf("body = %q type %q", m.Body, m.ContentType)
	}
	h.none() // 200: no stanza back (IM-14)
}

func TestMessageToSIPErrors(t *testing.T) {
	// TV-07, TV-08, ERR-04, ERR-05.
	cases := []struct {
		code      int
		err       error
		typ, cond string
	}{
		{404, nil, "cancel", "item-not-found"},
		{480, nil, "wait", "recipient-unavailable"},
		{486, nil, "wait", "recipient-unavailable"},
		{503, nil, "cancel", "internal-server-error"},
		{606, nil, "modify", "not-acceptable"},
		{0, sipside.ErrTimeout, "wait", "remote-server-timeout"},
		{0, sipside.ErrTooLarge, "modify", "policy-violation"},
	}
	for _, c := range cases {
		sendModes(t, func(t *testing.T, noStart bool) {
			t.Run(fmt.Sprint(c.code, c.err), func(t *testing.T) {
				h := newHarness(t)
				h.sip.noStart = noStart
				h.in(`<message type='chat' from='juliet@example.com/yn0' to='romeo\40example.net@sip.example.com' id='m404'><body>x</body></message>`)
				h.call().reply <- sipReply{sipside.Result{Code: c.code}, c.err}
				r := h.next()
				if r.Local != "message" || r.AttrValue("type") != "error" || r.AttrValue("id") != "m404" ||
					r.AttrValue("to") != "juliet@example.com/yn0" || r.AttrValue("from") != `romeo\40example.net@sip.example.com` {
					t.Fatalf("error stanza = %s", r)
				}
				if typ, cond := errorCondition(r); typ != c.typ || cond != c.cond {
					t.Fatalf("error = %s/%s, want %s/%s", typ, cond, c.typ, c.cond)
				}
			})
		})
	}
}

func TestGoneCarriesAddress(t *testing.T) {
	// TV-08(e): 301 -> <gone>xmpp:...</gone>.
	h := newHarness(t)
	h.in(`<message from='juliet@example.com/r' to='romeo\40example.net@sip.example.com' id='g'><body>x</body></message>`)
	h.call().reply <- sipReply{sipside.Result{Code: 301, Contact: "sip:romeo@example.org"}, nil}
	r := h.next()
	gone := r.Child(nsComponent, "error").Child(nsStanzas, "gone")
	// RFC 5122 percent-encodes the backslash of the escaped localpart.
	if gone == nil || gone.Text != "xmpp:romeo%5C40example.org@sip.example.com" {
		t.Fatalf("error stanza = %s", r)
	}
}

func TestMessageNotSent(t *testing.T) {
	// IM-02, IM-10, ERR-03: no MESSAGE for these; errors only where allowed.
	cases := []struct {
		name, stanza, cond string
	}{
		{"chat state only", `<message type='chat' from='juliet@example.com/r' to='bob@sip.example.com' id='c'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, ""},
		{"error", `<message type='error' from='juliet@example.com/r' to='bob@sip.example.com' id='e'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`, ""},
		{"groupchat", `<message type='groupchat' from='juliet@example.com/r' to='bob@sip.example.com' id='g'><body>x</body></message>`, "feature-not-implemented"},
		{"unserved sender", `<message from='eve@evil.example/r' to='bob@sip.example.com' id='u'><body>x</body></message>`, "forbidden"},
		{"to component", `<message from='juliet@example.com/r' to='sip.example.com' id='d'><body>x</body></message>`, "jid-malformed"},
		{"loop", `<message from='juliet@example.com/r' to='romeo\40example.com@sip.example.com' id='l'><body>x</body></message>`, "item-not-found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.in(c.stanza)
			if c.cond != "" {
				if _, cond := errorCondition(h.next()); cond != c.cond {
					t.Fatalf("condition %q, want %q", cond, c.cond)
				}
			}
			h.none()
			h.noCall()
		})
	}
}

func TestHeadlineFailureIsQuiet(t *testing.T) {
	h := newHarness(t)
	h.in(`<message type='headline' from='juliet@example.com/r' to='bob@sip.example.com' id='h'><body>x</body></message>`)
	h.call().reply <- sipReply{sipside.Result{Code: 404}, nil}
	h.none()
}

func TestOrderAndOneInFlightPerDestination(t *testing.T) {
	// Messages from one XMPP user to one SIP user leave in arrival order, one
	// at a time (RFC 3428 s8); another destination is not held up.
	sendModes(t, testOrderAndOneInFlight)
}

func testOrderAndOneInFlight(t *testing.T, noStart bool) {
	h := newHarness(t)
	h.sip.noStart = noStart
	orderAndOneInFlight(t, h)
}

// orderAndOneInFlight sends 100 messages to each of two SIP users and
// checks their order and that one at a time was in flight per user.
func orderAndOneInFlight(t *testing.T, h *harness) {
	t.Helper()
	h.sip.auto = func(*sipside.OutgoingMessage) (sipside.Result, error) {
		time.Sleep(time.Millisecond)
		return sipside.Result{Code: 200}, nil
	}
	const n = 100
	for i := range n {
		h.in(fmt.Sprintf(`<message from='juliet@example.com/r' to='bob@sip.example.com' id='m%d'><body>%d</body></message>`, i, i))
		h.in(fmt.Sprintf(`<message from='juliet@example.com/r' to='carol@sip.example.com' id='c%d'><body>%d</body></message>`, i, i))
	}
	next := map[string]int{}
	for range 2 * n {
		m := h.call().msg
		if got := string(m.Body); got != fmt.Sprint(next[m.RequestURI]) {
			t.Fatalf("to %s: body %s, want %d", m.RequestURI, got, next[m.RequestURI])
		}
		next[m.RequestURI]++
	}
	h.sip.mu.Lock()
	defer h.sip.mu.Unlock()
	if h.sip.maxSeen != 1 {
		t.Fatalf("up to %d MESSAGEs in flight to one destination, want 1", h.sip.maxSeen)
	}
}

func TestSessionQueueBound(t *testing.T) {
	// sip.user_queue bounds what waits (not what is in flight).
	h := newHarness(t, func(c *Config) { c.SessionQueue = 3 })
	h.in(`<message from='juliet@example.com/r' to='bob@sip.example.com' id='q0'><body>x</body></message>`)
	first := h.call() // q0 is in flight now
	for i := 1; i <= 4; i++ {
		h.in(fmt.Sprintf(`<message from='juliet@example.com/r' to='bob@sip.example.com' id='q%d'><body>x</body></message>`, i))
	}
	// Three wait, the fourth is refused.
	r := h.next()
	if _, cond := errorCondition(r); cond != "resource-constraint" || r.AttrValue("id") != "q4" {
		t.Fatalf("got %s", r)
	}
	first.reply <- sipReply{sipside.Result{Code: 200}, nil}
	for range 3 {
		h.call().reply <- sipReply{sipside.Result{Code: 200}, nil}
	}
	h.none()
}

func TestShutdownAnswersQueued(t *testing.T) {
	sendModes(t, testShutdownAnswersQueued)
}

func testShutdownAnswersQueued(t *testing.T, noStart bool) {
	h := newHarness(t)
	h.sip.noStart = noStart
	h.in(`<message from='juliet@example.com/r' to='bob@sip.example.com' id='a'><body>x</body></message>`)
	h.in(`<message from='juliet@example.com/r' to='bob@sip.example.com' id='b'><body>y</body></message>`)
	c := h.call()
	done := make(chan struct{})
	go func() { h.g.Close(50 * time.Millisecond); close(done) }()
	<-done
	_ = c
	got := map[string]string{}
	for range 2 {
		r := h.next()
		_, cond := errorCondition(r)
		got[r.AttrValue("id")] = cond
	}
	if got["a"] != "service-unavailable" || got["b"] != "service-unavailable" {
		t.Fatalf("errors = %v", got)
	}
	// After close, new messages are refused at once.
	h.in(`<message from='juliet@example.com/r' to='bob@sip.example.com' id='c'><body>z</body></message>`)
	if _, cond := errorCondition(h.next()); cond != "service-unavailable" {
		t.Fatalf("after close: %s", cond)
	}
}

func TestSIPMessageToXMPP(t *testing.T) {
	// TV-03, TV-04, IM-07, IM-13.
	h := newHarness(t)
	r := h.sipIn(&sipside.IncomingMessage{
		RequestURI:      "sip:juliet@example.com",
		From:            "sip:romeo@example.net",
		To:              "sip:juliet@example.com",
		CallID:          "9E97FB43-85F4-4A00-8751-1124FD4C7B2E",
		ContentType:     "text/plain",
		ContentLanguage: "cs",
		Subject:         "S",
		Body:            []byte("Neither, fair saint, if either thee dislike."),
	})
	if r.Code != 202 {
		t.Fatalf("reply %+v", r)
	}
	e := h.next()
	if e.AttrValue("from") != `romeo\40example.net@sip.example.com` || e.AttrValue("to") != "juliet@example.com" ||
		e.AttrValue("id") == "" || e.AttrValue("type") != "" || e.Lang() != "cs" {
		t.Fatalf("stanza = %s", e)
	}
	if e.ChildText(nsComponent, "thread") != "9E97FB43-85F4-4A00-8751-1124FD4C7B2E" ||
		e.ChildText(nsComponent, "body") != "Neither, fair saint, if either thee dislike." ||
		e.ChildText(nsComponent, "subject") != "S" {
		t.Fatalf("stanza = %s", e)
	}
}

func TestSIPMessageGRUU(t *testing.T) {
	// ADDR-10 and the Request-URI rule: ;gr= on the Request-URI picks the resource.
	h := newHarness(t)
	r := h.sipIn(&sipside.IncomingMessage{RequestURI: "sip:juliet@example.com;gr=balcony", From: "sip:bob@sip.example.com;gr=desk",
		To: "sip:juliet@example.com", ContentType: "text/plain", Body: []byte("x")})
	if r.Code != 202 {
		t.Fatalf("reply %+v", r)
	}
	e := h.next()
	if e.AttrValue("to") != "juliet@example.com/balcony" || e.AttrValue("from") != "bob@sip.example.com/desk" {
		t.Fatalf("stanza = %s", e)
	}
}

func TestSIPMessageRefusals(t *testing.T) {
	// DESIGN.md order of refusals; TV-05, TV-40, ADDR-04, ADDR-05, IM-17.
	big := strings.Repeat("a", 70000)
	cases := []struct {
		name   string
		m      sipside.IncomingMessage
		code   int
		accept bool
	}{
		{"unserved domain", sipside.IncomingMessage{RequestURI: "sip:juliet@other.example", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte("x")}, 404, false},
		{"no user", sipside.IncomingMessage{RequestURI: "sip:example.com", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte("x")}, 404, false},
		{"sips", sipside.IncomingMessage{RequestURI: "sips:juliet@example.com", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte("x")}, 403, false},
		{"tel", sipside.IncomingMessage{RequestURI: "tel:+15551234", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte("x")}, 416, false},
		{"unsupported type", sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "application/vnd.foo", Body: []byte("x")}, 415, true},
		{"unserved beats type", sipside.IncomingMessage{RequestURI: "sip:juliet@other.example", From: "sip:romeo@example.net", ContentType: "application/vnd.foo", Body: []byte("x")}, 404, false},
		{"too large", sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte(big)}, 413, false},
		{"type beats size", sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "image/png", Body: []byte(big)}, 415, true},
		{"spoofed XMPP sender", sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.com", ContentType: "text/plain", Body: []byte("x")}, 403, false},
		{"over the SIP body limit", sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "text/plain", TooLarge: true, BodySize: 1 << 20}, 413, false},
		{"over the SIP body limit, bad type", sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "image/png", TooLarge: true, BodySize: 1 << 20}, 415, true},
		{"over the SIP body limit, unserved", sipside.IncomingMessage{RequestURI: "sip:juliet@other.example", From: "sip:romeo@example.net", ContentType: "image/png", TooLarge: true, BodySize: 1 << 20}, 404, false},
		{"bad utf-8", sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte{0xff, 0xfe}}, 400, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.sipIn(&c.m)
			if r.Code != c.code {
				t.Fatalf("code %d, want %d", r.Code, c.code)
			}
			if c.accept && !strings.Contains(r.Headers["Accept"], "text/plain") {
				t.Fatalf("415 without Accept: %+v", r)
			}
			h.none()
		})
	}
}

func TestOutageQueueAndFlush(t *testing.T) {
	// DESIGN.md "XMPP server down": 202 and queued; delivered in order after
	// the reconnect; beyond the bound 503 with Retry-After.
	h := newHarness(t, func(c *Config) { c.OutboxLimit = 3 })
	h.g.out.detach()
	for i := range 4 {
		r := h.sipIn(&sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte(fmt.Sprint(i))})
		want := 202
		if i == 3 {
			want = 503
		}
		if r.Code != want {
			t.Fatalf("message %d: %d, want %d", i, r.Code, want)
		}
		if want == 503 && r.Headers["Retry-After"] == "" {
			t.Fatal("503 without Retry-After")
		}
	}
	h.none()
	if n := h.connect(); n != 3 {
		t.Fatalf("flushed %d", n)
	}
	for i := range 3 {
		if b := h.next().ChildText(nsComponent, "body"); b != fmt.Sprint(i) {
			t.Fatalf("flush order: got %s at %d", b, i)
		}
	}
}

func TestOutageTooLong(t *testing.T) {
	now := time.Unix(1000, 0)
	h := newHarness(t, func(c *Config) { c.OutboxMaxOutage = time.Minute })
	h.g.out.now = func() time.Time { return now }
	h.g.out.detach()
	m := sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte("x")}
	if r := h.sipIn(&m); r.Code != 202 {
		t.Fatal(r.Code)
	}
	now = now.Add(2 * time.Minute)
	if r := h.sipIn(&m); r.Code != 503 {
		t.Fatalf("after a long outage: %d", r.Code)
	}
	h.connect()
	h.next() // the one accepted earlier is still delivered
}

func TestWriteFailureRequeues(t *testing.T) {
	h := newHarness(t)
	h.mu.Lock()
	h.failing = true
	h.mu.Unlock()
	m := sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte("kept")}
	if r := h.sipIn(&m); r.Code != 202 {
		t.Fatal(r.Code)
	}
	h.mu.Lock()
	h.failing = false
	h.mu.Unlock()
	h.connect()
	if b := h.next().ChildText(nsComponent, "body"); b != "kept" {
		t.Fatal(b)
	}
}

func TestStanzaErrorFor(t *testing.T) {
	cases := []struct {
		err  error
		cond string
	}{
		{sipside.ErrTimeout, "remote-server-timeout"},
		{ErrQueueFull, "resource-constraint"},
		{ErrClosed, "service-unavailable"},
		{errors.New("other"), "internal-server-error"},
	}
	for _, c := range cases {
		se := stanzaErrorFor(c.err)
		if se.Condition != c.cond || se.Type == "" {
			t.Errorf("%v -> %+v, want %s", c.err, se, c.cond)
		}
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	h.sip.auto = func(*sipside.OutgoingMessage) (sipside.Result, error) { return sipside.Result{Code: 200}, nil }
	h.in(`<message from='juliet@example.com/r' to='bob@sip.example.com' id='a'><body>x</body></message>`)
	h.call()
	h.sipIn(&sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte("x")})
	h.sipIn(&sipside.IncomingMessage{RequestURI: "sip:juliet@other.example", From: "sip:romeo@example.net", ContentType: "text/plain", Body: []byte("x")})
	h.in(`<iq type='get' id='p1' from='a@example.com/r' to='sip.example.com'><ping xmlns='urn:xmpp:ping'/></iq>`)
	waitFor(t, "delivery counted", func() bool { return h.g.count.xsDelivered.Load() == 1 })
	var b strings.Builder
	if err := h.g.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"stox_xmpp_connected 1\n",
		`stox_messages_total{direction="xmpp_to_sip",result="delivered"} 1` + "\n",
		`stox_messages_total{direction="sip_to_xmpp",result="accepted"} 1` + "\n",
		`stox_messages_total{direction="sip_to_xmpp",result="refused"} 1` + "\n",
		"stox_iq_answered_total 1\n",
		"# TYPE go_goroutines gauge\n",
		fmt.Sprintf("go_sched_gomaxprocs_threads %d\n", runtime.GOMAXPROCS(0)),
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

func TestSIPHTMLToXHTMLIM(t *testing.T) {
	// IM-08(b): text/html becomes an XEP-0071 <html/> with one XHTML <body/>.
	h := newHarness(t)
	r := h.sipIn(&sipside.IncomingMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net",
		ContentType: "text/html", Body: []byte("<p>Hi <em>there</em></p>")})
	if r.Code != 202 {
		t.Fatal(r.Code)
	}
	e := h.next()
	html := e.Child(nsXHTMLIM, "html")
	if html == nil || len(html.Children) != 1 {
		t.Fatalf("stanza %s", e)
	}
	body := html.Children[0]
	if body.Local != "body" || body.Space != "http://www.w3.org/1999/xhtml" || body.Child(body.Space, "body") != nil {
		t.Fatalf("xhtml body %s", e)
	}
	if e.ChildText(nsComponent, "body") != "Hi there" {
		t.Fatalf("plain body in %s", e)
	}
}
