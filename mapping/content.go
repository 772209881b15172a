package mapping

import (
	"fmt"
	"strings"
)

// content is a decoded message body.
type content struct {
	text  string // the plain text for <body/>
	xhtml string // XEP-0071 <body/> element, or ""
	lang  string // language from an inner (CPIM) Content-Language, or ""
}

// decodeContent dispatches on the Content-Type (IM-08). A missing
// Content-Type is read as text/plain (the MIME default) rather than refused.
func decodeContent(ct string, body []byte) (content, error) {
	return decodeContentDepth(ct, body, true)
}

func decodeContentDepth(ct string, body []byte, allowCPIM bool) (content, error) {
	mt, params, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case mt == "" || strings.EqualFold(mt, "text/plain"):
		ascii, err := checkCharset(params)
		if err != nil {
			return content{}, err
		}
		t, err := bodyText(body, ascii)
		return content{text: t}, err
	case strings.EqualFold(mt, "text/html"):
		ascii, err := checkCharset(params)
		if err != nil {
			return content{}, err
		}
		if _, err := bodyText(body, ascii); err != nil {
			return content{}, err
		}
		xhtml, text, err := sanitizeHTML(body)
		if err != nil {
			return content{}, err
		}
		if text == "" {
			return content{}, ErrNoBody
		}
		return content{text: text, xhtml: xhtml}, nil
	case allowCPIM && strings.EqualFold(mt, "message/cpim"):
		inner, err := parseCPIM(body)
		if err != nil {
			return content{}, err
		}
		c, err := decodeContentDepth(inner.contentType, inner.body, false)
		if err != nil {
			return content{}, err
		}
		c.lang = firstLangTag(inner.lang)
		return c, nil
	}
	return content{}, fmt.Errorf("%w: %q", ErrUnsupportedType, mt)
}

// CheckContentType reports whether a SIP body of this Content-Type could be
// carried (IM-08) without looking at the body: for a body too large to read,
// DESIGN.md's order of refusals still wants 415 before 413. message/cpim
// passes (its inner type is only known from the body).
func CheckContentType(ct string) error {
	mt, params, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case mt == "" || strings.EqualFold(mt, "text/plain"), strings.EqualFold(mt, "text/html"):
		_, err := checkCharset(params)
		return err
	case strings.EqualFold(mt, "message/cpim"):
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnsupportedType, mt)
}

// checkCharset accepts no charset, utf-8 and us-ascii (reporting the last).
func checkCharset(params string) (ascii bool, err error) {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "charset") {
			continue
		}
		v := strings.TrimSpace(value)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		switch {
		case strings.EqualFold(v, "utf-8"):
			ascii = false
		case strings.EqualFold(v, "us-ascii"):
			ascii = true
		default:
			return false, fmt.Errorf("%w: %q", ErrUnsupportedCharset, v)
		}
	}
	return ascii, nil
}

// bodyText validates a text body: non-empty, UTF-8 (ASCII if ascii), XML
// characters only.
func bodyText(body []byte, ascii bool) (string, error) {
	if len(body) == 0 {
		return "", ErrNoBody
	}
	if ascii {
		for _, c := range body {
			if c >= 0x80 {
				return "", fmt.Errorf("%w: non-ASCII byte in us-ascii text", ErrBadBody)
			}
		}
	}
	t := string(body)
	if !validXMLText(t) {
		return "", fmt.Errorf("%w: invalid UTF-8 or character not allowed in XML", ErrBadBody)
	}
	return t, nil
}

// cpimPart is the MIME part inside a message/cpim body.
type cpimPart struct {
	contentType, lang string
	body              []byte
}

// parseCPIM unwraps a message/cpim body for decodeContent with ParseCPIM
// (cpim.go; lines end in CRLF, LF alone is accepted). The CPIM message
// headers (From, To, DateTime, NS, ...) are not used: the SIP From is
// authoritative (CPIMFromMatches is the check for callers that want it). A
// Require naming a header outside the core set cannot be honoured (RFC 3862
// 4.7): ErrUnsupportedType. A syntax error is ErrBadBody (wrapping
// ErrBadCPIM or ErrCPIMTooBig). Only 7bit, 8bit and binary transfer
// encodings are accepted; an encapsulated part without Content-Type is
// text/plain (RFC 2045 5.2).
func parseCPIM(b []byte) (cpimPart, error) {
	m, err := ParseCPIM(b)
	if err != nil {
		return cpimPart{}, fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	if u := m.Unsupported(nil); len(u) > 0 {
		return cpimPart{}, fmt.Errorf("%w: message/cpim Require: %s", ErrUnsupportedType, u[0].Name)
	}
	part := cpimPart{contentType: m.ContentType(), lang: m.MIMEValue("Content-Language"), body: m.Body}
	if v := m.MIMEValue("Content-Transfer-Encoding"); v != "" &&
		!strings.EqualFold(v, "7bit") && !strings.EqualFold(v, "8bit") && !strings.EqualFold(v, "binary") {
		return cpimPart{}, fmt.Errorf("%w: Content-Transfer-Encoding %q", ErrUnsupportedType, v)
	}
	if part.contentType == "" {
		part.contentType = "text/plain"
	}
	return part, nil
}
