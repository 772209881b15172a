package sipside

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// LargePolicy says what SendMessage does with a request that would go over
// UDP and is larger than 1300 bytes (RFC 3261 §18.1.1; CHECKLIST D1, IM-11,
// IM-12).
type LargePolicy string

const (
	// LargeTCP sends the request over TCP to the same next hop, even when
	// the next hop's URI says transport=udp (RFC 3261 §18.1.1). The default.
	LargeTCP LargePolicy = "tcp"
	// LargeChunk splits a text/* body into several MESSAGEs whose whole
	// requests are each at most 1300 bytes (IM-12, a local MAY).
	LargeChunk LargePolicy = "chunk"
	// LargeReject refuses with ErrTooLarge and sends nothing (IM-11).
	LargeReject LargePolicy = "reject"
)

// Defaults.
const (
	// DefaultMaxMessageBody is the default limit of an incoming MESSAGE body.
	DefaultMaxMessageBody = 64 << 10
	// DefaultTransactionTimeout is Timer F, 64*T1 with T1 = 500 ms
	// (RFC 3261 §17.1.2.2).
	DefaultTransactionTimeout = 32 * time.Second
	// DefaultMaxInFlight bounds concurrent outgoing client transactions.
	DefaultMaxInFlight = 1024
	// DefaultMaxIncoming bounds the incoming MESSAGEs being handled at once.
	DefaultMaxIncoming = 512
	// OverloadRetryAfter is the Retry-After (seconds) of the 503 that
	// answers a MESSAGE beyond WithMaxIncoming.
	OverloadRetryAfter = 2

	// udpSizeLimit is the RFC 3261 §18.1.1 threshold for a path of unknown
	// MTU, measured on the whole request (start line, headers, body; D1).
	udpSizeLimit = 1300

	// headerAllowance is what the parser accepts on top of the body limit
	// for the start line and the headers.
	headerAllowance = 16 << 10

	// udpSocketBuffer is the receive and send buffer asked for each UDP
	// listener (the kernel caps it at net.core.rmem_max and wmem_max).
	udpSocketBuffer = 4 << 20

	// defaultOrderWait bounds how long a request may hold up later requests
	// of the same conversation while its handler goroutine has not arrived.
	defaultOrderWait = 100 * time.Millisecond
)

// Option configures a UA. Options are checked when they are applied and again
// together in New.
type Option func(*config) error

type listenSpec struct {
	transport string // "udp", "tcp", "tls"
	addr      netip.AddrPort
}

type config struct {
	listen      []listenSpec
	certFile    string
	keyFile     string
	clientTLS   *tls.Config
	domain      string
	proxy       *sip.Uri
	trusted     []netip.Prefix
	large       LargePolicy
	maxBody     int
	log         *slog.Logger
	handler     MessageHandler
	subscribe   SubscribeHandler
	notify      NotifyHandler
	invite      InviteHandler
	maxCalls    int
	minExpires  int
	maxExpires  int
	txTimeout   time.Duration
	maxInFlight int
	maxIncoming int
	resolver    *net.Resolver
	accept      []string
	noFastPath  bool
	inlineReady func() bool

	// Internal knobs, set by tests of this package.
	orderWait time.Duration
	callT1    time.Duration // RFC 3261 T1 and T2 of INVITE sessions (invite.go)
	callT2    time.Duration
	lookupSRV func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

func defaultConfig() *config {
	return &config{
		large:       LargeTCP,
		maxBody:     DefaultMaxMessageBody,
		minExpires:  DefaultMinExpires,
		maxExpires:  DefaultMaxExpires,
		txTimeout:   DefaultTransactionTimeout,
		maxInFlight: DefaultMaxInFlight,
		maxIncoming: DefaultMaxIncoming,
		accept:      []string{"text/plain", "message/cpim", "text/html"},
		orderWait:   defaultOrderWait,
		maxCalls:    DefaultMaxCalls,
		callT1:      defaultCallT1,
		callT2:      defaultCallT2,
	}
}

func optErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrOption}, args...)...)
}

// WithListen adds listeners, each "transport:ip:port" with transport udp,
// tcp or tls, for example "udp:127.0.0.1:5060" or "tls:[::1]:5061". The
// address must be an IP literal; port 0 binds a free port (see
// UA.Listeners).
func WithListen(specs ...string) Option {
	return func(c *config) error {
		for _, s := range specs {
			tp, addr, ok := strings.Cut(s, ":")
			if !ok {
				return optErr("listen %q: want transport:ip:port", s)
			}
			tp = strings.ToLower(tp)
			switch tp {
			case "udp", "tcp", "tls":
			default:
				return optErr("listen %q: transport must be udp, tcp or tls", s)
			}
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return optErr("listen %q: %v", s, err)
			}
			c.listen = append(c.listen, listenSpec{transport: tp, addr: ap})
		}
		return nil
	}
}

// WithTLS names the certificate and key served by tls: listeners. It is
// required when a tls: listener exists.
func WithTLS(certFile, keyFile string) Option {
	return func(c *config) error {
		if certFile == "" || keyFile == "" {
			return optErr("tls: certificate and key files are required")
		}
		c.certFile, c.keyFile = certFile, keyFile
		return nil
	}
}

// WithTLSClientConfig sets the TLS configuration of outbound connections
// (typically RootCAs). Certificate verification is always on: a config with
// InsecureSkipVerify is refused. Without this option the system roots are
// used.
func WithTLSClientConfig(cfg *tls.Config) Option {
	return func(c *config) error {
		if cfg == nil {
			return optErr("tls client config is nil")
		}
		if cfg.InsecureSkipVerify {
			return optErr("tls client config: InsecureSkipVerify is not allowed")
		}
		c.clientTLS = cfg.Clone()
		return nil
	}
}

// WithDomain sets our SIP host name. It appears in User-Agent and Server
// headers, in logs, and as the Via host of a listener bound to an
// unspecified address.
func WithDomain(d string) Option {
	return func(c *config) error {
		if d == "" || !isHostChars(d) {
			return optErr("domain %q", d)
		}
		c.domain = d
		return nil
	}
}

// WithOutboundProxy sends every request to this SIP URI, for example
// "sip:127.0.0.1:5070;transport=udp", as a loose-routing next hop: it is the
// destination and the request carries Route: <uri;lr> (RFC 3261 §8.1.2).
func WithOutboundProxy(uri string) Option {
	return func(c *config) error {
		if hasCtl(uri) {
			return optErr("outbound proxy %q: control character", uri)
		}
		var u sip.Uri
		if err := sip.ParseUri(uri, &u); err != nil {
			return optErr("outbound proxy %q: %v", uri, err)
		}
		if u.Scheme != "sip" && u.Scheme != "sips" {
			return optErr("outbound proxy %q: scheme must be sip or sips", uri)
		}
		if u.Host == "" || !isHostChars(strings.Trim(u.Host, "[]")) {
			return optErr("outbound proxy %q: bad host", uri)
		}
		if _, err := transportOf(&u); err != nil {
			return optErr("outbound proxy %q: %v", uri, err)
		}
		c.proxy = &u
		return nil
	}
}

// WithTrusted sets the source prefixes allowed to send us requests. Requests
// from anywhere else are answered 403. Without this option nobody is
// trusted.
func WithTrusted(prefixes ...netip.Prefix) Option {
	return func(c *config) error {
		for _, p := range prefixes {
			if !p.IsValid() {
				return optErr("trusted prefix %v", p)
			}
			c.trusted = append(c.trusted, p.Masked())
		}
		return nil
	}
}

// WithLargeMessages chooses what happens to a request over UDP larger than
// 1300 bytes: LargeTCP (default), LargeChunk or LargeReject.
func WithLargeMessages(p LargePolicy) Option {
	return func(c *config) error {
		switch p {
		case LargeTCP, LargeChunk, LargeReject:
			c.large = p
			return nil
		}
		return optErr("large message policy %q", p)
	}
}

// WithMaxMessageBody sets the incoming MESSAGE body limit in bytes (default
// 64 KiB). A larger body reaches the handler with TooLarge set and no body;
// the parser refuses messages larger than the limit plus 16 KiB outright.
func WithMaxMessageBody(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return optErr("max message body %d", n)
		}
		c.maxBody = n
		return nil
	}
}

// WithLogger sets the logger. Message bodies are logged only at Debug.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return optErr("logger is nil")
		}
		c.log = l
		return nil
	}
}

// WithMessageHandler sets the handler of incoming MESSAGE requests. Without
// one, MESSAGE is answered 405 like any method we do not serve.
func WithMessageHandler(h MessageHandler) Option {
	return func(c *config) error {
		if h == nil {
			return optErr("message handler is nil")
		}
		c.handler = h
		return nil
	}
}

// WithTransactionTimeout sets how long SendMessage waits for a final response
// of one non-INVITE transaction (default 32 s, Timer F). It is applied as a
// context deadline on each client transaction; sipgo's global timers are not
// touched.
func WithTransactionTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return optErr("transaction timeout %v", d)
		}
		c.txTimeout = d
		return nil
	}
}

// WithMaxInFlight bounds the outgoing client transactions in flight (default
// 1024). SendMessage waits for a free slot until its context ends.
func WithMaxInFlight(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return optErr("max in flight %d", n)
		}
		c.maxInFlight = n
		return nil
	}
}

// WithMaxIncoming bounds the incoming MESSAGEs being handled at once
// (default 512): those waiting for their turn in their conversation or
// in the MessageHandler. Beyond it a MESSAGE is answered at once with 503
// and Retry-After (OverloadRetryAfter), before the handler: under
// overload the sender learns to back off within one round trip, instead
// of waiting while work piles up until its retransmissions (RFC 3261
// Timer E) add load and its transaction times out (Timer F) on messages
// that may still be delivered later.
func WithMaxIncoming(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return optErr("max incoming %d", n)
		}
		c.maxIncoming = n
		return nil
	}
}

// WithFastPath turns the page-mode fast path on (the default) or off. The
// fast path serves MESSAGEs over UDP, both ways, with its own reader,
// writer and transactions instead of sipgo's (fastpath.go); what it does
// not accept, and every other request, takes the usual path. Turning it off
// is for measuring and for ruling it out when looking for a fault.
func WithFastPath(on bool) Option {
	return func(c *config) error {
		c.noFastPath = !on
		return nil
	}
}

// WithInlineHandler lets the fast path call the MessageHandler on the UDP
// read loop itself, instead of handing the MESSAGE to a worker goroutine,
// when ready reports true at that moment and no earlier MESSAGE of the
// same conversation is still being handled. It saves a goroutine hand-off
// (and, at moderate rates, waking a thread) per MESSAGE, but nothing is
// read from the socket while the handler runs: ready must report true only
// when the handler will not block (for stox: when a stanza would be
// written to the XMPP server at once), and the handler must not block when
// OnReadLoop(ctx) is true. ready must be cheap and must not block.
func WithInlineHandler(ready func() bool) Option {
	return func(c *config) error {
		if ready == nil {
			return optErr("inline readiness check is nil")
		}
		c.inlineReady = ready
		return nil
	}
}

// WithResolver sets the DNS resolver used for RFC 3263 SRV and A/AAAA
// lookups (default net.DefaultResolver).
func WithResolver(r *net.Resolver) Option {
	return func(c *config) error {
		if r == nil {
			return optErr("resolver is nil")
		}
		c.resolver = r
		return nil
	}
}

// WithAccept sets the media types listed in the Accept header of our OPTIONS
// answer (default text/plain, message/cpim, text/html).
func WithAccept(types ...string) Option {
	return func(c *config) error {
		for _, t := range types {
			if !isMediaType(t) {
				return optErr("accept type %q", t)
			}
		}
		c.accept = append([]string(nil), types...)
		return nil
	}
}

// check validates the options together.
func (c *config) check() error {
	hasTLS := false
	for _, l := range c.listen {
		if l.transport == "tls" {
			hasTLS = true
		}
	}
	if hasTLS && c.certFile == "" {
		return optErr("a tls listener needs WithTLS")
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	if c.lookupSRV == nil {
		c.lookupSRV = c.resolver.LookupSRV
	}
	return nil
}

// isHostChars reports whether s looks like a host name or IP literal: no
// control characters, spaces or delimiters that would break a header.
func isHostChars(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case b == '-', b == '.', b == ':', b == '_':
		default:
			return false
		}
	}
	return true
}
