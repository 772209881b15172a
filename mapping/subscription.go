package mapping

import (
	"fmt"
	"strconv"
	"strings"
)

// SIP event subscriptions (RFC 6665): the Subscription-State header and
// what the gateway does when a subscription fails or ends (CHECKLIST 4.2,
// PRES-15, PRES-16).

// Subscription states and termination reasons (RFC 6665 4.1.3, 8.2.3).
const (
	SubStateActive     = "active"
	SubStatePending    = "pending"
	SubStateTerminated = "terminated"

	ReasonDeactivated = "deactivated"
	ReasonProbation   = "probation"
	ReasonRejected    = "rejected"
	ReasonTimeout     = "timeout"
	ReasonGiveUp      = "giveup"
	ReasonNoResource  = "noresource"
	ReasonInvariant   = "invariant"
)

// MaxDeltaSeconds is the largest delta-seconds value kept; larger ones are
// read as this (RFC 3261 20.19 and 25.1: at most 2**32-1).
const MaxDeltaSeconds = 1<<32 - 1

// SubscriptionState is a Subscription-State header value (RFC 6665 8.2.3):
// `active;expires=3600`, `terminated;reason=rejected`.
type SubscriptionState struct {
	State         string // active, pending, terminated or an extension token; lower-case
	Reason        string // the reason parameter, lower-case; "" when absent
	Expires       int    // the expires parameter in seconds, when HasExpires
	HasExpires    bool
	RetryAfter    int // the retry-after parameter in seconds, when HasRetryAfter
	HasRetryAfter bool
}

// ParseSubscriptionState reads a Subscription-State header value. The state
// and the reason are tokens and come back lower-case (RFC 3261 7.3.1: tokens
// compare case-insensitively); expires and retry-after are delta-seconds
// (capped at MaxDeltaSeconds); other parameters (generic-param: RFC 6446
// rates, extensions) are checked for form and dropped. White space around
// ';' and '=' is allowed. Errors wrap ErrBadSubscriptionState: no state, a
// malformed parameter, a reason that is not a token, a non-numeric or
// repeated expires, retry-after or reason, or CR/LF anywhere.
func ParseSubscriptionState(v string) (SubscriptionState, error) {
	bad := func(why string) (SubscriptionState, error) {
		return SubscriptionState{}, fmt.Errorf("%w: %s in %q", ErrBadSubscriptionState, why, v)
	}
	sc := hdrScanner{s: v}
	sc.skipWS()
	state := sc.token()
	if state == "" {
		return bad("no state")
	}
	s := SubscriptionState{State: strings.ToLower(state)}
	var seenReason bool
	for {
		sc.skipWS()
		if sc.done() {
			break
		}
		if !sc.eat(';') {
			return bad("expected ';'")
		}
		sc.skipWS()
		name := strings.ToLower(sc.token())
		if name == "" {
			return bad("empty parameter name")
		}
		sc.skipWS()
		value, hasValue, quoted := "", false, false
		if sc.eat('=') {
			sc.skipWS()
			var ok bool
			if value, quoted, ok = sc.genValue(); !ok {
				return bad("malformed value of " + name)
			}
			hasValue = true
		}
		switch name {
		case "reason":
			if seenReason || !hasValue || quoted || !validToken(value) {
				return bad("bad reason")
			}
			seenReason, s.Reason = true, strings.ToLower(value)
		case "expires", "retry-after":
			n, ok := deltaSeconds(value)
			if !ok || quoted {
				return bad("bad " + name)
			}
			if name == "expires" {
				if s.HasExpires {
					return bad("expires twice")
				}
				s.Expires, s.HasExpires = n, true
			} else {
				if s.HasRetryAfter {
					return bad("retry-after twice")
				}
				s.RetryAfter, s.HasRetryAfter = n, true
			}
		}
	}
	return s, nil
}

// deltaSeconds reads 1*DIGIT, capped at MaxDeltaSeconds.
func deltaSeconds(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n = n*10 + int(c-'0'); n > MaxDeltaSeconds {
			n = MaxDeltaSeconds + 1 // stays above the cap without overflowing
		}
	}
	return min(n, MaxDeltaSeconds), true
}

// Format writes the header value: state, then reason, expires and
// retry-after when set, e.g. `pending;expires=3600` or
// `terminated;reason=rejected` (PRES-22, PRES-24). State and reason are
// written lower-case. Errors wrap ErrBadSubscriptionState: a state or
// reason that is not a token (which also keeps CR/LF out of the header),
// a number outside 0..MaxDeltaSeconds. It does not enforce that active and
// pending carry expires (PRES-22): the caller sets it.
func (s SubscriptionState) Format() (string, error) {
	if !validToken(s.State) {
		return "", fmt.Errorf("%w: state %q is not a token", ErrBadSubscriptionState, s.State)
	}
	if s.Reason != "" && !validToken(s.Reason) {
		return "", fmt.Errorf("%w: reason %q is not a token", ErrBadSubscriptionState, s.Reason)
	}
	for _, n := range []struct {
		set bool
		v   int
	}{{s.HasExpires, s.Expires}, {s.HasRetryAfter, s.RetryAfter}} {
		if n.set && (n.v < 0 || n.v > MaxDeltaSeconds) {
			return "", fmt.Errorf("%w: %d is not delta-seconds", ErrBadSubscriptionState, n.v)
		}
	}
	b := make([]byte, 0, 48)
	b = append(b, strings.ToLower(s.State)...)
	if s.Reason != "" {
		b = append(b, ";reason="...)
		b = append(b, strings.ToLower(s.Reason)...)
	}
	if s.HasExpires {
		b = append(b, ";expires="...)
		b = strconv.AppendInt(b, int64(s.Expires), 10)
	}
	if s.HasRetryAfter {
		b = append(b, ";retry-after="...)
		b = strconv.AppendInt(b, int64(s.RetryAfter), 10)
	}
	return string(b), nil
}

// hdrScanner walks a SIP header value.
type hdrScanner struct {
	s string
	i int
}

func (h *hdrScanner) done() bool { return h.i >= len(h.s) }

func (h *hdrScanner) skipWS() {
	for h.i < len(h.s) && (h.s[h.i] == ' ' || h.s[h.i] == '\t') {
		h.i++
	}
}

func (h *hdrScanner) eat(c byte) bool {
	if h.i < len(h.s) && h.s[h.i] == c {
		h.i++
		return true
	}
	return false
}

func (h *hdrScanner) token() string {
	start := h.i
	for h.i < len(h.s) && validToken(h.s[h.i:h.i+1]) {
		h.i++
	}
	return h.s[start:h.i]
}

// genValue reads gen-value = token / host / quoted-string (RFC 3261 25.1).
// A host is read loosely: token characters plus ':', '[' and ']'.
func (h *hdrScanner) genValue() (value string, quoted, ok bool) {
	if !h.eat('"') {
		start := h.i
		for h.i < len(h.s) {
			c := h.s[h.i]
			if c != ':' && c != '[' && c != ']' && !validToken(h.s[h.i:h.i+1]) {
				break
			}
			h.i++
		}
		return h.s[start:h.i], false, h.i > start
	}
	var b strings.Builder
	for h.i < len(h.s) {
		c := h.s[h.i]
		h.i++
		switch {
		case c == '"':
			return b.String(), true, true
		case c == '\\':
			if h.i >= len(h.s) || h.s[h.i] == '\r' || h.s[h.i] == '\n' || h.s[h.i] == 0x7f || h.s[h.i] < 0x20 && h.s[h.i] != '\t' {
				return "", true, false
			}
			b.WriteByte(h.s[h.i])
			h.i++
		case c == '\r' || c == '\n' || c == 0x7f || c < 0x20 && c != '\t':
			return "", true, false
		default:
			b.WriteByte(c)
		}
	}
	return "", true, false // unterminated
}

// SubscriptionAction is what the subscriber side of the gateway does after
// a failed SUBSCRIBE (SubscribeFailureAction) or a NOTIFY
// (SubscriptionState.Action).
type SubscriptionAction int

const (
	// ActionNone: nothing to do; the subscription stands.
	ActionNone SubscriptionAction = iota
	// ActionUnsubscribed: the authorization is gone for good. Send
	// <presence type='unsubscribed'/> from the contact to the XMPP user and
	// do not retry (PRES-15 row 1, PRES-16c, TV-24b).
	ActionUnsubscribed
	// ActionRetryMinExpires: 423. Retry at once with Expires set to the
	// response's Min-Expires (PRES-15 row 2, TV-24c).
	ActionRetryMinExpires
	// ActionNewDialog: the dialog is gone but the authorization stands.
	// SUBSCRIBE again at once in a new dialog, with a new Call-ID and
	// From-tag, and send nothing to XMPP (PRES-15 rows 2 and 3, TV-24a).
	ActionNewDialog
	// ActionRetryLater: retry after Retry-After / retry-after if given, else
	// after a backoff. A refreshed subscription stays valid until its old
	// expiry (PRES-15 row 4, PRES-16b and e).
	ActionRetryLater
	// ActionResubscribeNow: the subscription ended but may be re-created at
	// once, in a new dialog (PRES-16a).
	ActionResubscribeNow
	// ActionStop: do not retry; the authorization is not touched, so nothing
	// goes to XMPP (PRES-16d; derived for hopeless initial failures).
	ActionStop
)

var actionNames = [...]string{"none", "unsubscribed", "retry-min-expires", "new-dialog", "retry-later", "resubscribe-now", "stop"}

// String names the action, for logs and metrics.
func (a SubscriptionAction) String() string {
	if a >= 0 && int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// SubscribeFailureAction says what to do after the final response code to
// an outbound SUBSCRIBE; refresh is true for a refresh within an existing
// dialog, false for an initial SUBSCRIBE (PRES-15, RFC 8048 5.2.2, RFC 6665
// 4.1.2.2). Use 408 for a transaction timeout (Timer F) and for no NOTIFY
// within Timer N (PRES-14).
//
//	code                                     refresh            initial
//	1xx, 2xx                                 none               none
//	403, 489, 603                            unsubscribed       unsubscribed
//	423                                      retry-min-expires  retry-min-expires
//	481                                      new-dialog         new-dialog
//	404, 410, 604                            new-dialog         unsubscribed (a)
//	405, 416, 480, 482..485, 501             new-dialog         stop (b), except 480, 482, 483: retry-later
//	3xx, other 4xx, 606                      retry-later        stop (b)
//	408, 486, 491, 5xx, other 6xx            retry-later        retry-later
//
// 489 is both "authorization cancelled" and "dialog gone" in CHECKLIST
// PRES-15; the first row wins (a new dialog would only get 489 again).
// (a) derived: the contact does not exist, which an XMPP server answers with
// unsubscribed (RFC 6121 3.1.3). (b) derived: the same request cannot
// succeed, and redirects are not followed.
func SubscribeFailureAction(code int, refresh bool) SubscriptionAction {
	switch {
	case code < 300:
		return ActionNone
	case code == 403 || code == 489 || code == 603:
		return ActionUnsubscribed
	case code == 423:
		return ActionRetryMinExpires
	case code == 481:
		return ActionNewDialog
	}
	if refresh {
		switch {
		case code == 404 || code == 405 || code == 410 || code == 416 || code >= 480 && code <= 485 ||
			code == 501 || code == 604:
			return ActionNewDialog
		}
		return ActionRetryLater
	}
	switch {
	case code == 404 || code == 410 || code == 604:
		return ActionUnsubscribed
	case code == 408 || code == 480 || code == 482 || code == 483 || code == 486 || code == 491 ||
		code >= 500 && code < 600 && code != 501 || code >= 600 && code != 606:
		return ActionRetryLater
	}
	return ActionStop
}

// Action says what to do after a NOTIFY with this state, once it has been
// answered 200 (PRES-16, RFC 6665 4.1.3): active, pending and unknown
// extension states change nothing; terminated goes by reason:
//
//	deactivated, timeout            resubscribe-now (a MAY for timeout)
//	probation, giveup               retry-later (after retry-after if given)
//	rejected                        unsubscribed (SHOULD NOT retry)
//	noresource, invariant           stop (SHOULD NOT retry)
//	none, or an unknown reason      retry-later (MAY retry)
//
// The expires parameter of a terminated state is ignored (PRES-16, MUST).
func (s SubscriptionState) Action() SubscriptionAction {
	if !strings.EqualFold(s.State, SubStateTerminated) {
		return ActionNone
	}
	switch strings.ToLower(s.Reason) {
	case ReasonDeactivated, ReasonTimeout:
		return ActionResubscribeNow
	case ReasonRejected:
		return ActionUnsubscribed
	case ReasonNoResource, ReasonInvariant:
		return ActionStop
	}
	return ActionRetryLater
}
