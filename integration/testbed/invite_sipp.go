//go:build unix

package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// inviteFailureCodes are the final failure statuses uac_invite.xml can
// expect and uas_invite.xml can answer (besides 200).
var inviteFailureCodes = []int{400, 403, 404, 405, 408, 415, 480, 481, 486, 487, 488, 500, 501, 502, 503, 504, 603, 606}

// Invite describes the caller of one session run by SIPp (uac_invite.xml,
// see StartCaller): one INVITE with an SDP offer (for an MSRP chat, RFC
// 4975 / RFC 7573); 100 to 183 are taken; a 2xx is ACKed and the call then
// lasts until the far end sends a BYE (answered 200) or the test hangs up
// (Caller.Hangup: a BYE and its 200); a failure response is ACKed and ends
// the run. A final status other than Expect fails the run (SIPp exits 1 and
// ErrLog says "expected status X, got Y"); an unexpected 2xx is ACKed and
// hung up first.
type Invite struct {
	RequestURI string // required, e.g. "sip:alice@example.test"
	From       string // name-addr or URI without tag; default <sip:sipp@sipp.invalid>
	To         string // default the Request-URI
	// SDP is the whole offer (Content-Type: application/sdp), sent as is:
	// end its lines with CRLF (RFC 4566). It may hold any character. Required.
	SDP string
	// Expect is the final status the INVITE must get: 200 (default) or one
	// of 400, 403, 404, 405, 408, 415, 480, 481, 486, 487, 488, 500, 501,
	// 502, 503, 504, 603, 606.
	Expect int
	// Timeout is how long each response may take (-recv_timeout); default 10 s.
	Timeout time.Duration
	// Transport is "u1" (UDP, the default) or "t1" (TCP).
	Transport string
}

// Args writes the SDP offer into dir (the directory given to RunSIPp) and
// returns the sipp arguments for inv, including -m 1 and a reserved local
// port (-p). The caller adds the transport (-t) and the destination
// host:port; StartCaller does all that.
func (inv Invite) Args(dir string) ([]string, error) {
	if inv.RequestURI == "" {
		return nil, fmt.Errorf("testbed: Invite.RequestURI is required")
	}
	if inv.SDP == "" {
		return nil, fmt.Errorf("testbed: Invite.SDP is required")
	}
	from, to := inv.From, inv.To
	if from == "" {
		from = "<sip:sipp@sipp.invalid>"
	}
	if to == "" {
		to = inv.RequestURI
	}
	expect := inv.Expect
	if expect == 0 {
		expect = 200
	}
	if expect != 200 && !slices.Contains(inviteFailureCodes, expect) {
		return nil, fmt.Errorf("testbed: uac_invite.xml cannot expect status %d (only 200 and %v)", expect, inviteFailureCodes)
	}
	timeout := inv.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	for name, v := range map[string]string{"RequestURI": inv.RequestURI, "From": from, "To": to} {
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("testbed: Invite.%s cannot hold a line break", name)
		}
	}
	sdp, err := writeSDP(dir, "uac_invite_offer.sdp", inv.SDP)
	if err != nil {
		return nil, err
	}
	port, err := ReservePort(TCPUDP)
	if err != nil {
		return nil, err
	}
	return []string{"-sf", Scenario("uac_invite.xml"),
		"-key", "ruri", inv.RequestURI,
		"-key", "from", nameAddr(from),
		"-key", "to", nameAddr(to),
		"-key", "sdp_file", sdp,
		"-key", "expect", strconv.Itoa(expect),
		"-recv_timeout", strconv.FormatInt(timeout.Milliseconds(), 10),
		"-m", "1",
		"-p", strconv.Itoa(port),
		"-default_behaviors", "all,-bye",
	}, nil
}

// writeSDP writes an SDP body into dir for the scenarios' [file name=...]
// and returns its absolute path. SIPp reads it when it sends the message
// and inserts its bytes as they are, so no character needs escaping (unlike
// -inf injection fields, which cannot hold ';' or a line break).
func writeSDP(dir, name, sdp string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("testbed: the SIPp directory is required")
	}
	abs, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	if strings.ContainsAny(abs, "[]\"") {
		return "", fmt.Errorf("testbed: SIPp cannot read a file whose path holds [, ] or \": %q", abs)
	}
	if err := os.WriteFile(abs, []byte(sdp), 0o644); err != nil {
		return "", fmt.Errorf("testbed: %w", err)
	}
	return abs, nil
}

// Caller is the caller of one session run by SIPp (uac_invite.xml). Its
// *SIPp gives Received, Messages, Wait, Stop, ErrLog and Stats.
type Caller struct {
	*SIPp
	port    int    // SIPp's own port, where Hangup sends the go-ahead
	network string // "udp" or "tcp": how Hangup sends the go-ahead
	expect  int    // the final status the scenario expects
}

// StartCaller runs inv with SIPp in dir (tests pass t.TempDir()) against
// dest (host:port, e.g. stox's SIP listener or Kamailio.SIPAddr) over
// inv.Transport, and returns at once. Follow it with Response, then Hangup or WaitBye;
// after a failure response the run ends by itself (Wait). ctx bounds the
// whole run: SIPp is killed when it ends.
func StartCaller(ctx context.Context, dir string, inv Invite, dest string) (*Caller, error) {
	transport, network, err := sippTransport(inv.Transport)
	if err != nil {
		return nil, err
	}
	args, err := inv.Args(dir)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(flagValue(args, "-p"))
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	sp, err := RunSIPp(ctx, dir, append(args, "-t", transport, dest)...)
	if err != nil {
		return nil, err
	}
	expect := inv.Expect
	if expect == 0 {
		expect = 200
	}
	return &Caller{SIPp: sp, port: port, network: network, expect: expect}, nil
}

// Response waits for the final response to the INVITE and returns it: a
// 2xx with the SDP answer in its Body, or the failure that ended the run.
func (c *Caller) Response(ctx context.Context) (*SIPMessage, error) {
	return awaitTrace(ctx, c.SIPp, "the final response to the INVITE", func(msgs []*SIPMessage) *SIPMessage {
		for _, m := range msgs {
			if !m.Sent && !m.IsRequest() && m.Method() == "INVITE" && m.StatusCode() >= 200 {
				return m
			}
		}
		return nil
	})
}

// Hangup ends an established call from the caller's side: it waits for the
// 2xx and the ACK, sends SIPp the go-ahead (a MESSAGE with the Call-ID of
// the INVITE to its own port, which SIPp does not answer), and waits for
// SIPp to send the BYE, get its 200 and exit. It returns what Wait returns.
// After a failure response or a status other than Invite.Expect (SIPp then
// ends the call itself), or when the far end has hung up already, it just
// waits for SIPp to exit.
func (c *Caller) Hangup(ctx context.Context) error {
	resp, err := c.Response(ctx)
	if err != nil {
		return err
	}
	if resp.StatusCode()/100 != 2 || resp.StatusCode() != c.expect {
		return awaitExit(ctx, c.SIPp, "caller")
	}
	// The call must stand on its wait for the BYE or the go-ahead: a
	// request that comes while it sends the ACK aborts it.
	if _, err := awaitTrace(ctx, c.SIPp, "the ACK", sentRequest("ACK")); err != nil {
		if c.p.exited() {
			return c.Wait()
		}
		return err
	}
	if err := sendGoAhead(ctx, c.network, c.port, resp.Header("Call-ID")); err != nil {
		return err
	}
	return awaitExit(ctx, c.SIPp, "caller")
}

// WaitBye waits until the far end has hung up: SIPp received a BYE,
// answered it 200 and exited. It returns what Wait returns, or an error if
// the run ended without a BYE from the far end.
func (c *Caller) WaitBye(ctx context.Context) error {
	return waitByeReceived(ctx, c.SIPp, "caller")
}

// Answer describes the callee of one session run by SIPp (uas_invite.xml,
// see StartCallee): it answers the first INVITE with Code, and a 200 with
// SDP. After the ACK of a 200 the call lasts until the far end sends a BYE
// (answered 200) or the test hangs up (Callee.Hangup: a BYE, sent to the
// Contact of the INVITE along its Record-Route set, and its 200). A
// failure is retransmitted until its ACK comes, which ends the run.
type Answer struct {
	// SDP is the whole answer of a 200 (Content-Type: application/sdp),
	// sent as is: end its lines with CRLF. Required when Code is 200. The
	// offer it answers is known only once the INVITE has come (Invite), so
	// SDP describes what the test set up beforehand, e.g. the path of its
	// own MSRPPeer.
	SDP string
	// Code answers the INVITE: 200 (default) or one of 400, 403, 404, 405,
	// 408, 415, 480, 481, 486, 487, 488, 500, 501, 502, 503, 504, 603, 606.
	Code int
	// Reason is the reason phrase; default the RFC 3261 one.
	Reason string
	// Port is where SIPp listens; 0 reserves a free one.
	Port int
	// Timeout is how long the ACK and the 200 to its own BYE may take
	// (-recv_timeout); default 10 s. The INVITE itself may take any time.
	Timeout time.Duration
}

// Args writes the SDP answer into dir (the directory given to RunSIPp) and
// returns the sipp arguments for a, including -m 1 and -p (a.Port or a
// reserved port). The caller adds the transport; StartCallee does that.
func (a Answer) Args(dir string) ([]string, error) {
	code := a.Code
	if code == 0 {
		code = 200
	}
	if code != 200 && !slices.Contains(inviteFailureCodes, code) {
		return nil, fmt.Errorf("testbed: uas_invite.xml cannot answer %d (only 200 and %v)", code, inviteFailureCodes)
	}
	if code == 200 && a.SDP == "" {
		return nil, fmt.Errorf("testbed: Answer.SDP is required to answer 200")
	}
	reason := a.Reason
	if reason == "" {
		reason = sipReason[code]
	}
	if reason == "" {
		reason = "Unknown"
	}
	if strings.ContainsAny(reason, "\r\n") {
		return nil, fmt.Errorf("testbed: Answer.Reason cannot hold a line break")
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sdp, err := writeSDP(dir, "uas_invite_answer.sdp", a.SDP)
	if err != nil {
		return nil, err
	}
	port := a.Port
	if port == 0 {
		if port, err = ReservePort(TCPUDP); err != nil {
			return nil, err
		}
	}
	return []string{"-sf", Scenario("uas_invite.xml"),
		"-key", "code", strconv.Itoa(code),
		"-key", "reason", reason,
		"-key", "sdp_file", sdp,
		"-recv_timeout", strconv.FormatInt(timeout.Milliseconds(), 10),
		"-m", "1",
		"-p", strconv.Itoa(port),
		"-default_behaviors", "all,-bye",
	}, nil
}

// Callee is the callee of one session run by SIPp (uas_invite.xml). Its
// *SIPp gives Received (the INVITE with its SDP offer in Body), Messages,
// Wait, Stop, ErrLog and Stats.
type Callee struct {
	*SIPp
	port    int
	network string // "udp" or "tcp": how Hangup sends the go-ahead
}

// StartCallee runs a with SIPp in dir (tests pass t.TempDir()), listening
// on 127.0.0.1 over transport ("u1" for UDP, "t1" for TCP; "" is "u1"),
// and returns once it listens: point the caller (e.g. stox's
// sip.outbound_proxy) at Addr. Follow it with Invite, then Hangup or
// WaitBye; after a failure answer the run ends by itself (Wait). SIPp
// sends everything, its BYE included, to where the INVITE came from. ctx
// bounds the whole run: SIPp is killed when it ends.
func StartCallee(ctx context.Context, dir string, a Answer, transport string) (*Callee, error) {
	transport, network, err := sippTransport(transport)
	if err != nil {
		return nil, err
	}
	args, err := a.Args(dir)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(flagValue(args, "-p"))
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	sp, err := RunSIPp(ctx, dir, append(args, "-t", transport)...)
	if err != nil {
		return nil, err
	}
	return &Callee{SIPp: sp, port: port, network: network}, nil
}

// Addr is the host:port where the callee listens.
func (c *Callee) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Invite waits for the INVITE and returns it, its SDP offer in Body.
func (c *Callee) Invite(ctx context.Context) (*SIPMessage, error) {
	return awaitTrace(ctx, c.SIPp, "the INVITE", func(msgs []*SIPMessage) *SIPMessage {
		for _, m := range msgs {
			if !m.Sent && m.IsRequest() && m.Method() == "INVITE" {
				return m
			}
		}
		return nil
	})
}

// Hangup ends an established call from the callee's side: it waits for the
// INVITE and its ACK, sends SIPp the go-ahead (a MESSAGE with the Call-ID
// of the INVITE to its own port, which SIPp does not answer), and waits for
// SIPp to send the BYE, get its 200 and exit. It returns what Wait returns.
// When the callee answered a failure, or the far end has hung up already,
// it just waits for SIPp to exit.
func (c *Callee) Hangup(ctx context.Context) error {
	inv, err := c.Invite(ctx)
	if err != nil {
		return err
	}
	if _, err := awaitTrace(ctx, c.SIPp, "the ACK", receivedRequest("ACK")); err != nil {
		if c.p.exited() {
			return c.Wait()
		}
		return err
	}
	answered := false
	msgs, err := c.Messages()
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Sent && !m.IsRequest() && m.Method() == "INVITE" && m.StatusCode()/100 == 2 {
			answered = true
		}
	}
	if !answered {
		return awaitExit(ctx, c.SIPp, "callee")
	}
	if err := sendGoAhead(ctx, c.network, c.port, inv.Header("Call-ID")); err != nil {
		return err
	}
	return awaitExit(ctx, c.SIPp, "callee")
}

// WaitBye waits until the far end has hung up: SIPp received a BYE,
// answered it 200 and exited. It returns what Wait returns, or an error if
// the run ended without a BYE from the far end.
func (c *Callee) WaitBye(ctx context.Context) error {
	return waitByeReceived(ctx, c.SIPp, "callee")
}

// sippTransport checks a SIPp transport (-t) for the session scenarios
// and returns it ("" is "u1") with the network of the go-ahead.
func sippTransport(t string) (transport, network string, err error) {
	switch t {
	case "", "u1":
		return "u1", "udp", nil
	case "t1":
		return "t1", "tcp", nil
	}
	return "", "", fmt.Errorf("testbed: SIPp transport %q (want u1 or t1)", t)
}

// awaitTrace polls the message trace of s until find returns a message, and
// returns it. It fails when ctx ends or when SIPp has exited without it.
func awaitTrace(ctx context.Context, s *SIPp, what string, find func([]*SIPMessage) *SIPMessage) (*SIPMessage, error) {
	for {
		exited := s.p.exited() // before reading: SIPp flushes the trace as it goes
		// SIPp also writes some warnings into the message trace (over TCP:
		// "Problem EAGAIN on socket ..."), which ParseTrace refuses until
		// the first message follows: keep polling.
		msgs, err := s.Messages()
		if m := find(msgs); m != nil {
			return m, nil
		}
		if exited {
			if werr := s.Wait(); werr != nil {
				return nil, fmt.Errorf("testbed: sipp ended before %s: %w", what, werr)
			}
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("testbed: sipp ended before %s\n%s", what, s.ErrLog())
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return nil, fmt.Errorf("testbed: waiting for %s: %w (%w)\n%s", what, ctx.Err(), err, s.ErrLog())
			}
			return nil, fmt.Errorf("testbed: waiting for %s: %w\n%s", what, ctx.Err(), s.ErrLog())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func sentRequest(method string) func([]*SIPMessage) *SIPMessage {
	return func(msgs []*SIPMessage) *SIPMessage {
		for _, m := range msgs {
			if m.Sent && m.IsRequest() && m.Method() == method {
				return m
			}
		}
		return nil
	}
}

func receivedRequest(method string) func([]*SIPMessage) *SIPMessage {
	return func(msgs []*SIPMessage) *SIPMessage {
		for _, m := range msgs {
			if !m.Sent && m.IsRequest() && m.Method() == method {
				return m
			}
		}
		return nil
	}
}

// awaitExit waits for SIPp to exit and returns what Wait returns; if ctx
// ends first, it kills SIPp.
func awaitExit(ctx context.Context, s *SIPp, who string) error {
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		s.p.kill()
		<-done
		return fmt.Errorf("testbed: %s did not finish: %w\n%s", who, ctx.Err(), s.ErrLog())
	}
}

// waitByeReceived waits for SIPp to exit and checks that it received a BYE
// and answered it 200.
func waitByeReceived(ctx context.Context, s *SIPp, who string) error {
	if err := awaitExit(ctx, s, who); err != nil {
		return err
	}
	msgs, err := s.Messages()
	if err != nil {
		return err
	}
	bye, ok := false, false
	for _, m := range msgs {
		switch {
		case !m.Sent && m.IsRequest() && m.Method() == "BYE":
			bye = true
		case m.Sent && !m.IsRequest() && m.Method() == "BYE" && m.StatusCode() == 200:
			ok = true
		}
	}
	if !bye || !ok {
		return fmt.Errorf("testbed: the %s ended without a BYE from the far end (BYE received %v, answered 200 %v)\n%s", who, bye, ok, s.ErrLog())
	}
	return nil
}

// sendGoAhead sends SIPp, on its own port, the MESSAGE with callID that
// uac_invite.xml and uas_invite.xml wait for (as Watcher.End does for
// uac_subscribe.xml). SIPp does not answer it. Over TCP the connection
// stays open for a moment so that SIPp reads the MESSAGE before it sees
// the connection close.
func sendGoAhead(ctx context.Context, network string, port int, callID string) error {
	if callID == "" {
		return fmt.Errorf("testbed: go-ahead: no Call-ID")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("testbed: go-ahead: %w", err)
	}
	defer conn.Close()
	id := randomHex(8)
	raw := "MESSAGE sip:sipp@127.0.0.1:" + strconv.Itoa(port) + " SIP/2.0\r\n" +
		"Via: SIP/2.0/" + strings.ToUpper(network) + " " + conn.LocalAddr().String() + ";branch=z9hG4bK" + id + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:testbed@testbed.invalid>;tag=" + id + "\r\n" +
		"To: <sip:sipp@127.0.0.1>\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 MESSAGE\r\n" +
		"Content-Length: 0\r\n\r\n"
	if _, err := conn.Write([]byte(raw)); err != nil {
		return fmt.Errorf("testbed: go-ahead: %w", err)
	}
	if network == "tcp" {
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}
