package sipside

import (
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
)

// sipgo writes header values as given: a CR or LF in a value becomes a new
// header (LIBRARIES.md). Every value that reaches a header from a caller
// goes through one of these functions: free text (Subject, display names)
// is cleaned, everything structured (URIs, Call-ID, media types, language
// tags) is refused with ErrHeaderValue.

// hasCtl reports whether s has an ASCII control character (including HTAB)
// or DEL.
func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b == 0x7f {
			return true
		}
	}
	return false
}

// cleanText makes free text safe for a header value: invalid UTF-8 becomes
// U+FFFD and every control character (C0 including CR, LF, NUL and HTAB,
// DEL, C1) becomes a space.
func cleanText(s string) string {
	clean := true
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b < 0x20 || b == 0x7f {
				clean = false
				break
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r >= 0x80 && r <= 0x9f {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f {
			r = ' '
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// quoteDisplay cleans a display name and returns it in the escaped form that
// goes between the double quotes of a name-addr (RFC 3261 §25.1
// quoted-string).
func quoteDisplay(s string) string {
	s = cleanText(s)
	if !strings.ContainsAny(s, `"\`) {
		return s
	}
	var sb strings.Builder
	for _, r := range s {
		if r == '"' || r == '\\' {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// unquoteDisplay undoes quoted-pair escapes of a received display name.
func unquoteDisplay(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	esc := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && !esc {
			esc = true
			continue
		}
		esc = false
		sb.WriteByte(c)
	}
	return sb.String()
}

// parseURI checks and parses a SIP or SIPS URI given by a caller. The URI
// must be ASCII (percent-encoding is the mapping's job, ADDR-07) with no
// control characters, spaces or the delimiters of a name-addr.
func parseURI(field, s string) (sip.Uri, error) {
	var u sip.Uri
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= 0x20 || b >= 0x7f || b == '<' || b == '>' || b == '"' {
			return u, fmt.Errorf("%w: %s: character %q not allowed in a URI", ErrHeaderValue, field, b)
		}
	}
	if err := sip.ParseUri(s, &u); err != nil {
		return u, fmt.Errorf("%w: %s: %v", ErrHeaderValue, field, err)
	}
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return u, fmt.Errorf("%w: %s: scheme %q is not sip or sips", ErrHeaderValue, field, u.Scheme)
	}
	if u.Host == "" || u.Wildcard {
		return u, fmt.Errorf("%w: %s: no host", ErrHeaderValue, field)
	}
	if len(u.Headers) > 0 {
		// RFC 3261 §19.1.5 Table 1: no URI headers in a Request-URI, From
		// or To.
		return u, fmt.Errorf("%w: %s: URI headers not allowed", ErrHeaderValue, field)
	}
	return u, nil
}

// isCallIDWordChar reports the characters of "word" (RFC 3261 §25.1).
func isCallIDWordChar(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~()<>:\\\"/[]?{}", b) >= 0
}

// checkCallID validates callid = word [ "@" word ].
func checkCallID(s string) error {
	if s == "" || len(s) > 256 {
		return fmt.Errorf("%w: Call-ID length %d", ErrHeaderValue, len(s))
	}
	at := false
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b == '@' && !at && i > 0 && i < len(s)-1 {
			at = true
			continue
		}
		if !isCallIDWordChar(b) {
			return fmt.Errorf("%w: Call-ID character %q", ErrHeaderValue, b)
		}
	}
	return nil
}

// isMediaType reports whether s is a media type with optional parameters
// that can go into Content-Type or Accept as it is.
func isMediaType(s string) bool {
	if s == defaultContentType {
		return true // what stox sends; mime.ParseMediaType allocates a map
	}
	if s == "" || hasCtl(s) || strings.ContainsAny(s, ",") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	mt, _, err := mime.ParseMediaType(s)
	return err == nil && strings.Contains(mt, "/")
}

// checkLanguage validates Content-Language = language-tag *("," language-tag)
// (RFC 3261 §20.13).
func checkLanguage(s string) error {
	// strings.Cut rather than Split: this runs for every X->S MESSAGE
	// with a language, and Split allocated twice.
	for rest, more := s, true; more; {
		var tag string
		tag, rest, more = strings.Cut(rest, ",")
		tag = strings.TrimSpace(tag)
		if tag == "" || len(tag) > 64 {
			return fmt.Errorf("%w: Content-Language %q", ErrHeaderValue, s)
		}
		for subs, moreSub := tag, true; moreSub; {
			var sub string
			sub, subs, moreSub = strings.Cut(subs, "-")
			if sub == "" || len(sub) > 8 {
				return fmt.Errorf("%w: Content-Language %q", ErrHeaderValue, s)
			}
			for i := 0; i < len(sub); i++ {
				b := sub[i]
				if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9') {
					return fmt.Errorf("%w: Content-Language %q", ErrHeaderValue, s)
				}
			}
		}
	}
	return nil
}

// isToken reports RFC 3261 token characters (header names in Reply.Headers).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case strings.IndexByte("-.!%*_+`'~", b) >= 0:
		default:
			return false
		}
	}
	return true
}
