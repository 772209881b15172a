package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// isComposing codec (RFC 3994) and its mapping to XEP-0085 chat states
// (RFC 7573 6, CHECKLIST 5.5: CHAT-50..CHAT-52).

// Media type, namespaces, timers and limits of isComposing.
const (
	// IsComposingContentType is the media type of an isComposing document
	// (RFC 3994 4, CHAT-51). Send one only to a peer that accepts it
	// (RFC 4975 8.6).
	IsComposingContentType = "application/im-iscomposing+xml"
	// NSIsComposing is the namespace of the <isComposing/> root (RFC 3994
	// 4).
	NSIsComposing = "urn:ietf:params:xml:ns:im-iscomposing"
	// NSChatStates is the XEP-0085 namespace.
	NSChatStates = "http://jabber.org/protocol/chatstates"

	// IsComposingMinRefresh is the lowest refresh interval, in seconds, an
	// active indication should carry (RFC 3994 3.2, CHAT-52: SHOULD be at
	// least 60 s).
	IsComposingMinRefresh = 60
	// IsComposingDefaultTimeout is how long, in seconds, a receiver keeps
	// an active state without a refresh element before it falls back to
	// idle (RFC 3994 3.3, CHAT-52).
	IsComposingDefaultTimeout = 120
	// IsComposingIdleTimeout is the composer's idle timeout in seconds: 15 s
	// without typing turns active into idle (RFC 3994 3.2, CHAT-52).
	IsComposingIdleTimeout = 15

	// IsComposingMaxBytes bounds an untrusted document; IsComposingMaxDepth
	// bounds its nesting (extension elements included).
	IsComposingMaxBytes = 8 << 10
	IsComposingMaxDepth = 16
)

// The two isComposing states (RFC 3994 3.1).
const (
	ComposingActive = "active"
	ComposingIdle   = "idle"
)

// The XEP-0085 chat states (element names in NSChatStates).
const (
	ChatStateActive    = "active"
	ChatStateComposing = "composing"
	ChatStatePaused    = "paused"
	ChatStateInactive  = "inactive"
	ChatStateGone      = "gone"
)

// IsComposing is an isComposing document (RFC 3994 4): State is
// ComposingActive or ComposingIdle; LastActive an RFC 3339 date-time or "";
// ContentType the type of what is being composed or ""; Refresh the refresh
// interval in seconds or 0 when absent. Extension elements are not kept.
type IsComposing struct {
	State       string
	LastActive  string
	ContentType string
	Refresh     int
}

// ParseIsComposing reads an isComposing document (RFC 3994 4, CHAT-51).
// Elements are matched by namespace URI, never by prefix; elements of other
// namespaces are ignored (the schema's ##other). Tolerated: an unknown
// state is read as idle (RFC 3994 3.5, CHAT-51); a refresh that is not a
// positive integer, and a lastactive that is not a date-time with a zone,
// are treated as absent. Values are trimmed of white space. Errors wrap
// ErrBadIsComposing: not well-formed, over IsComposingMaxBytes or
// IsComposingMaxDepth, not exactly one isComposing root, no <state/>.
func ParseIsComposing(b []byte) (IsComposing, error) {
	if len(b) > IsComposingMaxBytes {
		return IsComposing{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadIsComposing, len(b), IsComposingMaxBytes)
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{MaxDepth: IsComposingMaxDepth}
	if err := doc.ReadFromBytes(b); err != nil {
		if errors.Is(err, etree.ErrMaxDepth) {
			return IsComposing{}, fmt.Errorf("%w: nested deeper than %d", ErrBadIsComposing, IsComposingMaxDepth)
		}
		return IsComposing{}, fmt.Errorf("%w: %v", ErrBadIsComposing, err)
	}
	var root *etree.Element
	for _, tok := range doc.Child {
		switch t := tok.(type) {
		case *etree.Element:
			if root != nil {
				return IsComposing{}, fmt.Errorf("%w: more than one root element", ErrBadIsComposing)
			}
			root = t
		case *etree.CharData:
			if !t.IsWhitespace() {
				return IsComposing{}, fmt.Errorf("%w: text outside the root element", ErrBadIsComposing)
			}
		}
	}
	if root == nil || root.Tag != "isComposing" || root.NamespaceURI() != NSIsComposing {
		return IsComposing{}, fmt.Errorf("%w: root is not a %s <isComposing/>", ErrBadIsComposing, NSIsComposing)
	}
	var c IsComposing
	var seenState, seenLast, seenType, seenRefresh bool
	for _, e := range root.ChildElements() {
		if e.NamespaceURI() != NSIsComposing {
			continue
		}
		text := strings.TrimSpace(e.Text())
		switch {
		case e.Tag == "state" && !seenState:
			seenState = true
			c.State = ComposingIdle
			if text == ComposingActive {
				c.State = ComposingActive
			}
		case e.Tag == "lastactive" && !seenLast:
			seenLast = true
			if ValidDateTime(text) {
				c.LastActive = text
			}
		case e.Tag == "contenttype" && !seenType:
			seenType = true
			c.ContentType = text
		case e.Tag == "refresh" && !seenRefresh:
			seenRefresh = true
			if n, err := strconv.Atoi(text); err == nil && n > 0 && text[0] != '+' {
				c.Refresh = n
			}
		}
	}
	if !seenState {
		return IsComposing{}, fmt.Errorf("%w: no <state/>", ErrBadIsComposing)
	}
	return c, nil
}

// Marshal writes the document (RFC 3994 4) as UTF-8 XML with an XML
// declaration, the elements in schema order: state, lastactive,
// contenttype, refresh (each optional one only when set). Errors wrap
// ErrBadIsComposing: a state other than active or idle, a LastActive that
// is not an RFC 3339 date-time, a negative Refresh, a ContentType that XML
// cannot carry or with blanks at either end.
func (c IsComposing) Marshal() ([]byte, error) {
	switch {
	case c.State != ComposingActive && c.State != ComposingIdle:
		return nil, fmt.Errorf("%w: state %q", ErrBadIsComposing, c.State)
	case c.LastActive != "" && !ValidDateTime(c.LastActive):
		return nil, fmt.Errorf("%w: lastactive %q", ErrBadIsComposing, c.LastActive)
	case c.Refresh < 0:
		return nil, fmt.Errorf("%w: refresh %d", ErrBadIsComposing, c.Refresh)
	case !validXMLText(c.ContentType) || c.ContentType != strings.TrimSpace(c.ContentType):
		return nil, fmt.Errorf("%w: contenttype %q", ErrBadIsComposing, c.ContentType)
	}
	doc := etree.NewDocument()
	doc.WriteSettings = etree.WriteSettings{CanonicalText: true}
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	root := doc.CreateElement("isComposing")
	root.CreateAttr("xmlns", NSIsComposing)
	root.CreateElement("state").SetText(c.State)
	if c.LastActive != "" {
		root.CreateElement("lastactive").SetText(c.LastActive)
	}
	if c.ContentType != "" {
		root.CreateElement("contenttype").SetText(c.ContentType)
	}
	if c.Refresh > 0 {
		root.CreateElement("refresh").SetText(strconv.Itoa(c.Refresh))
	}
	return doc.WriteToBytes()
}

// Timeout returns how long, in seconds, a receiver keeps this indication
// before it falls back to idle (RFC 3994 3.3, CHAT-52): the refresh
// interval when there is one, else IsComposingDefaultTimeout; 0 for idle,
// which does not expire. When it expires, component sends <active/> to XMPP
// (CHAT-52, derived).
func (c IsComposing) Timeout() int {
	switch {
	case c.State != ComposingActive:
		return 0
	case c.Refresh > 0:
		return c.Refresh
	}
	return IsComposingDefaultTimeout
}

// ChatStateFromIsComposing maps a received isComposing state to the
// XEP-0085 chat state to send to XMPP (RFC 7573 6 Table 3, CHAT-50):
// active -> composing, idle (and anything else, CHAT-51) -> active.
func ChatStateFromIsComposing(c IsComposing) string {
	if c.State == ComposingActive {
		return ChatStateComposing
	}
	return ChatStateActive
}

// IsComposingFromChatState maps an XEP-0085 chat state to the isComposing
// document to send to SIP (RFC 7573 6 Table 4, CHAT-50): composing ->
// active with refresh (raised to IsComposingMinRefresh when below it, CHAT-52;
// 0 gives IsComposingMinRefresh); active, paused and inactive -> idle, with
// lastActive (an RFC 3339 time the caller supplies, or "") as lastactive.
// contentType ("" for none) is the type being composed. ok is false for gone
// (it ends the session: a BYE, CHAT-60/61) and for anything that is not an
// XEP-0085 state; nothing is sent then.
func IsComposingFromChatState(state, lastActive, contentType string, refresh int) (c IsComposing, ok bool) {
	switch state {
	case ChatStateComposing:
		if refresh < IsComposingMinRefresh {
			refresh = IsComposingMinRefresh
		}
		return IsComposing{State: ComposingActive, ContentType: contentType, Refresh: refresh}, true
	case ChatStateActive, ChatStatePaused, ChatStateInactive:
		return IsComposing{State: ComposingIdle, LastActive: lastActive, ContentType: contentType}, true
	}
	return IsComposing{}, false
}
