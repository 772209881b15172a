package mapping

import (
	"fmt"
	"strings"
)

// XEP-0106 JID escaping (ADDR-11). Only the localpart is escaped. The ten
// escape sequences are lower-case hex; `\2F` is not an escape sequence and is
// kept as it is, which XMPP servers' case folding of localparts preserves.

// escapeCode returns the two hex digits of the XEP-0106 escape of c, or "" if
// c is not one of the ten escaped characters. The backslash is special: it is
// escaped only where it would otherwise start an escape sequence (ADDR-11c).
func escapeCode(c byte) string {
	switch c {
	case ' ':
		return "20"
	case '"':
		return "22"
	case '&':
		return "26"
	case '\'':
		return "27"
	case '/':
		return "2f"
	case ':':
		return "3a"
	case '<':
		return "3c"
	case '>':
		return "3e"
	case '@':
		return "40"
	case '\\':
		return "5c"
	}
	return ""
}

// unescapeCode returns the character an escape sequence `\hh` stands for, if
// hh (exactly two bytes, lower-case) is one of the ten codes.
func unescapeCode(h1, h2 byte) (byte, bool) {
	switch {
	case h1 == '2' && h2 == '0':
		return ' ', true
	case h1 == '2' && h2 == '2':
		return '"', true
	case h1 == '2' && h2 == '6':
		return '&', true
	case h1 == '2' && h2 == '7':
		return '\'', true
	case h1 == '2' && h2 == 'f':
		return '/', true
	case h1 == '3' && h2 == 'a':
		return ':', true
	case h1 == '3' && h2 == 'c':
		return '<', true
	case h1 == '3' && h2 == 'e':
		return '>', true
	case h1 == '4' && h2 == '0':
		return '@', true
	case h1 == '5' && h2 == 'c':
		return '\\', true
	}
	return 0, false
}

// startsEscape reports whether s[i:] begins with one of the ten escape
// sequences.
func startsEscape(s string, i int) bool {
	if i+2 >= len(s) || s[i] != '\\' {
		return false
	}
	_, ok := unescapeCode(s[i+1], s[i+2])
	return ok
}

// escapeNeeded reports whether the byte at s[i] must be replaced by an escape
// sequence.
func escapeNeeded(s string, i int) bool {
	c := s[i]
	if c == '\\' {
		return startsEscape(s, i)
	}
	return escapeCode(c) != ""
}

// escapeProblem says why s cannot be escaped into (the start of) a
// localpart, or returns "" if it can: invalid UTF-8 and control characters
// have no XEP-0106 escape, and a space may not be first or, when checkLast
// is set, last (ADDR-11b).
func escapeProblem(s string, checkLast bool) string {
	if s == "" {
		return ""
	}
	if s[0] == ' ' || checkLast && s[len(s)-1] == ' ' {
		return "a localpart cannot start or end with a space (\\20)"
	}
	if !validText(s) {
		return "invalid UTF-8 or control character"
	}
	return ""
}

// escapedLen returns the length of the escaped form of s.
func escapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if escapeNeeded(s, i) {
			n += 2
		}
	}
	return n
}

// writeEscaped appends the XEP-0106 escaped form of s to b. It does not
// validate; see escapeProblem.
func writeEscaped(b *strings.Builder, s string) {
	start := 0
	for i := 0; i < len(s); i++ {
		if !escapeNeeded(s, i) {
			continue
		}
		b.WriteString(s[start:i])
		b.WriteByte('\\')
		b.WriteString(escapeCode(s[i]))
		start = i + 1
	}
	b.WriteString(s[start:])
}

// EscapeLocal applies XEP-0106 escaping to an unescaped localpart (ADDR-11):
// space `"` & ' / : < > @ become \20 \22 \26 \27 \2f \3a \3c \3e \40, and a
// backslash becomes \5c only where it would otherwise start one of those
// sequences (so `c:\5commas` -> `c\3a\5c5commas`, TV-12e, while `c:\net` ->
// `c\3a\net`). A leading or trailing space, control characters and invalid
// UTF-8 are errors (ErrMalformedJID): XEP-0106 has no escape for them; so
// is a result longer than the 1023 bytes a localpart may have. The empty
// string escapes to itself.
func EscapeLocal(s string) (string, error) {
	if p := escapeProblem(s, true); p != "" {
		return "", fmt.Errorf("%w: %s", ErrMalformedJID, p)
	}
	n := escapedLen(s)
	if n > maxPart {
		return "", fmt.Errorf("%w: escaped localpart longer than %d bytes", ErrMalformedJID, maxPart)
	}
	if n == len(s) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(n)
	writeEscaped(&b, s)
	return b.String(), nil
}

// localForbidden reports whether c may not appear unescaped in a localpart
// (RFC 7622 3.3.1: " & ' / : < > @; PRECIS: spaces and controls).
func localForbidden(c byte) bool {
	switch c {
	case ' ', '"', '&', '\'', '/', ':', '<', '>', '@', 0x7f:
		return true
	}
	return c < 0x20
}

// UnescapeLocal reverses XEP-0106 escaping of a localpart as found on the
// wire (ADDR-11d): only the ten listed sequences are decoded, anything else
// (`\n`, `\2F`, a trailing `\`) is kept literally, so `c\3a\5c5commas` ->
// `c:\5commas` (TV-12e). It returns ErrMalformedJID if s holds characters a
// localpart forbids, invalid UTF-8, or starts or ends with \20 (ADDR-11b).
//
// UnescapeLocal accepts escapings that EscapeLocal would not produce, such as
// `\5cn` for `\n`; the address functions of this package reject those so that
// the address mapping stays bijective (see IsCanonicalLocal).
func UnescapeLocal(s string) (string, error) {
	if err := checkLocal(s); err != nil {
		return "", err
	}
	if strings.HasPrefix(s, `\20`) || strings.HasSuffix(s, `\20`) {
		return "", fmt.Errorf("%w: a localpart cannot start or end with \\20", ErrMalformedJID)
	}
	first := strings.IndexByte(s, '\\')
	if first < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:first])
	for i := first; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+2 < len(s) {
			if d, ok := unescapeCode(s[i+1], s[i+2]); ok {
				b.WriteByte(d)
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// checkLocal validates a localpart in its wire (escaped) form: valid UTF-8,
// no forbidden characters, at most 1023 bytes. The empty string is valid
// here; callers decide whether a localpart is required.
func checkLocal(s string) error {
	if len(s) > maxPart {
		return fmt.Errorf("%w: localpart longer than %d bytes", ErrMalformedJID, maxPart)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; localForbidden(c) {
			return fmt.Errorf("%w: character %q not allowed in a localpart", ErrMalformedJID, c)
		}
	}
	if !validText(s) {
		return fmt.Errorf("%w: invalid UTF-8 or control character in localpart", ErrMalformedJID)
	}
	return nil
}

// IsCanonicalLocal reports whether the wire localpart s is exactly what
// EscapeLocal produces for its unescaped value, i.e. whether
// EscapeLocal(UnescapeLocal(s)) == s. Only canonical localparts take part in
// the bijective address mapping.
func IsCanonicalLocal(s string) bool {
	u, err := UnescapeLocal(s)
	if err != nil {
		return false
	}
	return isCanonicalUnescaped(s, u)
}

// isCanonicalUnescaped reports whether escaped is the canonical escaping of
// unescaped, without allocating.
func isCanonicalUnescaped(escaped, unescaped string) bool {
	if strings.IndexByte(escaped, '\\') < 0 {
		// Nothing was decoded, and a valid localpart holds none of the
		// characters that would need escaping.
		return true
	}
	if escapeProblem(unescaped, true) != "" {
		return false
	}
	j := 0
	for i := 0; i < len(unescaped); i++ {
		if escapeNeeded(unescaped, i) {
			code := escapeCode(unescaped[i])
			if j+3 > len(escaped) || escaped[j] != '\\' || escaped[j+1:j+3] != code {
				return false
			}
			j += 3
			continue
		}
		if j >= len(escaped) || escaped[j] != unescaped[i] {
			return false
		}
		j++
	}
	return j == len(escaped)
}
