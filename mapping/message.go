package mapping

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Page-mode instant messages (RFC 7572, RFC 3428; CHECKLIST 3).

// Body is one <body/> of a message stanza. Lang is its xml:lang, "" when it
// inherits the stanza's.
type Body struct{ Lang, Text string }

// XMPPMessage is the part of a <message/> stanza that maps to SIP.
type XMPPMessage struct {
	ID, From, To, Type, Lang string // Lang = stanza xml:lang
	Subject, Thread          string
	Bodies                   []Body
	XHTML                    string // XEP-0071: the inner XML of <html/> (one xhtml <body/>), S->X only
}

// SIPMessage is the part of a SIP MESSAGE request that maps to XMPP.
type SIPMessage struct {
	RequestURI, From, To string // URIs without <> or header parameters
	CallID, Subject      string
	ContentType          string // the Content-Type header value
	ContentLanguage      string
	Body                 []byte
}

// ContentTypeText is the Content-Type of every MESSAGE the gateway sends
// (IM-06).
const ContentTypeText = "text/plain;charset=UTF-8"

// AcceptedTypes are the body types MessageFromSIP accepts, for the Accept
// header of a 415 (IM-08, TV-05). Read-only: MessageFromSIP does not consult
// it, so changing it changes nothing but what a 415 would claim.
var AcceptedTypes = []string{"text/plain", "message/cpim", "text/html"}

// AcceptHeader is AcceptedTypes as an Accept header value.
const AcceptHeader = "text/plain, message/cpim, text/html"

// MessageToSIP maps an XMPP message to a SIP MESSAGE (X->S, RFC 7572 4 Table
// 1, IM-03):
//   - type error or groupchat, or an unknown type: ErrNotTranslatable (IM-02,
//     ERR-03); no type, normal, chat and headline are translated and the type
//     is dropped (IM-01);
//   - the body whose language is the stanza's (a body without xml:lang has
//     the stanza's), else the first non-empty one (IM-10); none:
//     ErrNoBody, never an empty MESSAGE;
//   - From: XMPPUserURI(From), bare JID plus ;gr= (ADDR-09); Request-URI
//     and To: SIPUserURI(To);
//   - Thread -> Call-ID when it is a valid Call-ID (RFC 3261 25.1 callid),
//     else "" and the caller makes a fresh one (IM-05); Subject with
//     line breaks and controls replaced by spaces (no header injection);
//     the body's language -> Content-Language when it is a well-formed tag;
//   - Content-Type: text/plain;charset=UTF-8 (IM-06).
//
// The stanza id is not mapped here: the caller keeps id <-> transaction.
func (a *Addressing) MessageToSIP(m XMPPMessage) (SIPMessage, error) {
	switch m.Type {
	case "", "normal", "chat", "headline":
	default:
		return SIPMessage{}, fmt.Errorf("%w: type %q", ErrNotTranslatable, m.Type)
	}
	body, lang, ok := pickBody(m)
	if !ok {
		return SIPMessage{}, ErrNoBody
	}
	if !utf8.ValidString(body) {
		return SIPMessage{}, fmt.Errorf("%w: invalid UTF-8", ErrBadBody)
	}
	from, err := a.XMPPUserURI(m.From)
	if err != nil {
		return SIPMessage{}, fmt.Errorf("from: %w", err)
	}
	to, err := a.SIPUserURI(m.To)
	if err != nil {
		return SIPMessage{}, fmt.Errorf("to: %w", err)
	}
	s := SIPMessage{
		RequestURI:  to,
		From:        from,
		To:          to,
		Subject:     headerText(m.Subject),
		ContentType: ContentTypeText,
		Body:        []byte(body),
	}
	if validCallID(m.Thread) {
		s.CallID = m.Thread
	}
	if validLangTag(lang) {
		s.ContentLanguage = lang
	}
	return s, nil
}

// pickBody chooses the body to send (IM-10) and its effective language.
func pickBody(m XMPPMessage) (text, lang string, ok bool) {
	first := -1
	for i, b := range m.Bodies {
		if b.Text == "" {
			continue
		}
		l := b.Lang
		if l == "" {
			l = m.Lang
		}
		if strings.EqualFold(l, m.Lang) {
			return b.Text, l, true
		}
		if first < 0 {
			first = i
		}
	}
	if first < 0 {
		return "", "", false
	}
	return m.Bodies[first].Text, m.Bodies[first].Lang, true
}

// MessageFromSIP maps a SIP MESSAGE to an XMPP message (S->X, RFC 7572 5
// Table 2, IM-07): From -> SIPUserJID (ADDR-10), Request-URI -> XMPPUserJID
// (not To, DESIGN.md), Call-ID -> thread, Subject -> subject,
// Content-Language -> xml:lang (first tag, IM-09), Type always "" (IM-07).
// The id (from the transaction) is the caller's.
//
// Bodies (IM-08):
//   - text/plain with no charset, or charset utf-8 or us-ascii; any other
//     charset: ErrUnsupportedCharset;
//   - message/cpim (RFC 3862 subset, see parseCPIM) wrapping text/plain or
//     text/html; the CPIM From/To are not trusted: the SIP From wins;
//   - text/html that is well-formed XML (HTML named entities allowed): sanitised
//     to the XHTML-IM recommended profile in XHTML, plus a plain-text Body
//     (XEP-0071); otherwise ErrUnsupportedType;
//   - anything else: ErrUnsupportedType (answer 415 with AcceptHeader).
//
// Text that is not UTF-8 or holds characters XML forbids: ErrBadBody. An
// empty body: ErrNoBody. Address errors come first (DESIGN.md order of
// refusals: 400/404 before 415).
func (a *Addressing) MessageFromSIP(s SIPMessage) (XMPPMessage, error) {
	from, err := a.SIPUserJID(s.From)
	if err != nil {
		return XMPPMessage{}, fmt.Errorf("from: %w", err)
	}
	to, err := a.XMPPUserJID(s.RequestURI)
	if err != nil {
		return XMPPMessage{}, fmt.Errorf("request-uri: %w", err)
	}
	c, err := decodeContent(s.ContentType, s.Body)
	if err != nil {
		return XMPPMessage{}, err
	}
	if !validXMLText(s.Subject) {
		return XMPPMessage{}, fmt.Errorf("%w: subject", ErrBadBody)
	}
	lang := c.lang
	if lang == "" {
		lang = firstLangTag(s.ContentLanguage)
	}
	return XMPPMessage{
		From:    from,
		To:      to,
		Lang:    lang,
		Subject: s.Subject,
		Thread:  s.CallID,
		Bodies:  []Body{{Text: c.text}},
		XHTML:   c.xhtml,
	}, nil
}

// validCallID reports whether s is an RFC 3261 callid (word ["@" word]) of
// reasonable length.
func validCallID(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	at := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '@' {
			if at || i == 0 || i == len(s)-1 {
				return false
			}
			at = true
			continue
		}
		if !isAlnum(c) && strings.IndexByte("-.!%*_+`'~()<>:\\\"/[]?{}", c) < 0 {
			return false
		}
	}
	return true
}

// headerText makes s safe as a SIP header value: CR, LF and other controls
// become spaces; leading and trailing spaces go.
func headerText(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return strings.TrimSpace(s)
	}
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s))
}

// validLangTag is a shape check of a BCP 47 tag: 1*8ALPHA *("-" 1*8alphanum).
func validLangTag(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	n, primary := 0, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-':
			if n == 0 {
				return false
			}
			n, primary = 0, false
			continue
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && !primary:
		default:
			return false
		}
		n++
		if n > 8 {
			return false
		}
	}
	return n > 0
}

// firstLangTag returns the first tag of a Content-Language value
// ("en-US, fr" -> "en-US"), or "" if it is not well formed.
func firstLangTag(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	v = strings.TrimSpace(v)
	if !validLangTag(v) {
		return ""
	}
	return v
}

// validXMLText reports whether s is UTF-8 made only of XML 1.0 Chars
// (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF).
func validXMLText(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == 0xfffe || r == 0xffff {
			return false
		}
		i += n
	}
	return true
}
