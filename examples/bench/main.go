//go:build unix

// Command bench measures stox end to end through a real Prosody on loopback,
// each path next to its ceiling measured in the same run (issue 3).
//
//	go run ./examples/bench            full run (about 3 minutes), a table
//	go run ./examples/bench -json      the same, as JSON on stdout
//	go run ./examples/bench -quick     fewer messages, for a smoke test
//	go run ./examples/bench -profile DIR   also CPU and allocation profiles
//	                                   of stox during its two main phases
//
// It starts Prosody (testbed; no mod_limits, log level warn, Nagle off: see
// disableNagle), stox built without -race, a no-op echo component
// (echo.bench.test) on the same Prosody, raw XMPP load clients, and SIP
// agents in this process:
//
//   - stox's outbound proxy, the X->S sink: a raw UDP UAS (rawuas.go), one
//     read loop that answers every MESSAGE 200 and hands its body to the
//     receivers' tracker once per transaction (a retransmission is answered
//     again, not counted as a duplicate: as sipgo's server transactions);
//   - the SIP ceiling: a bare sipgo UAS (sip.go);
//   - the S->X load, of stox and of the SIP ceiling alike, and of the
//     overload steps: a raw UDP UAC (rawuac.go), closed loop (conversations
//     with one transaction each at a time) or open loop, with the
//     retransmissions of RFC 3261's non-INVITE client transaction.
//
// The load generators share the 2 cores of the machine the bench was made
// for with Prosody and stox; sipgo's UAS and UAC cost 40-80 us of CPU per
// message, the raw ones little more than their two system calls. The
// bench's own CPU per message is in the report ("bench us/msg").
// Everything listens on loopback and is stopped by PID at the end.
//
// Phases, each over a fixed message count after a warm-up:
//
//	X->S   clients -> Prosody -> stox -> UAS, next to clients -> Prosody -> echo
//	       (closed loop: a window of unreceived messages per client)
//	S->X   UAC -> stox -> Prosody -> clients, next to echo -> Prosody -> clients
//	       and UAC -> bare UAS (closed loop: conversations, one
//	       transaction each at a time, RFC 3428 s8)
//	paired each path again, open loop, at half the lower ceiling in all:
//	       the latency stox adds, with both paths of a direction at once,
//	       a quarter of the ceiling each, so that a stall of the host falls
//	       on both (-separate-latency: also each path alone at half the
//	       ceiling, as before the paired phases)
//	steps  S->X over UDP, open loop, stepping the offered rate: the highest
//	       rate without loss and what happens above it
//
//	presence  (presence.go) SIP presence subscriptions held by a stox process
//	       of its own, with a fake XEP-0114 server (fakexmpp.go) and a SIP
//	       load generator: RSS and live heap at 10,000 and 100,000
//	       subscriptions, CPU per subscription established and per
//	       refresh, the NOTIFY fan-out rate of XMPP presence changes, and
//	       goroutines back to idle. It runs while the stox of the phases
//	       above settles (idle time: sipgo's 32-second UDP timers);
//	       -presence-only runs just this phase
//
// Every message carries its run, index, conversation, sequence number and
// send time (track.go): receivers count losses, duplicates, order
// violations per conversation and latency. stox's cost is measured from
// outside: CPU (/proc/PID/stat) per message, peak RSS (VmHWM), goroutines
// from /metrics and the live heap after a forced GC (/debug/pprof/heap?gc=1).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	n          int
	rounds     int
	latRounds  int
	latN       int
	separate   bool
	quick      bool
	asJSON     bool
	clients    int
	sipUsers   int
	window     int
	workers    int
	steps      bool
	stepDur    time.Duration
	stepList   string
	profileDir string
	profileSec int
	stoxBin    string
	stoxEnv    string
	settle     time.Duration
	nagle      bool
	pin        bool

	presence      bool
	presenceOnly  bool
	presCountsStr string
	presCounts    []int
	presOut       int
	presRate      float64
	presWindow    int
	presUsers     int
	presTransport string
	presNotify    time.Duration
	presRefresh   int
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.n, "n", 80000, "messages per rate phase (X->S, S->X and their ceilings)")
	fs.IntVar(&o.rounds, "rounds", 20, "rounds each rate phase is split into, interleaved with those of the path it is compared with")
	fs.IntVar(&o.latN, "latency-n", 10000, "messages on each path of a half-rate (latency) phase")
	fs.IntVar(&o.latRounds, "latency-rounds", 20, "rounds of each half-rate (latency) phase; the added p99 is the median of the rounds' differences")
	fs.BoolVar(&o.separate, "separate-latency", false, "also measure the added latency with each path alone at half the ceiling (the paired phases' predecessor; about 20 s)")
	fs.BoolVar(&o.quick, "quick", false, "a short run: 4000 messages per phase, three rate steps")
	fs.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	fs.IntVar(&o.clients, "clients", 8, "XMPP load clients")
	fs.IntVar(&o.sipUsers, "sip-users", 64, "SIP users each XMPP client writes to (X->S conversations per client)")
	fs.IntVar(&o.window, "window", 128, "closed loop: messages each XMPP client may have unreceived")
	fs.IntVar(&o.workers, "sip-workers", 256, "closed loop: concurrent UAC conversations, one transaction each")
	fs.BoolVar(&o.steps, "steps", true, "step the offered S->X UDP rate to find the highest rate without loss")
	fs.DurationVar(&o.stepDur, "step-duration", 2*time.Second, "how long each rate step offers load")
	fs.StringVar(&o.stepList, "step-factors", "", "comma-separated multiples of stox's sustained S->X rate to offer (default 0.75,1,1.25,1.5,2,3)")
	fs.StringVar(&o.profileDir, "profile", "", "save CPU profiles of stox during its phases into this directory")
	fs.IntVar(&o.profileSec, "profile-seconds", 3, "length of each CPU profile (-profile), from the start of the phase's first round: with -rounds 1 it covers that phase alone")
	fs.StringVar(&o.stoxEnv, "stox-env", "", "extra environment of stox only, KEY=VALUE[,KEY=VALUE] (e.g. GOGC=200 for an experiment)")
	fs.StringVar(&o.stoxBin, "stox", "", "stox binary (default: go build ./examples/gateway without -race)")
	fs.BoolVar(&o.nagle, "prosody-nagle", false, "leave Prosody's Nagle algorithm on (its default; adds delayed-ACK stalls of up to 40 ms)")
	fs.BoolVar(&o.pin, "pin", true, "message phases: Prosody alone on CPU 0, stox and the load generators on the other CPUs (needs 2 or more)")
	fs.DurationVar(&o.settle, "settle", 45*time.Second, "longest wait at the end for stox's goroutines to return to idle")
	fs.BoolVar(&o.presence, "presence", true, "run the presence phase (presence.go)")
	fs.BoolVar(&o.presenceOnly, "presence-only", false, "run only the presence phase")
	fs.StringVar(&o.presCountsStr, "presence-counts", "10000,100000", "S->X: SIP watcher subscriptions held at each level (ascending; -quick: 1000,5000)")
	fs.IntVar(&o.presOut, "presence-out", 5000, "X->S: subscriptions of XMPP users to SIP users, in their own stox process; 0 skips (-quick: 1000)")
	fs.IntVar(&o.presRefresh, "presence-refresh", 20000, "S->X: dialogs refreshed at each level at most, spread over all of them (-quick: 1000)")
	fs.Float64Var(&o.presRate, "presence-rate", 4000, "new subscriptions and refreshes started per second at most (0: only the window bounds them)")
	fs.IntVar(&o.presWindow, "presence-window", 1000, "subscriptions being established (or refreshes, or fan-out NOTIFYs) in flight at most")
	fs.IntVar(&o.presUsers, "presence-users", 100, "XMPP users the SIP watchers subscribe to (each has subscriptions/users SIP contacts)")
	fs.StringVar(&o.presTransport, "presence-transport", "tcp", "SIP transport between the load generator and stox: tcp, or udp (adds a 33 s wait per level for sipgo's Timer J)")
	// stox holds back a NOTIFY of a dialog that would come sooner than
	// presence.notify_interval (default 5 s) after the previous one. The
	// active NOTIFY that follows an XMPP user's approval is held back too
	// when the approval arrives while the pending NOTIFY is in flight (with
	// the fake server, always): with 5 s every subscription would take 5 s
	// to become active and the window, not stox, would set the rate.
	fs.DurationVar(&o.presNotify, "presence-notify-interval", 200*time.Millisecond, "stox's presence.notify_interval in the presence phase")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.quick {
		o.n = min(o.n, 4000)
		o.latN = min(o.latN, 1000)
		o.stepDur = min(o.stepDur, time.Second)
		if !flagSet(fs, "presence-counts") {
			o.presCountsStr = "1000,5000"
		}
		if !flagSet(fs, "presence-out") {
			o.presOut = 1000
		}
		if !flagSet(fs, "presence-refresh") {
			o.presRefresh = 1000
		}
	}
	for _, f := range strings.Split(o.presCountsStr, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 10 || len(o.presCounts) > 0 && v <= o.presCounts[len(o.presCounts)-1] {
			fmt.Fprintf(stderr, "bench: -presence-counts: want ascending numbers >= 10, not %q\n", o.presCountsStr)
			return 2
		}
		o.presCounts = append(o.presCounts, v)
	}
	if o.presenceOnly {
		o.presence = true
	}
	if o.presWindow < 1 || o.presUsers < 1 || o.presRefresh < 1 || o.presOut < 0 || o.presRate < 0 || (o.presTransport != "udp" && o.presTransport != "tcp") {
		fmt.Fprintln(stderr, "bench: -presence-window, -presence-users, -presence-refresh >= 1, -presence-out, -presence-rate >= 0, -presence-transport udp or tcp")
		return 2
	}
	if o.n < 100 || o.clients < 1 || o.sipUsers < 1 || o.window < 1 || o.workers < 1 || o.rounds < 1 || o.n/o.rounds < 100 || o.latRounds < 1 || o.latN < 100 {
		fmt.Fprintln(stderr, "bench: -n >= 100, -rounds >= 1 with -n/-rounds >= 100, -latency-n >= 100, and -clients, -sip-users, -window, -sip-workers >= 1")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "bench: %5.1fs "+format+"\n", append([]any{time.Since(start).Seconds()}, a...)...)
	}
	rep, err := benchAll(ctx, o, logf)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if o.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printReport(stdout, rep)
	}
	return 0
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// benchAll builds stox once and runs the message phases (bench) and the
// presence phase, each with stox processes of its own.
func benchAll(ctx context.Context, o options, logf func(string, ...any)) (*Report, error) {
	started := time.Now()
	if o.stoxBin == "" {
		logf("building stox (no -race)")
		bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		bin, dir, err := buildStox(bctx)
		cancel()
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.stoxBin = bin
	}
	var pres *PresenceReport
	var presErr error
	presence := func() { pres, presErr = benchPresence(ctx, o, logf) }
	var rep *Report
	if o.presenceOnly {
		rep = &Report{Started: started}
		rep.Host = Host{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadAvg: loadavg(), StoxBuild: "go build (no -race)", Ticks: ticksPerSecond}
		presence()
	} else {
		// The presence phase has stox processes of its own; it runs while
		// the message phases' stox settles, which is idle time (see bench).
		during := presence
		if !o.presence {
			during = nil
		}
		var err error
		if rep, err = bench(ctx, o, logf, during); err != nil {
			return nil, err
		}
		rep.Started = started
	}
	if o.presence {
		if presErr != nil {
			return nil, presErr
		}
		rep.Presence = pres
		rep.Targets = append(rep.Targets, presenceTargets(pres)...)
	}
	rep.Host.LoadAvgAt = loadavg()
	rep.Duration = time.Since(rep.Started).Seconds()
	return rep, nil
}

// Report is the whole run, as printed with -json.
type Report struct {
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_s"`
	Host     Host      `json:"host"`
	Params   Params    `json:"params"`

	XS   Direction `json:"xmpp_to_sip"`
	SX   Direction `json:"sip_to_xmpp"`
	SIP  *Phase    `json:"sip_ceiling"`        // UAC -> bare UAS, closed loop
	Half *Phase    `json:"sip_half,omitempty"` // UAC -> bare UAS at the S->X half rate (-separate-latency)

	Steps        []*Phase `json:"udp_steps"`
	MaxLossless  float64  `json:"udp_max_lossless_per_s"`
	AboveMaxNote string   `json:"udp_above_max"`

	Process Process  `json:"stox_process"`
	Targets []Target `json:"targets"`

	Presence *PresenceReport `json:"presence,omitempty"`
}

type Host struct {
	CPUs      int     `json:"cpus"`
	Pinning   string  `json:"pinning"` // how the message phases share the CPUs
	Go        string  `json:"go"`
	LoadAvg   string  `json:"loadavg_at_start"`
	LoadAvgAt string  `json:"loadavg_at_end"`
	Prosody   string  `json:"prosody"`
	StoxBuild string  `json:"stox_build"`
	Ticks     float64 `json:"cpu_ticks_per_s"`
}

type Params struct {
	N          int     `json:"messages_per_phase"`
	Rounds     int     `json:"rounds_per_phase"`
	LatRounds  int     `json:"rounds_per_latency_phase"`
	LatN       int     `json:"messages_per_latency_phase"` // on each path: -latency-n, at least 100 a round
	Separate   bool    `json:"separate_latency_phases"`
	Warmup     int     `json:"warmup_messages"`
	Clients    int     `json:"xmpp_clients"`
	SIPUsers   int     `json:"sip_users_per_client"`
	Window     int     `json:"window_per_client"`
	Workers    int     `json:"sip_workers"`
	StepPairs  int     `json:"step_conversations"`
	StepDur    float64 `json:"step_duration_s"`
	GiveUpStep float64 `json:"step_give_up_s"`
}

// Direction is one direction: its ceilings, stox, and the half-rate runs.
type Direction struct {
	Ceiling     *Phase  `json:"xmpp_ceiling"` // through the echo component
	Stox        *Phase  `json:"stox"`
	PathCeiling float64 `json:"path_ceiling_per_s"` // the lower of the XMPP and SIP ceilings
	RatioXMPP   float64 `json:"ratio_to_xmpp_ceiling"`
	RatioSIP    float64 `json:"ratio_to_sip_ceiling"`
	Ratio       float64 `json:"ratio_to_path_ceiling"`
	// RoundRatios are stox's rate over the path ceiling in each round.
	RoundRatios []float64 `json:"round_ratios,omitempty"`
	HalfRate    float64   `json:"half_rate_per_s"` // half the path ceiling
	// Separate (-separate-latency): each path alone at HalfRate.
	HalfCeiling *Phase  `json:"half_xmpp_ceiling,omitempty"`
	HalfStox    *Phase  `json:"half_stox,omitempty"`
	AddedP50    float64 `json:"added_latency_p50_ms,omitempty"` // stox path minus the echo path, at half rate
	AddedP99    float64 `json:"added_latency_p99_ms,omitempty"`
	// The added p99 of each round (the figures above pool the rounds'
	// messages): one stall of the host in one round shows here.
	RoundAddedP99 []float64 `json:"round_added_latency_p99_ms,omitempty"`
	// Their median.
	MedianAddedP99 float64 `json:"added_latency_p99_median_round_ms,omitempty"`
	// Paired: both paths at the same time, each at half of HalfRate, so
	// that Prosody carries HalfRate in all and every stall of the host or
	// of Prosody falls on both paths' messages alike. The figure the
	// target is checked against is the median of the rounds' added p99.
	PairCeiling        *Phase    `json:"paired_xmpp_ceiling"`
	PairStox           *Phase    `json:"paired_stox"`
	PairAddedP50       float64   `json:"paired_added_latency_p50_ms"`
	PairAddedP99       float64   `json:"paired_added_latency_p99_ms"`
	RoundPairAddedP99  []float64 `json:"round_paired_added_latency_p99_ms,omitempty"`
	MedianPairAddedP99 float64   `json:"paired_added_latency_p99_median_round_ms"`
}

type Process struct {
	GoroutinesIdle  float64 `json:"goroutines_idle"`
	GoroutinesPeak  float64 `json:"goroutines_peak_seen"`
	GoroutinesEnd   float64 `json:"goroutines_end"`
	SettleSeconds   float64 `json:"settle_s"`
	SessionsEnd     float64 `json:"sessions_end"`
	RSSIdleKB       int64   `json:"rss_idle_kb"`
	RSSPeakKB       int64   `json:"rss_peak_kb"` // VmHWM
	RSSEndKB        int64   `json:"rss_end_kb"`
	HeapIdle        int64   `json:"heap_idle_bytes"` // after a forced GC
	HeapEnd         int64   `json:"heap_end_bytes"`
	MetricsXSOK     float64 `json:"metrics_xmpp_to_sip_delivered"`
	MetricsXSFailed float64 `json:"metrics_xmpp_to_sip_failed"`
	MetricsXSRefuse float64 `json:"metrics_xmpp_to_sip_refused"`
	MetricsSXOK     float64 `json:"metrics_sip_to_xmpp_accepted"`
	MetricsSXInline float64 `json:"metrics_sip_to_xmpp_on_read_loop"`
	MetricsSXRefuse float64 `json:"metrics_sip_to_xmpp_refused"`
	SIPWarnings     int64   `json:"bench_sipgo_warnings"`
}

type Target struct {
	What  string `json:"what"`
	Want  string `json:"want"`
	Got   string `json:"got"`
	Met   bool   `json:"met"`
	Notes string `json:"notes,omitempty"`
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if len(b) > 14 {
		b = b[:14]
	}
	return string(b)
}

// bench runs the message phases. during, if not nil, runs on its own
// goroutine while stox settles at the end (a wait of up to -settle for
// sipgo's 32-second UDP transaction timers, with stox, Prosody and the load
// generators idle); bench returns once it has returned too.
func bench(ctx context.Context, o options, logf func(string, ...any), during func()) (rep *Report, err error) {
	rep = &Report{Started: time.Now()}
	rep.Host = Host{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadAvg: loadavg(), StoxBuild: "go build (no -race)", Ticks: ticksPerSecond}
	warm := max(min(o.n/10, 4000), 500)
	stepPairs := 4096
	giveUpStep := 8 * time.Second
	// The latency phases: LR rounds of halfRound messages on each path.
	LR := max(o.latRounds, 1)
	halfRound := max(o.latN/LR, 100)
	rep.Params = Params{N: o.n / o.rounds * o.rounds, Rounds: o.rounds, LatRounds: LR, LatN: halfRound * LR, Separate: o.separate, Warmup: warm, Clients: o.clients, SIPUsers: o.sipUsers, Window: o.window,
		Workers: o.workers, StepPairs: stepPairs, StepDur: o.stepDur.Seconds(), GiveUpStep: giveUpStep.Seconds()}

	// Prosody is single-threaded and the limit of every path: on its own
	// CPU, what else runs (stox, or the echo component, and the load
	// generators) does not take turns on it. Unpinned, the scheduler mixed
	// them, and how much that cost Prosody depended on how busy the other
	// programs were (see the README's Benchmarks section).
	rep.Host.Pinning = "none"
	var unpin func()
	var all []int // the CPUs we may use
	if o.pin {
		if all, err = allowedCPUs(); err != nil {
			return nil, err
		}
	}
	if len(all) >= 2 {
		if err := setAffinity(os.Getpid(), all[1:]); err != nil {
			return nil, err
		}
		procs := runtime.GOMAXPROCS(len(all) - 1) // Go sized it at start, from every CPU
		unpin = func() {
			if err := setAffinity(os.Getpid(), all); err != nil {
				logf("%v", err)
			}
			runtime.GOMAXPROCS(procs)
		}
		defer func() {
			if unpin != nil {
				unpin()
			}
		}()
		rep.Host.Pinning = fmt.Sprintf("Prosody on CPU %d; stox, the echo component and the load generators on CPU %s", all[0], cpuList(all[1:]))
	}

	setup, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r, err := startRig(setup, o, logf)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if unpin != nil {
		if err := setAffinity(r.prosody.PID(), all[:1]); err != nil {
			return nil, err
		}
	}
	rep.Host.Prosody = prosodyVersion()
	stoxAddr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(r.sipPort))
	bareAddr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(r.bareUASPort))
	const (
		pathXSEcho = "clients -> Prosody -> echo component"
		pathXSStox = "clients -> Prosody -> stox -> SIP UAS"
		pathSXStox = "SIP UAC -> stox -> Prosody -> clients"
		pathSIP    = "SIP UAC -> bare sipgo UAS"
		giveUp     = timerF
	)
	check := func(p *Phase) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if r.stox.Exited() {
			return fmt.Errorf("stox exited during %s\n%s", p.Name, r.stox.Logs())
		}
		logf("%-14s %8.0f msg/s  got %d/%d  refused %d  dup %d  order %d  p50 %.2f ms  p99 %.2f ms  stox %.1f us/msg  prosody busy %.2f  udp drops %v",
			p.Name, p.Rate, p.Got, p.Sent, p.Refused, p.Dups, p.Order, p.P50, p.P99, p.StoxCPU, p.busy(), p.UDPDrops)
		return nil
	}
	profile := func(name string, p func() *Phase) *Phase {
		if o.profileDir == "" {
			return p()
		}
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			logf("profile %s: %v", name, err)
			return p()
		}
		r.saveAllocs(o.profileDir, name+".allocs0")
		ch := r.profile(o.profileDir, name, o.profileSec)
		ph := p()
		if err := <-ch; err != nil {
			logf("profile %s: %v", name, err)
		}
		r.saveAllocs(o.profileDir, name+".allocs1")
		return ph
	}

	logf("warm-up: %d messages on each path", warm)
	for _, p := range []*Phase{
		r.runXS("warm-up", pathXSEcho, echoDomain, warm, 0),
		r.runXS("warm-up", pathXSStox, stoxDomain, warm, 0),
		r.runSXEcho("warm-up", warm, 0),
		r.runSX("warm-up", pathSIP, bareAddr, warm, 0, 0, giveUp),
		r.runSX("warm-up", pathSXStox, stoxAddr, warm, 0, 0, giveUp),
	} {
		if err := check(p); err != nil {
			return nil, err
		}
		if p.Got < p.Sent {
			return nil, fmt.Errorf("warm-up on %s: %d of %d messages arrived (%d refused)\n%s", p.Path, p.Got, p.Sent, p.Refused, r.stox.Logs())
		}
	}
	// Idle: once the goroutine count has stopped falling (workers that
	// outlive one message exit after a short idle time).
	idle, err := r.settledMetrics(15 * time.Second)
	if err != nil {
		return nil, err
	}
	if o.profileDir != "" {
		r.saveHeap(o.profileDir, "heap-idle")
	}
	rep.Process.GoroutinesIdle = idle["go_goroutines"]
	rep.Process.RSSIdleKB = procStatus(r.stox.PID, "VmRSS")
	rep.Process.HeapIdle = r.heapAlloc()
	peakG := rep.Process.GoroutinesIdle
	stopPeak := make(chan struct{})
	peakDone := make(chan struct{})
	go func() { // goroutine peak, sampled
		defer close(peakDone)
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopPeak:
				return
			case <-tk.C:
				if m, err := r.metrics(); err == nil && m["go_goroutines"] > peakG {
					peakG = m["go_goroutines"]
				}
			}
		}
	}()
	defer func() {
		select {
		case <-stopPeak:
		default:
			close(stopPeak)
		}
		<-peakDone
	}()

	// Each path is measured in o.rounds rounds, interleaved with the rounds
	// of the path it is compared with (ceiling, stox, stox, ceiling, ...),
	// and its figures are those of all its rounds together (mergeRounds):
	// a change of the host's speed during the run (this bench shares two
	// cores with everything else) then weighs on both alike, instead of on
	// whichever path ran while it lasted.
	R := o.rounds
	roundN := o.n / R
	// interleave runs the phases of each round in order, R times, checks
	// each, and merges each phase's rounds under its name.
	//
	// Every phase starts once the work the one before left behind is done
	// (rig.settle), and odd rounds run the phases in reverse order, so
	// that each phase follows each of its neighbours equally often.
	// Without both, whichever phase ran right after the SIP ceiling
	// (Prosody idle, the load generators' CPU saturated) cost Prosody
	// more CPU per message: with the S->X stox phase always there, S->X
	// measured 0.81-0.98 of its ceiling; with the echo phase there
	// instead, 1.01-1.09, the echo paying.
	interleave := func(R int, names []string, run func(round, i int) *Phase) ([]*Phase, error) {
		rounds := make([][]*Phase, len(names))
		for round := range R {
			for j := range names {
				i := j
				if round%2 == 1 {
					i = len(names) - 1 - j
				}
				r.settle()
				p := run(round, i)
				if R > 1 {
					p.Name = fmt.Sprintf("%s/%d", names[i], round+1)
				}
				if err := check(p); err != nil {
					return nil, err
				}
				rounds[i] = append(rounds[i], p)
			}
		}
		merged := make([]*Phase, len(names))
		for i, name := range names {
			merged[i] = mergeRounds(name, rounds[i])
		}
		return merged, nil
	}

	// X->S: the ceiling and stox.
	logf("X->S: %d messages per phase, in %d rounds", roundN*R, R)
	xs := &rep.XS
	ps, err := interleave(R, []string{"xs-ceiling", "xs-stox"}, func(round, i int) *Phase {
		if i == 0 {
			return r.runXS("xs-ceiling", pathXSEcho, echoDomain, roundN, 0)
		}
		if round == 0 {
			return profile("xs-stox", func() *Phase { return r.runXS("xs-stox", pathXSStox, stoxDomain, roundN, 0) })
		}
		return r.runXS("xs-stox", pathXSStox, stoxDomain, roundN, 0)
	})
	if err != nil {
		return nil, err
	}
	xs.Ceiling, xs.Stox = ps[0], ps[1]

	// S->X: the XMPP ceiling, the SIP ceiling and stox.
	logf("S->X: %d messages per phase, in %d rounds", roundN*R, R)
	sx := &rep.SX
	ps, err = interleave(R, []string{"sx-ceiling", "sip-ceiling", "sx-stox"}, func(round, i int) *Phase {
		switch {
		case i == 0:
			return r.runSXEcho("sx-ceiling", roundN, 0)
		case i == 1:
			return r.runSX("sip-ceiling", pathSIP, bareAddr, roundN, 0, 0, giveUp)
		case round == 0:
			return profile("sx-stox", func() *Phase { return r.runSX("sx-stox", pathSXStox, stoxAddr, roundN, 0, 0, giveUp) })
		}
		return r.runSX("sx-stox", pathSXStox, stoxAddr, roundN, 0, 0, giveUp)
	})
	if err != nil {
		return nil, err
	}
	sx.Ceiling, rep.SIP, sx.Stox = ps[0], ps[1], ps[2]
	for _, d := range []*Direction{xs, sx} {
		d.PathCeiling = min(d.Ceiling.Rate, rep.SIP.Rate)
		d.RatioXMPP = d.Stox.Rate / d.Ceiling.Rate
		d.RatioSIP = d.Stox.Rate / rep.SIP.Rate
		d.Ratio = d.Stox.Rate / d.PathCeiling
		d.HalfRate = d.PathCeiling / 2
		for k := range d.Stox.RoundRates {
			d.RoundRatios = append(d.RoundRatios, d.Stox.RoundRates[k]/min(d.Ceiling.RoundRates[k], rep.SIP.RoundRates[k]))
		}
	}

	// Latency, open loop, at half of each path's ceiling, in rounds of their
	// own (LR of halfRound, above: -latency-rounds, -latency-n): a stall of
	// the host (tens of ms, every few seconds here) sets the p99 of the
	// round it falls in, so the pooled p99s of two paths differ by whichever
	// got the stalls; the median of the rounds' differences does not. Even
	// paired, a stall costs stox's S->X path more (it works off the burst
	// the stall leaves at its CPU per message, where the echo component
	// writes it straight through: +2 to +12 ms in such rounds), so the
	// rounds are short (500 messages) and many: with ten of 1,000, half of a
	// run's rounds had a stall often enough to lift the median.

	// Separate (-separate-latency): each path alone, the phases of a
	// round one after the other.
	if o.separate {
		logf("half rate: X->S %.0f msg/s, S->X %.0f msg/s, %d messages each, in %d rounds", xs.HalfRate, sx.HalfRate, halfRound*LR, LR)
		ps, err = interleave(LR, []string{"xs-half-ceil", "xs-half-stox", "sx-half-ceil", "sip-half", "sx-half-stox"}, func(_, i int) *Phase {
			switch i {
			case 0:
				return r.runXS("xs-half-ceil", pathXSEcho, echoDomain, halfRound, xs.HalfRate)
			case 1:
				return r.runXS("xs-half-stox", pathXSStox, stoxDomain, halfRound, xs.HalfRate)
			case 2:
				return r.runSXEcho("sx-half-ceil", halfRound, sx.HalfRate)
			case 3:
				return r.runSX("sip-half", pathSIP, bareAddr, halfRound, sx.HalfRate, o.workers, giveUp)
			}
			return r.runSX("sx-half-stox", pathSXStox, stoxAddr, halfRound, sx.HalfRate, o.workers, giveUp)
		})
		if err != nil {
			return nil, err
		}
		xs.HalfCeiling, xs.HalfStox, sx.HalfCeiling, rep.Half, sx.HalfStox = ps[0], ps[1], ps[2], ps[3], ps[4]
		for _, d := range []*Direction{xs, sx} {
			d.AddedP50 = d.HalfStox.P50 - d.HalfCeiling.P50
			d.AddedP99 = d.HalfStox.P99 - d.HalfCeiling.P99
			d.RoundAddedP99 = roundDiffs(d.HalfStox.RoundP99, d.HalfCeiling.RoundP99)
			d.MedianAddedP99 = median(d.RoundAddedP99)
		}
	}
	// Paired, at half of each path's ceiling in all: the two paths of a
	// direction at once, each at a quarter of the ceiling, in rounds; the
	// echo path's first send lags half an interval behind stox's.
	logf("paired: X->S %.0f msg/s, S->X %.0f msg/s, half on each path, %d messages on each, in %d rounds", xs.HalfRate, sx.HalfRate, halfRound*LR, LR)
	type pairRun struct {
		d    *Direction
		name string
		run  func() (e, s *Phase)
	}
	pairs := []pairRun{
		{xs, "xs-pair", func() (e, s *Phase) {
			rate := xs.HalfRate / 2
			lag := time.Duration(float64(len(r.clients)) / rate * 1e9 / 2)
			return r.runPair(
				func() *Phase { return r.runXSLag("xs-pair-ceil", pathXSEcho, echoDomain, halfRound, rate, lag) },
				func() *Phase { return r.runXS("xs-pair-stox", pathXSStox, stoxDomain, halfRound, rate) })
		}},
		{sx, "sx-pair", func() (e, s *Phase) {
			rate := sx.HalfRate / 2
			lag := time.Duration(1 / rate * 1e9 / 2)
			return r.runPair(
				func() *Phase { return r.runSXEchoLag("sx-pair-ceil", halfRound, rate, lag) },
				func() *Phase {
					return r.runSX("sx-pair-stox", pathSXStox, stoxAddr, halfRound, rate, o.workers, giveUp)
				})
		}},
	}
	for _, pr := range pairs {
		var es, ss []*Phase
		for round := range LR {
			r.settle()
			e, s := pr.run()
			if LR > 1 {
				e.Name = fmt.Sprintf("%s/%d", e.Name, round+1)
				s.Name = fmt.Sprintf("%s/%d", s.Name, round+1)
			}
			for _, p := range []*Phase{e, s} {
				if err := check(p); err != nil {
					return nil, err
				}
			}
			es, ss = append(es, e), append(ss, s)
		}
		d := pr.d
		d.PairCeiling, d.PairStox = mergeRounds(pr.name+"-ceil", es), mergeRounds(pr.name+"-stox", ss)
		d.PairAddedP50 = d.PairStox.P50 - d.PairCeiling.P50
		d.PairAddedP99 = d.PairStox.P99 - d.PairCeiling.P99
		d.RoundPairAddedP99 = roundDiffs(d.PairStox.RoundP99, d.PairCeiling.RoundP99)
		d.MedianPairAddedP99 = median(d.RoundPairAddedP99)
	}

	// The overload steps test how stox sheds more than it can take, not a
	// ratio to a ceiling: the load generator, offering up to three times
	// stox's rate, must not share stox's one CPU (one run storming
	// pinned, with 60,000 datagrams dropped at 19,000 msg/s offered).
	// Everything gets every CPU back, and stox's Go runtime follows
	// within a second or two.
	if unpin != nil && o.steps {
		unpin()
		unpin = nil
		for _, pid := range []int{r.stox.PID, r.prosody.PID()} {
			if err := setAffinity(pid, all); err != nil {
				return nil, err
			}
		}
		if err := r.waitGOMAXPROCS(len(all), 5*time.Second); err != nil {
			return nil, err
		}
		rep.Host.Pinning += " (not in the overload steps)"
	}

	// S->X over UDP, open loop, stepping the offered rate from three
	// quarters of stox's sustained rate to three times it.
	if o.steps {
		factors := []float64{0.75, 1.0, 1.25, 1.5, 2.0, 3.0}
		if o.quick {
			factors = []float64{0.5, 1.0, 2.0}
		}
		if o.stepList != "" {
			factors = nil
			for _, f := range strings.Split(o.stepList, ",") {
				v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
				if err != nil || v <= 0 {
					return nil, fmt.Errorf("-step-factors: %q is not a positive number", f)
				}
				factors = append(factors, v)
			}
		}
		base := sx.Stox.Rate
		lossy := 0
		for _, f := range factors { // every step: what happens far above the limit is the point
			rate := base * f
			n := int(rate * o.stepDur.Seconds())
			name := fmt.Sprintf("step x%.2f", f)
			p := profile(strings.ReplaceAll(name, " ", "-"), func() *Phase {
				return r.runSX(name, pathSXStox, stoxAddr, n, rate, stepPairs, giveUpStep)
			})
			if err := check(p); err != nil {
				return nil, err
			}
			logf("               202 %d  other %v  retransmissions %d  stox socket drops %d  202 p99 %.1f ms",
				p.SIP.Codes["202"], p.SIP.Codes, p.SIP.Retransmits, p.UDPDrops["stox"], p.SIP.P99)
			rep.Steps = append(rep.Steps, p)
			if lossless(p) {
				if lossy == 0 {
					rep.MaxLossless = p.Offered
				}
			} else {
				lossy++
			}
		}
		rep.AboveMaxNote = aboveMax(rep)
	}

	// Back to idle: sipgo keeps UDP server transactions for Timer J (32 s).
	close(stopPeak)
	<-peakDone
	if unpin != nil {
		unpin() // the presence phase's processes get every CPU
		unpin = nil
	}
	if during != nil {
		duringDone := make(chan struct{})
		go func() {
			defer close(duringDone)
			during()
		}()
		defer func() { <-duringDone }()
	}
	rep.Process.GoroutinesPeak = peakG
	settleStart := time.Now()
	var end map[string]float64
	logf("waiting up to %s for stox to return to idle", o.settle)
	for {
		end, err = r.metrics()
		if err != nil {
			return nil, err
		}
		rep.Process.HeapEnd = r.heapAlloc()
		if end["go_goroutines"] <= rep.Process.GoroutinesIdle && heapSettled(rep.Process.HeapIdle, rep.Process.HeapEnd) ||
			time.Since(settleStart) > o.settle {
			break
		}
		time.Sleep(2 * time.Second)
	}
	rep.Process.SettleSeconds = time.Since(settleStart).Seconds()
	if o.profileDir != "" {
		r.saveHeap(o.profileDir, "heap-end")
	}
	rep.Process.GoroutinesEnd = end["go_goroutines"]
	rep.Process.SessionsEnd = end["stox_sessions"]
	rep.Process.RSSEndKB = procStatus(r.stox.PID, "VmRSS")
	rep.Process.RSSPeakKB = procStatus(r.stox.PID, "VmHWM")
	rep.Process.MetricsXSOK = end[`stox_messages_total{direction="xmpp_to_sip",result="delivered"}`]
	rep.Process.MetricsXSFailed = end[`stox_messages_total{direction="xmpp_to_sip",result="failed"}`]
	rep.Process.MetricsXSRefuse = end[`stox_messages_total{direction="xmpp_to_sip",result="refused"}`]
	rep.Process.MetricsSXOK = end[`stox_messages_total{direction="sip_to_xmpp",result="accepted"}`]
	rep.Process.MetricsSXInline = end[`stox_sip_message_inline_total`]
	rep.Process.MetricsSXRefuse = end[`stox_messages_total{direction="sip_to_xmpp",result="refused"}`]
	rep.Process.SIPWarnings = sipLogs.warnings.Load()
	rep.Host.LoadAvgAt = loadavg()
	rep.Targets = targets(rep)
	rep.Duration = time.Since(rep.Started).Seconds()
	return rep, nil
}

// heapSettled: the live heap is back near its idle size. The allowance is
// for tables that keep their peak size once traffic stops (sipgo's
// transaction map: Go maps never shrink; the runtime's goroutine table);
// per-message state left behind by the 300,000-500,000 messages of a run
// would exceed it at 40 bytes a message.
func heapSettled(idle, now int64) bool { return now <= idle+16<<20 }

// lossless: every message delivered once, every transaction answered 202.
func lossless(p *Phase) bool {
	return p.Got == p.Sent && p.Dups == 0 && p.SIP != nil && p.SIP.Codes["202"] == p.Sent
}

func aboveMax(rep *Report) string {
	for _, p := range rep.Steps {
		if lossless(p) {
			continue
		}
		s := p.SIP
		return fmt.Sprintf("at %.0f msg/s offered: %d of %d delivered, %d duplicates, %d order violations; "+
			"final responses %v (%d with Retry-After); %d retransmissions; %d datagrams dropped at stox's socket; 202 p99 %.1f ms",
			p.Offered, p.Got, p.Sent, p.Dups, p.Order, s.Codes, s.RetryAfter, s.Retransmits, p.UDPDrops["stox"], s.P99)
	}
	if len(rep.Steps) > 0 {
		return "no loss at any step"
	}
	return ""
}

func prosodyVersion() string {
	b, err := os.ReadFile("/usr/lib/prosody/prosody.version")
	if err != nil {
		return "prosody"
	}
	return "prosody " + string(trimNL(b))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// median is the middle value of v (the mean of the two middle ones for an
// even count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// roundDiffs is a[k]-b[k] for each round both have.
func roundDiffs(a, b []float64) []float64 {
	var d []float64
	for k := range min(len(a), len(b)) {
		d = append(d, a[k]-b[k])
	}
	return d
}

// cpuList formats CPU numbers as "1" or "1,2,3".
func cpuList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}
