// Command stox is the SIP <-> XMPP gateway daemon: an XMPP external component
// (XEP-0114) that originates and terminates SIP itself.
//
//	stox -config stox.toml          run
//	stox -check-config stox.toml    validate the file and exit
//	stox -version                   print the version
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stox-gw/stox/component"
	"github.com/stox-gw/stox/component/store"
	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/msrp"
	"github.com/stox-gw/stox/sipside"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	tuneGC()
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("stox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (TOML)")
	checkPath := fs.String("check-config", "", "validate this configuration file and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case *showVersion:
		fmt.Fprintln(stderr, "stox", version)
		return 0
	case *checkPath != "":
		if _, err := loadConfig(*checkPath); err != nil {
			fmt.Fprintf(stderr, "stox: %s: %v\n", *checkPath, err)
			return 1
		}
		fmt.Fprintf(stderr, "stox: %s: configuration ok\n", *checkPath)
		return 0
	case *configPath == "":
		fmt.Fprintln(stderr, "stox: -config FILE is required (see -help)")
		return 2
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "stox: %s: %v\n", *configPath, err)
		return 1
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("stox stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	level, _ := cfg.logLevel() // validated
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve wires the packages and runs until ctx ends.
func serve(ctx context.Context, cfg *Config, log *slog.Logger) error {
	// sipgo's package globals, set once here (LIBRARIES.md): its own log
	// lines go through our logger, and UDP datagrams up to 65,535 bytes are
	// read whole (RFC 3261 s18.1.1; sipgo's default buffer is 32 KiB).
	sip.SetDefaultLogger(log.With("side", "sipgo"))
	sip.TransportBufferReadSize = 65535
	addr, err := mapping.NewAddressing(mapping.AddressingConfig{
		Component:      cfg.XMPP.Component,
		SIPDomain:      cfg.SIP.Domain,
		ServedDomains:  cfg.XMPP.Domains,
		ForeignDomains: cfg.foreignDomains(),
	})
	if err != nil {
		return err
	}
	trusted, _ := cfg.trustedPrefixes() // validated
	if len(trusted) == 0 {
		log.Warn("sip.trusted is empty: every SIP request will be refused with 403")
	}

	// The SIP handler needs the gateway and the gateway needs the SIP UA.
	var gw *component.Gateway
	opts := []sipside.Option{
		sipside.WithListen(cfg.SIP.Listen...),
		sipside.WithDomain(cfg.SIP.Domain),
		sipside.WithTrusted(trusted...),
		sipside.WithLargeMessages(sipside.LargePolicy(cfg.SIP.LargeMessages)),
		sipside.WithLogger(log.With("side", "sip")),
		sipside.WithMessageHandler(func(ctx context.Context, m *sipside.IncomingMessage) sipside.Reply {
			return gw.HandleSIPMessage(ctx, m)
		}),
		sipside.WithInlineHandler(func() bool { return gw != nil && gw.ReadyForInline() }),
	}
	if cfg.SIP.OutboundProxy != "" {
		opts = append(opts, sipside.WithOutboundProxy(cfg.SIP.OutboundProxy))
	}
	if cfg.SIP.TLSCert != "" {
		opts = append(opts, sipside.WithTLS(cfg.SIP.TLSCert, cfg.SIP.TLSKey))
	}
	if cfg.SIP.TransactionTimeout.Duration > 0 {
		opts = append(opts, sipside.WithTransactionTimeout(cfg.SIP.TransactionTimeout.Duration))
	}
	if cfg.SIP.MaxInFlight > 0 {
		opts = append(opts, sipside.WithMaxInFlight(cfg.SIP.MaxInFlight))
	}
	if cfg.SIP.MaxIncoming > 0 {
		opts = append(opts, sipside.WithMaxIncoming(cfg.SIP.MaxIncoming))
	}
	if cfg.SIP.MaxMessageBody > 0 {
		opts = append(opts, sipside.WithMaxMessageBody(cfg.SIP.MaxMessageBody))
	}
	if cfg.SIP.FastPath != nil {
		opts = append(opts, sipside.WithFastPath(*cfg.SIP.FastPath))
	}
	if cfg.Presence.enabled() {
		opts = append(opts,
			sipside.WithSubscribeHandler(func(ctx context.Context, s *sipside.IncomingSubscribe) sipside.SubscribeReply {
				return gw.HandleSIPSubscribe(ctx, s)
			}),
			sipside.WithNotifyHandler(func(ctx context.Context, n *sipside.IncomingNotify) sipside.Reply {
				return gw.HandleSIPNotify(ctx, n)
			}),
			sipside.WithSubscriptionExpires(cfg.Presence.MinExpires, cfg.Presence.MaxExpires),
		)
	}
	var st *store.Store
	if cfg.Store.Path != "" {
		if st, err = store.Open(cfg.Store.Path, 2*time.Second); err != nil {
			return fmt.Errorf("store.path: %w", err)
		}
		defer st.Close()
	} else if cfg.Presence.enabled() {
		log.Warn("store.path is not set: presence subscriptions are kept in memory only and lost on restart")
	}
	var msrpLn *msrp.Listener
	if cfg.MSRP.Listen != "" {
		if msrpLn, err = listenMSRP(cfg, log); err != nil {
			return err
		}
		defer msrpLn.Close()
		opts = append(opts, sipside.WithInviteHandler(func(ctx context.Context, inv *sipside.IncomingInvite) sipside.InviteReply {
			return gw.HandleSIPInvite(ctx, inv)
		}))
	}
	ua, err := sipside.New(opts...)
	if err != nil {
		return err
	}
	gw, err = component.New(component.Config{
		Component:       cfg.XMPP.Component,
		Server:          cfg.XMPP.Server,
		Secret:          cfg.XMPP.Secret,
		Addressing:      addr,
		PingTarget:      cfg.XMPP.Domains[0],
		PingInterval:    cfg.XMPP.PingInterval.Duration,
		PingTimeout:     cfg.XMPP.PingTimeout.Duration,
		BackoffMax:      cfg.XMPP.ReconnectMax.Duration,
		MaxStanzaSize:   cfg.XMPP.MaxStanzaSize,
		MaxSegment:      cfg.XMPP.MaxSegment,
		OutboxLimit:     cfg.XMPP.QueueLimit,
		OutboxMaxOutage: cfg.XMPP.QueueMaxAge.Duration,
		SessionQueue:    cfg.SIP.UserQueue,
		SendTimeout:     cfg.SIP.TransactionTimeout.Duration,
		Version:         version,
		Presence: component.PresenceConfig{
			Store:            st,
			NotifyInterval:   cfg.Presence.NotifyInterval.Duration,
			SubscribeExpires: cfg.Presence.SubscribeExpires,
			RetryMin:         cfg.Presence.RetryMin.Duration,
			RetryMax:         cfg.Presence.RetryMax.Duration,
			MaxSubscriptions: cfg.Presence.MaxSubscriptions,
			RestoreRate:      cfg.Presence.RestoreRate,
		},
		PresenceDisabled: !cfg.Presence.enabled(),
		Chat: component.ChatConfig{
			Mode:        cfg.Chat.Mode,
			Listener:    msrpLn,
			Host:        cfg.MSRP.Host,
			Idle:        cfg.Chat.IdleTimeout.Duration,
			Queue:       cfg.Chat.Queue,
			MaxSessions: cfg.Chat.MaxSessions,
		},
	}, ua, component.WithLogger(log.With("side", "xmpp")))
	if err != nil {
		return err
	}

	if err := ua.Start(ctx); err != nil {
		return err
	}

	if cfg.Metrics.Listen != "" {
		srv, err := serveMetrics(cfg.Metrics, gw, ua, log)
		if err != nil {
			_ = ua.Close()
			return err
		}
		defer srv.Close()
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- gw.Run(runCtx) }()

	select {
	case <-ctx.Done():
	case err := <-runErr:
		// Run only returns by itself for errors that retrying cannot fix.
		_ = ua.Close()
		gw.Close(0)
		return err
	}
	log.Info("shutting down")
	// Order: let XMPP->SIP work finish or answer it with errors (new XMPP
	// messages are refused meanwhile), stop the SIP side (SIP->XMPP messages
	// keep flowing until then), and close the stream last.
	gw.Close(3 * time.Second)
	if err := ua.Close(); err != nil {
		log.Warn("closing SIP side", "err", err)
	}
	stopRun()
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return nil
}

// listenMSRP binds msrp.listen (tcp: or tls:).
func listenMSRP(cfg *Config, log *slog.Logger) (*msrp.Listener, error) {
	tr, hp, _ := splitListen(cfg.MSRP.Listen) // validated
	opts := []msrp.Option{msrp.WithLogger(log.With("side", "msrp"))}
	if tr == "tls" {
		cert, err := tls.LoadX509KeyPair(cfg.MSRP.TLSCert, cfg.MSRP.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("msrp.tls_cert: %w", err)
		}
		opts = append(opts, msrp.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}
	ln, err := msrp.Listen("tcp", hp, opts...)
	if err != nil {
		return nil, fmt.Errorf("msrp.listen: %w", err)
	}
	log.Info("msrp listening", "addr", ln.Addr().String(), "tls", tr == "tls")
	return ln, nil
}
