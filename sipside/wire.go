package sipside

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"github.com/emiago/sipgo/sip"
)

// The page-mode fast path (fastpath.go) reads and writes the MESSAGE
// requests and responses it handles itself, without sipgo's parser and
// message types: one datagram becomes one string, and every field is a
// substring of it.
//
// The reader is deliberately narrow. It accepts only a plain, well-formed
// MESSAGE (or a response) in the shapes real user agents and proxies send,
// and declines everything else: folded or duplicated headers, control
// characters, a Require, quoted parameters, URIs it could not be sure to
// render exactly as sipgo does, a missing Content-Length. A declined
// datagram goes to sipgo and the usual path, which answers it (400, 416,
// 420, 483, ...) and logs it. A message the reader accepts gives the handler
// exactly the IncomingMessage the usual path gives (wire_test.go compares
// the two, also under fuzzing).

// wireRequest is a MESSAGE request read by readRequest. Every string is a
// substring of one copy of the datagram.
type wireRequest struct {
	ruri     string
	vias     []string // the Via header values in order; vias[0] is the top one
	topVia   viaHop
	from     string // raw header values
	to       string
	callID   string
	cseq     string
	fromAddr nameAddr
	toAddr   nameAddr
	ctype    string
	clang    string
	subject  string
	rroutes  []string // Record-Route values in order
	body     string
}

// viaHop is the parsed top Via.
type viaHop struct {
	transport string // as written, e.g. "UDP"
	sentBy    string // host[:port] as written
	host      string
	port      int // 0 when absent
	branch    string
	rport     bool // the rport parameter is present without a value
}

// nameAddr is a From or To value: its URI and the parts of it that the
// conversation key uses.
type nameAddr struct {
	display string // between the quotes, escapes kept
	uri     string
	user    string
	host    string
	hasTag  bool
}

// wireResponse is a response read by readResponse.
type wireResponse struct {
	code       int
	reason     string
	branch     string // of the top Via
	cseqMethod string
}

// line cuts the next CRLF-terminated line off s.
func line(s string) (string, string, bool) {
	i := strings.Index(s, "\r\n")
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+2:], true
}

// header splits a header line into its lower-cased canonical name and its
// trimmed value. It fails on a continuation line, a name that is not a
// token, or a control character other than HTAB in the value.
func header(l string) (name, value string, ok bool) {
	colon := strings.IndexByte(l, ':')
	if colon <= 0 {
		return "", "", false
	}
	n := trimRightWSP(l[:colon]) // a leading space is a continuation line: not a token
	if n == "" || !isToken(n) {
		return "", "", false
	}
	v := trimWSP(l[colon+1:])
	ascii := true
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return "", "", false
		}
		ascii = ascii && c < 0x80
	}
	if !ascii && strings.TrimFunc(v, unicode.IsSpace) != v {
		return "", "", false // sipgo trims Unicode white space too
	}
	return canonicalName(n), v, true
}

// trimWSP trims spaces and horizontal tabs at both ends of s.
func trimWSP(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return trimRightWSP(s)
}

// trimRightWSP trims spaces and horizontal tabs at the end of s.
func trimRightWSP(s string) string {
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// canonicalName maps the header names the fast path looks at, compact forms
// included, to one lower-case spelling. Other names come back unchanged.
func canonicalName(n string) string {
	if len(n) == 1 {
		switch n[0] | 0x20 {
		case 'v':
			return "via"
		case 'f':
			return "from"
		case 't':
			return "to"
		case 'i':
			return "call-id"
		case 'c':
			return "content-type"
		case 'l':
			return "content-length"
		case 's':
			return "subject"
		case 'm':
			return "contact"
		case 'e':
			return "content-encoding"
		case 'r':
			return "refer-to"
		case 'b':
			return "referred-by"
		}
		return n
	}
	// The candidates of n's length (canonicalNames), compared without case.
	if len(n) < len(canonicalNames) {
		for _, k := range canonicalNames[len(n)] {
			if strings.EqualFold(k, n) {
				return k
			}
		}
	}
	return n
}

// canonicalNames lists the full names canonicalName knows, by length.
var canonicalNames = func() [][]string {
	var byLen [][]string
	for _, k := range [...]string{"via", "from", "to", "call-id", "cseq", "content-type",
		"content-length", "max-forwards", "subject", "content-language", "record-route",
		"contact", "require", "proxy-require", "content-encoding", "route", "refer-to",
		"referred-by"} {
		for len(byLen) <= len(k) {
			byLen = append(byLen, nil)
		}
		byLen[len(k)] = append(byLen[len(k)], k)
	}
	return byLen
}()

// readRequest reads a MESSAGE datagram. ok is false when the fast path
// should leave it to sipgo.
func readRequest(s string) (r wireRequest, ok bool) {
	start, rest, ok := line(s)
	if !ok || len(start) <= len("MESSAGE  SIP/2.0") || !strings.HasPrefix(start, "MESSAGE ") || !strings.HasSuffix(start, " SIP/2.0") {
		return r, false
	}
	r.ruri = start[len("MESSAGE ") : len(start)-len(" SIP/2.0")]
	if _, _, ok := uriParts(r.ruri); !ok {
		return r, false
	}
	var seen [8]bool
	once := func(i int) bool {
		if seen[i] {
			return false
		}
		seen[i] = true
		return true
	}
	clen := -1
	var seenLang bool
	for {
		var l string
		if l, rest, ok = line(rest); !ok {
			return r, false
		}
		if l == "" {
			break
		}
		name, v, ok := header(l)
		if !ok {
			return r, false
		}
		switch name {
		case "via":
			if len(r.vias) == 0 && strings.ContainsAny(v, ",\"") {
				return r, false // several hops in the top line, or quotes
			}
			if len(r.vias) > 0 && !viaList(v) {
				return r, false // sipgo would not parse the message
			}
			r.vias = append(r.vias, v)
		case "from":
			if !once(0) {
				return r, false
			}
			r.from = v
		case "to":
			if !once(1) {
				return r, false
			}
			r.to = v
		case "call-id":
			if !once(2) || v == "" {
				return r, false
			}
			r.callID = v
		case "cseq":
			if !once(3) {
				return r, false
			}
			r.cseq = v
		case "content-type":
			if !once(4) || v == "" {
				return r, false
			}
			r.ctype = v
		case "content-length":
			if !once(5) || !digits(v) || len(v) > 9 {
				return r, false
			}
			clen, _ = strconv.Atoi(v)
		case "max-forwards":
			if !once(6) {
				return r, false
			}
			if n, err := strconv.Atoi(v); !digits(v) || err != nil || n < 1 || n > 255 {
				return r, false // 0 is 483 on the usual path
			}
		case "subject":
			if !once(7) {
				return r, false
			}
			r.subject = v
		case "content-language":
			if seenLang {
				return r, false
			}
			seenLang = true
			r.clang = v
		case "record-route", "route":
			if !routeList(v) {
				return r, false
			}
			if name == "record-route" { // a Route is not copied into responses
				r.rroutes = append(r.rroutes, v)
			}
		case "require", "proxy-require", "contact", "content-encoding", "refer-to", "referred-by":
			return r, false
		}
	}
	if len(r.vias) == 0 || !seen[0] || !seen[1] || !seen[2] || !seen[3] || clen < 0 || clen > len(rest) {
		return r, false
	}
	r.body = rest[:clen]
	if !cseqIsMessage(r.cseq) {
		return r, false
	}
	if r.topVia, ok = readVia(r.vias[0]); !ok {
		return r, false
	}
	if r.fromAddr, ok = readNameAddr(r.from); !ok || !r.fromAddr.hasTag {
		return r, false
	}
	if r.toAddr, ok = readNameAddr(r.to); !ok {
		return r, false
	}
	return r, true
}

// cseqIsMessage checks "<number> MESSAGE".
func cseqIsMessage(v string) bool {
	num, method, ok := strings.Cut(v, " ")
	if !ok || method != "MESSAGE" || num == "" || len(num) > 10 {
		return false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return false
		}
	}
	n, err := strconv.ParseUint(num, 10, 32)
	return err == nil && n < 1<<31
}

// readVia reads "SIP/2.0/UDP host[:port];params" with a branch of RFC 3261
// (the magic cookie) and plain parameters.
func readVia(v string) (h viaHop, ok bool) {
	proto, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.HasPrefix(proto, "SIP/2.0/") {
		return h, false
	}
	h.transport = proto[len("SIP/2.0/"):]
	if h.transport != "UDP" {
		return h, false
	}
	rest = strings.TrimLeft(rest, " ")
	sentBy, params, _ := strings.Cut(rest, ";")
	h.sentBy = sentBy
	host, port, ok := wireHostPort(sentBy)
	if !ok {
		return h, false
	}
	h.host, h.port = host, port
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, val, hasVal := strings.Cut(p, "=")
		if !isToken(k) || hasVal && !isToken(val) {
			return h, false
		}
		if lk := strings.ToLower(k); lk != k && (lk == "branch" || lk == "rport" || lk == "maddr" || lk == "received") {
			return h, false // sipgo matches these names case-sensitively
		}
		switch k {
		case "branch":
			if h.branch != "" || !strings.HasPrefix(val, "z9hG4bK") || len(val) <= len("z9hG4bK") {
				return h, false
			}
			h.branch = val
		case "rport":
			h.rport = !hasVal
		case "maddr", "received":
			return h, false
		}
	}
	return h, h.branch != ""
}

// wireHostPort splits host[:port]: a host name, an IPv4 address or an IPv6
// reference in brackets, and a decimal port without a leading zero.
func wireHostPort(s string) (string, int, bool) {
	host, port, hasPort := s, "", false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, false
		}
		host = s[:end+1]
		if a, err := netip.ParseAddr(s[1:end]); err != nil || !a.Is6() || a.Zone() != "" {
			return "", 0, false
		}
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", 0, false
			}
			port, hasPort = rest[1:], true
		}
	} else {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, port, hasPort = s[:i], s[i+1:], true
		}
		if host == "" || host[0] == '.' || host[0] == '-' {
			return "", 0, false
		}
		for i := 0; i < len(host); i++ {
			if c := host[i]; !isAlnum(c) && c != '.' && c != '-' {
				return "", 0, false
			}
		}
	}
	if !hasPort {
		return host, 0, true
	}
	if port == "" || port[0] == '0' || len(port) > 5 || !digits(port) {
		return "", 0, false
	}
	n, _ := strconv.Atoi(port)
	if n > 65535 {
		return "", 0, false
	}
	return host, n, true
}

// digits reports whether s is one or more decimal digits.
func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// plainParams checks ;-separated parameters as written after a URI or a
// header value (without the first ';'): each a token with an optional
// token value, no empty one, no name twice (sipgo keeps only the last),
// and the names in lower case that sipgo matches case-sensitively.
func plainParams(params string) bool {
	var seen [8]string
	n := 0
	for {
		p, rest, more := strings.Cut(params, ";")
		k, v, hasVal := strings.Cut(p, "=")
		if !isToken(k) || hasVal && !isToken(v) {
			return false
		}
		lk := strings.ToLower(k)
		if lk != k && (lk == "tag" || lk == "lr" || lk == "transport" || lk == "gr") {
			return false
		}
		for _, s := range seen[:min(n, len(seen))] {
			if strings.EqualFold(s, k) {
				return false
			}
		}
		if n >= len(seen) {
			return false
		}
		seen[n] = k
		n++
		if !more {
			return true
		}
		params = rest
	}
}

// uriParts checks a sip: or sips: URI of the plain shape
// scheme:[user@]host[:port][;param[=value]]... and returns its user and
// host. It refuses escapes, passwords, headers (?), and characters that
// sipgo would render differently.
func uriParts(u string) (user, host string, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(u, "sip:"):
		rest = u[4:]
	case strings.HasPrefix(u, "sips:"):
		rest = u[5:]
	default:
		return "", "", false
	}
	if strings.HasPrefix(rest, "/") {
		return "", "", false // sip://..., which sipgo reads differently
	}
	hp, params, hasParams := strings.Cut(rest, ";")
	if at := strings.LastIndexByte(hp, '@'); at >= 0 {
		user, hp = hp[:at], hp[at+1:]
		if user == "" {
			return "", "", false
		}
		for i := 0; i < len(user); i++ {
			c := user[i]
			if !(isAlnum(c) || strings.IndexByte("-_.!~*'()&=+$,/", c) >= 0) {
				return "", "", false
			}
		}
	}
	host, _, ok = wireHostPort(hp)
	if !ok || hasParams && !plainParams(params) {
		return "", "", false
	}
	return user, host, true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// readNameAddr reads a From or To value: "display" <uri>;params or
// <uri>;params or uri;params.
func readNameAddr(v string) (a nameAddr, ok bool) {
	var params string
	switch {
	case strings.HasPrefix(v, `"`):
		end := closingQuote(v)
		if end < 0 {
			return a, false
		}
		a.display = v[1:end]
		rest := strings.TrimLeft(v[end+1:], " \t")
		if !strings.HasPrefix(rest, "<") {
			return a, false
		}
		v = rest
		fallthrough
	case strings.HasPrefix(v, "<"):
		end := strings.IndexByte(v, '>')
		if end < 0 {
			return a, false
		}
		a.uri = v[1:end]
		params = v[end+1:]
		if params != "" && params[0] != ';' {
			return a, false
		}
	default:
		if strings.ContainsAny(v, "<>\" \t") {
			return a, false // a display name without quotes, or worse
		}
		// addr-spec: the parameters after the URI are the header's.
		var hasParams bool
		a.uri, params, hasParams = strings.Cut(v, ";")
		if hasParams {
			params = ";" + params
		}
	}
	if a.user, a.host, ok = uriParts(a.uri); !ok {
		return a, false
	}
	if params == "" {
		return a, true
	}
	if !plainParams(params[1:]) {
		return a, false
	}
	for p := range strings.SplitSeq(params[1:], ";") {
		if k, v, hasVal := strings.Cut(p, "="); k == "tag" {
			if !hasVal || v == "" {
				return a, false
			}
			a.hasTag = true
		}
	}
	return a, true
}

// closingQuote returns the index of the quote that ends the quoted string
// at the start of v, or -1.
func closingQuote(v string) int {
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// routeList checks a Record-Route value: <URI>;params entries separated by
// commas, each URI of the plain shape.
func routeList(v string) bool {
	for e := range strings.SplitSeq(v, ",") {
		e = strings.Trim(e, " \t")
		if !strings.HasPrefix(e, "<") {
			return false
		}
		end := strings.IndexByte(e, '>')
		if end < 0 {
			return false
		}
		if _, _, ok := uriParts(e[1:end]); !ok {
			return false
		}
		if rest := e[end+1:]; rest != "" && (rest[0] != ';' || !plainParams(rest[1:])) {
			return false
		}
	}
	return true
}

// viaList checks a Via value below the top one: hops separated by commas,
// each SIP/2.0/transport sent-by;params of the plain shape.
func viaList(v string) bool {
	if strings.ContainsRune(v, '"') {
		return false
	}
	for hop := range strings.SplitSeq(v, ",") {
		proto, rest, ok := strings.Cut(strings.Trim(hop, " \t"), " ")
		if !ok || !strings.HasPrefix(proto, "SIP/2.0/") || !isToken(proto[len("SIP/2.0/"):]) {
			return false
		}
		sentBy, params, hasParams := strings.Cut(strings.TrimLeft(rest, " "), ";")
		if _, _, ok := wireHostPort(sentBy); !ok || hasParams && !plainParams(params) {
			return false
		}
	}
	return true
}

// readResponse reads the fields of a response that the fast path's client
// transactions need. ok is false when it is not a response it can match.
func readResponse(s string) (r wireResponse, ok bool) {
	start, rest, ok := line(s)
	if !ok || !strings.HasPrefix(start, "SIP/2.0 ") || len(start) < len("SIP/2.0 200") {
		return r, false
	}
	code, err := strconv.Atoi(start[8:11])
	if err != nil || code < 100 || code > 699 || len(start) > 11 && start[11] != ' ' {
		return r, false
	}
	r.code = code
	if len(start) > 12 {
		r.reason = start[12:]
	}
	gotVia, gotCSeq := false, false
	for {
		var l string
		if l, rest, ok = line(rest); !ok || l == "" {
			break
		}
		name, v, ok := header(l)
		if !ok {
			return r, false // left to sipgo, which drops what it cannot read
		}
		switch name {
		case "via":
			if gotVia {
				continue
			}
			gotVia = true
			first, _, _ := strings.Cut(v, ",")
			_, params, _ := strings.Cut(first, ";")
			for params != "" {
				var p string
				p, params, _ = strings.Cut(params, ";")
				k, val, _ := strings.Cut(p, "=")
				if k == "branch" {
					if !isToken(val) || strings.ContainsRune(v, '"') {
						return r, false // not one of ours; sipgo may read it differently
					}
					r.branch = val
				}
			}
		case "cseq":
			gotCSeq = true
			_, m, _ := strings.Cut(v, " ")
			r.cseqMethod = strings.TrimSpace(m)
		}
	}
	return r, gotVia && gotCSeq && r.branch != ""
}

// appendResponse writes a response to req: code and reason, the Vias (the
// top one with received and rport filled in, RFC 3581 §4), Record-Route for
// a 2xx, From, To with tag unless it has one, Call-ID, CSeq, Server, the
// extra headers (already checked, in order) and an empty body.
func appendResponse(b []byte, req *wireRequest, src string, srcPort int, code int, reason, tag, server string, extra [][2]string) []byte {
	b = append(b, "SIP/2.0 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, reason...)
	b = append(b, "\r\n"...)
	for i, v := range req.vias {
		b = append(b, "Via: "...)
		if i == 0 && req.topVia.rport {
			b = appendViaReceived(b, v, src, srcPort)
		} else {
			b = append(b, v...)
		}
		b = append(b, "\r\n"...)
	}
	if code >= 200 && code < 300 {
		for _, rr := range req.rroutes {
			b = append(b, "Record-Route: "...)
			b = append(b, rr...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "From: "...)
	b = append(b, req.from...)
	b = append(b, "\r\nTo: "...)
	b = append(b, req.to...)
	if !req.toAddr.hasTag && code != 100 {
		b = append(b, ";tag="...)
		b = append(b, tag...)
	}
	b = append(b, "\r\nCall-ID: "...)
	b = append(b, req.callID...)
	b = append(b, "\r\nCSeq: "...)
	b = append(b, req.cseq...)
	b = append(b, "\r\nServer: "...)
	b = append(b, server...)
	b = append(b, "\r\n"...)
	for _, h := range extra {
		b = append(b, h[0]...)
		b = append(b, ": "...)
		b = append(b, h[1]...)
		b = append(b, "\r\n"...)
	}
	return append(b, "Content-Length: 0\r\n\r\n"...)
}

// appendViaReceived writes the top Via value with the empty rport
// parameter given the source port and received the source address.
func appendViaReceived(b []byte, v, src string, srcPort int) []byte {
	head, params, _ := strings.Cut(v, ";")
	b = append(b, head...)
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		b = append(b, ';')
		if strings.EqualFold(p, "rport") {
			b = append(b, p...)
			b = append(b, '=')
			b = strconv.AppendInt(b, int64(srcPort), 10)
			continue
		}
		b = append(b, p...)
	}
	b = append(b, ";received="...)
	return append(b, src...)
}

// appendRequest writes the MESSAGE that build makes for the usual path,
// with the given Via sent-by (host:port) and branch: the same headers in
// the same order.
func appendRequest(b []byte, p *prepared, sentBy, branch, route, userAgent string) []byte {
	b = append(b, "MESSAGE "...)
	b = appendURI(b, p.rawRURI, &p.ruri)
	b = append(b, " SIP/2.0\r\nVia: SIP/2.0/UDP "...)
	b = append(b, sentBy...)
	b = append(b, ";branch="...)
	b = append(b, branch...)
	b = append(b, ";rport\r\nMax-Forwards: 70\r\n"...)
	if route != "" {
		b = append(b, "Route: <"...)
		b = append(b, route...)
		b = append(b, ">\r\n"...)
	}
	b = append(b, "From: "...)
	if p.display != "" {
		b = append(b, '"')
		b = append(b, p.display...)
		b = append(b, `" `...)
	}
	b = append(b, '<')
	b = appendURI(b, p.rawFrom, &p.from)
	b = append(b, ">;tag="...)
	b = append(b, p.tag...)
	b = append(b, "\r\nTo: <"...)
	b = appendURI(b, p.rawTo, &p.to)
	b = append(b, ">\r\nCall-ID: "...)
	b = append(b, p.callID...)
	b = append(b, "\r\nCSeq: 1 MESSAGE\r\nUser-Agent: "...)
	b = append(b, userAgent...)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, p.ctype...)
	if p.lang != "" {
		b = append(b, "\r\nContent-Language: "...)
		b = append(b, p.lang...)
	}
	if p.subject != "" {
		b = append(b, "\r\nSubject: "...)
		b = append(b, p.subject...)
	}
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(p.body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, p.body...)
}

// appendURI writes raw, or when it is "" u as sipgo does.
func appendURI(b []byte, raw string, u *sip.Uri) []byte {
	if raw != "" {
		return append(b, raw...)
	}
	w := appendWriter{b}
	u.StringWrite(&w)
	return w.b
}

type appendWriter struct{ b []byte }

func (w *appendWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}
