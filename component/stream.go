package component

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"gosrc.io/xmpp/stanza"
)

const (
	nsComponent = stanza.NSComponent
	nsClient    = stanza.NSClient
	nsStream    = stanza.NSStream
	nsStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsStreams   = "urn:ietf:params:xml:ns:xmpp-streams"
)

// stream is one XEP-0114 connection to the XMPP server. It is written by many
// goroutines (one Write per stanza, under mu) and read by one.
type stream struct {
	conn    net.Conn
	rd      *elementReader
	mu      sync.Mutex // serialises writes
	timeout time.Duration
	// deadlineSet is when the write deadline was last moved (under mu).
	deadlineSet time.Time
	// raw is conn's descriptor for tryWrite (under mu; nil until the first
	// tryWrite, or when conn has none).
	raw     syscall.RawConn
	rawDone bool
	// failed is the write error that broke the stream (under mu): the
	// reader then sees only that the connection was closed.
	failed error
	// segmentErr: capping the segment size failed (dialStream); the
	// connection works with the system's size.
	segmentErr error
}

// handshakeToken is lowercase-hex(SHA-1(streamID || secret)) (XEP-0114 s3, TV-14).
func handshakeToken(streamID, secret string) string {
	h := sha1.Sum([]byte(streamID + secret))
	return hex.EncodeToString(h[:])
}

// dialStream connects, opens the stream and authenticates (COMP-01, COMP-02).
// Errors that retrying cannot fix (wrong secret, domain conflict) wrap
// ErrHandshakeRejected.
//
// maxSegment > 0 caps the connection's TCP segments at that many bytes (see
// Config.MaxSegment); a failure to do so is kept in segmentErr, not fatal.
func dialStream(ctx context.Context, addr, domain, secret string, timeout time.Duration, maxSegment int) (*stream, error) {
	d := net.Dialer{Timeout: timeout}
	// Control runs for each address tried, concurrently when the name has
	// IPv4 and IPv6 addresses: the error kept is the connected one's.
	var segMu sync.Mutex
	segErrs := map[string]error{}
	if maxSegment > 0 {
		d.Control = func(_, address string, c syscall.RawConn) error {
			if err := setMaxSegment(c, maxSegment); err != nil {
				segMu.Lock()
				segErrs[address] = err
				segMu.Unlock()
			}
			return nil
		}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("component: dial %s: %w", addr, err)
	}
	segMu.Lock()
	segErr := segErrs[conn.RemoteAddr().String()]
	segMu.Unlock()
	s := &stream{conn: conn, timeout: timeout, segmentErr: segErr}
	// The whole opening exchange must finish within the timeout, or when ctx ends.
	_ = conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	// The opening exchange goes through encoding/xml (gosrc.io/xmpp's
	// helpers); it reads the buffered reader a byte at a time and keeps
	// nothing back, so the stanza reader goes on from the same bytes.
	br := bufio.NewReaderSize(conn, 64<<10)
	dec := xml.NewDecoder(br)
	open := fmt.Sprintf("<?xml version='1.0'?><stream:stream to='%s' xmlns='%s' xmlns:stream='%s'>",
		xmlAttrEscape(domain), nsComponent, nsStream)
	if _, err := io.WriteString(conn, open); err != nil {
		conn.Close()
		return nil, fmt.Errorf("component: open stream: %w", err)
	}
	id, err := stanza.InitStream(dec)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("component: open stream: %w", err)
	}
	if _, err := io.WriteString(conn, "<handshake>"+handshakeToken(id, secret)+"</handshake>"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("component: handshake: %w", err)
	}
	p, err := stanza.NextPacket(dec)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("component: handshake: %w", err)
	}
	switch v := p.(type) {
	case stanza.Handshake:
	case stanza.StreamError:
		conn.Close()
		if v.Error.Local == "not-authorized" {
			return nil, fmt.Errorf("%w: %w", ErrHandshakeRejected, ErrNotAuthorized)
		}
		return nil, fmt.Errorf("%w: stream error %s %s", ErrHandshakeRejected, v.Error.Local, v.Text)
	default:
		conn.Close()
		return nil, fmt.Errorf("%w: unexpected <%s/>", ErrHandshakeRejected, p.Name())
	}
	_ = conn.SetDeadline(time.Time{})
	s.rd = newElementReader(br, streamScope)
	return s, nil
}

// write sends one serialised stanza. A write that cannot complete within the
// timeout breaks the stream (the supervisor then reconnects).
func (s *stream) write(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeLocked(b)
}

func (s *stream) writeLocked(b []byte) error {
	s.deadlineLocked()
	if _, err := s.conn.Write(b); err != nil {
		return s.breakLocked(err)
	}
	return nil
}

// breakLocked closes the connection after a failed write and returns the
// error to report.
func (s *stream) breakLocked(err error) error {
	if s.failed == nil {
		s.failed = err
	}
	_ = s.conn.Close()
	return fmt.Errorf("%w: %v", ErrNotConnected, err)
}

// writeFailure is the write error that broke the stream, if one did.
func (s *stream) writeFailure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// writeBuffers is write for several stanzas at once (one writev).
func (s *stream) writeBuffers(bufs [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadlineLocked()
	nb := net.Buffers(bufs)
	if _, err := nb.WriteTo(s.conn); err != nil {
		return s.breakLocked(err)
	}
	return nil
}

// deadlineLocked moves the write deadline. That costs a runtime timer
// update; under load writes come every few microseconds, so it is moved
// only when a quarter of the timeout has gone by: a write gets at least
// three quarters of it.
func (s *stream) deadlineLocked() {
	if now := time.Now(); now.Sub(s.deadlineSet) >= s.timeout/4 {
		_ = s.conn.SetWriteDeadline(now.Add(s.timeout))
		s.deadlineSet = now
	}
}

// tryWrite writes what of b the socket takes now, without waiting for it
// to take more (writeNow); it returns how many bytes that was. On a
// connection without a file descriptor it is write.
func (s *stream) tryWrite(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.rawDone {
		s.rawDone = true
		if sc, ok := s.conn.(syscall.Conn); ok && haveWriteNow {
			s.raw, _ = sc.SyscallConn()
		}
	}
	if s.raw == nil {
		if err := s.writeLocked(b); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	// writeNow never waits, but the poller refuses any write once the
	// deadline an earlier waiting write set has passed: keep it ahead.
	s.deadlineLocked()
	n, err := writeNow(s.raw, b)
	if err != nil {
		return n, s.breakLocked(err)
	}
	return n, nil
}

// read returns the next top-level element. At the server's </stream:stream>
// it returns errStreamClosed; a stream error returns an error naming it.
func (s *stream) read() (*Element, error) {
	e, err := s.rd.next()
	if err != nil {
		return nil, err
	}
	if e.Space == nsStream && e.Local == "error" {
		cond := "undefined-condition"
		for _, c := range e.Children {
			if c.Space == nsStreams && c.Local != "text" {
				cond = c.Local
			}
		}
		return nil, fmt.Errorf("%w: %s", errStreamError, cond)
	}
	return e, nil
}

// close ends the stream politely and closes the connection; waiting for the
// server's own </stream:stream> is bounded by grace.
func (s *stream) close(grace time.Duration) {
	s.mu.Lock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(grace))
	_, _ = io.WriteString(s.conn, "</stream:stream>")
	s.mu.Unlock()
	_ = s.conn.SetReadDeadline(time.Now().Add(grace))
}

// kill closes the connection at once.
func (s *stream) kill() { _ = s.conn.Close() }

var (
	errStreamClosed = errors.New("component: server closed the stream")
	errStreamError  = errors.New("component: stream error")
)

func xmlAttrEscape(s string) string {
	var b bytes.Buffer
	escapeAttr(&b, s)
	return b.String()
}
