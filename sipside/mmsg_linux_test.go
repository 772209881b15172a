//go:build linux

package sipside

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func listenBatch(t *testing.T, network, addr string, sendErr func(int, netip.AddrPort, error)) (*net.UDPConn, *batchConn) {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	uc := pc.(*net.UDPConn)
	c := newBatchConn(uc, 1<<16, sendErr)
	if c == nil {
		t.Fatal("newBatchConn: nil for a UDP socket")
	}
	return uc, c
}

func udpPeer(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

// The datagrams queued in the socket come out in order, whole, with their
// sources, in batches; the first read of a batch says whether it waited.
func TestBatchConnRead(t *testing.T) {
	uc, c := listenBatch(t, "udp4", "127.0.0.1:0", nil)
	a, b := udpPeer(t, "udp4", "127.0.0.1:0"), udpPeer(t, "udp4", "127.0.0.1:0")
	dst := uc.LocalAddr().(*net.UDPAddr)
	const n = batchSlots + 5 // two batches
	big := make([]byte, 60000)
	for i := range n {
		from := a
		if i%2 == 1 {
			from = b
		}
		msg := []byte(fmt.Sprintf("datagram %d", i))
		if i == 3 {
			msg = append(msg, big...)
		}
		if _, err := from.WriteToUDP(msg, dst); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		data, src, waited, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		if waited {
			t.Errorf("datagram %d: waited, though it was queued", i)
		}
		want := fmt.Sprintf("datagram %d", i)
		if i == 3 {
			if len(data) != len(want)+len(big) {
				t.Errorf("datagram 3: %d bytes, want %d", len(data), len(want)+len(big))
			}
			data = data[:len(want)]
		}
		if string(data) != want {
			t.Errorf("datagram %d: %q", i, data)
		}
		from := a
		if i%2 == 1 {
			from = b
		}
		if src != from.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Errorf("datagram %d: source %v, want %v", i, src, from.LocalAddr())
		}
	}
	// The socket is empty now: the next read waits.
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = a.WriteToUDP([]byte("late"), dst)
	}()
	data, _, waited, err := c.read()
	if err != nil || string(data) != "late" || !waited {
		t.Fatalf("read after the socket emptied: %q waited=%v err=%v", data, waited, err)
	}
	// Closing the socket ends a read with net.ErrClosed, which ends
	// sipgo's loop quietly.
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _, _, err = c.read()
	})
	time.Sleep(20 * time.Millisecond)
	uc.Close()
	wg.Wait()
	if err == nil {
		t.Fatal("read on a closed socket: no error")
	}
}

// Queued datagrams are sent at the flush (and when the queue is full), to
// their own destinations; one that cannot be sent is reported and does
// not keep the others back.
func TestBatchConnSend(t *testing.T) {
	var failed []netip.AddrPort
	_, c := listenBatch(t, "udp4", "127.0.0.1:0", func(_ int, dst netip.AddrPort, err error) {
		failed = append(failed, dst)
	})
	a, b := udpPeer(t, "udp4", "127.0.0.1:0"), udpPeer(t, "udp4", "127.0.0.1:0")
	peers := []*net.UDPConn{a, b}
	v6 := netip.MustParseAddrPort("[2001:db8::1]:5060") // not reachable from an IPv4 socket
	const n = batchSlots + 3
	for i := range n {
		if i == 5 {
			c.queueBuffer(append(c.buffer(), "unsendable"...), v6)
		}
		to := peers[i%2].LocalAddr().(*net.UDPAddr).AddrPort()
		c.queueBuffer(append(c.buffer(), fmt.Sprintf("response %d", i)...), to)
	}
	c.flush()
	if len(failed) != 1 || failed[0] != v6 {
		t.Errorf("reported failures %v, want [%v]", failed, v6)
	}
	buf := make([]byte, 100)
	for i := range n {
		p := peers[i%2]
		_ = p.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, _, err := p.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if want := fmt.Sprintf("response %d", i); string(buf[:k]) != want {
			t.Errorf("got %q, want %q", buf[:k], want)
		}
	}
	c.flush() // nothing queued: nothing sent
	_ = a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if k, _, err := a.ReadFromUDP(buf); err == nil {
		t.Errorf("an empty flush sent %q", buf[:k])
	}
}

// On a dual-stack socket IPv4 peers are read unmapped and written to as
// mapped addresses.
func TestBatchConnDualStack(t *testing.T) {
	uc, c := listenBatch(t, "udp", "[::]:0", nil)
	if !c.v6 {
		t.Skip("the wildcard socket is not AF_INET6 here")
	}
	peer := udpPeer(t, "udp4", "127.0.0.1:0")
	port := uc.LocalAddr().(*net.UDPAddr).Port
	if _, err := peer.WriteToUDP([]byte("hello"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
	data, src, _, err := c.read()
	if err != nil || string(data) != "hello" {
		t.Fatalf("read %q: %v", data, err)
	}
	if want := peer.LocalAddr().(*net.UDPAddr).AddrPort(); src != want {
		t.Fatalf("source %v, want %v", src, want)
	}
	c.queueBuffer(append(c.buffer(), "back"...), src)
	c.flush()
	buf := make([]byte, 10)
	_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	k, from, err := peer.ReadFromUDP(buf)
	if err != nil || string(buf[:k]) != "back" || from.Port != port {
		t.Fatalf("reply %q from %v: %v", buf[:k], from, err)
	}
}
