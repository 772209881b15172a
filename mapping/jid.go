package mapping

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxPart is the RFC 7622 3.1 limit on each JID part, in bytes.
const maxPart = 1023

// JID is a parsed XMPP address (RFC 7622). Local is the localpart in its wire
// (XEP-0106 escaped) form; Domain is lower-case.
//
// This is a small validator, not a PRECIS implementation: localparts and
// resourceparts are checked for the characters RFC 7622 forbids, control
// characters, UTF-8 validity and length, but not case-folded or normalised,
// and domains must be ASCII host names (no IDN, no IP literals).
type JID struct {
	Local, Domain, Resource string
}

// ParseJID splits and validates a JID: `[local@]domain[/resource]`. The
// resource is everything after the first '/'; each part is at most 1023 bytes;
// an empty localpart before '@' or an empty resource after '/' is an error;
// the localpart may not hold space " & ' / : < > @ or controls (ADDR-08). All
// errors wrap ErrMalformedJID. The domain is returned lower-case.
func ParseJID(s string) (JID, error) {
	var j JID
	rest := s
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		j.Resource = rest[i+1:]
		rest = rest[:i]
		if err := checkResource(j.Resource); err != nil {
			return JID{}, err
		}
	}
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		j.Local = rest[:i]
		rest = rest[i+1:]
		if j.Local == "" {
			return JID{}, fmt.Errorf("%w: empty localpart in %q", ErrMalformedJID, s)
		}
		if err := checkLocal(j.Local); err != nil {
			return JID{}, err
		}
	}
	if !validDomain(rest) {
		return JID{}, fmt.Errorf("%w: bad domainpart in %q", ErrMalformedJID, s)
	}
	j.Domain = lower(rest)
	return j, nil
}

// String returns the JID as `[local@]domain[/resource]`.
func (j JID) String() string {
	n := len(j.Domain)
	if j.Local != "" {
		n += len(j.Local) + 1
	}
	if j.Resource != "" {
		n += len(j.Resource) + 1
	}
	var b strings.Builder
	b.Grow(n)
	if j.Local != "" {
		b.WriteString(j.Local)
		b.WriteByte('@')
	}
	b.WriteString(j.Domain)
	if j.Resource != "" {
		b.WriteByte('/')
		b.WriteString(j.Resource)
	}
	return b.String()
}

// Bare returns the JID without its resource.
func (j JID) Bare() JID { return JID{Local: j.Local, Domain: j.Domain} }

// checkResource validates a resourcepart; errors wrap ErrMalformedJID.
func checkResource(r string) error {
	if p := resourceProblem(r); p != "" {
		return fmt.Errorf("%w: resourcepart: %s", ErrMalformedJID, p)
	}
	return nil
}

// resourceProblem says what is wrong with a resourcepart, or "": it must be
// non-empty, at most 1023 bytes, UTF-8, without control characters (PRECIS
// OpaqueString disallows them).
func resourceProblem(r string) string {
	switch {
	case r == "":
		return "empty"
	case len(r) > maxPart:
		return "longer than 1023 bytes"
	case !validText(r):
		return "invalid UTF-8 or control character"
	}
	return ""
}

// validText reports whether s is UTF-8 without C0/C1 control characters.
func validText(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r < 0xa0 {
			return false
		}
		i += n
	}
	return true
}

// validDomain reports whether s is an ASCII host name usable as a JID
// domainpart and SIP host: dot-separated labels of letters, digits, '-' and
// '_' (1..63 bytes, no '-' at either end), at most 253 bytes, no trailing dot.
// Dotted IPv4 addresses pass. Upper case is allowed; compare with lower().
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if label == 0 || s[i-1] == '-' {
				return false
			}
			label = 0
			continue
		case c == '-':
			if label == 0 {
				return false
			}
		case isAlnum(c) || c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return label > 0 && s[len(s)-1] != '-'
}

// lower returns s in ASCII lower case, without allocating if it already is.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
