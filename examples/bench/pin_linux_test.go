package main

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// setAffinity pins every thread of the process, and threads started
// afterwards inherit it.
func TestSetAffinity(t *testing.T) {
	all, err := allowedCPUs()
	if err != nil || len(all) != runtime.NumCPU() {
		t.Fatalf("allowedCPUs = %v, %v; NumCPU %d", all, err, runtime.NumCPU())
	}
	cpu := all[len(all)-1]
	t.Cleanup(func() {
		if err := setAffinity(os.Getpid(), all); err != nil {
			t.Error(err)
		}
	})
	if err := setAffinity(os.Getpid(), []int{cpu}); err != nil {
		t.Fatal(err)
	}
	// A thread locked now is an existing or a new one; either way pinned.
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil || set.Count() != 1 || !set.IsSet(cpu) {
			t.Errorf("a thread's affinity: %v %v, want only CPU %d", set, err, cpu)
		}
	}()
	<-done
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // exited
		}
		if set.Count() != 1 || !set.IsSet(cpu) {
			t.Errorf("thread %d: affinity %v, want only CPU %d", tid, set, cpu)
		}
	}
	if got := cpuList([]int{1}); got != "1" {
		t.Errorf("cpuList = %q", got)
	}
	if got := cpuList([]int{1, 2, 5}); got != "1,2,5" {
		t.Errorf("cpuList = %q", got)
	}
}

func TestRunNS(t *testing.T) {
	a := runNS(os.Getpid())
	if a <= 0 {
		t.Fatalf("runNS(self) = %d, want > 0", a)
	}
	// Spin until 10 ms of CPU show (on a busy machine that can take more
	// than 10 ms of wall time), for at most 5 s.
	for end := time.Now().Add(5 * time.Second); runNS(os.Getpid())-a < int64(10*time.Millisecond); {
		if time.Now().After(end) {
			t.Fatalf("runNS rose by %v in 5 s of spinning", time.Duration(runNS(os.Getpid())-a))
		}
	}
	if n := runNS(-1); n != -1 {
		t.Errorf("runNS(-1) = %d, want -1", n)
	}
}
