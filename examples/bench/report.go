//go:build unix

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

func targets(rep *Report) []Target {
	var ts []Target
	add := func(what, want, got string, met bool, notes string) {
		ts = append(ts, Target{What: what, Want: want, Got: got, Met: met, Notes: notes})
	}
	for _, d := range []struct {
		name string
		d    *Direction
		cpu  float64
	}{{"X->S", &rep.XS, 30}, {"S->X", &rep.SX, 50}} {
		s := d.d.Stox
		add(d.name+" rate / path ceiling", ">= 0.90",
			fmt.Sprintf("%.3f (XMPP %.3f, SIP %.3f)", d.d.Ratio, d.d.RatioXMPP, d.d.RatioSIP), d.d.Ratio >= 0.9, "")
		add(d.name+" lost, refused, duplicates, order", "0/0/0/0",
			fmt.Sprintf("%d/%d/%d/%d", s.Lost, s.Refused, s.Dups, s.Order), s.Lost == 0 && s.Refused == 0 && s.Dups == 0 && s.Order == 0, "")
		add(d.name+" stox CPU per message", fmt.Sprintf("< %.0f us", d.cpu),
			fmt.Sprintf("%.1f us", s.StoxCPU), s.StoxCPU < d.cpu, "")
		note := fmt.Sprintf("paired: median of %d rounds, pooled %+.2f ms", len(d.d.RoundPairAddedP99), d.d.PairAddedP99)
		if d.d.HalfStox != nil {
			note += fmt.Sprintf("; separate phases: median %+.2f ms, pooled %+.2f ms", d.d.MedianAddedP99, d.d.AddedP99)
		}
		add(d.name+" p99 added latency at half ceiling", "<= 2 ms",
			fmt.Sprintf("%.2f ms", d.d.MedianPairAddedP99), d.d.MedianPairAddedP99 <= 2, note)
	}
	p := rep.Process
	add("goroutines back to idle", fmt.Sprintf("<= %.0f", p.GoroutinesIdle),
		fmt.Sprintf("%.0f after %.0f s", p.GoroutinesEnd, p.SettleSeconds), p.GoroutinesEnd <= p.GoroutinesIdle, "")
	heapOK := heapSettled(p.HeapIdle, p.HeapEnd)
	add("live heap back to idle", fmt.Sprintf("<= %.1f MB", mb(p.HeapIdle+16<<20)),
		fmt.Sprintf("%.1f MB (idle %.1f MB)", mb(p.HeapEnd), mb(p.HeapIdle)), heapOK, "after a forced GC; 16 MB for tables that keep their peak size")
	if len(rep.Steps) > 0 {
		dups, storm := 0, false
		for _, s := range rep.Steps {
			dups += s.Dups
			if s.SIP != nil && s.SIP.Retransmits > int64(s.Sent) {
				storm = true
			}
		}
		unanswered := 0
		for _, s := range rep.Steps {
			if s.SIP != nil {
				unanswered += s.SIP.Codes["none"]
			}
		}
		add("S->X UDP overload: graceful", "0 duplicates, 0 unanswered, retransmissions < messages",
			fmt.Sprintf("%d duplicates, %d unanswered, storm=%v", dups, unanswered, storm), dups == 0 && unanswered == 0 && !storm, "")
	}
	return ts
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// roundList shows the ratios of the rounds, when there were several.
func roundList(ratios []float64) string {
	if s := roundsOf(ratios, "%.2f"); s != "" {
		return "; rounds " + s
	}
	return ""
}

// roundSigned shows the added latencies of the rounds, when there were
// several.
func roundSigned(ms []float64) string {
	if s := roundsOf(ms, "%+.1f"); s != "" {
		return " (rounds " + s + ")"
	}
	return ""
}

// roundsOf formats the values of the rounds, or "" for fewer than two.
func roundsOf(v []float64, format string) string {
	if len(v) < 2 {
		return ""
	}
	s := make([]string, len(v))
	for i, r := range v {
		s[i] = fmt.Sprintf(format, r)
	}
	return strings.Join(s, " ")
}

func printReport(w io.Writer, rep *Report) {
	pr := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	h := rep.Host
	pr("stox end-to-end bench, %s, %.0f s", rep.Started.Format("2006-01-02 15:04:05"), rep.Duration)
	pr("host: %d CPUs, %s, %s, load average %s -> %s", h.CPUs, h.Go, h.Prosody, strings.TrimSpace(h.LoadAvg), strings.TrimSpace(h.LoadAvgAt))
	if h.Pinning != "" {
		pr("CPU pinning of the message phases: %s", h.Pinning)
	}
	if rep.XS.Stox != nil {
		printMessages(w, rep)
	}
	if rep.Presence != nil {
		printPresence(w, rep.Presence)
	}
	printTargets(w, rep)
}

func printMessages(w io.Writer, rep *Report) {
	pr := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p := rep.Params
	pr("load: %d messages per rate phase after %d warm-up, in %d rounds interleaved with the compared paths'; %d per latency phase, in %d rounds; %d XMPP clients x %d SIP users, window %d per client; %d SIP conversations",
		p.N, p.Warmup, p.Rounds, p.LatN, p.LatRounds, p.Clients, p.SIPUsers, p.Window, p.Workers)
	pr("")

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t") }
	row("phase", "path", "offered/s", "msg/s", "lost", "refused", "dup", "order", "p50 ms", "p99 ms", "stox us/msg", "prosody us/msg", "bench us/msg", "202 p50 ms", "202 p99 ms", "read loop %")
	line := func(ph *Phase) {
		if ph == nil {
			return
		}
		off := "max"
		if ph.Offered > 0 {
			off = fmt.Sprintf("%.0f", ph.Offered)
		}
		r50, r99, stox, inline := "", "", "", ""
		if ph.SIP != nil {
			r50, r99 = fmt.Sprintf("%.2f", ph.SIP.P50), fmt.Sprintf("%.2f", ph.SIP.P99)
		}
		if ph.SIP != nil && strings.Contains(ph.Path, "stox") && ph.Sent > 0 {
			inline = fmt.Sprintf("%.0f", 100*float64(ph.Inline)/float64(ph.Sent))
		}
		if strings.Contains(ph.Path, "stox") {
			stox = fmt.Sprintf("%.1f", ph.StoxCPU)
		}
		row(ph.Name, ph.Path, off, fmt.Sprintf("%.0f", ph.Rate), fmt.Sprint(ph.Lost), fmt.Sprint(ph.Refused), fmt.Sprint(ph.Dups), fmt.Sprint(ph.Order),
			fmt.Sprintf("%.2f", ph.P50), fmt.Sprintf("%.2f", ph.P99), stox,
			fmt.Sprintf("%.1f", ph.ProsodyCPU), fmt.Sprintf("%.1f", ph.BenchCPU), r50, r99, inline)
	}
	for _, ph := range []*Phase{rep.XS.Ceiling, rep.XS.Stox, rep.SX.Ceiling, rep.SIP, rep.SX.Stox,
		rep.XS.HalfCeiling, rep.XS.HalfStox, rep.SX.HalfCeiling, rep.Half, rep.SX.HalfStox,
		rep.XS.PairCeiling, rep.XS.PairStox, rep.SX.PairCeiling, rep.SX.PairStox} {
		line(ph)
	}
	tw.Flush()
	pr("")
	for _, d := range []struct {
		name string
		d    Direction
	}{{"X->S", rep.XS}, {"S->X", rep.SX}} {
		pr("%s  stox %.0f msg/s = %.2f x path ceiling %.0f (XMPP ceiling %.0f: %.2f; SIP ceiling %.0f: %.2f)%s",
			d.name, d.d.Stox.Rate, d.d.Ratio, d.d.PathCeiling, d.d.Ceiling.Rate, d.d.RatioXMPP, rep.SIP.Rate, d.d.RatioSIP, roundList(d.d.RoundRatios))
		sep := ""
		if d.d.HalfStox != nil {
			sep = fmt.Sprintf("; separate phases p50 %+.2f ms, p99 %+.2f ms, median %+.2f ms%s",
				d.d.AddedP50, d.d.AddedP99, d.d.MedianAddedP99, roundSigned(d.d.RoundAddedP99))
		}
		if len(d.d.Stox.RoundBusy) > 0 {
			pr("      Prosody's busy share of the rounds: echo path %s, stox path %s; stox rounds below %.2f: %d of %d",
				spanOf(d.d.Ceiling.RoundBusy), spanOf(d.d.Stox.RoundBusy), stalledBusy, countBelow(d.d.Stox.RoundBusy, stalledBusy), len(d.d.Stox.RoundBusy))
		}
		pr("      added latency (stox path minus echo path) at half the path ceiling (%.0f msg/s): paired, both paths at once, p50 %+.2f ms, p99 %+.2f ms, median of the rounds' p99 %+.2f ms%s%s",
			d.d.HalfRate, d.d.PairAddedP50, d.d.PairAddedP99, d.d.MedianPairAddedP99, roundSigned(d.d.RoundPairAddedP99), sep)
	}
	if len(rep.Steps) > 0 {
		pr("")
		pr("S->X over UDP, open loop, %d conversations, %.0f s per step, a transaction gives up after %.0f s:",
			p.StepPairs, p.StepDur, p.GiveUpStep)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		row("offered/s", "msg/s", "sent", "delivered", "dup", "order", "final responses", "Retry-After", "retransmissions", "stox drops", "202 p50 ms", "202 p99 ms", "stox us/msg")
		for _, s := range rep.Steps {
			var codes []string
			for _, k := range sortedCodes(s.SIP.Codes) {
				codes = append(codes, fmt.Sprintf("%s:%d", k, s.SIP.Codes[k]))
			}
			row(fmt.Sprintf("%.0f", s.Offered), fmt.Sprintf("%.0f", s.Rate), fmt.Sprint(s.Sent), fmt.Sprint(s.Got), fmt.Sprint(s.Dups),
				fmt.Sprint(s.Order), strings.Join(codes, " "), fmt.Sprint(s.SIP.RetryAfter), fmt.Sprint(s.SIP.Retransmits),
				fmt.Sprint(s.UDPDrops["stox"]), fmt.Sprintf("%.2f", s.SIP.P50), fmt.Sprintf("%.2f", s.SIP.P99), fmt.Sprintf("%.1f", s.StoxCPU))
		}
		tw.Flush()
		pr("highest offered rate without loss: %.0f msg/s; above it: %s", rep.MaxLossless, rep.AboveMaxNote)
	}
	pc := rep.Process
	pr("")
	pr("stox process: goroutines idle %.0f, peak seen %.0f, end %.0f (after %.0f s); RSS idle %.1f MB, peak %.1f MB, end %.1f MB; live heap idle %.1f MB, end %.1f MB",
		pc.GoroutinesIdle, pc.GoroutinesPeak, pc.GoroutinesEnd, pc.SettleSeconds,
		float64(pc.RSSIdleKB)/1024, float64(pc.RSSPeakKB)/1024, float64(pc.RSSEndKB)/1024, mb(pc.HeapIdle), mb(pc.HeapEnd))
	pr("stox metrics: X->S delivered %.0f failed %.0f refused %.0f; S->X accepted %.0f refused %.0f, %.0f of all S->X MESSAGEs handled on the read loop",
		pc.MetricsXSOK, pc.MetricsXSFailed, pc.MetricsXSRefuse, pc.MetricsSXOK, pc.MetricsSXRefuse, pc.MetricsSXInline)
}

// stalledBusy: a round in which Prosody was busy less than this share of
// the time waited for its sender (Phase.busy).
const stalledBusy = 0.85

// spanOf formats the range of v ("0.95-1.00").
func spanOf(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f-%.2f", slices.Min(v), slices.Max(v))
}

func countBelow(v []float64, limit float64) int {
	n := 0
	for _, x := range v {
		if x < limit {
			n++
		}
	}
	return n
}

func printTargets(w io.Writer, rep *Report) {
	pr := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	pr("")
	pr("targets:")
	for _, t := range rep.Targets {
		mark := "MISSED"
		if t.Met {
			mark = "met"
		}
		note := ""
		if t.Notes != "" {
			note = " (" + t.Notes + ")"
		}
		pr("  %-6s %-44s want %-10s got %s%s", mark, t.What, t.Want, t.Got, note)
	}
}

func printPresence(w io.Writer, p *PresenceReport) {
	pr := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	pr("")
	pr("presence (own stox process, fake XEP-0114 server, SIP load generator over %s; at most %.0f/s and %d in flight; %d XMPP users; stox notify_interval %.1f s):",
		p.Transport, p.RateCap, p.Window, p.XMPPUsers, p.NotifyInterval)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t") }
	row("held", "step", "ops", "done", "failed", "ops/s", "stox us/op", "bench us/op", "NOTIFYs", "p50 ms", "p99 ms", "xmpp errors", "note")
	op := func(held, name string, o *PresOp) {
		if o == nil {
			return
		}
		lat50, lat99 := "", ""
		if o.P50 > 0 {
			lat50, lat99 = fmt.Sprintf("%.1f", o.P50), fmt.Sprintf("%.1f", o.P99)
		}
		row(held, name, fmt.Sprint(o.N), fmt.Sprint(o.Done), fmt.Sprint(o.Failed), fmt.Sprintf("%.0f", o.Rate),
			fmt.Sprintf("%.1f", o.StoxCPU), fmt.Sprintf("%.1f", o.BenchCPU), fmt.Sprint(o.Notifies), lat50, lat99, fmt.Sprint(o.Errors), o.Note)
	}
	if in := p.In; in != nil {
		for _, lv := range in.Levels {
			h := fmt.Sprint(lv.Subscriptions)
			op(h, "S->X establish", lv.Establish)
			op(h, "S->X refresh", lv.Refresh)
			op(h, "S->X fan-out", lv.Fanout)
		}
	}
	if o := p.Out; o != nil {
		h := fmt.Sprint(o.Gauges.OutSubs)
		op(h, "X->S establish", o.Establish)
		op(h, "X->S refresh", o.Refresh)
	}
	tw.Flush()
	pr("")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row("held", "direction", "RSS MB after establish", "peak", "steady", "anon", "file", "live heap MB", "B/subscription", "store MB", "goroutines idle", "peak seen", "end", "settle s")
	mem := func(held, dir string, m PresMem, idle, peak, end, settle float64) {
		row(held, dir, fmt.Sprintf("%.1f", kbMB(m.HeldKB)), fmt.Sprintf("%.1f", kbMB(m.PeakKB)), fmt.Sprintf("%.1f", kbMB(m.SteadyKB)),
			fmt.Sprintf("%.1f", kbMB(m.AnonKB)), fmt.Sprintf("%.1f", kbMB(m.FileKB)), fmt.Sprintf("%.1f", mb(m.Heap)),
			fmt.Sprintf("%.0f", m.HeapPerSub), fmt.Sprintf("%.1f", mb(m.StoreBytes)), fmt.Sprintf("%.0f", idle), fmt.Sprintf("%.0f", peak),
			fmt.Sprintf("%.0f", end), fmt.Sprintf("%.1f", settle))
	}
	if in := p.In; in != nil {
		row("0", "idle", fmt.Sprintf("%.1f", kbMB(in.RSSIdleKB)), "", "", "", "", fmt.Sprintf("%.1f", mb(in.HeapIdle)), "", "", fmt.Sprintf("%.0f", in.GoroutinesIdle), "", "", "")
		for _, lv := range in.Levels {
			mem(fmt.Sprint(lv.Subscriptions), "S->X", lv.Mem, in.GoroutinesIdle, lv.GoroutinesMax, lv.GoroutinesEnd, lv.SettleSeconds)
		}
	}
	if o := p.Out; o != nil {
		mem(fmt.Sprint(o.Gauges.OutSubs), "X->S", o.Mem, o.GoroutinesIdle, 0, o.GoroutinesEnd, o.SettleSeconds)
	}
	tw.Flush()
	if in := p.In; in != nil && len(in.Levels) > 0 {
		g := in.Levels[len(in.Levels)-1].Gauges
		pr("stox metrics (S->X): %.0f subscriptions, %.0f watcher dialogs, NOTIFY sent %.0f failed %.0f, presence stanzas %.0f; fake server: %v",
			g.InSubs, g.Dialogs, g.NotifySent, g.NotifyFail, g.StanzasSent, in.Stanzas)
	}
	if o := p.Out; o != nil {
		pr("stox metrics (X->S): %.0f subscriptions, SUBSCRIBE sent %.0f failed %.0f; granted %d s; %d presence stanzas for %d refresh NOTIFYs with an unchanged PIDF",
			o.Gauges.OutSubs, o.Gauges.SubSent, o.Gauges.SubFail, o.Granted, o.RefreshStanzas, o.Refresh.Done)
	}
}
