package mapping

import "strings"

// Stanza error conditions (RFC 6120 8.3.3), the vocabulary of the ERR-*
// tables.
const (
	CondBadRequest            = "bad-request"
	CondConflict              = "conflict"
	CondFeatureNotImplemented = "feature-not-implemented"
	CondForbidden             = "forbidden"
	CondGone                  = "gone"
	CondInternalServerError   = "internal-server-error"
	CondItemNotFound          = "item-not-found"
	CondJIDMalformed          = "jid-malformed"
	CondNotAcceptable         = "not-acceptable"
	CondNotAllowed            = "not-allowed"
	CondNotAuthorized         = "not-authorized"
	CondPolicyViolation       = "policy-violation"
	CondRecipientUnavailable  = "recipient-unavailable"
	CondRedirect              = "redirect"
	CondRegistrationRequired  = "registration-required"
	CondRemoteServerNotFound  = "remote-server-not-found"
	CondRemoteServerTimeout   = "remote-server-timeout"
	CondResourceConstraint    = "resource-constraint"
	CondServiceUnavailable    = "service-unavailable"
	CondSubscriptionRequired  = "subscription-required"
	CondUndefinedCondition    = "undefined-condition"
	CondUnexpectedRequest     = "unexpected-request"
)

// Stanza error types (RFC 6120 8.3.2).
const (
	ErrorTypeAuth     = "auth"
	ErrorTypeCancel   = "cancel"
	ErrorTypeContinue = "continue"
	ErrorTypeModify   = "modify"
	ErrorTypeWait     = "wait"
)

// StanzaError is an XMPP stanza error (RFC 6120 8.3; ERR-02 c).
type StanzaError struct {
	Type      string // "cancel", "wait", "modify", "auth", "continue" (ERR-05)
	Condition string // e.g. "item-not-found"
	Text      string // optional human text (the SIP Reason-Phrase, ERR-01)
	Gone      string // for "gone": the xmpp: URI of the new address; 301 MUST carry it, 410 MUST NOT
}

// Error makes a StanzaError usable as a Go error.
func (e StanzaError) Error() string {
	s := "mapping: stanza error " + e.Type + "/" + e.Condition
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

func stanzaError(cond, text string) StanzaError {
	return StanzaError{Type: ErrorTypeFor(cond), Condition: cond, Text: text}
}

// ErrorTypeFor returns the error type RFC 6120 8.3.3 associates with a
// condition (ERR-05; CHECKLIST 2.1 column 1). Where the RFC allows two, the
// first listed there is used: policy-violation -> modify (as IM-11 wants),
// unexpected-request -> wait. undefined-condition and unknown conditions ->
// cancel.
func ErrorTypeFor(condition string) string {
	switch condition {
	case CondBadRequest, CondJIDMalformed, CondNotAcceptable, CondPolicyViolation, CondRedirect:
		return ErrorTypeModify
	case CondForbidden, CondNotAuthorized, CondRegistrationRequired, CondSubscriptionRequired:
		return ErrorTypeAuth
	case CondRecipientUnavailable, CondRemoteServerTimeout, CondResourceConstraint, CondUnexpectedRequest:
		return ErrorTypeWait
	}
	// conflict, feature-not-implemented, gone, internal-server-error,
	// item-not-found, not-allowed, remote-server-not-found,
	// service-unavailable, undefined-condition.
	return ErrorTypeCancel
}

// sipCondition is RFC 7247 7.2 Table 3 (CHECKLIST 2.2), with the class
// fallback for unlisted codes (3xx redirect, 4xx bad-request, 5xx
// internal-server-error, 6xx recipient-unavailable). 301 is handled by the
// callers (it needs the Contact). 1xx/2xx and out-of-range codes have no
// counterpart (ERR-01): undefined-condition.
func sipCondition(code int) string {
	switch code {
	case 300, 302, 305:
		return CondRedirect
	case 301, 410:
		return CondGone
	case 380, 406, 415, 416, 421, 482, 483, 488, 505, 606:
		return CondNotAcceptable
	case 400, 402, 493: // 402: payment-required was removed in RFC 6120
		return CondBadRequest
	case 401:
		return CondNotAuthorized
	case 403:
		return CondForbidden
	case 404, 481, 484, 485, 604:
		return CondItemNotFound
	case 405, 420, 439, 501:
		return CondFeatureNotImplemented
	case 407:
		return CondRegistrationRequired
	case 408, 504:
		return CondRemoteServerTimeout
	case 413, 414, 440, 489, 513:
		return CondPolicyViolation
	case 423:
		return CondResourceConstraint
	case 430, 480, 486, 487, 600, 603:
		return CondRecipientUnavailable
	case 491:
		return CondUnexpectedRequest
	case 500, 503: // 503 is never service-unavailable (TV-08a)
		return CondInternalServerError
	case 502:
		return CondRemoteServerNotFound
	}
	switch code / 100 {
	case 3:
		return CondRedirect
	case 4:
		return CondBadRequest
	case 5:
		return CondInternalServerError
	case 6:
		return CondRecipientUnavailable
	}
	return CondUndefinedCondition
}

// ErrorForSIP maps a final SIP response to a stanza error (RFC 7247 7.2,
// CHECKLIST 2.2, ERR-01, ERR-04, TV-07, TV-08). reason becomes Text. A 301
// becomes <gone/> carrying the new address as an xmpp: URI, converted from
// contactURI (a SIP URI, optionally in <...>) with the plain RFC 7247 6.4
// algorithm (JIDFromSIPURI); if there is no usable contact the MUST cannot
// be met and the 3xx class fallback, redirect, is used instead. A 410 is
// <gone/> with no address. Use Addressing.ErrorForSIP to convert the
// contact with the deployment's address scheme.
func ErrorForSIP(code int, reason string, contactURI string) StanzaError {
	return errorForSIP(code, reason, contactURI, JIDFromSIPURI)
}

// ErrorForSIP is the package ErrorForSIP, but converts a 301 Contact with
// the deployment's scheme (JIDForURI): sip:carol@other.net becomes
// xmpp:carol%5C40other.net@sip.example.com.
func (a *Addressing) ErrorForSIP(code int, reason string, contactURI string) StanzaError {
	return errorForSIP(code, reason, contactURI, a.JIDForURI)
}

func errorForSIP(code int, reason, contact string, toJID func(string) (string, error)) StanzaError {
	if code != 301 {
		return stanzaError(sipCondition(code), reason)
	}
	if jid, ok := contactJID(contact, toJID); ok {
		e := stanzaError(CondGone, reason)
		e.Gone = XMPPURI(jid)
		return e
	}
	return stanzaError(CondRedirect, reason)
}

// contactJID converts a Contact value (`sip:...`, `<sip:...>`,
// `"Name" <sip:...>;q=1`, or an xmpp: URI) to a JID.
func contactJID(contact string, toJID func(string) (string, error)) (string, bool) {
	c := strings.TrimSpace(contact)
	if i := strings.IndexByte(c, '<'); i >= 0 {
		j := strings.IndexByte(c[i:], '>')
		if j < 0 {
			return "", false
		}
		c = c[i+1 : i+j]
	}
	if c == "" {
		return "", false
	}
	var jid string
	var err error
	if len(c) >= 5 && strings.EqualFold(c[:5], "xmpp:") {
		jid, err = JIDFromXMPPURI(c)
	} else {
		jid, err = toJID(c)
	}
	return jid, err == nil
}

// ErrorForTimeout is the stanza error for a SIP transaction that got no
// final response (Timer F, ERR-04): treated like 408, remote-server-timeout,
// type wait.
func ErrorForTimeout() StanzaError {
	return stanzaError(CondRemoteServerTimeout, "")
}

// ErrorForMSRP maps an MSRP transaction response code to a stanza error
// (ERR-06, derived): like the SIP code of the same number, except 428 ->
// feature-not-implemented (private messages not supported, RFC 7701) and,
// for a NICKNAME request (nickname true), 425 -> conflict, 424 ->
// jid-malformed, 403 -> not-acceptable (RFC 7701 10.3, TV-33).
func ErrorForMSRP(code int, reason string, nickname bool) StanzaError {
	if nickname {
		switch code {
		case 425:
			return stanzaError(CondConflict, reason)
		case 424:
			return stanzaError(CondJIDMalformed, reason)
		case 403:
			return stanzaError(CondNotAcceptable, reason)
		}
	}
	if code == 428 {
		return stanzaError(CondFeatureNotImplemented, reason)
	}
	return stanzaError(sipCondition(code), reason)
}

// SIPStatusForError maps a stanza error to a SIP status code (RFC 7247 7.1,
// CHECKLIST 2.1, TV-09). fullJID says whether the error is about a full JID:
// where the table lists two codes, the 4xx is for a full JID and the 6xx (or
// 501) for a bare one. For gone with an xmpp: address the result is 301 and
// the SIP URI to put in Contact (plain RFC 7247 6.5, SIPURIFromJID), else
// 410 (a MUST, note 3). Choices where the table leaves one:
// service-unavailable -> 403 (never 503; 405 would need an Allow header),
// remote-server-not-found -> 404 (the error does not say whether the domain
// exists), unexpected-request -> 491, unknown conditions -> 400 as
// undefined-condition.
func SIPStatusForError(e StanzaError, fullJID bool) (code int, contact string) {
	return sipStatusForError(e, fullJID, SIPURIFromJID)
}

// SIPStatusForError is the package SIPStatusForError, but converts a gone
// address with the deployment's scheme (URIForJID).
func (a *Addressing) SIPStatusForError(e StanzaError, fullJID bool) (code int, contact string) {
	return sipStatusForError(e, fullJID, a.URIForJID)
}

func sipStatusForError(e StanzaError, full bool, toURI func(string) (string, error)) (int, string) {
	pick := func(fullCode, bareCode int) int {
		if full {
			return fullCode
		}
		return bareCode
	}
	switch e.Condition {
	case CondFeatureNotImplemented:
		return pick(405, 501), ""
	case CondForbidden:
		return pick(403, 603), ""
	case CondItemNotFound:
		return pick(404, 604), ""
	case CondNotAcceptable:
		return pick(406, 606), ""
	case CondRecipientUnavailable:
		return pick(480, 600), ""
	case CondGone:
		if e.Gone != "" {
			if jid, err := JIDFromXMPPURI(strings.TrimSpace(e.Gone)); err == nil {
				if uri, err := toURI(jid); err == nil {
					return 301, uri
				}
			}
		}
		return 410, ""
	case CondInternalServerError, CondResourceConstraint:
		return 500, ""
	case CondNotAllowed, CondPolicyViolation, CondServiceUnavailable:
		return 403, ""
	case CondNotAuthorized:
		return 401, ""
	case CondRedirect:
		return 302, ""
	case CondRegistrationRequired:
		return 407, ""
	case CondRemoteServerNotFound:
		return 404, ""
	case CondRemoteServerTimeout:
		return 408, ""
	case CondUnexpectedRequest:
		return 491, ""
	}
	// bad-request, conflict, jid-malformed, subscription-required,
	// undefined-condition and anything unknown.
	return 400, ""
}
