// Package testbed runs the real peers of the stox integration tests — Prosody,
// SIPp and the stox daemon itself — on free loopback ports, with temporary
// configuration and data directories, and gives tests an XMPP client that
// sees stanzas in arrival order. It is a normal package so that examples/demo
// can reuse it; nothing in it is specific to one test.
//
// # What it provides
//
//   - Ports: FreePort / ReservePort hand out loopback ports (TCP, UDP or
//     TCPUDP) that no other test, in this process or another, gets.
//   - Need skips a test whose programs are missing, loudly, or fails it when
//     STOX_REQUIRE_PEERS=1 (set by `make test`).
//   - Prosody: StartProsody, then Register, Stop, Restart (same ports and
//     data), Close, Logs.
//   - Client: a small raw c2s client (SASL PLAIN, resource binding) with
//     Send, Next, Expect, IQ and SendPresence; stanzas are *Stanza values
//     holding an etree element and the raw XML.
//   - stox: BuildStox (go build -race ./examples/gateway, once per process),
//     StartStox, WaitReady (polls disco#info on the component JID, as
//     DESIGN.md asks tests to), Stop (an exit status 66 is a data race),
//     Kill, Logs.
//   - SIPp: RunSIPp, Wait, Stop, Stats, ErrLog, Messages / Received (the
//     parsed message trace); UAS and UAC build the arguments of the scenarios
//     in integration/testdata/sipp; SendRawSIP sends arbitrary (malformed)
//     bytes and returns the final response.
//   - SIPp sessions (INVITE, e.g. the SIP leg of an MSRP chat, RFC 7573):
//     StartCaller (Invite: uac_invite.xml) with Response, Hangup, WaitBye;
//     StartCallee (Answer: uas_invite.xml) with Addr, Invite, Hangup,
//     WaitBye. SDP bodies go through a file that SIPp inserts as is.
//
// # SIPp scenarios (integration/testdata/sipp)
//
//   - uas_message.xml answers each MESSAGE with -key code NNN and -key
//     reason TEXT (UAS.Args). SIPp 3.6.1 validates the status code of a
//     <send> when it loads the scenario, so "SIP/2.0 [code]" is refused; the
//     scenario branches on the key to one <send> per supported code.
//   - uas_message_noanswer.xml receives MESSAGEs and never answers (UAS with
//     Code 0), for transaction timeout tests.
//   - uac_message.xml sends MESSAGEs one at a time (-l 1 -m N): headers from
//     -key ruri, from, to, content_type, subject; per MESSAGE, the body and
//     the expected final status from an -inf injection file (UAC.Args). A
//     recv cannot take its code from a key either, so it accepts any of the
//     known finals, compares the code with the expected one, and fails the
//     call with a receive timeout on a mismatch (in 3.6.1 neither strcmp
//     check_it nor stop_call marks a call failed). SIPp exits 1 and ErrLog
//     says "expected status X, got Y".
//   - uac_invite.xml / uas_invite.xml: one INVITE session each (caller,
//     callee). The SDP body comes from a file named by -key sdp_file and
//     inserted with [file name="[sdp_file]"] when SIPp sends, so it may hold
//     CRLF and ';'. The caller checks the final status like
//     uac_message.xml; the callee answers -key code like uas_message.xml.
//     Either side hangs up on a go-ahead MESSAGE with the call's Call-ID
//     sent to its own port, or answers the far end's BYE. Over TCP SIPp
//     fails a call still running when the peer closes the connection, so
//     each path ends on its last message (next="done"), with no <nop> or
//     <pause> after it.
//
// SIPp exits 0 when every call succeeded, 1 when one failed, 97 on an
// internal command, 99 when it stopped without processing a call, 255/254 on
// a fatal or socket-binding error; Wait turns anything but 0 into a
// *SIPpError carrying the tail of its traces.
//
// RunSIPp always traces messages (-trace_msg). ParseTrace reads that file:
// each entry is a separator line with a timestamp, "UDP message sent (N
// bytes):" or "UDP message received [N] bytes :", a blank line and then
// exactly N bytes of message, so bodies may contain anything. Each entry
// becomes a *SIPMessage (direction, transport, start line, ordered headers
// with compact forms understood, body). SIPp flushes the trace as it goes.
//
// # Prosody quirks handled (see /work/shared/TESTBED.md)
//
// mod_posix is disabled: as root it refuses to run and leaves a half-started
// server. When the tests run as root, Prosody and prosodyctl run as the
// prosody user, which owns the temporary directory, so that both can write
// the same data. No mod_limits, no s2s, no TLS, no HTTP; c2s allows PLAIN
// without TLS. StartProsody returns only after a real c2s login succeeds.
// Without mod_posix Prosody has no SIGTERM handler: the signal simply ends it,
// which is fine because internal storage writes through.
//
// # Environment
//
//   - STOX_REQUIRE_PEERS=1: a missing program fails the test instead of
//     skipping it.
//   - STOX_TESTBED_KEEP=1: Prosody.Close and Stox.Stop keep their temporary
//     directories (configs, data, logs) for a post-mortem.
//
// Every process is started as the leader of its own process group, killed
// by the kernel if the test process dies (Linux), and stopped by its PID.
package testbed
