//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// The SIP load of the bench: a UAS that answers every MESSAGE and hands its
// body to a callback, and a UAC whose client transactions all leave from one
// UDP socket it listens on, so that it can count what it writes (requests
// and their retransmissions).

// countingConn is the UAC's UDP socket: it counts the MESSAGE requests
// written, retransmissions included.
type countingConn struct {
	net.PacketConn
	requests atomic.Int64
}

func (c *countingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if bytes.HasPrefix(b, []byte("MESSAGE ")) {
		c.requests.Add(1)
	}
	return c.PacketConn.WriteTo(b, addr)
}

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

// uas answers every MESSAGE with code and passes its body to deliver.
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

// uac sends MESSAGEs from SIP users of fromDomain to dest over UDP.
type uac struct {
	ua    *sipgo.UserAgent
	cli   *sipgo.Client
	pc    *countingConn
	laddr sip.Addr
	port  int
	done  chan struct{}
	txs   atomic.Int64 // client transactions started
}

func startUAC(port int) (*uac, error) {
	ua, err := newSIPUA("bench-uac")
	if err != nil {
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(sipLogs)))
	if err != nil {
		ua.Close()
		return nil, err
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(slog.New(sipLogs)))
	if err != nil {
		ua.Close()
		return nil, err
	}
	pc, err := listenUDP(port)
	if err != nil {
		ua.Close()
		return nil, err
	}
	u := &uac{ua: ua, cli: cli, pc: &countingConn{PacketConn: pc}, port: port, done: make(chan struct{}),
		laddr: sip.Addr{IP: net.IPv4(127, 0, 0, 1), Port: port}}
	ready := make(chan struct{})
	go func() {
		defer close(u.done)
		close(ready)
		_ = srv.ServeUDP(u.pc)
	}()
	<-ready
	// sipgo pools the socket when its read loop starts.
	time.Sleep(50 * time.Millisecond)
	return u, nil
}

func (u *uac) close() {
	_ = u.pc.Close()
	<-u.done
	_ = u.ua.Close()
}

func noBuild(*sipgo.Client, *sip.Request) error { return nil }

// sipOutcome is the end of one client transaction.
type sipOutcome struct {
	code       int           // final status, 0 if none
	retryAfter bool          // a Retry-After header came with it
	rtt        time.Duration // request to final response
	err        error
}

// send sends one MESSAGE from sip:fromUser@fromHost to sip:toUser@toHost,
// to dest (host:port), and waits for the final response (or ctx).
func (u *uac) send(ctx context.Context, dest, fromUser, fromHost, toUser, toHost string, body []byte) sipOutcome {
	ruri := sip.Uri{Scheme: "sip", User: toUser, Host: toHost}
	req := sip.NewRequest(sip.MESSAGE, ruri)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: "127.0.0.1", Port: u.port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: fromUser, Host: fromHost}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: ruri})
	cid := sip.CallIDHeader(sip.GenerateTagN(20))
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.MESSAGE})
	ct := sip.ContentTypeHeader("text/plain")
	req.AppendHeader(&ct)
	req.SetBody(body)
	req.SetTransport("UDP")
	req.SetDestination(dest)
	u.laddr.Copy(&req.Laddr)

	start := time.Now()
	u.txs.Add(1)
	tx, err := u.cli.TransactionRequest(ctx, req, noBuild)
	if err != nil {
		return sipOutcome{err: err}
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return sipOutcome{code: res.StatusCode, retryAfter: res.GetHeader("Retry-After") != nil, rtt: time.Since(start)}
		case <-tx.Done():
			err := tx.Err()
			if err == nil {
				err = errors.New("transaction ended")
			}
			return sipOutcome{err: err, rtt: time.Since(start)}
		case <-ctx.Done():
			return sipOutcome{err: fmt.Errorf("no final response: %w", ctx.Err()), rtt: time.Since(start)}
		}
	}
}
