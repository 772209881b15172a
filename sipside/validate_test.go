package sipside

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func parseReq(t testing.TB, p *sip.Parser, data string) *sip.Request {
	t.Helper()
	msg, err := p.ParseSIP([]byte(data))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, data)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		t.Fatalf("not a request")
	}
	return req
}

func TestCheckRequest(t *testing.T) {
	p := sip.NewParser(sip.WithHeadersParsers(lenientHeaders()))
	ruri := "sip:juliet@example.com"
	std := func() []string { return stdHeaders("UDP", 5060) }
	for _, c := range []struct {
		name   string
		data   string
		code   int
		reason string
	}{
		{"good", rawMessage("MESSAGE", ruri, std(), "hello"), 0, ""},
		{"compact forms", rawMessage("MESSAGE", ruri, []string{
			"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1", "f: <sip:a@b>;tag=1", "t: <sip:c@d>", "i: abc",
			"CSeq: 1 MESSAGE", "c: text/plain", "s: subject\twith tab"}, "x"), 0, ""},
		{"no Max-Forwards", rawMessage("MESSAGE", ruri, replace(std(), "Max-Forwards", ""), "x"), 0, ""},
		{"missing CSeq", rawMessage("MESSAGE", ruri, replace(std(), "CSeq", ""), "x"), 400, "Missing CSeq"},
		{"duplicate To", rawMessage("MESSAGE", ruri, append(std(), "To: <sip:x@y>"), "x"), 400, "Duplicate To"},
		{"duplicate CSeq", rawMessage("MESSAGE", ruri, append(std(), "CSeq: 2 MESSAGE"), "x"), 400, "Duplicate CSeq"},
		{"duplicate Max-Forwards", rawMessage("MESSAGE", ruri, append(std(), "Max-Forwards: 9"), "x"), 400, "Duplicate Max-Forwards"},
		{"duplicate Content-Type", rawMessage("MESSAGE", ruri, append(std(), "c: text/html"), "x"), 400, "Duplicate Content-Type"},
		{"bad CSeq number", rawMessage("MESSAGE", ruri, replace(std(), "CSeq", "CSeq: x MESSAGE"), "x"), 400, "Malformed CSeq"},
		{"empty Call-ID", rawMessage("MESSAGE", ruri, replace(std(), "Call-ID", "Call-ID: "), "x"), 400, "Malformed Call-ID"},
		{"Content-Length smaller", rawMessage("MESSAGE", ruri, append(std(), "Content-Length: 2"), "hello"), 0, ""},
		{"NUL in Subject", rawMessage("MESSAGE", ruri, append(std(), "Subject: a\x00b"), "x"), 400, "Control Character In Header"},
		{"LF in display name", rawMessage("MESSAGE", ruri, replace(std(), "From", "From: \"a\nb\" <sip:romeo@example.net>;tag=1"), "x"), 400, "Control Character In From"},
		{"Max-Forwards 0", rawMessage("MESSAGE", ruri, replace(std(), "Max-Forwards", "Max-Forwards: 0"), "x"), 483, "Too Many Hops"},
		{"im URI", rawMessage("MESSAGE", "im:juliet@example.com", std(), "x"), 416, "Unsupported URI Scheme"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := parseReq(t, p, c.data)
			code, reason := checkRequest(req)
			if code != c.code || reason != c.reason {
				t.Errorf("got %d %q, want %d %q", code, reason, c.code, c.reason)
			}
		})
	}
}

// FuzzCheckRequest: whatever the parser accepts, checkRequest does not
// panic, and a request it passes yields an IncomingMessage whose header
// values carry no CR, LF or NUL (so nothing can be smuggled into a stanza
// or a later header) and whose identity fields are present.
func FuzzCheckRequest(f *testing.F) {
	for _, s := range []string{
		rawMessage("MESSAGE", "sip:juliet@example.com;gr=x", stdHeaders("UDP", 5060), "hello"),
		rawMessage("MESSAGE", "sip:juliet@example.com", append(stdHeaders("TCP", 5060), "Subject: hi", "Content-Language: en"), "x"),
		rawMessage("OPTIONS", "sip:juliet@example.com", replace(stdHeaders("UDP", 5060), "CSeq", "CSeq: 1 OPTIONS"), ""),
		"MESSAGE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\nf: \"x\\\"y\" <sip:a@b>;tag=1\r\nt: sip:c@d\r\ni: 1\r\nCSeq: 1 MESSAGE\r\nl: 1\r\n\r\nx",
	} {
		f.Add([]byte(s))
	}
	p := sip.NewParser(sip.WithHeadersParsers(lenientHeaders()))
	u := &UA{cfg: &config{maxBody: 1 << 10}}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := p.ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		code, reason := checkRequest(req)
		if code2, reason2 := checkRequest(req); code2 != code || reason2 != reason {
			t.Fatalf("not deterministic: %d %q then %d %q", code, reason, code2, reason2)
		}
		if code != 0 {
			if code < 400 || code > 599 || reason == "" || hasCtl(reason) {
				t.Fatalf("bad refusal %d %q", code, reason)
			}
			return
		}
		if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil || req.Via() == nil {
			t.Fatal("passed without a required header")
		}
		if req.CSeq().MethodName != req.Method {
			t.Fatal("passed with a CSeq method mismatch")
		}
		m := u.incoming(req, netip.MustParseAddrPort("127.0.0.1:5060"))
		for name, v := range map[string]string{
			"RequestURI": m.RequestURI, "From": m.From, "To": m.To, "FromDisplay": m.FromDisplay,
			"CallID": m.CallID, "Subject": m.Subject, "ContentType": m.ContentType,
			"ContentLanguage": m.ContentLanguage, "TransactionID": m.TransactionID,
		} {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("%s carries a control character: %q", name, v)
			}
		}
		if m.CallID == "" {
			t.Fatal("empty Call-ID passed")
		}
	})
}
