package mapping

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// readCPIM reads testdata/cpim/name with CRLF line ends in the header
// blocks whatever git did to the file (the body keeps its own bytes).
func readCPIM(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cpim", name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("\r\n")) {
		b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	}
	return b
}

const mfNS = "mid:MessageFeatures@id.foo.com"

// TestCPIMGoldenRFC3862 reads the example of RFC 3862 5.1 (written out
// from the RFC; CHECKLIST section 9 lists no defect for it) and checks
// every accessor, then that Marshal gives back the same bytes (CHAT-30f:
// headers neither reordered nor edited).
func TestCPIMGoldenRFC3862(t *testing.T) {
	in := readCPIM(t, "rfc3862-5.1.txt")
	m, err := ParseCPIM(in)
	if err != nil {
		t.Fatal(err)
	}
	if from, ok := m.From(); !ok || from != (CPIMAddress{Name: "MR SANDERS", URI: "im:piglet@100akerwood.com"}) {
		t.Errorf("From = %+v %v", from, ok)
	}
	if to := m.To(); !reflect.DeepEqual(to, []CPIMAddress{{Name: "Depressed Donkey", URI: "im:eeyore@100akerwood.com"}}) {
		t.Errorf("To = %+v", to)
	}
	if dt, ok := m.DateTime(); !ok || dt != "2000-12-13T13:40:00-08:00" {
		t.Errorf("DateTime = %q %v", dt, ok)
	}
	wantSubj := []CPIMSubject{{Text: "the weather will be fine today"}, {Lang: "fr", Text: "beau temps prevu pour aujourd'hui"}}
	if s := m.Subjects(); !reflect.DeepEqual(s, wantSubj) {
		t.Errorf("Subjects = %+v", s)
	}
	if ns := m.Namespaces(); !reflect.DeepEqual(ns, []CPIMNamespace{{Prefix: "MyFeatures", URI: mfNS}}) {
		t.Errorf("Namespaces = %+v", ns)
	}
	if r := m.Require(); !reflect.DeepEqual(r, []CPIMName{{NS: mfNS, Name: "VitalMessageOption"}}) {
		t.Errorf("Require = %+v", r)
	}
	if u := m.Unsupported(nil); len(u) != 1 {
		t.Errorf("Unsupported(nil) = %+v", u)
	}
	vital := func(n CPIMName) bool { return n.NS == mfNS && n.Name == "VitalMessageOption" }
	if u := m.Unsupported(vital); len(u) != 0 {
		t.Errorf("Unsupported(vital) = %+v", u)
	}
	if h := m.Lookup(mfNS, "WackyMessageOption"); len(h) != 1 || h[0].Text() != "Use-silly-font" || h[0].Prefix != "MyFeatures" {
		t.Errorf("Lookup = %+v", h)
	}
	if h := m.Lookup("", "WackyMessageOption"); len(h) != 0 {
		t.Errorf("Lookup by empty namespace matched %+v", h)
	}
	if m.Headers[7].NS != mfNS || m.Headers[0].NS != CPIMHeadersNS {
		t.Errorf("NS not resolved: %+v", m.Headers)
	}
	if ct := m.ContentType(); ct != "text/xml; charset=utf-8" {
		t.Errorf("ContentType = %q", ct)
	}
	if id := m.ContentID(); id != "<1234567890@foo.com>" {
		t.Errorf("ContentID = %q", id)
	}
	if string(m.Body) != "<body>\r\nHere is the text of my message.\r\n</body>\r\n" {
		t.Errorf("Body = %q", m.Body)
	}
	if err := m.CheckAddressed(); err != nil {
		t.Error(err)
	}
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Errorf("Marshal changed the message:\n got %q\nwant %q", out, in)
	}
}

// TestCPIMGoldenIMDN: the IMDN request of CHAT-44 (a, b, c), namespaced
// headers found by URN.
func TestCPIMGoldenIMDN(t *testing.T) {
	in := readCPIM(t, "imdn-request.txt")
	m, err := ParseCPIM(in)
	if err != nil {
		t.Fatal(err)
	}
	id := m.Lookup(IMDNNamespace, "Message-ID")
	dn := m.Lookup(IMDNNamespace, "Disposition-Notification")
	if len(id) != 1 || id[0].Text() != "34jk324j" || len(dn) != 1 || dn[0].Text() != "positive-delivery" {
		t.Errorf("imdn headers: %+v %+v", id, dn)
	}
	if m.MIMEValue("content-length") != "12" || string(m.Body) != "Hello World\n" {
		t.Errorf("MIME %+v body %q", m.MIME, m.Body)
	}
	out, err := m.Marshal()
	if err != nil || !bytes.Equal(out, in) {
		t.Errorf("Marshal: %v\n got %q\nwant %q", err, out, in)
	}
}

// TestCPIMGoldenEscapesAndNamespaces: escapes (RFC 3862 2.3), a quoted
// display name, a default namespace declaration, another prefix for the
// namespace of the RFC example, a folded MIME header.
func TestCPIMGoldenEscapesAndNamespaces(t *testing.T) {
	in := readCPIM(t, "escapes-ns.txt")
	m, err := ParseCPIM(in)
	if err != nil {
		t.Fatal(err)
	}
	if from, _ := m.From(); from != (CPIMAddress{Name: `Winnie "the" Pooh`, URI: "im:pooh@100akerwood.com"}) {
		t.Errorf("From = %+v", from)
	}
	if to := m.To(); len(to) != 1 || to[0] != (CPIMAddress{URI: "im:piglet@100akerwood.com"}) {
		t.Errorf("To = %+v", to)
	}
	if cc := m.Cc(); len(cc) != 1 || cc[0] != (CPIMAddress{Name: "Owl", URI: "sip:owl@100akerwood.com"}) {
		t.Errorf("Cc = %+v", cc)
	}
	want := []CPIMSubject{{Lang: "en", Text: "Line one\nLine two \\ été 😀"}}
	if s := m.Subjects(); !reflect.DeepEqual(s, want) {
		t.Errorf("Subjects = %+q", s)
	}
	if h := m.Lookup("urn:example:default", "Color"); len(h) != 1 || h[0].Value != "blue" {
		t.Errorf("default namespace: %+v", h)
	}
	if h := m.Lookup(CPIMHeadersNS, "Color"); len(h) != 0 {
		t.Errorf("Color found in the core namespace: %+v", h)
	}
	// Same namespace as the RFC example's MyFeatures, another prefix.
	if h := m.Lookup(mfNS, "VitalMessageOption"); len(h) != 1 || h[0].Prefix != "mf" {
		t.Errorf("prefix-independent lookup: %+v", h)
	}
	if ct := m.ContentType(); ct != "text/plain; charset=utf-8" {
		t.Errorf("unfolded ContentType = %q", ct)
	}
	if d := m.ContentDisposition(); d != "render" {
		t.Errorf("ContentDisposition = %q", d)
	}
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseCPIM(out)
	if err != nil || !reflect.DeepEqual(m, m2) {
		t.Errorf("round trip: %v\n%+v\n%+v", err, m, m2)
	}
}

func TestParseCPIM(t *testing.T) {
	const mime = "\r\n\r\nContent-Type: text/plain\r\n\r\nx"
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"minimal", "From: <sip:a@b.c>" + mime, nil},
		{"LF only", "From: <sip:a@b.c>\nTo: <sip:d@e.f>\n\nContent-Type: text/plain\n\nx", nil},
		{"no space after colon", "From:<sip:a@b.c>" + mime, nil},
		{"bare URI From", "From: sip:a@b.c" + mime, nil},
		{"unquoted name with comma", "From: Smith, John <sip:a@b.c>" + mime, nil},
		{"extension header", "NS: x <urn:x>\r\nx.Y-Z: anything \\q goes" + mime, nil},
		{"undeclared prefix", "Foo.Bar: baz" + mime, nil},
		{"empty MIME block", "From: <sip:a@b.c>\r\n\r\n\r\nx", nil},
		{"empty body", "From: <sip:a@b.c>\r\n\r\nContent-Type: text/plain\r\n\r\n", nil},
		{"quoted param", "X:;a=\"b c\\\"\";n=12 v" + mime, nil},

		{"no headers", "\r\nContent-Type: text/plain\r\n\r\nx", ErrBadCPIM},
		{"no blank line", "From: <sip:a@b.c>\r\nContent-Type: text/plain", ErrBadCPIM},
		{"no MIME blank line", "From: <sip:a@b.c>\r\n\r\nContent-Type: text/plain", ErrBadCPIM},
		{"no colon", "From <sip:a@b.c>" + mime, ErrBadCPIM},
		{"space in name", "Fr om: x" + mime, ErrBadCPIM},
		{"two dots", "a.b.c: x" + mime, ErrBadCPIM},
		{"empty prefix", ".b: x" + mime, ErrBadCPIM},
		{"folded CPIM header", "Subject: a\r\n b" + mime, ErrBadCPIM},
		{"CR in value", "Subject: a\rb" + mime, ErrBadCPIM},
		{"NUL in value", "Subject: a\x00b" + mime, ErrBadCPIM},
		{"bad UTF-8", "Subject: a\xffb" + mime, ErrBadCPIM},
		{"param without value", "X:;a v" + mime, ErrBadCPIM},
		{"param no space", "X:;a=b\"c\" v" + mime, ErrBadCPIM},
		{"unterminated param", "X:;a=\"b v" + mime, ErrBadCPIM},
		{"two From", "From: <sip:a@b.c>\r\nFrom: <sip:d@e.f>" + mime, ErrBadCPIM},
		{"two DateTime", "DateTime: 2000-12-13T13:40:00Z\r\nDateTime: 2000-12-13T13:40:00Z" + mime, ErrBadCPIM},
		{"bad DateTime", "DateTime: 2000-12-13 13:40:00" + mime, ErrBadCPIM},
		{"params after > (CHECKLIST 9, RFC 7702)", "From: Romeo <sip:romeo@example.org>;gr=x" + mime, ErrBadCPIM},
		{"From without URI", "From: Romeo" + mime, ErrBadCPIM},
		{"To with empty URI", "To: <>" + mime, ErrBadCPIM},
		{"bad NS", "NS: imdn urn:ietf:params:imdn" + mime, ErrBadCPIM},
		{"bad Require", "Require: a b" + mime, ErrBadCPIM},
		{"bad Subject lang", "Subject:;lang=fr_FR x" + mime, ErrBadCPIM},
		{"MIME continuation first", "From: <sip:a@b.c>\r\n\r\n x\r\n\r\nx", ErrBadCPIM},
		{"bad MIME name", "From: <sip:a@b.c>\r\n\r\nContent Type: x\r\n\r\nx", ErrBadCPIM},
		{"MIME CTL", "From: <sip:a@b.c>\r\n\r\nContent-Type: x\x01\r\n\r\nx", ErrBadCPIM},
		{"long line", "Subject: " + strings.Repeat("a", CPIMMaxLine) + mime, ErrCPIMTooBig},
		{"too many headers", strings.Repeat("X: y\r\n", CPIMMaxHeaders+1) + mime, ErrCPIMTooBig},
		{"too many MIME headers", "X: y\r\n\r\n" + strings.Repeat("X: y\r\n", CPIMMaxHeaders+1) + "\r\nx", ErrCPIMTooBig},
		{"long folded MIME header", "X: y\r\n\r\nX: y\r\n" + strings.Repeat(" "+strings.Repeat("a", 1000)+"\r\n", 5) + "\r\nx", ErrCPIMTooBig},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseCPIM([]byte(c.in))
			if c.want == nil {
				if err != nil {
					t.Fatalf("ParseCPIM: %v", err)
				}
				out, err := m.Marshal()
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				if m2, err := ParseCPIM(out); err != nil || !reflect.DeepEqual(m, m2) {
					t.Fatalf("round trip: %v\n%+v\n%+v", err, m, m2)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestParseCPIMTolerance(t *testing.T) {
	m, err := ParseCPIM([]byte("From:<sip:a@b.c>\nSubject:  two spaces\n\nContent-Type:   text/plain  \n\nbody\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Headers[0].Value != "<sip:a@b.c>" || m.Headers[1].Value != " two spaces" || m.ContentType() != "text/plain" {
		t.Errorf("got %+v", m)
	}
	// Header names are case-sensitive (CHAT-30b): "from" is another header.
	if lower, err := ParseCPIM([]byte("from: <sip:a@b.c>\r\n\r\n\r\n")); err != nil {
		t.Error(err)
	} else if _, ok := lower.From(); ok {
		t.Error(`"from" read as From`)
	}
	out, _ := m.Marshal()
	if want := "From: <sip:a@b.c>\r\nSubject:  two spaces\r\n\r\nContent-Type: text/plain\r\n\r\nbody\n"; string(out) != want {
		t.Errorf("Marshal = %q, want %q", out, want)
	}
}

func TestCPIMMarshalRefuses(t *testing.T) {
	base := func() CPIMMessage {
		var m CPIMMessage
		m.AddAddress("From", CPIMAddress{URI: "sip:a@b.c"})
		m.AddMIME("Content-Type", "text/plain")
		m.Body = []byte("x")
		return m
	}
	cases := []struct {
		name string
		edit func(*CPIMMessage)
		want error
	}{
		{"ok", func(*CPIMMessage) {}, nil},
		{"CRLF injection in value", func(m *CPIMMessage) { m.AddHeader("", "Subject", "hi\r\nFrom: <sip:evil@x>") }, ErrBadCPIM},
		{"LF in value", func(m *CPIMMessage) { m.AddHeader("", "X", "a\nb") }, ErrBadCPIM},
		{"LF escaped by AddText", func(m *CPIMMessage) { m.AddText("", "X", "a\r\nb") }, nil},
		{"CRLF in display name", func(m *CPIMMessage) { m.AddAddress("To", CPIMAddress{Name: "a\r\nb", URI: "sip:x@y"}) }, nil},
		{"CRLF in URI", func(m *CPIMMessage) { m.AddAddress("To", CPIMAddress{URI: "sip:x@y>\r\nX: <z:a"}) }, ErrBadCPIM},
		{"CRLF in MIME value", func(m *CPIMMessage) { m.AddMIME("X", "a\r\nb") }, ErrBadCPIM},
		{"blank MIME value edge", func(m *CPIMMessage) { m.AddMIME("X", " a") }, ErrBadCPIM},
		{"bad MIME name", func(m *CPIMMessage) { m.AddMIME("X:Y", "a") }, ErrBadCPIM},
		{"bad name", func(m *CPIMMessage) { m.AddHeader("", "X Y", "a") }, ErrBadCPIM},
		{"dotted name", func(m *CPIMMessage) { m.AddHeader("", "X.Y", "a") }, ErrBadCPIM},
		{"bad prefix", func(m *CPIMMessage) { m.AddHeader("a b", "X", "a") }, ErrBadCPIM},
		{"bad param value", func(m *CPIMMessage) { m.AddHeader("", "X", "a", CPIMParam{"p", "a b"}) }, ErrBadCPIM},
		{"bad quoted param", func(m *CPIMMessage) { m.AddHeader("", "X", "a", CPIMParam{"p", `"a"b"`}) }, ErrBadCPIM},
		{"empty param", func(m *CPIMMessage) { m.AddHeader("", "X", "a", CPIMParam{"p", ""}) }, ErrBadCPIM},
		{"bad UTF-8", func(m *CPIMMessage) { m.AddText("", "X", "\xff") }, ErrBadCPIM},
		{"second From", func(m *CPIMMessage) { m.AddAddress("From", CPIMAddress{URI: "sip:x@y"}) }, ErrBadCPIM},
		{"bad DateTime", func(m *CPIMMessage) { m.AddDateTime("yesterday") }, ErrBadCPIM},
		{"bad NS", func(m *CPIMMessage) { m.AddNS("a b", "urn:x") }, ErrBadCPIM},
		{"no headers", func(m *CPIMMessage) { m.Headers = nil }, ErrBadCPIM},
		{"long line", func(m *CPIMMessage) { m.AddHeader("", "X", strings.Repeat("a", CPIMMaxLine)) }, ErrCPIMTooBig},
		{"long MIME", func(m *CPIMMessage) { m.AddMIME("X", strings.Repeat("a", CPIMMaxLine)) }, ErrCPIMTooBig},
		{"too many", func(m *CPIMMessage) {
			for range CPIMMaxHeaders {
				m.AddHeader("", "X", "y")
			}
		}, ErrCPIMTooBig},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := base()
			c.edit(&m)
			out, err := m.Marshal()
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("err = %v, want %v", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Count(out, []byte("\r\n\r\n")) != 2 || bytes.Contains(out, []byte("\n\n")) {
				t.Fatalf("unexpected lines in %q", out)
			}
			m2, err := ParseCPIM(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Fatalf("round trip\n%+v\n%+v", m, m2)
			}
		})
	}
}

// TestCPIMBuild builds the message CHAT-44 describes and checks the wire
// form byte for byte.
func TestCPIMBuild(t *testing.T) {
	var m CPIMMessage
	m.AddAddress("From", CPIMAddress{Name: "Romeo Montague", URI: "sip:romeo@example.net"})
	m.AddAddress("To", CPIMAddress{Name: "Juliet (Capulet)", URI: "xmpp:juliet@example.com"})
	m.AddDateTime("2008-10-15T15:02:31-03:00")
	m.AddSubject("en", "Art thou not Romeo,\nand a Montague?")
	m.AddNS("imdn", IMDNNamespace)
	m.AddText("imdn", "Message-ID", "bkfnenrbc")
	m.AddText("imdn", "Disposition-Notification", "positive-delivery")
	m.AddMIME("Content-Type", "text/plain; charset=utf-8")
	m.Body = []byte("Neither, fair saint, if either thee dislike.")
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "From: Romeo Montague <sip:romeo@example.net>\r\n" +
		"To: \"Juliet (Capulet)\" <xmpp:juliet@example.com>\r\n" +
		"DateTime: 2008-10-15T15:02:31-03:00\r\n" +
		"Subject:;lang=en Art thou not Romeo,\\nand a Montague?\r\n" +
		"NS: imdn <urn:ietf:params:imdn>\r\n" +
		"imdn.Message-ID: bkfnenrbc\r\n" +
		"imdn.Disposition-Notification: positive-delivery\r\n" +
		"\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Neither, fair saint, if either thee dislike."
	if string(out) != want {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
	if m.Headers[5].NS != IMDNNamespace || m.Headers[0].NS != CPIMHeadersNS {
		t.Errorf("AddHeader did not resolve NS: %+v", m.Headers)
	}
	m2, err := ParseCPIM(out)
	if err != nil || !reflect.DeepEqual(m, m2) {
		t.Errorf("round trip: %v\n%+v\n%+v", err, m, m2)
	}
	if s := m2.Subjects(); len(s) != 1 || s[0].Text != "Art thou not Romeo,\nand a Montague?" {
		t.Errorf("Subjects = %q", s)
	}
}

func TestCPIMEscape(t *testing.T) {
	cases := []struct{ text, wire string }{
		{"plain", "plain"},
		{"", ""},
		{`back\slash`, `back\\slash`},
		{"a\r\nb\tc\bd", `a\r\nb\tc\bd`},
		{"nul\x00del\x7f", `nul\u0000del\u007F`},
		{`"quotes" stay`, `"quotes" stay`},
		{"été 😀", "été 😀"},
	}
	for _, c := range cases {
		if got := CPIMEscape(c.text); got != c.wire {
			t.Errorf("CPIMEscape(%q) = %q, want %q", c.text, got, c.wire)
		}
		if got := CPIMUnescape(c.wire); got != c.text {
			t.Errorf("CPIMUnescape(%q) = %q, want %q", c.wire, got, c.text)
		}
	}
}

func TestCPIMUnescape(t *testing.T) {
	cases := []struct{ wire, text string }{
		{`\"\'\\`, `"'\`},
		{`\u00e9\u00E9`, "éé"},
		{`\uD83D\uDE00`, "😀"},
		{`\uD83D`, "\uFFFD"},
		{`\uDE00x`, "\uFFFDx"},
		{`\uD83Dx\uDE00`, "\uFFFDx\uFFFD"},
		{`\q`, `\q`},
		{`C:\path`, `C:\path`},
		{`\u12`, `\u12`},
		{`\uzzzz`, `\uzzzz`},
		{`end\`, `end\`},
	}
	for _, c := range cases {
		if got := CPIMUnescape(c.wire); got != c.text {
			t.Errorf("CPIMUnescape(%q) = %q, want %q", c.wire, got, c.text)
		}
	}
}

func TestParseCPIMAddress(t *testing.T) {
	cases := []struct {
		in   string
		want CPIMAddress
		ok   bool
	}{
		{"<im:a@b>", CPIMAddress{URI: "im:a@b"}, true},
		{"Winnie the Pooh <im:pooh@100akerwood.com>", CPIMAddress{"Winnie the Pooh", "im:pooh@100akerwood.com"}, true},
		{`"Winnie the Pooh" <im:pooh@100akerwood.com>`, CPIMAddress{"Winnie the Pooh", "im:pooh@100akerwood.com"}, true},
		{`"a\\b\"c"<sip:x@y>`, CPIMAddress{`a\b"c`, "sip:x@y"}, true},
		{"  <sip:x@y>  ", CPIMAddress{URI: "sip:x@y"}, true},
		{"sip:x@y", CPIMAddress{URI: "sip:x@y"}, true},
		{"", CPIMAddress{}, false},
		{"<sip:x@y>;gr=z", CPIMAddress{}, false},
		{"<sip:x@y> junk", CPIMAddress{}, false},
		{"<sip:x@y", CPIMAddress{}, false},
		{"<sip x@y>", CPIMAddress{}, false},
		{"<nocolon>", CPIMAddress{}, false},
		{"<1x:y>", CPIMAddress{}, false},
		{`"unterminated <sip:x@y>`, CPIMAddress{}, false},
		{`a"b <sip:x@y>`, CPIMAddress{}, false},
		{"two words", CPIMAddress{}, false},
	}
	for _, c := range cases {
		got, err := ParseCPIMAddress(c.in)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("ParseCPIMAddress(%q) = %+v, %v", c.in, got, err)
			continue
		}
		if err != nil && !errors.Is(err, ErrBadCPIM) {
			t.Errorf("ParseCPIMAddress(%q): %v does not wrap ErrBadCPIM", c.in, err)
		}
		if err == nil {
			if back, err := ParseCPIMAddress(got.String()); err != nil || back != got {
				t.Errorf("String round trip of %+v: %q -> %+v %v", got, got.String(), back, err)
			}
		}
	}
}

func TestCPIMAddressString(t *testing.T) {
	cases := []struct {
		a    CPIMAddress
		want string
	}{
		{CPIMAddress{URI: "sip:a@b"}, "<sip:a@b>"},
		{CPIMAddress{"MR SANDERS", "im:piglet@100akerwood.com"}, "MR SANDERS <im:piglet@100akerwood.com>"},
		{CPIMAddress{"O'Brien", "sip:a@b"}, "O'Brien <sip:a@b>"},
		{CPIMAddress{"Smith, John", "sip:a@b"}, `"Smith, John" <sip:a@b>`},
		{CPIMAddress{"two  spaces", "sip:a@b"}, `"two  spaces" <sip:a@b>`},
		{CPIMAddress{`say "hi"`, "sip:a@b"}, `"say \"hi\"" <sip:a@b>`},
		{CPIMAddress{"line\nbreak", "sip:a@b"}, `"line\nbreak" <sip:a@b>`},
		{CPIMAddress{"Jürgen", "sip:a@b"}, "Jürgen <sip:a@b>"},
	}
	for _, c := range cases {
		if got := c.a.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.a, got, c.want)
		}
	}
}

func TestCPIMValidDateTime(t *testing.T) {
	cases := []struct {
		s  string
		ok bool
	}{
		{"2000-12-13T13:40:00-08:00", true},
		{"2001-02-02T10:48:54Z", true},
		{"2001-02-02t10:48:54z", true},
		{"2001-02-02T10:48:54.123456+05:30", true},
		{"2000-02-29T00:00:00Z", true},
		{"2016-12-31T23:59:60Z", true},
		{"1900-02-29T00:00:00Z", false},
		{"2001-02-29T00:00:00Z", false},
		{"2001-04-31T00:00:00Z", false},
		{"2001-13-01T00:00:00Z", false},
		{"2001-00-01T00:00:00Z", false},
		{"2001-01-01T24:00:00Z", false},
		{"2001-01-01T00:60:00Z", false},
		{"2001-01-01T00:00:61Z", false},
		{"2001-01-01T00:00:00", false},
		{"2001-01-01 00:00:00Z", false},
		{"2001-01-01T00:00:00.Z", false},
		{"2001-01-01T00:00:00+24:00", false},
		{"2001-01-01T00:00:00+0100", false},
		{"2001-01-01T00:00:00+01:00x", false},
		{"20010101T000000Z", false},
		{"+001-01-01T00:00:00Z", false},
		{"", false},
	}
	for _, c := range cases {
		if got := ValidDateTime(c.s); got != c.ok {
			t.Errorf("ValidDateTime(%q) = %v", c.s, got)
		}
	}
}

// TestCPIMFromMatches: the anti-spoofing comparison (CHAT-30; RFC 3261
// 19.1.4).
func TestCPIMFromMatches(t *testing.T) {
	cases := []struct {
		from, auth string
		want       bool
	}{
		{"<sip:romeo@example.net>", "sip:romeo@example.net", true},
		{"Romeo <sip:romeo@Example.NET>", "sip:romeo@example.net", true},
		{"sip:romeo@example.net", "<sip:romeo@example.net>", true},
		{"<SIP:romeo@example.net>", "sip:romeo@example.net", true},
		{"<sip:%72omeo@example.net>", "sip:romeo@example.net", true},
		{"<sip:romeo@example.net;gr=x>", "sip:romeo@example.net", true},
		{"<sip:romeo@example.net;gr=x>", "sip:romeo@example.net;gr=y", false},
		{"<sip:romeo@example.net;transport=tcp>", "sip:romeo@example.net", false},
		{"<sip:romeo@example.net;transport=TCP>", "sip:romeo@example.net;transport=tcp", true},
		{"<sip:romeo@example.net;user=phone>", "sip:romeo@example.net", false},
		{"<sip:Romeo@example.net>", "sip:romeo@example.net", false},
		{"<sip:romeo@example.net:5060>", "sip:romeo@example.net", false},
		{"<sip:romeo@example.net:5060>", "sip:romeo@example.net:5060", true},
		{"<sips:romeo@example.net>", "sip:romeo@example.net", false},
		{"<im:romeo@example.net>", "sip:romeo@example.net", false},
		{"<im:romeo@example.net>", "im:romeo@example.net", true},
		{"<sip:mallory@evil.example>", "sip:romeo@example.net", false},
		{"<sip:romeo@evil.example>", "sip:romeo@example.net", false},
		{"<sip:romeo@example.net?subject=x>", "sip:romeo@example.net", false},
		{"<tel:+1-555-0100>", "tel:+15550100", true},
		{"<tel:+1-555-0100>", "tel:+15550101", false},
		{"<xmpp:romeo@example.net>", "sip:romeo@example.net", false},
		{"<sip:romeo@example.net>;gr=x", "sip:romeo@example.net", false},
		{"", "sip:romeo@example.net", false},
		{"<sip:romeo@example.net>", "", false},
	}
	for _, c := range cases {
		if got := CPIMFromMatches(c.from, c.auth); got != c.want {
			t.Errorf("CPIMFromMatches(%q, %q) = %v", c.from, c.auth, got)
		}
		if got := CPIMFromMatches(c.auth, c.from); got != c.want && !strings.Contains(c.from, ";gr=x>") {
			// The comparison is symmetric (the gr case too, but keep
			// the table readable).
			t.Errorf("CPIMFromMatches(%q, %q) = %v (not symmetric)", c.auth, c.from, got)
		}
	}
}

func TestCPIMUnsupportedAndAddressed(t *testing.T) {
	const mime = "\r\n\r\n\r\nx"
	cases := []struct {
		in          string
		unsupported int
		addressed   bool
	}{
		{"From: <a:b>\r\nTo: <c:d>" + mime, 0, true},
		{"From: <a:b>\r\nRequire: From,DateTime, Subject" + mime, 0, false},
		{"To: <c:d>\r\nRequire: Foo" + mime, 1, false},
		{"NS: x <urn:x>\r\nRequire: x.Foo, Bar" + mime, 2, false},
		{"Require: x.Foo\r\nNS: x <urn:x>" + mime, 1, false},
	}
	for _, c := range cases {
		m, err := ParseCPIM([]byte(c.in))
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if u := m.Unsupported(nil); len(u) != c.unsupported {
			t.Errorf("%q: Unsupported = %+v", c.in, u)
		}
		if err := m.CheckAddressed(); (err == nil) != c.addressed || err != nil && !errors.Is(err, ErrBadCPIM) {
			t.Errorf("%q: CheckAddressed = %v", c.in, err)
		}
	}
	// Require resolves prefixes where it stands: before the NS, x is
	// undeclared.
	m, _ := ParseCPIM([]byte("Require: x.Foo\r\nNS: x <urn:x>" + mime))
	if r := m.Require(); len(r) != 1 || r[0] != (CPIMName{Name: "Foo"}) {
		t.Errorf("Require = %+v", r)
	}
}

func TestCPIMHeaderParam(t *testing.T) {
	m, err := ParseCPIM([]byte("X:;a=tok;b=\"q \\\"x\\\"\";n=42 v\r\n\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := m.Headers[0]
	for name, want := range map[string]string{"a": "tok", "b": `q "x"`, "n": "42"} {
		if got, ok := h.Param(name); !ok || got != want {
			t.Errorf("Param(%q) = %q %v", name, got, ok)
		}
	}
	if _, ok := h.Param("A"); ok {
		t.Error("parameter names are case-sensitive")
	}
}

var benchCPIM = []byte("From: MR SANDERS <im:piglet@100akerwood.com>\r\n" +
	"To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n" +
	"DateTime: 2000-12-13T13:40:00-08:00\r\n" +
	"NS: imdn <urn:ietf:params:imdn>\r\n" +
	"imdn.Message-ID: 34jk324j\r\n" +
	"imdn.Disposition-Notification: positive-delivery\r\n" +
	"\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Neither, fair saint, if either thee dislike.")

func BenchmarkParseCPIM(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchCPIM)))
	for b.Loop() {
		if _, err := ParseCPIM(benchCPIM); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCPIMMarshal(b *testing.B) {
	m, err := ParseCPIM(benchCPIM)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchCPIM)))
	for b.Loop() {
		if _, err := m.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCPIMLookup(b *testing.B) {
	m, err := ParseCPIM(benchCPIM)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if h := m.Lookup(IMDNNamespace, "Message-ID"); len(h) != 1 {
			b.Fatal(h)
		}
	}
}
