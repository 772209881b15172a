package mapping

import (
	"fmt"
	"strings"
)

// xmpp: URIs (RFC 5122), as carried by <gone/> (RFC 6120 8.3.3.5) and
// <redirect/>. Only the authority-less form `xmpp:node@domain/resource` is
// produced and read; queries and fragments are ignored on input.

// nodeRaw: unreserved and nodeallow of RFC 5122 2.3.
func nodeRaw(c byte) bool {
	if isAlnum(c) {
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '(', ')', '*', '+', ',', ';', '=':
		return true
	}
	return false
}

// resRaw: unreserved and resallow of RFC 5122 2.3.
func resRaw(c byte) bool {
	if nodeRaw(c) {
		return true
	}
	switch c {
	case '&', '\'', ':':
		return true
	}
	return false
}

// XMPPURI returns the xmpp: URI of a JID (RFC 5122 2.3), percent-encoding
// what the URI grammar does not allow raw in the localpart and resourcepart
// (including the backslash of XEP-0106 escapes and all non-ASCII bytes).
// The JID is not validated.
func XMPPURI(jid string) string {
	j := jid
	local, res := "", ""
	hasRes := false
	if i := strings.IndexByte(j, '/'); i >= 0 {
		res, j, hasRes = j[i+1:], j[:i], true
	}
	if i := strings.IndexByte(j, '@'); i >= 0 {
		local, j = j[:i], j[i+1:]
	}
	var b strings.Builder
	b.Grow(5 + len(jid) + 16)
	b.WriteString("xmpp:")
	if local != "" {
		writePercent(&b, local, nodeRaw)
		b.WriteByte('@')
	}
	b.WriteString(j)
	if hasRes {
		b.WriteByte('/')
		writePercent(&b, res, resRaw)
	}
	return b.String()
}

// JIDFromXMPPURI reads the JID out of an xmpp: URI (scheme
// case-insensitive) and validates it. The authority form (`xmpp://`) is
// refused; a query or fragment is dropped. Errors wrap ErrMalformedURI or
// ErrMalformedJID.
func JIDFromXMPPURI(uri string) (string, error) {
	if len(uri) < 5 || !strings.EqualFold(uri[:5], "xmpp:") {
		return "", fmt.Errorf("%w: not an xmpp: URI: %q", ErrMalformedURI, uri)
	}
	s := uri[5:]
	if strings.HasPrefix(s, "//") {
		return "", fmt.Errorf("%w: xmpp: URIs with an authority are not supported", ErrMalformedURI)
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	// Split before decoding: %2F and %40 are data, not delimiters.
	var res string
	hasRes := false
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s, res, hasRes = s[:i], s[i+1:], true
	}
	var j JID
	if i := strings.IndexByte(s, '@'); i >= 0 {
		local, err := uriDecode(s[:i])
		if err != nil {
			return "", err
		}
		j.Local, s = local, s[i+1:]
		if j.Local == "" {
			return "", fmt.Errorf("%w: empty localpart in %q", ErrMalformedJID, uri)
		}
		if err := checkLocal(j.Local); err != nil {
			return "", err
		}
	}
	if !validDomain(s) {
		return "", fmt.Errorf("%w: bad domain in %q", ErrMalformedJID, uri)
	}
	j.Domain = lower(s)
	if hasRes {
		r, err := uriDecode(res)
		if err != nil {
			return "", err
		}
		if err := checkResource(r); err != nil {
			return "", err
		}
		j.Resource = r
	}
	return j.String(), nil
}

// uriDecode percent-decodes s (RFC 3986), leaving other bytes alone.
func uriDecode(s string) (string, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", fmt.Errorf("%w: bad %%-escape", ErrMalformedURI)
			}
			i += 2
		}
	}
	return unescapePercent(s), nil
}
