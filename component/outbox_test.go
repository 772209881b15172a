package component

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestOutboxGroupCommit: senders that arrive while a write is in progress
// go out together in one write, in arrival order, and each learns its
// outcome; a failed group write queues every stanza of it for the
// reconnect.
func TestOutboxGroupCommit(t *testing.T) {
	o := newOutbox(100, time.Minute, time.Now)
	release := make(chan struct{})
	var mu sync.Mutex
	var writes [][]byte
	fail := false
	first := true
	o.attach(func(b []byte) error {
		if first {
			first = false
			<-release // hold the first write until the others have queued
		}
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("broken")
		}
		writes = append(writes, append([]byte(nil), b...))
		return nil
	})
	done := make(chan error, 10)
	go func() { _, err := o.send([]byte("<a/>")); done <- err }()
	waitFor(t, "the first write", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.writing })
	for i := 0; i < 5; i++ {
		b := []byte(fmt.Sprintf("<b%d/>", i))
		go func() { _, err := o.send(b); done <- err }()
		waitFor(t, "a sender to join", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.next != nil && len(o.next.items) == i+1 })
	}
	close(release)
	for i := 0; i < 6; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	if len(writes) != 2 || string(writes[0]) != "<a/>" || !bytes.Equal(writes[1], []byte("<b0/><b1/><b2/><b3/><b4/>")) {
		t.Fatalf("writes %q, want <a/> then the five others in one write", writes)
	}
	fail = true
	mu.Unlock()
	queued, err := o.send([]byte("<c/>"))
	if !queued || err != nil {
		t.Fatalf("after a failed write: queued %v err %v", queued, err)
	}
	if n, connected := o.stats(); n != 1 || connected {
		t.Fatalf("stats %d %v", n, connected)
	}
}
