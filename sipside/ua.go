package sipside

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Listener is a bound listening socket.
type Listener struct {
	Transport string // "udp", "tcp" or "tls"
	Addr      netip.AddrPort
}

// UA is a SIP user agent for page-mode instant messages (RFC 3428) on top of
// one sipgo UserAgent with its Server and Client.
type UA struct {
	cfg      *config
	log      *slog.Logger
	parser   *sip.Parser
	sua      *sipgo.UserAgent
	srv      *sipgo.Server
	cli      *sipgo.Client
	seq      *seqShards
	workers  *workers
	srvc     *srvCache
	calls    *callTable
	slots    chan struct{}
	route    *sip.Uri // the outbound proxy with ;lr, or nil
	routeStr string   // route as written, "" for none
	// proxyTarget is the outbound proxy's transport and address when they
	// need no lookup (an IP address, or a port given), else zero.
	proxyTarget target
	uaString    string
	allow       string
	accept      string
	limit       int // the parser's MaxMessageLength
	// headerExtra bounds the bytes of the User-Agent and Route headers of
	// our requests (fitsUDP).
	headerExtra int
	tlsConf     *tls.Config

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	// readLoopCtx is ctx for a handler called on the read loop (OnReadLoop).
	readLoopCtx context.Context

	// Incoming MESSAGEs being handled (WithMaxIncoming), and those shed.
	incomingBusy atomic.Int64
	shedCount    atomic.Uint64
	shedLogged   atomic.Int64 // unix ns of the last overload warning
	// MESSAGE transactions by path (Stats).
	fastIn, fastOut, usualIn, usualOut atomic.Uint64
	fastInline                         atomic.Uint64 // of fastIn, handled on the read loop

	mu        sync.Mutex
	starting  bool
	closed    bool
	state     *startedState
	closers   []io.Closer
	fasts     []*fastPath
	listeners []Listener
	wg        sync.WaitGroup // serve loops, handler calls, SendMessage calls
}

// startedState is what Start learned about the bound listeners; it does not
// change afterwards.
type startedState struct {
	sentBy   map[string]hostPort // by sipgo transport name "UDP", "TCP", "TLS"
	udpLaddr sip.Addr            // the UDP listener, used as the source of UDP requests
	fast     *fastPath           // the fast path of that listener, or nil
	fastVia  string              // its Via sent-by, host:port; "" when not known
}

type hostPort struct {
	host string
	port int
}

// New builds a UA. It binds nothing: call Start.
func New(opts ...Option) (*UA, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, optErr("nil option")
		}
		if err := o(cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}

	u := &UA{
		cfg:   cfg,
		log:   cfg.log,
		slots: make(chan struct{}, cfg.maxInFlight),
		// Lanes of UDP conversations remember branches for Timer J (64*T1)
		// so that late retransmissions get no ticket.
		seq:   newSeqShards(cfg.orderWait, DefaultTransactionTimeout, 1<<16, 1<<16),
		srvc:  newSRVCache(cfg.lookupSRV),
		calls: newCallTable(cfg.maxCalls),
	}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	u.readLoopCtx = context.WithValue(u.ctx, readLoopKey{}, true)
	u.workers = newWorkers(2*time.Second, u.ctx.Done(), &u.wg)
	u.uaString = "stox"
	if cfg.domain != "" {
		u.uaString = "stox (" + cfg.domain + ")"
	}
	methods := []string{"OPTIONS"}
	if cfg.handler != nil {
		methods = append(methods, "MESSAGE")
	}
	if cfg.subscribe != nil {
		methods = append(methods, "SUBSCRIBE")
	}
	if cfg.notify != nil {
		methods = append(methods, "NOTIFY")
	}
	if cfg.invite != nil {
		methods = append(methods, "INVITE", "ACK", "BYE", "CANCEL")
	}
	slices.Sort(methods)
	u.allow = strings.Join(methods, ", ")
	u.accept = strings.Join(cfg.accept, ", ")
	if cfg.proxy != nil {
		r := cfg.proxy.Clone()
		if !r.UriParams.Has("lr") {
			if r.UriParams == nil {
				r.UriParams = sip.NewParams()
			}
			r.UriParams.Add("lr", "")
		}
		u.route = r
		u.routeStr = r.String()
		if h := strings.Trim(cfg.proxy.Host, "[]"); cfg.proxy.Port > 0 || isIP(h) {
			if tg, err := u.resolveHop(context.Background(), cfg.proxy); err == nil {
				u.proxyTarget = tg
			}
		}
		u.headerExtra += len("Route: <>") + 2*len(r.String())
	}
	u.headerExtra += len("User-Agent: ") + len(u.uaString)

	if cfg.certFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
		if err != nil {
			return nil, optErr("tls: %v", err)
		}
		u.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	clientTLS := cfg.clientTLS
	if clientTLS == nil {
		clientTLS = &tls.Config{}
	}
	if clientTLS.MinVersion == 0 {
		clientTLS.MinVersion = tls.VersionTLS12
	}

	// The parser bounds every message: the body limit plus room for the
	// start line and headers. sipgo answers nothing to a larger message on a
	// stream (it closes the connection); over UDP the guard answers 513.
	u.limit = cfg.maxBody + headerAllowance
	u.parser = sip.NewParser(sip.WithHeadersParsers(lenientHeaders()))
	u.parser.MaxMessageLength = u.limit

	sl := slog.New(redactHandler{h: cfg.log.Handler()}).With("component", "sipgo")
	hostname := cfg.domain
	if hostname == "" {
		hostname = "localhost"
	}
	sua, err := sipgo.NewUA(
		sipgo.WithUserAgent(u.uaString),
		sipgo.WithUserAgentHostname(hostname),
		sipgo.WithUserAgentDNSResolver(cfg.resolver),
		sipgo.WithUserAgenTLSConfig(clientTLS),
		sipgo.WithUserAgentParser(u.parser),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(sl),
		),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sl),
			sip.WithTransactionLayerTerminateOnConnClose(),
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				// Retransmitted or forked final responses after the first
				// one (IM-15): the transaction is gone, ignore them.
				u.log.Debug("sip response without transaction", "code", r.StatusCode, "source", r.Source())
			}),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("sipside: sipgo user agent: %w", err)
	}
	u.sua = sua
	u.srv, err = sipgo.NewServer(sua, sipgo.WithServerLogger(sl))
	if err != nil {
		sua.Close()
		return nil, fmt.Errorf("sipside: sipgo server: %w", err)
	}
	u.cli, err = sipgo.NewClient(sua, sipgo.WithClientLogger(sl))
	if err != nil {
		sua.Close()
		return nil, fmt.Errorf("sipside: sipgo client: %w", err)
	}
	if cfg.handler != nil {
		u.srv.OnMessage(u.admitted(u.handleMessage))
	}
	if cfg.subscribe != nil {
		u.srv.OnSubscribe(u.admitted(u.handleSubscribe))
	}
	if cfg.notify != nil {
		u.srv.OnNotify(u.admitted(u.handleNotify))
	}
	if cfg.invite != nil {
		u.srv.OnInvite(u.admitted(u.handleInvite))
	}
	// BYE and ACK of calls made with Invite are served even without an
	// InviteHandler; for no known call they get what handleOther gives.
	u.srv.OnAck(u.handleAck)
	u.srv.OnBye(u.admitted(u.handleBye))
	if cfg.handler != nil || cfg.subscribe != nil || cfg.notify != nil {
		// Runs on the read loop, in arrival order, after the transaction
		// layer has spawned the request's goroutine (see sequencer).
		sua.TransportLayer().OnMessage(u.onTransportMessage)
	}
	u.srv.OnOptions(u.admitted(u.handleOptions))
	u.srv.OnNoRoute(u.handleOther)
	return u, nil
}

// Start binds every listener and starts serving. It returns once all are
// bound, or with the first error (then nothing stays bound).
func (u *UA) Start(ctx context.Context) error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return ErrClosed
	}
	if u.starting {
		u.mu.Unlock()
		return ErrStarted
	}
	u.starting = true
	u.mu.Unlock()

	type bound struct {
		spec   listenSpec
		pc     net.PacketConn
		ln     net.Listener
		closer io.Closer
		addr   netip.AddrPort
	}
	var all []bound
	fail := func(err error) error {
		for _, b := range all {
			b.closer.Close()
		}
		return err
	}
	var lc net.ListenConfig
	for _, spec := range u.cfg.listen {
		addr := spec.addr.String()
		b := bound{spec: spec}
		switch spec.transport {
		case "udp":
			pc, err := lc.ListenPacket(ctx, "udp", addr)
			if err != nil {
				return fail(fmt.Errorf("%w: listen udp %s: %w", ErrTransport, addr, err))
			}
			if uc, ok := pc.(*net.UDPConn); ok {
				// One socket carries every request and response; a burst
				// of responses to our requests (one per destination in
				// flight) overflows the default buffer (about 200 KB, some
				// 150 datagrams), and each datagram lost costs a 500 ms
				// retransmission (Timer A/E). The kernel caps the size at
				// net.core.rmem_max / wmem_max.
				_ = uc.SetReadBuffer(udpSocketBuffer)
				_ = uc.SetWriteBuffer(udpSocketBuffer)
			}
			b.pc, b.closer = pc, pc
			b.addr = addrPortOf(pc.LocalAddr())
		case "tcp", "tls":
			ln, err := lc.Listen(ctx, "tcp", addr)
			if err != nil {
				return fail(fmt.Errorf("%w: listen %s %s: %w", ErrTransport, spec.transport, addr, err))
			}
			b.addr = addrPortOf(ln.Addr())
			if spec.transport == "tls" {
				ln = tls.NewListener(ln, u.tlsConf)
			}
			b.ln, b.closer = ln, ln
		}
		all = append(all, b)
	}

	st := &startedState{sentBy: make(map[string]hostPort)}
	var listeners []Listener
	for _, b := range all {
		tp := strings.ToUpper(b.spec.transport)
		if _, ok := st.sentBy[tp]; !ok {
			host := b.addr.Addr().String()
			if b.addr.Addr().IsUnspecified() {
				host = u.cfg.domain // "" lets sipgo fill in the connection's address
			}
			st.sentBy[tp] = hostPort{host: host, port: int(b.addr.Port())}
			if tp == "UDP" {
				st.udpLaddr = sip.Addr{IP: net.IP(b.addr.Addr().AsSlice()), Port: int(b.addr.Port())}
				if host != "" {
					st.fastVia = net.JoinHostPort(host, strconv.Itoa(int(b.addr.Port())))
				}
			}
		}
		listeners = append(listeners, Listener{Transport: b.spec.transport, Addr: b.addr})
	}

	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return fail(ErrClosed)
	}
	var guards []*udpGuard
	for _, b := range all {
		u.closers = append(u.closers, b.closer)
		var g *udpGuard
		if b.pc != nil {
			g = newUDPGuard(b.pc, u)
			if uc, ok := b.pc.(*net.UDPConn); ok && !u.cfg.noFastPath {
				g.fast = newFastPath(u, uc)
				u.fasts = append(u.fasts, g.fast)
				if st.fast == nil && st.udpLaddr.Port == int(b.addr.Port()) {
					st.fast = g.fast
				}
			}
			guards = append(guards, g)
		}
		u.wg.Go(func() {
			var err error
			switch {
			case g != nil:
				err = u.srv.ServeUDP(g)
			case b.spec.transport == "tls":
				err = u.srv.ServeTLS(b.ln)
			default:
				err = u.srv.ServeTCP(b.ln)
			}
			if err != nil && !errors.Is(err, net.ErrClosed) && u.ctx.Err() == nil {
				u.log.Error("sip listener stopped", "transport", b.spec.transport, "addr", b.addr, "error", err)
			}
		})
		u.log.Info("sip listening", "transport", b.spec.transport, "addr", b.addr, "domain", u.cfg.domain)
	}
	u.listeners = listeners
	u.mu.Unlock()

	// sipgo pools a UDP socket when its read loop starts; requests sent from
	// it (udpLaddr) need it pooled, so wait for each loop's first read.
	for _, g := range guards {
		select {
		case <-g.ready:
		case <-ctx.Done():
			u.Close()
			return fmt.Errorf("sipside: start: %w", ctx.Err())
		}
	}
	u.mu.Lock()
	u.state = st
	u.mu.Unlock()
	return nil
}

// Stats are counts of page-mode MESSAGE transactions since New.
type Stats struct {
	FastIn, FastOut   uint64 // incoming and outgoing, on the fast path (WithFastPath)
	FastInline        uint64 // of FastIn, handled on the read loop (WithInlineHandler)
	UsualIn, UsualOut uint64 // incoming and outgoing, through sipgo
	Shed              uint64 // incoming, answered 503 for overload (WithMaxIncoming)
}

// Stats returns the UA's counts.
func (u *UA) Stats() Stats {
	return Stats{
		FastIn: u.fastIn.Load(), FastOut: u.fastOut.Load(), FastInline: u.fastInline.Load(),
		UsualIn: u.usualIn.Load(), UsualOut: u.usualOut.Load(),
		Shed: u.shedCount.Load(),
	}
}

// Listeners returns the bound listeners (with the actual ports when port 0
// was asked for). It is empty before Start.
func (u *UA) Listeners() []Listener {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Listener(nil), u.listeners...)
}

// Close stops the listeners, terminates every transaction, closes every
// connection and waits for the goroutines of the UA: serve loops, running
// handler calls (their context is cancelled) and SendMessage calls (they
// return ErrClosed). Every Call ends (Done closes, EndReason "closed")
// without a BYE: the peer learns of it from its next request or its
// session timer. It is safe to call more than once.
func (u *UA) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	closers := u.closers
	u.closers = nil
	fasts := u.fasts
	u.mu.Unlock()
	for _, f := range fasts {
		f.close()
	}

	u.cancel()
	u.calls.closeAll()
	u.seq.close()
	var errs []error
	for _, c := range closers {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := u.sua.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	u.wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("sipside: close: %w", errors.Join(errs...))
	}
	return nil
}

// enter registers a handler call or a send with the UA's wait group, unless
// the UA is closed.
func (u *UA) enter() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	u.wg.Add(1)
	return true
}

func (u *UA) leave() { u.wg.Done() }

// trusted reports whether a request from addr may be served (WithTrusted).
func (u *UA) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range u.cfg.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// lenientHeaders returns sipgo's header parsers, changed so that a bad value
// of a header we validate ourselves does not make the whole message fail to
// parse (which sipgo answers with silence): the header is kept as a generic
// header under its canonical name and checkRequest answers 400.
func lenientHeaders() map[string]sip.HeaderParser {
	base := sip.DefaultHeadersParser()
	m := make(map[string]sip.HeaderParser, len(base))
	for k, v := range base {
		m[k] = v
	}
	wrap := func(canonical string, p sip.HeaderParser) sip.HeaderParser {
		return func(name []byte, text string) (sip.Header, error) {
			h, err := p(name, text)
			if err != nil {
				return sip.NewHeader(canonical, text), nil
			}
			return h, nil
		}
	}
	for _, n := range [][2]string{
		{"from", "From"}, {"f", "From"},
		{"to", "To"}, {"t", "To"},
		{"call-id", "Call-ID"}, {"i", "Call-ID"},
		{"cseq", "CSeq"},
		{"max-forwards", "Max-Forwards"},
		{"content-length", "Content-Length"}, {"l", "Content-Length"},
		{"content-type", "Content-Type"}, {"c", "Content-Type"},
	} {
		if p, ok := base[n[0]]; ok {
			m[n[0]] = wrap(n[1], p)
		}
	}
	return m
}
