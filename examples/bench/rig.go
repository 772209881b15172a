//go:build unix

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stox-gw/stox/integration/testbed"
)

// The deployment under test: Prosody serves bench.test; stox is the
// component sip.bench.test; the echo component echo.bench.test is the no-op
// component of the ceilings. SIP users are reached through the bench's UAS
// (stox's outbound proxy).
const (
	xmppDomain = "bench.test"
	stoxDomain = "sip.bench.test"
	echoDomain = "echo.bench.test"
	secret     = "bench-secret"
	password   = "benchpw"
	resource   = "load"
)

type rig struct {
	o       options
	prosody *testbed.Prosody
	stox    *testbed.Stox
	control *testbed.Client

	sipPort, uasPort, uacPort, bareUASPort, metricsPort int
	buildDir                                            string // of the stox binary we built

	clients []*xconn
	echo    *xconn
	uas     *rawUAS // stox's outbound proxy, answers 200
	bareUAS *uas    // the SIP ceiling, a bare sipgo UAS, answers 202
	uac     *rawUAC // the S->X load generator, of stox and of the SIP ceiling

	runs    runTable
	nextRun atomic.Int64
	errors  atomic.Int64 // type='error' message stanzas the load clients got
	readers sync.WaitGroup
}

// buildStox builds the daemon without the race detector (testbed.BuildStox
// uses -race, which would measure the detector) into a new temporary
// directory, which the caller removes.
func buildStox(ctx context.Context) (bin, dir string, err error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", "", err
	}
	if dir, err = os.MkdirTemp("", "stox-bench-*"); err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "stox")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./examples/gateway")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", "", fmt.Errorf("go build ./examples/gateway: %w\n%s", err, out)
	}
	return bin, dir, nil
}

// disableNagle restarts Prosody with network_settings.nagle = false. Prosody
// 0.12 leaves Nagle's algorithm on by default; with it, a small stanza it
// writes to a socket that has unacknowledged data waits for the peer's
// delayed ACK (up to 40 ms on Linux), on the ceiling paths and stox's
// alike, which hides a 2 ms latency budget under 40 ms of noise.
func disableNagle(ctx context.Context, p *testbed.Prosody) error {
	if err := p.Stop(); err != nil {
		return err
	}
	path := filepath.Join(p.Dir, "prosody.cfg.lua")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	// A global option must come before the first VirtualHost.
	b = append([]byte("network_settings = { nagle = false }\n"), b...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	return p.Restart(ctx)
}

func reserve(network string) int {
	p, err := testbed.ReservePort(network)
	if err != nil {
		panic(err)
	}
	return p
}

func userName(i int) string { return "x" + strconv.Itoa(i) }

func startRig(ctx context.Context, o options, logf func(string, ...any)) (_ *rig, err error) {
	r := &rig{o: o, runs: runTable{m: make(map[int]*tracker)}}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	users := map[string]string{"control": password}
	for i := range o.clients {
		users[userName(i)] = password
	}
	logf("starting Prosody (%d users)", len(users))
	r.prosody, err = testbed.StartProsody(ctx, testbed.ProsodyConfig{
		Domain:     xmppDomain,
		Components: map[string]string{stoxDomain: secret, echoDomain: secret},
		Users:      users,
		LogLevel:   "warn",
	})
	if err != nil {
		return nil, err
	}
	if !o.nagle {
		if err := disableNagle(ctx, r.prosody); err != nil {
			return nil, err
		}
	}
	bin := o.stoxBin
	if bin == "" {
		logf("building stox (no -race)")
		if bin, r.buildDir, err = buildStox(ctx); err != nil {
			return nil, err
		}
	}
	r.sipPort = reserve(testbed.TCPUDP)
	r.uasPort = reserve(testbed.UDP)
	r.uacPort = reserve(testbed.UDP)
	r.bareUASPort = reserve(testbed.UDP)
	r.metricsPort = reserve(testbed.TCP)

	deliver := func(body []byte) { r.runs.deliver(body) }
	if r.uas, err = startRawUAS(r.uasPort, 200, deliver); err != nil {
		return nil, err
	}
	if r.bareUAS, err = startUAS(r.bareUASPort, 202, deliver); err != nil {
		return nil, err
	}
	if r.uac, err = startRawUAC(r.uacPort); err != nil {
		return nil, err
	}

	logf("starting stox")
	r.stox, err = startStoxEnv(ctx, bin, r.stoxConfig(), o.stoxEnv)
	if err != nil {
		return nil, err
	}
	r.control, err = testbed.Dial(ctx, r.prosody.C2SAddr, "control@"+xmppDomain, password, "control", testbed.WithPresence())
	if err != nil {
		return nil, err
	}
	if err := r.stox.WaitReady(ctx, r.control, stoxDomain); err != nil {
		return nil, err
	}

	logf("connecting %d XMPP clients and the echo component", o.clients)
	for i := range o.clients {
		c, err := dialClient(ctx, r.prosody.C2SAddr, userName(i), xmppDomain, password, resource)
		if err != nil {
			return nil, err
		}
		r.clients = append(r.clients, c)
		r.startReader(c)
	}
	if r.echo, err = dialComponent(ctx, r.prosody.ComponentAddr, echoDomain, secret); err != nil {
		return nil, err
	}
	r.startReader(r.echo)
	return r, nil
}

// startStoxEnv starts stox with extra environment (-stox-env). testbed.
// StartStox passes this process's environment on, so the variables are set
// around the start only (the Go runtime of this process read its own GOGC
// and GODEBUG at start-up).
func startStoxEnv(ctx context.Context, bin, conf, env string) (*testbed.Stox, error) {
	var restore []func()
	for _, kv := range strings.Split(env, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			continue
		}
		old, had := os.LookupEnv(k)
		_ = os.Setenv(k, v)
		restore = append(restore, func() {
			if had {
				_ = os.Setenv(k, old)
			} else {
				_ = os.Unsetenv(k)
			}
		})
	}
	defer func() {
		for _, f := range restore {
			f()
		}
	}()
	return testbed.StartStox(ctx, bin, conf)
}

func (r *rig) startReader(c *xconn) {
	r.readers.Add(1)
	go func() {
		defer r.readers.Done()
		_ = c.scan(func(st []byte) {
			body, isErr := messageBody(st)
			if isErr {
				r.errors.Add(1)
				return
			}
			if body != nil {
				r.runs.deliver(body)
			}
		})
	}()
}

func (r *rig) stoxConfig() string {
	return fmt.Sprintf(`
[xmpp]
component = %q
server = %q
secret = %q
domains = [%q]

[sip]
listen = ["udp:127.0.0.1:%d", "tcp:127.0.0.1:%d"]
outbound_proxy = "sip:127.0.0.1:%d;transport=udp"
trusted = ["127.0.0.1/32"]

[metrics]
listen = "127.0.0.1:%d"
pprof = true

[log]
level = "warn"
`, stoxDomain, r.prosody.ComponentAddr, secret, xmppDomain, r.sipPort, r.sipPort, r.uasPort, r.metricsPort)
}

func (r *rig) close() {
	for _, c := range r.clients {
		c.close()
	}
	if r.echo != nil {
		r.echo.close()
	}
	if r.control != nil {
		_ = r.control.Close()
	}
	if r.stox != nil {
		if err := r.stox.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: stox did not stop cleanly: %v\n%s", err, r.stox.Logs())
		}
	}
	if r.uac != nil {
		r.uac.close()
	}
	if r.uas != nil {
		r.uas.close()
	}
	if r.bareUAS != nil {
		r.bareUAS.close()
	}
	if r.prosody != nil {
		_ = r.prosody.Close()
	}
	r.readers.Wait()
	if r.buildDir != "" {
		_ = os.RemoveAll(r.buildDir)
	}
}

func (r *rig) newRun(n, pairs int) (int, *tracker) {
	run := int(r.nextRun.Add(1))
	t := newTracker(n, pairs)
	r.runs.add(run, t)
	return run, t
}

// ---- the stox process, seen from outside ----

// cpuTicks returns utime+stime of pid in clock ticks (USER_HZ = 100 on Linux).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	// The command name may contain spaces; fields start after the last ')'.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

const ticksPerSecond = 100

// procStatus returns a field of /proc/PID/status in kB (VmRSS, VmHWM).
func procStatus(pid int, field string) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// metrics returns stox's /metrics as name{labels} -> value.
func (r *rig) metrics() (map[string]float64, error) { return metricsPort(r.metricsPort).metrics() }

// waitGOMAXPROCS waits until stox's GOMAXPROCS is n (Go rechecks the CPUs
// it may use about once a second).
func (r *rig) waitGOMAXPROCS(n int, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		m, err := r.metrics()
		if err != nil {
			return err
		}
		got := int(m["go_sched_gomaxprocs_threads"])
		if got == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stox's GOMAXPROCS is still %d after %s, want %d", got, max, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// heapAlloc forces a GC in stox (pprof's gc=1) and returns its live heap.
func (r *rig) heapAlloc() int64 { return metricsPort(r.metricsPort).heapAlloc() }

func (r *rig) get(path string) ([]byte, error) { return metricsPort(r.metricsPort).get(path) }

// metricsPort is the port of a stox process's metrics.listen (with pprof).
type metricsPort int

// metrics returns /metrics as name{labels} -> value.
func (p metricsPort) metrics() (map[string]float64, error) {
	b, err := p.get("/metrics")
	if err != nil {
		return nil, err
	}
	m := make(map[string]float64)
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m, nil
}

// heapAlloc forces a GC (pprof's gc=1) and returns the live heap.
func (p metricsPort) heapAlloc() int64 {
	b, err := p.get("/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// httpClient keeps no idle connection: each would hold a goroutine in stox
// and spoil the goroutine count.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func (p metricsPort) get(path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:"+strconv.Itoa(int(p))+path, nil)
	res, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", path, res.Status)
	}
	return io.ReadAll(res.Body)
}

// profile saves a CPU profile of stox over secs seconds into dir/name.pprof
// (pprof mode); it returns at once and reports on the returned channel.
func (r *rig) profile(dir, name string, secs int) <-chan error {
	ch := make(chan error, 1)
	go func() {
		b, err := r.get("/debug/pprof/profile?seconds=" + strconv.Itoa(secs))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name+".pprof"), b, 0o644)
		}
		ch <- err
	}()
	return ch
}

// saveAllocs saves stox's allocation profile (cumulative since start) as
// dir/name.pprof: two of them around a phase give its allocations
// (go tool pprof -sample_index=alloc_space -base first second).
func (r *rig) saveAllocs(dir, name string) {
	if b, err := r.get("/debug/pprof/allocs"); err == nil {
		_ = os.WriteFile(filepath.Join(dir, name+".pprof"), b, 0o644)
	}
}

// saveHeap saves stox's live heap profile (after a GC) as dir/name.pprof.
func (r *rig) saveHeap(dir, name string) {
	if b, err := r.get("/debug/pprof/heap?gc=1"); err == nil {
		_ = os.WriteFile(filepath.Join(dir, name+".pprof"), b, 0o644)
	}
}

// settledMetrics polls /metrics until go_goroutines has not fallen for two
// seconds (or max has passed) and returns the last sample.
func (r *rig) settledMetrics(max time.Duration) (map[string]float64, error) {
	deadline := time.Now().Add(max)
	m, err := r.metrics()
	if err != nil {
		return nil, err
	}
	low, since := m["go_goroutines"], time.Now()
	for time.Now().Before(deadline) && time.Since(since) < 2*time.Second {
		time.Sleep(250 * time.Millisecond)
		if m, err = r.metrics(); err != nil {
			return nil, err
		}
		if g := m["go_goroutines"]; g < low {
			low, since = g, time.Now()
		}
	}
	return m, nil
}

// udpDrops returns the kernel's receive-buffer drop count of the UDP socket
// bound to 127.0.0.1:port (/proc/net/udp), -1 if not found.
func udpDrops(port int) int64 {
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		return -1
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 13 && fs[1] == want {
			n, err := strconv.ParseInt(fs[len(fs)-1], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// cpuSnap is the CPU time of the three processes that matter at one moment.
type cpuSnap struct {
	at                   time.Time
	stox, prosody, bench int64
}

func (r *rig) snap() cpuSnap {
	return cpuSnap{at: time.Now(), stox: cpuTicks(r.stox.PID), prosody: cpuTicks(r.prosody.PID()), bench: cpuTicks(os.Getpid())}
}

// settle waits, before a measured phase, until the work the one before left
// behind is done: this process's garbage collected, then stox and Prosody
// idle (at most 2.5 ms of CPU each in 50 ms), for at most a second. Without
// it a phase paid for its predecessor's aftermath (see interleave). It runs
// about 200 times in a run: the windows are short, and measured in
// nanoseconds (runNS) where clock ticks would need 100 ms to tell.
func (r *rig) settle() {
	runtime.GC()
	const window, busy = 50 * time.Millisecond, int64(2500 * time.Microsecond)
	pids := []int{r.stox.PID, r.prosody.PID()}
	last := make([]int64, len(pids))
	for i, pid := range pids {
		last[i] = runNS(pid)
	}
	for range time.Second / window {
		time.Sleep(window)
		idle := true
		for i, pid := range pids {
			ns := runNS(pid)
			if ns < 0 || ns-last[i] > busy {
				idle = false
			}
			last[i] = ns
		}
		if idle {
			return
		}
	}
}

// runNS is the CPU time of a process's threads, in nanoseconds
// (/proc/PID/task/TID/schedstat); -1 if it cannot be read.
func runNS(pid int) int64 {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return -1
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return -1
		}
		sum += ns
	}
	return sum
}

// cpuCost is CPU microseconds per message of each process between two snaps.
type cpuCost struct {
	Stox, Prosody, Bench float64 // us per message
	Wall                 float64 // seconds
}

func costBetween(a, b cpuSnap, n int) cpuCost {
	if n == 0 {
		return cpuCost{}
	}
	per := func(d int64) float64 { return float64(d) * 1e6 / ticksPerSecond / float64(n) }
	return cpuCost{Stox: per(b.stox - a.stox), Prosody: per(b.prosody - a.prosody), Bench: per(b.bench - a.bench),
		Wall: b.at.Sub(a.at).Seconds()}
}

var errIncomplete = errors.New("incomplete")
