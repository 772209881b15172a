package mapping

import "errors"

// Sentinel errors. Functions wrap them with %w and a detail, so callers test
// them with errors.Is. The comment after each says how component/ is expected
// to answer it (DESIGN.md "Order of refusals"; CHECKLIST ADDR-04, ADDR-05,
// ADDR-14, IM-02, IM-08).
var (
	// ErrConfig: the addressing configuration is invalid (start-up error).
	ErrConfig = errors.New("mapping: invalid addressing configuration")

	// ErrSIPS: a sips: URI; S2X must not translate or route it (ADDR-05).
	// SIP 403 or 480.
	ErrSIPS = errors.New("mapping: sips: URIs are not translated")
	// ErrTel: a tel: URI, out of scope (ADDR-04). SIP 416.
	ErrTel = errors.New("mapping: tel: URIs are not translated")
	// ErrUnsupportedScheme: a URI scheme other than sip, sips, tel, im, pres.
	// SIP 416.
	ErrUnsupportedScheme = errors.New("mapping: unsupported URI scheme")
	// ErrUnservedDomain: the domain is neither a served XMPP domain nor the
	// component (DESIGN.md: not an open relay). SIP 404, XMPP item-not-found.
	ErrUnservedDomain = errors.New("mapping: domain not served by this gateway")
	// ErrForeignDomain: a SIP user of another SIP domain while
	// sip.foreign_domains is false. SIP 403 or 404, XMPP item-not-found.
	ErrForeignDomain = errors.New("mapping: foreign SIP domains are disabled")
	// ErrLoop: the address would map a SIP-side address onto a served XMPP
	// domain (or back), which routes to the gateway itself. SIP 404 / XMPP
	// item-not-found.
	ErrLoop = errors.New("mapping: address maps back into a served XMPP domain")
	// ErrNoUser: the address has no user part / localpart. SIP 404, XMPP
	// item-not-found (for the bare component JID: feature-not-implemented is
	// also reasonable).
	ErrNoUser = errors.New("mapping: address has no user part")
	// ErrMalformedJID: not a valid JID, or not the canonical form this
	// gateway produces (ADDR-14). XMPP jid-malformed.
	ErrMalformedJID = errors.New("mapping: malformed JID")
	// ErrMalformedURI: not a valid URI, or one whose user part cannot become
	// a JID localpart (ADDR-14). SIP 400.
	ErrMalformedURI = errors.New("mapping: malformed URI")

	// ErrNoBody: a message with no (non-empty) body; never send an empty
	// MESSAGE (IM-10). Drop silently X2S.
	ErrNoBody = errors.New("mapping: message has no body")
	// ErrNotTranslatable: a stanza type that never becomes a page-mode
	// MESSAGE: error, groupchat (IM-02, ERR-03).
	ErrNotTranslatable = errors.New("mapping: stanza type is not translated to a MESSAGE")
	// ErrUnsupportedType: a body Content-Type we do not accept. SIP 415 with
	// Accept: AcceptHeader (IM-08, TV-05).
	ErrUnsupportedType = errors.New("mapping: unsupported content type")
	// ErrUnsupportedCharset: a text charset other than UTF-8 or US-ASCII.
	// SIP 415.
	ErrUnsupportedCharset = errors.New("mapping: unsupported charset")
	// ErrBadBody: the body (or subject) is not valid UTF-8, holds characters
	// XML forbids, or a message/cpim wrapper is malformed. SIP 400.
	ErrBadBody = errors.New("mapping: malformed message body")

	// ErrBadPIDF: a PIDF body that is not well-formed XML, has no single
	// urn:ietf:params:xml:ns:pidf <presence/> root, or breaks a MUST of RFC
	// 3863 4 (entity, a unique id on every tuple). SIP 400 to the NOTIFY.
	ErrBadPIDF = errors.New("mapping: malformed PIDF document")
	// ErrPIDFTooBig: a PIDF body over PIDFMaxBytes or with more than
	// PIDFMaxTuples tuples. SIP 413 to the NOTIFY.
	ErrPIDFTooBig = errors.New("mapping: PIDF document too large")
	// ErrPIDFTooDeep: a PIDF body nested deeper than PIDFMaxDepth. SIP 400.
	ErrPIDFTooDeep = errors.New("mapping: PIDF document nested too deeply")
	// ErrPresenceType: a presence type other than none or unavailable;
	// subscribe, subscribed, unsubscribe, unsubscribed, probe and error drive
	// the subscription machinery and never become PIDF (PRES-04).
	ErrPresenceType = errors.New("mapping: presence type is not presence state")
	// ErrBadPresence: a presence that cannot be mapped: a show or priority
	// out of range, status text XML cannot carry, a From without localpart
	// or of another user than the document's (PRES-31), a resource given
	// twice (PRES-40c). component drops the presence (presence is not
	// answered with stanza errors).
	ErrBadPresence = errors.New("mapping: presence cannot be mapped")
	// ErrBadSubscriptionState: a malformed Subscription-State value (RFC
	// 6665 8.2.3), or one that cannot be formatted. SIP 400 to the NOTIFY.
	ErrBadSubscriptionState = errors.New("mapping: malformed Subscription-State")

	// ErrBadCPIM: a message/cpim body that breaks RFC 3862 syntax: no blank
	// line after a header block, a bad header name, parameter or value, a
	// malformed From, To, cc, DateTime, NS or Require, a core header given
	// twice that may occur once (CHAT-30). As a SIP MESSAGE body it is a
	// malformed body: SIP 400 (decodeContent wraps it in ErrBadBody).
	// Over MSRP: 400.
	ErrBadCPIM = errors.New("mapping: malformed message/cpim")
	// ErrCPIMTooBig: a message/cpim header block with more than
	// CPIMMaxHeaders headers, or a header line over CPIMMaxLine bytes.
	// SIP 400 (wrapped in ErrBadBody by decodeContent), MSRP 400.
	ErrCPIMTooBig = errors.New("mapping: message/cpim headers over the limits")
	// ErrBadIsComposing: an application/im-iscomposing+xml body that is
	// not well-formed XML, has no urn:ietf:params:xml:ns:im-iscomposing
	// <isComposing/> root, or is over IsComposingMaxBytes (RFC 3994 4,
	// CHAT-51). SIP 400 / MSRP 400; component may also just drop it.
	ErrBadIsComposing = errors.New("mapping: malformed isComposing document")
)
