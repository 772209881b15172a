package sipside

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestSequencerShuffled: tickets issued in arrival order; handler goroutines
// start in random order and after random delays; each lane's handler calls
// happen one at a time in arrival order.
func TestSequencerShuffled(t *testing.T) {
	checkLeaks(t)
	for round := range 20 {
		s := newSequencer(time.Second, time.Minute, 1024, 4096)
		const lanes, per = 5, 40
		type req struct {
			token string
			lane  int
			n     int
		}
		// Arrival order: lanes interleaved at random, each lane in order.
		rnd := rand.New(rand.NewPCG(uint64(round), 1))
		var reqs []req
		next := make([]int, lanes)
		for len(reqs) < lanes*per {
			l := rnd.IntN(lanes)
			if next[l] == per {
				continue
			}
			reqs = append(reqs, req{token: fmt.Sprintf("tx-%d-%d", l, next[l]), lane: l, n: next[l]})
			next[l]++
		}
		for _, r := range reqs {
			if !s.issued(r.token, fmt.Sprint("lane", r.lane), false) {
				t.Fatalf("no ticket for %s", r.token)
			}
		}
		// Handlers: start in a fully random order.
		order := rnd.Perm(len(reqs))
		var mu sync.Mutex
		got := make([][]int, lanes)
		inside := make([]int, lanes)
		var wg sync.WaitGroup
		for _, i := range order {
			r := reqs[i]
			delay := time.Duration(rnd.IntN(300)) * time.Microsecond
			wg.Go(func() {
				time.Sleep(delay)
				tk := s.claim(context.Background(), r.token)
				if tk == nil {
					t.Errorf("claim %s: no ticket", r.token)
					return
				}
				mu.Lock()
				inside[r.lane]++
				if inside[r.lane] != 1 {
					t.Errorf("lane %d: %d handlers at once", r.lane, inside[r.lane])
				}
				got[r.lane] = append(got[r.lane], r.n)
				mu.Unlock()
				time.Sleep(time.Duration(r.n%3) * 50 * time.Microsecond)
				mu.Lock()
				inside[r.lane]--
				mu.Unlock()
				s.release(tk)
			})
		}
		wg.Wait()
		for l := range lanes {
			for i, n := range got[l] {
				if n != i {
					t.Fatalf("round %d lane %d order %v", round, l, got[l])
				}
			}
		}
		if nl, q, d, u := s.stats(); nl != 0 || q != 0 || d != 0 || u != 0 {
			t.Errorf("stats lanes %d queued %d dropped %d unordered %d", nl, q, d, u)
		}
	}
}

// TestSequencerClaimBeforeIssue: the handler goroutine may run before the
// hook; claim waits for the ticket.
func TestSequencerClaimBeforeIssue(t *testing.T) {
	checkLeaks(t)
	s := newSequencer(time.Second, time.Minute, 16, 16)
	got := make(chan *ticket, 1)
	go func() { got <- s.claim(context.Background(), "a") }()
	time.Sleep(20 * time.Millisecond)
	s.issued("a", "k", false)
	select {
	case tk := <-got:
		if tk == nil {
			t.Fatal("no ticket")
		}
		s.release(tk)
	case <-time.After(2 * time.Second):
		t.Fatal("claim did not return")
	}
}

// TestSequencerOrphan: a ticket nobody claims holds its lane for wait at
// most; its late claimer goes on unordered at once.
func TestSequencerOrphan(t *testing.T) {
	checkLeaks(t)
	wait := 50 * time.Millisecond
	s := newSequencer(wait, time.Minute, 16, 16)
	s.issued("orphan", "k", true)
	s.issued("next", "k", true)
	start := time.Now()
	tk := s.claim(context.Background(), "next")
	if tk == nil {
		t.Fatal("no ticket")
	}
	if d := time.Since(start); d < wait || d > 20*wait {
		t.Errorf("waited %v", d)
	}
	s.release(tk)
	if _, _, dropped, _ := s.stats(); dropped != 1 {
		t.Errorf("dropped %d", dropped)
	}
	start = time.Now()
	if late := s.claim(context.Background(), "orphan"); late != nil {
		t.Error("late claimer of a dropped ticket got a turn")
	}
	if d := time.Since(start); d > wait/2 {
		t.Errorf("late claimer waited %v", d)
	}
	// A request without a ticket waits wait for the hook, then goes on.
	start = time.Now()
	if tk := s.claim(context.Background(), "never-issued"); tk != nil {
		t.Error("ticket from nowhere")
	}
	if d := time.Since(start); d < wait {
		t.Errorf("gave up after %v", d)
	}
}

// TestSequencerRetransmission: the same transaction key gets one ticket,
// while queued and after it was handled.
func TestSequencerRetransmission(t *testing.T) {
	s := newSequencer(time.Second, time.Minute, 16, 16)
	if !s.issued("tx1", "k", true) || s.issued("tx1", "k", true) {
		t.Fatal("queued retransmission got a ticket")
	}
	tk := s.claim(context.Background(), "tx1")
	s.release(tk)
	if s.issued("tx1", "k", true) {
		t.Error("late retransmission got a ticket")
	}
	if !s.issued("tx2", "k", true) {
		t.Error("new transaction got no ticket")
	}
}

// TestSequencerBounds: lanes and tickets are bounded and expire.
func TestSequencerBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newSequencer(time.Second, 10*time.Second, 2, 3)
	s.now = func() time.Time { return now }
	s.issued("a", "k1", true)
	s.issued("b", "k2", true)
	if s.issued("c", "k3", true) {
		t.Error("third lane accepted")
	}
	s.issued("d", "k1", true)
	if s.issued("e", "k1", true) {
		t.Error("fourth ticket accepted")
	}
	// Nobody claims: after wait the heads are dropped, after ttl the lanes
	// and the dropped tickets go.
	now = now.Add(2 * time.Second)
	s.mu.Lock()
	s.sweepLocked(now)
	s.mu.Unlock()
	now = now.Add(2 * time.Second)
	s.mu.Lock()
	s.sweepLocked(now)
	s.mu.Unlock()
	now = now.Add(20 * time.Second)
	s.mu.Lock()
	s.sweepLocked(now)
	nt := len(s.tickets)
	s.mu.Unlock()
	if lanes, queued, _, _ := s.stats(); lanes != 0 || queued != 0 || nt != 0 {
		t.Errorf("lanes %d queued %d tickets %d", lanes, queued, nt)
	}
	// While saturated, a claim without a ticket does not wait.
	s.issued("f", "k4", true)
	s.issued("g", "k5", true)
	if s.issued("h", "k6", true) {
		t.Fatal("third lane accepted")
	}
	start := time.Now()
	if s.claim(context.Background(), "h") != nil || time.Since(start) > 500*time.Millisecond {
		t.Error("claim waited while saturated")
	}
	for _, tok := range []string{"f", "g"} {
		s.release(s.claim(context.Background(), tok))
	}
	now = now.Add(time.Minute)
	s.mu.Lock()
	s.sweepLocked(now)
	s.mu.Unlock()
	// TCP lanes go as soon as they are empty.
	s.issued("t1", "tcp", false)
	s.release(s.claim(context.Background(), "t1"))
	if lanes, _, _, _ := s.stats(); lanes != 0 {
		t.Errorf("tcp lane kept")
	}
}

// TestSequencerCancel: a waiting claim returns nil when ctx ends and the
// lane moves on.
func TestSequencerCancel(t *testing.T) {
	checkLeaks(t)
	s := newSequencer(time.Second, time.Minute, 16, 16)
	s.issued("a", "k", false)
	s.issued("b", "k", false)
	s.issued("c", "k", false)
	ta := s.claim(context.Background(), "a")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *ticket)
	go func() { done <- s.claim(ctx, "b") }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if tk := <-done; tk != nil {
		t.Error("cancelled claim got a ticket")
	}
	s.release(ta)
	tc := s.claim(context.Background(), "c")
	if tc == nil {
		t.Fatal("c blocked")
	}
	s.release(tc)
}

// TestSequencerIdleSweep: what UDP lanes remember for retransmissions is
// forgotten ttl after the traffic stops, without a new request to trigger
// the sweep; close stops the sweep.
func TestSequencerIdleSweep(t *testing.T) {
	s := newSequencer(10*time.Millisecond, 50*time.Millisecond, 16, 16)
	defer s.close()
	if !s.issued("tx-1", "lane", true) {
		t.Fatal("no ticket")
	}
	s.release(s.claim(context.Background(), "tx-1"))
	if lanes, _, _, _ := s.stats(); lanes != 1 {
		t.Fatalf("%d lanes right after the request, want 1 (kept for retransmissions)", lanes)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		lanes, _, _, _ := s.stats()
		if lanes == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle lane never forgotten")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.close()
	s.mu.Lock()
	armed := s.idleSweep != nil
	s.mu.Unlock()
	if armed {
		t.Error("idle sweep still armed after close")
	}
}

// issued is issue's first result.
func (s *sequencer) issued(token, key string, udp bool) bool {
	ok, _ := s.issue(token, key, udp)
	return ok
}

// issue reports whether the new ticket heads its lane: the fast path runs
// the handler on the read loop only then (its claim cannot wait).
func TestSequencerIssueHead(t *testing.T) {
	s := newSequencer(time.Second, time.Minute, 16, 16)
	defer s.close()
	if ok, head := s.issue("a", "k", true); !ok || !head {
		t.Fatalf("first of its lane: issued %v, head %v", ok, head)
	}
	if ok, head := s.issue("b", "k", true); !ok || head {
		t.Fatalf("second of its lane: issued %v, head %v", ok, head)
	}
	if ok, head := s.issue("c", "other", true); !ok || !head {
		t.Fatalf("first of another lane: issued %v, head %v", ok, head)
	}
	s.release(s.claim(context.Background(), "a"))
	s.release(s.claim(context.Background(), "b"))
	if ok, head := s.issue("d", "k", true); !ok || !head {
		t.Fatalf("after the lane emptied: issued %v, head %v", ok, head)
	}
	if ok, _ := s.issue("a", "k", true); ok {
		t.Fatal("a retransmission got a ticket")
	}
}

// The shards keep each conversation's order, count every shard's turns,
// and a conversation waits only for its own turns.
func TestSeqShards(t *testing.T) {
	q := newSeqShards(time.Second, time.Minute, 1<<10, 1<<10)
	defer q.close()
	a, b := "conv-a", ""
	for i := 0; b == ""; i++ {
		if k := fmt.Sprintf("conv-%d", i); q.of(k) != q.of(a) {
			b = k
		}
	}
	for _, tok := range []string{"a1", "a2", "a3"} {
		if issued, head := q.issue(tok, a, true); !issued || head != (tok == "a1") {
			t.Fatalf("issue %s: issued %v head %v", tok, issued, head)
		}
	}
	if issued, head := q.issue("b1", b, true); !issued || !head {
		t.Fatalf("b1: issued %v head %v: another shard's turns held it back", issued, head)
	}
	if issued, _ := q.issue("a1", a, true); issued {
		t.Fatal("a retransmission got a second turn")
	}
	if !q.known("a2", a) || q.known("a2", b) || q.known("zz", a) {
		t.Fatal("known: wrong shard or lane")
	}
	if n := q.pending(); n != 4 {
		t.Fatalf("pending %d, want 4", n)
	}
	ctx := context.Background()
	t1 := q.claim(ctx, "a1", a)
	if t1 == nil {
		t.Fatal("a1: no ticket")
	}
	got := make(chan *ticket)
	go func() { got <- q.claim(ctx, "a2", a) }()
	select {
	case <-got:
		t.Fatal("a2 went before a1 ended")
	case <-time.After(50 * time.Millisecond):
	}
	if tb := q.claim(ctx, "b1", b); tb == nil {
		t.Fatal("b1: no ticket")
	} else {
		q.release(tb)
	}
	q.release(t1)
	t2 := <-got
	if t2 == nil {
		t.Fatal("a2: no ticket after a1 ended")
	}
	q.release(t2)
	q.discard("a3", a)
	if n := q.pending(); n != 0 {
		t.Fatalf("pending %d after every turn ended, want 0", n)
	}
	if lanes, queued, dropped, unordered := q.stats(); lanes != 2 || queued != 0 || dropped != 0 || unordered != 0 {
		t.Fatalf("stats: lanes %d queued %d dropped %d unordered %d", lanes, queued, dropped, unordered)
	}
}

// BenchmarkSequencerTurn: a request whose turn has come at once (the usual
// case under load: one transaction per conversation at a time) issues,
// claims and releases its turn.
func BenchmarkSequencerTurn(b *testing.B) {
	s := newSequencer(time.Second, time.Minute, 1<<16, 1<<16)
	defer s.close()
	ctx := context.Background()
	convs := make([]string, 1024)
	for i := range convs {
		convs[i] = fmt.Sprintf("conv%d", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tok := "t" + strconv.Itoa(i) // a token seen before is a retransmission
		s.issue(tok, convs[i%len(convs)], true)
		tk := s.claim(ctx, tok)
		if tk == nil {
			b.Fatal("no ticket")
		}
		s.release(tk)
	}
}
