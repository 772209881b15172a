//go:build unix

package testbed

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MSRPFrame is one MSRP request or response (RFC 4975 section 7) as a test
// sees it.
type MSRPFrame struct {
	TID     string   // transaction id
	Method  string   // SEND, REPORT, AUTH, ...; "" for a response
	Status  int      // status code of a response, 0 for a request
	Reason  string   // reason phrase of a response (may be empty)
	Headers []Header // in order
	Body    string   // "" when the frame has no body
	Flag    byte     // the end-line's continuation flag: '$', '+' or '#'
	Raw     string   // the whole frame, end-line included
}

// Header returns the value of the first header field called name
// (case-insensitive), "" if none.
func (f *MSRPFrame) Header(name string) string {
	for _, h := range f.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Path returns the URIs of a To-Path or From-Path header field.
func (f *MSRPFrame) Path(name string) []string { return strings.Fields(f.Header(name)) }

// IsRequest reports whether the frame is a request.
func (f *MSRPFrame) IsRequest() bool { return f.Method != "" }

// MSRPPeer is a raw MSRP endpoint for tests, independent of stox's own MSRP
// code: one TCP connection, frames written as given and read one at a time
// in arrival order. It is what a test endpoint behind Kamailio's msrp relay
// needs:
//
//   - Its own path URI, URI, is msrp://127.0.0.1:PORT/SESSION;tcp with the
//     local port of its connection: the relay sends to the address in a
//     path URI and reuses an open connection only from that port.
//   - Auth sends an AUTH (RFC 4976 section 5) to the relay, answering a
//     digest challenge when given a password, and returns the Use-Path URI
//     of the relay. Kamailio relays frames for that URI over this
//     connection, so keep it open.
//   - To reach another peer through the relay, a SEND goes out with
//     To-Path: <its Use-Path URI> <its URI>; the relay answers 200 itself
//     (hop by hop) and the other peer gets the frame with To-Path: <its
//     URI> and From-Path: <its Use-Path URI> <the sender's URI>.
//   - A REPORT goes the same way and is not answered; a SEND with
//     Failure-Report: no is not answered either.
//   - Frames must be well formed (To-Path, From-Path first; a blank line
//     before a body; a matching end-line): the relay drops what it cannot
//     parse, silently. It relays frames of at most 14336 bytes (the whole
//     frame); Kamailio's configuration answers larger ones 413.
//
// Write and Request are safe for concurrent use; Next is for one reader.
type MSRPPeer struct {
	URI string // msrp://127.0.0.1:PORT/SESSION;tcp

	conn net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
}

// DialMSRP connects to addr (the relay's host:port) and returns a peer
// whose URI carries session and the connection's local port.
func DialMSRP(ctx context.Context, addr, session string) (*MSRPPeer, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testbed: msrp: %w", err)
	}
	return &MSRPPeer{
		URI:  "msrp://" + conn.LocalAddr().String() + "/" + session + ";tcp",
		conn: conn,
		br:   bufio.NewReaderSize(conn, 128<<10),
	}, nil
}

// Write sends raw bytes as they are (a frame, several, or a broken one).
func (p *MSRPPeer) Write(raw string) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if _, err := io.WriteString(p.conn, raw); err != nil {
		return fmt.Errorf("testbed: msrp: %w", err)
	}
	return nil
}

// Request sends a request with a fresh transaction id: To-Path toPath,
// From-Path the peer's URI, then headers in order, then body (if not "")
// after a blank line, and the end-line with flag '$'. It returns the
// transaction id.
func (p *MSRPPeer) Request(method string, toPath []string, headers []Header, body string) (string, error) {
	tid := randomHex(8)
	return tid, p.Write(FormatMSRPRequest(tid, method, toPath, []string{p.URI}, headers, body, '$'))
}

// FormatMSRPRequest renders an MSRP request: To-Path and From-Path first,
// then headers, the body after a blank line if not "", and the end-line
// with flag ('$', '+' or '#').
func FormatMSRPRequest(tid, method string, toPath, fromPath []string, headers []Header, body string, flag byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "MSRP %s %s\r\n", tid, method)
	fmt.Fprintf(&b, "To-Path: %s\r\n", strings.Join(toPath, " "))
	fmt.Fprintf(&b, "From-Path: %s\r\n", strings.Join(fromPath, " "))
	for _, h := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h.Name, h.Value)
	}
	if body != "" {
		b.WriteString("\r\n")
		b.WriteString(body)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "-------%s%c\r\n", tid, flag)
	return b.String()
}

// Respond answers request req with status (e.g. 200 "OK"): To-Path the
// first URI of its From-Path, From-Path the peer's URI (RFC 4975 section
// 7.2).
func (p *MSRPPeer) Respond(req *MSRPFrame, status int, reason string) error {
	from := req.Path("From-Path")
	if len(from) == 0 {
		return errors.New("testbed: msrp: request without From-Path")
	}
	line := strconv.Itoa(status)
	if reason != "" {
		line += " " + reason
	}
	return p.Write(fmt.Sprintf("MSRP %s %s\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n",
		req.TID, line, from[0], p.URI, req.TID))
}

// Next reads the next frame, waiting until ctx ends (5 s without a
// deadline). After an error the connection is unusable.
func (p *MSRPPeer) Next(ctx context.Context) (*MSRPFrame, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	_ = p.conn.SetReadDeadline(deadline)
	// When ctx ends just as the read returns (expectNothing's short
	// context times out on both), the watcher may have started without
	// having run yet: wait for it, or its past deadline lands after the
	// next call's SetReadDeadline and fails that read at once. That was a
	// CI failure of TestKamailioMSRPRelay: "i/o timeout" on a 60 s context,
	// right after an expectNothing.
	watched := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(watched)
		_ = p.conn.SetReadDeadline(time.Unix(1, 0))
	})
	defer func() {
		if !stop() {
			<-watched
		}
	}()
	f, err := ReadMSRPFrame(p.br, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("testbed: msrp: reading from %s: %w", p.conn.RemoteAddr(), err)
	}
	return f, nil
}

// Auth sends AUTH to the relay (relayURI, e.g. Kamailio.MSRPURI) and
// returns the Use-Path URI from its 200. With a password it answers a 401
// challenge with an RFC 2617 digest (any user name, qop=auth, method
// AUTH, uri the relay's URI), as RFC 4976 section 5.1 describes. It
// expects nothing else on the connection meanwhile: the first frame read is
// taken for the answer.
func (p *MSRPPeer) Auth(ctx context.Context, relayURI, password string) (usePath string, err error) {
	if _, err := p.Request("AUTH", []string{relayURI}, nil, ""); err != nil {
		return "", err
	}
	resp, err := p.Next(ctx)
	if err != nil {
		return "", err
	}
	if resp.Status == 401 && password != "" {
		chal := resp.Header("WWW-Authenticate")
		auth, err := msrpDigest(chal, "tester", password, relayURI)
		if err != nil {
			return "", err
		}
		if _, err := p.Request("AUTH", []string{relayURI}, []Header{{"Authorization", auth}}, ""); err != nil {
			return "", err
		}
		if resp, err = p.Next(ctx); err != nil {
			return "", err
		}
	}
	if resp.Status != 200 {
		return "", fmt.Errorf("testbed: msrp: AUTH answered %d %s\n%s", resp.Status, resp.Reason, resp.Raw)
	}
	usePath = resp.Header("Use-Path")
	if usePath == "" {
		return "", fmt.Errorf("testbed: msrp: 200 to AUTH without Use-Path\n%s", resp.Raw)
	}
	return usePath, nil
}

// LocalAddr is the local host:port of the connection.
func (p *MSRPPeer) LocalAddr() string { return p.conn.LocalAddr().String() }

// Close closes the connection.
func (p *MSRPPeer) Close() error { return p.conn.Close() }

// msrpDigest answers a "Digest realm=..., nonce=..., qop=..." challenge.
func msrpDigest(challenge, user, password, uri string) (string, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(challenge), "Digest ")
	if !ok {
		return "", fmt.Errorf("testbed: msrp: not a digest challenge: %q", challenge)
	}
	params := map[string]string{}
	for _, part := range splitParams(rest) {
		k, v, _ := strings.Cut(part, "=")
		params[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	realm, nonce := params["realm"], params["nonce"]
	if nonce == "" {
		return "", fmt.Errorf("testbed: msrp: challenge without nonce: %q", challenge)
	}
	md5hex := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	ha1 := md5hex(user + ":" + realm + ":" + password)
	ha2 := md5hex("AUTH:" + uri)
	cnonce := randomHex(8)
	const nc = "00000001"
	var resp, qop string
	if strings.Contains(params["qop"], "auth") {
		qop = "auth"
		resp = md5hex(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2)
	} else {
		resp = md5hex(ha1 + ":" + nonce + ":" + ha2)
	}
	out := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5`,
		user, realm, nonce, uri, resp)
	if qop != "" {
		out += fmt.Sprintf(`, qop=%s, nc=%s, cnonce="%s"`, qop, nc, cnonce)
	}
	if op := params["opaque"]; op != "" {
		out += fmt.Sprintf(`, opaque="%s"`, op)
	}
	return out, nil
}

// splitParams splits a comma-separated parameter list, commas inside
// quotes excepted.
func splitParams(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// ReadMSRPFrame reads one MSRP frame from r: the start line, header fields
// up to a blank line or the end-line, and a body up to the end-line
// "-------TID" followed by '$', '+' or '#' (RFC 4975 section 7). It is
// lenient about line endings in headers (CRLF or LF) and refuses frames
// over max bytes.
func ReadMSRPFrame(r *bufio.Reader, max int) (*MSRPFrame, error) {
	var raw strings.Builder
	readLine := func() (string, error) {
		line, err := r.ReadString('\n')
		raw.WriteString(line)
		if raw.Len() > max {
			return "", fmt.Errorf("frame over %d bytes", max)
		}
		if err != nil {
			if err == io.EOF && line != "" {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	start, err := readLine()
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(start, " ", 4)
	if len(parts) < 3 || parts[0] != "MSRP" {
		return nil, fmt.Errorf("bad start line %q", start)
	}
	f := &MSRPFrame{TID: parts[1]}
	if code, err := strconv.Atoi(parts[2]); err == nil && len(parts[2]) == 3 {
		f.Status = code
		if len(parts) == 4 {
			f.Reason = parts[3]
		}
	} else {
		f.Method = parts[2]
	}
	end := "-------" + f.TID
	isEnd := func(line string) bool {
		return len(line) == len(end)+1 && strings.HasPrefix(line, end) && strings.ContainsRune("$+#", rune(line[len(end)]))
	}
	for {
		line, err := readLine()
		if err != nil {
			return nil, err
		}
		if isEnd(line) {
			f.Flag = line[len(end)]
			f.Raw = raw.String()
			return f, nil
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("bad header line %q", line)
		}
		f.Headers = append(f.Headers, Header{Name: name, Value: strings.TrimSpace(value)})
	}
	// The body ends with CRLF and the end-line.
	var body strings.Builder
	for {
		line, err := r.ReadString('\n')
		raw.WriteString(line)
		if raw.Len() > max {
			return nil, fmt.Errorf("frame over %d bytes", max)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if t := strings.TrimRight(line, "\r\n"); isEnd(t) {
			f.Flag = t[len(end)]
			f.Body = strings.TrimSuffix(body.String(), "\r\n")
			f.Raw = raw.String()
			return f, nil
		}
		body.WriteString(line)
	}
}

// kamailioCmapSlots is the slot count of the relay's session map
// (modparam("msrp", "cmap_size", 8) in kamailio.cfg.tmpl: 1<<8 slots).
const kamailioCmapSlots = 1 << 8

// UnknownMSRPSession returns a session id the relay does not know and
// that its session map cannot mistake for one of known (the session ids
// of the Use-Path URIs it handed out).
//
// The msrp module of Kamailio 5.6 keeps each slot of its session map
// sorted by a hash of the session id, and msrp_cmap_lookup stops at the
// first entry whose hash is greater than the one looked for; it then
// takes that entry as found, whatever its session id. So a SEND for an
// unknown session is relayed (and answered 200) to another session's
// connection when their ids fall in the same slot and the other's hash is
// greater: one run in about 250 with two sessions. An id in a slot of
// its own is answered 481, as it should be.
func UnknownMSRPSession(known ...string) string {
	used := make(map[uint32]bool, len(known))
	for _, s := range known {
		used[kamailioCaseHash(s)%kamailioCmapSlots] = true
	}
	for i := 0; ; i++ {
		s := "no-such-session-" + strconv.Itoa(i)
		if !used[kamailioCaseHash(s)%kamailioCmapSlots] {
			return s
		}
	}
}

// MSRPSessionOf returns the session part of a relay's Use-Path URI
// (msrp://HOST:PORT/SESSION;tcp), or "".
func MSRPSessionOf(uri string) string {
	_, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return ""
	}
	_, sess, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	sess, _, _ = strings.Cut(sess, ";")
	return sess
}

// kamailioCaseHash is the case-insensitive string hash Kamailio's core
// uses for its hash tables (core_case_hash without a second string or a
// size): four bytes at a time, big-endian, ASCII letters lowered, each
// word w added as w^(w>>3), the tail as one more word, then mixed.
// Bytes are signed chars, as on x86.
func kamailioCaseHash(s string) uint32 {
	b := func(c byte) uint32 {
		if c >= 'A' && c <= 'Z' {
			c |= 0x20
		}
		return uint32(int32(int8(c)))
	}
	var h uint32
	i := 0
	for ; i+4 <= len(s); i += 4 {
		w := b(s[i])<<24 + b(s[i+1])<<16 + b(s[i+2])<<8 + b(s[i+3])
		h += w ^ w>>3
	}
	var w uint32
	for ; i < len(s); i++ {
		w = w<<8 + b(s[i])
	}
	h += w ^ w>>3
	return h + h>>11 + (h>>13 + h>>23)
}
