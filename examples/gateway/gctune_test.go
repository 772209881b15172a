package main

import "testing"

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 2000},
		{1 << 20, 2000}, // 1 MiB live: capped
		{8 << 20, 400},  // 8 MiB + 32 MiB headroom
		{16 << 20, 200}, // 16 MiB + 32 MiB
		{32 << 20, 100}, // headroom = live: the default
		{40 << 20, 80},
		{64 << 20, 75}, // large heaps: 75 %
		{512 << 20, 75},
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}
