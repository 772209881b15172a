package component

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// The stanza reader. Every stanza from the XMPP server is read here, so it
// is on the hot path of XMPP->SIP: encoding/xml's Decoder costs about 10 us
// and 60 allocations per message stanza, this reader about a fifth of that.
// It reads what XMPP streams carry (RFC 6120 s11: no DTD, no external
// entities) and refuses the rest:
//
//   - elements with namespaces resolved to URIs (Element.Space), prefixed
//     and default declarations in scope, xml: bound to its URI, an unbound
//     prefix kept as it is (as encoding/xml does);
//   - attributes: xmlns declarations are dropped (they live in Space),
//     prefixed attributes get their namespace URI;
//   - character data: the five predefined entities and character
//     references decoded, CDATA sections kept, line ends normalised (XML
//     1.0 s2.11), invalid UTF-8 and characters outside XML's Char
//     production refused;
//   - comments, processing instructions and directives (a DOCTYPE too)
//     skipped, never processed, as encoding/xml does;
//   - nesting bounded by maxDepth;
//   - names must be qualified names (QName): encoding/xml reads "p:0" as
//     the name "0", which cannot be written back.
//
// element_test.go's FuzzElementReader holds it to encoding/xml (see
// xmlref_test.go): same elements for every input encoding/xml accepts.

// maxStanzaBytes bounds one top-level element held while it is incomplete.
const maxStanzaBytes = 16 << 20

var (
	errNeedMore     = errors.New("component: xml: need more data")
	errStanzaTooBig = errors.New("component: xml: stanza larger than 16 MiB")
)

type xmlSyntaxError struct {
	msg   string
	off   int
	qname bool // a name that is not a QName (see name)
}

func (e *xmlSyntaxError) Error() string {
	return fmt.Sprintf("component: xml syntax error at byte %d of the stanza: %s", e.off, e.msg)
}

// nsBinding binds a prefix ("" for the default namespace) to a URI.
type nsBinding struct{ prefix, uri string }

// streamScope is what a component stream's header declares (XEP-0114 s3).
var streamScope = []nsBinding{{"", nsComponent}, {"stream", nsStream}}

// elementReader reads the top-level elements of an XML stream whose
// header has been read: the stanzas.
type elementReader struct {
	src   io.Reader
	buf   []byte
	r, w  int // unread bytes are buf[r:w]
	scope []nsBinding
}

func newElementReader(src io.Reader, scope []nsBinding) *elementReader {
	return &elementReader{src: src, buf: make([]byte, 64<<10), scope: scope}
}

// next returns the next top-level element. At the end tag of the stream
// root it returns errStreamClosed.
func (x *elementReader) next() (*Element, error) {
	for {
		p := xmlParser{d: x.buf[x.r:x.w], ns: x.scope[:len(x.scope):len(x.scope)]}
		e, n, err := p.top()
		x.r += n
		if err == nil {
			return e, nil
		}
		if err != errNeedMore {
			return nil, err
		}
		if err := x.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads more bytes, keeping the unread ones.
func (x *elementReader) fill() error {
	if x.r > 0 {
		x.w = copy(x.buf, x.buf[x.r:x.w])
		x.r = 0
	}
	if x.w == len(x.buf) {
		if len(x.buf) >= maxStanzaBytes {
			return errStanzaTooBig
		}
		b := make([]byte, 2*len(x.buf))
		copy(b, x.buf[:x.w])
		x.buf = b
	}
	n, err := x.src.Read(x.buf[x.w:])
	x.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		return io.ErrNoProgress
	}
	if errors.Is(err, io.EOF) && x.w > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

// xmlParser parses one top-level element from d; errNeedMore means d ends
// before it does.
type xmlParser struct {
	d   []byte
	i   int
	ns  []nsBinding
	tmp []byte // scratch for decoded character data
}

func (p *xmlParser) fail(msg string) error { return &xmlSyntaxError{msg: msg, off: p.i} }

// top skips what may come between stanzas (white space, comments,
// processing instructions, directives) and parses the next element. n is
// how many bytes of d were consumed, also when more data is needed (what
// was skipped).
func (p *xmlParser) top() (e *Element, n int, err error) {
	for {
		for p.i < len(p.d) && p.d[p.i] != '<' {
			p.i++ // character data between stanzas (white-space keepalives) is ignored
		}
		start := p.i
		if p.i+1 >= len(p.d) {
			return nil, start, errNeedMore
		}
		switch p.d[p.i+1] {
		case '?', '!':
			if err := p.skipMisc(); err != nil {
				return nil, start, err
			}
		case '/':
			p.i += 2
			name, err := p.name()
			if err != nil {
				return nil, start, err
			}
			p.skipSpace()
			if p.i >= len(p.d) {
				return nil, start, errNeedMore
			}
			if p.d[p.i] != '>' {
				return nil, start, p.fail("invalid end tag")
			}
			p.i++
			space, local := p.resolve(name, true)
			if space == nsStream && local == "stream" {
				return nil, p.i, errStreamClosed
			}
			return nil, p.i, p.fail("unexpected end element </" + string(name) + ">")
		default:
			e, err := p.element(0)
			if err != nil {
				return nil, start, err
			}
			return e, p.i, nil
		}
	}
}

// has reports whether d continues with s at p.i.
func (p *xmlParser) has(s string) bool {
	if len(p.d)-p.i < len(s) {
		return false
	}
	return string(p.d[p.i:p.i+len(s)]) == s
}

// skipMisc skips what starts with "<?" or "<!" at p.i and is not a CDATA
// section: a processing instruction, a comment or a directive (a DOCTYPE
// is skipped, never processed, as encoding/xml does).
func (p *xmlParser) skipMisc() error {
	if p.d[p.i+1] == '?' {
		for j := p.i + 2; j+1 < len(p.d); j++ {
			if p.d[j] == '?' && p.d[j+1] == '>' {
				p.i = j + 2
				return nil
			}
		}
		return errNeedMore
	}
	if p.has("<!--") {
		// "--" may only end a comment (encoding/xml refuses it elsewhere).
		for j := p.i + 4; j+1 < len(p.d); j++ {
			if p.d[j] == '-' && p.d[j+1] == '-' {
				if j+2 >= len(p.d) {
					return errNeedMore
				}
				if p.d[j+2] != '>' {
					p.i = j
					return p.fail(`invalid sequence "--" not allowed in comments`)
				}
				p.i = j + 3
				return nil
			}
		}
		return errNeedMore
	}
	if p.i+3 >= len(p.d) {
		return errNeedMore
	}
	switch p.d[p.i+2] {
	case '-':
		return p.fail("invalid sequence <!- not part of <!--")
	case '[':
		return p.fail("invalid <![ sequence")
	}
	// A directive: up to the '>' that closes it; quoted and nested angle
	// brackets and embedded comments do not close it. As in encoding/xml,
	// the character after "<!" is taken as it is.
	depth := 0
	var quote byte
	for j := p.i + 3; j < len(p.d); j++ {
		c := p.d[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			if depth == 0 {
				p.i = j + 1
				return nil
			}
			depth--
		case c == '<':
			if j+3 >= len(p.d) {
				return errNeedMore
			}
			if string(p.d[j:j+4]) != "<!--" {
				depth++
				continue
			}
			k := j + 4
			for ; k+2 < len(p.d) && string(p.d[k:k+3]) != "-->"; k++ {
			}
			if k+2 >= len(p.d) {
				return errNeedMore
			}
			j = k + 2
		}
	}
	return errNeedMore
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *xmlParser) skipSpace() {
	for p.i < len(p.d) && isSpace(p.d[p.i]) {
		p.i++
	}
}

// name reads a (possibly prefixed) XML name.
func (p *xmlParser) name() ([]byte, error) {
	start := p.i
	colons, ascii := 0, true
	for p.i < len(p.d) {
		c := p.d[p.i]
		if isSpace(c) || c == '/' || c == '>' || c == '=' {
			break
		}
		if c == '<' || c == '&' || c == '"' || c == '\'' {
			return nil, p.fail("invalid character in a name")
		}
		if c >= utf8.RuneSelf {
			ascii = false
		} else if c == ':' {
			colons++ // a byte of a multi-byte UTF-8 sequence is never ':'
		}
		p.i++
	}
	if p.i == len(p.d) {
		return nil, errNeedMore
	}
	if p.i == start {
		return nil, p.fail("expected a name")
	}
	n := p.d[start:p.i]
	if colons > 1 || ascii && !validASCIIName(n) || !ascii && !validName(n) {
		return nil, p.fail("invalid name " + string(n))
	}
	if colons == 0 {
		return n, nil
	}
	if j := bytes.IndexByte(n, ':'); j > 0 && j < len(n)-1 {
		if r, _ := utf8.DecodeRune(n[j+1:]); !isNameStart(r) {
			// Stricter than encoding/xml, which reads "p:0" as a name 0 in
			// namespace p that nothing can write back: XMPP streams are
			// namespace-well-formed (RFC 6120 s11.2, Namespaces in XML s3).
			return nil, &xmlSyntaxError{msg: "not a qualified name: " + string(n), off: start, qname: true}
		}
	}
	return n, nil
}

// asciiName classifies ASCII bytes for validASCIIName: nameStartByte for
// the bytes a name may start with, nameCharByte for those it may go on with
// (isNameStart, isNameChar).
var asciiName = func() (t [utf8.RuneSelf]uint8) {
	for c := range t {
		if isNameChar(rune(c)) {
			t[c] |= nameCharByte
		}
		if isNameStart(rune(c)) {
			t[c] |= nameStartByte
		}
	}
	return t
}()

const (
	nameCharByte = 1 << iota
	nameStartByte
)

// validASCIIName is validName for a name of ASCII bytes only: most names,
// checked without decoding runes.
func validASCIIName(n []byte) bool {
	if len(n) == 0 || asciiName[n[0]]&nameStartByte == 0 {
		return false
	}
	for _, c := range n[1:] {
		if asciiName[c]&nameCharByte == 0 {
			return false
		}
	}
	return true
}

// validName checks the XML Name production (s2.3), as encoding/xml does.
func validName(n []byte) bool {
	first := true
	for len(n) > 0 {
		r, size := utf8.DecodeRune(n)
		if r == utf8.RuneError && size <= 1 {
			return false
		}
		if first && !isNameStart(r) || !first && !isNameChar(r) {
			return false
		}
		first = false
		n = n[size:]
	}
	return true
}

func isNameStart(r rune) bool {
	switch {
	case r == ':' || r == '_' || 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z':
		return true
	case r < 0x80:
		return false
	}
	return xmlNameRune(r, true)
}

func isNameChar(r rune) bool {
	switch {
	case r == ':' || r == '_' || r == '-' || r == '.' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z':
		return true
	case r < 0x80:
		return false
	}
	return xmlNameRune(r, false)
}

// xmlNameRune is XML 1.0 (fifth edition) s2.3 beyond ASCII.
func xmlNameRune(r rune, start bool) bool {
	switch {
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	case start:
		return false
	}
	return r == 0xB7 || r >= 0x300 && r <= 0x36F || r >= 0x203F && r <= 0x2040
}

// resolve splits a qualified name and resolves its prefix (s6.2 of
// Namespaces in XML): an element without a prefix is in the default
// namespace, an attribute without one in none.
func (p *xmlParser) resolve(qname []byte, isElement bool) (space, local string) {
	prefix, loc := []byte(nil), qname
	for j := 1; j < len(qname)-1; j++ { // encoding/xml: a leading or trailing colon is part of the name
		if qname[j] == ':' {
			prefix, loc = qname[:j], qname[j+1:]
			break
		}
	}
	local = internName(loc)
	if prefix == nil {
		if !isElement {
			return "", local
		}
		return p.lookup(""), local
	}
	if string(prefix) == "xml" {
		return nsXML, local
	}
	if string(prefix) == "xmlns" {
		return "xmlns", local
	}
	for k := len(p.ns) - 1; k >= 0; k-- {
		if p.ns[k].prefix == string(prefix) {
			return p.ns[k].uri, local
		}
	}
	return string(prefix), local // unbound: kept, as encoding/xml does
}

func (p *xmlParser) lookup(prefix string) string {
	for k := len(p.ns) - 1; k >= 0; k-- {
		if p.ns[k].prefix == prefix {
			return p.ns[k].uri
		}
	}
	return ""
}

// rawAttr is an attribute as written, before namespace resolution.
type rawAttr struct {
	name  []byte
	value string
}

// element parses the element whose start tag begins at p.i.
func (p *xmlParser) element(depth int) (*Element, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	p.i++ // '<'
	qname, err := p.name()
	if err != nil {
		return nil, err
	}
	var attrs [8]rawAttr
	raw := attrs[:0]
	mark := len(p.ns)
	empty := false
	for {
		p.skipSpace()
		if p.i >= len(p.d) {
			return nil, errNeedMore
		}
		c := p.d[p.i]
		if c == '>' {
			p.i++
			break
		}
		if c == '/' {
			if p.i+1 >= len(p.d) {
				return nil, errNeedMore
			}
			if p.d[p.i+1] != '>' {
				return nil, p.fail("expected /> in an element")
			}
			p.i += 2
			empty = true
			break
		}
		an, err := p.name()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.i >= len(p.d) {
			return nil, errNeedMore
		}
		if p.d[p.i] != '=' {
			return nil, p.fail("attribute " + string(an) + " without a value")
		}
		p.i++
		p.skipSpace()
		v, err := p.attrValue()
		if err != nil {
			return nil, err
		}
		switch {
		case string(an) == "xmlns":
			p.ns = append(p.ns, nsBinding{"", internNS(v)})
		case len(an) > 6 && string(an[:6]) == "xmlns:":
			p.ns = append(p.ns, nsBinding{string(an[6:]), internNS(v)})
		}
		raw = append(raw, rawAttr{an, v})
	}
	e := &Element{}
	e.Space, e.Local = p.resolve(qname, true)
	for _, a := range raw {
		space, local := p.resolve(a.name, false)
		if space == "xmlns" || space == "" && local == "xmlns" {
			continue // declarations are carried by Space
		}
		if e.Attr == nil {
			e.Attr = make([]xml.Attr, 0, len(raw))
		}
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Space: space, Local: local}, Value: a.value})
	}
	if empty {
		p.ns = p.ns[:mark]
		return e, nil
	}
	// Content: character data, children, CDATA, comments, PIs; then the
	// end tag, which must match.
	var text []byte
	textStart, textEnd := -1, -1 // a single undecoded run, the common case
	flush := func() {
		if textStart >= 0 {
			text = append(text, p.d[textStart:textEnd]...)
			textStart = -1
		}
	}
	for {
		if p.i >= len(p.d) {
			return nil, errNeedMore
		}
		c := p.d[p.i]
		if c != '<' {
			s := p.i
			plain, err := p.charData()
			if err != nil {
				return nil, err
			}
			switch {
			case plain && textStart < 0 && text == nil:
				textStart, textEnd = s, p.i
			case plain:
				flush()
				text = append(text, p.d[s:p.i]...)
			default:
				flush()
				text = append(text, p.tmp...)
			}
			continue
		}
		if p.i+1 >= len(p.d) {
			return nil, errNeedMore
		}
		switch p.d[p.i+1] {
		case '/':
			p.i += 2
			n, err := p.name()
			if err != nil {
				return nil, err
			}
			if string(n) != string(qname) {
				return nil, p.fail("element <" + string(qname) + "> closed by </" + string(n) + ">")
			}
			p.skipSpace()
			if p.i >= len(p.d) {
				return nil, errNeedMore
			}
			if p.d[p.i] != '>' {
				return nil, p.fail("invalid end tag")
			}
			p.i++
			switch {
			case text != nil:
				flush()
				e.Text = string(text)
			case textStart >= 0:
				e.Text = string(p.d[textStart:textEnd])
			}
			p.ns = p.ns[:mark]
			return e, nil
		case '!':
			if !p.has("<![CDATA[") {
				if len(p.d)-p.i < len("<![CDATA[") && string(p.d[p.i:]) == "<![CDATA["[:len(p.d)-p.i] {
					return nil, errNeedMore
				}
				if err := p.skipMisc(); err != nil {
					return nil, err
				}
				continue
			}
			p.i += len("<![CDATA[")
			s := p.i
			for {
				if p.i+3 > len(p.d) {
					return nil, errNeedMore
				}
				if p.d[p.i] == ']' && p.d[p.i+1] == ']' && p.d[p.i+2] == '>' {
					break
				}
				p.i++
			}
			data := p.d[s:p.i]
			p.i += 3
			if err := p.checkChars(data); err != nil {
				return nil, err
			}
			flush()
			text = appendNormalised(text, data)
			if text == nil {
				text = []byte{}
			}
		case '?':
			if err := p.skipMisc(); err != nil {
				return nil, err
			}
		default:
			child, err := p.element(depth + 1)
			if err != nil {
				return nil, err
			}
			e.Children = append(e.Children, child)
		}
	}
}

// attrValue reads a quoted attribute value and decodes it.
func (p *xmlParser) attrValue() (string, error) {
	if p.i >= len(p.d) {
		return "", errNeedMore
	}
	q := p.d[p.i]
	if q != '"' && q != '\'' {
		return "", p.fail("unquoted attribute value")
	}
	p.i++
	s := p.i
	plain := true
	for {
		if p.i >= len(p.d) {
			return "", errNeedMore
		}
		c := p.d[p.i]
		if c == q {
			break
		}
		switch {
		case c == '<':
			return "", p.fail("unescaped < inside quoted string")
		case c == '&' || c == '\r' || c >= 0x80 || c < 0x20:
			plain = false
		}
		p.i++
	}
	v := p.d[s:p.i]
	p.i++
	if plain {
		return internValue(v), nil
	}
	out, err := p.decode(v, s)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// charData reads character data up to the next '<'. plain reports that it
// is d[start:p.i] as is; otherwise the decoded text is in p.tmp.
func (p *xmlParser) charData() (plain bool, err error) {
	s := p.i
	plain = true
	for p.i < len(p.d) && p.d[p.i] != '<' {
		c := p.d[p.i]
		switch {
		case c == '&' || c == '\r' || c >= 0x80 || c < 0x20:
			plain = false
		case c == '>' && p.i-s >= 2 && p.d[p.i-1] == ']' && p.d[p.i-2] == ']':
			return false, p.fail("unescaped ]]> not in CDATA section")
		}
		p.i++
	}
	if p.i >= len(p.d) {
		return false, errNeedMore
	}
	if plain {
		return true, nil
	}
	p.tmp, err = p.decode(p.d[s:p.i], s)
	return false, err
}

// decode resolves references, normalises line ends and checks characters.
func (p *xmlParser) decode(b []byte, off int) ([]byte, error) {
	out := p.tmp[:0]
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '&':
			j := i + 1
			for j < len(b) && b[j] != ';' {
				j++
			}
			if j == len(b) {
				return nil, &xmlSyntaxError{msg: "unterminated entity reference", off: off + i}
			}
			ref := b[i+1 : j]
			switch string(ref) {
			case "lt":
				out = append(out, '<')
			case "gt":
				out = append(out, '>')
			case "amp":
				out = append(out, '&')
			case "apos":
				out = append(out, '\'')
			case "quot":
				out = append(out, '"')
			default:
				r, ok := charRef(ref)
				if !ok {
					return nil, &xmlSyntaxError{msg: "invalid character entity &" + string(ref) + ";", off: off + i}
				}
				out = utf8.AppendRune(out, r)
			}
			i = j + 1
		case c == '\r':
			out = append(out, '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			i++
		case c < 0x80:
			if c < 0x20 && c != '\t' && c != '\n' {
				return nil, &xmlSyntaxError{msg: fmt.Sprintf("illegal character code U+%04X", c), off: off + i}
			}
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, &xmlSyntaxError{msg: "invalid UTF-8", off: off + i}
			}
			if !isXMLChar(r) {
				return nil, &xmlSyntaxError{msg: fmt.Sprintf("illegal character code %U", r), off: off + i}
			}
			out = append(out, b[i:i+size]...)
			i += size
		}
	}
	return out, nil
}

// charRef decodes the body of &#N; or &#xH;. As encoding/xml does, a
// reference to a surrogate becomes U+FFFD.
func charRef(ref []byte) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	base := int64(10)
	digits := ref[1:]
	if digits[0] == 'x' {
		base, digits = 16, digits[1:]
	}
	if len(digits) == 0 {
		return 0, false
	}
	var v int64
	for _, d := range digits {
		var x int64
		switch {
		case '0' <= d && d <= '9':
			x = int64(d - '0')
		case base == 16 && 'a' <= d && d <= 'f':
			x = int64(d-'a') + 10
		case base == 16 && 'A' <= d && d <= 'F':
			x = int64(d-'A') + 10
		default:
			return 0, false
		}
		if v = v*base + x; v > utf8.MaxRune {
			return 0, false
		}
	}
	r := rune(v)
	if 0xD800 <= r && r <= 0xDFFF {
		r = utf8.RuneError
	}
	return r, isXMLChar(r)
}

// checkChars validates raw character data (CDATA).
func (p *xmlParser) checkChars(b []byte) error {
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return p.fail(fmt.Sprintf("illegal character code U+%04X", c))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 || !isXMLChar(r) {
			return p.fail("invalid character in CDATA")
		}
		i += size
	}
	return nil
}

// appendNormalised appends b with \r\n and \r turned into \n.
func appendNormalised(out, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		if b[i] == '\r' {
			out = append(out, '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// isXMLChar is XML 1.0's Char production (s2.2).
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// internName returns the common stanza names without allocating.
func internName(b []byte) string {
	switch string(b) {
	case "message":
		return "message"
	case "presence":
		return "presence"
	case "iq":
		return "iq"
	case "body":
		return "body"
	case "subject":
		return "subject"
	case "thread":
		return "thread"
	case "from":
		return "from"
	case "to":
		return "to"
	case "id":
		return "id"
	case "type":
		return "type"
	case "lang":
		return "lang"
	case "xmlns":
		return "xmlns"
	case "error":
		return "error"
	case "query":
		return "query"
	case "html":
		return "html"
	case "active":
		return "active"
	case "composing":
		return "composing"
	case "request":
		return "request"
	case "received":
		return "received"
	case "ping":
		return "ping"
	case "stream":
		return "stream"
	}
	return string(b)
}

// internNS returns the common namespace URIs without allocating.
func internNS(s string) string {
	switch s {
	case nsComponent:
		return nsComponent
	case nsClient:
		return nsClient
	case nsStanzas:
		return nsStanzas
	case nsXHTMLIM:
		return nsXHTMLIM
	case "http://www.w3.org/1999/xhtml":
		return "http://www.w3.org/1999/xhtml"
	}
	return s
}

// internValue returns common attribute values without allocating.
func internValue(b []byte) string {
	switch string(b) {
	case "chat":
		return "chat"
	case "normal":
		return "normal"
	case "headline":
		return "headline"
	case "groupchat":
		return "groupchat"
	case "error":
		return "error"
	case "get":
		return "get"
	case "set":
		return "set"
	case "result":
		return "result"
	case "en":
		return "en"
	}
	return string(b)
}
