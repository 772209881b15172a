package mapping

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	tvJuliet = "juliet@example.com/yn0cl4bnw0yr3vym"
	tvRomeo  = `romeo\40example.net@sip.example.com` // Model B form of sip:romeo@example.net
)

func TestMessageToSIP(t *testing.T) {
	a := newAddressing(t, testConfig)
	base := XMPPMessage{ID: "m1", From: tvJuliet, To: tvRomeo, Bodies: []Body{{Text: "hi"}}}
	with := func(f func(*XMPPMessage)) XMPPMessage {
		m := base
		m.Bodies = append([]Body(nil), base.Bodies...)
		f(&m)
		return m
	}
	baseWant := SIPMessage{
		RequestURI:  "sip:romeo@example.net",
		From:        "sip:juliet@example.com;gr=yn0cl4bnw0yr3vym",
		To:          "sip:romeo@example.net",
		ContentType: "text/plain;charset=UTF-8",
		Body:        []byte("hi"),
	}
	want := func(f func(*SIPMessage)) SIPMessage {
		s := baseWant
		f(&s)
		return s
	}
	tests := []struct {
		name string
		in   XMPPMessage
		want SIPMessage
		err  error
	}{
		{"plain", base, baseWant, nil},
		{"type chat dropped (IM-01)", with(func(m *XMPPMessage) { m.Type = "chat" }), baseWant, nil},
		{"type normal", with(func(m *XMPPMessage) { m.Type = "normal" }), baseWant, nil},
		{"type headline", with(func(m *XMPPMessage) { m.Type = "headline" }), baseWant, nil},
		{"thread -> Call-ID (IM-03)", with(func(m *XMPPMessage) { m.Thread = "abc-123@x" }), want(func(s *SIPMessage) { s.CallID = "abc-123@x" }), nil},
		{"thread not a Call-ID (IM-05)", with(func(m *XMPPMessage) { m.Thread = "a b" }), baseWant, nil},
		{"thread with CRLF", with(func(m *XMPPMessage) { m.Thread = "a\r\nVia: x" }), baseWant, nil},
		{"subject", with(func(m *XMPPMessage) { m.Subject = " Hi " }), want(func(s *SIPMessage) { s.Subject = "Hi" }), nil},
		{"subject with CRLF (no header injection)", with(func(m *XMPPMessage) { m.Subject = "Hi\r\nX-Evil: 1" }), want(func(s *SIPMessage) { s.Subject = "Hi  X-Evil: 1" }), nil},
		{"stanza lang (IM-09)", with(func(m *XMPPMessage) { m.Lang = "en" }), want(func(s *SIPMessage) { s.ContentLanguage = "en" }), nil},
		{"bad lang tag omitted", with(func(m *XMPPMessage) { m.Lang = "en\r\nX: y" }), baseWant, nil},
		{"body matching stanza lang (IM-10)", with(func(m *XMPPMessage) {
			m.Lang = "cs"
			m.Bodies = []Body{{Lang: "en", Text: "hello"}, {Lang: "CS", Text: "ahoj"}}
		}), want(func(s *SIPMessage) { s.Body = []byte("ahoj"); s.ContentLanguage = "CS" }), nil},
		{"body without lang inherits stanza lang", with(func(m *XMPPMessage) {
			m.Lang = "cs"
			m.Bodies = []Body{{Lang: "en", Text: "hello"}, {Text: "ahoj"}}
		}), want(func(s *SIPMessage) { s.Body = []byte("ahoj"); s.ContentLanguage = "cs" }), nil},
		{"no match: first body", with(func(m *XMPPMessage) {
			m.Lang = "cs"
			m.Bodies = []Body{{Lang: "en", Text: "hello"}, {Lang: "de", Text: "hallo"}}
		}), want(func(s *SIPMessage) { s.Body = []byte("hello"); s.ContentLanguage = "en" }), nil},
		{"empty bodies skipped", with(func(m *XMPPMessage) {
			m.Bodies = []Body{{Text: ""}, {Lang: "de", Text: "hallo"}}
		}), want(func(s *SIPMessage) { s.Body = []byte("hallo"); s.ContentLanguage = "de" }), nil},
		{"bare from: no gr", with(func(m *XMPPMessage) { m.From = "juliet@example.com" }), want(func(s *SIPMessage) { s.From = "sip:juliet@example.com" }), nil},
		{"to with resource", with(func(m *XMPPMessage) { m.To = "bob@sip.example.com/desk" }), want(func(s *SIPMessage) {
			s.RequestURI, s.To = "sip:bob@sip.example.com;gr=desk", "sip:bob@sip.example.com;gr=desk"
		}), nil},

		{"groupchat (IM-02)", with(func(m *XMPPMessage) { m.Type = "groupchat" }), SIPMessage{}, ErrNotTranslatable},
		{"error (ERR-03)", with(func(m *XMPPMessage) { m.Type = "error" }), SIPMessage{}, ErrNotTranslatable},
		{"unknown type", with(func(m *XMPPMessage) { m.Type = "bogus" }), SIPMessage{}, ErrNotTranslatable},
		{"no body (IM-10)", with(func(m *XMPPMessage) { m.Bodies = nil }), SIPMessage{}, ErrNoBody},
		{"only empty bodies", with(func(m *XMPPMessage) { m.Bodies = []Body{{Text: ""}} }), SIPMessage{}, ErrNoBody},
		{"invalid UTF-8", with(func(m *XMPPMessage) { m.Bodies = []Body{{Text: "a\xff"}} }), SIPMessage{}, ErrBadBody},
		{"from unserved domain", with(func(m *XMPPMessage) { m.From = "eve@evil.example/x" }), SIPMessage{}, ErrUnservedDomain},
		{"to not the component", with(func(m *XMPPMessage) { m.To = "romeo@example.net" }), SIPMessage{}, ErrUnservedDomain},
		{"to bare component", with(func(m *XMPPMessage) { m.To = "sip.example.com" }), SIPMessage{}, ErrNoUser},
		{"to malformed", with(func(m *XMPPMessage) { m.To = "a b@sip.example.com" }), SIPMessage{}, ErrMalformedJID},
		{"to served domain through the component (loop)", with(func(m *XMPPMessage) { m.To = `alice\40example.com@sip.example.com` }), SIPMessage{}, ErrLoop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.MessageToSIP(tt.in)
			if checkErr(t, "MessageToSIP", err, tt.err) && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MessageToSIP(%+v)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestMessageFromSIP(t *testing.T) {
	a := newAddressing(t, testConfig)
	base := SIPMessage{
		RequestURI:  "sip:juliet@example.com",
		From:        "sip:romeo@example.net",
		To:          "sip:juliet@example.com",
		CallID:      "c1",
		ContentType: "text/plain",
		Body:        []byte("hi"),
	}
	with := func(f func(*SIPMessage)) SIPMessage {
		s := base
		f(&s)
		return s
	}
	baseWant := XMPPMessage{From: tvRomeo, To: "juliet@example.com", Thread: "c1", Bodies: []Body{{Text: "hi"}}}
	want := func(f func(*XMPPMessage)) XMPPMessage {
		m := baseWant
		m.Bodies = append([]Body(nil), baseWant.Bodies...)
		f(&m)
		return m
	}
	body := func(s string) func(*XMPPMessage) {
		return func(m *XMPPMessage) { m.Bodies = []Body{{Text: s}} }
	}
	cpim := func(ct, inner string) func(*SIPMessage) {
		return func(s *SIPMessage) { s.ContentType = ct; s.Body = []byte(inner) }
	}
	const cpimHead = "From: <sip:mallory@evil.example>\r\nTo: <sip:juliet@example.com>\r\nDateTime: 2008-10-15T15:02:31-03:00\r\n\r\n"
	tests := []struct {
		name string
		in   SIPMessage
		want XMPPMessage
		err  error
	}{
		{"plain (IM-07)", base, baseWant, nil},
		{"charset utf-8", with(func(s *SIPMessage) { s.ContentType = `Text/Plain; charset="UTF-8"` }), baseWant, nil},
		{"charset us-ascii", with(func(s *SIPMessage) { s.ContentType = "text/plain;charset=us-ascii" }), baseWant, nil},
		{"no content type", with(func(s *SIPMessage) { s.ContentType = "" }), baseWant, nil},
		{"UTF-8 text", with(func(s *SIPMessage) { s.Body = []byte("tschüss 👋") }), want(body("tschüss 👋")), nil},
		{"CRLF and tabs kept", with(func(s *SIPMessage) { s.Body = []byte("a\r\n\tb") }), want(body("a\r\n\tb")), nil},
		{"Content-Language (IM-09)", with(func(s *SIPMessage) { s.ContentLanguage = "en-US, fr" }), want(func(m *XMPPMessage) { m.Lang = "en-US" }), nil},
		{"bad Content-Language ignored", with(func(s *SIPMessage) { s.ContentLanguage = "12" }), baseWant, nil},
		{"subject", with(func(s *SIPMessage) { s.Subject = "Hi" }), want(func(m *XMPPMessage) { m.Subject = "Hi" }), nil},
		{"no Call-ID", with(func(s *SIPMessage) { s.CallID = "" }), want(func(m *XMPPMessage) { m.Thread = "" }), nil},
		{"From gr -> resource (ADDR-10)", with(func(s *SIPMessage) { s.From = "sip:romeo@example.net;gr=orchard" }), want(func(m *XMPPMessage) { m.From = tvRomeo + "/orchard" }), nil},
		{"Request-URI gr selects resource", with(func(s *SIPMessage) { s.RequestURI = "sip:juliet@example.com;gr=balcony" }), want(func(m *XMPPMessage) { m.To = "juliet@example.com/balcony" }), nil},
		{"Request-URI, not To", with(func(s *SIPMessage) { s.To = "sip:nurse@example.com" }), baseWant, nil},

		{"cpim (RFC 3862)", with(cpim("message/cpim", cpimHead+"Content-Type: text/plain\r\n\r\nI am here!!!")), want(body("I am here!!!")), nil},
		{"cpim LF only", with(cpim("Message/CPIM", "From: <sip:a@b.c>\nTo: <sip:d@e.f>\n\nContent-Type: text/plain; charset=utf-8\n\nhello")), want(body("hello")), nil},
		{"cpim inner lang", with(cpim("message/cpim", cpimHead+"Content-Type: text/plain\r\nContent-Language: it\r\n\r\nciao")), want(func(m *XMPPMessage) { m.Bodies = []Body{{Text: "ciao"}}; m.Lang = "it" }), nil},
		{"cpim inner type default", with(cpim("message/cpim", cpimHead+"Content-ID: <x>\r\n\r\nhey")), want(body("hey")), nil},
		{"cpim 8bit", with(cpim("message/cpim", cpimHead+"Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nhey")), want(body("hey")), nil},
		{"cpim html", with(cpim("message/cpim", cpimHead+"Content-Type: text/html\r\n\r\n<b>hey</b>")), want(func(m *XMPPMessage) {
			m.Bodies = []Body{{Text: "hey"}}
			m.XHTML = "<body xmlns='http://www.w3.org/1999/xhtml'><strong>hey</strong></body>"
		}), nil},
		{"cpim Require", with(cpim("message/cpim", "From: <sip:a@b.c>\r\nRequire: Foo\r\n\r\nContent-Type: text/plain\r\n\r\nx")), XMPPMessage{}, ErrUnsupportedType},
		{"cpim base64", with(cpim("message/cpim", cpimHead+"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=")), XMPPMessage{}, ErrUnsupportedType},
		{"cpim inner image", with(cpim("message/cpim", cpimHead+"Content-Type: image/png\r\n\r\nxx")), XMPPMessage{}, ErrUnsupportedType},
		{"cpim inner cpim", with(cpim("message/cpim", cpimHead+"Content-Type: message/cpim\r\n\r\n"+cpimHead+"Content-Type: text/plain\r\n\r\nx")), XMPPMessage{}, ErrUnsupportedType},
		{"cpim inner charset", with(cpim("message/cpim", cpimHead+"Content-Type: text/plain;charset=iso-8859-1\r\n\r\nx")), XMPPMessage{}, ErrUnsupportedCharset},
		{"cpim no MIME block", with(cpim("message/cpim", cpimHead+"Content-Type: text/plain")), XMPPMessage{}, ErrBadBody},
		{"cpim no headers", with(cpim("message/cpim", "\r\nContent-Type: text/plain\r\n\r\nx")), XMPPMessage{}, ErrBadBody},
		{"cpim bad header", with(cpim("message/cpim", "no colon\r\n\r\nContent-Type: text/plain\r\n\r\nx")), XMPPMessage{}, ErrBadBody},
		{"cpim empty inner body", with(cpim("message/cpim", cpimHead+"Content-Type: text/plain\r\n\r\n")), XMPPMessage{}, ErrNoBody},

		{"html fragment (IM-08b)", with(cpim("text/html", "Hello <b>world</b>")), want(func(m *XMPPMessage) {
			m.Bodies = []Body{{Text: "Hello world"}}
			m.XHTML = "<body xmlns='http://www.w3.org/1999/xhtml'>Hello <strong>world</strong></body>"
		}), nil},

		{"latin-1 (IM-08)", with(func(s *SIPMessage) { s.ContentType = "text/plain; charset=ISO-8859-1" }), XMPPMessage{}, ErrUnsupportedCharset},
		{"us-ascii with 8-bit byte", with(func(s *SIPMessage) { s.ContentType = "text/plain;charset=us-ascii"; s.Body = []byte("caf\xe9") }), XMPPMessage{}, ErrBadBody},
		{"invalid UTF-8", with(func(s *SIPMessage) { s.Body = []byte("a\xffb") }), XMPPMessage{}, ErrBadBody},
		{"control character", with(func(s *SIPMessage) { s.Body = []byte("a\x00b") }), XMPPMessage{}, ErrBadBody},
		{"U+FFFE", with(func(s *SIPMessage) { s.Body = []byte("a\uFFFEb") }), XMPPMessage{}, ErrBadBody},
		{"bad subject", with(func(s *SIPMessage) { s.Subject = "a\x01" }), XMPPMessage{}, ErrBadBody},
		{"empty body", with(func(s *SIPMessage) { s.Body = nil }), XMPPMessage{}, ErrNoBody},
		{"unsupported type (TV-05)", with(func(s *SIPMessage) { s.ContentType = "application/vnd.foo" }), XMPPMessage{}, ErrUnsupportedType},
		{"isComposing is not a page-mode body here", with(func(s *SIPMessage) { s.ContentType = "application/im-iscomposing+xml" }), XMPPMessage{}, ErrUnsupportedType},
		{"sips Request-URI (ADDR-05)", with(func(s *SIPMessage) { s.RequestURI = "sips:juliet@example.com" }), XMPPMessage{}, ErrSIPS},
		{"tel Request-URI (ADDR-04)", with(func(s *SIPMessage) { s.RequestURI = "tel:+1234" }), XMPPMessage{}, ErrTel},
		{"unserved Request-URI", with(func(s *SIPMessage) { s.RequestURI = "sip:juliet@example.net" }), XMPPMessage{}, ErrUnservedDomain},
		{"malformed From before unserved Request-URI", with(func(s *SIPMessage) {
			s.From = "sip:ro%zz@example.net"
			s.RequestURI = "sip:juliet@example.net"
		}), XMPPMessage{}, ErrMalformedURI},
		{"unserved before unsupported type", with(func(s *SIPMessage) {
			s.RequestURI = "sip:juliet@example.net"
			s.ContentType = "application/vnd.foo"
		}), XMPPMessage{}, ErrUnservedDomain},
		{"From in a served domain (spoof/loop)", with(func(s *SIPMessage) { s.From = "sip:alice@example.com" }), XMPPMessage{}, ErrLoop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.MessageFromSIP(tt.in)
			if checkErr(t, "MessageFromSIP", err, tt.err) && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MessageFromSIP\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestMessageFromSIPHTML covers the text/html -> XHTML-IM rewrite (IM-08b).
func TestMessageFromSIPHTML(t *testing.T) {
	a := newAddressing(t, testConfig)
	const open = "<body xmlns='http://www.w3.org/1999/xhtml'>"
	tests := []struct {
		name, html, xhtml, text string
		err                     error
	}{
		{"fragment", "<p>Hello <b>world</b></p>", open + "<p>Hello <strong>world</strong></p></body>", "Hello world", nil},
		{"document", `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title><script>alert(1)</script></head>
<body><p>One</p><p>Two<br/>Three</p></body></html>`, open + "<p>One</p><p>Two<br/>Three</p></body>", "One\nTwo\nThree", nil},
		{"entities", "a&nbsp;&amp;&lt;b&#33;", open + "a\u00a0&amp;&lt;b!</body>", "a\u00a0&<b!", nil},
		{"whitespace collapses", "<p>  a \n\t b  </p>\n<p>c</p>", open + "<p>  a \n\t b  </p>\n<p>c</p></body>", "a b\nc", nil},
		{"renames", "<i>i</i><tt>t</tt><h1>h</h1><pre>p</pre>", open + "<em>i</em><code>t</code><p>h</p><p>p</p></body>", "it\nh\np", nil},
		{"lists", "<ul><li>a</li><li>b</li></ul>", open + "<ul><li>a</li><li>b</li></ul></body>", "a\nb", nil},
		{"unknown elements unwrapped", "<div><font color='red'>x</font></div><table><tr><td>y</td></tr></table>", open + "xy</body>", "x\ny", nil},
		{"safe link", "<a href='https://example.com/?a=1&amp;b=2' onclick='evil()'>l</a>", open + "<a href='https://example.com/?a=1&amp;b=2'>l</a></body>", "l", nil},
		{"javascript link dropped", "<a href='javascript:alert(1)'>l</a>", open + "l</body>", "l", nil},
		{"style and events dropped", "<p style='color:red' onmouseover='x()'>s</p>", open + "<p>s</p></body>", "s", nil},
		{"script dropped with content", "a<script>alert('x')</script><style>p{}</style>b", open + "ab</body>", "ab", nil},
		{"img kept", "<img src='https://example.com/x.png' alt='pic' width='10' height='x' onerror='e()'/>", open + "<img src='https://example.com/x.png' alt='pic' width='10'/></body>", "pic", nil},
		{"img data: src dropped, alt kept", "<img src='data:image/png;base64,AA' alt='pic'/>", open + "pic</body>", "pic", nil},
		{"namespaced elements", "<x:b xmlns:x='urn:x'>t</x:b>", open + "<strong>t</strong></body>", "t", nil},
		{"upper-case tags", "<B>t</B>", open + "<strong>t</strong></body>", "t", nil},
		{"comments and PIs ignored", "a<!-- c --><?pi x?>b", open + "ab</body>", "ab", nil},
		{"CDATA", "<![CDATA[<x>]]>", open + "&lt;x&gt;</body>", "<x>", nil},

		{"not XML: void tag", "a<br>b", "", "", ErrUnsupportedType},
		{"not XML: bad entity", "&bogus;", "", "", ErrUnsupportedType},
		{"not XML: raw ampersand", "fish & chips", "", "", ErrUnsupportedType},
		{"not XML: unclosed", "<p>a", "", "", ErrUnsupportedType},
		{"not XML: stray end", "a</p>", "", "", ErrUnsupportedType},
		{"wrapper break-out", "a</stox-html-fragment><stox-html-fragment>b", "", "", ErrUnsupportedType},
		{"encoding declaration", `<?xml version="1.0" encoding="ISO-8859-1"?><p>a</p>`, "", "", ErrUnsupportedType},
		{"no text", "<img src='https://example.com/x.png'/>", "", "", ErrNoBody},
		{"only script", "<script>x</script>", "", "", ErrNoBody},
		{"charset", "", "", "", ErrUnsupportedCharset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := SIPMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: "text/html", Body: []byte(tt.html)}
			if tt.err == ErrUnsupportedCharset {
				s.ContentType = "text/html; charset=windows-1252"
				s.Body = []byte("<p>x</p>")
			}
			m, err := a.MessageFromSIP(s)
			if !checkErr(t, "MessageFromSIP", err, tt.err) {
				return
			}
			if m.XHTML != tt.xhtml {
				t.Errorf("XHTML\n got %q\nwant %q", m.XHTML, tt.xhtml)
			}
			if len(m.Bodies) != 1 || m.Bodies[0].Text != tt.text {
				t.Errorf("Bodies = %q, want %q", m.Bodies, tt.text)
			}
		})
	}
}

func TestAcceptedTypes(t *testing.T) {
	// TV-05: the 415 Accept header lists what MessageFromSIP takes.
	if got := strings.Join(AcceptedTypes, ", "); got != AcceptHeader {
		t.Errorf("AcceptHeader %q != AcceptedTypes %q", AcceptHeader, got)
	}
	a := newAddressing(t, testConfig)
	bodies := map[string]string{
		"text/plain":   "x",
		"message/cpim": "From: <sip:a@b.c>\r\n\r\nContent-Type: text/plain\r\n\r\nx",
		"text/html":    "<p>x</p>",
	}
	for _, ct := range AcceptedTypes {
		s := SIPMessage{RequestURI: "sip:juliet@example.com", From: "sip:romeo@example.net", ContentType: ct, Body: []byte(bodies[ct])}
		if _, err := a.MessageFromSIP(s); err != nil {
			t.Errorf("accepted type %s refused: %v", ct, err)
		}
	}
}

func TestMessageRoundTrip(t *testing.T) {
	// S->X then X->S gives back the body, the Call-ID, the language and the
	// addresses (IM-03 and IM-07 are inverse tables).
	a := newAddressing(t, testConfig)
	in := SIPMessage{
		RequestURI: "sip:juliet@example.com;gr=balcony", From: "sip:romeo@example.net;gr=orchard",
		CallID: "9E97FB43-85F4-4A00-8751-1124FD4C7B2E", Subject: "Hi", ContentLanguage: "en",
		ContentType: "text/plain", Body: []byte("Neither, fair saint, if either thee dislike."),
	}
	m, err := a.MessageFromSIP(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.MessageToSIP(XMPPMessage{From: m.To, To: m.From, Lang: m.Lang, Subject: m.Subject, Thread: m.Thread, Bodies: m.Bodies})
	if err != nil {
		t.Fatal(err)
	}
	if out.From != in.RequestURI || out.RequestURI != in.From || out.CallID != in.CallID ||
		out.Subject != in.Subject || out.ContentLanguage != in.ContentLanguage || !bytes.Equal(out.Body, in.Body) {
		t.Errorf("round trip\n in %+v\nout %+v", in, out)
	}
}

func TestCheckContentType(t *testing.T) {
	cases := []struct {
		ct   string
		want error
	}{
		{"", nil},
		{"text/plain", nil},
		{"Text/Plain; charset=UTF-8", nil},
		{"text/plain;charset=us-ascii", nil},
		{"text/plain;charset=iso-8859-1", ErrUnsupportedCharset},
		{"text/html", nil},
		{"message/cpim", nil},
		{"application/vnd.foo", ErrUnsupportedType},
		{"image/png", ErrUnsupportedType},
	}
	for _, c := range cases {
		if err := CheckContentType(c.ct); !errors.Is(err, c.want) && !(err == nil && c.want == nil) {
			t.Errorf("CheckContentType(%q) = %v, want %v", c.ct, err, c.want)
		}
	}
}
