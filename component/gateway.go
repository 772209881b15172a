package component

import (
	"context"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/sipside"
)

// SIPSender is what the gateway needs of the SIP side (sipside.UA implements it).
type SIPSender interface {
	SendMessage(ctx context.Context, m *sipside.OutgoingMessage) (sipside.Result, error)
}

// sipStarter is what a SIPSender may offer besides (sipside.UA does): start
// a MESSAGE and hear of its outcome later, without a goroutine waiting for
// it (sipside.UA.StartMessage). Sessions use it when it takes the message.
type sipStarter interface {
	StartMessage(ctx context.Context, m *sipside.OutgoingMessage, done func(sipside.Result, error)) bool
}

// sipQueuer is what a sipStarter may offer besides (sipside.UA does):
// start a MESSAGE whose request may wait for FlushMessages, so that the
// messages a session starts together leave several to a system call.
type sipQueuer interface {
	QueueMessage(ctx context.Context, m *sipside.OutgoingMessage, done func(sipside.Result, error)) bool
	FlushMessages()
}

// Config holds what the gateway needs; zero durations and limits take the
// defaults documented on each field.
type Config struct {
	Component string // component JID domain (xmpp.component)
	Server    string // host:port of the XMPP server's component listener (xmpp.server)
	Secret    string // shared secret (xmpp.secret)

	Addressing *mapping.Addressing

	PingTarget    string        // JID pinged by the watchdog; default: first served domain
	PingInterval  time.Duration // default 30 s
	PingTimeout   time.Duration // default 10 s
	DialTimeout   time.Duration // default 10 s; also bounds one stanza write
	BackoffMin    time.Duration // default 500 ms
	BackoffMax    time.Duration // default 30 s
	MaxStanzaSize int           // largest stanza sent to XMPP (IM-17, >= 10000); default 65536
	// MaxSegment caps the TCP segments of the component stream, both
	// ways (TCP_MAXSEG; Linux and the BSDs): default 8192 (0), -1 leaves
	// the system's size, otherwise 536..32767. Over loopback the system's
	// size is about 64 KiB, and a server that reads in small pieces
	// (Prosody: 8 KiB) with a receive window of one or two such segments
	// left the stream stalled for 150 ms at a time in `make bench`, the
	// server idle while stox had stanzas for it.
	MaxSegment int

	OutboxLimit     int           // stanzas queued while the XMPP server is away; default 10000
	OutboxMaxOutage time.Duration // accept into the queue for this long; default 5 min

	SessionQueue int           // X->S messages waiting per XMPP user; default 1000
	SendTimeout  time.Duration // per SIP MESSAGE; default 32 s (Timer F)
	SessionIdle  time.Duration // idle session lifetime; default 2 min

	Version string // reported by jabber:iq:version; default "dev"

	// Presence configures presence (RFC 8048); it is on when the SIP side
	// can send in dialogs (DialogSender) and Presence.Disabled is false.
	Presence PresenceConfig
	// Chat configures MSRP chat sessions (RFC 7573); they are on when the
	// SIP side can make calls (CallSender) and Chat.Listener is set.
	Chat ChatConfig

	// PresenceDisabled turns presence off: presence stanzas are ignored
	// (subscribe and probe answered service-unavailable) and SUBSCRIBE
	// is answered 489.
	PresenceDisabled bool
}

func (c *Config) setDefaults() error {
	if c.Component == "" {
		return fmt.Errorf("%w: component domain is empty", ErrConfig)
	}
	if c.Server == "" {
		return fmt.Errorf("%w: server address is empty", ErrConfig)
	}
	if c.Addressing == nil {
		return fmt.Errorf("%w: addressing is nil", ErrConfig)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.PingInterval, 30*time.Second)
	def(&c.PingTimeout, 10*time.Second)
	def(&c.DialTimeout, 10*time.Second)
	def(&c.BackoffMin, 500*time.Millisecond)
	def(&c.BackoffMax, 30*time.Second)
	def(&c.OutboxMaxOutage, 5*time.Minute)
	def(&c.SendTimeout, 32*time.Second)
	def(&c.SessionIdle, 2*time.Minute)
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.MaxStanzaSize <= 0 {
		c.MaxStanzaSize = 65536
	}
	if c.MaxStanzaSize < 10000 {
		return fmt.Errorf("%w: max stanza size %d is below 10000 (RFC 6120 s13.12)", ErrConfig, c.MaxStanzaSize)
	}
	switch {
	case c.MaxSegment == 0:
		c.MaxSegment = DefaultMaxSegment
	case c.MaxSegment < 0:
		c.MaxSegment = -1
	case c.MaxSegment < 536 || c.MaxSegment > 32767:
		return fmt.Errorf("%w: max segment %d is outside 536..32767", ErrConfig, c.MaxSegment)
	}
	if c.OutboxLimit <= 0 {
		c.OutboxLimit = 10000
	}
	if c.SessionQueue <= 0 {
		c.SessionQueue = 1000
	}
	return nil
}

// DefaultMaxSegment is Config.MaxSegment's default: the size of Prosody's
// reads, five Ethernet segments.
const DefaultMaxSegment = 8192

// Option configures a Gateway.
type Option func(*Gateway)

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(g *Gateway) { g.log = l } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(g *Gateway) { g.now = now } }

// WithIDs replaces the stanza id generator (tests).
func WithIDs(next func() string) Option { return func(g *Gateway) { g.newID = next } }

// Gateway is the XMPP component and the place where XMPP and SIP meet. It owns
// the component stream (with its own supervision: reconnect with capped
// backoff and an XEP-0199 watchdog), the outbox, the IQ handlers and the
// per-user Sessions.
type Gateway struct {
	cfg   Config
	addr  *mapping.Addressing
	sip   SIPSender
	start sipStarter // sip, when it is one; else nil
	queue sipQueuer  // sip, when it is one; else nil
	log   *slog.Logger
	now   func() time.Time
	newID func() string

	out      *outbox
	iqs      []iqHandler
	sessions *registry
	senders  *senderPool
	presence *presenceEngine // nil when presence is off
	chats    *chatEngine     // nil when chat sessions are off

	pingMu  sync.Mutex
	pings   map[string]chan *Element
	pingSeq atomic.Uint64

	connected atomic.Bool
	connects  atomic.Uint64
	count     counters

	ctx    context.Context // ends when the gateway closes
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Gateway. sip may be nil only in tests that send nothing to SIP.
func New(cfg Config, sip SIPSender, opts ...Option) (*Gateway, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:   cfg,
		addr:  cfg.Addressing,
		sip:   sip,
		log:   slog.Default(),
		now:   time.Now,
		newID: randomID,
		pings: make(map[string]chan *Element),
	}
	for _, o := range opts {
		o(g)
	}
	if g.cfg.PingTarget == "" {
		g.cfg.PingTarget = g.defaultPingTarget()
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.out = newOutbox(cfg.OutboxLimit, cfg.OutboxMaxOutage, g.now)
	g.sessions = newRegistry(g)
	g.senders = newSenderPool(senderIdle, g.ctx.Done(), &g.wg)
	g.iqs = g.builtinIQHandlers()
	g.start, _ = sip.(sipStarter)
	g.queue, _ = sip.(sipQueuer)
	if cs, ok := sip.(CallSender); ok && cfg.Chat.Listener != nil {
		g.chats = newChats(g, cs, cfg.Chat)
	}
	if ds, ok := sip.(DialogSender); ok && !cfg.PresenceDisabled {
		g.presence = newPresence(g, ds, cfg.Presence)
		if err := g.presence.start(); err != nil {
			g.cancel()
			return nil, fmt.Errorf("component: presence: %w", err)
		}
	}
	return g, nil
}

func (g *Gateway) defaultPingTarget() string {
	if i := strings.IndexByte(g.cfg.Component, '.'); i > 0 {
		return g.cfg.Component[i+1:]
	}
	return g.cfg.Component
}

// Connected reports whether the component stream is up.
func (g *Gateway) Connected() bool { return g.connected.Load() }

// Run keeps the component connected until ctx ends. It returns nil on a clean
// stop and an error wrapping ErrHandshakeRejected when the server refuses the
// secret (retrying cannot fix that).
func (g *Gateway) Run(ctx context.Context) error {
	backoff := g.cfg.BackoffMin
	for {
		s, err := dialStream(ctx, g.cfg.Server, g.cfg.Component, g.cfg.Secret, g.cfg.DialTimeout, g.cfg.MaxSegment)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrNotAuthorized) {
				g.log.Error("XMPP server refused the component secret", "server", g.cfg.Server, "component", g.cfg.Component, "err", err)
				return err
			}
			g.log.Warn("cannot connect to the XMPP server", "server", g.cfg.Server, "err", err, "retry_in", backoff)
			if !sleepCtx(ctx, jitter(backoff, 25)) {
				return nil
			}
			backoff = min(backoff*2, g.cfg.BackoffMax)
			continue
		}
		n := g.connects.Add(1)
		flushed, ferr := g.out.attachStream(s)
		if ferr != nil {
			g.log.Warn("XMPP stream broke while flushing the queue", "err", ferr)
			s.kill()
			continue
		}
		g.connected.Store(true)
		g.log.Info("component connected", "component", g.cfg.Component, "server", g.cfg.Server, "connection", n, "flushed", flushed)
		if s.segmentErr != nil {
			g.log.Warn("cannot cap the component stream's TCP segments; the system's size stays", "max_segment", g.cfg.MaxSegment, "err", s.segmentErr)
		}
		backoff = g.cfg.BackoffMin
		err = g.serve(ctx, s)
		g.connected.Store(false)
		g.out.detach()
		if ctx.Err() != nil {
			s.kill()
			g.out.wait()
			g.log.Info("component disconnected", "reason", "shutdown")
			return nil
		}
		s.kill()
		if werr := s.writeFailure(); werr != nil {
			err = fmt.Errorf("a write failed: %w (then: %w)", werr, err)
		}
		g.log.Warn("component stream lost; reconnecting", "err", err, "retry_in", backoff)
		if !sleepCtx(ctx, jitter(backoff, 25)) {
			return nil
		}
		backoff = min(backoff*2, g.cfg.BackoffMax)
	}
}

// serve reads and dispatches stanzas until the stream fails, the watchdog
// fires or ctx ends.
func (g *Gateway) serve(ctx context.Context, s *stream) error {
	connCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.watchdog(connCtx, cancel, s)
	}()
	readErr := make(chan error, 1)
	stop := context.AfterFunc(connCtx, func() { s.close(2 * time.Second) })
	go func() {
		for {
			e, err := s.read()
			if err != nil {
				readErr <- err
				return
			}
			g.dispatch(e)
		}
	}()
	var err error
	select {
	case err = <-readErr:
		cancel(err)
	case <-connCtx.Done():
		err = context.Cause(connCtx)
		if ctx.Err() == nil {
			s.kill() // the watchdog fired: unblock the reader now
		}
		// On shutdown the AfterFunc above closed the stream politely; the
		// reader ends at the server's </stream:stream> or the grace deadline.
		<-readErr
	}
	stop()
	wg.Wait()
	return err
}

// watchdog pings the server (XEP-0199) and cancels the connection when a ping
// goes unanswered: gosrc.io/xmpp-era servers may close the stream without the
// reader noticing, and a half-open TCP connection never errors by itself.
func (g *Gateway) watchdog(ctx context.Context, cancel context.CancelCauseFunc, s *stream) {
	t := time.NewTicker(g.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id := fmt.Sprintf("stox-ping-%d", g.pingSeq.Add(1))
		ch := make(chan *Element, 1)
		g.pingMu.Lock()
		g.pings[id] = ch
		g.pingMu.Unlock()
		iq := NewElement(nsComponent, "iq").SetAttr("type", "get").SetAttr("id", id).
			SetAttr("from", g.cfg.Component).SetAttr("to", g.cfg.PingTarget)
		iq.Add(NewElement(nsPing, "ping"))
		err := s.write(iq.Bytes())
		if err == nil {
			timer := time.NewTimer(g.cfg.PingTimeout)
			select {
			case <-ch:
			case <-timer.C:
				err = fmt.Errorf("component: ping %s unanswered after %s", g.cfg.PingTarget, g.cfg.PingTimeout)
			case <-ctx.Done():
			}
			timer.Stop()
		}
		g.pingMu.Lock()
		delete(g.pings, id)
		g.pingMu.Unlock()
		if err != nil {
			g.log.Warn("XMPP server watchdog failed", "err", err)
			cancel(err)
			return
		}
	}
}

// dispatch handles one stanza from the server. It runs on the read goroutine
// and never blocks on a round trip.
func (g *Gateway) dispatch(e *Element) {
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("stanza handler panicked", "panic", r, "stanza", e.Local)
			if isRequest(e) {
				g.replyError(e, mapping.StanzaError{Type: "cancel", Condition: "internal-server-error"})
			}
		}
	}()
	if e.Space != nsComponent && e.Space != nsClient {
		g.log.Warn("ignoring element outside the stanza namespaces", "ns", e.Space, "name", e.Local)
		return
	}
	switch e.Local {
	case "iq":
		g.handleIQ(e)
	case "message":
		g.handleMessage(e)
	case "presence":
		g.handlePresence(e)
	default:
		g.log.Warn("ignoring unknown top-level element", "name", e.Local)
	}
}

// send writes a stanza to XMPP through the outbox.
func (g *Gateway) send(e *Element) (queued bool, err error) {
	b := e.Bytes()
	return g.out.send(b)
}

// senderIdle is how long a sender worker waits for the next send.
const senderIdle = 2 * time.Second

// Close stops the sessions: queued and in-flight XMPP->SIP messages are
// answered (delivered, or an error stanza). It does not close the stream; the
// stream ends when Run's context ends.
func (g *Gateway) Close(grace time.Duration) {
	if g.chats != nil {
		g.chats.close(grace)
	}
	if g.presence != nil {
		g.presence.close()
	}
	g.sessions.closeAll(grace)
	g.cancel()
	g.wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d by ±pct percent: d * [1-pct/100, 1+pct/100]. Reconnects
// of many instances use 25, presence retries 10.
func jitter(d time.Duration, pct int64) time.Duration {
	if d <= 0 {
		return 0
	}
	span := d * time.Duration(pct) / 100
	return d - span + time.Duration(rand.Int64N(int64(2*span)+1))
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomID returns 80 random bits as 16 lower-case base32 characters. Stanza
// ids must be unique, not secret: they come from math/rand/v2's runtime
// generator (ChaCha8, seeded from the operating system), which costs no
// system call. crypto/rand made a getrandom call for every id on kernels
// without its vDSO.
func randomID() string {
	var b [10]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint16(b[8:], uint16(rand.Uint32()))
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}
