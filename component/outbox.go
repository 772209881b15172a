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
	q         [][]byte
	down      time.Time // when the stream went away (zero while connected)
	limit     int
	maxOutage time.Duration
	now       func() time.Time
}

func newOutbox(limit int, maxOutage time.Duration, now func() time.Time) *outbox {
	return &outbox{limit: limit, maxOutage: maxOutage, now: now, down: now()}
}

// send writes b, or queues it while the stream is down. queued reports the
// latter. It fails with ErrQueueFull or ErrOutageTooLong.
func (o *outbox) send(b []byte) (queued bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w != nil && len(o.q) == 0 {
		if err := o.w(b); err == nil {
			return false, nil
		}
		// The stream broke under this write; whether the server got the
		// stanza is unknown, so it is queued and written again after the
		// reconnect (at-least-once rather than lost).
		o.w = nil
		o.down = o.now()
	}
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
	o.down = time.Time{}
	return flushed, nil
}

// detach marks the stream as gone.
func (o *outbox) detach() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w != nil {
		o.w = nil
		o.down = o.now()
	}
}

// stats reports the queue length and whether a stream is attached.
func (o *outbox) stats() (queued int, connected bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q), o.w != nil
}
