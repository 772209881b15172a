package component

import (
	"reflect"
	"strings"
	"testing"
)

func TestElementRoundTrip(t *testing.T) {
	cases := []struct{ in, out string }{
		{`<message xmlns='jabber:component:accept' from='a@b' xml:lang='en'><body xml:lang='cs'>x &lt; y &amp; "z"</body></message>`,
			`<message from="a@b" xml:lang="en"><body xml:lang="cs">x &lt; y &amp; &#34;z&#34;</body></message>`},
		{`<iq type='get'><query xmlns='http://jabber.org/protocol/disco#info' node='n&apos;1'/></iq>`,
			`<iq type="get"><query xmlns="http://jabber.org/protocol/disco#info" node="n&apos;1"/></iq>`},
		{`<m><a:x xmlns:a='urn:a'><a:y/></a:x></m>`, `<m><x xmlns="urn:a"><y/></x></m>`},
	}
	for _, c := range cases {
		e, err := ParseElement(c.in)
		if err != nil {
			t.Fatal(err)
		}
		got := e.String()
		e2, err := parseStanza(got)
		if err != nil {
			t.Fatalf("re-parse %q: %v", got, err)
		}
		if !sameElement(e, e2) {
			t.Fatalf("round trip changed %q -> %q", c.in, got)
		}
		if strings.Contains(c.out, "&#34;") {
			continue // quotes in text may be written either way
		}
		if got != c.out {
			t.Errorf("String() = %q, want %q", got, c.out)
		}
	}
}

func TestElementLang(t *testing.T) {
	e, _ := ParseElement(`<message xml:lang='de'><body xml:lang='en'>hi</body></message>`)
	if e.Lang() != "de" || e.Child("", "body").Lang() != "en" {
		t.Fatalf("langs %q %q", e.Lang(), e.Child("", "body").Lang())
	}
	out := NewElement(nsComponent, "message").SetLang("fr").String()
	if out != `<message xml:lang="fr"/>` {
		t.Fatalf("SetLang wrote %s (gosrc.io/xmpp writes lang=, LIBRARIES.md)", out)
	}
}

func TestElementDepthBound(t *testing.T) {
	deep := strings.Repeat("<a>", maxDepth+2) + strings.Repeat("</a>", maxDepth+2)
	if _, err := ParseElement(deep); err == nil {
		t.Fatal("no error for a too-deep element")
	}
}

// sameElement compares a parsed element with its re-parsed serialisation; a
// top-level element is written in the stream namespace (String's contract).
func sameElement(a, b *Element) bool {
	if a.Space == "" || a.Space == nsClient {
		c := *a
		c.Space = nsComponent
		a = &c
	}
	return sameTree(a, b)
}

func sameTree(a, b *Element) bool {
	if a.Local != b.Local || a.Space != b.Space || a.Text != b.Text || len(a.Children) != len(b.Children) {
		return false
	}
	if !reflect.DeepEqual(attrMap(a), attrMap(b)) {
		return false
	}
	for i := range a.Children {
		if !sameTree(a.Children[i], b.Children[i]) {
			return false
		}
	}
	return true
}

func attrMap(e *Element) map[string]string {
	m := map[string]string{}
	for _, a := range e.Attr {
		if a.Name.Space == "" || a.Name.Space == nsXML {
			m[a.Name.Space+" "+a.Name.Local] = a.Value
		}
	}
	return m
}

// FuzzElement: whatever parses must serialise to XML that parses back to the
// same element (namespaces, attributes, text, children).
func FuzzElement(f *testing.F) {
	f.Add(`<message xml:lang='en' to='a@b'><body>hi &amp; bye</body></message>`)
	f.Add(`<iq><q xmlns='urn:x' a='1&#xA;2'/></iq>`)
	f.Add(`<x xmlns:p='urn:p'><p:y p:attr='v'/></x>`)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseElement(s)
		if err != nil {
			return
		}
		out := e.String()
		e2, err := parseStanza(out)
		if err != nil {
			t.Fatalf("serialised form does not parse: %q -> %q: %v", s, out, err)
		}
		if !sameElement(e, e2) {
			t.Fatalf("round trip changed the element: %q -> %q", s, out)
		}
	})
}
