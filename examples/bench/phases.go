//go:build unix

package main

import (
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Phase is one measured run of one path.
type Phase struct {
	Name    string  `json:"name"`
	Path    string  `json:"path"`
	Offered float64 `json:"offered_per_s,omitempty"` // open loop; 0 = closed loop (window)
	Rate    float64 `json:"rate_per_s"`              // messages received / (last receipt - first send)
	Sent    int     `json:"sent"`
	Got     int     `json:"received"`
	// Refused: the sender got a failure for them (a SIP final response
	// other than 2xx, an XMPP error stanza). Lost: neither delivered nor
	// refused.
	Refused int     `json:"refused"`
	Lost    int     `json:"lost"`
	Dups    int     `json:"duplicates"`
	Order   int     `json:"order_violations"`
	P50     float64 `json:"latency_p50_ms"` // send -> receipt
	P99     float64 `json:"latency_p99_ms"`
	Max     float64 `json:"latency_max_ms"`
	// CPU microseconds per message of each process over the phase.
	StoxCPU    float64   `json:"stox_cpu_us_per_msg"`
	ProsodyCPU float64   `json:"prosody_cpu_us_per_msg"`
	BenchCPU   float64   `json:"bench_cpu_us_per_msg"`
	Wall       float64   `json:"wall_s"`
	ErrorStz   int64     `json:"error_stanzas"`
	SIP        *SIPStats `json:"sip,omitempty"`
	// UDPDrops counts datagrams the kernel dropped because a receive
	// buffer was full, by socket: stox, uas (stox's outbound proxy), uac,
	// bare-uas.
	UDPDrops map[string]int64 `json:"udp_drops,omitempty"`
	// RoundRates are the rates of the rounds a phase was measured in
	// (mergeRounds), in order; empty for a phase run in one go.
	RoundRates []float64 `json:"round_rates_per_s,omitempty"`
	RoundP99   []float64 `json:"round_latency_p99_ms,omitempty"`
	// RoundBusy is Prosody's busy share of each round (busy).
	RoundBusy []float64 `json:"round_prosody_busy,omitempty"`
	// Inline counts the phase's MESSAGEs stox handled on its UDP read loop
	// (S->X through stox; stox_sip_message_inline_total).
	Inline int `json:"stox_on_read_loop,omitempty"`

	drops0 map[string]int64
	lat    []int64 // send -> receipt, ns, for pooled percentiles
	active int64   // ns from the first send to the last receipt
}

// SIPStats is what the UAC saw (S->X and the SIP ceiling).
type SIPStats struct {
	Codes       map[string]int `json:"codes"` // final status -> count; "none" = no final response
	RetryAfter  int            `json:"with_retry_after"`
	P50         float64        `json:"response_p50_ms"` // request -> final response
	P99         float64        `json:"response_p99_ms"`
	Requests    int64          `json:"requests_written"` // retransmissions included
	Retransmits int64          `json:"retransmissions"`

	rtts []int64 // request -> final response, ns
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// udpDrops returns the kernel's receive-buffer drops of each UDP socket
// of the run: stox's, and the bench's own (which must stay at zero).
func (r *rig) udpDrops() map[string]int64 {
	m := make(map[string]int64)
	for name, port := range map[string]int{"stox": r.sipPort, "uas": r.uasPort, "uac": r.uacPort, "bare-uas": r.bareUASPort} {
		m[name] = udpDrops(port)
	}
	return m
}

func (r *rig) finish(p *Phase, t *tracker, start int64, before cpuSnap, errs0 int64) {
	after := r.snap()
	for name, n := range r.udpDrops() {
		if d := n - p.drops0[name]; n >= 0 && p.drops0[name] >= 0 && d > 0 {
			if p.UDPDrops == nil {
				p.UDPDrops = make(map[string]int64)
			}
			p.UDPDrops[name] = d
		}
	}
	res := t.result(p.Sent)
	p.Got, p.Lost, p.Dups, p.Order = res.Got, res.Lost, res.Dups, res.Order
	p.P50, p.P99, p.Max = ms(res.P50), ms(res.P99), ms(res.Max)
	t.mu.Lock()
	p.lat = t.lat
	if t.got > 0 && t.lastRecv > start {
		p.active = t.lastRecv - start
		p.Rate = float64(t.got) / (float64(p.active) / 1e9)
	}
	t.mu.Unlock()
	c := costBetween(before, after, p.Sent)
	p.StoxCPU, p.ProsodyCPU, p.BenchCPU, p.Wall = c.Stox, c.Prosody, c.Bench, c.Wall
	p.ErrorStz = r.errors.Load() - errs0
	p.Refused = int(p.ErrorStz)
	p.Lost = max(p.Sent-p.Got-p.Refused, 0)
}

// busy is the share of the phase's active time that Prosody spent on the
// CPU: about 1 when Prosody is the limit of the path throughout. A round of
// a path whose sender leaves Prosody waiting comes out lower (the component
// stream's stalls before 9285d2f: 0.65-0.79).
func (p *Phase) busy() float64 { return p.ProsodyCPU * p.Rate / 1e6 }

// setSIP attaches the UAC's view of a phase and counts its refusals.
func (p *Phase) setSIP(s *SIPStats) {
	p.SIP = s
	p.Refused = 0
	for code, n := range s.Codes {
		if c, err := strconv.Atoi(code); err == nil && c >= 300 {
			p.Refused += n
		}
	}
	p.Lost = max(p.Sent-p.Got-p.Refused, 0)
}

// mergeRounds makes one phase of the rounds of a path, measured
// interleaved with the rounds of the path it is compared with (bench): the
// counts add up, the rate is the messages received over the rounds' active
// time, latency percentiles are those of all the rounds' messages together,
// CPU per message is over all of them.
func mergeRounds(name string, rounds []*Phase) *Phase {
	if len(rounds) == 1 {
		p := *rounds[0]
		p.Name = name
		return &p
	}
	first := rounds[0]
	p := &Phase{Name: name, Path: first.Path, Offered: first.Offered}
	var stox, prosody, bench float64
	var sip *SIPStats
	for _, r := range rounds {
		p.Sent += r.Sent
		p.Got += r.Got
		p.Refused += r.Refused
		p.Lost += r.Lost
		p.Dups += r.Dups
		p.Order += r.Order
		p.Wall += r.Wall
		p.ErrorStz += r.ErrorStz
		p.active += r.active
		p.lat = append(p.lat, r.lat...)
		p.RoundRates = append(p.RoundRates, r.Rate)
		p.RoundP99 = append(p.RoundP99, r.P99)
		p.RoundBusy = append(p.RoundBusy, r.busy())
		p.Inline += r.Inline
		stox += r.StoxCPU * float64(r.Sent)
		prosody += r.ProsodyCPU * float64(r.Sent)
		bench += r.BenchCPU * float64(r.Sent)
		for k, v := range r.UDPDrops {
			if p.UDPDrops == nil {
				p.UDPDrops = make(map[string]int64)
			}
			p.UDPDrops[k] += v
		}
		if r.SIP != nil {
			if sip == nil {
				sip = &SIPStats{Codes: make(map[string]int)}
			}
			for k, v := range r.SIP.Codes {
				sip.Codes[k] += v
			}
			sip.RetryAfter += r.SIP.RetryAfter
			sip.Requests += r.SIP.Requests
			sip.Retransmits += r.SIP.Retransmits
			sip.rtts = append(sip.rtts, r.SIP.rtts...)
		}
	}
	if p.Sent > 0 {
		n := float64(p.Sent)
		p.StoxCPU, p.ProsodyCPU, p.BenchCPU = stox/n, prosody/n, bench/n
	}
	if p.active > 0 {
		p.Rate = float64(p.Got) / (float64(p.active) / 1e9)
	}
	p50, p99, mx := percentiles(p.lat)
	p.P50, p.P99, p.Max = ms(p50), ms(p99), ms(mx)
	if sip != nil {
		p50, p99, _ := percentiles(sip.rtts)
		sip.P50, sip.P99 = ms(p50), ms(p99)
		p.SIP = sip
	}
	return p
}

// inlineCount is stox's count of MESSAGEs handled on its read loop when
// dest is stox, else 0.
func (r *rig) inlineCount(dest netip.AddrPort) int {
	if int(dest.Port()) != r.sipPort {
		return 0
	}
	m, err := r.metrics()
	if err != nil {
		return 0
	}
	return int(m["stox_sip_message_inline_total"])
}

// pace sleeps until message j of a stream that sends one message every
// interval from t0 is due.
func pace(t0 time.Time, j int, interval time.Duration) {
	if d := time.Until(t0.Add(time.Duration(j) * interval)); d > 0 {
		time.Sleep(d)
	}
}

// runXS sends n chat messages from the load clients to SIP-user JIDs of
// domain (stox's, or the echo component's for the ceiling). Closed loop
// (rate 0): each client keeps at most o.window messages unreceived. Open
// loop: rate messages/s in all. Client i sends to o.sipUsers users in turn;
// a conversation is (client, user).
func (r *rig) runXS(name, path, domain string, n int, rate float64) *Phase {
	return r.runXSLag(name, path, domain, n, rate, 0)
}

// runXSLag is runXS with the open loop's first sends lag after the start.
func (r *rig) runXSLag(name, path, domain string, n int, rate float64, lag time.Duration) *Phase {
	S, D := len(r.clients), r.o.sipUsers
	run, t := r.newRun(n, S*D)
	var sems []chan struct{}
	if rate == 0 {
		sems = make([]chan struct{}, S)
		for i := range sems {
			sems[i] = make(chan struct{}, r.o.window)
		}
		t.onRecv = func(f bodyFields) {
			select {
			case <-sems[f.pair/D]:
			default:
			}
		}
	}
	p := &Phase{Name: name, Path: path, Offered: rate, Sent: n, drops0: r.udpDrops()}
	errs0 := r.errors.Load()
	before := r.snap()
	start := nowNS()
	var wg sync.WaitGroup
	for i, c := range r.clients {
		wg.Go(func() {
			var buf, body []byte
			to := make([]string, D)
			for k := range to {
				to[k] = "u" + strconv.Itoa(k) + "@" + domain
			}
			ni := (n - i + S - 1) / S
			var interval time.Duration
			if rate > 0 {
				interval = time.Duration(float64(S) / rate * 1e9)
			}
			t0 := time.Now().Add(lag)
			for j := range ni {
				if rate > 0 {
					pace(t0, j, interval)
				} else {
					sems[i] <- struct{}{}
				}
				k := j % D
				id := j*S + i
				body = appendBody(body[:0], run, id, i*D+k, j/D)
				if err := c.send(chatStanza(&buf, to[k], "b"+strconv.Itoa(id), body)); err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	t.wait(5*time.Second, 120*time.Second)
	r.finish(p, t, start, before, errs0)
	return p
}

// runSXEcho makes the echo component send n messages to the load clients
// (the S->X ceiling of the XMPP leg). Its conversations are the UAC's
// (runSX): o.workers of them, fake SIP user w writing to client w mod
// clients, so that Prosody routes the same set of senders to the same
// recipients in both paths. Closed loop: at most o.window*clients
// unreceived.
func (r *rig) runSXEcho(name string, n int, rate float64) *Phase {
	return r.runSXEchoLag(name, n, rate, 0)
}

// runSXEchoLag is runSXEcho with the open loop's first send lag after the
// start.
func (r *rig) runSXEchoLag(name string, n int, rate float64, lag time.Duration) *Phase {
	S, P := len(r.clients), r.o.workers
	run, t := r.newRun(n, P)
	var sem chan struct{}
	if rate == 0 {
		sem = make(chan struct{}, r.o.window*S)
		t.onRecv = func(bodyFields) {
			select {
			case <-sem:
			default:
			}
		}
	}
	from := make([]string, P)
	to := make([]string, P)
	for w := range P {
		from[w] = "s" + strconv.Itoa(w) + "@" + echoDomain
		to[w] = userName(w%S) + "@" + xmppDomain
	}
	p := &Phase{Name: name, Path: "echo component -> Prosody -> clients", Offered: rate, Sent: n, drops0: r.udpDrops()}
	errs0 := r.errors.Load()
	before := r.snap()
	start := nowNS()
	var buf, body []byte
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(1 / rate * 1e9)
	}
	t0 := time.Now().Add(lag)
	for k := range n {
		if rate > 0 {
			pace(t0, k, interval)
		} else {
			sem <- struct{}{}
		}
		w := k % P
		body = appendBody(body[:0], run, k, w, k/P)
		id := "e" + strconv.Itoa(1e15 + k)[1:] // 16 characters, as stox's ids
		thread := "e" + strconv.Itoa(run) + "-" + strconv.Itoa(k) + "@bench"
		if err := r.echo.send(componentStanza(&buf, from[w], to[w], id, thread, body)); err != nil {
			break
		}
	}
	t.wait(5*time.Second, 120*time.Second)
	r.finish(p, t, start, before, errs0)
	return p
}

// runSX sends n MESSAGEs from the UAC (rawuac.go) to dest (stox, or the
// bare UAS for the SIP ceiling, or stox in the overload steps) for the load
// clients. Closed loop (rate 0): o.workers conversations, each with one
// transaction at a time (RFC 3428 s8). Open loop: rate messages/s spread
// over pairs conversations (several may be pending in one conversation when
// the receiver answers slowly). A transaction gives up after giveUp (at most
// Timer F, 32 s). Receipts are counted by the load clients (stox) or the
// bare UAS.
func (r *rig) runSX(name, path string, dest netip.AddrPort, n int, rate float64, pairs int, giveUp time.Duration) *Phase {
	S := len(r.clients)
	if rate == 0 {
		pairs = r.o.workers
	}
	run, t := r.newRun(n, pairs)
	p := &Phase{Name: name, Path: path, Offered: rate, Sent: n, drops0: r.udpDrops()}
	fromUser := make([]string, pairs)
	toUser := make([]string, pairs)
	for w := range pairs {
		fromUser[w] = "s" + strconv.Itoa(w)
		toUser[w] = userName(w % S)
	}
	inline0 := r.inlineCount(dest)
	errs0 := r.errors.Load()
	before := r.snap()
	start := nowNS()
	var rr *rawRun
	if rate == 0 {
		rr = r.uac.beginClosed(run, n, pairs, dest, giveUp, func(k, w, seq int) []byte {
			var b [64]byte
			return r.uac.request(run, k, fromUser[w], toUser[w], appendBody(b[:0], run, k, w, seq))
		})
	} else {
		rr = r.uac.begin(run, n, dest, giveUp)
	}
	retr := make(chan struct{})
	go func() {
		defer close(retr)
		r.uac.retransmit(rr)
	}()
	if rate > 0 {
		interval := time.Duration(1 / rate * 1e9)
		t0 := time.Now()
		var body []byte
		for k := range n {
			pace(t0, k, interval)
			w := k % pairs
			body = appendBody(body[:0], run, k, w, k/pairs)
			r.uac.send(rr, k, w, r.uac.request(run, k, fromUser[w], toUser[w], body))
		}
	}
	<-retr
	t.wait(2*time.Second, 30*time.Second)
	r.finish(p, t, start, before, errs0)
	p.setSIP(rr.stats())
	p.Inline = r.inlineCount(dest) - inline0
	return p
}

// runPair runs the echo path and the stox path of one direction at the
// same time (the paired latency phases): each function sends its path's
// messages, open loop. See pairCost for the figures of the two phases.
func (r *rig) runPair(echo, stox func() *Phase) (e, s *Phase) {
	errs0 := r.errors.Load()
	before := r.snap()
	var wg sync.WaitGroup
	wg.Go(func() { e = echo() })
	wg.Go(func() { s = stox() })
	wg.Wait()
	pairCost(e, s, before, r.snap(), r.errors.Load()-errs0)
	return e, s
}

// pairCost sets the CPU and refusal figures of a pair of phases that ran
// at the same time (runPair), each having measured them over its own
// window as if alone: stox's CPU is its path's alone; Prosody's and the
// bench's are shared by both paths' messages; the error stanzas the
// clients got (errs) are the stox path's, the echo component sends none.
// The SIP view of an S->X stox phase keeps its own refusals (setSIP).
func pairCost(e, s *Phase, before, after cpuSnap, errs int64) {
	both := costBetween(before, after, e.Sent+s.Sent)
	own := costBetween(before, after, s.Sent)
	for _, p := range []*Phase{e, s} {
		p.ProsodyCPU, p.BenchCPU, p.Wall = both.Prosody, both.Bench, both.Wall
	}
	e.StoxCPU, s.StoxCPU = 0, own.Stox
	e.ErrorStz, e.Refused = 0, 0
	e.Lost = max(e.Sent-e.Got, 0)
	s.ErrorStz = errs
	if s.SIP == nil {
		s.Refused = int(errs)
		s.Lost = max(s.Sent-s.Got-s.Refused, 0)
	}
}

// sortedCodes lists status codes in order, "none" last.
func sortedCodes(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
