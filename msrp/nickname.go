package msrp

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// HeaderUseNickname is the RFC 7701 s9.2 header of a NICKNAME request.
const HeaderUseNickname = "Use-Nickname"

// maxNickname is the RFC 7701 s9.2 bound on a nickname, in octets
// (MUC-40a).
const maxNickname = 1023

// QuoteNickname returns the Use-Nickname value for nick: an RFC 4975
// quoted-string, with '"' and '\' escaped (RFC 7701 s9.2). "" quotes the
// empty nickname, which removes one (RFC 7701 s7.3).
func QuoteNickname(nick string) (string, error) {
	if len(nick) > maxNickname || !utf8.ValidString(nick) {
		return "", fmt.Errorf("%w: nickname of %d octets or not UTF-8", ErrInvalid, len(nick))
	}
	var b strings.Builder
	b.Grow(len(nick) + 2)
	b.WriteByte('"')
	for i := 0; i < len(nick); i++ {
		c := nick[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 && c != '\t' || c == 0x7f:
			return "", fmt.Errorf("%w: control character in nickname", ErrInvalid)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// ParseNickname decodes a Use-Nickname value (RFC 7701 s9.2). A malformed
// value is answered with 424 (CHECKLIST D4).
func ParseNickname(v string) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", fmt.Errorf("%w: nickname %q is not a quoted-string", ErrMalformed, v)
	}
	in := v[1 : len(v)-1]
	var b strings.Builder
	b.Grow(len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case c == '\\':
			if i+1 == len(in) || in[i+1] != '"' && in[i+1] != '\\' {
				return "", fmt.Errorf("%w: bad escape in nickname %q", ErrMalformed, v)
			}
			i++
			b.WriteByte(in[i])
		case c == '"':
			return "", fmt.Errorf("%w: unescaped quote in nickname %q", ErrMalformed, v)
		case c < 0x20 && c != '\t' || c == 0x7f:
			return "", fmt.Errorf("%w: control character in nickname", ErrMalformed)
		default:
			b.WriteByte(c)
		}
	}
	nick := b.String()
	if len(nick) > maxNickname || !utf8.ValidString(nick) {
		return "", fmt.Errorf("%w: nickname of %d octets or not UTF-8", ErrMalformed, len(nick))
	}
	return nick, nil
}

// Nickname returns the nickname of a NICKNAME request: its one
// Use-Nickname header, decoded (MUC-40a).
func (f *Frame) Nickname() (string, error) {
	var vals []string
	for _, h := range f.Headers {
		if strings.EqualFold(h.Name, HeaderUseNickname) {
			vals = append(vals, h.Value)
		}
	}
	if len(vals) != 1 {
		return "", fmt.Errorf("%w: %d Use-Nickname headers, want 1", ErrMalformed, len(vals))
	}
	return ParseNickname(vals[0])
}
