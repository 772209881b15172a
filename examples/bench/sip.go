//go:build unix

package main

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// The SIP agents of the bench: the bare sipgo UAS of the SIP ceiling
// (startUAS), which answers every MESSAGE and hands its body to a callback.
// stox's outbound proxy is a raw UDP UAS (rawuas.go) and the S->X load
// generator a raw UDP UAC (rawuac.go): sipgo's transaction layer would cost
// the bench more CPU per message than stox's own budget, on the cores stox
// and Prosody need.

// sipLog discards sipgo's own log lines and counts the warnings and errors.
type sipLog struct{ warnings atomic.Int64 }

func (h *sipLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *sipLog) Handle(context.Context, slog.Record) error    { h.warnings.Add(1); return nil }
func (h *sipLog) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *sipLog) WithGroup(string) slog.Handler                { return h }

var sipLogs = &sipLog{}

// listenUDP binds a loopback UDP socket with a large receive buffer
// (bounded by net.core.rmem_max), so that the bench's own sockets are not
// where datagrams are dropped.
func listenUDP(port int) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(8 << 20)
	_ = c.SetWriteBuffer(8 << 20)
	return c, nil
}

func newSIPUA(name string) (*sipgo.UserAgent, error) {
	l := slog.New(sipLogs)
	return sipgo.NewUA(
		sipgo.WithUserAgent(name),
		sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(l)),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(l),
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {}),
		),
	)
}

// uas is a bare sipgo UAS: it answers every MESSAGE with code and passes
// its body to deliver. sipgo's server transactions absorb retransmissions:
// deliver sees each transaction once.
type uas struct {
	ua   *sipgo.UserAgent
	pc   net.PacketConn
	done chan struct{}
}

func startUAS(port, code int, deliver func(body []byte)) (*uas, error) {
	ua, err := newSIPUA("bench-uas")
	if err != nil {
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(sipLogs)))
	if err != nil {
		ua.Close()
		return nil, err
	}
	reason := "OK"
	if code == 202 {
		reason = "Accepted"
	}
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		deliver(req.Body())
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	})
	pc, err := listenUDP(port)
	if err != nil {
		ua.Close()
		return nil, err
	}
	u := &uas{ua: ua, pc: pc, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		_ = srv.ServeUDP(pc)
	}()
	return u, nil
}

func (u *uas) close() {
	_ = u.pc.Close()
	<-u.done
	_ = u.ua.Close()
}
