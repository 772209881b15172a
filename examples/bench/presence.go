//go:build unix

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stox-gw/stox/integration/testbed"
	"github.com/stox-gw/stox/sipside"
)

// The presence phase (RFC 8048 through stox): how much a held SIP
// subscription costs the stox process, and how fast one XMPP presence
// change fans out to SIP watchers.
//
// The deployment: a stox process of its own (not the one of the message
// phases, so that its memory is presence's alone) with a temporary
// store.path, connected to the fake XMPP server of fakexmpp.go (why not
// Prosody: see there), and a SIP load generator in this process, a second
// sipside.UA (presLoad), which is stox's outbound proxy and plays:
//   - the SIP watchers (S->X): initial SUBSCRIBEs (Event: presence,
//     Accept: application/pidf+xml) from sip:wN@sip.bench.test to XMPP
//     users sip:xU@bench.test, refreshes in the dialogs, 200 to every
//     NOTIFY, counting them;
//   - the SIP presence server (X->S): 200 (with Expires) and an active
//     NOTIFY with a PIDF to stox's SUBSCRIBEs, which follow subscription
//     requests the fake XMPP server injects.
//
// S->X, at each level of -presence-counts (10,000 then 100,000; the levels
// add up in one process):
//
//	establish  new watcher dialogs up to the level, at most -presence-rate
//	           a second and -presence-window not yet active: SUBSCRIBE ->
//	           200, stox asks the XMPP user (subscribe), the fake server
//	           approves (subscribed), NOTIFY pending and NOTIFY active
//	refresh    dialogs refreshed once by their watchers (SUBSCRIBE in the
//	           dialog -> 200 -> NOTIFY with the full state): all of them, or
//	           -presence-refresh spread over all (a sample: the cost of a
//	           refresh with 100,000 held, without 30 s of refreshing)
//	fan-out    every XMPP user (-presence-users) changes presence once: the
//	           fake server routes one available presence per SIP contact,
//	           as a server broadcasts to a roster, and stox sends one
//	           NOTIFY per watcher dialog
//	settle     goroutines back to their idle count; steady RSS and the live
//	           heap after a forced GC, with every subscription still held
//
// X->S, one level (-presence-out, 5,000) in a third stox process: subscription
// requests of XMPP users to SIP users -> SUBSCRIBE -> 200 + NOTIFY active ->
// subscribed + presence to XMPP; then stox's own refresh of each
// subscription. stox refreshes at 4/5 of the Expires its peer grants, and
// the granted value wins over presence.subscribe_expires (whose minimum is
// 60 s): the bench's presence server grants just enough for the refreshes to
// start after the last subscription is established, so the refresh cost is
// measured apart from the establishment without a 48-second wait. A refresh
// is SUBSCRIBE -> 200 -> NOTIFY (full state, as RFC 6665 s4.2.2 asks of a
// notifier after each refresh) -> 200.
//
// SIP between the load generator and stox goes over TCP by default. Over
// UDP, sipgo keeps every server transaction 32 s after its final response
// (Timer J; LIBRARIES.md), about 10 KB each here: the peak RSS then grows
// with the establishment rate times 32 s rather than with the
// subscriptions held, and the steady figures need a 33-second wait per
// level; -presence-transport udp measures that.
//
// stox's cost is read from outside: CPU from /proc/PID/stat over each step,
// divided by its operations; RSS from /proc/PID/status (VmRSS, VmHWM, and
// RssAnon/RssFile: the store is a memory-mapped bbolt file whose pages count
// as RssFile); the live heap after a forced GC from /debug/pprof/heap;
// goroutines and stox_presence_* from /metrics.

const (
	presUserPrefix    = "x" // XMPP users xN@bench.test
	presWatcherPrefix = "w" // SIP watchers wN@sip.bench.test
	presSIPPrefix     = "s" // SIP presentities sN@sip.bench.test (X->S)
	// presExpires is what the watchers ask for (presence.max_expires'
	// default): no dialog expires during the phase.
	presExpires = 3600
)

// PresenceReport is the presence phase, as printed with -json.
type PresenceReport struct {
	Transport      string  `json:"sip_transport"`
	RateCap        float64 `json:"establish_rate_cap_per_s"`
	Window         int     `json:"window"`
	XMPPUsers      int     `json:"xmpp_users"`
	NotifyInterval float64 `json:"stox_notify_interval_s"`

	In  *PresenceIn  `json:"sip_to_xmpp"`
	Out *PresenceOut `json:"xmpp_to_sip,omitempty"`
}

// PresenceIn is the S->X run: SIP watchers of XMPP users.
type PresenceIn struct {
	GoroutinesIdle float64          `json:"goroutines_idle"`
	RSSIdleKB      int64            `json:"rss_idle_kb"`
	HeapIdle       int64            `json:"heap_idle_bytes"`
	Warmup         int              `json:"warmup_subscriptions"`
	Levels         []*PresLevel     `json:"levels"`
	Stanzas        map[string]int64 `json:"fake_server"`
}

// PresLevel is what stox holds and costs at one number of watcher dialogs.
type PresLevel struct {
	Subscriptions int      `json:"subscriptions"` // watcher dialogs held
	Establish     *PresOp  `json:"establish"`     // the new ones of this level
	Refresh       *PresOp  `json:"refresh"`
	Fanout        *PresOp  `json:"fanout"`
	Mem           PresMem  `json:"memory"`
	GoroutinesEnd float64  `json:"goroutines_end"`
	GoroutinesMax float64  `json:"goroutines_peak_seen"`
	SettleSeconds float64  `json:"settle_s"`
	Gauges        PresGaug `json:"stox_metrics"`
}

// PresMem is the stox process's memory at one level.
type PresMem struct {
	HeldKB     int64   `json:"rss_after_establish_kb"` // right after the last subscription became active
	PeakKB     int64   `json:"rss_peak_kb"`            // VmHWM so far
	SteadyKB   int64   `json:"rss_steady_kb"`          // after refresh, fan-out and settle
	AnonKB     int64   `json:"rss_anon_steady_kb"`
	FileKB     int64   `json:"rss_file_steady_kb"` // mostly the store's mapped pages
	Heap       int64   `json:"heap_steady_bytes"`  // live, after a forced GC
	HeapPerSub float64 `json:"heap_per_subscription_bytes"`
	StoreBytes int64   `json:"store_file_bytes"`
}

// PresGaug is stox's own view at the end of a level.
type PresGaug struct {
	InSubs      float64 `json:"subscriptions_sip_to_xmpp"`
	OutSubs     float64 `json:"subscriptions_xmpp_to_sip"`
	Dialogs     float64 `json:"watcher_dialogs"`
	NotifySent  float64 `json:"notify_sent"`
	NotifyFail  float64 `json:"notify_failed"`
	SubSent     float64 `json:"subscribe_sent"`
	SubFail     float64 `json:"subscribe_failed"`
	StanzasSent float64 `json:"presence_stanzas_sent"`
}

// PresOp is one step: n operations and what they cost.
type PresOp struct {
	N        int     `json:"n"`
	Done     int     `json:"done"`
	Failed   int     `json:"failed"`
	Wall     float64 `json:"wall_s"`
	Rate     float64 `json:"rate_per_s"`
	StoxCPU  float64 `json:"stox_cpu_us_per_op"`
	BenchCPU float64 `json:"bench_cpu_us_per_op"`
	Notifies int64   `json:"notifies_received"`
	P50      float64 `json:"latency_p50_ms,omitempty"`
	P99      float64 `json:"latency_p99_ms,omitempty"`
	Errors   int64   `json:"xmpp_error_stanzas"` // stox -> fake server type='error' during the step
	Note     string  `json:"note,omitempty"`
}

// PresenceOut is the X->S run: XMPP users watch SIP users.
type PresenceOut struct {
	GoroutinesIdle float64 `json:"goroutines_idle"`
	RSSIdleKB      int64   `json:"rss_idle_kb"`
	Granted        int     `json:"granted_expires_s"` // by the bench's presence server, initial SUBSCRIBEs
	Establish      *PresOp `json:"establish"`
	Refresh        *PresOp `json:"refresh"` // stox's own refreshes
	// RefreshStanzas: presence stanzas stox sent to XMPP for the NOTIFYs
	// that follow the refreshes (their PIDF is unchanged).
	RefreshStanzas int64    `json:"presence_stanzas_on_refresh"`
	Mem            PresMem  `json:"memory"`
	GoroutinesEnd  float64  `json:"goroutines_end"`
	SettleSeconds  float64  `json:"settle_s"`
	Gauges         PresGaug `json:"stox_metrics"`
}

// ---- the SIP load generator ----

// presLoad is the SIP side of the presence phase: one sipside.UA.
type presLoad struct {
	ua     *sipside.UA
	port   int
	nonce  string
	domain string // stox's SIP domain (watchers and presentities)

	// S->X: watcher dialog i is dlg[i]; its Call-ID is nonce-w<i>.
	mu       sync.Mutex
	dlg      []sipside.Dialog
	sentAt   []int64        // ns, initial SUBSCRIBE
	state    []atomic.Int32 // 0 none, 1 pending, 2 active
	lat      []int64
	onActive func(i int) // the first active NOTIFY of dialog i

	notifies   atomic.Int64
	withBody   atomic.Int64
	terminated atomic.Int64
	unknown    atomic.Int64

	// X->S: stox's subscriptions, by Call-ID.
	nmu       sync.Mutex
	notifier  map[string]*notifierDlg
	grant     atomic.Int64 // Expires granted to initial SUBSCRIBEs
	initials  atomic.Int64
	refreshes atomic.Int64
	refreshed atomic.Int64 // refresh NOTIFYs answered 2xx
	outNotify atomic.Int64 // NOTIFYs sent
	outFail   atomic.Int64
	onRefresh func(n int64) // after refresh n's NOTIFY was answered
	wg        sync.WaitGroup
}

type notifierDlg struct {
	mu sync.Mutex
	d  sipside.Dialog
}

func startPresLoad(port int, stoxHop, domain string) (*presLoad, error) {
	l := &presLoad{port: port, nonce: strconv.FormatInt(time.Now().UnixNano()%1e9, 36), domain: domain,
		notifier: make(map[string]*notifierDlg)}
	ua, err := sipside.New(
		sipside.WithListen(fmt.Sprintf("udp:127.0.0.1:%d", port), fmt.Sprintf("tcp:127.0.0.1:%d", port)),
		sipside.WithDomain("load.bench.test"),
		sipside.WithTrusted(netip.MustParsePrefix("127.0.0.1/32")),
		sipside.WithOutboundProxy(stoxHop),
		sipside.WithNotifyHandler(l.handleNotify),
		sipside.WithSubscribeHandler(l.handleSubscribe),
		sipside.WithSubscriptionExpires(1, presExpires),
		sipside.WithMaxInFlight(8192),
		sipside.WithLogger(slog.New(sipLogs)),
	)
	if err != nil {
		return nil, err
	}
	if err := ua.Start(context.Background()); err != nil {
		return nil, err
	}
	l.ua = ua
	return l, nil
}

func (l *presLoad) close() {
	l.wg.Wait()
	_ = l.ua.Close()
}

// grow makes room for watcher dialogs 0..n-1.
func (l *presLoad) grow(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n <= len(l.dlg) {
		return
	}
	dlg := make([]sipside.Dialog, n)
	copy(dlg, l.dlg)
	sent := make([]int64, n)
	copy(sent, l.sentAt)
	st := make([]atomic.Int32, n)
	for i := range l.state {
		st[i].Store(l.state[i].Load())
	}
	l.dlg, l.sentAt, l.state = dlg, sent, st
}

func (l *presLoad) callID(i int) string { return l.nonce + "-w" + strconv.Itoa(i) }

func (l *presLoad) index(callID string) int {
	j := strings.LastIndex(callID, "-w")
	if j < 0 || callID[:j] != l.nonce {
		return -1
	}
	i, err := strconv.Atoi(callID[j+2:])
	if err != nil {
		return -1
	}
	return i
}

// handleNotify answers stox's NOTIFYs to the watchers.
func (l *presLoad) handleNotify(_ context.Context, n *sipside.IncomingNotify) sipside.Reply {
	l.notifies.Add(1)
	if len(n.Body) > 0 {
		l.withBody.Add(1)
	}
	state, _, _ := strings.Cut(n.SubscriptionState, ";")
	state = strings.TrimSpace(state)
	l.mu.Lock()
	i := l.index(n.CallID)
	if i < 0 || i >= len(l.state) {
		l.mu.Unlock()
		l.unknown.Add(1)
		return sipside.Reply{Code: 481}
	}
	var first bool
	switch state {
	case "pending":
		l.state[i].CompareAndSwap(0, 1)
	case "active":
		if old := l.state[i].Swap(2); old != 2 {
			first = true
			l.lat = append(l.lat, nowNS()-l.sentAt[i])
		}
	case "terminated":
		l.terminated.Add(1)
	}
	on := l.onActive
	l.mu.Unlock()
	if first && on != nil {
		on(i)
	}
	return sipside.Reply{Code: 200}
}

// subscribe sends watcher i's initial SUBSCRIBE to XMPP user u.
func (l *presLoad) subscribe(ctx context.Context, i, u int) error {
	d := sipside.Dialog{
		CallID:    l.callID(i),
		LocalURI:  "sip:" + presWatcherPrefix + strconv.Itoa(i) + "@" + l.domain,
		LocalTag:  "t" + strconv.Itoa(i),
		RemoteURI: "sip:" + presUserPrefix + strconv.Itoa(u) + "@" + xmppDomain,
		Event:     "presence",
	}
	l.mu.Lock()
	l.sentAt[i] = nowNS()
	l.mu.Unlock()
	return l.send(ctx, i, d, "SUBSCRIBE")
}

// refresh refreshes watcher dialog i.
func (l *presLoad) refresh(ctx context.Context, i int) error {
	l.mu.Lock()
	d := l.dlg[i]
	l.mu.Unlock()
	if !d.Established() {
		return fmt.Errorf("dialog %d not established", i)
	}
	return l.send(ctx, i, d, "refresh")
}

// send sends watcher i's SUBSCRIBE in d and keeps the dialog it returns.
func (l *presLoad) send(ctx context.Context, i int, d sipside.Dialog, what string) error {
	res, err := l.ua.SendInDialog(ctx, d, sipside.DialogRequest{Method: "SUBSCRIBE", Expires: presExpires, Accept: "application/pidf+xml"})
	if err == nil && res.Code >= 300 {
		err = fmt.Errorf("%s answered %d %s", what, res.Code, res.Reason)
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.dlg[i] = res.Dialog
	l.mu.Unlock()
	return nil
}

// handleSubscribe is the presence server of the X->S run: 200, then an
// active NOTIFY with the full state.
func (l *presLoad) handleSubscribe(_ context.Context, s *sipside.IncomingSubscribe) sipside.SubscribeReply {
	if s.Expires == 0 {
		return sipside.SubscribeReply{Code: 200}
	}
	var nd *notifierDlg
	exp := presExpires
	refresh := !s.Initial
	l.nmu.Lock()
	if s.Initial {
		nd = &notifierDlg{d: s.Dialog}
		l.notifier[s.Dialog.CallID] = nd
		exp = int(l.grant.Load())
	} else {
		nd = l.notifier[s.Dialog.CallID]
	}
	l.nmu.Unlock()
	if nd == nil {
		return sipside.SubscribeReply{Code: 481}
	}
	if refresh {
		nd.mu.Lock()
		nd.d.RemoteCSeq = s.Dialog.RemoteCSeq
		nd.mu.Unlock()
		l.refreshes.Add(1)
	} else {
		l.initials.Add(1)
	}
	// The presentity's URI is the dialog's local URI (the To of the
	// SUBSCRIBE): sip:sN@sip.bench.test.
	entity := strings.TrimPrefix(s.Dialog.LocalURI, "sip:")
	return sipside.SubscribeReply{Code: 200, Expires: exp, Then: func() {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.sendNotify(nd, exp, entity, refresh)
		}()
	}}
}

func (l *presLoad) sendNotify(nd *notifierDlg, exp int, entity string, refresh bool) {
	body := []byte("<?xml version='1.0' encoding='UTF-8'?><presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:" + entity +
		"'><tuple id='t1'><status><basic>open</basic></status><note>in the bench</note></tuple></presence>")
	nd.mu.Lock()
	d := nd.d
	nd.d.LocalCSeq++ // reserved; the result below sets the value used
	nd.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	res, err := l.ua.SendInDialog(ctx, d, sipside.DialogRequest{Method: "NOTIFY",
		SubscriptionState: "active;expires=" + strconv.Itoa(exp), ContentType: "application/pidf+xml", Body: body})
	l.outNotify.Add(1)
	if err != nil || res.Code >= 300 {
		l.outFail.Add(1)
		return
	}
	if refresh {
		n := l.refreshed.Add(1)
		l.mu.Lock()
		f := l.onRefresh
		l.mu.Unlock()
		if f != nil {
			f(n)
		}
	}
}

// ---- one stox process with its fake XMPP server and load generator ----

type presEnv struct {
	o       options
	fake    *fakeXMPP
	load    *presLoad
	stox    *testbed.Stox
	mport   metricsPort
	dir     string
	store   string
	sipPort int
	lastReq time.Time // end of the last step that sent SIP requests
}

func startPresEnv(ctx context.Context, o options, bin string, logf func(string, ...any)) (_ *presEnv, err error) {
	e := &presEnv{o: o}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "stox-bench-presence-*"); err != nil {
		return nil, err
	}
	e.store = filepath.Join(e.dir, "presence.db")
	if e.fake, err = startFakeXMPP(stoxDomain, xmppDomain, secret); err != nil {
		return nil, err
	}
	e.sipPort = reserve(testbed.TCPUDP)
	loadPort := reserve(testbed.TCPUDP)
	e.mport = metricsPort(reserve(testbed.TCP))
	tr := o.presTransport
	if e.load, err = startPresLoad(loadPort, fmt.Sprintf("sip:127.0.0.1:%d;transport=%s", e.sipPort, tr), stoxDomain); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`
[xmpp]
component = %q
server = %q
secret = %q
domains = [%q]

[sip]
listen = ["udp:127.0.0.1:%d", "tcp:127.0.0.1:%d"]
outbound_proxy = "sip:127.0.0.1:%d;transport=%s"
trusted = ["127.0.0.1/32"]

[store]
path = %q

[presence]
notify_interval = %q

[metrics]
listen = "127.0.0.1:%d"
pprof = true

[log]
level = "warn"
`, stoxDomain, e.fake.addr(), secret, xmppDomain, e.sipPort, e.sipPort, loadPort, tr, e.store, o.presNotify.String(), int(e.mport))
	if e.stox, err = startStoxEnv(ctx, bin, conf, o.stoxEnv); err != nil {
		return nil, err
	}
	select {
	case <-e.fake.connected:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(20 * time.Second):
		return nil, fmt.Errorf("presence: stox did not connect to the fake XMPP server\n%s", e.stox.Logs())
	}
	for {
		if _, err := e.mport.metrics(); err == nil {
			break
		}
		if e.stox.Exited() {
			return nil, fmt.Errorf("presence: stox exited\n%s", e.stox.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	logf("presence: stox pid %d, store %s, SIP over %s", e.stox.PID, e.store, tr)
	return e, nil
}

func (e *presEnv) close() {
	if e.stox != nil {
		if err := e.stox.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: presence stox did not stop cleanly: %v\n%s", err, e.stox.Logs())
		}
	}
	if e.load != nil {
		e.load.close()
	}
	if e.fake != nil {
		e.fake.close()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

type presSnap struct {
	at          time.Time
	stox, bench int64
	errors      int64
	notifies    int64
	bodies      int64 // NOTIFYs with a PIDF
}

func (e *presEnv) snap() presSnap {
	return presSnap{at: time.Now(), stox: cpuTicks(e.stox.PID), bench: cpuTicks(os.Getpid()),
		errors: e.fake.errors.Load(), notifies: e.load.notifies.Load(), bodies: e.load.withBody.Load()}
}

// finish fills op's costs between two snaps.
func (op *PresOp) finish(a, b presSnap) {
	op.Wall = b.at.Sub(a.at).Seconds()
	if op.Wall > 0 {
		op.Rate = float64(op.Done) / op.Wall
	}
	if op.N > 0 {
		op.StoxCPU = float64(b.stox-a.stox) * 1e6 / ticksPerSecond / float64(op.N)
		op.BenchCPU = float64(b.bench-a.bench) * 1e6 / ticksPerSecond / float64(op.N)
	}
	op.Errors = b.errors - a.errors
	op.Notifies = b.notifies - a.notifies
}

func (e *presEnv) gauges() PresGaug {
	m, _ := e.mport.metrics()
	return PresGaug{
		InSubs:      m[`stox_presence_subscriptions{direction="sip_to_xmpp"}`],
		OutSubs:     m[`stox_presence_subscriptions{direction="xmpp_to_sip"}`],
		Dialogs:     m["stox_presence_watcher_dialogs"],
		NotifySent:  m[`stox_presence_sip_requests_total{method="NOTIFY",result="sent"}`],
		NotifyFail:  m[`stox_presence_sip_requests_total{method="NOTIFY",result="failed"}`],
		SubSent:     m[`stox_presence_sip_requests_total{method="SUBSCRIBE",result="sent"}`],
		SubFail:     m[`stox_presence_sip_requests_total{method="SUBSCRIBE",result="failed"}`],
		StanzasSent: m["stox_presence_stanzas_total"],
	}
}

func (e *presEnv) goroutines() float64 {
	m, err := e.mport.metrics()
	if err != nil {
		return -1
	}
	return m["go_goroutines"]
}

// settle waits until stox's goroutines are at most idle (or max passed)
// and returns the count and the wait.
func (e *presEnv) settle(idle float64, max time.Duration) (float64, float64) {
	start := time.Now()
	for {
		g := e.goroutines()
		if (g >= 0 && g <= idle) || time.Since(start) > max {
			return g, time.Since(start).Seconds()
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// idleGoroutines waits until the goroutine count has not fallen for two
// seconds (at most max) and returns it.
func (e *presEnv) idleGoroutines(max time.Duration) float64 {
	deadline := time.Now().Add(max)
	low, since := e.goroutines(), time.Now()
	for time.Now().Before(deadline) && time.Since(since) < 2*time.Second {
		time.Sleep(250 * time.Millisecond)
		if g := e.goroutines(); g < low {
			low, since = g, time.Now()
		}
	}
	return low
}

// timerJ: over UDP, sipgo keeps each server transaction 32 s after its
// final response (Timer J, RFC 3261 s17.2.2); the steady figures are taken
// once the last of the step's have gone, so that they show what the
// subscriptions hold rather than the recent request rate.
func (e *presEnv) timerJ() {
	if e.o.presTransport != "udp" {
		return
	}
	if d := time.Until(e.lastReq.Add(33 * time.Second)); d > 0 {
		time.Sleep(d)
	}
}

// cpuProfile saves a CPU profile of stox over -profile-seconds from now
// as DIR/name.pprof (with -profile); the channel is closed when done.
func (e *presEnv) cpuProfile(name string) <-chan struct{} {
	ch := make(chan struct{})
	if e.o.profileDir == "" {
		close(ch)
		return ch
	}
	go func() {
		defer close(ch)
		if b, err := e.mport.get("/debug/pprof/profile?seconds=" + strconv.Itoa(e.o.profileSec)); err == nil {
			_ = os.WriteFile(filepath.Join(e.o.profileDir, name+".pprof"), b, 0o644)
		}
	}()
	return ch
}

// saveHeap saves stox's live heap profile (after a GC) as DIR/name.pprof.
func (e *presEnv) saveHeap(name string) {
	if b, err := e.mport.get("/debug/pprof/heap?gc=1"); err == nil {
		_ = os.WriteFile(filepath.Join(e.o.profileDir, name+".pprof"), b, 0o644)
	}
}

func (e *presEnv) memory(m *PresMem, subs int) {
	pid := e.stox.PID
	m.PeakKB = procStatus(pid, "VmHWM")
	m.Heap = e.mport.heapAlloc()
	m.SteadyKB = procStatus(pid, "VmRSS")
	m.AnonKB = procStatus(pid, "RssAnon")
	m.FileKB = procStatus(pid, "RssFile")
	if subs > 0 {
		m.HeapPerSub = float64(m.Heap) / float64(subs)
	}
	if fi, err := os.Stat(e.store); err == nil {
		m.StoreBytes = fi.Size()
	}
}

// peakSampler samples stox's goroutine count until stopped.
func (e *presEnv) peakSampler() (stop func() float64) {
	var peak atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				if g := int64(e.goroutines()); g > peak.Load() {
					peak.Store(g)
				}
			}
		}
	}()
	return func() float64 {
		close(done)
		<-finished
		return float64(peak.Load())
	}
}

// ---- S->X ----

// presenceIn runs the S->X levels in one stox process.
func presenceIn(ctx context.Context, o options, bin string, logf func(string, ...any)) (*PresenceIn, error) {
	e, err := startPresEnv(ctx, o, bin, logf)
	if err != nil {
		return nil, err
	}
	defer e.close()
	res := &PresenceIn{RSSIdleKB: procStatus(e.stox.PID, "VmRSS"), HeapIdle: e.mport.heapAlloc()}
	users := o.presUsers
	userOf := func(i int) int { return i % users }
	held := 0
	check := func(what string) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if e.stox.Exited() {
			return fmt.Errorf("presence: stox exited during %s\n%s", what, e.stox.Logs())
		}
		return nil
	}

	// Warm-up: a few subscriptions, so that the idle goroutine count
	// includes what exists once SIP traffic has flowed (pools, timers).
	res.Warmup = min(200, o.presCounts[0]/10)
	op := e.establish(ctx, 0, res.Warmup, userOf)
	if op.Failed > 0 || op.Done < op.N {
		return nil, fmt.Errorf("presence warm-up: %d of %d subscriptions active, %d failed\n%s", op.Done, op.N, op.Failed, e.stox.Logs())
	}
	held = res.Warmup
	res.GoroutinesIdle = e.idleGoroutines(15 * time.Second)
	logf("presence S->X: idle %0.f goroutines, RSS %.1f MB; %d XMPP users", res.GoroutinesIdle, float64(res.RSSIdleKB)/1024, users)

	for li, level := range o.presCounts {
		if level <= held {
			continue
		}
		lv := &PresLevel{Subscriptions: level}
		res.Levels = append(res.Levels, lv)
		stopPeak := e.peakSampler()

		prof := e.cpuProfile(fmt.Sprintf("presence-establish-%d", level))
		lv.Establish = e.establish(ctx, held, level, userOf)
		<-prof
		held = level
		if err := check("establish"); err != nil {
			return nil, err
		}
		lv.Mem.HeldKB = procStatus(e.stox.PID, "VmRSS")
		logOp(logf, fmt.Sprintf("establish %d", level), lv.Establish)

		prof = e.cpuProfile(fmt.Sprintf("presence-refresh-%d", level))
		lv.Refresh = e.refreshAll(ctx, level)
		<-prof
		if err := check("refresh"); err != nil {
			return nil, err
		}
		logOp(logf, fmt.Sprintf("refresh %d", level), lv.Refresh)

		time.Sleep(o.presNotify + 100*time.Millisecond)
		prof = e.cpuProfile(fmt.Sprintf("presence-fanout-%d", level))
		lv.Fanout = e.fanout(ctx, level, users, userOf, li)
		<-prof
		if err := check("fan-out"); err != nil {
			return nil, err
		}
		logOp(logf, fmt.Sprintf("fan-out %d", level), lv.Fanout)
		e.lastReq = time.Now()

		lv.GoroutinesMax = stopPeak()
		lv.GoroutinesEnd, lv.SettleSeconds = e.settle(res.GoroutinesIdle, o.settle)
		e.timerJ()
		e.memory(&lv.Mem, level)
		if o.profileDir != "" {
			e.saveHeap(fmt.Sprintf("presence-in-%d", level))
		}
		lv.Gauges = e.gauges()
		logf("presence %d held: RSS after establish %.1f MB, peak %.1f MB, steady %.1f MB (anon %.1f, file %.1f); heap %.1f MB (%.0f B/subscription); store %.1f MB; goroutines %.0f (idle %.0f) after %.1f s",
			level, kbMB(lv.Mem.HeldKB), kbMB(lv.Mem.PeakKB), kbMB(lv.Mem.SteadyKB), kbMB(lv.Mem.AnonKB), kbMB(lv.Mem.FileKB),
			mb(lv.Mem.Heap), lv.Mem.HeapPerSub, mb(lv.Mem.StoreBytes), lv.GoroutinesEnd, res.GoroutinesIdle, lv.SettleSeconds)
	}
	res.Stanzas = map[string]int64{
		"presence_received": e.fake.presences.Load(), "subscriptions_approved": e.fake.subscribes.Load(),
		"iq_answered": e.fake.pings.Load(), "errors_received": e.fake.errors.Load(), "injected": e.fake.injected.Load(),
		"handshakes": e.fake.handshakes.Load(), "notify_unknown_dialog": e.load.unknown.Load(),
	}
	return res, nil
}

func kbMB(kb int64) float64 { return float64(kb) / 1024 }

func logOp(logf func(string, ...any), name string, op *PresOp) {
	logf("presence %-16s %7d done of %d, %d failed, %7.0f/s, stox %6.1f us/op, bench %6.1f us/op, NOTIFYs %d, p50 %.1f ms p99 %.1f ms, xmpp errors %d %s",
		name, op.Done, op.N, op.Failed, op.Rate, op.StoxCPU, op.BenchCPU, op.Notifies, op.P50, op.P99, op.Errors, op.Note)
}

// establish subscribes watchers from..to-1, each to XMPP user userOf(i),
// and waits until each is active (or failed, or the phase gave up).
func (e *presEnv) establish(ctx context.Context, from, to int, userOf func(int) int) *PresOp {
	l := e.load
	l.grow(to)
	n := to - from
	op := &PresOp{N: n}
	window := make(chan struct{}, e.o.presWindow)
	var active, failed atomic.Int64
	all := make(chan struct{})
	var once sync.Once
	l.mu.Lock()
	l.lat = l.lat[:0]
	l.onActive = func(i int) {
		if i < from || i >= to {
			return
		}
		<-window
		if active.Add(1)+failed.Load() == int64(n) {
			once.Do(func() { close(all) })
		}
	}
	l.mu.Unlock()
	var interval time.Duration
	if e.o.presRate > 0 {
		interval = time.Duration(float64(time.Second) / e.o.presRate)
	}
	before := e.snap()
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		if interval > 0 {
			pace(t0, i-from, interval)
		}
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 40*time.Second)
			defer cancel()
			if err := l.subscribe(sctx, i, userOf(i)); err != nil {
				if l.state[i].Load() != 2 {
					<-window
					if active.Load()+failed.Add(1) == int64(n) {
						once.Do(func() { close(all) })
					}
				}
			}
		}(i)
	}
	wg.Wait()
	if n > 0 {
		select {
		case <-all:
		case <-ctx.Done():
		case <-time.After(40 * time.Second):
			op.Note = "gave up waiting for active NOTIFYs"
		}
	}
	after := e.snap()
	l.mu.Lock()
	l.onActive = nil
	p50, p99, _ := percentiles(l.lat)
	l.mu.Unlock()
	op.Done, op.Failed = int(active.Load()), int(failed.Load())
	op.P50, op.P99 = ms(p50), ms(p99)
	op.finish(before, after)
	return op
}

// refreshAll refreshes min(held, -presence-refresh) watcher dialogs, spread
// over all held, once each and waits for the NOTIFY that follows each
// refresh.
func (e *presEnv) refreshAll(ctx context.Context, held int) *PresOp {
	l := e.load
	n := min(held, e.o.presRefresh)
	op := &PresOp{N: n}
	window := make(chan struct{}, e.o.presWindow)
	var ok, failed atomic.Int64
	var interval time.Duration
	if e.o.presRate > 0 {
		interval = time.Duration(float64(time.Second) / e.o.presRate)
	}
	before := e.snap()
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		if interval > 0 {
			pace(t0, i, interval)
		}
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-window }()
			sctx, cancel := context.WithTimeout(ctx, 40*time.Second)
			defer cancel()
			if err := l.refresh(sctx, int(int64(i)*int64(held)/int64(n))); err != nil {
				failed.Add(1)
				return
			}
			ok.Add(1)
		}(i)
	}
	wg.Wait()
	// Each refresh is followed by a NOTIFY with the full state.
	want := before.notifies + ok.Load()
	waitFor(ctx, func() bool { return l.notifies.Load() >= want }, 40*time.Second)
	after := e.snap()
	op.Done, op.Failed = int(ok.Load()), int(failed.Load())
	if after.notifies < want {
		op.Note = fmt.Sprintf("%d NOTIFYs after refreshes missing", want-after.notifies)
	}
	op.finish(before, after)
	return op
}

// fanout: every XMPP user changes presence once; the fake server routes
// one presence stanza per SIP contact (as a server broadcasts to the
// roster), stox sends one NOTIFY per watcher dialog. The stanzas are
// written in batches, each one user's broadcast, keeping at most
// -presence-window stanzas ahead of the NOTIFYs received.
func (e *presEnv) fanout(ctx context.Context, n, users int, userOf func(int) int, round int) *PresOp {
	l := e.load
	op := &PresOp{N: n}
	shows := []string{"away", "dnd", "xa", "chat"}
	show := shows[round%len(shows)]
	byUser := make([][]int, users)
	for i := range n {
		u := userOf(i)
		byUser[u] = append(byUser[u], i)
	}
	before := e.snap()
	sent := int64(0)
	var buf []byte
	stuck := false // NOTIFYs stopped coming (a lost stream, say): send the rest at once
	for u := range users {
		last, lastAt := l.withBody.Load(), time.Now()
		for !stuck {
			got := l.withBody.Load()
			if sent-(got-before.bodies) < int64(e.o.presWindow) || ctx.Err() != nil {
				break
			}
			if got != last {
				last, lastAt = got, time.Now()
			} else if time.Since(lastAt) > 30*time.Second {
				stuck = true
			}
			time.Sleep(200 * time.Microsecond)
		}
		buf = buf[:0]
		from := presUserPrefix + strconv.Itoa(u) + "@" + xmppDomain + "/bench"
		for _, i := range byUser[u] {
			buf = availableXML(buf, from, presWatcherPrefix+strconv.Itoa(i)+"@"+stoxDomain, show, "round "+strconv.Itoa(round))
		}
		e.fake.send(buf)
		e.fake.injected.Add(int64(len(byUser[u])))
		sent += int64(len(byUser[u]))
	}
	want := int64(n)
	base := before.bodies
	waitFor(ctx, func() bool { return l.withBody.Load()-base >= want }, 60*time.Second)
	after := e.snap()
	op.Done = int(l.withBody.Load() - base)
	if op.Done < n {
		op.Note = fmt.Sprintf("%d NOTIFYs missing", n-op.Done)
	}
	op.finish(before, after)
	return op
}

func waitFor(ctx context.Context, cond func() bool, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for !cond() {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// ---- X->S ----

// presenceOut runs the X->S level in its own stox process.
func presenceOut(ctx context.Context, o options, bin string, logf func(string, ...any)) (*PresenceOut, error) {
	e, err := startPresEnv(ctx, o, bin, logf)
	if err != nil {
		return nil, err
	}
	defer e.close()
	res := &PresenceOut{RSSIdleKB: procStatus(e.stox.PID, "VmRSS")}
	users := o.presUsers
	l := e.load

	// Completion: stox tells the XMPP user subscribed (after the active
	// NOTIFY, PRES-13b).
	var done atomic.Int64
	window := make(chan struct{}, o.presWindow)
	h := func(typ, from, to string) {
		if typ == "subscribed" {
			done.Add(1)
			<-window
		}
	}
	e.fake.onPresence.Store(&h)
	run := func(from, to int) *PresOp {
		n := to - from
		op := &PresOp{N: n}
		done.Store(0)
		var interval time.Duration
		if o.presRate > 0 {
			interval = time.Duration(float64(time.Second) / o.presRate)
		}
		before := e.snap()
		t0 := time.Now()
		var buf []byte
		for j := from; j < to && ctx.Err() == nil; j++ {
			if interval > 0 {
				pace(t0, j-from, interval)
			}
			window <- struct{}{}
			buf = presenceXML(buf[:0], "subscribe", presUserPrefix+strconv.Itoa(j%users)+"@"+xmppDomain,
				presSIPPrefix+strconv.Itoa(j)+"@"+stoxDomain)
			e.fake.send(buf)
			e.fake.injected.Add(1)
		}
		waitFor(ctx, func() bool { return done.Load() >= int64(n) }, 40*time.Second)
		after := e.snap()
		op.Done = int(done.Load())
		if op.Done < n {
			op.Note = fmt.Sprintf("%d subscriptions not confirmed", n-op.Done)
		}
		op.finish(before, after)
		return op
	}

	// Warm-up, granted an hour: these are not refreshed during the run.
	l.grant.Store(presExpires)
	warm := min(200, o.presOut/10)
	if op := run(0, warm); op.Done < warm {
		return nil, fmt.Errorf("presence X->S warm-up: %d of %d subscriptions confirmed\n%s", op.Done, warm, e.stox.Logs())
	}
	res.GoroutinesIdle = e.idleGoroutines(15 * time.Second)

	// Grant enough for stox's refreshes (at 4/5 of it) to start once the
	// last subscription is established, at the rate cap (or an estimate).
	rate := o.presRate
	if rate <= 0 {
		rate = 3000
	}
	n := o.presOut
	res.Granted = int((float64(n)/rate+3)/0.8) + 1
	l.grant.Store(int64(res.Granted))
	var snapMu sync.Mutex // the two snaps are taken on NOTIFY goroutines
	var firstRefresh, lastRefresh presSnap
	var estEnd atomic.Int64
	refreshDone := make(chan struct{})
	base := l.refreshed.Load()
	var once sync.Once
	l.mu.Lock()
	l.onRefresh = func(k int64) {
		snapMu.Lock()
		defer snapMu.Unlock()
		switch k - base {
		case 1:
			firstRefresh = e.snap()
		case int64(n):
			lastRefresh = e.snap()
			once.Do(func() { close(refreshDone) })
		}
	}
	l.mu.Unlock()
	stopPeak := e.peakSampler()
	logf("presence X->S: %d subscriptions, granted %d s (stox refreshes after %d s)", n, res.Granted, res.Granted*4/5)
	res.Establish = run(warm, warm+n)
	estEnd.Store(nowNS())
	res.Mem.HeldKB = procStatus(e.stox.PID, "VmRSS")
	logOp(logf, fmt.Sprintf("out establish %d", n), res.Establish)
	if e.stox.Exited() {
		return nil, fmt.Errorf("presence: stox exited\n%s", e.stox.Logs())
	}
	avail0 := e.fake.available.Load()
	select {
	case <-refreshDone:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Duration(res.Granted)*time.Second + 60*time.Second):
	}
	snapMu.Lock()
	first, last := firstRefresh, lastRefresh
	snapMu.Unlock()
	res.Refresh = &PresOp{N: n, Done: int(l.refreshed.Load() - base)}
	if res.Refresh.Done == n && n > 1 {
		res.Refresh.finish(first, last)
		// finish divides the CPU by N; the first refresh's own work is
		// before the first snap: count n-1 intervals.
		res.Refresh.StoxCPU *= float64(n) / float64(n-1)
		res.Refresh.BenchCPU *= float64(n) / float64(n-1)
		if first.at.Before(epoch.Add(time.Duration(estEnd.Load()))) {
			res.Refresh.Note = "refreshes began before the establishment ended: costs overlap"
		}
	} else {
		res.Refresh.Note = fmt.Sprintf("only %d of %d refreshes completed", res.Refresh.Done, n)
	}
	res.RefreshStanzas = e.fake.available.Load() - avail0
	logOp(logf, fmt.Sprintf("out refresh %d", n), res.Refresh)
	e.lastReq = time.Now()
	stopPeak()
	res.GoroutinesEnd, res.SettleSeconds = e.settle(res.GoroutinesIdle, o.settle)
	e.timerJ()
	e.memory(&res.Mem, n+warm)
	if o.profileDir != "" {
		e.saveHeap(fmt.Sprintf("presence-out-%d", n))
	}
	res.Gauges = e.gauges()
	logf("presence X->S %d held: RSS peak %.1f MB, steady %.1f MB, heap %.1f MB (%.0f B/subscription); %d presence stanzas for %d refresh NOTIFYs; goroutines %.0f (idle %.0f)",
		n+warm, kbMB(res.Mem.PeakKB), kbMB(res.Mem.SteadyKB), mb(res.Mem.Heap), res.Mem.HeapPerSub, res.RefreshStanzas, res.Refresh.Done, res.GoroutinesEnd, res.GoroutinesIdle)
	return res, nil
}

// benchPresence runs the presence phase: S->X levels, then X->S.
func benchPresence(ctx context.Context, o options, logf func(string, ...any)) (*PresenceReport, error) {
	rep := &PresenceReport{Transport: o.presTransport, RateCap: o.presRate, Window: o.presWindow,
		XMPPUsers: o.presUsers, NotifyInterval: o.presNotify.Seconds()}
	logf("presence S->X: levels %v, at most %.0f/s and %d in flight, over %s", o.presCounts, o.presRate, o.presWindow, o.presTransport)
	var err error
	if rep.In, err = presenceIn(ctx, o, o.stoxBin, logf); err != nil {
		return nil, err
	}
	if o.presOut > 0 {
		if rep.Out, err = presenceOut(ctx, o, o.stoxBin, logf); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// presenceTargets: 100,000 subscriptions in at most 300 MB, goroutines back
// to idle.
func presenceTargets(p *PresenceReport) []Target {
	var ts []Target
	if p == nil || p.In == nil {
		return nil
	}
	for _, lv := range p.In.Levels {
		if lv.Subscriptions == 100000 {
			peak := kbMB(lv.Mem.PeakKB)
			ts = append(ts, Target{What: "presence: 100k subscriptions, stox RSS", Want: "<= 300 MB",
				Got: fmt.Sprintf("peak %.0f MB, steady %.0f MB", peak, kbMB(lv.Mem.SteadyKB)), Met: peak <= 300,
				Notes: fmt.Sprintf("live heap %.0f B per subscription", lv.Mem.HeapPerSub)})
		}
		ts = append(ts, Target{What: fmt.Sprintf("presence %d: goroutines back to idle", lv.Subscriptions),
			Want: fmt.Sprintf("<= %.0f", p.In.GoroutinesIdle), Got: fmt.Sprintf("%.0f after %.0f s", lv.GoroutinesEnd, lv.SettleSeconds),
			Met: lv.GoroutinesEnd <= p.In.GoroutinesIdle})
		for _, op := range []*PresOp{lv.Establish, lv.Refresh, lv.Fanout} {
			if op.Done < op.N || op.Failed > 0 || op.Errors > 0 {
				ts = append(ts, Target{What: fmt.Sprintf("presence %d: every operation completes", lv.Subscriptions),
					Want: "all", Got: fmt.Sprintf("%d of %d, %d failed, %d error stanzas %s", op.Done, op.N, op.Failed, op.Errors, op.Note)})
				break
			}
		}
	}
	if o := p.Out; o != nil {
		ts = append(ts, Target{What: "presence X->S: goroutines back to idle", Want: fmt.Sprintf("<= %.0f", o.GoroutinesIdle),
			Got: fmt.Sprintf("%.0f after %.0f s", o.GoroutinesEnd, o.SettleSeconds), Met: o.GoroutinesEnd <= o.GoroutinesIdle})
	}
	return ts
}
