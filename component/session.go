package component

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stox-gw/stox/sipside"
)

// registry holds the live Sessions, one per XMPP user (bare JID).
type registry struct {
	g      *Gateway
	mu     sync.Mutex
	m      map[string]*Session
	closed bool
	wg     sync.WaitGroup
}

func newRegistry(g *Gateway) *registry {
	return &registry{g: g, m: make(map[string]*Session)}
}

// submit hands a message to the user's session, creating it if needed. It
// never blocks: a full session refuses with ErrQueueFull.
func (r *registry) submit(bare string, o *outgoing) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	s := r.m[bare]
	if s == nil {
		s = newSession(r.g, bare)
		r.m[bare] = s
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			s.run()
		}()
	}
	return s.offer(o)
}

// leave removes an idle session; it fails if work arrived meanwhile.
func (r *registry) leave(s *Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.inbox) > 0 {
		return false
	}
	delete(r.m, s.bare)
	return true
}

// count reports the number of live sessions.
func (r *registry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// closeAll stops every session: each gets grace to finish what is in flight;
// then what is still queued or in flight is answered with an error.
func (r *registry) closeAll(grace time.Duration) {
	r.mu.Lock()
	r.closed = true
	ss := make([]*Session, 0, len(r.m))
	for _, s := range r.m {
		ss = append(ss, s)
	}
	r.mu.Unlock()
	for _, s := range ss {
		s.stop(grace)
	}
	r.wg.Wait()
}

// Session is one XMPP user's state on the gateway. All of it changes on the
// session's own task loop; XMPP and SIP callbacks only enqueue (STYLE.md).
// Messages to one SIP destination leave one at a time, in arrival order
// (RFC 3428 s8: no second MESSAGE to the same URI while one is pending).
type Session struct {
	g    *Gateway
	bare string
	log  *slog.Logger

	// The XMPP read loop appends to inbox and pokes notify; it never blocks.
	// The SIP side does the same with ended (post).
	// waiting counts what is in inbox or queued (not yet in flight): the one
	// bound of SessionQueue.
	mu      sync.Mutex
	inbox   []*outgoing
	ended   []ended // sends started with startDeliver that have ended
	notify  chan struct{}
	waiting atomic.Int64

	done chan sendResult    // from delivery goroutines
	quit chan time.Duration // stop request with its grace

	dests   map[string]*destQueue
	pending int  // queued in dests, not yet in flight (loop-owned)
	busy    int  // in flight
	started bool // startDeliver held a request back (flush)
	ctx     context.Context
	cancel  context.CancelFunc
	sends   sync.WaitGroup
}

type destQueue struct {
	q    []*outgoing
	busy bool
}

type sendResult struct{ dest string }

// ended is the outcome of a send started with startDeliver.
type ended struct {
	dest string
	o    *outgoing
	res  sipside.Result
	err  error
}

func newSession(g *Gateway, bare string) *Session {
	ctx, cancel := context.WithCancel(g.ctx)
	return &Session{
		g:      g,
		bare:   bare,
		log:    g.log.With("user", bare),
		notify: make(chan struct{}, 1),
		done:   make(chan sendResult, 16),
		quit:   make(chan time.Duration, 1),
		dests:  make(map[string]*destQueue),
		ctx:    ctx,
		cancel: cancel,
	}
}

// offer puts a message in the inbox; a full session refuses it.
func (s *Session) offer(o *outgoing) error {
	if s.waiting.Add(1) > int64(s.g.cfg.SessionQueue) {
		s.waiting.Add(-1)
		return ErrQueueFull
	}
	s.mu.Lock()
	s.inbox = append(s.inbox, o)
	s.mu.Unlock()
	s.wake()
	return nil
}

// wake makes the loop drain, without blocking.
func (s *Session) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// drain handles the sends that have ended (see post) and moves the inbox
// into the destination queues, in arrival order.
func (s *Session) drain() {
	s.mu.Lock()
	in, done := s.inbox, s.ended
	s.inbox, s.ended = nil, nil
	s.mu.Unlock()
	for _, e := range done {
		s.g.delivered(e.o, e.res, e.err)
		s.sends.Done()
		s.finished(sendResult{dest: e.dest})
	}
	for _, o := range in {
		s.enqueue(o)
	}
}

// post hands the loop the outcome of a send started with startDeliver. It
// runs on the SIP side's goroutine and never blocks.
func (s *Session) post(e ended) {
	s.mu.Lock()
	s.ended = append(s.ended, e)
	s.mu.Unlock()
	s.wake()
}

func (s *Session) stop(grace time.Duration) {
	select {
	case s.quit <- grace:
	default:
	}
}

func (s *Session) run() {
	idle := time.NewTimer(s.g.cfg.SessionIdle)
	defer idle.Stop()
	defer s.cancel()
	for {
		select {
		case <-s.notify:
			s.drain()
		case r := <-s.done:
			s.finished(r)
		case grace := <-s.quit:
			s.shutdown(grace)
			return
		case <-idle.C:
			if s.pending == 0 && s.busy == 0 && s.g.sessions.leave(s) {
				return
			}
		}
		s.flush()
		if s.pending == 0 && s.busy == 0 {
			idle.Reset(s.g.cfg.SessionIdle)
		}
	}
}

// flush sends the requests the loop started since the last flush
// (Gateway.startDeliver), together.
func (s *Session) flush() {
	if s.started {
		s.started = false
		s.g.flushStarted()
	}
}

func (s *Session) enqueue(o *outgoing) {
	dest := o.sip.RequestURI
	d := s.dests[dest]
	if d == nil {
		d = &destQueue{}
		s.dests[dest] = d
	}
	d.q = append(d.q, o)
	s.pending++
	s.kick(dest, d)
}

// finished records the end of a send and starts the next one to that
// destination.
func (s *Session) finished(r sendResult) {
	s.busy--
	d := s.dests[r.dest]
	d.busy = false
	s.kick(r.dest, d)
}

// kick starts the next send toward dest if none is in flight.
func (s *Session) kick(dest string, d *destQueue) {
	if d.busy {
		return
	}
	if len(d.q) == 0 {
		delete(s.dests, dest)
		return
	}
	o := d.q[0]
	d.q[0] = nil
	d.q = d.q[1:]
	d.busy = true
	s.pending--
	s.waiting.Add(-1)
	s.busy++
	s.sends.Add(1)
	if s.g.startDeliver(s.ctx, o, func(res sipside.Result, err error) {
		s.post(ended{dest: dest, o: o, res: res, err: err})
	}) {
		s.started = true
		return
	}
	s.g.senders.run(func() {
		defer s.sends.Done()
		s.g.deliver(s.ctx, o)
		s.done <- sendResult{dest: dest} // the loop drains done until all sends ended
	})
}

// shutdown waits up to grace for messages to leave, then cancels what is in
// flight (answered by deliver with an error) and refuses what is queued.
func (s *Session) shutdown(grace time.Duration) {
	// The registry is closed before quit is sent: what is in the inbox now
	// is all that will ever come.
	s.drain()
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for s.pending+s.busy > 0 {
		s.flush()
		select {
		case r := <-s.done:
			s.finished(r)
		case <-s.notify:
			s.drain() // sends that ended; the inbox stays empty
		case <-deadline.C:
			s.cancel()
			for dest, d := range s.dests {
				for _, o := range d.q {
					s.g.count.xsRefused.Add(1)
					if !o.quiet {
						s.g.replyError(o.stanza, stanzaErrorFor(ErrClosed))
					}
				}
				s.pending -= len(d.q)
				s.waiting.Add(-int64(len(d.q)))
				d.q = nil
				if !d.busy {
					delete(s.dests, dest)
				}
			}
			for s.busy > 0 {
				select {
				case <-s.done:
					s.busy--
				case <-s.notify:
					s.mu.Lock()
					done := s.ended
					s.ended = nil
					s.mu.Unlock()
					for _, e := range done {
						s.g.delivered(e.o, e.res, e.err) // answers the cancelled send
						s.sends.Done()
						s.busy--
					}
				}
			}
			s.sends.Wait()
			return
		}
	}
	s.sends.Wait()
}
