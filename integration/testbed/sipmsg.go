//go:build unix

package testbed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// SIPMessage is one SIP request or response, as a test sees it.
type SIPMessage struct {
	// From SIPp's trace only: when and how SIPp sent or received it.
	Time      string // as SIPp wrote it, e.g. "2026-11-22 03:31:23.910845"
	Transport string // "UDP", "TCP", "TLS"
	Sent      bool   // sent by SIPp (false: received by SIPp)

	Raw       string   // the whole message
	StartLine string   // "MESSAGE sip:alice@example.test SIP/2.0" or "SIP/2.0 202 Accepted"
	Headers   []Header // in order; folded lines joined
	Body      string
}

// Header is one header field line.
type Header struct {
	Name, Value string
}

// compactForms maps RFC 3261 7.3.3 (and extension) compact header names to
// their full names.
var compactForms = map[string]string{
	"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
	"c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
	"v": "via", "o": "event", "r": "refer-to", "b": "referred-by", "u": "allow-events",
	"x": "session-expires", "a": "accept-contact", "j": "reject-contact", "d": "request-disposition",
}

func canonicalHeader(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if full, ok := compactForms[n]; ok {
		return full
	}
	return n
}

// Header returns the value of the first header field called name
// (case-insensitive; compact forms match their full names), "" if none.
func (m *SIPMessage) Header(name string) string {
	v := m.Values(name)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Values returns the values of every header field line called name, in order.
func (m *SIPMessage) Values(name string) []string {
	want := canonicalHeader(name)
	var out []string
	for _, h := range m.Headers {
		if canonicalHeader(h.Name) == want {
			out = append(out, h.Value)
		}
	}
	return out
}

// IsRequest reports whether the message is a request.
func (m *SIPMessage) IsRequest() bool { return !strings.HasPrefix(m.StartLine, "SIP/") }

// Method is the request method, or for a response the method of its CSeq.
func (m *SIPMessage) Method() string {
	if m.IsRequest() {
		method, _, _ := strings.Cut(m.StartLine, " ")
		return method
	}
	f := strings.Fields(m.Header("CSeq"))
	if len(f) == 2 {
		return f[1]
	}
	return ""
}

// RequestURI is the Request-URI of a request, "" for a response.
func (m *SIPMessage) RequestURI() string {
	if !m.IsRequest() {
		return ""
	}
	f := strings.Fields(m.StartLine)
	if len(f) != 3 {
		return ""
	}
	return f[1]
}

// StatusCode is the status of a response, 0 for a request.
func (m *SIPMessage) StatusCode() int {
	if m.IsRequest() {
		return 0
	}
	f := strings.Fields(m.StartLine)
	if len(f) < 2 {
		return 0
	}
	code, _ := strconv.Atoi(f[1])
	return code
}

// ParseSIPMessage splits a SIP message into start line, header fields and
// body. It is lenient (tests use it on what they want to assert on): lines
// may end in CRLF or LF, and the body is whatever follows the blank line.
func ParseSIPMessage(raw []byte) (*SIPMessage, error) {
	m := &SIPMessage{Raw: string(raw)}
	head, body, found := strings.Cut(m.Raw, "\r\n\r\n")
	if !found {
		head, body, _ = strings.Cut(m.Raw, "\n\n")
	}
	m.Body = body
	lines := strings.Split(strings.ReplaceAll(head, "\r\n", "\n"), "\n")
	m.StartLine = strings.TrimSpace(lines[0])
	if m.StartLine == "" {
		return nil, fmt.Errorf("testbed: SIP message without start line: %q", raw)
	}
	for _, line := range lines[1:] {
		if line != "" && (line[0] == ' ' || line[0] == '\t') && len(m.Headers) > 0 {
			h := &m.Headers[len(m.Headers)-1]
			h.Value += " " + strings.TrimSpace(line) // RFC 3261 7.3.1 folding
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("testbed: SIP header line without ':': %q in %q", line, raw)
		}
		m.Headers = append(m.Headers, Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	return m, nil
}

// sippEntry matches the head of one entry of SIPp's -trace_msg file:
//
//	----------------------------------------------- 2026-11-22 03:31:23.910845
//	UDP message sent (322 bytes):
//	<blank line>
//	<the 322 bytes>
//
// (received: "UDP message received [248] bytes :").
var sippEntry = regexp.MustCompile(`(?m)^-{20,} (\S+ \S+)\n(\S+) message (sent|received) (?:\((\d+) bytes\)|\[(\d+)\] bytes) ?:\n\n`)

// ParseTrace parses a SIPp message trace (-trace_msg) into its messages, in
// order. Each entry states its length in bytes, so bodies may hold anything,
// blank lines and dashes included.
func ParseTrace(r io.Reader) ([]*SIPMessage, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("testbed: reading SIPp trace: %w", err)
	}
	idx := sippEntry.FindAllSubmatchIndex(data, -1)
	var out []*SIPMessage
	for i, loc := range idx {
		group := func(g int) string {
			if loc[2*g] < 0 {
				return ""
			}
			return string(data[loc[2*g]:loc[2*g+1]])
		}
		limit := len(data)
		if i+1 < len(idx) {
			limit = idx[i+1][0]
		}
		start := loc[1]
		end := limit
		n, err := strconv.Atoi(group(4) + group(5))
		if err == nil && start+n <= limit {
			end = start + n
		} else {
			// Length missing or wrong: take up to the next entry, minus the
			// newline SIPp writes after each message.
			end = limit
			if end > start && data[end-1] == '\n' {
				end--
			}
		}
		m, err := ParseSIPMessage(data[start:end])
		if err != nil {
			return out, fmt.Errorf("testbed: SIPp trace entry %d: %w", i, err)
		}
		m.Time, m.Transport, m.Sent = group(1), group(2), group(3) == "sent"
		out = append(out, m)
	}
	if len(idx) == 0 && len(bytes.TrimSpace(data)) > 0 {
		return nil, errors.New("testbed: not a SIPp message trace")
	}
	return out, nil
}

// ErrNoSIPResponse is returned by SendRawSIP when no final response came.
var ErrNoSIPResponse = errors.New("testbed: no final SIP response")

// SendRawSIP sends raw bytes, as is, to addr over network ("udp" or "tcp")
// from a fresh loopback socket, and returns the first final (non-1xx)
// response, skipping provisional ones. For a Via that routes the response
// back, raw may contain "{local}" (replaced by the socket's host:port) and
// "{transport}" ("UDP" or "TCP"). Without a deadline on ctx it waits 5 s; it
// returns ErrNoSIPResponse (wrapped) when nothing final came in time.
func SendRawSIP(ctx context.Context, network, addr string, raw []byte) (*SIPMessage, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	fill := func(local net.Addr, transport string) []byte {
		r := bytes.ReplaceAll(raw, []byte("{local}"), []byte(local.String()))
		return bytes.ReplaceAll(r, []byte("{transport}"), []byte(transport))
	}
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		defer pc.Close()
		stop := context.AfterFunc(ctx, func() { _ = pc.SetDeadline(time.Unix(1, 0)) })
		defer stop()
		to, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		if _, err := pc.WriteTo(fill(pc.LocalAddr(), "UDP"), to); err != nil {
			return nil, fmt.Errorf("testbed: sending to %s: %w", addr, err)
		}
		_ = pc.SetReadDeadline(deadline)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return nil, fmt.Errorf("%w from udp %s: %w", ErrNoSIPResponse, addr, err)
			}
			m, err := ParseSIPMessage(buf[:n])
			if err != nil {
				return nil, err
			}
			if m.StatusCode() >= 200 || m.IsRequest() {
				return m, nil
			}
		}
	case "tcp":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
		if _, err := conn.Write(fill(conn.LocalAddr(), "TCP")); err != nil {
			return nil, fmt.Errorf("testbed: sending to %s: %w", addr, err)
		}
		_ = conn.SetReadDeadline(deadline)
		br := bufio.NewReader(conn)
		for {
			m, err := readStreamMessage(br)
			if err != nil {
				return nil, fmt.Errorf("%w from tcp %s: %w", ErrNoSIPResponse, addr, err)
			}
			if m.StatusCode() >= 200 || m.IsRequest() {
				return m, nil
			}
		}
	}
	return nil, fmt.Errorf("testbed: SendRawSIP: network %q (want udp or tcp)", network)
}

// readStreamMessage reads one message framed by Content-Length from a
// stream (RFC 3261 18.3), skipping CRLF keep-alives before it.
func readStreamMessage(br *bufio.Reader) (*SIPMessage, error) {
	var head bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if head.Len() == 0 && strings.TrimSpace(line) == "" {
			continue
		}
		head.WriteString(line)
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	m, err := ParseSIPMessage(head.Bytes())
	if err != nil {
		return nil, err
	}
	n := 0
	if cl := m.Header("Content-Length"); cl != "" {
		if n, err = strconv.Atoi(cl); err != nil || n < 0 {
			return nil, fmt.Errorf("testbed: bad Content-Length %q", cl)
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	return ParseSIPMessage(append(head.Bytes(), body...))
}
