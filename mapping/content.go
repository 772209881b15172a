package mapping

import (
	"bytes"
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

// parseCPIM reads a message/cpim body (RFC 3862 2, minimal subset): the
// message header block, a blank line, the MIME headers of the encapsulated
// part, a blank line, its body. Lines end in CRLF (LF alone is accepted).
// The CPIM message headers (From, To, DateTime, NS, ...) are skipped: the
// SIP From is authoritative. A Require header names headers we would have to
// understand and cannot (RFC 3862, the Require header): ErrUnsupportedType. Only 7bit,
// 8bit and binary transfer encodings are accepted; an encapsulated part
// without Content-Type is text/plain (RFC 2045 5.2).
func parseCPIM(b []byte) (cpimPart, error) {
	var part cpimPart
	pos := 0
	// Message headers.
	for n := 0; ; n++ {
		line, next, ok := nextLine(b, pos)
		if !ok {
			return part, fmt.Errorf("%w: message/cpim without a blank line after its headers", ErrBadBody)
		}
		pos = next
		if len(line) == 0 {
			if n == 0 {
				return part, fmt.Errorf("%w: message/cpim without message headers", ErrBadBody)
			}
			break
		}
		name, value, ok := cpimHeader(line)
		if !ok {
			return part, fmt.Errorf("%w: bad message/cpim header line", ErrBadBody)
		}
		if string(name) == "Require" && len(bytes.TrimSpace(value)) > 0 {
			return part, fmt.Errorf("%w: message/cpim Require: %s", ErrUnsupportedType, bytes.TrimSpace(value))
		}
	}
	// MIME headers of the encapsulated part.
	for {
		line, next, ok := nextLine(b, pos)
		if !ok {
			return part, fmt.Errorf("%w: message/cpim without a blank line after its MIME headers", ErrBadBody)
		}
		pos = next
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // folded continuation: not used by the headers we read
		}
		name, value, ok := cpimHeader(line)
		if !ok {
			return part, fmt.Errorf("%w: bad MIME header line in message/cpim", ErrBadBody)
		}
		v := strings.TrimSpace(string(value))
		switch n := string(name); {
		case strings.EqualFold(n, "Content-Type"):
			part.contentType = v
		case strings.EqualFold(n, "Content-Language"):
			part.lang = v
		case strings.EqualFold(n, "Content-Transfer-Encoding"):
			if !strings.EqualFold(v, "7bit") && !strings.EqualFold(v, "8bit") && !strings.EqualFold(v, "binary") {
				return part, fmt.Errorf("%w: Content-Transfer-Encoding %q", ErrUnsupportedType, v)
			}
		}
	}
	if part.contentType == "" {
		part.contentType = "text/plain"
	}
	part.body = b[pos:]
	return part, nil
}

// nextLine returns the line starting at pos without its CRLF or LF, and the
// position after it. ok is false at the end of b with no line terminator.
func nextLine(b []byte, pos int) (line []byte, next int, ok bool) {
	i := bytes.IndexByte(b[pos:], '\n')
	if i < 0 {
		return nil, len(b), false
	}
	line = b[pos : pos+i]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, pos + i + 1, true
}

// cpimHeader splits `Name: value`. The name is a token; CPIM wants exactly
// one space after the colon, but any amount is accepted on input.
func cpimHeader(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	name = line[:i]
	if !validToken(string(name)) {
		return nil, nil, false
	}
	return name, line[i+1:], true
}
