package component

import (
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
)

// counters are the gateway's operational counts, exposed in the Prometheus
// text format by WriteMetrics (main serves them on metrics.listen).
type counters struct {
	xsDelivered atomic.Uint64 // XMPP->SIP: a 2xx final response
	xsFailed    atomic.Uint64 // XMPP->SIP: non-2xx, timeout or transport error
	xsRefused   atomic.Uint64 // XMPP->SIP: refused before SIP (mapping, queue)
	sxAccepted  atomic.Uint64 // SIP->XMPP: written to the XMPP server
	sxQueued    atomic.Uint64 // SIP->XMPP: queued during an outage
	sxRefused   atomic.Uint64 // SIP->XMPP: answered 4xx/5xx
	iqs         atomic.Uint64 // IQ get/set answered
}

// WriteMetrics writes the gateway's metrics in the Prometheus text format.
func (g *Gateway) WriteMetrics(w io.Writer) error {
	queued, connected := g.out.stats()
	c := &g.count
	lines := []struct {
		name, help, typ, labels string
		v                       uint64
	}{
		{"stox_xmpp_connected", "1 while the component stream is up.", "gauge", "", b2u(connected)},
		{"stox_xmpp_connects_total", "Successful component handshakes.", "counter", "", g.connects.Load()},
		{"stox_xmpp_outbox_queued", "Stanzas waiting for the XMPP server.", "gauge", "", uint64(queued)},
		{"stox_sessions", "Live per-user sessions.", "gauge", "", uint64(g.sessions.count())},
		{"stox_messages_total", "Page-mode messages by direction and outcome.", "counter", `direction="xmpp_to_sip",result="delivered"`, c.xsDelivered.Load()},
		{"stox_messages_total", "", "", `direction="xmpp_to_sip",result="failed"`, c.xsFailed.Load()},
		{"stox_messages_total", "", "", `direction="xmpp_to_sip",result="refused"`, c.xsRefused.Load()},
		{"stox_messages_total", "", "", `direction="sip_to_xmpp",result="accepted"`, c.sxAccepted.Load()},
		{"stox_messages_total", "", "", `direction="sip_to_xmpp",result="queued"`, c.sxQueued.Load()},
		{"stox_messages_total", "", "", `direction="sip_to_xmpp",result="refused"`, c.sxRefused.Load()},
		{"stox_iq_answered_total", "IQ get/set requests answered.", "counter", "", c.iqs.Load()},
		{"stox_presence_subscriptions", "Virtual presence subscriptions by direction.", "gauge", `direction="sip_to_xmpp"`, g.presenceGauge(func(p *presenceEngine) uint64 { return uint64(p.nIn.Load()) })},
		{"stox_presence_subscriptions", "", "", `direction="xmpp_to_sip"`, g.presenceGauge(func(p *presenceEngine) uint64 { return uint64(p.nOut.Load()) })},
		{"stox_presence_watcher_dialogs", "SIP watcher dialogs attached to virtual subscriptions.", "gauge", "", g.presenceGauge(func(p *presenceEngine) uint64 { return uint64(p.nInDialogs.Load()) })},
		{"stox_presence_sip_requests_total", "SUBSCRIBE and NOTIFY requests sent, and those that failed.", "counter", `method="NOTIFY",result="sent"`, g.presenceGauge(func(p *presenceEngine) uint64 { return p.notifies.Load() })},
		{"stox_presence_sip_requests_total", "", "", `method="NOTIFY",result="failed"`, g.presenceGauge(func(p *presenceEngine) uint64 { return p.notifyFail.Load() })},
		{"stox_presence_sip_requests_total", "", "", `method="SUBSCRIBE",result="sent"`, g.presenceGauge(func(p *presenceEngine) uint64 { return p.subscribes.Load() })},
		{"stox_presence_sip_requests_total", "", "", `method="SUBSCRIBE",result="failed"`, g.presenceGauge(func(p *presenceEngine) uint64 { return p.subFail.Load() })},
		{"stox_presence_stanzas_total", "Presence stanzas sent to XMPP.", "counter", "", g.presenceGauge(func(p *presenceEngine) uint64 { return p.stanzasOut.Load() })},
		{"stox_chat_sessions", "MSRP chat sessions up or being set up.", "gauge", "", g.chatCount()},
		{"go_goroutines", "Goroutines of the stox process.", "gauge", "", uint64(runtime.NumGoroutine())},
		{"go_sched_gomaxprocs_threads", "GOMAXPROCS of the stox process (Go follows the CPUs it may use).", "gauge", "", uint64(runtime.GOMAXPROCS(0))},
	}
	for _, l := range lines {
		if l.help != "" {
			if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", l.name, l.help, l.name, l.typ); err != nil {
				return err
			}
		}
		name := l.name
		if l.labels != "" {
			name += "{" + l.labels + "}"
		}
		if _, err := fmt.Fprintf(w, "%s %d\n", name, l.v); err != nil {
			return err
		}
	}
	return nil
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// presenceGauge reads a presence figure, 0 when presence is off.
func (g *Gateway) presenceGauge(f func(*presenceEngine) uint64) uint64 {
	if g.presence == nil {
		return 0
	}
	return f(g.presence)
}

// chatCount is the number of chat sessions, 0 when chats are off.
func (g *Gateway) chatCount() uint64 {
	if g.chats == nil {
		return 0
	}
	return uint64(g.chats.count())
}
