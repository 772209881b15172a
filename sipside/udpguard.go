package sipside

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// udpGuard wraps a UDP listening socket before sipgo reads from it. It sees
// each datagram whole, which sipgo's parser does not let us do, and answers
// statelessly what sipgo would otherwise drop in silence:
//
//   - a datagram larger than sipgo's read buffer (the global
//     sip.TransportBufferReadSize, 32 KiB by default, which sipgo would
//     truncate) or than the parser limit: 513 Message Too Large;
//   - a request whose Content-Length is larger than the bytes that follow
//     the headers: 400 (RFC 3261 §18.3);
//   - while the UA is overloaded (WithMaxIncoming), a new MESSAGE: 503 with
//     Retry-After (see shed).
//
// The source check comes first, as everywhere (403). Bytes after the body
// are dropped by sipgo, as RFC 3261 §18.3 requires for datagrams.
//
// Only one goroutine (sipgo's read loop) calls ReadFrom, so buf is not
// shared.
type udpGuard struct {
	net.PacketConn
	u     *UA
	fast  *fastPath     // nil when WithFastPath(false)
	batch *batchConn    // nil where datagrams are read one at a time
	buf   []byte        // without batch
	ready chan struct{} // closed on the first read: sipgo has pooled the socket
	once  sync.Once
	// queued counts the datagrams in a row that were waiting when the loop
	// came to read them (read loop only).
	queued int
}

func newUDPGuard(pc net.PacketConn, u *UA) *udpGuard {
	g := &udpGuard{PacketConn: pc, u: u, ready: make(chan struct{})}
	if uc, ok := pc.(*net.UDPConn); ok {
		g.batch = newBatchConn(uc, 1<<16, func(_ int, dst netip.AddrPort, err error) {
			u.log.Debug("sip respond failed", "dest", dst, "error", err)
		})
	}
	if g.batch == nil {
		g.buf = make([]byte, 1<<16)
	}
	return g
}

func (g *udpGuard) ReadFrom(b []byte) (int, net.Addr, error) {
	g.once.Do(func() { close(g.ready) })
	for {
		data, src, waited, err := g.read()
		if err != nil {
			return 0, nil, err
		}
		// A read that had to wait found the socket empty: the loop keeps
		// up with the senders and may handle datagrams itself
		// (fastPath.request), a short burst included. Once readBacklog
		// datagrams in a row have been found waiting, datagrams queue up:
		// the loop hands them to workers and reads on until a read waits.
		if waited {
			g.queued = 0
		} else {
			g.queued++
		}
		caughtUp := g.queued < readBacklog
		limit := min(len(b), g.u.limit)
		if len(data) > limit {
			g.refuse(data, src, 513, "Message Too Large")
			continue
		}
		if code, reason := checkDatagram(data); code != 0 {
			g.refuse(data, src, code, reason)
			continue
		}
		if g.fast != nil && g.fast.handle(data, src, caughtUp, g.batch) {
			continue
		}
		if g.u.overloaded() && g.shed(data, src) {
			continue
		}
		if g.batch != nil {
			g.batch.flush() // sipgo may take a while with it
		}
		return copy(b, data), net.UDPAddrFromAddrPort(src), nil
	}
}

// read returns the next datagram, its source (IPv4-mapped addresses
// unmapped) and whether the loop had to wait for it.
func (g *udpGuard) read() (data []byte, src netip.AddrPort, waited bool, err error) {
	if g.batch != nil {
		return g.batch.read()
	}
	start := time.Now()
	n, addr, err := g.PacketConn.ReadFrom(g.buf)
	if err != nil {
		return nil, src, false, err
	}
	if ua, ok := addr.(*net.UDPAddr); ok {
		src = ua.AddrPort()
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	}
	// A read that finds a datagram queued returns in a few microseconds;
	// one that parks the goroutine until a datagram arrives takes longer.
	return g.buf[:n], src, time.Since(start) >= readWaited, nil
}

// checkDatagram looks at the framing of a request datagram without parsing
// it: it finds the end of the headers and compares Content-Length with what
// follows.
func checkDatagram(data []byte) (int, string) {
	if bytes.HasPrefix(data, []byte("SIP/")) {
		return 0, "" // a response: sipgo drops broken ones, as it must
	}
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		return 0, "" // not a whole message; sipgo drops it
	}
	head := data[:end+2]
	body := len(data) - (end + 4)
	for len(head) > 0 {
		i := bytes.Index(head, []byte("\r\n"))
		if i < 0 {
			break
		}
		line := head[:i]
		head = head[i+2:]
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := bytes.TrimSpace(line[:colon])
		if !bytes.EqualFold(name, []byte("content-length")) && !bytes.EqualFold(name, []byte("l")) {
			continue
		}
		v, err := strconv.ParseUint(string(bytes.TrimSpace(line[colon+1:])), 10, 32)
		if err != nil {
			return 0, "" // checkRequest answers 400 for a malformed value
		}
		if v > uint64(body) {
			return 400, "Content-Length Larger Than Message"
		}
		return 0, ""
	}
	return 0, ""
}

// shed answers a new MESSAGE with 503 and Retry-After while the UA is
// overloaded (WithMaxIncoming), statelessly, before sipgo parses the whole
// request, starts a goroutine and keeps a server transaction for it for 32
// s (Timer J). Above the bound that is what every excess request would cost,
// and at two or three times the sustainable rate the read loop then fell
// behind: datagrams were dropped by the kernel and retransmitted. A request
// the UA already knows (its transaction has a turn in its conversation, or
// had one recently: a retransmission) is not shed: its own transaction
// answers it, so that no request gets two final responses. Untrusted and
// malformed requests go the usual way (403, 400). It reports whether it
// answered.
func (g *udpGuard) shed(data []byte, src netip.AddrPort) bool {
	u := g.u
	if !src.IsValid() || !bytes.HasPrefix(data, []byte("MESSAGE ")) {
		return false
	}
	if !u.trusted(src.Addr()) {
		return false
	}
	msg, _, err := u.parser.ParseHeaders(data, false)
	req, isReq := msg.(*sip.Request)
	if err != nil || !isReq || req.Via() == nil || req.CSeq() == nil || req.From() == nil {
		return false
	}
	token, err := sip.ServerTxKeyMake(req)
	if err != nil || u.seq.known(token, orderKey(req)) {
		return false
	}
	u.noteShed(src)
	req.SetSource(src.String())
	res := sip.NewResponseFromRequest(req, 503, reasonPhrase(503), nil)
	res.AppendHeader(sip.NewHeader("Server", u.uaString))
	res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(OverloadRetryAfter)))
	g.writeStateless(req, res, src)
	return true
}

// writeStateless sends a response to a request that has no transaction,
// where RFC 3261 §18.2.2 with RFC 3581 says: the source address, and the
// source port when rport was asked for, else the sent-by port.
func (g *udpGuard) writeStateless(req *sip.Request, res *sip.Response, src netip.AddrPort) {
	dst := &net.UDPAddr{IP: net.IP(src.Addr().AsSlice()), Port: int(src.Port())}
	via := req.Via()
	if _, rport := via.Params.Get("rport"); !rport {
		dst.Port = via.Port
		if dst.Port == 0 {
			dst.Port = sip.DefaultUdpPort
		}
	}
	if _, err := g.PacketConn.WriteTo([]byte(res.String()), dst); err != nil {
		g.u.log.Debug("sip stateless response failed", "dest", dst.String(), "error", err)
	}
}

// refuse answers a datagram that will not reach sipgo. It parses only the
// start line and headers.
func (g *udpGuard) refuse(data []byte, src netip.AddrPort, code int, reason string) {
	u := g.u
	if !src.IsValid() {
		return
	}
	msg, _, err := u.parser.ParseHeaders(data, false)
	req, isReq := msg.(*sip.Request)
	if err != nil || !isReq || req.IsAck() || req.Via() == nil {
		u.log.Info("sip datagram dropped", "source", src, "size", len(data), "code", code, "reason", reason)
		return
	}
	if !u.trusted(src.Addr()) {
		code, reason = 403, "Forbidden"
	}
	u.log.Info("sip request refused", "source", src, "transport", "udp", "method", string(req.Method), "code", code, "reason", reason, "size", len(data))
	req.SetSource(src.String())
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", u.uaString))
	g.writeStateless(req, res, src)
}
