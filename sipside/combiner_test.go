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

// Goroutines that add and flush at the same time get every datagram sent
// exactly once; one that cannot be sent is reported with its branch and
// does not hold the others back.
func TestCombiner(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var failed []string
	c := newCombiner(pc.(*net.UDPConn), func(d outDatagram, err error) {
		mu.Lock()
		failed = append(failed, d.branch)
		mu.Unlock()
	})
	if c == nil {
		t.Skip("no batched sending on this OS")
	}
	peer := udpPeer(t, "udp4", "127.0.0.1:0")
	_ = peer.SetReadBuffer(4 << 20)
	dst := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	const goroutines, each = 8, 100
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if g == 3 && i == 50 {
					c.add(outDatagram{branch: "unsendable", data: []byte("x"), dst: netip.MustParseAddrPort("[2001:db8::1]:5060")})
				}
				c.add(outDatagram{data: []byte(fmt.Sprintf("%d/%d", g, i)), dst: dst})
				c.flush()
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	buf := make([]byte, 64)
	for len(seen) < goroutines*each {
		_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := peer.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("%d of %d datagrams arrived: %v", len(seen), goroutines*each, err)
		}
		if seen[string(buf[:n])] {
			t.Fatalf("%q arrived twice", buf[:n])
		}
		seen[string(buf[:n])] = true
	}
	_ = peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _, err := peer.ReadFromUDP(buf); err == nil {
		t.Fatalf("an extra datagram %q", buf[:n])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 1 || failed[0] != "unsendable" {
		t.Fatalf("failures reported: %v", failed)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.q) != 0 || c.flushing {
		t.Fatalf("left queued %d, flushing %v", len(c.q), c.flushing)
	}
}
