//go:build unix

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// console writes tagged lines ("stox | ...") from several goroutines. Once
// closed it drops whatever still comes in.
type console struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (c *console) printf(tag, format string, args ...any) {
	text := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		fmt.Fprintf(&b, "%-4s | %s\n", tag, line)
	}
	_, _ = io.WriteString(c.w, b.String())
}

func (c *console) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// tailer copies the lines appended to a log file to the console.
type tailer struct {
	stop chan struct{}
	done chan struct{}
	kick chan chan struct{} // flush requests
}

// tail follows path (which must exist), from its start or, with fromEnd,
// from what is appended from now on.
func tail(con *console, tag, path string, fromEnd bool) (*tailer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fromEnd {
		if _, err := f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, err
		}
	}
	t := &tailer{stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan chan struct{})}
	go func() {
		defer close(t.done)
		defer f.Close()
		var pending []byte
		buf := make([]byte, 32<<10)
		drain := func(final bool) {
			for {
				n, _ := f.Read(buf)
				if n == 0 {
					break
				}
				pending = append(pending, buf[:n]...)
			}
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				con.printf(tag, "%s", pending[:i])
				pending = pending[i+1:]
			}
			if final && len(pending) > 0 {
				con.printf(tag, "%s", pending)
				pending = nil
			}
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-t.stop:
				drain(true)
				return
			case <-tick.C:
				drain(false)
			case ack := <-t.kick:
				drain(false)
				close(ack)
			}
		}
	}()
	return t, nil
}

// flush prints the complete lines written so far.
func (t *tailer) flush() {
	ack := make(chan struct{})
	select {
	case t.kick <- ack:
		<-ack
	case <-t.done:
	}
}

// close prints what is left (the file may already be unlinked: the open
// descriptor still reads it) and stops following.
func (t *tailer) close() {
	if t == nil {
		return
	}
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
}
