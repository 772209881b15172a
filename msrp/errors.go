package msrp

import (
	"errors"
	"strconv"
)

// Sentinel errors. The package wraps them with %w and a detail; callers test
// them with errors.Is.
var (
	// ErrNeedMore: the Parser holds an incomplete frame and needs more
	// bytes. It is not a failure.
	ErrNeedMore = errors.New("msrp: need more bytes")

	// ErrBufferFull: Parser.Write accepted only part of its input because
	// the parser already holds as many bytes as one frame may have. Call
	// Next until it returns ErrNeedMore, then write the rest.
	ErrBufferFull = errors.New("msrp: parser buffer full")

	// ErrMalformed: bytes that are not a valid MSRP frame (RFC 4975 s9).
	// A request that can be answered gets 400.
	ErrMalformed = errors.New("msrp: malformed frame")

	// ErrTooLarge: a header section, body or frame over the configured
	// limits, or a message over the reassembly limit. Answered with 413;
	// an oversized frame also closes the connection.
	ErrTooLarge = errors.New("msrp: too large")

	// ErrInvalidURL: a string that is not an MSRP URL (RFC 4975 s6).
	ErrInvalidURL = errors.New("msrp: invalid URL")

	// ErrInvalid: a frame, message or value given to the package that
	// cannot be put on the wire as it is (a CR or LF in a header value, a
	// body that contains its own end-line, a missing To-Path, ...).
	ErrInvalid = errors.New("msrp: invalid value")

	// ErrOption: an invalid option.
	ErrOption = errors.New("msrp: invalid option")

	// ErrTimeout: no response within the transaction timeout (treated like
	// a 408, RFC 4975 s10, CHAT-05), a context deadline, or a peer that
	// stayed silent past the idle, frame or bind timeout. A *StatusError
	// with Code 408 also matches it.
	ErrTimeout = errors.New("msrp: timed out")

	// ErrClosed: the session or listener was closed, locally or because its
	// connection ended (CHAT-62). The cause, if any, is wrapped as well.
	ErrClosed = errors.New("msrp: closed")

	// ErrQueueFull: the session's outgoing queue is full; nothing was sent.
	ErrQueueFull = errors.New("msrp: send queue full")

	// ErrSessionExists: Listener.Expect with a session-id that is already
	// registered.
	ErrSessionExists = errors.New("msrp: session id already registered")

	// ErrNotRequested: Session.Report for a report the message's
	// Success-Report or Failure-Report header did not ask for (CHAT-23,
	// CHAT-42).
	ErrNotRequested = errors.New("msrp: report not requested by the sender")

	// ErrAborted: an outgoing message was interrupted with '#' because its
	// context ended (RFC 4975 s7.1).
	ErrAborted = errors.New("msrp: message aborted")
)

// StatusError is an MSRP status other than 200, received as a transaction
// response or in the Status header of a REPORT (RFC 4975 s7.1.2, s10).
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	reason := e.Reason
	if reason == "" {
		reason = ReasonPhrase(e.Code)
	}
	return "msrp: status " + strconv.Itoa(e.Code) + " " + reason
}

// Is makes a 408 match ErrTimeout: RFC 4975 s10 has endpoints treat a 408
// like their own transaction timeout (CHAT-05).
func (e *StatusError) Is(target error) bool {
	return target == ErrTimeout && e.Code == 408
}

// ParseError describes a frame the Parser could not accept.
type ParseError struct {
	// Err wraps ErrMalformed or ErrTooLarge with a detail.
	Err error
	// Code is the status a request in this state should get: 400 for a
	// malformed request, 413 for one over the limits.
	Code int
	// Fatal means the parser cannot find the next frame: the connection
	// must be closed (after answering, when Frame allows it). A non-fatal
	// error has skipped the whole frame, up to its end-line.
	Fatal bool
	// Frame holds what was understood: at least TID and Method or Code when
	// the start line was read, and To-Path, From-Path and Failure-Report
	// when they were. Nil when the start line itself was not understood.
	Frame *Frame
}

func (e *ParseError) Error() string {
	s := e.Err.Error()
	if e.Frame != nil && e.Frame.TID != "" {
		s += " (transaction " + e.Frame.TID + ")"
	}
	return s
}

func (e *ParseError) Unwrap() error { return e.Err }

// Status codes of RFC 4975 s10 and RFC 7701 s10.3.
const (
	StatusOK                  = 200
	StatusBadRequest          = 400
	StatusForbidden           = 403
	StatusTimeout             = 408
	StatusStopSending         = 413
	StatusUnsupportedMedia    = 415
	StatusOutOfBounds         = 423
	StatusMalformedNickname   = 424
	StatusNicknameInUse       = 425
	StatusNoSession           = 481
	StatusUnknownMethod       = 501
	StatusSessionAlreadyBound = 506
)

// ReasonPhrase is the comment stox puts after a status code. MSRP comments
// are free text (RFC 4975 s7.2); these follow the meanings of s10.
func ReasonPhrase(code int) string {
	switch code {
	case StatusOK:
		return "OK"
	case StatusBadRequest:
		return "Bad Request"
	case StatusForbidden:
		return "Forbidden"
	case StatusTimeout:
		return "Request Timeout"
	case StatusStopSending:
		return "Message Too Large"
	case StatusUnsupportedMedia:
		return "Unsupported Media Type"
	case StatusOutOfBounds:
		return "Parameter Out Of Bounds"
	case StatusMalformedNickname:
		return "Malformed Nickname"
	case StatusNicknameInUse:
		return "Nickname Reserved Or In Use"
	case StatusNoSession:
		return "Session Does Not Exist"
	case StatusUnknownMethod:
		return "Unknown Method"
	case StatusSessionAlreadyBound:
		return "Session Already Bound"
	}
	return "Status " + strconv.Itoa(code)
}
