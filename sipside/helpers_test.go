package sipside

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

var loopback = netip.MustParsePrefix("127.0.0.1/32")

// checkLeaks fails the test if goroutines started during it are still
// running a few seconds after its cleanups (which close the UAs) ran.
// Register it first so that its cleanup runs last.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if os.Getenv("STOX_TEST_LOG") != "" {
		os.Stderr.Write(p)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger(level slog.Level) (*slog.Logger, *syncBuffer) {
	sb := &syncBuffer{}
	return slog.New(slog.NewTextHandler(sb, &slog.HandlerOptions{Level: level})), sb
}

// startUA starts a UA on loopback with UDP and TCP listeners on free ports,
// trusting 127.0.0.1, and closes it at cleanup.
func startUA(t *testing.T, opts ...Option) *UA {
	t.Helper()
	return startUAOn(t, []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"}, opts...)
}

// startUAOn is startUA with the given listeners.
func startUAOn(t *testing.T, listen []string, opts ...Option) *UA {
	t.Helper()
	log, _ := newLogger(slog.LevelInfo)
	base := []Option{
		WithListen(listen...),
		WithTrusted(loopback),
		WithDomain("sip.example.test"),
		WithLogger(log),
	}
	u, err := New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := u.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return u
}

// addr returns the listener address of a transport.
func addr(t *testing.T, u *UA, transport string) netip.AddrPort {
	t.Helper()
	for _, l := range u.Listeners() {
		if l.Transport == transport {
			return l.Addr
		}
	}
	t.Fatalf("no %s listener", transport)
	return netip.AddrPort{}
}

// recorder collects incoming messages and answers with a fixed reply or a
// reply function.
type recorder struct {
	mu    sync.Mutex
	msgs  []*IncomingMessage
	reply func(m *IncomingMessage) Reply
	got   chan *IncomingMessage
}

func newRecorder() *recorder {
	return &recorder{got: make(chan *IncomingMessage, 1024)}
}

func (r *recorder) handle(ctx context.Context, m *IncomingMessage) Reply {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	f := r.reply
	r.mu.Unlock()
	select {
	case r.got <- m:
	default:
	}
	if f != nil {
		return f(m)
	}
	return Reply{Code: 202}
}

func (r *recorder) wait(t *testing.T) *IncomingMessage {
	t.Helper()
	select {
	case m := <-r.got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message arrived")
		return nil
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// rawUDP is a bare UDP socket standing in for a SIP peer.
type rawUDP struct {
	t    *testing.T
	conn *net.UDPConn
}

func newRawUDP(t *testing.T) *rawUDP {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawUDP{t: t, conn: c}
}

func (r *rawUDP) port() int { return r.conn.LocalAddr().(*net.UDPAddr).Port }

// read returns the next datagram, or nil after timeout.
func (r *rawUDP) read(timeout time.Duration) ([]byte, *net.UDPAddr) {
	buf := make([]byte, 1<<16)
	r.conn.SetReadDeadline(time.Now().Add(timeout))
	n, a, err := r.conn.ReadFromUDP(buf)
	if err != nil {
		return nil, nil
	}
	return buf[:n], a
}

// readRequest reads datagrams until a request arrives (skipping
// retransmissions of requests already seen).
func (r *rawUDP) readRequest(timeout time.Duration, seen map[string]bool) (*sip.Request, []byte, *net.UDPAddr) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		data, a := r.read(time.Until(deadline))
		if data == nil {
			return nil, nil, nil
		}
		msg, err := sip.ParseMessage(data)
		if err != nil {
			r.t.Fatalf("peer got unparsable data: %v\n%s", err, data)
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			continue
		}
		b := viaBranch(req)
		if seen != nil {
			if seen[b] {
				continue
			}
			seen[b] = true
		}
		return req, data, a
	}
	return nil, nil, nil
}

func (r *rawUDP) respond(req *sip.Request, to *net.UDPAddr, code int, extra ...sip.Header) {
	r.t.Helper()
	res := sip.NewResponseFromRequest(req, code, reasonPhrase(code), nil)
	for _, h := range extra {
		res.AppendHeader(h)
	}
	if _, err := r.conn.WriteToUDP([]byte(res.String()), to); err != nil {
		r.t.Errorf("peer respond: %v", err)
	}
}

// sendRaw sends one datagram to u's UDP listener from a fresh socket and
// returns the first response, or nil.
func sendRawUDP(t *testing.T, to netip.AddrPort, data string) *sip.Response {
	t.Helper()
	r := newRawUDP(t)
	if _, err := r.conn.WriteToUDPAddrPort([]byte(data), to); err != nil {
		t.Fatal(err)
	}
	b, _ := r.read(3 * time.Second)
	if b == nil {
		return nil
	}
	msg, err := sip.ParseMessage(b)
	if err != nil {
		t.Fatalf("parse response: %v", err)
	}
	res, ok := msg.(*sip.Response)
	if !ok {
		t.Fatalf("not a response: %s", b)
	}
	return res
}

// sendRawTCP writes data on a new TCP connection and returns the first
// response, or nil when the connection closes first.
func sendRawTCP(t *testing.T, to netip.AddrPort, data string) *sip.Response {
	t.Helper()
	c, err := net.Dial("tcp", to.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, data); err != nil {
		t.Fatal(err)
	}
	var got *sip.Response
	readResponses(t, c, 1, 3*time.Second, func(r *sip.Response) { got = r })
	return got
}

// readResponses parses up to n responses from a stream.
func readResponses(t *testing.T, c net.Conn, n int, timeout time.Duration, f func(*sip.Response)) int {
	t.Helper()
	p := sip.NewParser().NewSIPStream()
	buf := make([]byte, 1<<16)
	count := 0
	c.SetReadDeadline(time.Now().Add(timeout))
	for count < n {
		k, err := c.Read(buf)
		if err != nil {
			return count
		}
		err = p.ParseSIPStream(buf[:k], func(m sip.Message) {
			if r, ok := m.(*sip.Response); ok {
				count++
				f(r)
			}
		})
		if err != nil && err != sip.ErrParseSipPartial {
			t.Fatalf("parse stream: %v", err)
		}
	}
	return count
}

// rawMessage builds a MESSAGE request text. Header lines are given whole;
// Content-Length is added from the body unless a header sets it.
func rawMessage(method, ruri string, headers []string, body string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s SIP/2.0\r\n", method, ruri)
	hasCL := false
	for _, h := range headers {
		if strings.HasPrefix(strings.ToLower(h), "content-length:") || strings.HasPrefix(strings.ToLower(h), "l:") {
			hasCL = true
		}
		sb.WriteString(h)
		sb.WriteString("\r\n")
	}
	if !hasCL {
		fmt.Fprintf(&sb, "Content-Length: %d\r\n", len(body))
	}
	sb.WriteString("\r\n")
	sb.WriteString(body)
	return sb.String()
}

var branchSeq struct {
	mu sync.Mutex
	n  int
}

func nextBranch() string {
	branchSeq.mu.Lock()
	defer branchSeq.mu.Unlock()
	branchSeq.n++
	return fmt.Sprintf("z9hG4bK-test-%d-%d", time.Now().UnixNano(), branchSeq.n)
}

// stdHeaders are the headers of a good MESSAGE from 127.0.0.1.
func stdHeaders(transport string, port int) []string {
	return []string{
		fmt.Sprintf("Via: SIP/2.0/%s 127.0.0.1:%d;branch=%s;rport", transport, port, nextBranch()),
		"Max-Forwards: 70",
		"From: <sip:romeo@example.net>;tag=vwxyz",
		"To: <sip:juliet@example.com>",
		"Call-ID: 9E97FB43-85F4-4A00-8751-1124FD4C7B2E",
		"CSeq: 1 MESSAGE",
		"Content-Type: text/plain",
	}
}

// replace returns hs with the header starting with prefix replaced by h
// (removed when h is "").
func replace(hs []string, prefix, h string) []string {
	out := make([]string, 0, len(hs))
	for _, x := range hs {
		if strings.HasPrefix(x, prefix) {
			if h != "" {
				out = append(out, h)
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

// writeCert writes a self-signed certificate for 127.0.0.1 and returns the
// file names and a pool that trusts it.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "stox test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func tlsClient(pool *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: pool} }

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// sameFreePort finds a port free for both UDP and TCP on 127.0.0.1.
func sameFreePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both udp and tcp")
	return 0
}
