package component

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// outbox is the single path from the gateway to the XMPP server. While the
// stream is up a stanza is written at once; while it is down stanzas wait in a
// bounded FIFO and are written, in order, as soon as the stream is back
// (DESIGN.md "XMPP server down"). Nothing accepted into the outbox is dropped:
// when it is full, or the outage has lasted longer than maxOutage, send refuses
// the stanza and the caller reports the refusal to its sender.
//
// On a stream (attachStream) a stanza is written without waiting for the
// socket, after the sender yields once so that the stanzas of the goroutines
// already runnable leave in the same write (gatherLocked): what the kernel
// does not take at once, and every stanza sent after it, goes to pend, which
// one flusher goroutine writes out, several stanzas per system call, while
// it lasts. Senders wait only while pend holds pendLimit bytes or more (the
// server reads too slowly); sendNow never waits, for callers that must not
// block (sipside's read loop).
type outbox struct {
	mu   sync.Mutex
	cond sync.Cond // pend has room (Signal, passed on by senders), or the flusher or stream ended (Broadcast)

	w   func([]byte) error        // nil while disconnected
	try func([]byte) (int, error) // writes what the socket takes now; nil: w, under mu
	wv  func([][]byte) error      // the flusher's write of several stanzas
	// yield, when set, lets the goroutines already runnable go first
	// before a send writes (gather); runtime.Gosched on a stream.
	yield     func()
	gather    []byte // the gathering sender's write buffer (under mu)
	gathering bool   // a sender yields before writing pend (gatherLocked)

	q         [][]byte
	pend      []pending // accepted while the flusher runs, oldest first
	pendBytes int
	flushing  bool
	// free is w != nil && !flushing && len(q) == 0: a stanza sent now is
	// written at once (idle reads it without the lock).
	free atomic.Bool

	down      time.Time // when the stream went away (zero while connected)
	limit     int
	maxOutage time.Duration
	now       func() time.Time
}

// pending is a stanza of pend; off bytes of it are written already.
type pending struct {
	b   []byte
	off int
}

// pendLimit is how much pend holds before senders other than sendNow wait
// for the flusher: about as much as a socket buffer, so that a server that
// reads slowly slows the gateway down instead of growing pend.
const pendLimit = 256 << 10

func newOutbox(limit int, maxOutage time.Duration, now func() time.Time) *outbox {
	o := &outbox{limit: limit, maxOutage: maxOutage, now: now, down: now()}
	o.cond.L = &o.mu
	return o
}

// send writes b, or queues it while the stream is down. queued reports the
// latter. It fails with ErrQueueFull or ErrOutageTooLong. While the server
// is behind (pend full), it waits.
func (o *outbox) send(b []byte) (queued bool, err error) { return o.put(b, true) }

// sendNow is send without the wait: it never blocks on the server.
func (o *outbox) sendNow(b []byte) (queued bool, err error) { return o.put(b, false) }

// idle reports whether a stanza sent now would be written at once.
func (o *outbox) idle() bool { return o.free.Load() }

func (o *outbox) put(b []byte, wait bool) (queued bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for wait && o.w != nil && o.flushing && o.pendBytes >= pendLimit {
		o.cond.Wait()
	}
	if o.w != nil && o.flushing {
		o.pend = append(o.pend, pending{b: b})
		o.pendBytes += len(b)
		if o.gathering && len(o.pend) >= gatherMax {
			o.writeGatheredLocked() // see gatherLocked
		}
		if o.pendBytes < pendLimit {
			// Room left: the next waiting sender goes on. Senders are
			// woken one at a time (the flusher wakes the first), not all
			// at once: hundreds of them at once would crowd out the
			// goroutines that read.
			o.cond.Signal()
		}
		return false, nil
	}
	if o.w != nil && len(o.q) == 0 {
		if wait && o.try != nil && o.yield != nil {
			o.gatherLocked(b)
			return false, nil
		}
		if o.try == nil {
			if err := o.w(b); err == nil {
				return false, nil
			}
		} else if n, err := o.try(b); err == nil {
			if n < len(b) {
				o.pend = append(o.pend, pending{b: b, off: n})
				o.pendBytes += len(b) - n
				o.flushing = true
				o.setFree()
				go o.flush(o.wv)
			}
			return false, nil
		}
		// The stream broke under this write; whether the server got the
		// stanza is unknown, so it is queued and written again after the
		// reconnect (at-least-once rather than lost).
		o.lostLocked()
	}
	if len(o.q) >= o.limit {
		return false, ErrQueueFull
	}
	if o.w == nil && o.now().Sub(o.down) > o.maxOutage {
		return false, ErrOutageTooLong
	}
	o.q = append(o.q, b)
	o.setFree()
	return true, nil
}

// gatherKeep is the largest gather buffer the outbox keeps between writes.
const gatherKeep = 64 << 10

// gatherMax is how many stanzas a gathering sender waits for at most: the
// sender that brings pend to it writes them itself. Without a bound, after
// a stall of the host (hundreds of workers runnable at once) the first
// stanza waited for all of them to be handled: a few milliseconds.
const gatherMax = 16

// gatherLocked writes b and the stanzas other senders add while it yields,
// in one write that does not wait. Under load the goroutines that yield
// lets run first are mostly senders too (sipside's workers, which the read
// loop starts several at a time): one system call and one TCP segment then
// carry what would have taken one each. What the socket does not take goes
// to the flusher, as in put.
func (o *outbox) gatherLocked(b []byte) {
	o.pend = append(o.pend, pending{b: b})
	o.pendBytes += len(b)
	o.flushing, o.gathering = true, true
	o.setFree()
	o.mu.Unlock()
	o.yield()
	o.mu.Lock()
	if !o.gathering {
		// A sender's write, or a failed one, ended the gathering
		// (writeGatheredLocked); pend is the flusher's now, or queued.
		return
	}
	o.gathering = false
	if o.writeGatheredLocked() {
		o.endFlushLocked()
	}
}

// writeGatheredLocked writes pend in one write that does not wait. It
// reports whether all of it went out; otherwise the gathering is over:
// the stream is gone or the write failed (pend queued for the next stream,
// flush ended) or the socket took only part (the rest is the flusher's).
func (o *outbox) writeGatheredLocked() (all bool) {
	batch := o.pend
	o.pend, o.pendBytes = nil, 0
	if len(batch) == 0 {
		return true
	}
	if o.w == nil { // the stream went away meanwhile
		o.pend = batch
		o.gathering = false
		o.endFlushLocked()
		return false
	}
	buf := batch[0].b[batch[0].off:]
	if len(batch) > 1 {
		buf = o.gather[:0]
		for _, p := range batch {
			buf = append(buf, p.b[p.off:]...)
		}
		if o.gather = buf[:0]; cap(buf) > gatherKeep {
			o.gather = nil // a burst of large stanzas: not kept for ever
		}
	}
	n, err := o.try(buf)
	if err != nil {
		// As in put: whether the server got them is unknown; they are
		// written again after the reconnect.
		o.requeueLocked(batch)
		o.lostLocked()
		o.gathering = false
		o.endFlushLocked()
		return false
	}
	for i := range batch {
		l := len(batch[i].b) - batch[i].off
		if n >= l {
			n -= l
			batch[i] = pending{}
			continue
		}
		batch[i].off += n
		o.pend = batch[i:]
		for _, p := range o.pend {
			o.pendBytes += len(p.b) - p.off
		}
		o.gathering = false
		go o.flush(o.wv) // flushing stays set: the flusher ends it
		return false
	}
	return true
}

// endFlushLocked ends a flush: what is left in pend is queued for the next
// stream, and the senders waiting for room go on.
func (o *outbox) endFlushLocked() {
	o.requeueLocked(nil)
	o.flushing = false
	o.setFree()
	o.cond.Broadcast()
}

// flush writes pend out until it is empty or the stream is gone; then what
// it could not write goes to the head of the queue, for the next stream.
func (o *outbox) flush(wv func([][]byte) error) {
	var bufs [][]byte
	for {
		o.mu.Lock()
		if len(o.pend) == 0 || o.w == nil {
			o.endFlushLocked()
			o.mu.Unlock()
			return
		}
		batch := o.pend
		o.pend, o.pendBytes = nil, 0
		o.cond.Signal() // pend has room: the first waiting sender goes on (see put)
		o.mu.Unlock()

		bufs = bufs[:0]
		for _, p := range batch {
			bufs = append(bufs, p.b[p.off:])
		}
		if err := wv(bufs); err != nil {
			o.mu.Lock()
			o.requeueLocked(batch)
			if o.w != nil {
				o.lostLocked()
			}
			o.endFlushLocked()
			o.mu.Unlock()
			return
		}
		clear(bufs)
	}
}

// requeueLocked puts batch (whose writing failed) and then pend, whole
// stanzas, at the head of the queue: they were accepted before anything
// queued since.
func (o *outbox) requeueLocked(batch []pending) {
	if len(batch)+len(o.pend) == 0 {
		return
	}
	head := make([][]byte, 0, len(batch)+len(o.pend)+len(o.q))
	for _, p := range batch {
		head = append(head, p.b)
	}
	for _, p := range o.pend {
		head = append(head, p.b)
	}
	o.q = append(head, o.q...)
	o.pend, o.pendBytes = nil, 0
}

func (o *outbox) lostLocked() {
	o.w = nil
	o.down = o.now()
	o.setFree()
	o.cond.Broadcast()
}

func (o *outbox) setFree() { o.free.Store(o.w != nil && !o.flushing && len(o.q) == 0) }

// attach makes w the writer and flushes the queue through it, in order. It
// returns how many stanzas were flushed; if a write fails, the rest stays
// queued and the outbox is detached again.
func (o *outbox) attach(w func([]byte) error) (flushed int, err error) {
	return o.attachWriters(w, nil, nil)
}

// attachStream is attach with s's writes that do not wait (see outbox).
func (o *outbox) attachStream(s *stream) (flushed int, err error) {
	flushed, err = o.attachWriters(s.write, s.tryWrite, s.writeBuffers)
	o.mu.Lock()
	o.yield = runtime.Gosched
	o.mu.Unlock()
	return flushed, err
}

func (o *outbox) attachWriters(w func([]byte) error, try func([]byte) (int, error), wv func([][]byte) error) (flushed int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	// A flusher of the previous stream ends at its first failed write (the
	// gateway closes a stream before it reconnects) or when pend is
	// empty; what it did not write is queued by then.
	for o.flushing {
		o.cond.Wait()
	}
	for len(o.q) > 0 {
		if err := w(o.q[0]); err != nil {
			return flushed, err
		}
		o.q[0] = nil
		o.q = o.q[1:]
		flushed++
	}
	o.q = nil
	o.w, o.try, o.wv = w, try, wv
	o.down = time.Time{}
	o.setFree()
	return flushed, nil
}

// wait returns once no flusher runs (after the stream was closed, its
// write fails and it ends): the outbox owns the flusher and the gateway
// waits for it when it stops.
func (o *outbox) wait() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.flushing {
		o.cond.Wait()
	}
}

// detach marks the stream as gone.
func (o *outbox) detach() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w != nil {
		o.lostLocked()
	}
}

// stats reports the queue length and whether a stream is attached.
func (o *outbox) stats() (queued int, connected bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q), o.w != nil
}
