package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// gcHeadroom is how much the heap may grow past the live heap before the
// next collection, at the least. Go's default (GOGC=100) lets a heap grow
// by its own size: with the few megabytes stox holds while it translates
// messages, that is a collection every few thousand messages, and in `make
// bench` the collector took a fifth of stox's CPU. With 32 MiB of headroom
// a small heap is collected several times less often. A large live heap
// (presence subscriptions by the ten thousand) is mostly long-lived state:
// there the heap may grow by largeHeapPercent of it, not by all of it as
// with Go's default, which kept the peak RSS of 100,000 subscriptions at
// 270-307 MB against the 300 MB asked (64 MiB of headroom raised it past
// 300 MB in every run).
const gcHeadroom = 32 << 20

// largeHeapPercent is the GOGC of large live heaps (from about 43 MiB up,
// where gcHeadroom is less than 75 % of the live heap).
const largeHeapPercent = 75

// tuneGC keeps the collector's goal at the larger of 1.75 times the live
// heap and the live heap plus gcHeadroom, re-computed after every
// collection.
// It does nothing when the operator set GOGC or GOMEMLIMIT: their choice
// wins.
func tuneGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	t := &gcTuner{sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}, percent: 100}
	t.arm()
}

type gcTuner struct {
	sample  []metrics.Sample
	percent int
}

// arm asks to run once after the next collection: a finalizer runs when
// the collector finds its object unreachable, that is after each cycle.
func (t *gcTuner) arm() {
	sentinel := new([16]byte)
	runtime.SetFinalizer(sentinel, func(*[16]byte) { t.adjust() })
}

func (t *gcTuner) adjust() {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		p := gcPercentFor(t.sample[0].Value.Uint64())
		// Only a real change costs the runtime's brief stop of the world.
		if p != t.percent && (p > t.percent*5/4 || p < t.percent*4/5 || p == largeHeapPercent) {
			debug.SetGCPercent(p)
			t.percent = p
		}
	}
	t.arm()
}

// gcPercentFor is the GOGC that puts the next goal at the larger of 1.75x
// live and live+gcHeadroom, between largeHeapPercent and 2000.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return 2000
	}
	return int(min(max(largeHeapPercent, gcHeadroom*100/live), 2000))
}
