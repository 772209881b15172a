package mapping

import (
	"fmt"
	"strings"
)

// Percent-encoding of SIP URI parts (RFC 3261 25.1; ADDR-07 step 5, ADDR-08).
//
// The encoders escape exactly what the RFC 3261 grammar does not allow raw,
// with upper-case hex, and nothing else: that is the normal form this package
// produces and compares. By RFC 3261 19.1.4 an unreserved character and its
// %hh form are the same URI, so `sip:d%27artagnan@example.net` and
// `sip:d'artagnan@example.net` name the same user; the normal form is the
// second.

const upperHex = "0123456789ABCDEF"

// sipUserRaw reports whether c may appear unescaped in a SIP user part:
// alphanum, mark (- _ . ! ~ * ' ( )) and user-unreserved (& = + $ , ; ? /).
func sipUserRaw(c byte) bool {
	if isAlnum(c) {
		return true
	}
	switch c {
	case '-', '_', '.', '!', '~', '*', '\'', '(', ')',
		'&', '=', '+', '$', ',', ';', '?', '/':
		return true
	}
	return false
}

// paramRaw reports whether c may appear unescaped in a SIP URI parameter value:
// alphanum, mark and param-unreserved ([ ] / : & + $).
func paramRaw(c byte) bool {
	if isAlnum(c) {
		return true
	}
	switch c {
	case '-', '_', '.', '!', '~', '*', '\'', '(', ')',
		'[', ']', '/', ':', '&', '+', '$':
		return true
	}
	return false
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func encodedLen(s string, raw func(byte) bool) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if !raw(s[i]) {
			n += 2
		}
	}
	return n
}

func writePercent(b *strings.Builder, s string, raw func(byte) bool) {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if raw(c) {
			continue
		}
		b.WriteString(s[start:i])
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
		start = i + 1
	}
	b.WriteString(s[start:])
}

func percentEncode(s string, raw func(byte) bool) string {
	n := encodedLen(s, raw)
	if n == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(n)
	writePercent(&b, s, raw)
	return b.String()
}

// EncodeSIPUser percent-encodes a decoded SIP user part (ADDR-07 step 5 for
// sip:/sips:): every byte outside alphanum, mark and user-unreserved, which
// covers `# % [ \ ] ^ ` + "`" + ` { | }`, space, `" : < > @`, controls and
// all non-ASCII bytes (UTF-8, byte by byte). `m&m` stays `m&m` (TV-11a),
// `tschüss` becomes `tsch%C3%BCss` (TV-11b).
func EncodeSIPUser(user string) string { return percentEncode(user, sipUserRaw) }

// EncodeSIPParam percent-encodes a URI parameter value, such as the gr
// parameter carrying an XMPP resourcepart (ADDR-07 step 8).
func EncodeSIPParam(value string) string { return percentEncode(value, paramRaw) }

// DecodeSIPUser percent-decodes a SIP user part (ADDR-06 step 3). %hh may use
// either case. It returns ErrMalformedURI for a truncated or non-hex escape,
// and for raw characters that can never be in a user part (controls, space,
// '@'). The result is bytes; whether they are UTF-8 is the caller's check
// (ADDR-06 step 4).
func DecodeSIPUser(s string) (string, error) { return percentDecode(s, "user part") }

// DecodeSIPParam percent-decodes a URI parameter value.
func DecodeSIPParam(s string) (string, error) { return percentDecode(s, "parameter") }

func percentDecode(s, what string) (string, error) {
	if err := checkPercent(s, what); err != nil {
		return "", err
	}
	return unescapePercent(s), nil
}

// checkPercent validates what percentDecode decodes: %hh escapes must be
// complete hex, and controls, space and '@' may not appear raw.
func checkPercent(s, what string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return fmt.Errorf("%w: bad %%-escape in %s", ErrMalformedURI, what)
			}
			i += 2
		case c <= ' ' || c == 0x7f || c == '@':
			return fmt.Errorf("%w: character %q not allowed in %s", ErrMalformedURI, c, what)
		}
	}
	return nil
}

// unescapePercent decodes the %hh escapes of s, which must all be valid.
func unescapePercent(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
