package mapping

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets assert properties, not only "no panic" (STYLE.md): the address
// mapping is a bijection between canonical JIDs and normal-form URIs, escaping
// inverts, splitting preserves bytes, and a translated message is valid XMPP.

var fuzzConfig = AddressingConfig{
	Component:      "sip.example.com",
	SIPDomain:      "sip.example.com",
	ServedDomains:  []string{"example.com", "example.org"},
	ForeignDomains: true,
}

var sentinels = []error{
	ErrSIPS, ErrTel, ErrUnsupportedScheme, ErrUnservedDomain, ErrForeignDomain, ErrLoop, ErrNoUser,
	ErrMalformedJID, ErrMalformedURI, ErrNoBody, ErrNotTranslatable, ErrUnsupportedType,
	ErrUnsupportedCharset, ErrBadBody,
}

// checkSentinel fails unless err wraps one of the package's sentinels, so
// that callers can always classify it.
func checkSentinel(t *testing.T, what string, err error) {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("%s: error %v wraps no sentinel", what, err)
}

// normalURI is what a SIP URI should come back as after URI -> JID -> URI:
// sip:, user and gr in normal form, host lower-case, nothing else.
func normalURI(t *testing.T, uri string) string {
	t.Helper()
	p, err := ParseURI(uri)
	if err != nil {
		t.Fatalf("mapped %q but ParseURI refuses it: %v", uri, err)
	}
	s := "sip:" + EncodeSIPUser(p.User) + "@" + p.Host
	if gr, _ := p.Param("gr"); gr != "" {
		s += ";gr=" + EncodeSIPParam(gr)
	}
	return s
}

var uriSeeds = []string{
	"sip:bob@sip.example.com", "sip:carol@other.net;gr=x", "sip:a%40b@c.org", "sip:a%40b@sip.example.com",
	"sip:juliet@example.com;gr=yn0cl4bnw0yr3vym", "SIP:Romeo@Example.NET:5060;transport=tcp?x=y",
	"sip:d%27artagnan@example.net", "sip:john%20doe@example.net", "sip:c%5C27@other.net", "sip:f%C3%BC@sip.example",
	"sips:bob@sip.example.com", "tel:+1234", "im:romeo@example.net", "sip:bob%20@other.net", "sip:%20@x.y",
	"sip:bob@[::1]", "sip:x@y;gr=a%2Fb%40c", "sip:*21#@sip.example.com",
}

func FuzzSIPURIRoundTrip(f *testing.F) {
	for _, s := range uriSeeds {
		f.Add(s)
	}
	a, err := NewAddressing(fuzzConfig)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		sj, err1 := a.SIPUserJID(uri)
		xj, err2 := a.XMPPUserJID(uri)
		if err1 == nil && err2 == nil {
			t.Fatalf("%q maps to both a SIP user %q and an XMPP user %q", uri, sj, xj)
		}
		pairs := []struct {
			name  string
			jid   string
			err   error
			back  func(string) (string, error)
			again func(string) (string, error)
		}{
			{"SIPUser", sj, err1, a.SIPUserURI, a.SIPUserJID},
			{"XMPPUser", xj, err2, a.XMPPUserURI, a.XMPPUserJID},
		}
		mj, err3 := JIDFromSIPURI(uri)
		pairs = append(pairs, struct {
			name  string
			jid   string
			err   error
			back  func(string) (string, error)
			again func(string) (string, error)
		}{"RFC7247", mj, err3, SIPURIFromJID, JIDFromSIPURI})
		for _, p := range pairs {
			if p.err != nil {
				checkSentinel(t, p.name+"("+uri+")", p.err)
				continue
			}
			if _, err := ParseJID(p.jid); err != nil {
				t.Fatalf("%s(%q) = %q, not a JID: %v", p.name, uri, p.jid, err)
			}
			u2, err := p.back(p.jid)
			if err != nil {
				t.Fatalf("%s: %q -> %q, and back fails: %v", p.name, uri, p.jid, err)
			}
			if want := normalURI(t, uri); u2 != want {
				t.Fatalf("%s: %q -> %q -> %q, want %q", p.name, uri, p.jid, u2, want)
			}
			if j2, err := p.again(u2); err != nil || j2 != p.jid {
				t.Fatalf("%s: %q -> %q -> %q -> %q, %v", p.name, uri, p.jid, u2, j2, err)
			}
		}
		if j, err := a.JIDForURI(uri); err == nil && j != sj && j != xj {
			t.Fatalf("JIDForURI(%q) = %q, neither %q nor %q", uri, j, sj, xj)
		}
	})
}

func hasUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func FuzzJIDRoundTrip(f *testing.F) {
	for _, s := range []string{
		"bob@sip.example.com", `carol\40other.net@sip.example.com/x`, `a\40b\40c.org@sip.example.com`,
		`a\40b\40sip.example.com@sip.example.com`, "alice@example.com/phone", `m\26m@example.com`,
		`c\3a\5c5commas\40x.y@sip.example.com`, `c\5cnet@sip.example.com`, "tschüss@example.org/ré s",
		`bob\40sip.example.com@sip.example.com`, `Carol\40Other.NET@SIP.example.com`, "sip.example.com",
		`\20x@example.com`, `x\5c@example.com`, `x\\40y.z@sip.example.com`,
	} {
		f.Add(s)
	}
	a, err := NewAddressing(fuzzConfig)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, jid string) {
		pairs := []struct {
			name string
			to   func(string) (string, error)
			from func(string) (string, error)
		}{
			{"SIPUser", a.SIPUserURI, a.SIPUserJID},
			{"XMPPUser", a.XMPPUserURI, a.XMPPUserJID},
			{"RFC7247", SIPURIFromJID, JIDFromSIPURI},
		}
		for _, p := range pairs {
			u, err := p.to(jid)
			if err != nil {
				checkSentinel(t, p.name+"("+jid+")", err)
				continue
			}
			if pu, err := ParseURI(u); err != nil || pu.Scheme != SchemeSIP || pu.String() != u {
				t.Fatalf("%s(%q) = %q: not a normal-form sip: URI (%v)", p.name, jid, u, err)
			}
			j2, err := p.from(u)
			if err != nil {
				t.Fatalf("%s: %q -> %q, and back fails: %v", p.name, jid, u, err)
			}
			// Domains (and a foreign SIP host) compare case-insensitively;
			// nothing else may change.
			if !strings.EqualFold(j2, jid) || !hasUpperASCII(jid) && j2 != jid {
				t.Fatalf("%s: %q -> %q -> %q", p.name, jid, u, j2)
			}
			if u2, err := p.to(j2); err != nil || u2 != u {
				t.Fatalf("%s: %q -> %q -> %q -> %q, %v", p.name, jid, u, j2, u2, err)
			}
		}
	})
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{
		"", "romeo@example.net", `c:\5commas`, `c:\net`, `\27`, `\5c`, " x", "x ", "a b", `\\40`, `\5c\40`,
		`\5cn`, "tschüss", "\x00", "\xff", `c\3a\5c5commas`, `\2F`, `a\`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := EscapeLocal(s)
		if err == nil {
			for i := 0; i < len(e); i++ {
				if localForbidden(e[i]) { // ADDR-11e
					t.Fatalf("EscapeLocal(%q) = %q holds %q", s, e, e[i])
				}
			}
			if u, err := UnescapeLocal(e); err != nil || u != s {
				t.Fatalf("UnescapeLocal(EscapeLocal(%q)) = %q, %v", s, u, err)
			}
			if !IsCanonicalLocal(e) {
				t.Fatalf("EscapeLocal(%q) = %q is not canonical", s, e)
			}
		} else {
			checkSentinel(t, "EscapeLocal", err)
		}
		// The allocation-free canonical check agrees with its definition.
		u, err := UnescapeLocal(s)
		if err != nil {
			checkSentinel(t, "UnescapeLocal", err)
			if IsCanonicalLocal(s) {
				t.Fatalf("IsCanonicalLocal(%q) but it does not unescape", s)
			}
			return
		}
		e2, err := EscapeLocal(u)
		if got, want := IsCanonicalLocal(s), err == nil && e2 == s; got != want {
			t.Fatalf("IsCanonicalLocal(%q) = %v, EscapeLocal(UnescapeLocal) = %q, %v", s, got, e2, err)
		}
	})
}

func FuzzSplitUTF8(f *testing.F) {
	f.Add([]byte("aéé€👋b"), 4)
	f.Add([]byte(strings.Repeat("x", 2000)), 1300)
	f.Add([]byte("\xf0\x9f\x91"), 2)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		n %= 4096
		parts := SplitUTF8(body, n)
		limit := max(n, utf8.UTFMax)
		valid := utf8.Valid(body)
		for i, p := range parts {
			if len(p) == 0 || len(p) > limit {
				t.Fatalf("part %d has %d bytes (limit %d)", i, len(p), limit)
			}
			if valid && !utf8.Valid(p) {
				t.Fatalf("part %d of valid UTF-8 is not valid: %q", i, p)
			}
		}
		if !bytes.Equal(bytes.Join(parts, nil), body) {
			t.Fatal("parts do not join back to the body")
		}
		if len(body) == 0 && parts != nil {
			t.Fatal("empty body gave parts")
		}
	})
}

// xhtmlElements and xhtmlAttrs are what the XEP-0071 rewrite may produce.
var (
	xhtmlElements = map[string]bool{"body": true, "a": true, "blockquote": true, "br": true, "cite": true, "code": true,
		"em": true, "img": true, "li": true, "ol": true, "p": true, "span": true, "strong": true, "ul": true}
	xhtmlAttrs = map[string]bool{"href": true, "src": true, "alt": true, "width": true, "height": true, "xmlns": true}
)

// checkXHTML asserts that s is one well-formed xhtml <body/> using only the
// recommended profile, with harmless links.
func checkXHTML(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("XHTML %q not well-formed: %v", s, err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 && (e.Name.Local != "body" || e.Name.Space != NSXHTML) {
				t.Fatalf("XHTML root is %v", e.Name)
			}
			depth++
			if e.Name.Space != NSXHTML || !xhtmlElements[e.Name.Local] {
				t.Fatalf("XHTML %q has element %v", s, e.Name)
			}
			for _, at := range e.Attr {
				if !xhtmlAttrs[at.Name.Local] {
					t.Fatalf("XHTML %q has attribute %v", s, at.Name)
				}
				if (at.Name.Local == "href" || at.Name.Local == "src") && !safeURL(at.Value, at.Name.Local == "src") {
					t.Fatalf("XHTML %q has unsafe %s", s, at.Value)
				}
			}
		case xml.EndElement:
			depth--
		}
	}
}

func FuzzMessageFromSIP(f *testing.F) {
	const cpim = "From: <sip:a@b.c>\r\nTo: <sip:d@e.f>\r\n\r\nContent-Type: text/plain\r\n\r\nhello"
	f.Add("text/plain", []byte("Neither, fair saint, if either thee dislike."), "sip:romeo@example.net", "sip:juliet@example.com", "en")
	f.Add("text/plain; charset=us-ascii", []byte("hi"), "sip:bob@sip.example.com;gr=x", "sip:juliet@example.com;gr=y", "")
	f.Add("message/cpim", []byte(cpim), "sip:romeo@example.net", "sip:juliet@example.com", "cs")
	f.Add("text/html", []byte("<p>Hello <b>world</b> <a href='https://x.y/'>l</a><img src='https://x.y/i.png' alt='i'/></p>"), "sip:romeo@example.net", "sip:juliet@example.com", "")
	f.Add("text/html", []byte("<html><head><script>x</script></head><body>a&nbsp;b<br/>c</body></html>"), "sip:romeo@example.net", "sip:juliet@example.com", "")
	f.Add("application/vnd.foo", []byte("x"), "sip:romeo@example.net", "sip:juliet@example.com", "")
	a, err := NewAddressing(fuzzConfig)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte, from, ruri, lang string) {
		m, err := a.MessageFromSIP(SIPMessage{RequestURI: ruri, From: from, ContentType: ct, ContentLanguage: lang, CallID: "c1", Body: body})
		if err != nil {
			checkSentinel(t, "MessageFromSIP", err)
			return
		}
		if m.Type != "" || len(m.Bodies) != 1 || m.Bodies[0].Text == "" || !validXMLText(m.Bodies[0].Text) {
			t.Fatalf("bad message %+v", m)
		}
		if j, err := ParseJID(m.From); err != nil || j.Domain != a.Component() {
			t.Fatalf("from %q: %v", m.From, err)
		}
		if j, err := ParseJID(m.To); err != nil || !a.IsServed(j.Domain) {
			t.Fatalf("to %q: %v", m.To, err)
		}
		if m.Lang != "" && !validLangTag(m.Lang) {
			t.Fatalf("lang %q", m.Lang)
		}
		if m.XHTML != "" {
			checkXHTML(t, m.XHTML)
		}
		mt, _, _ := strings.Cut(ct, ";")
		if mt = strings.TrimSpace(mt); mt == "" || strings.EqualFold(mt, "text/plain") {
			if m.Bodies[0].Text != string(body) {
				t.Fatalf("text/plain body changed: %q -> %q", body, m.Bodies[0].Text)
			}
		}
		// Reply path: the message maps back to a SIP MESSAGE with the same text.
		s, err := a.MessageToSIP(XMPPMessage{From: m.To, To: m.From, Lang: m.Lang, Thread: m.Thread, Bodies: m.Bodies})
		if err != nil {
			t.Fatalf("MessageToSIP of %+v: %v", m, err)
		}
		if string(s.Body) != m.Bodies[0].Text || s.RequestURI != normalURI(t, from) {
			t.Fatalf("reverse %+v of %+v", s, m)
		}
	})
}
