package component

import (
	"context"
	"sync"
	"testing"

	"github.com/stox-gw/stox/sipside"
)

// queuingSIP makes the fake a sipQueuer, as sipside.UA is: QueueMessage
// holds a send back until FlushMessages.
type queuingSIP struct {
	*fakeSIP
	mu      sync.Mutex
	held    []func()
	queued  int
	flushes int
}

func (q *queuingSIP) QueueMessage(ctx context.Context, m *sipside.OutgoingMessage, done func(sipside.Result, error)) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.held = append(q.held, func() { q.fakeSIP.StartMessage(ctx, m, done) })
	q.queued++
	return true
}

func (q *queuingSIP) FlushMessages() {
	q.mu.Lock()
	held := q.held
	q.held = nil
	q.flushes++
	q.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// A session flushes what it queued: every message leaves without a flush
// from elsewhere, in order and one at a time per destination (RFC 3428 s8).
func TestSessionFlushesQueuedMessages(t *testing.T) {
	h := newHarness(t)
	q := &queuingSIP{fakeSIP: h.sip}
	h.g.queue = q
	orderAndOneInFlight(t, h)
	h.none()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued != 200 || len(q.held) != 0 || q.flushes == 0 {
		t.Fatalf("queued %d, still held %d, flushes %d", q.queued, len(q.held), q.flushes)
	}
}
