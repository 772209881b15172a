package component

import (
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSocket stands in for a stream's writes: try takes at most room bytes
// (room < 0: all of them), the flusher's writes wait for release and may
// fail; everything written is kept in order.
type fakeSocket struct {
	mu      sync.Mutex
	out     strings.Builder
	room    int
	tryErr  error
	tries   []string // what each try was given
	wvErr   error
	wvCalls int
	wvBufs  []string      // every buffer the flusher's writes were given
	release chan struct{} // a flusher write waits for a value, when not nil
	entered chan struct{} // told when a flusher write begins, when not nil
}

func (f *fakeSocket) write(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out.Write(b)
	return nil
}

func (f *fakeSocket) try(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries = append(f.tries, string(b))
	if f.tryErr != nil {
		return 0, f.tryErr
	}
	n := len(b)
	if f.room >= 0 {
		n = min(n, f.room)
		f.room -= n
	}
	f.out.Write(b[:n])
	return n, nil
}

func (f *fakeSocket) writev(bufs [][]byte) error {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.release != nil {
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wvCalls++
	if f.wvErr != nil {
		return f.wvErr
	}
	for _, b := range bufs {
		f.out.Write(b)
		f.wvBufs = append(f.wvBufs, string(b))
	}
	return nil
}

func (f *fakeSocket) written() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

func newTestOutbox(t *testing.T, f *fakeSocket) *outbox {
	t.Helper()
	o := newOutbox(100, time.Minute, time.Now)
	if _, err := o.attachWriters(f.write, f.try, f.writev); err != nil {
		t.Fatal(err)
	}
	return o
}

// waitIdle waits for the flusher to end.
func waitIdle(t *testing.T, o *outbox) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.flushing {
		o.cond.Wait()
	}
}

// newGatherOutbox is newTestOutbox with yield set: during its first yield
// the outbox is given more, and during it a sender may also be waiting.
func newGatherOutbox(t *testing.T, f *fakeSocket, during func(o *outbox)) *outbox {
	t.Helper()
	o := newTestOutbox(t, f)
	once := false
	o.yield = func() {
		if !once {
			once = true
			during(o)
		}
	}
	return o
}

// A send on a free stream yields first, and what other senders add
// meanwhile leaves with it in one write, in order.
func TestOutboxGathers(t *testing.T) {
	f := &fakeSocket{room: -1}
	o := newGatherOutbox(t, f, func(o *outbox) {
		for _, s := range []string{"<b/>", "<c/>"} {
			if queued, err := o.send([]byte(s)); queued || err != nil {
				t.Errorf("send %s while gathering: queued %v, %v", s, queued, err)
			}
		}
	})
	if queued, err := o.send([]byte("<a/>")); queued || err != nil {
		t.Fatalf("send: queued %v, %v", queued, err)
	}
	if !slices.Equal(f.tries, []string{"<a/><b/><c/>"}) {
		t.Fatalf("writes %q, want one of all three", f.tries)
	}
	if !o.idle() || f.wvCalls != 0 {
		t.Fatalf("idle %v, flusher writes %d", o.idle(), f.wvCalls)
	}
	if _, err := o.send([]byte("<d/>")); err != nil {
		t.Fatal(err)
	}
	if got := f.written(); got != "<a/><b/><c/><d/>" {
		t.Fatalf("written %q", got)
	}
}

// A gathering sender waits for gatherMax stanzas at most: the sender that
// brings pend to that writes them, the gathering one writes the rest.
func TestOutboxGatherBounded(t *testing.T) {
	f := &fakeSocket{room: -1}
	var want []string
	all := "<a/>"
	o := newGatherOutbox(t, f, func(o *outbox) {
		for i := 1; i <= gatherMax+4; i++ {
			s := "<s" + strconv.Itoa(i) + "/>"
			all += s
			if _, err := o.send([]byte(s)); err != nil {
				t.Error(err)
			}
			if i == gatherMax-1 {
				want = append(want, all)
				all = ""
			}
		}
	})
	if _, err := o.send([]byte("<a/>")); err != nil {
		t.Fatal(err)
	}
	want = append(want, all)
	if !slices.Equal(f.tries, want) {
		t.Fatalf("writes %q, want %q", f.tries, want)
	}
	if !o.idle() {
		t.Fatal("not idle")
	}
}

// The write of the sender that brings pend to gatherMax fails: every
// stanza is queued, in order, and the gathering sender, back from its
// yield, leaves the outbox as the failure left it.
func TestOutboxGatherBoundedWriteFails(t *testing.T) {
	f := &fakeSocket{room: -1, tryErr: errors.New("broken pipe")}
	o := newGatherOutbox(t, f, func(o *outbox) {
		for i := 1; i <= gatherMax+1; i++ {
			if _, err := o.send([]byte("<s" + strconv.Itoa(i) + "/>")); err != nil {
				t.Error(err)
			}
		}
	})
	if _, err := o.send([]byte("<a/>")); err != nil {
		t.Fatal(err)
	}
	if len(f.tries) != 1 {
		t.Fatalf("writes %q, want the one that failed", f.tries)
	}
	if n, connected := o.stats(); n != gatherMax+2 || connected {
		t.Fatalf("%d queued, connected %v; want %d, false", n, connected, gatherMax+2)
	}
	o.wait()
	g := &fakeSocket{room: -1}
	if _, err := o.attachWriters(g.write, g.try, g.writev); err != nil {
		t.Fatal(err)
	}
	if got := g.written(); !strings.HasPrefix(got, "<a/><s1/><s2/>") || !strings.HasSuffix(got, "<s"+strconv.Itoa(gatherMax+1)+"/>") {
		t.Fatalf("written after the reconnect %q", got)
	}
}

// The gather buffer is kept for the next write, unless a burst of large
// stanzas made it larger than gatherKeep.
func TestOutboxGatherBufferKept(t *testing.T) {
	for _, size := range []int{100, gatherKeep} {
		f := &fakeSocket{room: -1}
		o := newGatherOutbox(t, f, func(o *outbox) {
			if _, err := o.send(make([]byte, size)); err != nil {
				t.Error(err)
			}
		})
		if _, err := o.send([]byte("<a/>")); err != nil {
			t.Fatal(err)
		}
		if kept := o.gather != nil; kept != (size < gatherKeep) {
			t.Errorf("after %d+4 bytes: buffer kept %v", size, kept)
		}
		if len(f.written()) != size+4 {
			t.Errorf("written %d bytes, want %d", len(f.written()), size+4)
		}
	}
}

// What the socket does not take of a gathered write goes to the flusher,
// from the byte where it stopped, stanza by stanza.
func TestOutboxGatherShortWrite(t *testing.T) {
	f := &fakeSocket{room: len("<a/><b")}
	o := newGatherOutbox(t, f, func(o *outbox) {
		if _, err := o.send([]byte("<b/>")); err != nil {
			t.Error(err)
		}
		if _, err := o.send([]byte("<c/>")); err != nil {
			t.Error(err)
		}
	})
	if _, err := o.send([]byte("<a/>")); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, o)
	if got := f.written(); got != "<a/><b/><c/>" {
		t.Fatalf("written %q", got)
	}
	f.mu.Lock()
	rest := f.wvBufs
	f.mu.Unlock()
	if !slices.Equal(rest, []string{"/>", "<c/>"}) {
		t.Fatalf("left to the flusher %q, want the rest of <b/>, then <c/>", rest)
	}
	if !o.idle() {
		t.Fatal("not idle after the flusher")
	}
}

// A gathered write that fails queues every stanza of it whole, in order,
// for the next stream, and marks the stream gone.
func TestOutboxGatherWriteFails(t *testing.T) {
	f := &fakeSocket{room: -1, tryErr: errors.New("broken pipe")}
	o := newGatherOutbox(t, f, func(o *outbox) {
		if _, err := o.send([]byte("<b/>")); err != nil {
			t.Error(err)
		}
	})
	if _, err := o.send([]byte("<a/>")); err != nil {
		t.Fatalf("send: %v (the stanza is queued, not refused)", err)
	}
	if n, connected := o.stats(); n != 2 || connected {
		t.Fatalf("%d queued, connected %v; want 2, false", n, connected)
	}
	g := &fakeSocket{room: -1}
	if n, err := o.attachWriters(g.write, g.try, g.writev); n != 2 || err != nil {
		t.Fatalf("reattach flushed %d, %v", n, err)
	}
	if got := g.written(); got != "<a/><b/>" {
		t.Fatalf("written after the reconnect %q", got)
	}
}

// The stream goes away while a sender yields: its stanza and those added
// meanwhile are queued for the next stream, none is written to the old one.
func TestOutboxGatherStreamLost(t *testing.T) {
	f := &fakeSocket{room: -1}
	o := newGatherOutbox(t, f, func(o *outbox) {
		if _, err := o.send([]byte("<b/>")); err != nil {
			t.Error(err)
		}
		o.detach()
	})
	if queued, err := o.send([]byte("<a/>")); queued || err != nil {
		t.Fatalf("send: queued %v, %v", queued, err)
	}
	if len(f.tries) != 0 || f.written() != "" {
		t.Fatalf("written to the lost stream: %q", f.tries)
	}
	if n, connected := o.stats(); n != 2 || connected {
		t.Fatalf("%d queued, connected %v; want 2, false", n, connected)
	}
	o.wait() // no flusher is left running
}

// sendNow (sipside's read loop) never yields: it writes at once.
func TestOutboxSendNowDoesNotGather(t *testing.T) {
	f := &fakeSocket{room: -1}
	o := newGatherOutbox(t, f, func(*outbox) { t.Error("sendNow yielded") })
	if _, err := o.sendNow([]byte("<a/>")); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.tries, []string{"<a/>"}) {
		t.Fatalf("writes %q", f.tries)
	}
}

func TestOutboxWritesAtOnce(t *testing.T) {
	f := &fakeSocket{room: -1}
	o := newTestOutbox(t, f)
	for _, s := range []string{"<a/>", "<b/>"} {
		if queued, err := o.send([]byte(s)); queued || err != nil {
			t.Fatalf("send %s: queued %v, %v", s, queued, err)
		}
	}
	if got := f.written(); got != "<a/><b/>" {
		t.Fatalf("written %q", got)
	}
	if !o.idle() || f.wvCalls != 0 {
		t.Fatalf("idle %v, flusher writes %d", o.idle(), f.wvCalls)
	}
}

// What the socket does not take at once, and what comes after it, is
// written by the flusher, in order, several stanzas per write; meanwhile
// the outbox is not idle (sipside does not run the handler inline).
func TestOutboxFlusherKeepsOrder(t *testing.T) {
	f := &fakeSocket{room: 3, release: make(chan struct{})}
	o := newTestOutbox(t, f)
	if _, err := o.send([]byte("<first/>")); err != nil {
		t.Fatal(err)
	}
	if o.idle() {
		t.Fatal("idle while the flusher has bytes to write")
	}
	for _, s := range []string{"<second/>", "<third/>"} {
		if queued, err := o.sendNow([]byte(s)); queued || err != nil {
			t.Fatalf("sendNow %s: queued %v, %v", s, queued, err)
		}
	}
	f.release <- struct{}{} // the rest of <first/>, <second/>, <third/> (taken together or not)
	close(f.release)
	waitIdle(t, o)
	if got := f.written(); got != "<first/><second/><third/>" {
		t.Fatalf("written %q", got)
	}
	if !o.idle() {
		t.Fatal("not idle after the flush")
	}
	f.mu.Lock()
	f.room = -1
	f.mu.Unlock()
	if _, err := o.send([]byte("<fourth/>")); err != nil {
		t.Fatal(err)
	}
	if got := f.written(); !strings.HasSuffix(got, "<fourth/>") {
		t.Fatalf("written %q", got)
	}
}

// A failed flusher write puts the whole stanzas it held, then the rest of
// pend, at the head of the queue, before what was queued since; the next
// stream gets them all, in order (at least once: <first/> was partly
// written to the broken stream).
func TestOutboxFlusherFailureRequeues(t *testing.T) {
	f := &fakeSocket{room: 2, release: make(chan struct{}), wvErr: errors.New("broken")}
	o := newTestOutbox(t, f)
	if _, err := o.send([]byte("<first/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := o.send([]byte("<second/>")); err != nil {
		t.Fatal(err)
	}
	close(f.release)
	waitIdle(t, o)
	if n, connected := o.stats(); connected || n != 2 {
		t.Fatalf("after the failure: %d queued, connected %v", n, connected)
	}
	if queued, err := o.send([]byte("<third/>")); !queued || err != nil {
		t.Fatalf("send while down: queued %v, %v", queued, err)
	}
	g := &fakeSocket{room: -1}
	if n, err := o.attachWriters(g.write, g.try, g.writev); err != nil || n != 3 {
		t.Fatalf("attach flushed %d, %v", n, err)
	}
	if got := g.written(); got != "<first/><second/><third/>" {
		t.Fatalf("new stream got %q", got)
	}
}

// A detach while the flusher writes: what it still holds is queued when its
// write returns, ahead of what was sent after the detach; attach waits for
// it.
func TestOutboxDetachDuringFlush(t *testing.T) {
	f := &fakeSocket{room: 0, release: make(chan struct{}), entered: make(chan struct{}, 1)}
	o := newTestOutbox(t, f)
	if _, err := o.send([]byte("<first/>")); err != nil {
		t.Fatal(err)
	}
	<-f.entered
	o.detach()
	if _, err := o.send([]byte("<later/>")); err != nil {
		t.Fatal(err)
	}
	g := &fakeSocket{room: -1}
	attached := make(chan int)
	go func() {
		n, _ := o.attachWriters(g.write, g.try, g.writev)
		attached <- n
	}()
	select {
	case <-attached:
		t.Fatal("attach did not wait for the flusher")
	case <-time.After(20 * time.Millisecond):
	}
	close(f.release) // the flusher's write of <first/> succeeds on the old stream
	if n := <-attached; n != 1 {
		t.Fatalf("attach flushed %d", n)
	}
	if f.written() != "<first/>" || g.written() != "<later/>" {
		t.Fatalf("old stream %q, new stream %q", f.written(), g.written())
	}
}

// While pend holds pendLimit bytes (besides what the flusher is writing),
// send waits for the flusher; sendNow does not.
func TestOutboxBackpressure(t *testing.T) {
	f := &fakeSocket{room: 0, release: make(chan struct{}), entered: make(chan struct{}, 4)}
	o := newTestOutbox(t, f)
	if _, err := o.send([]byte("<being-written/>")); err != nil {
		t.Fatal(err)
	}
	<-f.entered
	big := make([]byte, pendLimit)
	if _, err := o.send(big); err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	go func() {
		_, _ = o.send([]byte("<waits/>"))
		close(sent)
	}()
	if _, err := o.sendNow([]byte("<now/>")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sent:
		t.Fatal("send did not wait with pend full")
	case <-time.After(20 * time.Millisecond):
	}
	f.release <- struct{}{} // <being-written/> is written; the flusher takes pend: send goes on
	<-sent
	close(f.release)
	waitIdle(t, o)
	if got := f.written(); !strings.HasSuffix(got, "<now/><waits/>") || len(got) != len("<being-written/>")+pendLimit+len("<now/><waits/>") {
		t.Fatalf("written %d bytes ending %q", len(got), got[max(len(got)-20, 0):])
	}
}

// A try that fails breaks the stream; the stanza is queued (at least once).
func TestOutboxTryFailure(t *testing.T) {
	f := &fakeSocket{tryErr: ErrNotConnected}
	o := newTestOutbox(t, f)
	if queued, err := o.send([]byte("<a/>")); !queued || err != nil {
		t.Fatalf("queued %v, %v", queued, err)
	}
	if n, connected := o.stats(); connected || n != 1 || o.idle() {
		t.Fatalf("%d queued, connected %v, idle %v", n, connected, o.idle())
	}
}

// tryWrite on a real socket whose peer does not read returns short instead
// of blocking; writeBuffers then waits for the peer and delivers the rest.
func TestStreamTryWriteDoesNotBlock(t *testing.T) {
	c, peer := tcpPair(t)
	s := &stream{conn: c, timeout: 5 * time.Second}
	defer s.kill()
	chunk := make([]byte, 64<<10)
	total, short := 0, false
	for range 4096 { // 256 MiB at most: far more than any socket buffer
		n, err := s.tryWrite(chunk)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n < len(chunk) {
			short = true
			break
		}
	}
	if !short {
		t.Fatal("tryWrite never came back short")
	}
	read := make(chan int)
	go func() {
		buf := make([]byte, 1<<20)
		n := 0
		for n < total+len(chunk) {
			k, err := peer.Read(buf)
			if err != nil {
				break
			}
			n += k
		}
		read <- n
	}()
	if err := s.writeBuffers([][]byte{chunk}); err != nil {
		t.Fatal(err)
	}
	if n := <-read; n != total+len(chunk) {
		t.Fatalf("peer read %d bytes, want %d", n, total+len(chunk))
	}
}

// Many senders waiting on a full pend all get through, woken one after
// another (each passes the turn on while pend has room) and by the
// flusher's later batches; nothing is lost.
func TestOutboxWaitersAllProceed(t *testing.T) {
	f := &fakeSocket{room: 0, release: make(chan struct{}), entered: make(chan struct{}, 1024)}
	o := newTestOutbox(t, f)
	if _, err := o.send([]byte("<first/>")); err != nil {
		t.Fatal(err)
	}
	<-f.entered
	if _, err := o.send(make([]byte, pendLimit)); err != nil { // pend full
		t.Fatal(err)
	}
	const senders = 50
	stanza := make([]byte, pendLimit/4)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			if _, err := o.send(stanza); err != nil {
				t.Error(err)
			}
		})
	}
	close(f.release) // every flusher write goes through from now on
	wg.Wait()
	waitIdle(t, o)
	if got, want := len(f.written()), len("<first/>")+pendLimit+senders*len(stanza); got != want {
		t.Fatalf("written %d bytes, want %d", got, want)
	}
}

// A write that waits sets the write deadline; tryWrite, which never waits,
// must not fail once that deadline has passed. It did: a stream lost
// every PingInterval, from timeout after the ping's write until the next
// ping, whenever a stanza went out in between (seen in the presence bench).
func TestTryWriteAfterDeadline(t *testing.T) {
	c, peer := tcpPair(t)
	s := &stream{conn: c, timeout: 50 * time.Millisecond}
	defer s.kill()
	if err := s.write([]byte("<iq/>")); err != nil { // sets the deadline
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	if n, err := s.tryWrite([]byte("<message/>")); err != nil || n != len("<message/>") {
		t.Fatalf("tryWrite after the deadline of an earlier write: %d, %v", n, err)
	}
	if err := s.writeBuffers([][]byte{[]byte("<a/>"), []byte("<b/>")}); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	want := "<iq/><message/><a/><b/>"
	got := make([]byte, 0, len(want))
	buf := make([]byte, 64)
	for len(got) < len(want) {
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("peer read %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != want {
		t.Fatalf("peer got %q, want %q", got, want)
	}
	// A write that breaks the stream is kept for the supervisor's log line:
	// the reader only sees the connection closed.
	if err := s.writeFailure(); err != nil {
		t.Fatalf("writeFailure %v before any failure", err)
	}
	_ = c.Close()
	if _, err := s.tryWrite([]byte("<message/>")); err == nil {
		t.Fatal("tryWrite on a closed connection: no error")
	}
	if err := s.writeFailure(); err == nil {
		t.Fatal("the failed write was not kept")
	}
}

// tcpPair returns the two ends of a loopback TCP connection; the test's
// cleanup closes the peer's end.
func tcpPair(t *testing.T) (c, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer = <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { peer.Close() })
	return c, peer
}
