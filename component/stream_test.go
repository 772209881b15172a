package component

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stox-gw/stox/mapping"
)

// fakeServer is a minimal XEP-0114 server on loopback for the supervision
// tests: it checks the handshake and then behaves as a test says.
type fakeServer struct {
	t       *testing.T
	ln      net.Listener
	secret  string
	conns   atomic.Int32
	pings   atomic.Int32
	mode    func(n int32) string // per connection: "ok", "silent", "close", "deny"
	stanzas chan string
	wg      sync.WaitGroup
}

func newFakeServer(t *testing.T, mode func(int32) string) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, secret: "s3cret", mode: mode, stanzas: make(chan string, 100)}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		n := s.conns.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.serve(c, s.mode(n))
		}()
	}
}

func (s *fakeServer) serve(c net.Conn, mode string) {
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	d := xml.NewDecoder(bufio.NewReader(c))
	if _, err := d.Token(); err != nil { // <?xml?> or stream start
		return
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return
		}
		if st, ok := tok.(xml.StartElement); ok && st.Name.Local == "stream" {
			break
		} else if ok {
			return
		}
	}
	const id = "3BF96D32"
	fmt.Fprintf(c, "<?xml version='1.0'?><stream:stream xmlns:stream='%s' xmlns='%s' id='%s' from='sip.example.com'>", nsStream, nsComponent, id)
	var hs struct {
		Value string `xml:",chardata"`
	}
	if err := d.Decode(&hs); err != nil {
		return
	}
	if mode == "deny" || hs.Value != handshakeToken(id, s.secret) {
		io.WriteString(c, "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
		return
	}
	io.WriteString(c, "<handshake/>")
	if mode == "close" {
		io.WriteString(c, "</stream:stream>")
		io.Copy(io.Discard, c)
		return
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return
		}
		if end, ok := tok.(xml.EndElement); ok && end.Name.Local == "stream" {
			io.WriteString(c, "</stream:stream>")
			return
		}
		st, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		e, err := readElement(d, st, 0)
		if err != nil {
			return
		}
		if e.Local == "iq" && e.Child(nsPing, "ping") != nil {
			s.pings.Add(1)
			if mode == "silent" {
				continue // never answer: the watchdog must notice
			}
			fmt.Fprintf(c, "<iq type='result' id='%s' from='%s' to='%s'/>", e.AttrValue("id"), e.AttrValue("to"), e.AttrValue("from"))
			continue
		}
		s.stanzas <- e.String()
	}
}

func newTestGateway(t *testing.T, addr, secret string) *Gateway {
	t.Helper()
	am, err := mapping.NewAddressing(mapping.AddressingConfig{Component: "sip.example.com", ServedDomains: []string{"example.com"}, ForeignDomains: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{
		Component: "sip.example.com", Server: addr, Secret: secret, Addressing: am,
		PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, DialTimeout: time.Second,
	}, nil, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func runGateway(t *testing.T, g *Gateway) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return")
			}
			g.Close(0)
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunWrongSecretIsPermanent(t *testing.T) {
	// LIBRARIES.md: a wrong secret is not-authorized; retrying cannot help.
	s := newFakeServer(t, func(int32) string { return "ok" })
	g := newTestGateway(t, s.ln.Addr().String(), "wrong")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := g.Run(ctx)
	if !errors.Is(err, ErrHandshakeRejected) || !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("Run = %v", err)
	}
	g.Close(0)
}

func TestRunWatchdogReconnects(t *testing.T) {
	// The first server stays silent after the handshake (a half-dead
	// stream); the watchdog's unanswered ping makes the gateway reconnect.
	s := newFakeServer(t, func(n int32) string {
		if n == 1 {
			return "silent"
		}
		return "ok"
	})
	g := newTestGateway(t, s.ln.Addr().String(), s.secret)
	stop := runGateway(t, g)
	waitFor(t, "a second connection", func() bool { return s.conns.Load() >= 2 && g.Connected() })
	waitFor(t, "pings answered on the new stream", func() bool { return s.pings.Load() >= 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRunReconnectsAfterStreamClose(t *testing.T) {
	// The server ends the stream cleanly; the gateway notices and comes back.
	s := newFakeServer(t, func(n int32) string {
		if n == 1 {
			return "close"
		}
		return "ok"
	})
	g := newTestGateway(t, s.ln.Addr().String(), s.secret)
	stop := runGateway(t, g)
	waitFor(t, "reconnect", func() bool { return s.conns.Load() >= 2 && g.Connected() })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRunDeliversQueuedAfterReconnect(t *testing.T) {
	// Stanzas queued while no server is reachable are written, in order,
	// once the gateway connects.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nobody listens yet
	g := newTestGateway(t, addr, "s3cret")
	for i := range 3 {
		if _, err := g.send(TextElement(nsComponent, "message", "").SetAttr("to", "a@example.com").SetAttr("id", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	stop := runGateway(t, g)
	time.Sleep(50 * time.Millisecond) // a few failed dials
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	s := &fakeServer{t: t, ln: ln2, secret: "s3cret", mode: func(int32) string { return "ok" }, stanzas: make(chan string, 100)}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() { ln2.Close(); s.wg.Wait() })
	for i := range 3 {
		select {
		case st := <-s.stanzas:
			if !strings.Contains(st, fmt.Sprintf(`id="%d"`, i)) {
				t.Fatalf("stanza %d: %s", i, st)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("queued stanza not delivered")
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Config.MaxSegment: 0 takes the default, any negative value leaves the
// system's size, the rest must be a size TCP_MAXSEG takes.
func TestConfigMaxSegment(t *testing.T) {
	am, err := mapping.NewAddressing(mapping.AddressingConfig{Component: "sip.example.com", ServedDomains: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want int }{{0, DefaultMaxSegment}, {-1, -1}, {-7, -1}, {536, 536}, {32767, 32767}, {535, 0}, {32768, 0}} {
		cfg := Config{Component: "sip.example.com", Server: "127.0.0.1:1", Addressing: am, MaxSegment: c.in}
		err := cfg.setDefaults()
		if c.want == 0 {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("MaxSegment %d: err = %v, want ErrConfig", c.in, err)
			}
			continue
		}
		if err != nil || cfg.MaxSegment != c.want {
			t.Errorf("MaxSegment %d: got %d, %v; want %d", c.in, cfg.MaxSegment, err, c.want)
		}
	}
}
