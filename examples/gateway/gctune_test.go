package main

import "testing"

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 2000},
		{1 << 20, 2000},  // 1 MiB live: capped
		{8 << 20, 800},   // 8 MiB + 64 MiB headroom
		{32 << 20, 200},  // 32 MiB + 64 MiB
		{64 << 20, 100},  // headroom = live: the default
		{512 << 20, 100}, // large heaps keep GOGC=100
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}
