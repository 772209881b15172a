package component

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// Element is one XML element of a stanza, kept whole: every attribute (xml:lang
// included), every child in order and the character data. gosrc.io/xmpp's typed
// stanzas drop several of these (multiple bodies, xml:lang on output, unknown
// payloads), so stanzas are read and written as Elements.
type Element struct {
	Space    string // namespace URI, as resolved by the decoder
	Local    string
	Attr     []xml.Attr
	Children []*Element
	Text     string // character data directly inside the element, concatenated
	// Raw is well-formed XML content written verbatim after Text (outgoing
	// only: XHTML-IM bodies produced by mapping).
	Raw string
}

const nsXML = "http://www.w3.org/XML/1998/namespace"

// maxDepth bounds nesting of one stanza; the XMPP server is trusted, but a
// runaway document must not exhaust the stack.
const maxDepth = 64

// errTooDeep is returned when a stanza nests deeper than maxDepth.
var errTooDeep = errors.New("component: stanza nests too deep")

// AttrValue returns the value of the attribute with no namespace named local.
func (e *Element) AttrValue(local string) string {
	for _, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// Lang returns the element's own xml:lang.
func (e *Element) Lang() string {
	for _, a := range e.Attr {
		if a.Name.Local == "lang" && a.Name.Space == nsXML {
			return a.Value
		}
	}
	return ""
}

// Child returns the first child with the given namespace and local name.
func (e *Element) Child(space, local string) *Element {
	for _, c := range e.Children {
		if c.Local == local && c.Space == space {
			return c
		}
	}
	return nil
}

// ChildText returns the text of the first matching child, or "".
func (e *Element) ChildText(space, local string) string {
	if c := e.Child(space, local); c != nil {
		return c.Text
	}
	return ""
}

// SetAttr sets (or adds) an attribute with no namespace.
func (e *Element) SetAttr(local, value string) *Element {
	for i, a := range e.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			e.Attr[i].Value = value
			return e
		}
	}
	e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	return e
}

// SetLang sets xml:lang.
func (e *Element) SetLang(lang string) *Element {
	if lang == "" {
		return e
	}
	e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: lang})
	return e
}

// Add appends a child and returns it.
func (e *Element) Add(c *Element) *Element {
	e.Children = append(e.Children, c)
	return c
}

// NewElement returns an element with the given namespace and name.
func NewElement(space, local string) *Element { return &Element{Space: space, Local: local} }

// TextElement returns an element holding text.
func TextElement(space, local, text string) *Element {
	return &Element{Space: space, Local: local, Text: text}
}

// String serialises the element. The top-level element is written in the
// stream's default namespace (jabber:component:accept) when its Space is that
// namespace or empty.
func (e *Element) String() string { return string(e.Bytes()) }

// Bytes serialises the element, into one allocation when nothing needs
// escaping (size).
func (e *Element) Bytes() []byte {
	var b bytes.Buffer
	b.Grow(e.size())
	e.write(&b, nsComponent, true)
	return b.Bytes()
}

// size is what write takes for e when nothing needs escaping, give or take
// a namespace declaration.
func (e *Element) size() int {
	n := 2*len(e.Local) + 5 + len(e.Text) + len(e.Raw)
	if e.Space != "" {
		n += len(e.Space) + 9
	}
	for _, a := range e.Attr {
		n += len(a.Name.Local) + len(a.Value) + 8
	}
	for _, c := range e.Children {
		n += c.size()
	}
	return n
}

func (e *Element) write(b *bytes.Buffer, parentNS string, top bool) {
	b.WriteByte('<')
	b.WriteString(e.Local)
	ns := e.Space
	if top && (ns == "" || ns == nsClient) {
		ns = parentNS // a stanza is written in the stream's namespace
	}
	if ns != parentNS {
		b.WriteString(` xmlns="`)
		escapeAttr(b, ns)
		b.WriteByte('"')
	}
	for _, a := range e.Attr {
		b.WriteByte(' ')
		switch a.Name.Space {
		case "":
		case nsXML:
			b.WriteString("xml:")
		default:
			continue // foreign-namespace attributes are not carried
		}
		b.WriteString(a.Name.Local)
		b.WriteString(`="`)
		escapeAttr(b, a.Value)
		b.WriteByte('"')
	}
	if len(e.Children) == 0 && e.Text == "" && e.Raw == "" {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	escapeText(b, e.Text)
	b.WriteString(e.Raw)
	for _, c := range e.Children {
		c.write(b, ns, false)
	}
	b.WriteString("</")
	b.WriteString(e.Local)
	b.WriteByte('>')
}

func escapeText(b *bytes.Buffer, s string) { escape(b, s, false) }

func escapeAttr(b *bytes.Buffer, s string) { escape(b, s, true) }

// escape writes s as XML character data, or as an attribute value (quotes
// and white space escaped too, so that they survive normalisation).
func escape(b *bytes.Buffer, s string, attr bool) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch c := s[i]; {
		case c == '<':
			esc = "&lt;"
		case c == '>':
			esc = "&gt;"
		case c == '&':
			esc = "&amp;"
		case c == '\r':
			esc = "&#xD;"
		case attr && c == '"':
			esc = "&quot;"
		case attr && c == '\'':
			esc = "&apos;"
		case attr && c == '\n':
			esc = "&#xA;"
		case attr && c == '\t':
			esc = "&#x9;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(esc)
		last = i + 1
	}
	b.WriteString(s[last:])
}

// ParseElement parses one serialised element (tests, and raw fragments).
// Anything after the element is ignored.
func ParseElement(s string) (*Element, error) {
	p := xmlParser{d: []byte(s)}
	e, _, err := p.top()
	switch {
	case err == errNeedMore:
		return nil, fmt.Errorf("component: parse element: %w", io.ErrUnexpectedEOF)
	case err != nil:
		return nil, fmt.Errorf("component: parse element: %w", err)
	}
	return e, nil
}
