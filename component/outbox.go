package component

import (
	"sync"
	"time"
)

// outbox is the single path from the gateway to the XMPP server. While the
// stream is up a stanza is written at once; while it is down stanzas wait in a
// bounded FIFO and are written, in order, as soon as the stream is back
// (DESIGN.md "XMPP server down"). Nothing accepted into the outbox is dropped:
// when it is full, or the outage has lasted longer than maxOutage, send refuses
// the stanza and the caller reports the refusal to its sender.
type outbox struct {
	mu        sync.Mutex
	w         func([]byte) error // nil while disconnected
	gen       uint64             // changes with every attach and detach
	q         [][]byte
	down      time.Time // when the stream went away (zero while connected)
	limit     int
	maxOutage time.Duration
	now       func() time.Time

	// Group commit: while one sender writes, the others add their stanzas
	// to next and wait; the writer then writes all of them at once. Fewer,
	// larger writes cost stox and the XMPP server (one read, one parse
	// loop) less than one system call per stanza.
	writing bool
	next    *wbatch
}

// wbatch is stanzas waiting to be written together, each with its outcome.
type wbatch struct {
	items []*pending
	size  int
	turn  chan struct{} // one token: the member that takes it writes the group
	done  chan struct{} // closed once every item has its outcome
}

type pending struct {
	b      []byte
	queued bool
	err    error
}

func newOutbox(limit int, maxOutage time.Duration, now func() time.Time) *outbox {
	return &outbox{limit: limit, maxOutage: maxOutage, now: now, down: now()}
}

// send writes b, or queues it while the stream is down. queued reports the
// latter. It fails with ErrQueueFull or ErrOutageTooLong.
//
// Senders that arrive while a write is in progress form the next group;
// when the write ends, one of them writes the whole group and hands on to
// the group formed meanwhile. Each sender waits for one write at most
// beyond its own group's, and order is arrival order.
func (o *outbox) send(b []byte) (queued bool, err error) {
	p := &pending{b: b}
	o.mu.Lock()
	if o.w == nil || len(o.q) > 0 {
		defer o.mu.Unlock()
		return o.enqueueLocked(b)
	}
	if !o.writing {
		o.writing = true
		o.runLocked(&wbatch{items: []*pending{p}, size: len(b), done: make(chan struct{})})
		o.mu.Unlock()
		return p.queued, p.err
	}
	if o.next == nil {
		o.next = &wbatch{turn: make(chan struct{}, 1), done: make(chan struct{})}
	}
	bt := o.next
	bt.items = append(bt.items, p)
	bt.size += len(b)
	o.mu.Unlock()
	select {
	case <-bt.done:
	case <-bt.turn:
		o.mu.Lock()
		o.runLocked(bt)
		o.mu.Unlock()
	}
	return p.queued, p.err
}

// runLocked writes bt, then gives the turn to the group that formed
// meanwhile, or ends the writing.
func (o *outbox) runLocked(bt *wbatch) {
	o.writeLocked(bt)
	if nb := o.next; nb != nil {
		o.next = nil
		nb.turn <- struct{}{} // o.writing stays true: nb's writer goes on
		return
	}
	o.writing = false
}

// writeLocked writes one group (o.mu held, released during the write).
// When the stream is down, or stanzas queued during an outage must go
// first, the group is queued instead; a failed write breaks the stream and
// queues the group (whether the server got it is unknown: at-least-once
// rather than lost).
func (o *outbox) writeLocked(bt *wbatch) {
	defer close(bt.done)
	if o.w == nil || len(o.q) > 0 {
		o.queueLocked(bt)
		return
	}
	w, gen := o.w, o.gen
	buf := bt.items[0].b
	if len(bt.items) > 1 {
		buf = make([]byte, 0, bt.size)
		for _, it := range bt.items {
			buf = append(buf, it.b...)
		}
	}
	o.mu.Unlock()
	err := w(buf)
	o.mu.Lock()
	if err == nil {
		return
	}
	if o.gen == gen {
		o.w = nil
		o.gen++
		o.down = o.now()
	}
	o.queueLocked(bt)
}

func (o *outbox) queueLocked(bt *wbatch) {
	for _, it := range bt.items {
		it.queued, it.err = o.enqueueLocked(it.b)
	}
}

// enqueueLocked queues b while the stream is down.
func (o *outbox) enqueueLocked(b []byte) (queued bool, err error) {
	if len(o.q) >= o.limit {
		return false, ErrQueueFull
	}
	if o.w == nil && o.now().Sub(o.down) > o.maxOutage {
		return false, ErrOutageTooLong
	}
	o.q = append(o.q, b)
	return true, nil
}

// attach makes w the writer and flushes the queue through it, in order. It
// returns how many stanzas were flushed; if a write fails, the rest stays
// queued and the outbox is detached again.
func (o *outbox) attach(w func([]byte) error) (flushed int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.q) > 0 {
		if err := w(o.q[0]); err != nil {
			return flushed, err
		}
		o.q[0] = nil
		o.q = o.q[1:]
		flushed++
	}
	o.q = nil
	o.w = w
	o.gen++
	o.down = time.Time{}
	return flushed, nil
}

// detach marks the stream as gone.
func (o *outbox) detach() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w != nil {
		o.w = nil
		o.gen++
		o.down = o.now()
	}
}

// stats reports the queue length and whether a stream is attached.
func (o *outbox) stats() (queued int, connected bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q), o.w != nil
}
