package msrp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// checkLeaks fails the test if goroutines of this package's sessions or
// listeners outlive it (STYLE.md: every goroutine is stopped by Close). Call
// it first, so that its cleanup runs last.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked := leakedGoroutines()
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "stox/msrp.(*Session)") || strings.Contains(g, "stox/msrp.(*Listener)") {
			out = append(out, g)
		}
	}
	return out
}

// testCtx is a context with a timeout for one test (pion/ice: a timeout in
// every test).
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// selfSigned returns a server certificate for 127.0.0.1 and localhost and a
// pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func golden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseOne parses b, which must hold exactly one frame.
func parseOne(t testing.TB, b []byte) *Frame {
	t.Helper()
	p := NewParser(Limits{})
	if _, err := p.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
	f, err := p.Next()
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	if _, err := p.Next(); err != ErrNeedMore || p.Buffered() != 0 {
		t.Fatalf("bytes left after the frame: %d (%v)", p.Buffered(), err)
	}
	return f
}

// rawPeer is a hand-driven MSRP peer on a plain connection.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	r    *Reader
}

func newRawPeer(t *testing.T, conn net.Conn) *rawPeer {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{t: t, conn: conn, r: NewReader(conn, Limits{MaxBodyBytes: 1 << 20})}
}

func dialRaw(t *testing.T, addr net.Addr) *rawPeer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return newRawPeer(t, conn)
}

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("raw write: %v", err)
	}
}

func (p *rawPeer) writeFrame(f *Frame) {
	p.t.Helper()
	b, err := f.Bytes()
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(b)
}

// read returns the next frame, failing the test after 5 s.
func (p *rawPeer) read() *Frame {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := p.r.ReadFrame()
	if err != nil {
		p.t.Fatalf("raw read: %v", err)
	}
	return f
}

// expectClosed waits until the other side closes the connection.
func (p *rawPeer) expectClosed(within time.Duration) {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(within))
	for {
		_, err := p.r.ReadFrame()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			p.t.Fatalf("connection still open after %v", within)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
			return
		}
		var perr *ParseError
		if errors.As(err, &perr) && !perr.Fatal {
			continue
		}
		p.t.Fatalf("unexpected error waiting for close: %v", err)
	}
}

// respond answers req with code, as a peer would.
func (p *rawPeer) respond(req *Frame, code int) {
	p.t.Helper()
	p.writeFrame(&Frame{TID: req.TID, Code: code, Reason: ReasonPhrase(code), ToPath: req.FromPath[:1], FromPath: req.ToPath[len(req.ToPath)-1:], Flag: FlagEnd})
}
