// Package sdp builds and reads the session descriptions of MSRP chat
// sessions: the SDP offer/answer (RFC 3264 over RFC 4566) of RFC 4975 8,
// as RFC 7573 (one-to-one chat between SIP and XMPP) uses it. Item ids refer
// to shared/spec/CHECKLIST.md (CHAT-02, CHAT-03, CHAT-05, CHAT-10, CHAT-29).
//
// What it implements:
//   - RFC 4975 8.1-8.6: the message media line `m=message <port> TCP/MSRP *`
//     or `TCP/TLS/MSRP` (msrps: URIs), `c=`, and the attributes
//     accept-types, accept-wrapped-types, path (one or more MSRP URIs,
//     relays first, RFC 4976) and max-size; the accept-types intersection
//     an answerer offers back, with wildcards (`*`, `text/*`).
//   - RFC 6135 (connection setup for MSRP, from RFC 4145): a=setup with
//     active, passive or actpass.
//   - RFC 4566 6 / RFC 3264 5.1: the direction attributes sendrecv,
//     sendonly, recvonly, inactive.
//   - The SDP text itself is github.com/pion/sdp/v3 (v3.0.20): parsing is
//     as strict as it is (v=, o=, s= and t= are required).
//
// What it deliberately does not do:
//   - It opens no connection and knows no MSRP framing (package msrp does),
//     and it is free of SIP stack types: it speaks bytes and small structs.
//   - It does not draw session ids or versions (the caller passes them: the
//     o= line and the session-id inside the path URI are the caller's).
//   - Only the first usable m=message line is read (RFC 7573 uses one);
//     other media lines, and message lines with port 0 after it, are ignored.
//   - RFC 4975's optional a=accept-types parameters for file transfer (RFC
//     5547) and a=connection (RFC 4145) are not read.
//   - The RFC 4975 10.1 offer has no t= line, which RFC 4566 5 requires:
//     such an offer is refused (ErrBadSDP), not repaired.
package sdp
