//go:build unix

package main

import (
	"slices"
	"testing"
	"time"
)

// mergeRounds adds the counts, takes the rate over the rounds' active
// time, pools the latencies and weighs CPU by messages.
func TestMergeRounds(t *testing.T) {
	ms := func(v ...int) []int64 {
		out := make([]int64, len(v))
		for i, x := range v {
			out[i] = int64(time.Duration(x) * time.Millisecond)
		}
		return out
	}
	a := &Phase{Path: "p", Sent: 100, Got: 100, Rate: 100, P99: 3, StoxCPU: 10, active: int64(time.Second), lat: ms(1, 2, 3),
		SIP: &SIPStats{Codes: map[string]int{"202": 100}, Requests: 100, rtts: ms(1)}}
	b := &Phase{Path: "p", Sent: 300, Got: 290, Lost: 10, Dups: 1, Order: 2, Rate: 145, P99: 100, StoxCPU: 30, active: int64(2 * time.Second), lat: ms(4, 100),
		SIP:      &SIPStats{Codes: map[string]int{"202": 290, "503": 10}, RetryAfter: 10, Requests: 320, Retransmits: 20, rtts: ms(2, 3)},
		UDPDrops: map[string]int64{"stox": 5}}
	m := mergeRounds("x", []*Phase{a, b})
	if m.Name != "x" || m.Sent != 400 || m.Got != 390 || m.Lost != 10 || m.Dups != 1 || m.Order != 2 {
		t.Fatalf("counts %+v", m)
	}
	if m.Rate != 130 { // 390 messages in 3 s
		t.Errorf("rate %v, want 130", m.Rate)
	}
	if m.StoxCPU != 25 { // (100*10 + 300*30) / 400
		t.Errorf("CPU %v, want 25", m.StoxCPU)
	}
	if m.P50 != 3 || m.Max != 100 {
		t.Errorf("pooled p50 %v, max %v", m.P50, m.Max)
	}
	if !slices.Equal(m.RoundRates, []float64{100, 145}) || !slices.Equal(m.RoundP99, []float64{3, 100}) {
		t.Errorf("rounds %v %v", m.RoundRates, m.RoundP99)
	}
	if s := m.SIP; s.Codes["202"] != 390 || s.Codes["503"] != 10 || s.RetryAfter != 10 || s.Requests != 420 || s.Retransmits != 20 || s.P50 != 2 {
		t.Errorf("SIP %+v", s)
	}
	if m.UDPDrops["stox"] != 5 {
		t.Errorf("drops %v", m.UDPDrops)
	}
	if one := mergeRounds("y", []*Phase{a}); one.Name != "y" || one == a || one.Rate != 100 || len(one.RoundRates) != 0 {
		t.Errorf("one round: %+v", one)
	}
}

// pairCost: stox's CPU over its own messages, Prosody's and the bench's
// over both paths', the clients' error stanzas to the stox path.
func TestPairCost(t *testing.T) {
	tick := int64(ticksPerSecond / 100) // 10 ms of CPU
	before := cpuSnap{at: epoch, stox: 100, prosody: 200, bench: 300}
	after := cpuSnap{at: epoch.Add(2 * time.Second), stox: 100 + 30*tick, prosody: 200 + 80*tick, bench: 300 + 40*tick}
	e := &Phase{Sent: 1000, Got: 990, StoxCPU: 300, ProsodyCPU: 800, ErrorStz: 3, Refused: 3}
	s := &Phase{Sent: 1000, Got: 997, StoxCPU: 300, ProsodyCPU: 800, ErrorStz: 3, Refused: 3}
	pairCost(e, s, before, after, 3)
	if e.StoxCPU != 0 || s.StoxCPU != 300 { // 300 ms over 1000 messages
		t.Errorf("stox CPU %v / %v, want 0 / 300", e.StoxCPU, s.StoxCPU)
	}
	if e.ProsodyCPU != 400 || s.ProsodyCPU != 400 || e.BenchCPU != 200 || s.BenchCPU != 200 {
		t.Errorf("shared CPU %+v / %+v", e, s)
	}
	if e.Refused != 0 || e.Lost != 10 || s.Refused != 3 || s.Lost != 0 || s.ErrorStz != 3 || e.Wall != 2 {
		t.Errorf("counts %+v / %+v", e, s)
	}
	sip := &Phase{Sent: 1000, Got: 990, Refused: 10, SIP: &SIPStats{}}
	pairCost(&Phase{Sent: 1000}, sip, before, after, 2)
	if sip.Refused != 10 || sip.ErrorStz != 2 {
		t.Errorf("an S->X stox phase keeps its SIP refusals: %+v", sip)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		v    []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{29, -3.3}, 12.85},
		{[]float64{-17.7, 2.7, 0.4, 41, 1.1}, 1.1}, // one stalled round does not move it
	} {
		in := slices.Clone(tc.v)
		if got := median(tc.v); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.v, got, tc.want)
		}
		if !slices.Equal(in, tc.v) {
			t.Errorf("median reordered its argument: %v", tc.v)
		}
	}
}

// A round's busy share is Prosody's CPU over the round's active time; the
// report counts the stox rounds below stalledBusy.
func TestRoundBusy(t *testing.T) {
	a := &Phase{Sent: 100, Got: 100, Rate: 8000, ProsodyCPU: 120, active: 1}
	b := &Phase{Sent: 100, Got: 100, Rate: 6000, ProsodyCPU: 120, active: 1}
	if got := a.busy(); got < 0.959 || got > 0.961 {
		t.Fatalf("busy = %v, want 0.96", got)
	}
	m := mergeRounds("x", []*Phase{a, b})
	if len(m.RoundBusy) != 2 || countBelow(m.RoundBusy, stalledBusy) != 1 || spanOf(m.RoundBusy) != "0.72-0.96" {
		t.Fatalf("RoundBusy %v, below %d, span %s", m.RoundBusy, countBelow(m.RoundBusy, stalledBusy), spanOf(m.RoundBusy))
	}
}
