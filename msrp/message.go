package msrp

import (
	"fmt"
	"strings"
	"sync"
)

// Message is a whole MSRP message: what Session.Send sends, chunked, and
// what a Handler receives, reassembled (RFC 4975 s5.1, CHAT-26).
type Message struct {
	// ID is the Message-ID. Send assigns a fresh one when it is empty;
	// a message sent again keeps its ID (RFC 4975 s5.4, CHAT-62).
	ID string
	// ContentType is required when Body is not empty. CPIM wrapping, if
	// any, is the caller's (CHAT-30g: wrap first, then chunk).
	ContentType string
	Body        []byte
	// SuccessReport asks for (outgoing) or announces a request for
	// (incoming) a success REPORT (RFC 4975 s7.1.2, CHAT-40, CHAT-42).
	SuccessReport bool
	// FailureReport is "", "yes", "no" or "partial"; "" sends no header,
	// which means "yes" (CHAT-23). A gateway sends "no" (CHAT-28).
	FailureReport string
	// Headers are extension and MIME headers (Content-ID, ...), sent on
	// every chunk; on a received message, those of its first chunk.
	Headers []Header
	// FromPath is the From-Path of a received message, where its REPORTs
	// go. Ignored by Send.
	FromPath []URL
}

// check validates an outgoing message.
func (m *Message) check() error {
	if !validMessageID(m.ID) {
		return fmt.Errorf("%w: Message-ID %q", ErrInvalid, m.ID)
	}
	if len(m.Body) > 0 && m.ContentType == "" {
		return fmt.Errorf("%w: a body needs a Content-Type", ErrInvalid)
	}
	if m.ContentType != "" && (!validText(m.ContentType) || m.ContentType != trimSpace(m.ContentType)) {
		return fmt.Errorf("%w: Content-Type %q", ErrInvalid, m.ContentType)
	}
	switch m.FailureReport {
	case "", ReportYes, ReportNo, ReportPartial:
	default:
		return fmt.Errorf("%w: Failure-Report %q", ErrInvalid, m.FailureReport)
	}
	for _, h := range m.Headers {
		if !validHeaderName(h.Name) || knownHeader(h.Name) || !validText(h.Value) || h.Value != trimSpace(h.Value) {
			return fmt.Errorf("%w: header %q", ErrInvalid, h.Name)
		}
	}
	return nil
}

// wantsResponses: a SEND without Failure-Report "no" or "partial" gets a
// 200 for each chunk (CHAT-23a).
func (m *Message) wantsResponses() bool {
	return m.FailureReport == "" || m.FailureReport == ReportYes
}

// Report is a REPORT request (RFC 4975 s7.1.2).
type Report struct {
	MessageID string
	Status    Status
	// ByteRange is the part of the message reported on; nil when absent
	// (the whole message).
	ByteRange *ByteRange
	FromPath  []URL
	Headers   []Header
}

// Err returns nil for a success report, a *StatusError for a failure.
func (r *Report) Err() error { return r.Status.Err() }

// Handler receives what a session's peer sends. Its functions run on the
// session's read goroutine, in the order frames arrive: they must return
// quickly, and must not call Session.Send, SetNickname or Close, which wait
// for that goroutine (STYLE.md: callbacks enqueue work and return).
// Session.Report and NicknameRequest.Respond only queue a frame and are
// safe to call from them. Nil functions are skipped.
type Handler struct {
	// Message receives each complete message, reassembled from its chunks
	// (CHAT-26). A bodiless SEND (Byte-Range 1-0/0, as sent to open a
	// connection) is answered but not delivered (TV-28a).
	Message func(s *Session, m *Message)
	// Report receives REPORTs that do not settle a pending Send: failure
	// reports after Send returned, reports for unknown Message-IDs (which
	// RFC 4975 s7.1.2 says to ignore, CHAT-41).
	Report func(s *Session, r *Report)
	// Nickname receives NICKNAME requests (RFC 7701 s7); answer each with
	// Respond. Without it, NICKNAME gets 501.
	Nickname func(s *Session, r *NicknameRequest)
	// Closed is called once when the session ends for a reason other than
	// Close: connection lost, timeout, protocol violation (CHAT-62).
	Closed func(s *Session, err error)
}

// NicknameRequest is a received NICKNAME request (RFC 7701 s7).
type NicknameRequest struct {
	// Nickname is the decoded Use-Nickname value; "" asks to remove the
	// nickname (RFC 7701 s7.3).
	Nickname string

	s    *Session
	req  *Frame
	once sync.Once
}

// Respond answers the request: 200 (accepted; the nickname takes effect
// now), 403 (policy), 424 (malformed) or 425 (reserved or in use) (RFC 7701
// s10.3, CHECKLIST D4). Only the first call has an effect.
func (r *NicknameRequest) Respond(code int, reason string) error {
	err := fmt.Errorf("%w: already answered", ErrInvalid)
	r.once.Do(func() {
		err = r.s.respond(r.req, code, reason)
	})
	return err
}

// mediaTypeAccepted matches a Content-Type against SDP accept-types
// (RFC 4975 s8.6): "*", "type/*" or "type/subtype", parameters ignored.
func mediaTypeAccepted(contentType string, accept []string) bool {
	if accept == nil {
		return true
	}
	mt, _, _ := strings.Cut(contentType, ";")
	mt = trimSpace(mt)
	major, _, _ := strings.Cut(mt, "/")
	for _, a := range accept {
		switch {
		case a == "*":
			return true
		case strings.HasSuffix(a, "/*"):
			if strings.EqualFold(a[:len(a)-2], major) {
				return true
			}
		case strings.EqualFold(a, mt):
			return true
		}
	}
	return false
}
