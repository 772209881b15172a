package msrp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Listener is the passive side of RFC 4975 s5.4 (the answerer, CHAT-11): it
// accepts connections and binds each to the session its first request names
// in To-Path. An unknown session gets 481, a session already bound to
// another connection 506. A connection that binds nothing within the bind
// timeout is closed (slow-loris protection).
type Listener struct {
	cfg    config
	opts   []Option
	ln     net.Listener
	secure bool
	// reusable: Listen bound the socket with reuseControl, so Dialer may
	// connect from its address.
	reusable bool
	doneCh   chan struct{}
	wg       sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	sessions map[string]*Session   // by session-id, case-sensitive (TV-28b)
	conns    map[net.Conn]struct{} // accepted, not yet bound
}

// Listen listens on a TCP address ("tcp", "127.0.0.1:2855"); with
// WithTLSConfig it serves msrps. Where the system allows it (Linux), the
// socket is bound with SO_REUSEADDR and SO_REUSEPORT so that Dialer can
// connect from the listening port (see Dialer).
func Listen(network, address string, opts ...Option) (*Listener, error) {
	lc := net.ListenConfig{Control: reuseControl}
	ln, err := lc.Listen(context.Background(), network, address)
	if err != nil {
		return nil, fmt.Errorf("msrp: listen: %w", err)
	}
	l, err := NewListener(ln, opts...)
	if err != nil {
		ln.Close()
		return nil, err
	}
	l.reusable = true
	return l, nil
}

// NewListener serves MSRP on ln, wrapped in TLS when WithTLSConfig is
// given. The Listener owns ln from then on.
func NewListener(ln net.Listener, opts ...Option) (*Listener, error) {
	cfg := defaultConfig()
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	l := &Listener{
		cfg:      cfg,
		opts:     append([]Option(nil), opts...),
		ln:       ln,
		doneCh:   make(chan struct{}),
		sessions: make(map[string]*Session),
		conns:    make(map[net.Conn]struct{}),
	}
	if cfg.tlsConfig != nil {
		l.ln = tls.NewListener(ln, cfg.tlsConfig)
		l.secure = true
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Dialer returns a dialer (for WithDialer) whose connections leave from
// the listening address, where the system allows it (Linux, a Listener made
// by Listen), and from any port otherwise. A relay such as Kamailio's msrp
// module delivers frames for a URI to the host:port in it and reuses a
// connection only when it comes from that port: an active session whose
// URI names this listener must connect from it, or the relay's frames come
// back on a new connection that the session is not bound to (RFC 4976 s6).
//
// Use it only where a relay needs it: TCP allows one connection per pair of
// addresses, so a second connection from the listening port to the same
// host:port fails (EADDRNOTAVAIL on Linux) while an earlier one lasts or
// is still closing, as when a client takes all its sessions on one port.
func (l *Listener) Dialer() *net.Dialer {
	if !reusable || !l.reusable {
		return &net.Dialer{}
	}
	return &net.Dialer{LocalAddr: l.ln.Addr(), Control: reuseControl}
}

// Secure reports whether the listener serves msrps.
func (l *Listener) Secure() bool { return l.secure }

// URL returns a URL for a new session on this listener: the given host (the
// address put in SDP, CHAT-02a), the listener's port, a fresh session-id
// and transport tcp.
func (l *Listener) URL(host string) URL {
	port := 0
	if a, ok := l.ln.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	return URL{Secure: l.secure, Host: host, Port: port, SessionID: NewSessionID(), Transport: "tcp"}
}

// Expect registers a passive session with the local URL local (its
// session-id unique among this listener's sessions) and the peer's path
// remote (from SDP). Options add to the listener's. The session binds when
// the peer connects; Close unregisters it.
func (l *Listener) Expect(local URL, remote []URL, opts ...Option) (*Session, error) {
	cfg := defaultConfig()
	if err := cfg.apply(append(append([]Option(nil), l.opts...), opts...)); err != nil {
		return nil, err
	}
	if local.Secure != l.secure {
		return nil, fmt.Errorf("%w: %s on a listener with TLS %v", ErrInvalid, local, l.secure)
	}
	s, err := newSession(local, remote, l, cfg)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if l.sessions[local.SessionID] != nil {
		return nil, fmt.Errorf("%w: %s", ErrSessionExists, local.SessionID)
	}
	l.sessions[local.SessionID] = s
	return s, nil
}

func (l *Listener) unregister(s *Session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions[s.local.SessionID] == s {
		delete(l.sessions, s.local.SessionID)
	}
}

// lookup finds the session a To-Path URL names (CHAT-11: session-id exact,
// then the whole URL compared as RFC 4975 s6.1 says).
func (l *Listener) lookup(u URL) *Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sessions[u.SessionID]
	if s == nil || !s.local.Equal(u) {
		return nil
	}
	return s
}

// Close stops accepting, closes connections not yet bound, waits for the
// listener's goroutines, and closes every session registered on it.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.doneCh)
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	sessions := make([]*Session, 0, len(l.sessions))
	for _, s := range l.sessions {
		sessions = append(sessions, s)
	}
	l.mu.Unlock()
	err := l.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	l.wg.Wait()
	for _, s := range sessions {
		s.Close()
	}
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.doneCh:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.cfg.log.Warn("msrp accept failed", "err", err)
			select {
			case <-l.doneCh:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		l.mu.Lock()
		if l.closed || len(l.conns) >= l.cfg.maxPendingConns {
			l.mu.Unlock()
			conn.Close()
			continue
		}
		l.conns[conn] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serveConn(conn)
	}
}

// serveConn reads requests from a new connection until one binds a session
// or the bind timeout passes.
func (l *Listener) serveConn(conn net.Conn) {
	defer l.wg.Done()
	bound := false
	defer func() {
		l.mu.Lock()
		delete(l.conns, conn)
		l.mu.Unlock()
		if !bound {
			conn.Close()
		}
	}()
	// One absolute deadline for the whole binding phase, whatever the peer
	// sends meanwhile.
	deadline := time.Now().Add(l.cfg.bindTimeout)
	if err := conn.SetDeadline(deadline); err != nil {
		return
	}
	_, isTLS := conn.(*tls.Conn)
	p := NewParser(l.cfg.limits)
	answer := func(req *Frame, code int) bool {
		f := responseFrame(req, code, "", nil)
		if f == nil {
			return true
		}
		_, err := conn.Write(encodeTrusted(nil, f))
		return err == nil
	}
	for {
		f, err := p.Next()
		if err == ErrNeedMore {
			if _, _, err := p.readFrom(conn, 4096); err != nil {
				if err != io.EOF {
					l.cfg.log.Debug("msrp connection closed before binding", "remote", conn.RemoteAddr(), "err", err)
				}
				return
			}
			continue
		}
		if err != nil {
			var perr *ParseError
			if !errors.As(err, &perr) {
				return
			}
			if r := perr.Frame; r != nil && r.Method != "" && len(r.FromPath) > 0 && len(r.ToPath) > 0 {
				if !answer(r, perr.Code) {
					return
				}
			}
			if perr.Fatal {
				return
			}
			continue
		}
		if f.IsResponse() {
			continue // nothing was sent on this connection
		}
		s := l.lookup(f.ToPath[0])
		if s == nil || s.local.Secure != isTLS {
			if !answer(f, StatusNoSession) { // CHAT-11a, TV-28b
				return
			}
			continue
		}
		// RFC 4975 s5.4: the first request comes from the endpoint in the
		// SDP path.
		if last := f.FromPath[len(f.FromPath)-1]; !last.Equal(s.remote[len(s.remote)-1]) {
			if !answer(f, StatusNoSession) {
				return
			}
			continue
		}
		if err := conn.SetDeadline(time.Time{}); err != nil {
			return
		}
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return
		}
		switch err := s.bind(conn, p, f); {
		case err == nil:
			bound = true
			return
		case errors.Is(err, errAlreadyBound):
			if !answer(f, StatusSessionAlreadyBound) { // CHAT-11b
				return
			}
		default:
			if !answer(f, StatusNoSession) {
				return
			}
		}
		if err := conn.SetDeadline(deadline); err != nil {
			return
		}
	}
}
