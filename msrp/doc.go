// Package msrp is stox's MSRP stack: the Message Session Relay Protocol of
// RFC 4975 for session-mode chat, over TCP and TLS, with the NICKNAME
// request of RFC 7701. It depends on the standard library only. Item ids
// refer to shared/spec/CHECKLIST.md.
//
// What it implements:
//   - URLs (RFC 4975 s6): msrp:// and msrps://, parsed and formatted
//     losslessly, compared as s6.1 says: scheme, host and transport without
//     case, port exactly (2855 when absent), session-id with case (CHAT-11,
//     TV-28b).
//   - Framing (RFC 4975 s7, s9; CHAT-20, CHAT-21): Parser is incremental
//     and size-bounded (header section, body and frame limits; ErrNeedMore
//     while a frame is incomplete) and enforces To-Path then From-Path first
//     and Content-Type last, as Kamailio's relay does. The end-line is
//     searched as "CRLF -------tid" plus a flag and CRLF, so body text that
//     only resembles it stays body; a frame whose end-line never comes never
//     completes. Malformed frames with a readable start line are skipped to
//     their end-line and answered 400; an oversized frame is answered 413
//     and ends the connection.
//   - Writing: Frame.AppendTo, Writer (whole frames, or a chunk piece by
//     piece so that it can be interrupted with '+' or '#'), Chunks (a
//     message cut into chunks with Byte-Range and '+'/'$', CHAT-26).
//     Transaction ids, Message-IDs and session-ids carry 80 random bits
//     (CHAT-20, CHAT-02d). Chunks and Writer check that a body does not
//     hold its end-line; a Session relies on its crypto/rand ids instead
//     (an id drawn after the body is fixed occurs in it with probability
//     under 2^-60 per MiB, which is why RFC 4975 s14 wants random ids) and
//     saves that pass over every octet; with WithRandom it checks too.
//   - Reports (RFC 4975 s7.1.2, s7.2; CHAT-23, CHAT-40..42): responses
//     exactly as Failure-Report asks (none for "no", errors only for
//     "partial"), none ever to REPORT; success REPORTs with Status
//     "000 200 OK" and Byte-Range 1-N/N, sent on completion or by the
//     caller (WithManualSuccessReports).
//   - Reassembly by Message-ID, out of order, with a message size limit
//     (413 on the first chunk over it, later chunks refused, TV-29) and a
//     bound on messages in progress; '#' drops a message (CHAT-26, CHAT-27).
//   - Sessions (RFC 4975 s5.4): Dial is the active side (connects to the
//     first URL of the peer's path and at once sends a bodiless SEND,
//     CHAT-04, CHAT-05); Listener is the passive side (binds a connection
//     by the To-Path session-id, 481 for an unknown session, 506 for one
//     already bound, CHAT-11). Session.Send waits for the 200s (or the
//     success REPORT when asked) and fails with a *StatusError, ErrTimeout
//     or ErrClosed; duplicate responses are ignored; 501 answers unknown
//     methods (CHAT-24); 415 answers types outside WithAcceptTypes. Bind,
//     frame, idle and write timeouts cut off slow peers. A session runs two
//     goroutines (reader, writer); reads grow while traffic is bulk and
//     shrink back, so an idle session holds about 20 KB. Close stops every
//     goroutine a Session or Listener starts.
//   - NICKNAME (RFC 7701 s7, s9.2): Session.SetNickname, and NICKNAME
//     requests handed to Handler.Nickname (424 when Use-Nickname is
//     malformed, 501 without a handler; MUC-40).
//
// What it deliberately does not do:
//   - Relays (RFC 4976): no AUTH, and the package is not a relay; it talks
//     through relays (paths of several URLs) but answers AUTH with 501. A
//     session that dials should leave from its listener's port
//     (Listener.Dialer), where a relay such as Kamailio's sends the peer's
//     frames.
//   - Connection sharing: one connection carries one session. A request
//     on a bound connection for another session gets 481.
//   - CPIM, multipart bodies, isComposing and IMDN are content, left to the
//     caller (CHAT-25, CHAT-30, CHAT-44, CHAT-50); so is the choice of
//     types (CHAT-29: never send a type the peer did not accept).
//   - SDP (a=path, a=accept-types, a=max-size): the caller's, with
//     ParsePath and FormatPath for the path.
//   - Failure REPORTs are never sent automatically: an endpoint that
//     answered a chunk and later cannot deliver the message calls
//     Session.Report itself. Error responses that arrive after Send returned
//     (Failure-Report "partial") are dropped.
//   - Certificate checks against an SDP fingerprint (RFC 4975 s14.2) are
//     the caller's, through the tls.Config.
//   - Chunks of the default size (8 KiB) are written whole with a numeric
//     range-end; only larger configured chunks carry range-end "*" and can
//     be interrupted part-way. A message abandoned between chunks ends with
//     a bodiless '#' chunk.
package msrp
