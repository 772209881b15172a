package msrp

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// Limits bound what a Parser and a Session accept from a peer.
type Limits struct {
	// MaxHeaderBytes bounds the start line and headers of one frame.
	MaxHeaderBytes int
	// MaxBodyBytes bounds the body of one frame (one chunk).
	MaxBodyBytes int
	// MaxFrameBytes bounds a whole frame, end-line included. It is also
	// the most a Parser buffers.
	MaxFrameBytes int
	// MaxMessageBytes bounds a reassembled message (CHAT-27): a chunk that
	// goes past it, or announces a larger total, gets 413 (TV-29b).
	MaxMessageBytes int64
	// MaxAssemblies bounds the messages a session reassembles at once; a
	// new message beyond it gets 413.
	MaxAssemblies int
}

// Defaults. A whole frame (headers, body, end-line) must stay within the
// 14336 bytes Kamailio 5.6's msrp relay forwards (measured by the testbed's
// relay tests; LIBRARIES.md's "about 64 KB" is wrong for this build), so
// chunk bodies default to 8 KiB.
const (
	DefaultMaxHeaderBytes     = 16 << 10
	DefaultMaxBodyBytes       = 256 << 10
	DefaultMaxFrameBytes      = DefaultMaxHeaderBytes + DefaultMaxBodyBytes + 128
	DefaultMaxMessageBytes    = 1 << 20
	DefaultMaxAssemblies      = 8
	DefaultChunkSize          = 8 << 10
	MinChunkSize              = 2048 // CHAT-26: no chunks under 2048 octets but the last
	DefaultTransactionTimeout = 30 * time.Second
	DefaultFrameTimeout       = 30 * time.Second
	DefaultBindTimeout        = 30 * time.Second
	DefaultWriteTimeout       = 30 * time.Second
	DefaultQueueSize          = 256
	DefaultMaxPendingConns    = 256
	// maxControlFrames bounds the responses and reports a session owes its
	// peer; a peer that makes it owe more without reading is cut off.
	maxControlFrames = 4096
)

// DefaultLimits returns the default Limits.
func DefaultLimits() Limits {
	return Limits{
		MaxHeaderBytes:  DefaultMaxHeaderBytes,
		MaxBodyBytes:    DefaultMaxBodyBytes,
		MaxFrameBytes:   DefaultMaxFrameBytes,
		MaxMessageBytes: DefaultMaxMessageBytes,
		MaxAssemblies:   DefaultMaxAssemblies,
	}
}

// withDefaults fills zero fields.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = l.MaxHeaderBytes + l.MaxBodyBytes + 128
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	if l.MaxAssemblies <= 0 {
		l.MaxAssemblies = d.MaxAssemblies
	}
	return l
}

// Option configures Dial, Listen, NewListener and Listener.Expect. Options
// given to a Listener apply to the sessions it creates, before the options
// given to Expect. Options that do not concern a constructor are ignored by
// it.
type Option func(*config) error

type config struct {
	log             *slog.Logger
	handler         Handler
	limits          Limits
	chunkSize       int
	txTimeout       time.Duration
	frameTimeout    time.Duration
	idleTimeout     time.Duration
	bindTimeout     time.Duration
	writeTimeout    time.Duration
	tlsConfig       *tls.Config
	dialer          *net.Dialer
	acceptTypes     []string
	manualReports   bool
	queueSize       int
	maxPendingConns int
	random          io.Reader
}

func defaultConfig() config {
	return config{
		log:             slog.New(slog.DiscardHandler),
		limits:          DefaultLimits(),
		chunkSize:       DefaultChunkSize,
		txTimeout:       DefaultTransactionTimeout,
		frameTimeout:    DefaultFrameTimeout,
		bindTimeout:     DefaultBindTimeout,
		writeTimeout:    DefaultWriteTimeout,
		queueSize:       DefaultQueueSize,
		maxPendingConns: DefaultMaxPendingConns,
		random:          rand.Reader,
	}
}

func (c *config) apply(opts []Option) error {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return err
		}
	}
	c.limits = c.limits.withDefaults()
	if c.chunkSize > c.limits.MaxBodyBytes {
		// Our own chunks must fit what we accept; peers are configured
		// alike or tighter (LIBRARIES.md: Kamailio's 64 KB).
		return fmt.Errorf("%w: chunk size %d over MaxBodyBytes %d", ErrOption, c.chunkSize, c.limits.MaxBodyBytes)
	}
	return nil
}

// WithLogger sets the logger. Bodies are never logged above Debug.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrOption)
		}
		c.log = l
		return nil
	}
}

// WithHandler sets the callbacks that receive messages, reports and
// NICKNAME requests.
func WithHandler(h Handler) Option {
	return func(c *config) error {
		c.handler = h
		return nil
	}
}

// WithLimits sets what a session accepts; zero fields keep their defaults.
func WithLimits(l Limits) Option {
	return func(c *config) error {
		if l.MaxHeaderBytes < 0 || l.MaxBodyBytes < 0 || l.MaxFrameBytes < 0 || l.MaxMessageBytes < 0 || l.MaxAssemblies < 0 {
			return fmt.Errorf("%w: negative limit", ErrOption)
		}
		if l.MaxHeaderBytes > 0 && l.MaxHeaderBytes < 256 {
			return fmt.Errorf("%w: MaxHeaderBytes %d under 256", ErrOption, l.MaxHeaderBytes)
		}
		c.limits = l
		return nil
	}
}

// WithChunkSize sets the largest body of an outgoing chunk: between 2048
// (CHAT-26) and MaxBodyBytes; default 16 KiB.
func WithChunkSize(n int) Option {
	return func(c *config) error {
		if n < MinChunkSize {
			return fmt.Errorf("%w: chunk size %d under %d", ErrOption, n, MinChunkSize)
		}
		c.chunkSize = n
		return nil
	}
}

// WithTransactionTimeout sets how long a sent chunk waits for its response
// before the transaction fails with ErrTimeout (RFC 4975 s7.1: 30 s).
func WithTransactionTimeout(d time.Duration) Option {
	return positiveDuration(d, "transaction timeout", func(c *config) { c.txTimeout = d })
}

// WithFrameTimeout bounds the time from the first byte of a frame to its
// end-line: a peer that trickles a frame (slow loris) is cut off.
func WithFrameTimeout(d time.Duration) Option {
	return positiveDuration(d, "frame timeout", func(c *config) { c.frameTimeout = d })
}

// WithIdleTimeout closes a session whose peer sends nothing for d between
// frames. Zero, the default, never does: MSRP has no keep-alive, and chat
// inactivity is the caller's business (CHAT-61).
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: negative idle timeout", ErrOption)
		}
		c.idleTimeout = d
		return nil
	}
}

// WithBindTimeout bounds how long a Listener keeps an accepted connection
// that has not bound a session with its first request (RFC 4975 s5.4).
func WithBindTimeout(d time.Duration) Option {
	return positiveDuration(d, "bind timeout", func(c *config) { c.bindTimeout = d })
}

// WithWriteTimeout bounds one write to the peer: a peer that stops reading
// ends the session.
func WithWriteTimeout(d time.Duration) Option {
	return positiveDuration(d, "write timeout", func(c *config) { c.writeTimeout = d })
}

// WithTLSConfig makes Listen serve msrps, and configures Dial to an msrps
// URL. For MSRP the certificate is usually checked against an SDP
// fingerprint: set VerifyPeerCertificate accordingly.
func WithTLSConfig(t *tls.Config) Option {
	return func(c *config) error {
		c.tlsConfig = t
		return nil
	}
}

// WithDialer sets the dialer Dial uses (local address, keep-alive).
func WithDialer(d *net.Dialer) Option {
	return func(c *config) error {
		c.dialer = d
		return nil
	}
}

// WithAcceptTypes lists the media types the session accepts (SDP
// a=accept-types); "*" and "type/*" are wildcards. A SEND with another type
// gets 415 (CHAT-24). Without this option every type is accepted.
func WithAcceptTypes(types ...string) Option {
	return func(c *config) error {
		for _, t := range types {
			if t == "" {
				return fmt.Errorf("%w: empty accept type", ErrOption)
			}
		}
		c.acceptTypes = append([]string(nil), types...)
		return nil
	}
}

// WithManualSuccessReports stops the session from sending success REPORTs
// itself when a complete message asked for one; the caller sends them with
// Session.Report (a gateway sends it when the XMPP receipt arrives,
// CHAT-42).
func WithManualSuccessReports() Option {
	return func(c *config) error {
		c.manualReports = true
		return nil
	}
}

// WithQueueSize bounds the messages waiting to be sent; Send beyond it
// returns ErrQueueFull.
func WithQueueSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: queue size %d", ErrOption, n)
		}
		c.queueSize = n
		return nil
	}
}

// WithMaxPendingConns bounds the connections a Listener holds before they
// bind a session; more are closed at once.
func WithMaxPendingConns(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: max pending connections %d", ErrOption, n)
		}
		c.maxPendingConns = n
		return nil
	}
}

// WithRandom sets the source of transaction ids and Message-IDs (default
// crypto/rand). Tests use it for deterministic ids.
func WithRandom(r io.Reader) Option {
	return func(c *config) error {
		if r == nil {
			return fmt.Errorf("%w: nil random source", ErrOption)
		}
		c.random = r
		return nil
	}
}

func positiveDuration(d time.Duration, what string, set func(*config)) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: %s %v", ErrOption, what, d)
		}
		set(c)
		return nil
	}
}
