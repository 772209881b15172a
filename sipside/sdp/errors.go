package sdp

import "errors"

// Sentinel errors. Functions wrap them with %w and a detail; callers test
// them with errors.Is. The comment after each says how a SIP user agent is
// expected to answer it (RFC 3261 21, RFC 4975 8.6, CHECKLIST CHAT-10).
var (
	// ErrBadSDP: the body is not SDP that pion/sdp reads, or its MSRP media
	// line breaks RFC 4975 8 (no c=, no a=path, no a=accept-types, a value
	// that is not what the grammar allows). SIP 400 (or 488 to an INVITE).
	ErrBadSDP = errors.New("sdp: malformed session description")
	// ErrNoMSRPMedia: no m=message line with TCP/MSRP or TCP/TLS/MSRP and a
	// port other than 0. SIP 488 Not Acceptable Here.
	ErrNoMSRPMedia = errors.New("sdp: no usable MSRP media line")
	// ErrMSRPRejected: the message line is there with port 0, the answerer's
	// refusal (RFC 3264 6; RFC 4975 8.6). It is returned wrapped together
	// with ErrNoMSRPMedia. End the session attempt.
	ErrMSRPRejected = errors.New("sdp: MSRP media line rejected (port 0)")
	// ErrNoCommonType: the offer's accept-types and ours have nothing in
	// common (RFC 4975 8.6, CHAT-10c). SIP 488, or answer with port 0.
	ErrNoCommonType = errors.New("sdp: no acceptable media type in common")
	// ErrBadMedia: an MSRPMedia or Origin given to BuildOffer or
	// BuildAnswer is not valid: a value with CR, LF or another control
	// character, a port out of range, a path URI that is not msrp: or
	// msrps: or does not agree with the media line (CHAT-02), an unknown
	// setup or direction, no accept-types. A programming or configuration
	// error: nothing is sent.
	ErrBadMedia = errors.New("sdp: invalid MSRP media description")
)
