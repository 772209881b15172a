package component

import (
	"container/heap"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stox-gw/stox/component/store"
	"github.com/stox-gw/stox/mapping"
	"github.com/stox-gw/stox/sipside"
)

// Presence between XMPP and SIP (RFC 8048; CHECKLIST section 4).
//
// A virtual subscription is keyed by (bare JID of the XMPP user, bare SIP
// AOR of the SIP user) (PRES-01) and has two independent directions:
//   - inSub: a SIP user watches an XMPP user. Any number of SIP dialogs
//     (devices, refreshes) hang on it (PRES-02); the XMPP side sees one
//     subscription from the SIP user's JID.
//   - outSub: an XMPP user watches a SIP user, through at most one SIP
//     dialog (PRES-03).
//
// All presence state lives on one task loop (presenceEngine.run): XMPP
// stanzas, SIP requests, SIP transaction results and timers are all work
// items of that loop, so no state is shared and per-user order holds. This
// departs from STYLE.md's per-user Session on purpose: a subscription
// involves two users, its records are written to the store in batches, and
// the idle Sessions of page mode come and go while subscriptions last for
// hours. One loop handles far more events per second than presence brings
// (make bench).

// DialogSender is what presence needs of the SIP side (sipside.UA
// implements it).
type DialogSender interface {
	SendInDialog(ctx context.Context, d sipside.Dialog, r sipside.DialogRequest) (sipside.DialogResult, error)
}

// PresenceConfig tunes presence; zero values take the defaults documented
// on each field.
type PresenceConfig struct {
	// Store keeps subscriptions across restarts; nil keeps them in memory.
	Store *store.Store
	// NotifyInterval is the shortest time between two NOTIFYs of one
	// dialog that only change presence (PRES-28, RFC 3856 §6.10); bursts
	// are merged into one NOTIFY with the complete state. Default 5 s.
	NotifyInterval time.Duration
	// SubscribeExpires is the Expires of our SUBSCRIBEs (PRES-10e);
	// default 3600.
	SubscribeExpires int
	// RetryMin and RetryMax bound the backoff between attempts to
	// re-establish a failed subscription; defaults 5 s and 10 min.
	RetryMin, RetryMax time.Duration
	// MaxSubscriptions bounds the virtual subscriptions of each direction
	// and the SIP dialogs attached to them; default 200000.
	MaxSubscriptions int
	// MaxDialogsPerPair bounds the SIP watcher dialogs on one virtual
	// subscription; default 16.
	MaxDialogsPerPair int
	// RestoreRate is how many restored subscriptions per second are
	// refreshed (or probed) after a start, so that a restart causes no
	// storm; default 100.
	RestoreRate int
}

func (c *PresenceConfig) setDefaults() {
	if c.NotifyInterval <= 0 {
		c.NotifyInterval = 5 * time.Second
	}
	if c.SubscribeExpires <= 0 {
		c.SubscribeExpires = 3600
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 5 * time.Second
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(10*time.Minute, c.RetryMin)
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 200000
	}
	if c.MaxDialogsPerPair <= 0 {
		c.MaxDialogsPerPair = 16
	}
	if c.RestoreRate <= 0 {
		c.RestoreRate = 100
	}
}

// Timing of SIP subscriptions.
const (
	// timerN: no NOTIFY this long after the 2xx to an initial SUBSCRIBE
	// means the subscription failed (RFC 6665 §4.1.2.4, PRES-14).
	timerN = 32 * time.Second
	// fetchLife bounds a one-shot fetch (PRES-33b) and how long an ended
	// outbound dialog still answers its final NOTIFY with 200 (PRES-17).
	fetchLife = 32 * time.Second
	// fetchHold is how long the final NOTIFY of a fetch waits for the XMPP
	// user's presence after a probe (PRES-26).
	fetchHold = 2 * time.Second
	// probeRefresh: an XMPP probe re-SUBSCRIBEs at most this often
	// (PRES-14b).
	probeRefresh = 60 * time.Second
	// storeFlush: changed records are written at most this often, in one
	// transaction.
	storeFlush = 200 * time.Millisecond
	// presenceQueue bounds the work waiting for the loop.
	presenceQueue = 8192
	// sipAnswerWait bounds how long a SIP request handler waits for the
	// loop's answer.
	sipAnswerWait = 5 * time.Second
)

type pairKey struct{ jid, uri string }

func (k pairKey) String() string { return k.jid + " " + k.uri }

// dkey identifies a dialog we are in: its Call-ID and our tag. A struct of
// the two strings the Dialog already holds, not a concatenation: one
// allocation less per subscription.
type dkey struct{ callID, tag string }

func dlgKey(callID, localTag string) dkey { return dkey{callID, localTag} }

// Authorization states of an inbound virtual subscription: what the XMPP
// user said about the SIP watcher (PRES-23, PRES-24).
const (
	authUnknown = ""
	authPending = "pending" // subscribe sent to the XMPP user, no answer yet
	authGranted = "granted"
	authDenied  = "denied"
)

// inSub: a SIP user watches an XMPP user.
type inSub struct {
	key      pairKey // jid: the XMPP user (presentity); uri: the SIP watcher
	watcher  string  // the SIP watcher's bare JID (from of our stanzas)
	auth     string
	pres     mapping.PresenceState // the XMPP user's presence, as sent to the watcher
	known    bool                  // pres has been learnt since start
	dialogs  []*inDialog           // usually one; a slice costs less than a map (100k subscriptions)
	probeDue *ptimer               // a restored subscription's probe
}

// inDialog: one SIP watcher dialog (the notifier side).
type inDialog struct {
	sub       *inSub
	d         sipside.Dialog
	key       dkey
	expiresAt int64 // unix nanoseconds (an int64 keeps the struct in a smaller size class)
	expiry    *ptimer
	lastSent  int64 // unix nanoseconds
	inFlight  bool
	dirty     bool     // changed since the last NOTIFY
	forced    bool     // the change waiting for inFlight is a state change: no rate limit
	later     *ptimer  // the rate-limited NOTIFY
	shown     []string // the resources open in the last PIDF sent (PRES-41)
	savedCSeq uint32   // LocalCSeq as last written to the store
	// final: an unsubscribe or fetch waiting for presence before its
	// terminating NOTIFY (PRES-26).
	final *ptimer
}

// outSub: an XMPP user watches a SIP user.
type outSub struct {
	key        pairKey // jid: the XMPP watcher; uri: the SIP presentity
	sipJID     string  // the SIP user's bare JID
	userURI    string  // the XMPP watcher as a SIP URI (From)
	authorized bool    // an active NOTIFY came; subscribed was sent
	stopped    bool    // the SIP side said not to retry (PRES-16d)
	closing    bool    // unsubscribed by the XMPP user; awaiting the final NOTIFY
	d          sipside.Dialog
	expiresAt  time.Time
	inFlight   bool
	gotNotify  bool
	gotDoc     bool // a PIDF document came (the next ones send only changes)
	triedMin   bool
	failures   int
	lastSub    time.Time
	pres       mapping.PresenceState
	refresh    *ptimer // refresh or retry
	timerN     *ptimer
}

// fetch is a one-shot SUBSCRIBE with Expires 0 for a probe (PRES-33b).
type fetch struct {
	key    pairKey
	sipJID string
	prober string
	d      sipside.Dialog
	done   *ptimer
}

// presenceEngine owns every presence subscription; see the top of the file.
type presenceEngine struct {
	g   *Gateway
	sip DialogSender
	cfg PresenceConfig
	log *slog.Logger

	q         chan func()
	quit      chan struct{}
	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup // SIP transactions in flight
	ctx       context.Context
	stop      context.CancelFunc

	// Loop-owned state.
	ins       map[pairKey]*inSub
	outs      map[pairKey]*outSub
	inDlg     map[dkey]*inDialog
	outDlg    map[dkey]*outSub
	fetches   map[dkey]*fetch
	timers    timerHeap
	wake      *time.Timer
	strs      map[string]string // see intern
	dirty     map[string]store.Op
	flushT    *ptimer
	compacted int64 // the store's size after the last compaction

	// Read by WriteMetrics.
	nIn, nInDialogs, nOut atomic.Int64
	notifies, notifyFail  atomic.Uint64
	subscribes, subFail   atomic.Uint64
	stanzasOut            atomic.Uint64
}

// Store buckets.
const (
	bucketIn  = "presence-in"
	bucketOut = "presence-out"
)

func newPresence(g *Gateway, sip DialogSender, cfg PresenceConfig) *presenceEngine {
	cfg.setDefaults()
	p := &presenceEngine{
		g:       g,
		sip:     sip,
		cfg:     cfg,
		log:     g.log.With("part", "presence"),
		q:       make(chan func(), presenceQueue),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		ins:     make(map[pairKey]*inSub),
		outs:    make(map[pairKey]*outSub),
		inDlg:   make(map[dkey]*inDialog),
		outDlg:  make(map[dkey]*outSub),
		fetches: make(map[dkey]*fetch),
		dirty:   make(map[string]store.Op),
		strs:    make(map[string]string),
		wake:    time.NewTimer(time.Hour),
	}
	p.ctx, p.stop = context.WithCancel(context.Background())
	return p
}

// start restores the stored subscriptions and starts the loop.
func (p *presenceEngine) start() error {
	if err := p.restore(); err != nil {
		return err
	}
	go p.run()
	return nil
}

// close stops the loop and waits for what it started. Subscriptions are
// not ended: they are in the store for the next start.
func (p *presenceEngine) close() {
	p.closeOnce.Do(func() {
		p.stop()
		close(p.quit)
		<-p.done
		p.wg.Wait()
	})
}

func (p *presenceEngine) run() {
	defer close(p.done)
	for {
		select {
		case f := <-p.q:
			f()
		case <-p.wake.C:
			p.fire()
		case <-p.quit:
			// Drain what is queued (results of finished transactions), then
			// write the store one last time.
		drain:
			for {
				select {
				case f := <-p.q:
					f()
				default:
					break drain
				}
			}
			p.flush()
			return
		}
		p.updateGauges()
	}
}

// post queues work for the loop without blocking; false when the queue is
// full or the engine stopped.
func (p *presenceEngine) post(f func()) bool {
	select {
	case <-p.quit:
		return false
	default:
	}
	select {
	case p.q <- f:
		return true
	default:
		return false
	}
}

// stopping reports whether close has begun.
func (p *presenceEngine) stopping() bool {
	select {
	case <-p.quit:
		return true
	default:
		return false
	}
}

// postWait queues work, waiting for room; false when the engine stops.
func (p *presenceEngine) postWait(f func()) bool {
	select {
	case p.q <- f:
		return true
	case <-p.quit:
		return false
	}
}

// ask runs f on the loop and waits for its answer (SIP request handlers).
func ask[T any](p *presenceEngine, ctx context.Context, busy T, f func() T) T {
	ch := make(chan T, 1)
	if !p.post(func() { ch <- f() }) {
		return busy
	}
	t := time.NewTimer(sipAnswerWait)
	defer t.Stop()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
	case <-t.C:
	case <-p.quit:
	}
	return busy
}

// goSIP runs a SIP transaction off the loop and hands its result back.
func (p *presenceEngine) goSIP(d sipside.Dialog, r sipside.DialogRequest, then func(sipside.DialogResult, error)) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		res, err := p.sip.SendInDialog(p.ctx, d, r)
		p.postWait(func() { then(res, err) })
	}()
}

func (p *presenceEngine) updateGauges() {
	p.nIn.Store(int64(len(p.ins)))
	p.nInDialogs.Store(int64(len(p.inDlg)))
	p.nOut.Store(int64(len(p.outs)))
}

// intern returns one shared copy of a string that many subscriptions
// repeat: an XMPP user's JID, URI and resources in every watcher's
// subscription, the event name. The table is bounded: when full it starts
// over (what was interned stays valid).
func (p *presenceEngine) intern(v string) string {
	if c, ok := p.strs[v]; ok {
		return c
	}
	if len(p.strs) >= 1<<16 {
		clear(p.strs)
	}
	p.strs[v] = v
	return v
}

// --- timers ---

// ptimer is one pending timer of the loop.
type ptimer struct {
	at  time.Time
	fn  func()
	idx int // in the heap; -1 once fired or cancelled
}

type timerHeap []*ptimer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*ptimer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}

// after runs fn on the loop after d.
func (p *presenceEngine) after(d time.Duration, fn func()) *ptimer {
	t := &ptimer{at: time.Now().Add(d), fn: fn}
	heap.Push(&p.timers, t)
	if t.idx == 0 {
		p.rearm()
	}
	return t
}

// cancel stops t (nil and fired timers are fine).
func (p *presenceEngine) cancel(t *ptimer) {
	if t == nil || t.idx < 0 {
		return
	}
	heap.Remove(&p.timers, t.idx)
}

func (p *presenceEngine) rearm() {
	if !p.wake.Stop() {
		select {
		case <-p.wake.C:
		default:
		}
	}
	if len(p.timers) > 0 {
		p.wake.Reset(max(time.Until(p.timers[0].at), 0))
	}
}

func (p *presenceEngine) fire() {
	now := time.Now()
	for len(p.timers) > 0 && !p.timers[0].at.After(now) {
		t := heap.Pop(&p.timers).(*ptimer)
		t.fn()
	}
	p.rearm()
}

// backoff is the wait before attempt n+1 after n failures.
func (p *presenceEngine) backoff(n int) time.Duration {
	d := p.cfg.RetryMin
	for i := 1; i < n && d < p.cfg.RetryMax; i++ {
		d *= 2
	}
	return jitter(min(d, p.cfg.RetryMax), 10)
}

// refreshDelay is when to refresh a subscription granted for exp seconds:
// at four fifths of it (PRES-14a).
func refreshDelay(exp int) time.Duration {
	return max(time.Duration(exp)*time.Second*4/5, time.Second)
}

// --- stanzas ---

// presenceStanza renders a presence of a SIP user (or a subscription
// answer) for an XMPP user.
func presenceStanza(from, to, typ string) *Element {
	e := NewElement(nsComponent, "presence").SetAttr("from", from).SetAttr("to", to)
	if typ != "" {
		e.SetAttr("type", typ)
	}
	return e
}

// sendStanza writes a presence stanza; refusals (outage queue full) are
// logged.
func (p *presenceEngine) sendStanza(e *Element) {
	p.stanzasOut.Add(1)
	p.g.sendLogged(e)
}

// sendPresence sends one mapped presence of a SIP user to an XMPP user
// (CHECKLIST 4.5).
func (p *presenceEngine) sendPresence(mp mapping.Presence, to string) {
	e := presenceStanza(mp.From, to, mp.Type)
	if mp.Type == "" {
		if mp.Show != "" {
			e.Add(TextElement(nsComponent, "show", mp.Show))
		}
		if mp.HasPriority {
			e.Add(TextElement(nsComponent, "priority", strconv.Itoa(mp.Priority)))
		}
	}
	if mp.Status != "" {
		st := TextElement(nsComponent, "status", mp.Status)
		st.SetLang(mp.Lang)
		e.Add(st)
	}
	p.sendStanza(e)
}

// probe asks the XMPP server for the XMPP user's presence on behalf of the
// SIP watcher (PRES-23, PRES-30).
func (p *presenceEngine) probe(s *inSub) {
	p.sendStanza(presenceStanza(s.watcher, s.key.jid, "probe"))
}

// --- store ---

type inRecord struct {
	JID     string           `json:"jid"`
	URI     string           `json:"uri"`
	Watcher string           `json:"watcher"`
	Auth    string           `json:"auth,omitempty"`
	Dialogs []inDialogRecord `json:"dialogs,omitempty"`
}

type inDialogRecord struct {
	Dialog  sipside.Dialog `json:"dialog"`
	Expires time.Time      `json:"expires"`
}

type outRecord struct {
	JID        string             `json:"jid"`
	URI        string             `json:"uri"`
	SIPJID     string             `json:"sip_jid"`
	UserURI    string             `json:"user_uri"`
	Authorized bool               `json:"authorized,omitempty"`
	Stopped    bool               `json:"stopped,omitempty"`
	Dialog     sipside.Dialog     `json:"dialog"`
	Expires    time.Time          `json:"expires"`
	Presence   []mapping.Presence `json:"presence,omitempty"`
}

// cseqMargin is added to a restored dialog's CSeq: a change after the last
// write may have used a few more numbers, and a peer refuses a CSeq that
// goes back (RFC 3261 §12.2.2).
const cseqMargin = 100

// cseqSaveEvery: a dialog's record is rewritten for its CSeq alone after
// this many NOTIFYs (less than cseqMargin).
const cseqSaveEvery = 50

func (p *presenceEngine) saveIn(s *inSub) {
	if p.cfg.Store == nil {
		return
	}
	r, keep := p.inRecordOf(s)
	if !keep {
		p.markDirty(bucketIn, s.key.String(), nil)
		return
	}
	p.markDirty(bucketIn, s.key.String(), r)
}

// inRecordOf is what the store keeps of s; keep is false when nothing is
// worth keeping.
func (p *presenceEngine) inRecordOf(s *inSub) (r inRecord, keep bool) {
	if len(s.dialogs) == 0 && s.auth == authUnknown {
		return inRecord{}, false
	}
	r = inRecord{JID: s.key.jid, URI: s.key.uri, Watcher: s.watcher, Auth: s.auth}
	for _, dl := range s.dialogs {
		r.Dialogs = append(r.Dialogs, inDialogRecord{Dialog: dl.d, Expires: time.Unix(0, dl.expiresAt)})
		dl.savedCSeq = dl.d.LocalCSeq
	}
	return r, true
}

func (p *presenceEngine) saveOut(o *outSub) {
	if p.cfg.Store == nil {
		return
	}
	p.markDirty(bucketOut, o.key.String(), outRecordOf(o))
}

func outRecordOf(o *outSub) outRecord {
	return outRecord{
		JID: o.key.jid, URI: o.key.uri, SIPJID: o.sipJID, UserURI: o.userURI,
		Authorized: o.authorized, Stopped: o.stopped,
		Dialog: o.d, Expires: o.expiresAt, Presence: o.pres.Available(),
	}
}

func (p *presenceEngine) deleteOut(o *outSub) {
	if p.cfg.Store != nil {
		p.markDirty(bucketOut, o.key.String(), nil)
	}
}

func (p *presenceEngine) markDirty(bucket, key string, v any) {
	p.dirty[bucket+"\x00"+key] = store.Op{Bucket: bucket, Key: key, Value: v}
	if p.flushT == nil {
		p.flushT = p.after(storeFlush, func() {
			p.flushT = nil
			p.flush()
		})
	}
}

// flush writes the changed records in one transaction.
func (p *presenceEngine) flush() {
	if len(p.dirty) == 0 || p.cfg.Store == nil {
		return
	}
	ops := make([]store.Op, 0, len(p.dirty))
	for _, op := range p.dirty {
		ops = append(ops, op)
	}
	if err := p.cfg.Store.Apply(ops); err != nil {
		p.log.Error("presence store write failed", "records", len(ops), "err", err)
		return // kept dirty: the next change retries
	}
	clear(p.dirty)
	if p.cfg.Store.Size() > max(2*p.compacted, compactMin) {
		p.compact()
	}
}

// compactMin: the journal is not compacted below this size.
const compactMin = 4 << 20

// compact rewrites the store with the records of every live subscription
// (the journal grows with every change; this bounds it to about twice the
// live records).
func (p *presenceEngine) compact() {
	st := p.cfg.Store
	if st == nil {
		return
	}
	p.flushPending()
	n := 0
	records := func(yield func(store.Op) bool) {
		for _, s := range p.ins {
			if r, keep := p.inRecordOf(s); keep {
				n++
				if !yield(store.Op{Bucket: bucketIn, Key: s.key.String(), Value: r}) {
					return
				}
			}
		}
		for _, o := range p.outs {
			n++
			if !yield(store.Op{Bucket: bucketOut, Key: o.key.String(), Value: outRecordOf(o)}) {
				return
			}
		}
	}
	start := time.Now()
	if err := st.Compact(records); err != nil {
		p.log.Error("presence store compaction failed", "records", n, "err", err)
		p.compacted = st.Size() // retry once it doubles again
		return
	}
	p.compacted = st.Size()
	clear(p.dirty) // the compaction wrote the current state
	p.log.Info("presence store compacted", "records", n, "bytes", p.compacted, "took", time.Since(start))
}

// flushPending drops the pending flush timer (compact writes everything).
func (p *presenceEngine) flushPending() {
	p.cancel(p.flushT)
	p.flushT = nil
}
