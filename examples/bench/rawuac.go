//go:build unix

package main

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// rawUAC is a minimal UDP UAC for the overload steps: requests built as
// bytes, responses matched by the Via branch, and the non-INVITE client
// transaction's retransmissions (RFC 3261 s17.1.2.2: Timer E from T1 =
// 500 ms doubling to T2 = 4 s, Timer F) kept in FIFO queues, one per
// interval. It costs a few microseconds per MESSAGE where sipgo's client
// costs about 40: on 2 cores, a sipgo UAC offering twice what stox can
// take uses more CPU than stox itself, and the test would measure the load
// generator running out of CPU rather than stox under overload.
type rawUAC struct {
	conn *net.UDPConn
	port int

	mu  sync.Mutex
	run *rawRun
}

// rawRun is one batch of requests.
type rawRun struct {
	id     int
	txs    []rawTx
	queues [4][]int // by retransmission interval 0.5, 1, 2, 4 s: indexes into txs
	giveUp time.Duration

	done     atomic.Int64 // transactions ended (final response or given up)
	requests atomic.Int64 // datagrams written, retransmissions included
	finished chan struct{}
}

type rawTx struct {
	data    []byte
	sent    time.Time
	due     time.Time // next retransmission
	state   uint8     // 0 pending, 1 answered, 2 given up
	code    int
	retryAf bool
	rtt     time.Duration
}

var rawIntervals = [4]time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

func startRawUAC(port int) (*rawUAC, error) {
	c, err := listenUDP(port)
	if err != nil {
		return nil, err
	}
	u := &rawUAC{conn: c, port: port}
	go u.read()
	return u, nil
}

func (u *rawUAC) close() { _ = u.conn.Close() }

// request builds MESSAGE k of run id.
func (u *rawUAC) request(run, k int, fromUser, toUser string, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(400 + len(body))
	b.WriteString("MESSAGE sip:" + toUser + "@" + xmppDomain + " SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP 127.0.0.1:" + strconv.Itoa(u.port) + ";branch=z9hG4bK-r" + strconv.Itoa(run) + "-" + strconv.Itoa(k) + ";rport\r\n")
	b.WriteString("Max-Forwards: 70\r\n")
	b.WriteString("From: <sip:" + fromUser + "@" + stoxDomain + ">;tag=t" + strconv.Itoa(k) + "\r\n")
	b.WriteString("To: <sip:" + toUser + "@" + xmppDomain + ">\r\n")
	b.WriteString("Call-ID: r" + strconv.Itoa(run) + "-" + strconv.Itoa(k) + "@bench\r\n")
	b.WriteString("CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

// begin starts a run of n transactions.
func (u *rawUAC) begin(run, n int, giveUp time.Duration) *rawRun {
	r := &rawRun{id: run, txs: make([]rawTx, n), giveUp: giveUp, finished: make(chan struct{})}
	u.mu.Lock()
	u.run = r
	u.mu.Unlock()
	return r
}

// send writes transaction k for the first time.
func (u *rawUAC) send(r *rawRun, k int, data []byte, to *net.UDPAddr) {
	now := time.Now()
	u.mu.Lock()
	tx := &r.txs[k]
	tx.data, tx.sent, tx.due = data, now, now.Add(rawIntervals[0])
	r.queues[0] = append(r.queues[0], k)
	u.mu.Unlock()
	r.requests.Add(1)
	_, _ = u.conn.WriteToUDP(data, to)
}

// retransmit resends what is due and gives up on what is too old, until
// every transaction of r has ended.
func (u *rawUAC) retransmit(r *rawRun, to *net.UDPAddr, n int) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		now := time.Now()
		var out [][]byte
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
			_, _ = u.conn.WriteToUDP(d, to)
		}
		if int(r.done.Load()) >= n {
			return
		}
	}
}

// read matches responses to the current run's transactions.
func (u *rawUAC) read() {
	buf := make([]byte, 65536)
	for {
		n, _, err := u.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		d := buf[:n]
		if !bytes.HasPrefix(d, []byte("SIP/2.0 ")) || len(d) < 11 {
			continue
		}
		code, err := strconv.Atoi(string(d[8:11]))
		if err != nil || code < 200 {
			continue // provisional: stox sends none for MESSAGE
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
		u.mu.Lock()
		r := u.run
		if r != nil && r.id == run && k >= 0 && k < len(r.txs) && r.txs[k].state == 0 && r.txs[k].data != nil {
			tx := &r.txs[k]
			tx.state, tx.code, tx.retryAf, tx.rtt = 1, code, retryAfter, now.Sub(tx.sent)
			r.done.Add(1)
		}
		u.mu.Unlock()
	}
}
