// Package component is stox's XMPP side and the place where XMPP and SIP
// meet: an XMPP external component (XEP-0114) that translates between XMPP
// stanzas and the SIP side (package sipside) through the pure translations of
// package mapping.
//
// Implemented:
//
//   - XEP-0114: stream opening and handshake (COMP-01, COMP-02), with its own
//     supervision: reconnect with capped, jittered backoff, and an XEP-0199
//     ping watchdog (COMP-04). gosrc.io/xmpp provides the protocol pieces
//     (stream header, handshake and stream-error decoding); its Component type
//     is not used because it cannot bound a blocked write, misses a clean
//     </stream:stream>, routes synchronously and its typed stanzas drop
//     xml:lang on output, extra bodies and unknown payloads. Stanzas are
//     handled as whole Elements instead, read by a small stanza reader
//     (xmlread.go, held to encoding/xml by a differential fuzz test) that
//     costs a fifth of encoding/xml's Decoder.
//
//   - XEP-0030 disco#info/#items on the component and on SIP-user JIDs, with
//     features derived from the registered IQ handlers (COMP-10..12);
//     XEP-0100 jabber:iq:gateway (ADDR-13); XEP-0199 ping (COMP-14);
//     XEP-0092 version. Every get/set IQ gets exactly one answer (COMP-05).
//
//   - RFC 7572 page-mode IM both ways (IM-01..IM-17), with RFC 7247 errors
//     (ERR-01..ERR-05): one Session per XMPP user keeps one MESSAGE in flight
//     per SIP destination, so order holds; an outbox queues (bounded) while
//     the XMPP server is away.
//
//   - RFC 8048 presence both ways (PRES-*): virtual subscriptions owned by
//     one task loop (presence.go explains why not the per-user Session),
//     kept in the store (package store, an append-only journal) and
//     restored with spread refreshes.
//
//   - RFC 7573 one-to-one chat sessions over MSRP (CHAT-*): chat.go, one
//     goroutine per session; receipts, chat states, gone and BYE.
//
// Not yet: groupchat (RFC 7702), ad-hoc commands (XEP-0050/0133), entity
// capabilities.
package component
