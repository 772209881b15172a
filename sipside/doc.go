// Package sipside is the SIP side of stox: a SIP user agent on top of
// github.com/emiago/sipgo that sends and receives page-mode instant
// messages. It knows nothing of XMPP; component/ translates.
//
// # Standards
//
//   - RFC 3261 (SIP): UDP, TCP and TLS listeners; request validation
//     (§8.2: 400, 405 with Allow, 416, 501, 505); OPTIONS (§11); the
//     1300-byte rule for UDP (§18.1.1); Content-Length framing of
//     datagrams (§18.3); stateless answers routed by Via and rport (§18.2.2,
//     RFC 3581).
//   - RFC 3263 (locating SIP servers): the next hop is the outbound proxy
//     or the Request-URI; an IP or an explicit port is used as given, a name
//     without a port is looked up with SRV, then A/AAAA. NAPTR is not
//     queried.
//   - RFC 3428 (MESSAGE): no Contact in a MESSAGE or its 2xx (IM-04), no
//     dialog (IM-05), exactly one final response per request (IM-15),
//     one chunk at a time when chunking (IM-12).
//   - RFC 5393 / RFC 3261 §8.1.1.6: Max-Forwards 70 on our requests;
//     Max-Forwards 0 on a request we would forward is answered 483
//     (ADDR-15).
//
// # Incoming requests
//
// Every request is refused in the order of DESIGN.md: an untrusted source
// (WithTrusted) gets 403, then a malformed request 400 (or 416, 483, 505).
// Domain decisions (404, 415) and the body limit (413, see
// IncomingMessage.TooLarge) are the MessageHandler's. Each refusal is
// logged with source, method and code; bodies are logged only at Debug
// (sipgo's own logs are filtered likewise).
//
// sipgo handles each request on its own goroutine. sipside restores the
// arrival order per conversation (sender AOR, Request-URI user@host): the
// handler is called for one MESSAGE of a conversation at a time, in the
// order the transport read them (see sequencer.go for the bounds).
//
// Overload: at most WithMaxIncoming MESSAGEs (default 512) are between the
// socket and their final response at once; beyond it a new MESSAGE is
// answered 503 with Retry-After at once, over UDP statelessly before sipgo
// parses it all (a retransmission of a MESSAGE in progress is left to its
// transaction, so nothing gets two final responses). Senders back off
// within a round trip instead of retransmitting into a growing backlog.
// UDP listeners ask for 4 MiB socket buffers (capped by net.core.rmem_max).
//
// Size limits: sipgo's parser refuses a message larger than the body limit
// (WithMaxMessageBody, default 64 KiB) plus 16 KiB of headers; on TCP/TLS
// it closes the connection without an answer. Over UDP a datagram larger
// than that, or than sipgo's read buffer (the package variable
// sip.TransportBufferReadSize, 32 KiB by default; a main may raise it to
// 65535 to meet RFC 3261 §18.1.1), is answered 513.
//
// Known gaps inherited from sipgo: a request without Via or CSeq (or with a
// CSeq that does not parse) is answered 400 by sipgo's transaction layer
// before sipside sees it, so even an untrusted source gets that 400 rather
// than 403; a message that does not parse at all is dropped.
//
// # Outgoing requests
//
// SendMessage builds every header itself, sanitising caller values (URIs,
// Call-ID, Content-Type and Content-Language are refused with
// ErrHeaderValue; Subject and display names have control characters
// replaced). The whole request is measured as it will be written; over UDP
// above 1300 bytes the LargePolicy applies (D1, IM-11, IM-12, TV-06).
// Transactions in flight are bounded (WithMaxInFlight) and each has a
// deadline (WithTransactionTimeout, Timer F); sipgo's global timers are not
// touched.
//
// # The page-mode fast path
//
// MESSAGE over UDP, both ways, does not go through sipgo unless it has to
// (WithFastPath, on by default; fastpath.go, wire.go). A narrow reader
// accepts plain, well-formed MESSAGE datagrams and hands the handler what
// the usual path would; a server transaction keyed by branch and sent-by
// absorbs retransmissions and repeats the final response for 64*T1. A
// MESSAGE sent over UDP to an IP address within 1300 bytes is written
// directly, with one goroutine retransmitting every open transaction
// (Timer E) and ending it at Timer F. Anything the reader declines, every
// other method, TCP and TLS, and requests that need a name looked up take
// the usual path, which refuses and logs what is wrong as described above.
// The same checks, limits (WithMaxIncoming, WithMaxMessageBody,
// WithTrusted), conversation order and responses apply on both paths.
//
// On Linux the UDP read loop reads datagrams in batches (recvmmsg) and
// sends the responses it writes itself (absorbed retransmissions, 503s
// while overloaded, the 202s of MESSAGEs handled on the loop) in one
// sendmmsg after each batch (mmsg_linux.go); QueueMessage and
// FlushMessages let a caller send the MESSAGEs it starts together the same
// way. Elsewhere each datagram is a system call of its own.
//
// # Event subscriptions (RFC 6665, RFC 3856)
//
// SUBSCRIBE (WithSubscribeHandler) is checked before the handler: an event
// package other than presence gets 489 with Allow-Events, an Accept without
// application/pidf+xml 406, Expires below the minimum 423 with Min-Expires
// (WithSubscriptionExpires); a 2xx goes out as 200, never 202 (RFC 6665
// §8.3.1), with our tag, Contact and the granted Expires, and the handler's
// Then sends the first NOTIFY after it. NOTIFY (WithNotifyHandler) needs
// Event (489), Subscription-State (400) and a To tag (481). sipside keeps
// no dialog state: a Dialog value (Call-ID, tags, remote target, route set,
// CSeqs) is the caller's, plain JSON for storage, and SendInDialog sends an
// initial or in-dialog SUBSCRIBE or a NOTIFY along its route set (loose or
// strict routing, RFC 3261 §12.2.1.1) and returns the updated Dialog.
//
// # INVITE sessions (RFC 3261 §12-15, RFC 3264, RFC 7573)
//
// WithInviteHandler serves incoming INVITEs for MSRP chats, where the
// gateway answers (RFC 7573 §5); UA.Invite sends one, where it offers (§4).
// The SDP is opaque here (sipside/sdp reads and writes it). An INVITE
// passes the same admission as every request (403, 400), then: a re-INVITE
// in a known call is answered 488 (sessions are not renegotiated: a new
// MSRP path needs a new session, CHAT-62) and one in an unknown dialog
// 481; no Contact 400; any Require 420 (no extensions are supported, so no
// 100rel/PRACK); a body other than application/sdp 415 with Accept, a
// Content-Encoding other than identity 415; no body 488 (sipside always
// answers, never offers in a 2xx); beyond WithMaxCalls 503 with
// Retry-After. sipgo's transaction layer sends 100 Trying, answers CANCEL
// (200, then 487 to the INVITE; the handler's context is cancelled) and
// retransmits failure responses until their ACK. sipside retransmits a 2xx
// from T1 doubling to T2 until its ACK (§13.3.1.4) and after 64*T1 without
// one sends BYE; InviteReply.Then learns the outcome. BYE in a known call
// is answered 200 and ends it; BYE in an unknown dialog gets 481 (405 when
// no InviteHandler is set). Outgoing: our Contact (or the caller's GRUU),
// the route set from Record-Route reversed, the ACK and BYE along it (loose
// or strict routing), the 1300-byte rule for every request; a cancelled
// context sends CANCEL in the background once a provisional response
// allows it (§9.1), and a 2xx that crosses it is ACKed and ended with BYE.
// UA.Close ends every Call with EndReason "closed" without sending BYE.
// sipgo's dialog layer is not used (see invite.go for why); its INVITE
// transactions are.
//
// # Not done yet
//
// REFER comes with a later issue; until then it is answered 405 with
// Allow. Forked 2xx responses beyond the first are not ACKed; there is no
// session timer (RFC 4028) and no early media. There is no digest authentication, no DTLS, and no
// retry over UDP when a TCP connection for a large request is refused
// (RFC 3261 §18.1.1 SHOULD). Throttling per destination (RFC 3428 §8: one
// pending MESSAGE per URI) is the caller's job.
package sipside
