// Package mapping is the pure translation core of stox: addresses, error
// conditions and page-mode message fields between SIP and XMPP.
//
// It performs no I/O, starts no goroutines, reads no clock, draws no random
// numbers and does not log; ids and times are the caller's. It depends on the
// standard library and github.com/beevik/etree (PIDF) only. Everything here
// is safe for concurrent use, except that a PresenceState value, like any
// other, has one owner.
//
// What it implements (item ids refer to shared/spec/CHECKLIST.md):
//   - RFC 7247 (SIP-XMPP interworking: architecture, addresses, errors): the
//     address algorithms of 6.4 and 6.5 (ADDR-06, ADDR-07, TV-10, TV-11) and
//     the error tables of 7.1 and 7.2 (ERR-01..ERR-07, TV-07..TV-09).
//   - XEP-0106 (JID Escaping) for the gateway-host addressing "Model B" of
//     DESIGN.md (ADDR-01, ADDR-11, TV-12): SIP users of other domains appear
//     as carol\40other.net@sip.example.com. The mapping is bijective between
//     canonical JIDs and normal-form SIP URIs; Addressing documents it.
//   - RFC 7572 (page-mode IM) with RFC 3428 (MESSAGE): the field tables of 4
//     and 5 (IM-01..IM-10, TV-01..TV-05), and UTF-8-safe splitting for the
//     local chunking mode (IM-12c).
//   - RFC 3862 (CPIM): parser and writer (header namespaces, escapes,
//     DateTime, the MIME part); a message/cpim body wrapping text/plain or
//     text/html is unwrapped, and its From is never trusted over the
//     authenticated SIP identity (CPIMFromMatches).
//   - RFC 3994 (isComposing) and XEP-0085 chat states (CHECKLIST 5.5).
//   - XEP-0071 (XHTML-IM): S->X text/html is accepted when well-formed and
//     rewritten to the recommended profile.
//   - RFC 6120 8.3: stanza error conditions and their types (ERR-02, ERR-05).
//   - RFC 5122 xmpp: URIs, as carried by <gone/>.
//   - RFC 8048 6 (presence) over RFC 3863 (PIDF): Tables 1 and 2 (CHECKLIST
//     4.4, 4.5; PRES-04, PRES-13c, PRES-29, PRES-40..PRES-43, TV-17..TV-19,
//     TV-21), RPID activities of RFC 4480 both ways (PRES-43), and of RFC
//     6665 the Subscription-State header and the failure and termination
//     tables of PRES-15 and PRES-16 as actions. The subscription machinery
//     itself (dialogs, timers, state across restarts) is component's.
//
// What it deliberately does not do:
//   - IDN: domains are ASCII host names; RFC 7247 6.1 leaves IDN mapping out.
//   - tel: URIs are recognised only to be refused (ErrTel, ADDR-04); sips: is
//     refused (ErrSIPS, ADDR-05).
//   - Temporary GRUUs are not mapped (RFC 7247 6.3, ADDR-09); a gr parameter
//     is taken as a resource name and nothing else.
//   - Nodeprep/PRECIS: JIDs are validated (forbidden characters, controls,
//     lengths) but not case-folded or normalised. XMPP servers case-fold
//     localparts, SIP user parts are case-sensitive: a SIP user whose user
//     part has capitals is reachable from XMPP only if the SIP side matches
//     users case-insensitively.
//   - IPv6-literal hosts are parsed but not mapped to JIDs.
//   - The im: and pres: schemes are read like sip: but never produced: the
//     SRV check of ADDR-07 step 4 is the caller's business.
package mapping
