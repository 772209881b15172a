package sipside

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// sequencer restores arrival order per conversation.
//
// sipgo hands every received request to its handler on a new goroutine, so
// two MESSAGEs of one conversation can reach the handler in either order
// (LIBRARIES.md). The transport layer's OnMessage hooks, however, run
// synchronously on the read loop, in arrival order. The hook calls issue,
// which appends a ticket to the conversation's lane; the handler goroutine
// calls claim, which waits until its ticket is at the head of the lane, and
// release when the MessageHandler has returned, which lets the next ticket
// go.
//
// Failure modes are bounded:
//   - The hook may run just after the handler goroutine has started: claim
//     waits up to wait for the ticket to be issued.
//   - A ticket whose request never reaches the handler (a retransmission
//     the transaction layer absorbed, a request sipgo refused) would block
//     its lane: a head that nobody has claimed for wait is dropped, either
//     by a waiting follower or by the periodic sweep in issue.
//   - Tickets are keyed by the server transaction key (RFC 3261 §17.2.3:
//     branch, sent-by, method), not by the request: when a UDP
//     retransmission races the original, sipgo may call the handler with
//     the retransmitted copy. A key already queued, or seen recently in the
//     lane, is a retransmission and gets no second ticket.
//   - Lanes, tickets and remembered branches are bounded in number and
//     expire (ttl); beyond the bounds requests are handled unordered.
type sequencer struct {
	seed       maphash.Seed  // of the lanes' token hashes
	wait       time.Duration // longest time an unclaimed head may block its lane
	ttl        time.Duration // how long an idle UDP lane remembers branches
	maxLanes   int
	maxTickets int
	now        func() time.Time

	mu          sync.Mutex
	lanes       map[string]*lane
	tickets     map[string]*ticket // issued, not yet claimed (including dropped ones)
	waiters     map[string]chan struct{}
	queued      atomic.Int64 // tickets in lanes: issued and not yet released or dropped
	lastSweep   time.Time
	lastSweepNS atomic.Int64 // lastSweep, for pending's check without the lock
	// saturatedUntil: the bounds refused a ticket lately; a claim that
	// finds no ticket then goes on at once instead of waiting for one.
	saturatedUntil time.Time

	// idleSweep forgets what the lanes remember once traffic stops: the
	// sweep in issue only runs when requests come. Armed while there are
	// lanes or tickets; stopped by close.
	idleSweep *time.Timer
	closed    bool

	// counters, for tests and logs
	dropped   uint64
	unordered uint64
}

const recentBranches = 32

type lane struct {
	key       string
	queue     []*ticket
	recent    [recentBranches]string
	recentH   [recentBranches]uint64 // hashes of recent, compared first
	next      int
	udp       bool // the lane has seen a UDP request: keep it ttl for retransmissions
	idleSince time.Time
}

type ticket struct {
	seq       *sequencer // the shard that issued it
	lane      *lane
	ready     chan struct{} // closed when the ticket is the head of its lane
	headSince time.Time
	claimed   bool
	dropped   bool
	droppedAt time.Time
}

func newSequencer(wait, ttl time.Duration, maxLanes, maxTickets int) *sequencer {
	return &sequencer{
		seed:       maphash.MakeSeed(),
		wait:       wait,
		ttl:        ttl,
		maxLanes:   maxLanes,
		maxTickets: maxTickets,
		now:        time.Now,
		lanes:      make(map[string]*lane),
		tickets:    make(map[string]*ticket),
		waiters:    make(map[string]chan struct{}),
	}
}

// seen reports whether token is one of the lane's recent tokens. Tokens
// of one sender share long prefixes (branch magic cookie, sent-by), so
// their hashes are compared first.
func (l *lane) seen(token string, h uint64) bool {
	for i := range l.recentH {
		if l.recentH[i] == h && l.recent[i] == token {
			return true
		}
	}
	return false
}

func (l *lane) remember(token string, h uint64) {
	l.recent[l.next], l.recentH[l.next] = token, h
	l.next = (l.next + 1) % recentBranches
}

// issue gives the transaction token the next turn in the lane of key. It is
// called in arrival order. A token the lane has seen recently is a
// retransmission and gets no ticket. It reports whether a ticket was
// issued, and whether it is the head of its lane (its claim will not wait).
func (s *sequencer) issue(token, key string, udp bool) (issued, head bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.Sub(s.lastSweep) >= time.Second {
		s.sweepLocked(now)
	}
	ln := s.lanes[key]
	h := maphash.String(s.seed, token)
	if ln != nil && ln.seen(token, h) {
		return false, false
	}
	if _, dup := s.tickets[token]; dup {
		return false, false
	}
	if ln == nil && len(s.lanes) >= s.maxLanes && now.Sub(s.lastSweep) >= s.wait {
		s.sweepLocked(now)
	}
	if ln == nil && len(s.lanes) >= s.maxLanes || s.queued.Load() >= int64(s.maxTickets) || len(s.tickets) >= s.maxTickets {
		s.unordered++
		s.saturatedUntil = now.Add(s.wait)
		return false, false
	}
	if ln == nil {
		ln = &lane{key: key}
		s.lanes[key] = ln
	}
	ln.udp = ln.udp || udp
	ln.remember(token, h)
	t := &ticket{seq: s, lane: ln}
	ln.queue = append(ln.queue, t)
	s.queued.Add(1)
	if len(ln.queue) == 1 {
		t.headSince = now
		t.ready = closedReady // never closed again: only a ticket queued behind another is promoted
	} else {
		t.ready = make(chan struct{})
	}
	s.tickets[token] = t
	if w := s.waiters[token]; w != nil {
		close(w)
		delete(s.waiters, token)
	}
	s.armIdleSweepLocked()
	return true, len(ln.queue) == 1
}

// armIdleSweepLocked makes sure a sweep runs ttl from now even if no
// request comes.
func (s *sequencer) armIdleSweepLocked() {
	if s.idleSweep != nil || s.closed {
		return
	}
	s.idleSweep = time.AfterFunc(s.ttl+s.wait, s.sweepIdle)
}

func (s *sequencer) sweepIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idleSweep = nil
	if s.closed {
		return
	}
	s.sweepLocked(s.now())
	if len(s.lanes) > 0 || len(s.tickets) > 0 {
		s.armIdleSweepLocked()
	}
}

// close stops the idle sweep.
func (s *sequencer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.idleSweep != nil {
		s.idleSweep.Stop()
		s.idleSweep = nil
	}
}

// claim waits for token's turn and returns its ticket, to be passed to
// release. It returns nil when the request has no ticket (it got none, its
// ticket was dropped, or ctx ended): the caller then goes on unordered.
func (s *sequencer) claim(ctx context.Context, token string) *ticket {
	s.mu.Lock()
	t := s.tickets[token]
	if t == nil && s.now().Before(s.saturatedUntil) {
		s.mu.Unlock()
		return nil
	}
	if t == nil {
		// The hook may not have run yet for this request.
		w := make(chan struct{})
		s.waiters[token] = w
		s.mu.Unlock()
		timer := time.NewTimer(s.wait)
		select {
		case <-w:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		s.mu.Lock()
		if s.waiters[token] == w {
			delete(s.waiters, token)
		}
		t = s.tickets[token]
		if t == nil {
			s.unordered++
			s.mu.Unlock()
			return nil
		}
	}
	delete(s.tickets, token)
	if t.dropped {
		s.unordered++
		s.mu.Unlock()
		return nil
	}
	t.claimed = true
	s.mu.Unlock()

	select {
	case <-t.ready: // its turn has come already: no timer (most requests)
		return t
	default:
	}
	timer := time.NewTimer(s.wait)
	defer timer.Stop()
	for {
		select {
		case <-t.ready:
			return t
		case <-timer.C:
			s.expireHead(t.lane)
			timer.Reset(s.wait)
		case <-ctx.Done():
			s.remove(t)
			return nil
		}
	}
}

// pending is the number of requests that have a turn and have not ended it:
// read from the socket and not yet answered. It counts the requests whose
// goroutines wait to be scheduled too, which WithMaxIncoming's count of
// running handlers does not: under overload that is where they wait.
//
// Turns can be left behind by requests answered without the handler (shed
// for overload before their turn was issued); they go when their lane's
// head expires, which a sweep finds. Requests arriving trigger sweeps, but
// the overload check runs before them: pending sweeps itself when
// something is queued and the last sweep is a second old, so that a burst
// does not leave stox "overloaded" for the next request.
func (s *sequencer) pending() int64 {
	if s.queued.Load() == 0 {
		return 0
	}
	return s.pendingAt(s.now())
}

// pendingAt is pending with the clock read by the caller (seqShards reads
// it once for all its shards: pending runs for every incoming MESSAGE).
func (s *sequencer) pendingAt(now time.Time) int64 {
	if s.queued.Load() > 0 && now.UnixNano()-s.lastSweepNS.Load() >= int64(time.Second) {
		s.mu.Lock()
		if now := s.now(); now.Sub(s.lastSweep) >= time.Second {
			s.sweepLocked(now)
		}
		s.mu.Unlock()
	}
	return s.queued.Load()
}

// known reports whether token has, or had recently, a turn in the lane of
// key: a request with that token is a retransmission. While the bounds
// are saturated nothing can be ruled out and every token is known.
func (s *sequencer) known(token, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tickets[token]; ok || s.now().Before(s.saturatedUntil) {
		return true
	}
	ln := s.lanes[key]
	return ln != nil && ln.seen(token, maphash.String(s.seed, token))
}

// discard gives up token's turn without waiting for it (the request is
// answered without the handler). A ticket not issued yet never will be.
func (s *sequencer) discard(token string) {
	s.mu.Lock()
	t := s.tickets[token]
	if t == nil && len(s.tickets) < s.maxTickets {
		// Not issued yet: mark the token, so that the transport hook,
		// coming later, issues no turn that nobody would claim (which
		// would hold the overload bound until its lane's head expired).
		s.tickets[token] = &ticket{dropped: true, droppedAt: s.now()}
		s.mu.Unlock()
		return
	}
	delete(s.tickets, token)
	s.mu.Unlock()
	if t != nil && !t.dropped {
		s.remove(t)
	}
}

// release ends t's turn and lets the next ticket of its lane go.
func (s *sequencer) release(t *ticket) {
	if t == nil {
		return
	}
	s.remove(t)
}

// remove takes t out of its lane, promoting the next ticket when t was the
// head.
func (s *sequencer) remove(t *ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ln := t.lane
	for i, q := range ln.queue {
		if q != t {
			continue
		}
		copy(ln.queue[i:], ln.queue[i+1:])
		ln.queue[len(ln.queue)-1] = nil
		ln.queue = ln.queue[:len(ln.queue)-1]
		s.queued.Add(-1)
		if i == 0 {
			s.promoteLocked(ln, s.now())
		}
		break
	}
}

// closedReady is the ready channel of a ticket that is the head of its
// lane from the start (most of them): one closed channel for all.
var closedReady = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// promoteLocked makes the first queued ticket the head, or marks the lane
// idle.
func (s *sequencer) promoteLocked(ln *lane, now time.Time) {
	if len(ln.queue) == 0 {
		ln.idleSince = now
		if !ln.udp && s.lanes[ln.key] == ln {
			// No retransmissions on reliable transports: nothing to remember.
			delete(s.lanes, ln.key)
		}
		return
	}
	h := ln.queue[0]
	h.headSince = now
	close(h.ready)
}

// expireHead drops the head of ln if nobody has claimed it for wait.
func (s *sequencer) expireHead(ln *lane) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireHeadLocked(ln, s.now())
}

func (s *sequencer) expireHeadLocked(ln *lane, now time.Time) {
	if len(ln.queue) == 0 {
		return
	}
	h := ln.queue[0]
	if h.claimed || now.Sub(h.headSince) < s.wait {
		return
	}
	copy(ln.queue, ln.queue[1:])
	ln.queue[len(ln.queue)-1] = nil
	ln.queue = ln.queue[:len(ln.queue)-1]
	s.queued.Add(-1)
	h.dropped = true
	h.droppedAt = now
	s.dropped++
	s.promoteLocked(ln, now)
}

// sweepLocked drops expired heads, forgets idle lanes and dropped tickets.
func (s *sequencer) sweepLocked(now time.Time) {
	s.lastSweep = now
	s.lastSweepNS.Store(now.UnixNano())
	for key, ln := range s.lanes {
		s.expireHeadLocked(ln, now)
		if len(ln.queue) == 0 && now.Sub(ln.idleSince) >= s.ttl {
			delete(s.lanes, key)
		}
	}
	for tok, t := range s.tickets {
		if t.dropped && now.Sub(t.droppedAt) >= s.ttl {
			delete(s.tickets, tok)
		}
	}
	// Maps keep their size after a burst; start empty ones afresh.
	if len(s.lanes) == 0 {
		s.lanes = make(map[string]*lane)
	}
	if len(s.tickets) == 0 {
		s.tickets = make(map[string]*ticket)
	}
}

// stats returns the number of lanes, queued tickets, dropped heads and
// requests handled unordered.
func (s *sequencer) stats() (lanes, queued int, dropped, unordered uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lanes), int(s.queued.Load()), s.dropped, s.unordered
}

// seqShards splits the conversations over sequencers of their own, by
// conversation key, each with its own lock. The read loop issues every
// turn, and hundreds of handler goroutines claim and release them: with
// one lock, a handler that the OS preempted while holding it stopped the
// read loop too, and under overload (`make bench`, 3x the sustainable
// rate) the loop spent its time queued on that lock while datagrams
// overflowed the socket.
type seqShards struct {
	seed   maphash.Seed
	shards []*sequencer
}

// seqShardCount is a power of two.
const seqShardCount = 16

// newSeqShards is newSequencer's bounds spread over the shards.
func newSeqShards(wait, ttl time.Duration, maxLanes, maxTickets int) *seqShards {
	q := &seqShards{seed: maphash.MakeSeed(), shards: make([]*sequencer, seqShardCount)}
	per := func(n int) int { return max(1, (n+seqShardCount-1)/seqShardCount) }
	for i := range q.shards {
		q.shards[i] = newSequencer(wait, ttl, per(maxLanes), per(maxTickets))
	}
	return q
}

func (q *seqShards) of(key string) *sequencer {
	return q.shards[maphash.String(q.seed, key)&(seqShardCount-1)]
}

// issue is sequencer.issue in key's shard.
func (q *seqShards) issue(token, key string, udp bool) (issued, head bool) {
	return q.of(key).issue(token, key, udp)
}

// claim is sequencer.claim in key's shard: key is the one token's turn was
// issued with.
func (q *seqShards) claim(ctx context.Context, token, key string) *ticket {
	return q.of(key).claim(ctx, token)
}

// release is sequencer.release in the shard that issued t.
func (q *seqShards) release(t *ticket) {
	if t != nil {
		t.seq.release(t)
	}
}

// known is sequencer.known in key's shard.
func (q *seqShards) known(token, key string) bool { return q.of(key).known(token, key) }

// discard is sequencer.discard in key's shard.
func (q *seqShards) discard(token, key string) { q.of(key).discard(token) }

// pending is the sum of the shards' pending.
func (q *seqShards) pending() int64 {
	var now time.Time
	var n int64
	for _, s := range q.shards {
		if s.queued.Load() == 0 {
			continue
		}
		if now.IsZero() {
			now = s.now()
		}
		n += s.pendingAt(now)
	}
	return n
}

func (q *seqShards) close() {
	for _, s := range q.shards {
		s.close()
	}
}

// stats sums the shards' stats.
func (q *seqShards) stats() (lanes, queued int, dropped, unordered uint64) {
	for _, s := range q.shards {
		l, qu, d, un := s.stats()
		lanes, queued, dropped, unordered = lanes+l, queued+qu, dropped+d, unordered+un
	}
	return lanes, queued, dropped, unordered
}
