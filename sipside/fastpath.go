package sipside

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// fastPath carries page-mode MESSAGEs over UDP, both ways, without sipgo's
// parser, message types, transaction layer and per-transaction goroutines
// and timers. It runs its own non-INVITE transactions (RFC 3261 §17.1.2,
// §17.2.2) on the UDP listener that sipgo also reads, inside the udpGuard:
//
//   - Incoming: a MESSAGE that readRequest accepts (wire.go) gets a server
//     transaction in srv, keyed by branch and sent-by (§17.2.3), a turn in
//     its conversation (sequencer), and the handler runs on the read loop
//     itself when that cannot block (WithInlineHandler; its turn has come,
//     and the loop is not behind), else on a worker; its final response is
//     written straight to the socket.
//     Retransmissions are absorbed here: nothing while the handler runs,
//     the final response again after it (kept 64*T1, Timer J, as the
//     fields it was made from, not as bytes). Everything readRequest
//     declines (and every other method) goes to sipgo as before, which
//     refuses what is wrong (400, 403, 416, 420, 483, ...) and logs it.
//   - Outgoing: SendMessage (and StartMessage, which does not wait) over
//     UDP to an IP address, when the request fits in a datagram, writes it
//     itself and registers a client transaction in cli, keyed by branch.
//     One goroutine (timers), running only while transactions are open,
//     retransmits them (Timer E, from T1 doubling to T2, T2 after a
//     provisional response) and ends them at Timer F or at Close. The read
//     loop ends the transaction a response matches, and its finish
//     function hands the outcome to the sender; an unknown response goes
//     on to sipgo, which ignores it (IM-15).
//
// In `make bench` sipgo's path cost about 80 us of CPU per X->S message
// and 110 us per S->X message, most of it in allocation, timers and
// goroutine hand-offs around two syscalls.
type fastPath struct {
	u       *UA
	pc      *net.UDPConn
	tagSeed maphash.Seed // for toTag

	// srv holds the server transactions, split by key over shards with
	// locks of their own: the read loop looks up every request, and the
	// workers complete them (see seqShards for why one lock stalled the
	// loop under overload).
	srv        [srvShardCount]srvShard
	sweepArmed atomic.Bool // sweeper is set (read without mu by complete)

	mu      sync.Mutex
	sweeper *time.Timer // forgets completed server transactions once traffic stops
	cli     map[string]*fastClientTx
	ticking bool // the timers goroutine runs
	closed  bool // no sweeper is armed any more

	// held: requests QueueMessage held back for FlushMessages, sent
	// several to a system call where the OS has sendmmsg; elsewhere it is
	// nil and each request leaves at once. (Combining the final responses
	// that workers write the same way measured no cheaper in `make bench`:
	// 46-51 us per S->X message against 44-48 in two A/B runs; nor with
	// the flusher yielding first so that the workers already runnable
	// join its batch, 44.3-44.8 against 45.0-47.7: the kernel's work per
	// datagram, not the system call, is the cost.)
	held *combiner
}

// maxFastServerTx bounds the server transactions the fast path keeps: at
// 64*T1 = 32 s each, about 30,000 MESSAGEs a second. Beyond it requests go
// to sipgo.
const maxFastServerTx = 1 << 20

// srvShardCount is a power of two.
const srvShardCount = 16

type srvShard struct {
	mu     sync.Mutex
	m      map[string]*fastServerTx
	expiry []srvExpiry // completed server transactions, oldest first, from head on
	head   int
}

// sweepLocked forgets the server transactions whose Timer J has fired.
// Expired entries are skipped, and the slice compacted only once they are
// half of it: the sweep costs what it forgets, not what is kept.
func (sh *srvShard) sweepLocked(now int64) {
	for sh.head < len(sh.expiry) && sh.expiry[sh.head].at <= now {
		delete(sh.m, sh.expiry[sh.head].key)
		sh.expiry[sh.head] = srvExpiry{}
		sh.head++
	}
	if sh.head == len(sh.expiry) {
		sh.expiry, sh.head = sh.expiry[:0], 0
	} else if sh.head > len(sh.expiry)/2 {
		n := copy(sh.expiry, sh.expiry[sh.head:])
		clear(sh.expiry[n:])
		sh.expiry, sh.head = sh.expiry[:n], 0
	}
}

func (f *fastPath) shard(key string) *srvShard {
	return &f.srv[maphash.String(f.tagSeed, key)&(srvShardCount-1)]
}

// fastServerTx is kept for 64*T1 per request, tens of thousands at a time
// under load: it holds only what the final response is made from. The To
// tag is derived from the key (toTag), not stored.
type fastServerTx struct {
	completed bool
	code      int
	reason    string
	extra     [][2]string
}

type srvExpiry struct {
	key string
	at  int64 // unix nanoseconds
}

type fastClientTx struct {
	data     []byte
	dst      netip.AddrPort
	interval time.Duration // Timer E's next value
	next     time.Time     // next retransmission
	deadline time.Time     // Timer F, or the caller's sooner deadline
	started  time.Time
	finish   func(Result, error)
	stop     func() bool // the context's AfterFunc, or nil
}

type fastOutcome struct {
	res Result
	err error
}

func newFastPath(u *UA, pc *net.UDPConn) *fastPath {
	f := &fastPath{
		u:       u,
		pc:      pc,
		tagSeed: maphash.MakeSeed(),
		cli:     make(map[string]*fastClientTx),
	}
	for i := range f.srv {
		f.srv[i].m = make(map[string]*fastServerTx)
	}
	f.held = newCombiner(pc, func(d outDatagram, err error) {
		f.end(d.branch, Result{}, fmt.Errorf("%w: udp %s: %w", ErrTransport, d.dst, err))
	})
	return f
}

// hold queues a request that start registered for flushRequests, or
// reports false when there is no batched sending.
func (f *fastPath) hold(branch string, data []byte, dst netip.AddrPort) bool {
	return f.held.add(outDatagram{branch: branch, data: data, dst: dst})
}

// flushRequests sends the held requests.
func (f *fastPath) flushRequests() { f.held.flush() }

// handle takes a datagram from the read loop (after the guard's checks). It
// reports whether the fast path consumed it. caughtUp: the read loop is not
// behind (udpGuard.ReadFrom), so it may run the handler itself. out, when
// not nil, sends the responses the loop writes after the datagrams it read
// with this one (udpGuard.batch).
func (f *fastPath) handle(data []byte, src netip.AddrPort, caughtUp bool, out *batchConn) bool {
	switch {
	case bytes.HasPrefix(data, []byte("SIP/2.0 ")):
		return f.response(data)
	case bytes.HasPrefix(data, []byte("MESSAGE ")):
		return f.request(data, src, caughtUp, out)
	}
	return false
}

// readWaited is how long a read must have waited to count as caught up: a
// read that finds a datagram queued returns in a few microseconds; one
// that parks the goroutine until a datagram arrives takes longer.
const readWaited = 20 * time.Microsecond

// readBacklog is how many reads in a row must find a datagram waiting
// before the read loop stops handling MESSAGEs itself.
const readBacklog = 4

// request serves a MESSAGE, or declines it.
func (f *fastPath) request(data []byte, src netip.AddrPort, caughtUp bool, out *batchConn) bool {
	u := f.u
	if !src.IsValid() || u.cfg.handler == nil {
		return false
	}
	if !u.trusted(src.Addr()) {
		return false // 403 and its log line on the usual path
	}
	req, ok := readRequest(string(data))
	if !ok {
		return false
	}
	// RFC 3261 §18.2.2 with RFC 3581: the source address, and the source
	// port when rport was asked for, else the sent-by port.
	dst := src
	if !req.topVia.rport {
		port := req.topVia.port
		if port == 0 {
			port = 5060
		}
		dst = netip.AddrPortFrom(src.Addr(), uint16(port))
	}
	key := req.topVia.branch + "\x00" + req.topVia.sentBy
	sh := f.shard(key)
	sh.mu.Lock()
	if tx := sh.m[key]; tx != nil {
		done := *tx
		sh.mu.Unlock()
		if done.completed {
			f.write(&req, src, dst, key, done.code, done.reason, done.extra, out)
		}
		return true // a retransmission (§17.2.2): absorbed
	}
	if len(sh.m) >= maxFastServerTx/srvShardCount {
		sh.mu.Unlock()
		return false
	}
	sh.m[key] = &fastServerTx{}
	sh.mu.Unlock()

	admitted := !u.overloaded() && u.enter()
	if admitted && u.incomingBusy.Add(1) > int64(u.cfg.maxIncoming) {
		u.incomingBusy.Add(-1)
		u.leave()
		admitted = false
	}
	if !admitted {
		u.noteShed(src)
		f.complete(key, &req, src, dst, 503, reasonPhrase(503), [][2]string{{"Retry-After", strconv.Itoa(OverloadRetryAfter)}}, out)
		return true
	}
	u.fastIn.Add(1)
	conv := wireOrderKey(&req)
	issued, head := u.seq.issue(key, conv, true)
	handle := func(ctx context.Context, out *batchConn) {
		defer u.leave()
		defer u.incomingBusy.Add(-1)
		m := incomingFromWire(&req, src, u.cfg.maxBody)
		code, reason, extra := u.finalReply(m, u.dispatch(ctx, key, conv, m))
		if u.log.Enabled(ctx, slog.LevelDebug) { // the arguments alone allocate
			u.log.Debug("sip message answered", "source", m.Source, "call_id", m.CallID, "code", code)
		}
		f.complete(key, &req, src, dst, code, reason, extra, out)
	}
	// On the read loop only when nothing can make the handler wait (its
	// turn has come, so claim returns at once, and the handler says it
	// would not block: WithInlineHandler), and when the loop is not behind:
	// with datagrams queued, workers handle them while the loop reads on.
	if caughtUp && issued && head && u.cfg.inlineReady != nil && u.cfg.inlineReady() {
		u.fastInline.Add(1)
		handle(u.readLoopCtx, out)
		return true
	}
	u.workers.submit(func() { handle(u.ctx, nil) })
	return true
}

// complete records the final response of a server transaction, sends it and
// starts its Timer J. out: as for handle (nil off the read loop).
func (f *fastPath) complete(key string, req *wireRequest, src, dst netip.AddrPort, code int, reason string, extra [][2]string, out *batchConn) {
	now := time.Now().UnixNano()
	sh := f.shard(key)
	sh.mu.Lock()
	tx := sh.m[key]
	if tx == nil {
		tx = &fastServerTx{}
		sh.m[key] = tx
	}
	tx.completed, tx.code, tx.reason, tx.extra = true, code, reason, extra
	sh.expiry = append(sh.expiry, srvExpiry{key: key, at: now + int64(64*f.u.cfg.callT1)})
	sh.sweepLocked(now)
	sh.mu.Unlock()
	if !f.sweepArmed.Load() {
		f.mu.Lock()
		if f.sweeper == nil && !f.closed {
			f.sweeper = time.AfterFunc(64*f.u.cfg.callT1+time.Second, f.idleSweep)
		}
		f.sweepArmed.Store(true)
		f.mu.Unlock()
	}
	f.write(req, src, dst, key, code, reason, extra, out)
}

// close stops the sweeper (UA.Close).
func (f *fastPath) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.sweeper != nil {
		f.sweeper.Stop()
		f.sweeper = nil
	}
	f.sweepArmed.Store(true) // nothing arms it again
}

// idleSweep runs the sweep when no request comes to run it, until nothing
// is left to forget.
func (f *fastPath) idleSweep() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.sweeper == nil {
		return
	}
	// A complete from now on arms the sweeper again if this sweep ends
	// it: it finds sweepArmed false, and waits for mu. One that found it
	// true has appended before this store, so the scan below sees it.
	f.sweepArmed.Store(false)
	now := time.Now().UnixNano()
	next := int64(-1) // the earliest Timer J still to fire
	for i := range f.srv {
		sh := &f.srv[i]
		sh.mu.Lock()
		sh.sweepLocked(now)
		if sh.head < len(sh.expiry) {
			if at := sh.expiry[sh.head].at; next < 0 || at < next {
				next = at
			}
		} else {
			sh.expiry, sh.head = nil, 0 // give back the peak's array
			if len(sh.m) == 0 {
				sh.m = make(map[string]*fastServerTx) // and buckets
			}
		}
		sh.mu.Unlock()
	}
	if next < 0 {
		f.sweeper = nil
		return
	}
	f.sweepArmed.Store(true)
	f.sweeper.Reset(time.Duration(max(next-now, 0)) + time.Second)
}

// write sends a response to req, the request of the server transaction
// key; out, when not nil, sends it with the read loop's next batch.
func (f *fastPath) write(req *wireRequest, src, dst netip.AddrPort, key string, code int, reason string, extra [][2]string, out *batchConn) {
	if out != nil {
		out.queueBuffer(appendResponse(out.buffer(), req, src.Addr().String(), int(src.Port()), code, reason, f.toTag(key), f.u.uaString, extra), dst)
		return
	}
	buf := appendResponse(make([]byte, 0, 512), req, src.Addr().String(), int(src.Port()), code, reason, f.toTag(key), f.u.uaString, extra)
	if _, err := f.pc.WriteToUDPAddrPort(buf, dst); err != nil {
		f.u.log.Debug("sip respond failed", "code", code, "dest", dst, "error", err)
	}
}

// toTag is the To tag of the responses of the server transaction key: the
// same for every response to it (retransmissions included) without being
// stored, and unguessable from outside (a keyed hash; RFC 3261 §19.3 wants
// 32 random bits at least).
func (f *fastPath) toTag(key string) string {
	h := maphash.String(f.tagSeed, key)
	return strconv.FormatUint(h, 36)
}

// incomingFromWire is what UA.incoming makes of the same request on the
// usual path.
func incomingFromWire(r *wireRequest, src netip.AddrPort, maxBody int) *IncomingMessage {
	m := &IncomingMessage{
		RequestURI:      r.ruri,
		From:            r.fromAddr.uri,
		To:              r.toAddr.uri,
		FromDisplay:     unquoteDisplay(r.fromAddr.display),
		CallID:          r.callID,
		Subject:         r.subject,
		ContentLanguage: r.clang,
		ContentType:     r.ctype,
		Source:          src,
		Transport:       "udp",
		TransactionID:   r.topVia.branch,
		BodySize:        len(r.body),
	}
	if len(r.body) > maxBody {
		m.TooLarge = true
	} else if len(r.body) > 0 {
		m.Body = []byte(r.body)
	}
	return m
}

// wireOrderKey is orderKey of the same request on the usual path.
func wireOrderKey(r *wireRequest) string {
	ruser, rhost, _ := uriParts(r.ruri)
	return orderKeyOf(r.fromAddr.user, r.fromAddr.host, ruser, rhost)
}

// response hands a response to its client transaction. It reports whether
// one was waiting for it.
func (f *fastPath) response(data []byte) bool {
	res, ok := readResponse(string(data))
	if !ok || res.cseqMethod != "MESSAGE" {
		return false
	}
	f.mu.Lock()
	tx := f.cli[res.branch]
	if tx == nil {
		f.mu.Unlock()
		return false
	}
	if res.code < 200 {
		// Proceeding (§17.1.2.2): retransmit every T2 from now on.
		tx.interval = f.u.cfg.callT2
		tx.next = time.Now().Add(tx.interval)
		f.mu.Unlock()
		return true
	}
	delete(f.cli, res.branch)
	f.mu.Unlock()
	tx.complete(resultOfWire(f.u.parser, data, &res), nil)
	return true
}

// resultOfWire is the Result of a final response that readResponse read
// from data. The Contact of a redirect becomes the XMPP redirect's target:
// it is read as the usual path reads it (with sipgo's parser; redirects are
// rare).
func resultOfWire(p *sip.Parser, data []byte, res *wireResponse) Result {
	if res.code >= 300 && res.code < 400 {
		if m, err := p.ParseSIP(data); err == nil {
			if r, ok := m.(*sip.Response); ok {
				return resultOf(r)
			}
		}
	}
	return Result{Code: res.code, Reason: res.reason}
}

// start registers a client transaction for a MESSAGE already written to
// data, to dst, and sends it, or holds it for flushRequests (held). finish
// is called exactly once with the final response or the failure, from the
// read loop, the timers goroutine, a context's AfterFunc, a flusher or
// this call: it must not block.
func (f *fastPath) start(ctx context.Context, branch string, data []byte, dst netip.AddrPort, deadline time.Time, held bool, finish func(Result, error)) {
	u := f.u
	now := time.Now()
	tx := &fastClientTx{
		data:     data,
		dst:      dst,
		interval: u.cfg.callT1,
		next:     now.Add(u.cfg.callT1),
		deadline: now.Add(u.cfg.txTimeout),
		started:  now,
		finish:   finish,
	}
	if !deadline.IsZero() && deadline.Before(tx.deadline) {
		tx.deadline = deadline
	}
	if u.log.Enabled(ctx, slog.LevelDebug) {
		u.log.Debug("sip request", "data", string(data))
	}
	ctxEnd := func() { f.end(branch, Result{}, u.ctxErr(ctx, "waiting for a final response")) }
	if ctx.Done() != nil {
		tx.stop = context.AfterFunc(ctx, ctxEnd) // set before others can see tx
	}
	f.mu.Lock()
	f.cli[branch] = tx
	if !f.ticking {
		f.ticking = true
		u.wg.Add(1) // the caller holds one: Close has not begun waiting
		go f.timers()
	}
	f.mu.Unlock()
	if ctx.Err() != nil {
		ctxEnd() // the AfterFunc may have run before tx was in the map
		return
	}
	if held && f.hold(branch, data, dst) {
		return
	}
	if _, err := f.pc.WriteToUDPAddrPort(data, dst); err != nil {
		f.end(branch, Result{}, fmt.Errorf("%w: udp %s: %w", ErrTransport, dst, err))
	}
}

// end finishes the client transaction of branch, unless it has ended
// already.
func (f *fastPath) end(branch string, res Result, err error) {
	f.mu.Lock()
	tx := f.cli[branch]
	delete(f.cli, branch)
	f.mu.Unlock()
	if tx != nil {
		tx.complete(res, err)
	}
}

// complete runs once per transaction, after it has left the map.
func (tx *fastClientTx) complete(res Result, err error) {
	if tx.stop != nil {
		tx.stop()
	}
	tx.finish(res, err)
}

// send is start that waits for the outcome.
func (f *fastPath) send(ctx context.Context, branch string, data []byte, dst netip.AddrPort, deadline time.Time) (Result, error) {
	done := make(chan fastOutcome, 1)
	f.start(ctx, branch, data, dst, deadline, false, func(res Result, err error) {
		done <- fastOutcome{res: res, err: err}
	})
	o := <-done
	return o.res, o.err
}

// timers retransmits and times out the open client transactions. It runs
// while there are any, ticking at T1/4.
func (f *fastPath) timers() {
	defer f.u.wg.Done()
	tick := time.NewTicker(f.u.cfg.callT1 / 4)
	defer tick.Stop()
	var resend, expired []*fastClientTx
	for {
		select {
		case <-tick.C:
			f.flushRequests() // held requests nobody flushed (QueueMessage)
		case <-f.u.ctx.Done():
			// Close: every open transaction ends with ErrClosed.
			f.mu.Lock()
			f.ticking = false
			open := f.cli
			f.cli = make(map[string]*fastClientTx)
			f.mu.Unlock()
			for _, tx := range open {
				tx.complete(Result{}, ErrClosed)
			}
			return
		}
		now := time.Now()
		resend, expired = resend[:0], expired[:0]
		f.mu.Lock()
		if len(f.cli) == 0 {
			f.ticking = false
			f.cli = make(map[string]*fastClientTx) // give back the peak's buckets
			f.mu.Unlock()
			return
		}
		for branch, tx := range f.cli {
			switch {
			case !now.Before(tx.deadline):
				delete(f.cli, branch)
				expired = append(expired, tx)
			case !now.Before(tx.next):
				// Timer E: T1 after the request, then 2*T1, 4*T1, ... up
				// to T2 (§17.1.2.2).
				resend = append(resend, tx)
				tx.interval = min(2*tx.interval, f.u.cfg.callT2)
				tx.next = now.Add(tx.interval)
			}
		}
		f.mu.Unlock()
		for _, tx := range expired {
			tx.complete(Result{}, fmt.Errorf("%w: no final response within %v", ErrTimeout, tx.deadline.Sub(tx.started).Round(time.Millisecond)))
		}
		for _, tx := range resend {
			if _, err := f.pc.WriteToUDPAddrPort(tx.data, tx.dst); err != nil {
				f.u.log.Debug("sip retransmission failed", "dest", tx.dst, "error", err)
			}
		}
	}
}

// sendFast sends p over the fast path when it can: UDP to an IP address,
// from a listener with a known address, within the datagram limit. ok is
// false when the usual path must send it.
func (u *UA) sendFast(ctx context.Context, st *startedState, p *prepared, tg target, deadline time.Time) (res Result, err error, ok bool) {
	branch, data, dst, ok := u.fastRequest(st, p, tg)
	if !ok {
		return Result{}, nil, false
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return Result{}, fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded), true
	}
	u.fastOut.Add(1)
	res, err = st.fast.send(ctx, branch, data, dst, deadline)
	return res, err, true
}

// fastRequest writes p for the fast path, with a fresh branch, and returns
// where it goes; ok is false when the fast path cannot send it.
func (u *UA) fastRequest(st *startedState, p *prepared, tg target) (branch string, data []byte, dst netip.AddrPort, ok bool) {
	if st.fast == nil || st.fastVia == "" || tg.transport != "UDP" {
		return "", nil, dst, false
	}
	dst, err := netip.ParseAddrPort(tg.dest)
	if err != nil {
		return "", nil, dst, false
	}
	branch = "z9hG4bK" + token()
	data = appendRequest(make([]byte, 0, 512+len(p.body)), p, st.fastVia, branch, u.routeStr, u.uaString)
	if len(data) > udpSizeLimit {
		return "", nil, dst, false
	}
	return branch, data, netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()), true
}

// StartMessage starts sending m on the fast path and returns true, or
// returns false at once when m needs SendMessage: no fast path for its next
// hop (a name to look up, TCP or TLS, over 1300 bytes), no free transaction
// slot, a value SendMessage would refuse, or the UA not running. When it
// returns true, done is called exactly once, later and from another
// goroutine (the UA's read loop or timers), with what SendMessage would have
// returned; it must not block. Cancelling ctx ends the transaction with
// ctx's error, as for SendMessage. It saves the caller a goroutine that
// waits for the transaction.
func (u *UA) StartMessage(ctx context.Context, m *OutgoingMessage, done func(Result, error)) bool {
	return u.startMessage(ctx, m, false, done)
}

// QueueMessage is StartMessage that may hold the request back until
// FlushMessages, so that the requests a caller starts together leave
// several to a system call (sendmmsg, on Linux). A caller calls
// FlushMessages once it has started the messages it has at hand; a request
// nobody flushes leaves within T1/4, with the retransmission timers.
func (u *UA) QueueMessage(ctx context.Context, m *OutgoingMessage, done func(Result, error)) bool {
	return u.startMessage(ctx, m, true, done)
}

// FlushMessages sends the requests QueueMessage holds back, from every
// caller. When another goroutine is sending them, it leaves them to it and
// returns at once.
func (u *UA) FlushMessages() {
	u.mu.Lock()
	st := u.state
	u.mu.Unlock()
	if st != nil && st.fast != nil {
		st.fast.flushRequests()
	}
}

func (u *UA) startMessage(ctx context.Context, m *OutgoingMessage, held bool, done func(Result, error)) bool {
	tg := u.proxyTarget
	if m == nil || tg.transport != "UDP" {
		return false
	}
	u.mu.Lock()
	st, closed := u.state, u.closed
	if closed || st == nil || st.fast == nil {
		u.mu.Unlock()
		return false
	}
	u.wg.Add(1)
	u.mu.Unlock()
	p, err := prepareLazy(m)
	if err != nil {
		u.leave()
		return false
	}
	select {
	case u.slots <- struct{}{}:
	default:
		u.leave()
		return false
	}
	branch, data, dst, ok := u.fastRequest(st, p, tg)
	if !ok {
		<-u.slots
		u.leave()
		return false
	}
	var deadline time.Time
	if m.Timeout > 0 {
		deadline = time.Now().Add(m.Timeout)
	}
	u.fastOut.Add(1)
	st.fast.start(ctx, branch, data, dst, deadline, held, func(res Result, err error) {
		<-u.slots
		u.leave()
		if err == nil {
			res.Parts = 1
		}
		done(res, err)
	})
	return true
}
