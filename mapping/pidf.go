package mapping

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// PIDF codec (RFC 3863), with the pieces of RPID (RFC 4480) and the data
// model (RFC 4479) that the presence mapping reads, and the jabber:client
// <show/> that RFC 8048 6.2 recommends inside <status>. It is faithful to
// the document, not to XMPP: the presence tables live in presence.go.

// Namespaces and the media type of a PIDF body.
const (
	NSPIDF          = "urn:ietf:params:xml:ns:pidf"
	NSPIDFDataModel = "urn:ietf:params:xml:ns:pidf:data-model"
	NSRPID          = "urn:ietf:params:xml:ns:pidf:rpid"
	NSJabberClient  = "jabber:client"
	ContentTypePIDF = "application/pidf+xml"
)

// Limits ParsePIDF enforces on untrusted bodies (issue 4 "bad input"):
// larger documents give ErrPIDFTooBig, deeper ones ErrPIDFTooDeep.
// PIDFMaxTuples also bounds the stanzas one NOTIFY can fan out to.
const (
	PIDFMaxBytes  = 64 << 10
	PIDFMaxDepth  = 32
	PIDFMaxTuples = 64
)

// Note is a <note/>: Lang is its effective xml:lang (its own or inherited),
// "" when there is none.
type Note struct{ Lang, Text string }

// Tuple is one <tuple/> of a PIDF document, reduced to what the presence
// mapping reads.
type Tuple struct {
	ID         string   // the id attribute (RFC 3863 4.1.1: MUST, unique)
	Basic      string   // <basic/> text: "open", "closed", or "" when absent
	Show       string   // <show xmlns='jabber:client'/> text, in <status> (RFC 8048 6.2)
	Activities []string // RPID <activities/> in <status>: local names, e.g. "away"
	Contact    string   // <contact/> URI
	Q          int      // contact priority in thousandths ("0.5" is 500), when HasQ
	HasQ       bool
	Notes      []Note
	Timestamp  string // <timestamp/> text, not interpreted
}

// PIDF is a presence document (RFC 3863 4).
type PIDF struct {
	Entity     string   // the presentity URI (MUST), e.g. pres:juliet@example.com
	Tuples     []Tuple  // in document order
	Notes      []Note   // <note/>s of the document, then those of dm:person elements
	Activities []string // RPID activities of the first dm:person that has any
}

// TupleID returns the tuple id for an XMPP resourcepart (RFC 8048 6.2
// Table 1: "ID-" plus the resource, since an xs:ID cannot start with a
// digit). Bytes other than ASCII letters, digits, '-' and '.' are written
// _HH (upper-case hex) so that the id is always a valid xs:ID and the
// mapping is reversible: "my phone" -> "ID-my_20phone". The empty
// resource, the presentity as a whole, is "ID-".
func TupleID(resource string) string {
	var b strings.Builder
	b.Grow(3 + len(resource))
	b.WriteString("ID-")
	for i := 0; i < len(resource); i++ {
		c := resource[i]
		if idRaw(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

func idRaw(c byte) bool { return isAlnum(c) || c == '-' || c == '.' }

// unescapeID reverses the escaping of TupleID. It succeeds only for the
// canonical form TupleID produces and for UTF-8 results, so that ids written
// by others ("ID-home_phone") are not mangled.
func unescapeID(s string) (string, bool) {
	if !strings.Contains(s, "_") {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
			return "", false
		}
		b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
		i += 2
	}
	r := string(b)
	if !utf8.ValidString(r) || TupleID(r)[3:] != s {
		return "", false
	}
	return r, true
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// Resource returns the XMPP resourcepart this tuple stands for (RFC 8048 6.3
// Table 2, PRES-13c): the tuple id without "ID-" (unescaped when it is in
// TupleID's form, else as written); for an id without that prefix, the gr
// parameter of the contact URI, or else the id itself. "" (the presentity as
// a whole, a bare JID) for the id "ID-" with no gr. The result is not
// validated as a resourcepart.
func (t Tuple) Resource() string {
	rest, prefixed := strings.CutPrefix(t.ID, "ID-")
	if prefixed && rest != "" {
		if r, ok := unescapeID(rest); ok {
			return r
		}
		return rest
	}
	if u, err := ParseURI(t.Contact); err == nil {
		if gr, _ := u.Param("gr"); gr != "" {
			return gr
		}
	}
	if prefixed {
		return ""
	}
	return t.ID
}

// ParsePIDF reads a PIDF document (RFC 3863 4, PRES-40). Elements are
// matched by namespace URI, never by prefix; unknown elements and attributes
// are ignored (PRES-40f), as are RPID and data-model content other than
// activities and notes. Only well-formed XML with a single
// urn:ietf:params:xml:ns:pidf <presence/> root, a non-empty entity and a
// non-empty, unique id on every tuple is accepted (ErrBadPIDF); a body over
// PIDFMaxBytes or with more than PIDFMaxTuples tuples gives ErrPIDFTooBig,
// nesting deeper than PIDFMaxDepth ErrPIDFTooDeep. External entities are
// never fetched and unknown entity references are errors.
//
// Text is kept as written, except that entity, id, basic, show, contact
// and timestamp are trimmed of white space. A contact priority that is not
// an RFC 3863 qvalue is ignored (HasQ false); a note's xml:lang that is not
// a well-formed language tag is treated as absent.
func ParsePIDF(body []byte) (PIDF, error) {
	if len(body) > PIDFMaxBytes {
		return PIDF{}, fmt.Errorf("%w: %d bytes, limit %d", ErrPIDFTooBig, len(body), PIDFMaxBytes)
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{MaxDepth: PIDFMaxDepth}
	if err := doc.ReadFromBytes(body); err != nil {
		if errors.Is(err, etree.ErrMaxDepth) {
			return PIDF{}, fmt.Errorf("%w: limit %d", ErrPIDFTooDeep, PIDFMaxDepth)
		}
		return PIDF{}, fmt.Errorf("%w: %v", ErrBadPIDF, err)
	}
	root, err := documentRoot(doc)
	if err != nil {
		return PIDF{}, err
	}
	if root.Tag != "presence" || root.NamespaceURI() != NSPIDF {
		return PIDF{}, fmt.Errorf("%w: root is not a %s <presence/>", ErrBadPIDF, NSPIDF)
	}
	var d PIDF
	d.Entity = strings.TrimSpace(plainAttr(root, "entity"))
	if d.Entity == "" {
		return PIDF{}, fmt.Errorf("%w: no entity", ErrBadPIDF)
	}
	ids := make(map[string]bool)
	var personNotes []Note
	for _, e := range root.ChildElements() {
		switch ns := e.NamespaceURI(); {
		case ns == NSPIDF && e.Tag == "tuple":
			if len(d.Tuples) == PIDFMaxTuples {
				return PIDF{}, fmt.Errorf("%w: more than %d tuples", ErrPIDFTooBig, PIDFMaxTuples)
			}
			t := parseTuple(e)
			if t.ID == "" {
				return PIDF{}, fmt.Errorf("%w: tuple without id", ErrBadPIDF)
			}
			if ids[t.ID] {
				return PIDF{}, fmt.Errorf("%w: duplicate tuple id %q", ErrBadPIDF, t.ID)
			}
			ids[t.ID] = true
			d.Tuples = append(d.Tuples, t)
		case ns == NSPIDF && e.Tag == "note":
			d.Notes = append(d.Notes, parseNote(e))
		case ns == NSPIDFDataModel && e.Tag == "person":
			for _, c := range e.ChildElements() {
				switch cns := c.NamespaceURI(); {
				case cns == NSRPID && c.Tag == "activities":
					if d.Activities == nil {
						d.Activities = parseActivities(c) // nil when empty
					}
				case cns == NSPIDFDataModel && c.Tag == "note":
					personNotes = append(personNotes, parseNote(c))
				}
			}
		}
	}
	d.Notes = append(d.Notes, personNotes...)
	return d, nil
}

// documentRoot returns the single root element; anything but white space,
// comments, processing instructions and a DOCTYPE around it is an error
// (etree accepts several roots and top-level text).
func documentRoot(doc *etree.Document) (*etree.Element, error) {
	var root *etree.Element
	for _, tok := range doc.Child {
		switch t := tok.(type) {
		case *etree.Element:
			if root != nil {
				return nil, fmt.Errorf("%w: more than one root element", ErrBadPIDF)
			}
			root = t
		case *etree.CharData:
			if !t.IsWhitespace() {
				return nil, fmt.Errorf("%w: text outside the root element", ErrBadPIDF)
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: no root element", ErrBadPIDF)
	}
	return root, nil
}

func parseTuple(e *etree.Element) Tuple {
	t := Tuple{ID: strings.TrimSpace(plainAttr(e, "id"))}
	var seenBasic, seenShow, seenActs, seenContact, seenStamp bool
	// <show/> and <activities/> belong in <status>; directly in <tuple> they
	// are read too (older RPID drafts put status extensions there).
	extension := func(c *etree.Element, ns string) {
		switch {
		case ns == NSJabberClient && c.Tag == "show" && !seenShow:
			seenShow = true
			t.Show = strings.TrimSpace(text(c))
		case ns == NSRPID && c.Tag == "activities" && !seenActs:
			seenActs = true
			t.Activities = parseActivities(c)
		}
	}
	for _, c := range e.ChildElements() {
		ns := c.NamespaceURI()
		switch {
		case ns == NSPIDF && c.Tag == "status":
			for _, s := range c.ChildElements() {
				sns := s.NamespaceURI()
				if sns == NSPIDF && s.Tag == "basic" && !seenBasic {
					seenBasic = true
					t.Basic = strings.TrimSpace(text(s))
				} else {
					extension(s, sns)
				}
			}
		case ns == NSPIDF && c.Tag == "contact" && !seenContact:
			seenContact = true
			t.Contact = strings.TrimSpace(text(c))
			if p, ok := plainAttrOK(c, "priority"); ok {
				t.Q, t.HasQ = parseQ(p)
			}
		case ns == NSPIDF && c.Tag == "note":
			t.Notes = append(t.Notes, parseNote(c))
		case ns == NSPIDF && c.Tag == "timestamp" && !seenStamp:
			seenStamp = true
			t.Timestamp = strings.TrimSpace(text(c))
		default:
			extension(c, ns)
		}
	}
	return t
}

// parseActivities returns the RPID activity names (RFC 4480 3.2) under an
// <activities/> element, without <note/> and names that are not simple
// ASCII names (no RPID activity is); nil when there are none.
func parseActivities(e *etree.Element) []string {
	var acts []string
	for _, c := range e.ChildElements() {
		if c.Tag != "note" && validActivity(c.Tag) && c.NamespaceURI() == NSRPID {
			acts = append(acts, c.Tag)
		}
	}
	return acts
}

// validActivity: [A-Za-z][A-Za-z0-9._-]*, at most 64 bytes.
func validActivity(s string) bool {
	if s == "" || len(s) > 64 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return true
}

func parseNote(e *etree.Element) Note { return Note{Lang: effectiveLang(e), Text: text(e)} }

// effectiveLang returns the xml:lang in scope at e (XML 1.0 2.12). The xml
// prefix is bound by definition and cannot be rebound, so matching the
// prefix is matching the namespace here.
func effectiveLang(e *etree.Element) string {
	for ; e != nil; e = e.Parent() {
		for _, a := range e.Attr {
			if a.Space == "xml" && a.Key == "lang" {
				if v := strings.TrimSpace(a.Value); validLangTag(v) {
					return v
				}
				return ""
			}
		}
	}
	return ""
}

// text returns the character data directly inside e (CDATA included).
func text(e *etree.Element) string {
	var s string
	n := 0
	for _, tok := range e.Child {
		if cd, ok := tok.(*etree.CharData); ok {
			if n == 0 {
				s = cd.Data
			} else {
				s += cd.Data
			}
			n++
		}
	}
	return s
}

// plainAttr returns the value of the unprefixed attribute key, or "".
func plainAttr(e *etree.Element, key string) string {
	v, _ := plainAttrOK(e, key)
	return v
}

// plainAttrOK returns the value of the unprefixed attribute key (etree's
// SelectAttr would also match a prefixed one).
func plainAttrOK(e *etree.Element, key string) (string, bool) {
	for _, a := range e.Attr {
		if a.Space == "" && a.Key == key {
			return a.Value, true
		}
	}
	return "", false
}

// parseQ reads an RFC 3863 4.1.5 qvalue, ( "0" [ "." 0*3DIGIT ] ) /
// ( "1" [ "." 0*3("0") ] ), into thousandths.
func parseQ(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s[0] != '0' && s[0] != '1' {
		return 0, false
	}
	q := int(s[0]-'0') * 1000
	frac := s[1:]
	if frac == "" {
		return q, true
	}
	if frac[0] != '.' || len(frac) > 4 {
		return 0, false
	}
	scale := 100
	for i := 1; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' || q == 1000 && c != '0' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	return q, true
}

// formatQ writes thousandths (0..1000) as the shortest qvalue: 0, 0.007,
// 0.5, 1.
func formatQ(q int) string {
	switch {
	case q <= 0:
		return "0"
	case q >= 1000:
		return "1"
	}
	b := []byte{'0', '.', byte('0' + q/100), byte('0' + q/10%10), byte('0' + q%10)}
	for b[len(b)-1] == '0' {
		b = b[:len(b)-1]
	}
	return string(b)
}

// Marshal writes the document as UTF-8 XML with an XML declaration
// (PRES-40a): tuples (each with <status>, then <contact>, <note>s and
// <timestamp>, RFC 3863 4.1), the document notes, and a dm:person with RPID
// activities when there are any (RFC 4479, RFC 4480). It writes what it is
// given: TupleID makes valid ids. Text is escaped so that ParsePIDF gives
// it back exactly (carriage returns included), and fields ParsePIDF trims
// are trimmed.
//
// Errors (ErrBadPIDF): an empty entity, an empty or duplicate tuple id,
// text that XML cannot carry (invalid UTF-8, control characters), a note
// language that is not a language tag, an activity that is not a simple
// name, a priority outside 0..1000; ErrPIDFTooBig for more than
// PIDFMaxTuples tuples.
func (d PIDF) Marshal() ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	// Canonical escaping writes CR, TAB and LF in attributes and CR in text as
	// character references, so that they survive a reparse.
	doc.WriteSettings = etree.WriteSettings{CanonicalText: true, CanonicalAttrVal: true}
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	root := doc.CreateElement("presence")
	root.CreateAttr("xmlns", NSPIDF)
	needRPID := len(d.Activities) > 0
	for _, t := range d.Tuples {
		needRPID = needRPID || len(t.Activities) > 0
	}
	if len(d.Activities) > 0 {
		root.CreateAttr("xmlns:dm", NSPIDFDataModel)
	}
	if needRPID {
		root.CreateAttr("xmlns:rpid", NSRPID)
	}
	root.CreateAttr("entity", strings.TrimSpace(d.Entity))
	ids := make(map[string]bool, len(d.Tuples))
	for _, t := range d.Tuples {
		id := strings.TrimSpace(t.ID)
		ids[id] = true
		te := root.CreateElement("tuple")
		te.CreateAttr("id", id)
		st := te.CreateElement("status")
		if b := strings.TrimSpace(t.Basic); b != "" {
			st.CreateElement("basic").SetText(b)
		}
		if s := strings.TrimSpace(t.Show); s != "" {
			se := st.CreateElement("show")
			se.CreateAttr("xmlns", NSJabberClient)
			se.SetText(s)
		}
		if len(t.Activities) > 0 {
			writeActivities(st, t.Activities)
		}
		if c := strings.TrimSpace(t.Contact); c != "" || t.HasQ {
			ce := te.CreateElement("contact")
			if t.HasQ {
				ce.CreateAttr("priority", formatQ(t.Q))
			}
			ce.SetText(c)
		}
		writeNotes(te, "note", t.Notes)
		if ts := strings.TrimSpace(t.Timestamp); ts != "" {
			te.CreateElement("timestamp").SetText(ts)
		}
	}
	writeNotes(root, "note", d.Notes)
	if len(d.Activities) > 0 {
		pe := root.CreateElement("dm:person")
		pe.CreateAttr("id", uniqueID("person", ids))
		writeActivities(pe, d.Activities)
	}
	return doc.WriteToBytes()
}

func (d PIDF) check() error {
	if strings.TrimSpace(d.Entity) == "" {
		return fmt.Errorf("%w: no entity", ErrBadPIDF)
	}
	if len(d.Tuples) > PIDFMaxTuples {
		return fmt.Errorf("%w: more than %d tuples", ErrPIDFTooBig, PIDFMaxTuples)
	}
	if err := checkNotes(d.Notes); err != nil {
		return err
	}
	if err := checkActivities(d.Activities); err != nil {
		return err
	}
	texts := []string{d.Entity}
	ids := make(map[string]bool, len(d.Tuples))
	for _, t := range d.Tuples {
		id := strings.TrimSpace(t.ID)
		switch {
		case id == "":
			return fmt.Errorf("%w: tuple without id", ErrBadPIDF)
		case ids[id]:
			return fmt.Errorf("%w: duplicate tuple id %q", ErrBadPIDF, id)
		case t.HasQ && (t.Q < 0 || t.Q > 1000):
			return fmt.Errorf("%w: priority %d outside 0..1000", ErrBadPIDF, t.Q)
		}
		ids[id] = true
		if err := checkNotes(t.Notes); err != nil {
			return err
		}
		if err := checkActivities(t.Activities); err != nil {
			return err
		}
		texts = append(texts, t.ID, t.Basic, t.Show, t.Contact, t.Timestamp)
	}
	for _, s := range texts {
		if !validXMLText(s) {
			return fmt.Errorf("%w: text XML cannot carry: %q", ErrBadPIDF, s)
		}
	}
	return nil
}

func checkNotes(notes []Note) error {
	for _, n := range notes {
		if !validXMLText(n.Text) {
			return fmt.Errorf("%w: note XML cannot carry: %q", ErrBadPIDF, n.Text)
		}
		if n.Lang != "" && !validLangTag(n.Lang) {
			return fmt.Errorf("%w: note language %q", ErrBadPIDF, n.Lang)
		}
	}
	return nil
}

func checkActivities(acts []string) error {
	for _, a := range acts {
		if a == "note" || !validActivity(a) {
			return fmt.Errorf("%w: activity %q", ErrBadPIDF, a)
		}
	}
	return nil
}

func writeActivities(parent *etree.Element, acts []string) {
	ae := parent.CreateElement("rpid:activities")
	for _, a := range acts {
		ae.CreateElement("rpid:" + a)
	}
}

func writeNotes(parent *etree.Element, tag string, notes []Note) {
	for _, n := range notes {
		ne := parent.CreateElement(tag)
		if n.Lang != "" {
			ne.CreateAttr("xml:lang", n.Lang)
		}
		ne.SetText(n.Text)
	}
}

// uniqueID returns base, or base-2, base-3... if that is already an id.
func uniqueID(base string, ids map[string]bool) string {
	id := base
	for n := 2; ids[id]; n++ {
		id = fmt.Sprintf("%s-%d", base, n)
	}
	return id
}
