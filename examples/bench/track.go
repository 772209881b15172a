//go:build unix

package main

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Every load message carries "run id pair seq sent" in its body: the run it
// belongs to, its index in the run (0..n-1), its conversation (a sender and
// receiver pair), its sequence number in that conversation and the time it
// was sent (ns since the bench started, on the monotonic clock). Receivers
// hand bodies to the run's tracker, which counts losses, duplicates, order
// violations per conversation and the latency from send to receipt.

var epoch = time.Now()

func nowNS() int64 { return int64(time.Since(epoch)) }

// appendBody writes the body of message id of run.
func appendBody(b []byte, run, id, pair, seq int) []byte {
	b = strconv.AppendInt(b, int64(run), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(pair), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, nowNS(), 10)
	return b
}

type bodyFields struct {
	run, id, pair, seq int
	sent               int64
}

func parseBody(b []byte) (f bodyFields, ok bool) {
	var v [5]int64
	for i := range v {
		b = bytes.TrimLeft(b, " ")
		j := bytes.IndexByte(b, ' ')
		if j < 0 {
			j = len(b)
		}
		if j == 0 {
			return f, false
		}
		var n int64
		for _, c := range b[:j] {
			if c < '0' || c > '9' {
				return f, false
			}
			n = n*10 + int64(c-'0')
		}
		v[i] = n
		b = b[j:]
	}
	return bodyFields{run: int(v[0]), id: int(v[1]), pair: int(v[2]), seq: int(v[3]), sent: v[4]}, true
}

// tracker records what one run's receivers got.
type tracker struct {
	n     int
	pairs int

	mu       sync.Mutex
	seen     []bool
	last     []int // last seq per pair, -1 before the first
	got      int
	dups     int
	order    int
	lat      []int64
	first    int64 // first receipt (ns)
	lastRecv int64
	done     chan struct{}
	onRecv   func(f bodyFields) // called once per distinct message (flow control)
	received atomic.Int64
}

func newTracker(n, pairs int) *tracker {
	t := &tracker{n: n, pairs: pairs, seen: make([]bool, n), last: make([]int, pairs),
		lat: make([]int64, 0, n), done: make(chan struct{})}
	for i := range t.last {
		t.last[i] = -1
	}
	if n == 0 {
		close(t.done)
	}
	return t
}

func (t *tracker) record(f bodyFields, at int64) {
	t.mu.Lock()
	if f.id < 0 || f.id >= t.n || f.pair < 0 || f.pair >= t.pairs {
		t.mu.Unlock()
		return
	}
	if t.seen[f.id] {
		t.dups++
		t.mu.Unlock()
		return
	}
	t.seen[f.id] = true
	if f.seq <= t.last[f.pair] {
		t.order++
	} else {
		t.last[f.pair] = f.seq
	}
	if t.got == 0 {
		t.first = at
	}
	t.got++
	t.lastRecv = at
	t.lat = append(t.lat, at-f.sent)
	complete := t.got == t.n
	t.mu.Unlock()
	t.received.Add(1)
	if t.onRecv != nil {
		t.onRecv(f)
	}
	if complete {
		close(t.done)
	}
}

// wait returns when every message arrived, or when nothing arrived for
// idle, or at deadline.
func (t *tracker) wait(idle, deadline time.Duration) bool {
	end := time.NewTimer(deadline)
	defer end.Stop()
	tick := time.NewTicker(idle / 4)
	defer tick.Stop()
	last, lastChange := t.received.Load(), time.Now()
	for {
		select {
		case <-t.done:
			return true
		case <-end.C:
			return false
		case <-tick.C:
			if n := t.received.Load(); n != last {
				last, lastChange = n, time.Now()
			} else if time.Since(lastChange) >= idle {
				return false
			}
		}
	}
}

type result struct {
	Sent, Got, Lost, Dups, Order int
	P50, P99, Max                time.Duration
}

func (t *tracker) result(sent int) result {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := result{Sent: sent, Got: t.got, Lost: sent - t.got, Dups: t.dups, Order: t.order}
	r.P50, r.P99, r.Max = percentiles(t.lat)
	return r
}

func percentiles(lat []int64) (p50, p99, mx time.Duration) {
	if len(lat) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.5) - 1
		i = min(max(i, 0), len(s)-1)
		return time.Duration(s[i])
	}
	return at(0.50), at(0.99), time.Duration(s[len(s)-1])
}

// runs maps a run number to its tracker, for receivers that see messages of
// every run (late arrivals go to their own run).
type runTable struct {
	mu sync.RWMutex
	m  map[int]*tracker
}

func (r *runTable) add(run int, t *tracker) {
	r.mu.Lock()
	r.m[run] = t
	r.mu.Unlock()
}

func (r *runTable) deliver(body []byte) bool {
	f, ok := parseBody(body)
	if !ok {
		return false
	}
	at := nowNS()
	r.mu.RLock()
	t := r.m[f.run]
	r.mu.RUnlock()
	if t == nil {
		return false
	}
	t.record(f, at)
	return true
}
