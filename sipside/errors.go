package sipside

import (
	"errors"
	"strconv"
)

// Sentinel errors. Callers match them with errors.Is; the package wraps them
// with %w and adds context.
var (
	// ErrOption reports an invalid option given to New.
	ErrOption = errors.New("sipside: invalid option")

	// ErrStarted is returned by a second call to Start.
	ErrStarted = errors.New("sipside: already started")

	// ErrNotStarted is returned by SendMessage before Start has bound the
	// listeners (the Via sent-by of every request names a listener).
	ErrNotStarted = errors.New("sipside: not started")

	// ErrClosed is returned once Close has been called.
	ErrClosed = errors.New("sipside: closed")

	// ErrTimeout means no final response arrived in time: Timer F
	// (WithTransactionTimeout), or the caller's context deadline.
	// A transaction timeout is treated like SIP 408 (ERR-04).
	ErrTimeout = errors.New("sipside: transaction timed out")

	// ErrTooLarge means the request could not be sent within the size rules:
	// over UDP with policy "reject" and more than 1300 bytes (IM-11, D1), or a
	// request that cannot be chunked.
	ErrTooLarge = errors.New("sipside: request too large")

	// ErrTransport means the next hop could not be resolved, connected to or
	// written to.
	ErrTransport = errors.New("sipside: transport failure")

	// ErrHeaderValue means a caller-supplied value cannot be put into a SIP
	// header safely (a URI that does not parse, a control character in a
	// URI, Call-ID, Content-Type or Content-Language).
	ErrHeaderValue = errors.New("sipside: invalid header value")
)

// StatusError is a SIP final response that is not a success, as an error.
// Result.Err returns it for 3xx-6xx final responses.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	reason := e.Reason
	if reason == "" {
		reason = reasonPhrase(e.Code)
	}
	return "sipside: status " + strconv.Itoa(e.Code) + " " + reason
}
