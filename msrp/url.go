package msrp

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is the registered MSRP port, used to connect and to compare
// URLs that have none (RFC 4975 s6, s15).
const DefaultPort = 2855

// URL is an MSRP URL (RFC 4975 s6):
//
//	msrp://[user@]host[:port][/session-id];transport[;param...]
//
// msrps marks a session over TLS. Parse and String round-trip: String gives
// the scheme in lower case and everything else as it was parsed.
type URL struct {
	Secure    bool     // msrps
	User      string   // userinfo, rarely used (relays)
	Host      string   // name, IPv4 or IPv6 address; IPv6 without brackets
	Port      int      // 0 when absent
	SessionID string   // case-sensitive (CHAT-11, TV-28b); empty for a relay URL
	Transport string   // "tcp" for TCP and TLS
	Params    []string // URI-parameters after the transport, "name" or "name=value"
}

// ParseURL parses one MSRP URL.
func ParseURL(s string) (URL, error) {
	var u URL
	rest, ok := cutPrefixFold(s, "msrp://")
	if !ok {
		if rest, ok = cutPrefixFold(s, "msrps://"); !ok {
			return URL{}, fmt.Errorf("%w: %q: scheme is not msrp or msrps", ErrInvalidURL, s)
		}
		u.Secure = true
	}
	semi := strings.IndexByte(rest, ';')
	if semi < 0 {
		return URL{}, fmt.Errorf("%w: %q: no transport", ErrInvalidURL, s)
	}
	hostpart, params := rest[:semi], rest[semi+1:]
	authority := hostpart
	if slash := strings.IndexByte(hostpart, '/'); slash >= 0 {
		authority, u.SessionID = hostpart[:slash], hostpart[slash+1:]
		if u.SessionID == "" || !allBytes(u.SessionID, isSessionIDChar) {
			return URL{}, fmt.Errorf("%w: %q: bad session-id", ErrInvalidURL, s)
		}
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		u.User, authority = authority[:at], authority[at+1:]
		if u.User == "" || !allBytes(u.User, isUserChar) {
			return URL{}, fmt.Errorf("%w: %q: bad userinfo", ErrInvalidURL, s)
		}
	}
	host, port, err := splitHostPort(authority)
	if err != nil {
		return URL{}, fmt.Errorf("%w: %q: %v", ErrInvalidURL, s, err)
	}
	u.Host, u.Port = host, port
	parts := strings.Split(params, ";")
	u.Transport = parts[0]
	if u.Transport == "" || !allBytes(u.Transport, isAlphaNum) {
		return URL{}, fmt.Errorf("%w: %q: bad transport", ErrInvalidURL, s)
	}
	if len(parts) > 1 {
		u.Params = parts[1:]
		for _, p := range u.Params {
			if !validParam(p) {
				return URL{}, fmt.Errorf("%w: %q: bad parameter %q", ErrInvalidURL, s, p)
			}
		}
	}
	return u, nil
}

// splitHostPort parses host [":" port], with IPv6 addresses in brackets.
func splitHostPort(a string) (string, int, error) {
	var host, port string
	hasPort := false
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("unterminated IPv6 literal")
		}
		host = a[1:end]
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() || addr.Zone() != "" || strings.ContainsAny(host, "%") {
			return "", 0, fmt.Errorf("bad IPv6 literal")
		}
		switch rest := a[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			port, hasPort = rest[1:], true
		default:
			return "", 0, fmt.Errorf("junk after IPv6 literal")
		}
	} else {
		host = a
		if c := strings.IndexByte(a, ':'); c >= 0 {
			host, port, hasPort = a[:c], a[c+1:], true
		}
		if host == "" || !allBytes(host, isHostChar) {
			return "", 0, fmt.Errorf("bad host")
		}
	}
	if !hasPort {
		return host, 0, nil
	}
	if port == "" || len(port) > 5 || !allBytes(port, isDigit) {
		return "", 0, fmt.Errorf("bad port")
	}
	n, _ := strconv.Atoi(port)
	if n < 1 || n > 65535 || port[0] == '0' {
		return "", 0, fmt.Errorf("bad port")
	}
	return host, n, nil
}

// MustParseURL is ParseURL for constants in tests and examples; it panics on
// error.
func MustParseURL(s string) URL {
	u, err := ParseURL(s)
	if err != nil {
		panic(err)
	}
	return u
}

// String formats u. It does not validate; see Validate.
func (u URL) String() string {
	return string(u.appendTo(nil))
}

func (u URL) appendTo(b []byte) []byte {
	if u.Secure {
		b = append(b, "msrps://"...)
	} else {
		b = append(b, "msrp://"...)
	}
	if u.User != "" {
		b = append(b, u.User...)
		b = append(b, '@')
	}
	if strings.IndexByte(u.Host, ':') >= 0 {
		b = append(b, '[')
		b = append(b, u.Host...)
		b = append(b, ']')
	} else {
		b = append(b, u.Host...)
	}
	if u.Port != 0 {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(u.Port), 10)
	}
	if u.SessionID != "" {
		b = append(b, '/')
		b = append(b, u.SessionID...)
	}
	b = append(b, ';')
	b = append(b, u.Transport...)
	for _, p := range u.Params {
		b = append(b, ';')
		b = append(b, p...)
	}
	return b
}

// Validate reports whether u can be written into a frame: it checks that
// String(u) parses back to u.
func (u URL) Validate() error {
	v, err := ParseURL(u.String())
	if err != nil {
		return err
	}
	if !sameURL(u, v) {
		return fmt.Errorf("%w: %q does not round-trip", ErrInvalidURL, u.String())
	}
	return nil
}

// sameURL is field-by-field identity (unlike Equal, which is RFC 4975 s6.1
// comparison).
func sameURL(a, b URL) bool {
	if a.Secure != b.Secure || a.User != b.User || a.Host != b.Host || a.Port != b.Port ||
		a.SessionID != b.SessionID || a.Transport != b.Transport || len(a.Params) != len(b.Params) {
		return false
	}
	for i := range a.Params {
		if a.Params[i] != b.Params[i] {
			return false
		}
	}
	return true
}

// Equal compares two MSRP URLs as RFC 4975 s6.1 asks (CHAT-11): scheme, host
// and transport case-insensitively, the port exactly (2855 when absent), the
// session-id case-sensitively (TV-28b). The userinfo and the URI parameters
// after the transport are not compared.
func (u URL) Equal(v URL) bool {
	return u.Secure == v.Secure &&
		u.SessionID == v.SessionID &&
		u.port() == v.port() &&
		strings.EqualFold(u.Transport, v.Transport) &&
		sameHost(u.Host, v.Host)
}

func sameHost(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	// IPv6 addresses have several spellings.
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	return err1 == nil && err2 == nil && x == y
}

func (u URL) port() int {
	if u.Port == 0 {
		return DefaultPort
	}
	return u.Port
}

// Address is the host:port to connect to for u (port 2855 when absent).
func (u URL) Address() string {
	return net.JoinHostPort(u.Host, strconv.Itoa(u.port()))
}

// ParsePath parses the value of a To-Path or From-Path header or of an SDP
// a=path attribute: one or more URLs separated by spaces (RFC 4975 s9,
// s8.2).
func ParsePath(s string) ([]URL, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: empty path", ErrInvalidURL)
	}
	path := make([]URL, len(fields))
	for i, f := range fields {
		u, err := ParseURL(f)
		if err != nil {
			return nil, err
		}
		path[i] = u
	}
	return path, nil
}

// FormatPath formats a path as a header or a=path value.
func FormatPath(path []URL) string {
	return string(appendPath(nil, path))
}

func appendPath(b []byte, path []URL) []byte {
	for i, u := range path {
		if i > 0 {
			b = append(b, ' ')
		}
		b = u.appendTo(b)
	}
	return b
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool    { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool    { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlphaNum(c byte) bool { return isAlpha(c) || isDigit(c) }

// isUnreserved: RFC 3986 unreserved.
func isUnreserved(c byte) bool {
	return isAlphaNum(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

// isSessionIDChar: RFC 4975 s9 session-id = 1*( unreserved / "+" / "=" / "/" ).
func isSessionIDChar(c byte) bool { return isUnreserved(c) || c == '+' || c == '=' || c == '/' }

// isHostChar: names and IPv4 addresses (a restricted RFC 3986 reg-name).
func isHostChar(c byte) bool { return isUnreserved(c) }

// isUserChar: RFC 3986 userinfo without the delimiters MSRP uses (";", "/").
func isUserChar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte("%!$&'()*+,=:", c) >= 0
}

// isTokenChar: RFC 3261 token, used by RFC 4975 for header names and
// URI-parameters.
func isTokenChar(c byte) bool {
	return isAlphaNum(c) || strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// validParam: URI-parameter = token ["=" token].
func validParam(p string) bool {
	name, value, hasValue := strings.Cut(p, "=")
	if name == "" || !allBytes(name, isTokenChar) {
		return false
	}
	return !hasValue || value != "" && allBytes(value, isTokenChar)
}
