//go:build unix

package testbed

import (
	"fmt"
	"strings"

	"github.com/beevik/etree"
)

// XML namespaces the tests use most.
const (
	NSClient    = "jabber:client"
	NSStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSDiscoInfo = "http://jabber.org/protocol/disco#info"
)

// Stanza is one top-level element received on a stream, in arrival order.
type Stanza struct {
	// El is the parsed element. A root element without an xmlns attribute
	// gets xmlns="jabber:client" (inherited from the stream), so that
	// El.NamespaceURI() and Child work on every element.
	El *etree.Element
	// Raw is the element exactly as the server sent it.
	Raw string
}

// parseStanza parses one top-level element of a stream whose default
// namespace is defaultNS.
func parseStanza(raw []byte, defaultNS string) (*Stanza, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, fmt.Errorf("testbed: parsing stanza %q: %w", raw, err)
	}
	el := doc.Root()
	if el == nil {
		return nil, fmt.Errorf("testbed: no element in %q", raw)
	}
	if el.Space == "" && el.SelectAttr("xmlns") == nil && defaultNS != "" {
		el.CreateAttr("xmlns", defaultNS)
	}
	return &Stanza{El: el, Raw: string(raw)}, nil
}

// Name is the element's local name: "message", "presence", "iq", ...
func (s *Stanza) Name() string { return s.El.Tag }

// Attr is the value of an attribute of the stanza ("" if absent).
func (s *Stanza) Attr(name string) string { return s.El.SelectAttrValue(name, "") }

// Child is the first direct child element with this local name and
// namespace ("" matches any namespace), or nil.
func (s *Stanza) Child(ns, local string) *etree.Element {
	return child(s.El, ns, local)
}

// Text is the character data of Child(ns, local), "" if there is no such child.
func (s *Stanza) Text(ns, local string) string {
	if c := s.Child(ns, local); c != nil {
		return c.Text()
	}
	return ""
}

// Body is the text of the jabber:client <body/> child.
func (s *Stanza) Body() string { return s.Text(NSClient, "body") }

// ErrorCondition is the RFC 6120 defined condition of a type="error"
// stanza (e.g. "item-not-found"), or "".
func (s *Stanza) ErrorCondition() string {
	e := s.Child(NSClient, "error")
	if e == nil {
		return ""
	}
	for _, c := range e.ChildElements() {
		if c.NamespaceURI() == NSStanzas && c.Tag != "text" {
			return c.Tag
		}
	}
	return ""
}

// String returns the raw XML.
func (s *Stanza) String() string { return s.Raw }

func child(el *etree.Element, ns, local string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == local && (ns == "" || c.NamespaceURI() == ns) {
			return c
		}
	}
	return nil
}

// StanzaError is the error IQ returns for a type="error" reply.
type StanzaError struct {
	Stanza *Stanza
}

func (e *StanzaError) Error() string {
	cond := e.Stanza.ErrorCondition()
	if cond == "" {
		cond = "(no condition)"
	}
	return fmt.Sprintf("testbed: stanza error %s from %q: %s", cond, e.Stanza.Attr("from"), oneLine(e.Stanza.Raw))
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}
