package mapping

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// CPIM codec (RFC 3862). A message/cpim body is two header blocks and a
// body: the CPIM message headers (strict syntax, case-sensitive names,
// namespaced by NS declarations), a blank line, the MIME headers of the
// encapsulated part (RFC 2045 syntax), a blank line, and the part's body.
//
// Decisions (CHECKLIST CHAT-30):
//   - Lines end in CRLF; a bare LF is accepted on input as a line end (peers
//     that write LF-only exist). Marshal writes CRLF.
//   - A header value is kept as written (CPIMHeader.Value, escapes not
//     decoded), so a parsed message marshals back to the same header lines
//     and a gateway does not edit or reorder CPIM headers (CHAT-30f). Text
//     decodes the escapes of RFC 3862 2.3.
//   - "Name: value" wants exactly one space after the colon (CHAT-30a). On
//     input a missing space is tolerated and further spaces belong to the
//     value; Marshal always writes one.
//   - The core headers (From, To, cc, DateTime, Subject, NS, Require in the
//     urn:ietf:params:cpim-headers: namespace) are checked on input and on
//     output: From, To and cc are `[Formal-name] <URI>` (a bare URI is
//     tolerated on input); parameters after `>` (the RFC 7702 `<uri>;gr=x`
//     defect, CHECKLIST section 9) are refused. From, DateTime and Require
//     occur at most once. DateTime is an RFC 3339 date-time.
//   - Whether From and To are present is the application's rule (RFC 3862 6,
//     CHAT-30c): see CheckAddressed.

// Media type, header namespace and limits of the CPIM codec.
const (
	// CPIMContentType is the media type of a CPIM message (RFC 3862 2).
	CPIMContentType = "message/cpim"
	// CPIMHeadersNS is the namespace of the core CPIM headers and of every
	// unprefixed header (RFC 3862 3.4; IANA "CPIM Headers" URN prefix).
	CPIMHeadersNS = "urn:ietf:params:cpim-headers:"
	// IMDNNamespace is the namespace of the RFC 5438 headers (CHAT-44a),
	// declared as `NS: imdn <urn:ietf:params:imdn>`.
	IMDNNamespace = "urn:ietf:params:imdn"

	// CPIMMaxHeaders bounds each header block (CPIM and MIME) of an
	// untrusted message; more gives ErrCPIMTooBig.
	CPIMMaxHeaders = 64
	// CPIMMaxLine bounds one header line (without its line end), and an
	// unfolded MIME header; longer gives ErrCPIMTooBig.
	CPIMMaxLine = 4096
)

// CPIMParam is one header parameter (RFC 3862 3.1, `;name=value`). Value is
// as written: a Token, a Number, or a quoted String with its quotes and
// escapes (CPIMHeader.Param decodes it).
type CPIMParam struct{ Name, Value string }

// CPIMHeader is one CPIM message header (RFC 3862 3.1):
// `[Prefix.]Name:[;params] Value`.
//
// NS is the namespace URI the prefix stands for (RFC 3862 3.4): CPIMHeadersNS
// for an unprefixed header unless an unprefixed NS declaration changed the
// default, the declared URI for a prefixed one, and "" for a prefix no
// earlier NS header declares. ParseCPIM and the Add methods fill it in;
// Marshal writes Prefix and ignores NS. Value is the header value as written
// on the wire (escapes not decoded).
type CPIMHeader struct {
	Prefix string
	NS     string
	Name   string
	Params []CPIMParam
	Value  string
}

// MIMEHeader is one header of the encapsulated MIME part (RFC 2045). Name
// compares case-insensitively; Value is unfolded and trimmed.
type MIMEHeader struct{ Name, Value string }

// CPIMMessage is a message/cpim body (RFC 3862 2): the message headers in
// their order, the MIME headers of the encapsulated part and its body.
type CPIMMessage struct {
	Headers []CPIMHeader
	MIME    []MIMEHeader
	Body    []byte
}

// CPIMAddress is the value of a From, To or cc header (RFC 3862 4.1, 4.2,
// 4.4): an optional display name (Formal-name, unquoted) and a URI.
type CPIMAddress struct{ Name, URI string }

// CPIMSubject is one Subject header (RFC 3862 4.5): the decoded text and
// its lang parameter ("" when absent).
type CPIMSubject struct{ Lang, Text string }

// CPIMNamespace is one NS declaration (RFC 3862 4.6). Prefix is "" for a
// declaration of the default namespace.
type CPIMNamespace struct{ Prefix, URI string }

// CPIMName is a header name resolved to its namespace, as listed by Require
// (RFC 3862 4.7). NS is "" when the prefix is not declared.
type CPIMName struct{ NS, Name string }

// ParseCPIM reads a message/cpim body (RFC 3862 2, 3; CHAT-30). Errors wrap
// ErrBadCPIM (syntax, including a broken core header) or ErrCPIMTooBig (over
// CPIMMaxHeaders headers in a block or a line over CPIMMaxLine). Body
// aliases b. See the decisions at the top of this file for what is
// tolerated.
func ParseCPIM(b []byte) (CPIMMessage, error) {
	var m CPIMMessage
	pos := 0
	for {
		line, next, err := cpimLine(b, pos, "message headers")
		if err != nil {
			return CPIMMessage{}, err
		}
		pos = next
		if len(line) == 0 {
			break
		}
		if len(m.Headers) == CPIMMaxHeaders {
			return CPIMMessage{}, fmt.Errorf("%w: more than %d message headers", ErrCPIMTooBig, CPIMMaxHeaders)
		}
		if m.Headers == nil {
			m.Headers = make([]CPIMHeader, 0, 8)
		}
		h, err := parseCPIMHeaderLine(line)
		if err != nil {
			return CPIMMessage{}, err
		}
		if cpimLineLen(h) > CPIMMaxLine {
			return CPIMMessage{}, fmt.Errorf("%w: header line over %d bytes", ErrCPIMTooBig, CPIMMaxLine)
		}
		m.Headers = append(m.Headers, h)
	}
	if len(m.Headers) == 0 {
		return CPIMMessage{}, fmt.Errorf("%w: no message headers", ErrBadCPIM)
	}
	if err := checkCPIMHeaders(m.Headers, true); err != nil {
		return CPIMMessage{}, err
	}
	for {
		line, next, err := cpimLine(b, pos, "MIME headers")
		if err != nil {
			return CPIMMessage{}, err
		}
		pos = next
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// A folded continuation (RFC 5322 2.2.3): unfold by dropping
			// the line end.
			if len(m.MIME) == 0 {
				return CPIMMessage{}, fmt.Errorf("%w: MIME header block starts with a continuation line", ErrBadCPIM)
			}
			last := &m.MIME[len(m.MIME)-1]
			if len(last.Name)+2+len(last.Value)+len(line) > CPIMMaxLine {
				return CPIMMessage{}, fmt.Errorf("%w: MIME header %s over %d bytes", ErrCPIMTooBig, last.Name, CPIMMaxLine)
			}
			if !validMIMEValue(line) {
				return CPIMMessage{}, fmt.Errorf("%w: control character in MIME header %s", ErrBadCPIM, last.Name)
			}
			last.Value += string(line)
			continue
		}
		if len(m.MIME) == CPIMMaxHeaders {
			return CPIMMessage{}, fmt.Errorf("%w: more than %d MIME headers", ErrCPIMTooBig, CPIMMaxHeaders)
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 || !validFieldName(line[:i]) {
			return CPIMMessage{}, fmt.Errorf("%w: bad MIME header line", ErrBadCPIM)
		}
		if !validMIMEValue(line[i+1:]) {
			return CPIMMessage{}, fmt.Errorf("%w: control character in MIME header %s", ErrBadCPIM, line[:i])
		}
		if m.MIME == nil {
			m.MIME = make([]MIMEHeader, 0, 4)
		}
		m.MIME = append(m.MIME, MIMEHeader{Name: string(line[:i]), Value: string(line[i+1:])})
	}
	for i := range m.MIME {
		m.MIME[i].Value = strings.Trim(m.MIME[i].Value, " \t")
	}
	m.Body = b[pos:]
	return m, nil
}

// cpimLine returns the line at pos without its CRLF or LF and the position
// after it.
func cpimLine(b []byte, pos int, block string) (line []byte, next int, err error) {
	i := bytes.IndexByte(b[pos:], '\n')
	if i < 0 {
		return nil, len(b), fmt.Errorf("%w: no blank line after the %s", ErrBadCPIM, block)
	}
	line = b[pos : pos+i]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > CPIMMaxLine {
		return nil, 0, fmt.Errorf("%w: line over %d bytes in the %s", ErrCPIMTooBig, CPIMMaxLine, block)
	}
	return line, pos + i + 1, nil
}

// parseCPIMHeaderLine splits `[Prefix.]Name:*(;param) SP value` (RFC 3862
// 3.1, 3.6).
func parseCPIMHeaderLine(line []byte) (CPIMHeader, error) {
	var h CPIMHeader
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return h, fmt.Errorf("%w: header line without a name", ErrBadCPIM)
	}
	name := line[:colon]
	if dot := bytes.IndexByte(name, '.'); dot >= 0 {
		h.Prefix, name = string(name[:dot]), name[dot+1:]
		if !validCPIMName(h.Prefix) {
			return h, fmt.Errorf("%w: bad header name prefix %q", ErrBadCPIM, h.Prefix)
		}
	}
	if !validCPIMName(string(name)) {
		return h, fmt.Errorf("%w: bad header name %q", ErrBadCPIM, name)
	}
	h.Name = string(name)
	rest := line[colon+1:]
	for len(rest) > 0 && rest[0] == ';' {
		var p CPIMParam
		var err error
		p, rest, err = parseCPIMParam(rest[1:])
		if err != nil {
			return h, fmt.Errorf("%w (header %s)", err, h.Name)
		}
		h.Params = append(h.Params, p)
	}
	switch {
	case len(rest) > 0 && rest[0] == ' ':
		rest = rest[1:]
	case len(rest) > 0 && len(h.Params) > 0:
		return h, fmt.Errorf("%w: no space after the parameters of %s", ErrBadCPIM, h.Name)
	}
	if !validCPIMValue(rest) {
		return h, fmt.Errorf("%w: control character or invalid UTF-8 in %s", ErrBadCPIM, h.Name)
	}
	h.Value = string(rest)
	return h, nil
}

// parseCPIMParam reads `name=value` (after the ';'), the value a Token,
// Number or String (RFC 3862 3.1).
func parseCPIMParam(s []byte) (CPIMParam, []byte, error) {
	var p CPIMParam
	eq := bytes.IndexByte(s, '=')
	if eq <= 0 || !validCPIMName(string(s[:eq])) {
		return p, nil, fmt.Errorf("%w: bad header parameter", ErrBadCPIM)
	}
	p.Name = string(s[:eq])
	s = s[eq+1:]
	n := 0
	if len(s) > 0 && s[0] == '"' {
		n = quotedLen(s)
	} else {
		for n < len(s) && isTokenChar(s[n]) {
			n++
		}
	}
	if n == 0 {
		return p, nil, fmt.Errorf("%w: bad value of header parameter %s", ErrBadCPIM, p.Name)
	}
	p.Value = string(s[:n])
	if !validCPIMValue(s[:n]) {
		return p, nil, fmt.Errorf("%w: bad value of header parameter %s", ErrBadCPIM, p.Name)
	}
	return p, s[n:], nil
}

// quotedLen returns the length of the String (RFC 3862 3.6) at the start of
// s, quotes included, or 0 if it is not one. A backslash escapes the next
// byte, whatever it is (RFC 3862 2.3; unknown escapes are kept, see
// CPIMUnescape).
func quotedLen[T string | []byte](s T) int {
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
		case c < 0x20 || c == 0x7f:
			return 0
		}
	}
	return 0
}

// cpimScope tracks the NS declarations in effect while walking the headers
// (RFC 3862 3.4: a declaration applies to the headers after it).
type cpimScope struct {
	def  string
	decl []CPIMNamespace
}

func newCPIMScope() cpimScope { return cpimScope{def: CPIMHeadersNS} }

// resolve returns the namespace of a header with this prefix. The NS header
// itself is always the core declaration header, whatever the default.
func (s *cpimScope) resolve(prefix, name string) string {
	if prefix == "" {
		if name == "NS" {
			return CPIMHeadersNS
		}
		return s.def
	}
	for i := len(s.decl) - 1; i >= 0; i-- {
		if s.decl[i].Prefix == prefix {
			return s.decl[i].URI
		}
	}
	return ""
}

// step resolves h and applies it if it is an NS declaration. It reports the
// namespace, or an error for a malformed NS.
func (s *cpimScope) step(h *CPIMHeader) (string, error) {
	ns := s.resolve(h.Prefix, h.Name)
	if ns == CPIMHeadersNS && h.Name == "NS" {
		d, err := parseCPIMNS(h.Value)
		if err != nil {
			return ns, err
		}
		if d.Prefix == "" {
			s.def = d.URI
		} else {
			s.decl = append(s.decl, d)
		}
	}
	return ns, nil
}

// checkCPIMHeaders validates the core headers (RFC 3862 4) and, if setNS,
// records each header's namespace.
func checkCPIMHeaders(hs []CPIMHeader, setNS bool) error {
	scope := newCPIMScope()
	var from, dateTime, require bool
	for i := range hs {
		h := &hs[i]
		ns, err := scope.step(h)
		if err != nil {
			return err
		}
		if setNS {
			h.NS = ns
		}
		if ns != CPIMHeadersNS {
			continue
		}
		once := func(seen *bool) error {
			if *seen {
				return fmt.Errorf("%w: more than one %s header", ErrBadCPIM, h.Name)
			}
			*seen = true
			return nil
		}
		switch h.Name {
		case "From":
			if err := once(&from); err != nil {
				return err
			}
			fallthrough
		case "To", "cc":
			if _, err := ParseCPIMAddress(h.Value); err != nil {
				return fmt.Errorf("%w (header %s)", err, h.Name)
			}
		case "DateTime":
			if err := once(&dateTime); err != nil {
				return err
			}
			if !ValidDateTime(h.Value) {
				return fmt.Errorf("%w: DateTime %q is not an RFC 3339 date-time", ErrBadCPIM, h.Value)
			}
		case "Subject":
			for _, p := range h.Params {
				if p.Name == "lang" && !validLangTag(p.Value) {
					return fmt.Errorf("%w: Subject lang %q", ErrBadCPIM, p.Value)
				}
			}
		case "Require":
			if err := once(&require); err != nil {
				return err
			}
			for n := range strings.SplitSeq(h.Value, ",") {
				if p, name := splitCPIMName(strings.Trim(n, " ")); !validCPIMName(name) || p != "" && !validCPIMName(p) {
					return fmt.Errorf("%w: Require lists %q", ErrBadCPIM, n)
				}
			}
		}
	}
	return nil
}

// parseCPIMNS reads an NS value, `[Name-prefix SP] "<" URI ">"` (RFC 3862
// 4.6).
func parseCPIMNS(v string) (CPIMNamespace, error) {
	var d CPIMNamespace
	v = strings.Trim(v, " ")
	lt := strings.IndexByte(v, '<')
	if lt < 0 || v[len(v)-1] != '>' {
		return d, fmt.Errorf("%w: NS %q is not [prefix] <URI>", ErrBadCPIM, v)
	}
	d.Prefix = strings.TrimRight(v[:lt], " ")
	d.URI = v[lt+1 : len(v)-1]
	if d.Prefix != "" && !validCPIMName(d.Prefix) || !validCPIMURI(d.URI) {
		return d, fmt.Errorf("%w: NS %q is not [prefix] <URI>", ErrBadCPIM, v)
	}
	return d, nil
}

// splitCPIMName splits "Prefix.Name" at its first dot.
func splitCPIMName(s string) (prefix, name string) {
	if p, n, ok := strings.Cut(s, "."); ok {
		return p, n
	}
	return "", s
}

// ParseCPIMAddress reads a From, To or cc value (RFC 3862 4.1):
// `[Formal-name] <URI>`, the name a run of tokens or a quoted String with
// escapes. Tolerated: an unquoted name with characters outside Token (kept
// as written), and a bare URI with no name and no brackets. Anything after
// `>` is refused (CHECKLIST section 9: RFC 7702's `<uri>;gr=x`). Errors wrap
// ErrBadCPIM.
func ParseCPIMAddress(v string) (CPIMAddress, error) {
	var a CPIMAddress
	s := strings.Trim(v, " ")
	bad := func(why string) (CPIMAddress, error) {
		return CPIMAddress{}, fmt.Errorf("%w: address %q: %s", ErrBadCPIM, v, why)
	}
	if s == "" {
		return bad("empty")
	}
	rest := s
	switch {
	case s[0] == '"':
		n := quotedLen(s)
		if n == 0 {
			return bad("unterminated display name")
		}
		a.Name = CPIMUnescape(s[1 : n-1])
		rest = strings.TrimLeft(s[n:], " ")
	case strings.IndexByte(s, '<') < 0:
		if !validCPIMURI(s) {
			return bad("not a URI")
		}
		a.URI = s
		return a, nil
	default:
		lt := strings.IndexByte(s, '<')
		a.Name = strings.TrimRight(s[:lt], " ")
		if strings.ContainsAny(a.Name, `"<>`) {
			return bad("bad display name")
		}
		rest = s[lt:]
	}
	if len(rest) < 2 || rest[0] != '<' || strings.IndexByte(rest, '>') != len(rest)-1 {
		return bad("not [name] <URI>")
	}
	a.URI = rest[1 : len(rest)-1]
	if !validCPIMURI(a.URI) {
		return bad("bad URI")
	}
	return a, nil
}

// String formats the address as a header value: the name as tokens when it
// is a run of tokens separated by single spaces, else as a quoted String.
func (a CPIMAddress) String() string {
	if a.Name == "" {
		return "<" + a.URI + ">"
	}
	var b strings.Builder
	b.Grow(len(a.Name) + len(a.URI) + 8)
	if tokenRun(a.Name) {
		b.WriteString(a.Name)
	} else {
		b.WriteByte('"')
		writeCPIMEscaped(&b, a.Name, true)
		b.WriteByte('"')
	}
	b.WriteString(" <")
	b.WriteString(a.URI)
	b.WriteByte('>')
	return b.String()
}

// tokenRun reports whether s is 1*(Token SP) without the final SP.
func tokenRun(s string) bool {
	if s == "" || s[0] == ' ' || s[len(s)-1] == ' ' || strings.Contains(s, "  ") || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != ' ' && !isTokenChar(c) {
			return false
		}
	}
	return true
}

// CPIMEscape escapes text for a CPIM header value (RFC 3862 2.3): a
// backslash, CR, LF, TAB and BS become \\ \r \n \t \b, and any other control
// character \uXXXX. Other characters, UTF-8 included, are kept.
func CPIMEscape(s string) string {
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		clean = s[i] >= 0x20 && s[i] != 0x7f && s[i] != '\\'
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	writeCPIMEscaped(&b, s, false)
	return b.String()
}

func writeCPIMEscaped(b *strings.Builder, s string, quote bool) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '"' && quote:
			b.WriteString(`\"`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\b':
			b.WriteString(`\b`)
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
}

// CPIMUnescape decodes the escapes of RFC 3862 2.3 (\\ \" \' \r \n \t \b
// \uXXXX, a UTF-16 surrogate pair as two \u escapes). It is tolerant: a
// backslash that starts no valid escape is kept as a literal backslash, and
// a lone surrogate becomes U+FFFD. The result may hold control characters;
// callers that put it in XML check it.
func CPIMUnescape(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '\\', '"', '\'':
			b.WriteByte(s[i+1])
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'b':
			b.WriteByte('\b')
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				b.WriteByte(c)
				continue
			}
			i += 4
			if r >= 0xd800 && r < 0xdc00 && i+7 < len(s) && s[i+2] == '\\' && s[i+3] == 'u' {
				if lo, ok := hex4(s, i+4); ok && lo >= 0xdc00 && lo < 0xe000 {
					r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
					i += 6
				}
			}
			if r >= 0xd800 && r < 0xe000 {
				r = utf8.RuneError
			}
			b.WriteRune(r)
		default:
			b.WriteByte(c)
			continue
		}
		i++
	}
	return b.String()
}

// hex4 reads four hex digits at s[i:].
func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		if !isHex(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}

// Text returns the header value with its escapes decoded (RFC 3862 2.3).
func (h CPIMHeader) Text() string { return CPIMUnescape(h.Value) }

// Param returns the decoded value of the first parameter called name (names
// are case-sensitive) and whether it is present.
func (h CPIMHeader) Param(name string) (string, bool) {
	for _, p := range h.Params {
		if p.Name == name {
			if len(p.Value) >= 2 && p.Value[0] == '"' {
				return CPIMUnescape(p.Value[1 : len(p.Value)-1]), true
			}
			return p.Value, true
		}
	}
	return "", false
}

// Lookup returns the headers called name in namespace ns, in order (RFC
// 3862 3.4: a header is identified by its namespace URI and name, never by
// its prefix). Use CPIMHeadersNS for the core headers.
func (m CPIMMessage) Lookup(ns, name string) []CPIMHeader {
	var out []CPIMHeader
	scope := newCPIMScope()
	for i := range m.Headers {
		h := m.Headers[i]
		got, err := scope.step(&h)
		if err == nil && got == ns && h.Name == name {
			h.NS = got
			out = append(out, h)
		}
	}
	return out
}

// first returns the first core header called name.
func (m CPIMMessage) first(name string) (CPIMHeader, bool) {
	scope := newCPIMScope()
	for i := range m.Headers {
		h := m.Headers[i]
		if ns, err := scope.step(&h); err == nil && ns == CPIMHeadersNS && h.Name == name {
			return h, true
		}
	}
	return CPIMHeader{}, false
}

// From returns the From header (RFC 3862 4.1), if present and well formed.
// It names the sender as the peer claims it: never trust it over the
// authenticated SIP identity (CPIMFromMatches).
func (m CPIMMessage) From() (CPIMAddress, bool) {
	h, ok := m.first("From")
	if !ok {
		return CPIMAddress{}, false
	}
	a, err := ParseCPIMAddress(h.Value)
	return a, err == nil
}

// To returns the To headers (RFC 3862 4.2) that are well formed.
func (m CPIMMessage) To() []CPIMAddress { return m.addresses("To") }

// Cc returns the cc headers (RFC 3862 4.4) that are well formed.
func (m CPIMMessage) Cc() []CPIMAddress { return m.addresses("cc") }

func (m CPIMMessage) addresses(name string) []CPIMAddress {
	var out []CPIMAddress
	for _, h := range m.Lookup(CPIMHeadersNS, name) {
		if a, err := ParseCPIMAddress(h.Value); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// DateTime returns the DateTime value (RFC 3862 4.3, an RFC 3339
// date-time), if present. mapping reads no clock: comparing it with the
// current time is the caller's.
func (m CPIMMessage) DateTime() (string, bool) {
	h, ok := m.first("DateTime")
	return h.Value, ok
}

// Subjects returns the Subject headers (RFC 3862 4.5), text decoded.
func (m CPIMMessage) Subjects() []CPIMSubject {
	var out []CPIMSubject
	for _, h := range m.Lookup(CPIMHeadersNS, "Subject") {
		lang, _ := h.Param("lang")
		out = append(out, CPIMSubject{Lang: lang, Text: h.Text()})
	}
	return out
}

// Namespaces returns the NS declarations (RFC 3862 4.6) in order.
func (m CPIMMessage) Namespaces() []CPIMNamespace {
	var out []CPIMNamespace
	for _, h := range m.Lookup(CPIMHeadersNS, "NS") {
		if d, err := parseCPIMNS(h.Value); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// Require returns the header names the Require header lists (RFC 3862 4.7),
// resolved through the NS declarations in effect where Require stands.
func (m CPIMMessage) Require() []CPIMName {
	var out []CPIMName
	scope := newCPIMScope()
	for i := range m.Headers {
		h := m.Headers[i]
		ns, err := scope.step(&h)
		if err != nil || ns != CPIMHeadersNS || h.Name != "Require" {
			continue
		}
		for n := range strings.SplitSeq(h.Value, ",") {
			p, name := splitCPIMName(strings.Trim(n, " "))
			out = append(out, CPIMName{NS: scope.resolve(p, name), Name: name})
		}
		break
	}
	return out
}

// Unsupported returns the names Require lists that the receiver does not
// understand (RFC 3862 4.7: such a message must not be processed as if the
// header were absent; CHAT-30e). The core headers are always understood;
// understood (nil for none) decides the others.
func (m CPIMMessage) Unsupported(understood func(CPIMName) bool) []CPIMName {
	var out []CPIMName
	for _, n := range m.Require() {
		if n.NS == CPIMHeadersNS && isCoreCPIMHeader(n.Name) || understood != nil && understood(n) {
			continue
		}
		out = append(out, n)
	}
	return out
}

func isCoreCPIMHeader(name string) bool {
	switch name {
	case "From", "To", "cc", "DateTime", "Subject", "NS", "Require":
		return true
	}
	return false
}

// CheckAddressed reports an ErrBadCPIM error unless the message has a From
// and at least one To header, which RFC 4975 13 makes a MUST for CPIM over
// MSRP (CHAT-30c). ParseCPIM does not require them, so that SIP MESSAGE
// bodies from lax peers still unwrap.
func (m CPIMMessage) CheckAddressed() error {
	if _, ok := m.From(); !ok {
		return fmt.Errorf("%w: no From header", ErrBadCPIM)
	}
	if len(m.To()) == 0 {
		return fmt.Errorf("%w: no To header", ErrBadCPIM)
	}
	return nil
}

// MIMEValue returns the value of the first MIME header of the encapsulated
// part called name (case-insensitive), or "".
func (m CPIMMessage) MIMEValue(name string) string {
	for _, h := range m.MIME {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// ContentType returns the encapsulated part's Content-Type, or "" (RFC 2045
// 5.2 then means text/plain; charset=us-ascii).
func (m CPIMMessage) ContentType() string { return m.MIMEValue("Content-Type") }

// ContentID returns the encapsulated part's Content-ID, or "".
func (m CPIMMessage) ContentID() string { return m.MIMEValue("Content-ID") }

// ContentDisposition returns the encapsulated part's Content-Disposition,
// or "" (RFC 5438 uses `notification` for IMDN bodies, CHAT-44d).
func (m CPIMMessage) ContentDisposition() string { return m.MIMEValue("Content-Disposition") }

// AddHeader appends a header whose value is given as written (escape free
// text with CPIMEscape, or use AddText). NS is resolved from the
// declarations already added. Marshal checks the result.
func (m *CPIMMessage) AddHeader(prefix, name, value string, params ...CPIMParam) {
	h := CPIMHeader{Prefix: prefix, Name: name, Value: value, Params: params}
	scope := newCPIMScope()
	for i := range m.Headers {
		scope.step(&m.Headers[i]) // a malformed NS is Marshal's to report
	}
	h.NS = scope.resolve(prefix, name)
	m.Headers = append(m.Headers, h)
}

// AddText appends a header whose value is free text, escaped (RFC 3862 2.3).
func (m *CPIMMessage) AddText(prefix, name, text string) {
	m.AddHeader(prefix, name, CPIMEscape(text))
}

// AddNS appends an NS declaration (RFC 3862 4.6); prefix "" declares the
// default namespace of unprefixed headers.
func (m *CPIMMessage) AddNS(prefix, uri string) {
	v := "<" + uri + ">"
	if prefix != "" {
		v = prefix + " " + v
	}
	m.AddHeader("", "NS", v)
}

// AddAddress appends a From, To or cc header (RFC 3862 4.1, 4.2, 4.4).
func (m *CPIMMessage) AddAddress(name string, a CPIMAddress) {
	m.AddHeader("", name, a.String())
}

// AddDateTime appends the DateTime header (RFC 3862 4.3). dateTime is an
// RFC 3339 date-time the caller formats from its clock.
func (m *CPIMMessage) AddDateTime(dateTime string) { m.AddHeader("", "DateTime", dateTime) }

// AddSubject appends a Subject header (RFC 3862 4.5) with a lang parameter
// when lang is not "".
func (m *CPIMMessage) AddSubject(lang, text string) {
	var params []CPIMParam
	if lang != "" {
		params = []CPIMParam{{Name: "lang", Value: lang}}
	}
	m.AddHeader("", "Subject", CPIMEscape(text), params...)
}

// AddMIME appends a MIME header of the encapsulated part.
func (m *CPIMMessage) AddMIME(name, value string) {
	m.MIME = append(m.MIME, MIMEHeader{Name: name, Value: value})
}

// Marshal writes the message with CRLF line ends (RFC 3862 2, 3). It
// refuses, with ErrBadCPIM, anything ParseCPIM would not read back into the
// same value: a bad name or parameter, a value holding CR, LF or another
// control character (no header injection), invalid UTF-8, a broken core
// header, a MIME value with leading or trailing blanks, no message headers;
// and with ErrCPIMTooBig what is over the limits.
func (m CPIMMessage) Marshal() ([]byte, error) {
	if len(m.Headers) == 0 {
		return nil, fmt.Errorf("%w: no message headers", ErrBadCPIM)
	}
	if len(m.Headers) > CPIMMaxHeaders || len(m.MIME) > CPIMMaxHeaders {
		return nil, fmt.Errorf("%w: more than %d headers in a block", ErrCPIMTooBig, CPIMMaxHeaders)
	}
	size := 4 + len(m.Body)
	for _, h := range m.Headers {
		if err := checkCPIMHeaderSyntax(h); err != nil {
			return nil, err
		}
		n := cpimLineLen(h)
		if n > CPIMMaxLine {
			return nil, fmt.Errorf("%w: header line over %d bytes", ErrCPIMTooBig, CPIMMaxLine)
		}
		size += n + 2
	}
	if err := checkCPIMHeaders(m.Headers, false); err != nil {
		return nil, err
	}
	for _, h := range m.MIME {
		if !validFieldName([]byte(h.Name)) || !validMIMEValue([]byte(h.Value)) ||
			h.Value != strings.Trim(h.Value, " \t") {
			return nil, fmt.Errorf("%w: bad MIME header %q", ErrBadCPIM, h.Name)
		}
		n := len(h.Name) + 2 + len(h.Value)
		if n > CPIMMaxLine {
			return nil, fmt.Errorf("%w: MIME header %s over %d bytes", ErrCPIMTooBig, h.Name, CPIMMaxLine)
		}
		size += n + 2
	}
	b := make([]byte, 0, size)
	for _, h := range m.Headers {
		if h.Prefix != "" {
			b = append(b, h.Prefix...)
			b = append(b, '.')
		}
		b = append(b, h.Name...)
		b = append(b, ':')
		for _, p := range h.Params {
			b = append(b, ';')
			b = append(b, p.Name...)
			b = append(b, '=')
			b = append(b, p.Value...)
		}
		b = append(b, ' ')
		b = append(b, h.Value...)
		b = append(b, '\r', '\n')
	}
	b = append(b, '\r', '\n')
	for _, h := range m.MIME {
		b = append(b, h.Name...)
		b = append(b, ':', ' ')
		b = append(b, h.Value...)
		b = append(b, '\r', '\n')
	}
	b = append(b, '\r', '\n')
	b = append(b, m.Body...)
	return b, nil
}

// checkCPIMHeaderSyntax validates one header for Marshal.
func checkCPIMHeaderSyntax(h CPIMHeader) error {
	if h.Prefix != "" && !validCPIMName(h.Prefix) || !validCPIMName(h.Name) {
		return fmt.Errorf("%w: bad header name %q", ErrBadCPIM, h.Prefix+"."+h.Name)
	}
	for _, p := range h.Params {
		ok := validCPIMName(p.Name) && p.Value != "" && validCPIMValue([]byte(p.Value))
		if ok && p.Value[0] == '"' {
			ok = quotedLen(p.Value) == len(p.Value)
		} else if ok {
			for i := 0; i < len(p.Value) && ok; i++ {
				ok = isTokenChar(p.Value[i])
			}
		}
		if !ok {
			return fmt.Errorf("%w: bad parameter %q of %s", ErrBadCPIM, p.Name, h.Name)
		}
	}
	if !validCPIMValue([]byte(h.Value)) {
		return fmt.Errorf("%w: control character or invalid UTF-8 in %s", ErrBadCPIM, h.Name)
	}
	return nil
}

// cpimLineLen is the length of the header line Marshal writes for h.
func cpimLineLen(h CPIMHeader) int {
	n := len(h.Name) + 2 + len(h.Value)
	if h.Prefix != "" {
		n += len(h.Prefix) + 1
	}
	for _, p := range h.Params {
		n += len(p.Name) + len(p.Value) + 2
	}
	return n
}

// validCPIMName reports whether s is 1*NAMECHAR (RFC 3862 3.6).
func validCPIMName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

// isNameChar: %x21 / %x23-27 / %x2a-2b / %x2d / %x5e-60 / %x7c / %x7e /
// ALPHA / DIGIT (RFC 3862 3.6).
func isNameChar(c byte) bool {
	switch {
	case isAlnum(c), c == 0x21, c >= 0x23 && c <= 0x27, c == 0x2a, c == 0x2b, c == 0x2d,
		c >= 0x5e && c <= 0x60, c == 0x7c, c == 0x7e:
		return true
	}
	return false
}

// isTokenChar: NAMECHAR / "." / UCS-high (RFC 3862 3.6).
func isTokenChar(c byte) bool { return isNameChar(c) || c == '.' || c >= 0x80 }

// validCPIMValue reports whether s is UTF-8 without control characters
// (HEADERCHAR, RFC 3862 3.6).
func validCPIMValue(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		} else if c >= utf8.RuneSelf {
			return utf8.Valid(s[i:])
		}
	}
	return true
}

// validCPIMURI is a shape check of an absolute URI: a scheme, a colon and
// at least one printable, non-blank character, none of `<>"`.
func validCPIMURI(s string) bool {
	colon := strings.IndexByte(s, ':')
	if colon <= 0 || colon == len(s)-1 || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < colon; i++ {
		if c := s[i]; !isAlnum(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	for i := colon + 1; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// validFieldName: printable ASCII except ':' (RFC 5322 2.2 ftext).
func validFieldName(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// validMIMEValue: no control characters but HTAB.
func validMIMEValue(s []byte) bool {
	for _, c := range s {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidDateTime reports whether s is an RFC 3339 5.6 date-time
// (`2000-12-13T13:40:00-08:00`, fractions of a second allowed, T and Z in
// either case), with the field ranges of RFC 3339 5.7 (a leap second 60 is
// allowed in any minute: checking the leap-second table needs a clock of
// record, which mapping does not have).
func ValidDateTime(s string) bool {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' ||
		s[10] != 'T' && s[10] != 't' {
		return false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 60 {
		return false
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case rest == "Z" || rest == "z":
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		h, m := num(len(s)-5, 2), num(len(s)-2, 2)
		return h >= 0 && h <= 23 && m >= 0 && m <= 59
	}
	return false
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// CPIMFromMatches reports whether a CPIM From (a header value
// `[name] <URI>`, or a bare URI) names the same identity as the
// authenticated SIP identity (a URI, or `[name] <URI>`): CHECKLIST
// CHAT-30, "the CPIM From is never trusted over the authenticated SIP
// identity". URIs compare by RFC 3261 19.1.4: the same scheme (sip and sips
// never match each other, nor im: or pres:), the user part case-sensitive
// after percent-decoding, the host case-insensitive, the port exact (an
// absent port does not match 5060); the parameters user, ttl, method, maddr
// and transport must match when either URI has them, any other parameter
// only when both do; URI headers must be equal. tel: numbers compare
// without visual separators. Anything that does not parse (including
// schemes ParseURI refuses) does not match.
func CPIMFromMatches(cpimFrom, authenticatedURI string) bool {
	a, ok := identityURI(cpimFrom)
	if !ok {
		return false
	}
	b, ok := identityURI(authenticatedURI)
	return ok && sameURI(a, b)
}

func identityURI(s string) (URI, bool) {
	if strings.IndexByte(s, '<') >= 0 {
		a, err := ParseCPIMAddress(s)
		if err != nil {
			return URI{}, false
		}
		s = a.URI
	}
	u, err := ParseURI(strings.Trim(s, " "))
	return u, err == nil
}

// sameURI compares two parsed URIs by RFC 3261 19.1.4.
func sameURI(a, b URI) bool {
	if a.Scheme != b.Scheme || a.Host != b.Host || a.Port != b.Port || a.Headers != b.Headers {
		return false
	}
	if a.Scheme == SchemeTel {
		if telDigits(a.User) != telDigits(b.User) {
			return false
		}
	} else if a.User != b.User {
		return false
	}
	return paramsMatch(a, b) && paramsMatch(b, a)
}

// paramsMatch checks a's parameters against b's.
// A parameter given twice counts once, with its first value (URI.Param).
func paramsMatch(a, b URI) bool {
	for i, p := range a.Params {
		if first, _ := a.Param(p.Name); first != p.Value && i > 0 {
			continue
		}
		v, ok := b.Param(p.Name)
		switch p.Name {
		case "user", "ttl", "method", "maddr", "transport":
			if !ok {
				return false
			}
		default:
			if !ok {
				continue
			}
		}
		if !strings.EqualFold(p.Value, v) {
			return false
		}
	}
	return true
}

// telDigits drops the visual separators of a tel: number (RFC 3966 5.1.1)
// and lower-cases hex digits.
func telDigits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '-', '.', '(', ')':
		default:
			if c >= 'A' && c <= 'F' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}
