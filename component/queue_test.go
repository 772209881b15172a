package component

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

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
	h.sip.auto = func(*sipside.OutgoingMessage) (sipside.Result, error) {
		time.Sleep(time.Millisecond)
		return sipside.Result{Code: 200}, nil
	}
	const n = 50
	for i := range n {
		h.in(fmt.Sprintf(`<message from='juliet@example.com/r' to='bob@sip.example.com' id='m%d'><body>%d</body></message>`, i, i))
		h.in(fmt.Sprintf(`<message from='juliet@example.com/r' to='carol@sip.example.com' id='c%d'><body>%d</body></message>`, i, i))
	}
	next := map[string]int{}
	for range 2 * n {
		m := h.call().msg
		if got := string(m.Body); got != fmt.Sprint(next[m.RequestURI]) {
			t.Fatalf("to %s: body %s, want %d", m.RequestURI, got, next[m.RequestURI])
		}
		next[m.RequestURI]++
	}
	h.none()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued != 2*n || len(q.held) != 0 || q.flushes == 0 {
		t.Fatalf("queued %d, still held %d, flushes %d", q.queued, len(q.held), q.flushes)
	}
	h.sip.mu.Lock()
	defer h.sip.mu.Unlock()
	if h.sip.maxSeen != 1 {
		t.Fatalf("up to %d MESSAGEs in flight to one destination, want 1", h.sip.maxSeen)
	}
}
