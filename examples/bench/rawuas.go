//go:build unix

package main

import (
	"bytes"
	"hash/maphash"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// rawUAS is a minimal UDP UAS: stox's outbound proxy, the sink of X->S. A
// sipgo UAS cost the bench 50-70 us of CPU per MESSAGE, CPU taken from stox
// and Prosody on a 2-core machine; this one about 20, nearly all of it the
// receive and send system calls and the wake-up per datagram.
//
// One read loop on one socket parses just what a response needs and
// answers every MESSAGE with code and an empty body: the Vias (the top one
// with rport and received filled in when it asks for them, RFC 3581 s4),
// Record-Route for a 2xx, From, To with a tag, Call-ID, CSeq, as
// sipgo.NewResponseFromRequest does. Any other request gets 405, as sipgo's
// server without a handler for it; ACK and responses get nothing.
//
// It keeps the semantics of sipgo's server transactions, which answer a
// retransmitted request (same top Via: branch and sent-by) again without
// calling the handler: the body of a MESSAGE goes to deliver once per
// transaction, so that a duplicate the tracker counts is a duplicate that
// stox sent, never a retransmission. sipgo keeps a UDP server transaction
// for Timer J = 32 s after its final response; the top Vias seen are kept
// for 40 to 80 s (two generations of hashes), longer than stox's client
// transactions retransmit (Timer F, 32 s).
type rawUAS struct {
	conn    *net.UDPConn
	code    int
	reason  string
	deliver func(body []byte)
	seed    maphash.Seed
	done    sync.WaitGroup

	mu        sync.Mutex
	cur, prev map[uint64]struct{} // hashes of the top Vias of MESSAGEs seen
	rotated   time.Time

	requests    atomic.Int64 // MESSAGE datagrams answered
	retransmits atomic.Int64 // of which retransmissions (answered, not delivered)
	malformed   atomic.Int64 // datagrams that were not a request it could answer
}

// rawUASKeep is how long a transaction's top Via is kept at least.
const rawUASKeep = 40 * time.Second

// rawUASReaders is the number of goroutines reading the socket. Two
// measured no leaner than one on 2 cores (X->S bench CPU 27-32 us a message
// either way, within the noise; most of it is the two system calls and the
// wake-up per datagram) and one loop answers far more than stox sends, in
// the order it sent.
const rawUASReaders = 1

func startRawUAS(port, code int, deliver func(body []byte)) (*rawUAS, error) {
	c, err := listenUDP(port)
	if err != nil {
		return nil, err
	}
	reason := "OK"
	if code == 202 {
		reason = "Accepted"
	}
	u := &rawUAS{conn: c, code: code, reason: reason, deliver: deliver, seed: maphash.MakeSeed(),
		cur: make(map[uint64]struct{}), prev: make(map[uint64]struct{}), rotated: time.Now()}
	for range rawUASReaders {
		u.done.Go(u.read)
	}
	return u, nil
}

func (u *rawUAS) close() {
	_ = u.conn.Close()
	u.done.Wait()
}

func (u *rawUAS) read() {
	buf := make([]byte, 65536)
	out := make([]byte, 0, 2048)
	var req rawRequest
	for {
		n, src, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if !req.parse(buf[:n]) {
			u.malformed.Add(1)
			continue
		}
		key := maphash.Bytes(u.seed, req.topVia)
		switch {
		case bytes.Equal(req.method, []byte("ACK")):
			continue
		case bytes.Equal(req.method, []byte("MESSAGE")):
			u.requests.Add(1)
			if u.first(key) {
				u.deliver(req.body)
			} else {
				u.retransmits.Add(1)
			}
			out = req.appendResponse(out[:0], u.code, u.reason, src, key)
		default:
			out = req.appendResponse(out[:0], 405, "Method Not Allowed", src, key)
		}
		_, _ = u.conn.WriteToUDPAddrPort(out, src)
	}
}

// first reports whether a MESSAGE whose top Via hashes to h is new, and
// remembers it.
func (u *rawUAS) first(h uint64) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if now := time.Now(); now.Sub(u.rotated) >= rawUASKeep {
		u.prev, u.cur, u.rotated = u.cur, make(map[uint64]struct{}, len(u.cur)), now
	}
	if _, ok := u.cur[h]; ok {
		return false
	}
	if _, ok := u.prev[h]; ok {
		return false
	}
	u.cur[h] = struct{}{}
	return true
}

// rawRequest is a request read by parse: every field is a slice of the
// datagram.
type rawRequest struct {
	method  []byte
	vias    [][]byte // Via header values in order, as written
	topVia  []byte   // the first Via value (up to a comma)
	rroutes [][]byte
	from    []byte
	to      []byte
	callID  []byte
	cseq    []byte
	body    []byte
}

// parse reads a request datagram, full and compact header names alike. It
// is not a validator: it takes what the bench's own peers send.
func (r *rawRequest) parse(d []byte) bool {
	r.method, r.vias, r.topVia, r.rroutes = nil, r.vias[:0], nil, r.rroutes[:0]
	r.from, r.to, r.callID, r.cseq, r.body = nil, nil, nil, nil, nil
	eol := bytes.Index(d, crlf)
	if eol < 0 {
		return false
	}
	sp := bytes.IndexByte(d[:eol], ' ')
	if sp <= 0 || bytes.HasPrefix(d, []byte("SIP/")) {
		return false // a response, or garbage
	}
	r.method = d[:sp]
	rest := d[eol+2:]
	clen := -1
	for {
		eol = bytes.Index(rest, crlf)
		if eol < 0 {
			return false
		}
		l := rest[:eol]
		rest = rest[eol+2:]
		if len(l) == 0 {
			break // end of the headers
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 {
			continue
		}
		name := bytes.TrimRight(l[:colon], " \t")
		v := bytes.Trim(l[colon+1:], " \t")
		switch {
		case headerIs(name, "via", 'v'):
			r.vias = append(r.vias, v)
			if r.topVia == nil {
				r.topVia = v
				if i := bytes.IndexByte(v, ','); i >= 0 {
					r.topVia = bytes.TrimRight(v[:i], " \t")
				}
			}
		case headerIs(name, "from", 'f'):
			r.from = v
		case headerIs(name, "to", 't'):
			r.to = v
		case headerIs(name, "call-id", 'i'):
			r.callID = v
		case headerIs(name, "cseq", 0):
			r.cseq = v
		case headerIs(name, "record-route", 0):
			r.rroutes = append(r.rroutes, v)
		case headerIs(name, "content-length", 'l'):
			if n, err := strconv.Atoi(string(v)); err == nil {
				clen = n
			}
		}
	}
	if r.topVia == nil || r.from == nil || r.to == nil || r.callID == nil || r.cseq == nil {
		return false
	}
	r.body = rest
	if clen >= 0 && clen < len(rest) {
		r.body = rest[:clen]
	}
	return true
}

var crlf = []byte("\r\n")

func headerIs(name []byte, long string, compact byte) bool {
	if len(name) == 1 {
		return compact != 0 && name[0]|0x20 == compact
	}
	return len(name) == len(long) && bytes.EqualFold(name, []byte(long))
}

// appendResponse writes the response to r with an empty body. The To tag,
// if r has none, is derived from key (the hash of the top Via): a
// retransmission is answered with the same tag.
func (r *rawRequest) appendResponse(b []byte, code int, reason string, src netip.AddrPort, key uint64) []byte {
	b = append(b, "SIP/2.0 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, reason...)
	b = append(b, "\r\n"...)
	for i, v := range r.vias {
		b = append(b, "Via: "...)
		if i == 0 {
			b = appendTopVia(b, v, len(r.topVia), src)
		} else {
			b = append(b, v...)
		}
		b = append(b, "\r\n"...)
	}
	if code >= 200 && code < 300 {
		for _, v := range r.rroutes {
			b = append(b, "Record-Route: "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "From: "...)
	b = append(b, r.from...)
	b = append(b, "\r\nTo: "...)
	b = append(b, r.to...)
	if !hasTag(r.to) {
		b = append(b, ";tag=b"...)
		b = strconv.AppendUint(b, key, 16)
	}
	b = append(b, "\r\nCall-ID: "...)
	b = append(b, r.callID...)
	b = append(b, "\r\nCSeq: "...)
	b = append(b, r.cseq...)
	return append(b, "\r\nContent-Length: 0\r\n\r\n"...)
}

// appendTopVia writes the first Via header line, whose first value is
// v[:top]: an empty rport parameter gets the source port and then
// received the source address (RFC 3581 s4).
func appendTopVia(b, v []byte, top int, src netip.AddrPort) []byte {
	first := v[:top]
	i := indexParam(first, "rport")
	if i < 0 {
		return append(b, v...)
	}
	end := i + len("rport")
	if end < len(first) && first[end] == '=' {
		return append(b, v...) // rport has a value already
	}
	b = append(b, first[:end]...)
	b = append(b, '=')
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, first[end:]...)
	b = append(b, ";received="...)
	b = src.Addr().AppendTo(b)
	return append(b, v[top:]...)
}

// indexParam returns the index in a header value of the name of its
// parameter name (after a ';'), followed by '=', ';', white space or the
// end; -1 if it has no such parameter.
func indexParam(v []byte, name string) int {
	for off := 0; ; {
		i := bytes.IndexByte(v[off:], ';')
		if i < 0 {
			return -1
		}
		i += off + 1
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		p := v[i:]
		if len(p) >= len(name) && bytes.EqualFold(p[:len(name)], []byte(name)) &&
			(len(p) == len(name) || p[len(name)] == '=' || p[len(name)] == ';' || p[len(name)] == ' ' || p[len(name)] == '\t') {
			return i
		}
		off = i
	}
}

// hasTag reports whether a To value has a tag parameter (outside its <URI>).
func hasTag(to []byte) bool {
	if i := bytes.LastIndexByte(to, '>'); i >= 0 {
		to = to[i+1:]
	}
	return indexParam(to, "tag") >= 0
}
