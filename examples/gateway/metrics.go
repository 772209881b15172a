package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/stox-gw/stox/component"
	"github.com/stox-gw/stox/sipside"
)

// serveMetrics serves GET /metrics (Prometheus text format) and, when asked,
// /debug/pprof/ on cfg.Listen. Keep it on loopback or a private network: it
// has no authentication.
func serveMetrics(cfg MetricsConfig, gw *component.Gateway, ua *sipside.UA, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		if err := gw.WriteMetrics(w); err != nil {
			log.Debug("writing metrics", "err", err)
			return
		}
		if err := writeSIPMetrics(w, ua.Stats()); err != nil {
			log.Debug("writing metrics", "err", err)
		}
	})
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, &configError{Key: "metrics.listen", Problem: err.Error()}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String(), "pprof", cfg.Pprof)
	return srv, nil
}

// writeSIPMetrics writes sipside's counts of MESSAGE transactions.
func writeSIPMetrics(w io.Writer, st sipside.Stats) error {
	_, err := fmt.Fprintf(w, `# HELP stox_sip_message_transactions_total Page-mode MESSAGE transactions by direction and path (fast: sip.fast_path).
# TYPE stox_sip_message_transactions_total counter
stox_sip_message_transactions_total{direction="in",path="fast"} %d
stox_sip_message_transactions_total{direction="in",path="sipgo"} %d
stox_sip_message_transactions_total{direction="out",path="fast"} %d
stox_sip_message_transactions_total{direction="out",path="sipgo"} %d
# HELP stox_sip_message_inline_total Incoming fast-path MESSAGEs handled on the UDP read loop, without a hand-off to a worker (the XMPP stream was writable at once).
# TYPE stox_sip_message_inline_total counter
stox_sip_message_inline_total %d
# HELP stox_sip_overload_shed_total Incoming MESSAGEs answered 503 for overload (sip.max_incoming).
# TYPE stox_sip_overload_shed_total counter
stox_sip_overload_shed_total %d
`, st.FastIn, st.UsualIn, st.FastOut, st.UsualOut, st.FastInline, st.Shed)
	return err
}
