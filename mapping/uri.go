package mapping

import (
	"fmt"
	"strconv"
	"strings"
)

// URI schemes this package parses (ADDR-04: sip, sips, im, pres in scope;
// tel parsed only to be refused).
const (
	SchemeSIP  = "sip"
	SchemeSIPS = "sips"
	SchemeTel  = "tel"
	SchemeIM   = "im"
	SchemePres = "pres"
)

// Param is one URI parameter. Name is lower-case (parameter names compare
// case-insensitively); Value is percent-decoded and empty for a flag such as
// `;lr`.
type Param struct{ Name, Value string }

// URI is a parsed sip:, sips:, im:, pres: or tel: URI (RFC 3261 19.1.1, RFC
// 3860, RFC 3859, RFC 3966), reduced to what the gateway needs.
//
// For sip/sips/im/pres, User is the percent-decoded user part (possibly not
// UTF-8; that is checked where it becomes a JID), Host is lower-case, and Port
// is 0 when absent. For tel, User is the number exactly as written and Host is
// empty. Headers is the raw part after '?', without it.
type URI struct {
	Scheme  string
	User    string
	Host    string
	Port    int
	Params  []Param
	Headers string
}

// rawURI is the allocation-free split of a URI used on hot paths: every field
// is a substring of the input, still percent-encoded.
type rawURI struct {
	scheme  string // one of the Scheme constants
	user    string // raw user part ("" if none)
	host    string // raw host, IPv6 with brackets
	port    int
	params  string // raw, without the leading ';'
	headers string // raw, without the '?'
	gr      string // raw value of the gr parameter ("" if absent or a flag)
}

// ParseURI parses a URI of one of the five schemes. Errors wrap
// ErrMalformedURI, or ErrUnsupportedScheme for any other scheme. A password
// in the user info is refused (RFC 3261 19.1.1 NOT RECOMMENDED). String()
// gives back the normal form: lower-case scheme and host, user and
// parameter values percent-encoded exactly where RFC 3261 requires.
func ParseURI(s string) (URI, error) {
	r, err := parseRawURI(s)
	if err != nil {
		return URI{}, err
	}
	u := URI{Scheme: r.scheme, Host: lower(r.host), Port: r.port, Headers: r.headers}
	if r.scheme == SchemeTel {
		u.User = r.user
	} else if u.User, err = DecodeSIPUser(r.user); err != nil {
		return URI{}, err
	}
	if r.params != "" {
		u.Params = make([]Param, 0, strings.Count(r.params, ";")+1)
		for p := range strings.SplitSeq(r.params, ";") {
			name, value, _ := strings.Cut(p, "=")
			if value, err = DecodeSIPParam(value); err != nil {
				return URI{}, err
			}
			u.Params = append(u.Params, Param{Name: lower(name), Value: value})
		}
	}
	return u, nil
}

// Param returns the value of the first parameter called name
// (case-insensitive) and whether it is present.
func (u URI) Param(name string) (string, bool) {
	for _, p := range u.Params {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

// String formats the URI in normal form.
func (u URI) String() string {
	var b strings.Builder
	b.Grow(len(u.Scheme) + len(u.User)*3 + len(u.Host) + 32 + len(u.Headers))
	b.WriteString(u.Scheme)
	b.WriteByte(':')
	switch {
	case u.Scheme == SchemeTel:
		b.WriteString(u.User)
	case u.User != "":
		writePercent(&b, u.User, sipUserRaw)
		b.WriteByte('@')
	}
	b.WriteString(u.Host)
	if u.Port != 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(u.Port))
	}
	for _, p := range u.Params {
		b.WriteByte(';')
		b.WriteString(p.Name)
		if p.Value != "" {
			b.WriteByte('=')
			writePercent(&b, p.Value, paramRaw)
		}
	}
	if u.Headers != "" {
		b.WriteByte('?')
		b.WriteString(u.Headers)
	}
	return b.String()
}

// schemeOf returns the canonical name of scheme s (any case), or "".
func schemeOf(s string) string {
	switch {
	case strings.EqualFold(s, SchemeSIP):
		return SchemeSIP
	case strings.EqualFold(s, SchemeSIPS):
		return SchemeSIPS
	case strings.EqualFold(s, SchemeTel):
		return SchemeTel
	case strings.EqualFold(s, SchemeIM):
		return SchemeIM
	case strings.EqualFold(s, SchemePres):
		return SchemePres
	}
	return ""
}

// parseRawURI splits and validates s without allocating (except for errors).
func parseRawURI(s string) (rawURI, error) {
	var r rawURI
	colon := strings.IndexByte(s, ':')
	if colon <= 0 {
		return r, fmt.Errorf("%w: no scheme in %q", ErrMalformedURI, s)
	}
	if r.scheme = schemeOf(s[:colon]); r.scheme == "" {
		return r, fmt.Errorf("%w: %q", ErrUnsupportedScheme, s[:colon])
	}
	rest := s[colon+1:]
	if r.scheme != SchemeTel {
		if strings.HasPrefix(rest, "//") {
			return r, fmt.Errorf("%w: hierarchical form not allowed in %q", ErrMalformedURI, s)
		}
		// '@' may appear only as the end of the user info: no other part
		// of the grammar allows it raw (RFC 3261 25.1). The user part may
		// hold a raw ';' or '?', so it is split off first.
		if at := strings.IndexByte(rest, '@'); at >= 0 {
			r.user = rest[:at]
			rest = rest[at+1:]
			if r.user == "" {
				return r, fmt.Errorf("%w: empty user info in %q", ErrMalformedURI, s)
			}
			if strings.IndexByte(r.user, ':') >= 0 {
				return r, fmt.Errorf("%w: password in user info of %q", ErrMalformedURI, s)
			}
			if err := checkPercent(r.user, "user part"); err != nil {
				return r, err
			}
		}
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		r.headers = rest[q+1:]
		rest = rest[:q]
		if !validHeaders(r.headers) {
			return r, fmt.Errorf("%w: bad headers in %q", ErrMalformedURI, s)
		}
	}
	if strings.HasSuffix(rest, ";") {
		return r, fmt.Errorf("%w: empty parameter in %q", ErrMalformedURI, s)
	}
	if r.scheme == SchemeTel {
		if semi := strings.IndexByte(rest, ';'); semi >= 0 {
			r.params = rest[semi+1:]
			rest = rest[:semi]
		}
		if rest == "" || !validTelNumber(rest) {
			return r, fmt.Errorf("%w: bad tel number in %q", ErrMalformedURI, s)
		}
		r.user = rest
		return r, r.checkParams()
	}
	hostport := rest
	if semi := strings.IndexByte(rest, ';'); semi >= 0 {
		hostport = rest[:semi]
		r.params = rest[semi+1:]
	}
	port := ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return r, fmt.Errorf("%w: unterminated IPv6 reference in %q", ErrMalformedURI, s)
		}
		r.host = hostport[:end+1]
		if !validIPv6Ref(r.host) {
			return r, fmt.Errorf("%w: bad IPv6 reference in %q", ErrMalformedURI, s)
		}
		switch tail := hostport[end+1:]; {
		case tail == "":
		case tail[0] == ':':
			port = tail[1:]
		default:
			return r, fmt.Errorf("%w: junk after IPv6 reference in %q", ErrMalformedURI, s)
		}
	} else {
		r.host = hostport
		if c := strings.IndexByte(hostport, ':'); c >= 0 {
			r.host, port = hostport[:c], hostport[c+1:]
		}
		if !validDomain(r.host) {
			return r, fmt.Errorf("%w: bad host in %q", ErrMalformedURI, s)
		}
	}
	if port != "" || strings.HasSuffix(hostport, ":") {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 || port[0] == '+' || port[0] == '-' {
			return r, fmt.Errorf("%w: bad port in %q", ErrMalformedURI, s)
		}
		r.port = p
	}
	return r, r.checkParams()
}

// checkParams validates r.params (names are tokens, values decodable, at most
// one gr) and records the raw gr value.
func (r *rawURI) checkParams() error {
	if r.params == "" {
		return nil
	}
	seenGR := false
	for p := range strings.SplitSeq(r.params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if !validToken(name) {
			return fmt.Errorf("%w: bad parameter name %q", ErrMalformedURI, name)
		}
		if err := checkPercent(value, "parameter"); err != nil {
			return err
		}
		if strings.EqualFold(name, "gr") {
			if seenGR {
				return fmt.Errorf("%w: more than one gr parameter", ErrMalformedURI)
			}
			seenGR = true
			r.gr = value
		}
	}
	return nil
}

// validToken reports whether s is an RFC 3261 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) {
			continue
		}
		switch c {
		case '-', '.', '!', '%', '*', '_', '+', '`', '\'', '~':
			continue
		}
		return false
	}
	return true
}

func validHeaders(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// validIPv6Ref is a shape check of `[...]`: hex digits, ':' and '.' only.
func validIPv6Ref(s string) bool {
	if len(s) < 4 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isHex(c) && c != ':' && c != '.' {
			return false
		}
	}
	return true
}

// validTelNumber is a loose RFC 3966 check: digits, hex digits, '+', '*', '#'
// and visual separators.
func validTelNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isHex(c) {
			continue
		}
		switch c {
		case '+', '*', '#', '-', '.', '(', ')':
			continue
		}
		return false
	}
	return true
}
