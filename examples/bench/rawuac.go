//go:build unix

package main

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// rawUAC is a minimal UDP UAC, the S->X load generator of every phase (and
// of the SIP ceiling): requests built as bytes, responses matched by the
// Via branch, and the non-INVITE client transaction's retransmissions (RFC
// 3261 s17.1.2.2: Timer E from T1 = 500 ms doubling to T2 = 4 s, until
// Timer F or the run's give-up time) kept in FIFO queues, one per interval.
// It costs about 20 us of CPU per MESSAGE, nearly all of it the send and
// receive system calls, where sipgo's client cost 40-80: on 2 cores, a
// sipgo UAC takes CPU from stox and Prosody in the closed loop, and
// offering twice what stox can take it uses more CPU than stox itself, so
// that the test would measure the load generator running out of CPU rather
// than stox under overload.
//
// Neither stox nor sipgo's UAS sends a provisional response to a MESSAGE;
// the UAC ignores one (it does not slow its retransmissions down to T2).
type rawUAC struct {
	conn *net.UDPConn
	port int
	done chan struct{}

	mu  sync.Mutex
	run *rawRun
}

// rawRun is one batch of n requests (transactions) to one destination.
// Open loop: the caller starts each (send). Closed loop: pairs
// conversations, each with one transaction at a time (RFC 3428 s8); the
// end of one, by a final response or by giving up, starts the next message
// of its conversation, on the goroutine that saw the end.
type rawRun struct {
	id     int
	to     netip.AddrPort
	txs    []rawTx
	queues [4][]int // by retransmission interval 0.5, 1, 2, 4 s: indexes into txs
	giveUp time.Duration

	// closed loop
	closed bool
	next   int   // the next message to start (under rawUAC.mu)
	seq    []int // the next sequence number of each conversation (under rawUAC.mu)
	build  func(k, pair, seq int) []byte

	started  atomic.Int64 // transactions started
	done     atomic.Int64 // transactions ended (final response or given up)
	requests atomic.Int64 // datagrams written, retransmissions included
}

type rawTx struct {
	data    []byte
	sent    time.Time
	due     time.Time // next retransmission
	pair    int32
	state   uint8 // 0 pending, 1 answered, 2 given up
	retryAf bool
	code    int
	rtt     time.Duration
}

var rawIntervals = [4]time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

// timerF is the non-INVITE client transaction's timeout: 64 T1.
const timerF = 32 * time.Second

func startRawUAC(port int) (*rawUAC, error) {
	c, err := listenUDP(port)
	if err != nil {
		return nil, err
	}
	u := &rawUAC{conn: c, port: c.LocalAddr().(*net.UDPAddr).Port, done: make(chan struct{})}
	go u.read()
	return u, nil
}

func (u *rawUAC) close() {
	_ = u.conn.Close()
	<-u.done
}

// request builds MESSAGE k of run id from sip:fromUser@stoxDomain to
// sip:toUser@xmppDomain: the headers of a sipgo request, in its order.
func (u *rawUAC) request(run, k int, fromUser, toUser string, body []byte) []byte {
	b := make([]byte, 0, 320+len(body))
	b = append(b, "MESSAGE sip:"...)
	b = append(b, toUser...)
	b = append(b, '@')
	b = append(b, xmppDomain...)
	b = append(b, " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:"...)
	b = strconv.AppendInt(b, int64(u.port), 10)
	b = append(b, ";branch=z9hG4bK-r"...)
	b = strconv.AppendInt(b, int64(run), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, ";rport\r\nMax-Forwards: 70\r\nFrom: <sip:"...)
	b = append(b, fromUser...)
	b = append(b, '@')
	b = append(b, stoxDomain...)
	b = append(b, ">;tag=t"...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, "\r\nTo: <sip:"...)
	b = append(b, toUser...)
	b = append(b, '@')
	b = append(b, xmppDomain...)
	b = append(b, ">\r\nCall-ID: r"...)
	b = strconv.AppendInt(b, int64(run), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, "@bench\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// begin starts an open-loop run of n transactions to to.
func (u *rawUAC) begin(run, n int, to netip.AddrPort, giveUp time.Duration) *rawRun {
	r := &rawRun{id: run, to: to, txs: make([]rawTx, n), giveUp: min(giveUp, timerF)}
	u.mu.Lock()
	u.run = r
	u.mu.Unlock()
	return r
}

// beginClosed starts a closed-loop run of n transactions to to over pairs
// conversations; build(k, pair, seq) makes request k, message seq of
// conversation pair. It sends the first message of each conversation.
func (u *rawUAC) beginClosed(run, n, pairs int, to netip.AddrPort, giveUp time.Duration, build func(k, pair, seq int) []byte) *rawRun {
	r := u.begin(run, n, to, giveUp)
	r.closed, r.seq, r.build = true, make([]int, pairs), build
	for w := range min(pairs, n) {
		u.startNext(r, w)
	}
	return r
}

// startNext starts the next message of conversation w of a closed-loop run,
// if there is one left.
func (u *rawUAC) startNext(r *rawRun, w int) {
	u.mu.Lock()
	k := r.next
	if k >= len(r.txs) {
		u.mu.Unlock()
		return
	}
	r.next++
	seq := r.seq[w]
	r.seq[w]++
	u.mu.Unlock()
	u.send(r, k, w, r.build(k, w, seq))
}

// send writes transaction k, of conversation pair, for the first time.
func (u *rawUAC) send(r *rawRun, k, pair int, data []byte) {
	now := time.Now()
	u.mu.Lock()
	tx := &r.txs[k]
	tx.data, tx.sent, tx.due, tx.pair = data, now, now.Add(rawIntervals[0]), int32(pair)
	r.queues[0] = append(r.queues[0], k)
	u.mu.Unlock()
	r.started.Add(1)
	r.requests.Add(1)
	_, _ = u.conn.WriteToUDPAddrPort(data, r.to)
}

// retransmit resends what is due and gives up on what is too old, until
// every transaction of r has ended.
func (u *rawUAC) retransmit(r *rawRun) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	n := int64(len(r.txs))
	for range tick.C {
		now := time.Now()
		var out [][]byte
		var ended []int // conversations whose transaction was given up (closed loop)
		var moved [len(rawIntervals)][]int
		u.mu.Lock()
		for qi := range r.queues {
			q := r.queues[qi]
			i := 0
			for ; i < len(q); i++ {
				tx := &r.txs[q[i]]
				if tx.state != 0 {
					continue
				}
				if now.Sub(tx.sent) >= r.giveUp {
					tx.state = 2
					r.done.Add(1)
					if r.closed {
						ended = append(ended, int(tx.pair))
					}
					continue
				}
				if now.Before(tx.due) {
					break
				}
				out = append(out, tx.data)
				next := min(qi+1, len(rawIntervals)-1)
				tx.due = now.Add(rawIntervals[next])
				moved[next] = append(moved[next], q[i])
			}
			r.queues[qi] = q[i:]
		}
		for qi, m := range moved {
			r.queues[qi] = append(r.queues[qi], m...)
		}
		u.mu.Unlock()
		for _, d := range out {
			r.requests.Add(1)
			_, _ = u.conn.WriteToUDPAddrPort(d, r.to)
		}
		for _, w := range ended {
			u.startNext(r, w)
		}
		if r.done.Load() >= n {
			return
		}
	}
}

// stats is what the UAC saw of a run that has ended: final responses by
// code ("none": given up), how many came with Retry-After, the request to
// final response times, the datagrams written.
func (r *rawRun) stats() *SIPStats {
	s := &SIPStats{Codes: make(map[string]int)}
	var rtts []int64
	for i := range r.txs {
		tx := &r.txs[i]
		switch tx.state {
		case 1:
			s.Codes[strconv.Itoa(tx.code)]++
			rtts = append(rtts, int64(tx.rtt))
			if tx.retryAf {
				s.RetryAfter++
			}
		default:
			s.Codes["none"]++
		}
	}
	s.Requests = r.requests.Load()
	s.Retransmits = s.Requests - r.started.Load()
	p50, p99, _ := percentiles(rtts)
	s.P50, s.P99 = ms(p50), ms(p99)
	s.rtts = rtts
	return s
}

// read matches responses to the current run's transactions.
func (u *rawUAC) read() {
	defer close(u.done)
	buf := make([]byte, 65536)
	for {
		n, err := u.conn.Read(buf)
		if err != nil {
			return
		}
		d := buf[:n]
		if !bytes.HasPrefix(d, []byte("SIP/2.0 ")) || len(d) < 11 {
			continue
		}
		code, err := strconv.Atoi(string(d[8:11]))
		if err != nil || code < 200 {
			continue // provisional: see rawUAC
		}
		i := bytes.Index(d, []byte("branch=z9hG4bK-r"))
		if i < 0 {
			continue
		}
		rest := d[i+len("branch=z9hG4bK-r"):]
		dash := bytes.IndexByte(rest, '-')
		if dash < 0 {
			continue
		}
		run, err1 := strconv.Atoi(string(rest[:dash]))
		rest = rest[dash+1:]
		end := bytes.IndexAny(rest, ";\r\n ,")
		if end < 0 {
			continue
		}
		k, err2 := strconv.Atoi(string(rest[:end]))
		if err1 != nil || err2 != nil {
			continue
		}
		retryAfter := bytes.Contains(d, []byte("\r\nRetry-After:"))
		now := time.Now()
		next := -1
		u.mu.Lock()
		r := u.run
		if r != nil && r.id == run && k >= 0 && k < len(r.txs) && r.txs[k].state == 0 && r.txs[k].data != nil {
			tx := &r.txs[k]
			tx.state, tx.code, tx.retryAf, tx.rtt = 1, code, retryAfter, now.Sub(tx.sent)
			r.done.Add(1)
			if r.closed {
				next = int(tx.pair)
			}
		}
		u.mu.Unlock()
		if next >= 0 {
			u.startNext(r, next)
		}
	}
}
