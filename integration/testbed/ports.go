//go:build unix

package testbed

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Networks understood by FreePort and ReservePort.
const (
	TCP    = "tcp"     // a loopback port free for TCP
	UDP    = "udp"     // a loopback port free for UDP
	TCPUDP = "tcp+udp" // a loopback port free for both (a SIP listener on both transports)
)

// FreePort returns a loopback port that is free for network (TCP, UDP or
// TCPUDP) and that no other caller of this package, in this process or in
// another test process, has been given. It fails the test if there is none.
func FreePort(t testing.TB, network string) int {
	t.Helper()
	p, err := ReservePort(network)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return p
}

// ReservePort is FreePort for code that has no testing.TB (examples/demo).
//
// How collisions are avoided: ports are drawn at random outside the kernel's
// ephemeral range (/proc/sys/net/ipv4/ip_local_port_range), so the source port
// of an outgoing connection never takes one; each port given out is locked
// for the life of the process (a POSIX record lock on byte PORT of
// $TMPDIR/stox-testbed-ports.lock, which the kernel drops when the process
// dies, so a crashed test leaves nothing behind); and the port must bind on
// 127.0.0.1 at that moment.
// A port is never given out twice in one process.
func ReservePort(network string) (int, error) {
	return reserve(network, 1)
}

// reserve finds n consecutive ports (the first one returned) free for
// network, and reserves them all.
func reserve(network string, n int) (int, error) {
	var tcp, udp bool
	switch network {
	case TCP:
		tcp = true
	case UDP:
		udp = true
	case TCPUDP:
		tcp, udp = true, true
	default:
		return 0, fmt.Errorf("testbed: unknown network %q (want %q, %q or %q)", network, TCP, UDP, TCPUDP)
	}
	ports.mu.Lock()
	defer ports.mu.Unlock()
	ports.init()
	for range 2000 {
		first := ports.pick(n)
		if ports.tryBlock(first, n, tcp, udp) {
			return first, nil
		}
	}
	return 0, errors.New("testbed: no free loopback port found after 2000 tries")
}

// ports is the process-wide reservation table. It is package state on
// purpose: reservations must hold across every test of the process.
var ports portTable

type portTable struct {
	mu     sync.Mutex
	ranges [][2]int // candidate ranges, inclusive
	total  int
	given  map[int]bool
	locker *portLocker
}

func (pt *portTable) init() {
	if pt.given != nil {
		return
	}
	pt.given = map[int]bool{}
	lo, hi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			z, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && a <= z {
				lo, hi = a, z
			}
		}
	}
	const min, max = 10000, 65000
	if lo-1 >= min+100 {
		pt.ranges = append(pt.ranges, [2]int{min, lo - 1})
	}
	if hi+1 <= max-100 {
		pt.ranges = append(pt.ranges, [2]int{hi + 1, max})
	}
	if len(pt.ranges) == 0 { // the whole space is ephemeral: take our chances
		pt.ranges = [][2]int{{min, max}}
	}
	for _, r := range pt.ranges {
		pt.total += r[1] - r[0] + 1
	}
	pt.locker = openPortLocker(filepath.Join(os.TempDir(), "stox-testbed-ports.lock"))
}

// pick draws a random first port of a block of n inside one candidate range.
func (pt *portTable) pick(n int) int {
	k := rand.IntN(pt.total)
	for _, r := range pt.ranges {
		size := r[1] - r[0] + 1
		if k < size {
			p := r[0] + k
			if p+n-1 > r[1] {
				p = r[1] - n + 1
			}
			return p
		}
		k -= size
	}
	return pt.ranges[0][0]
}

func (pt *portTable) tryBlock(first, n int, tcp, udp bool) bool {
	for p := first; p < first+n; p++ {
		if pt.given[p] || !bindable(p, tcp, udp) {
			return false
		}
	}
	for p := first; p < first+n; p++ {
		if !pt.locker.lock(p) {
			for q := first; q < p; q++ {
				pt.locker.unlock(q)
			}
			return false
		}
	}
	for p := first; p < first+n; p++ {
		pt.given[p] = true
	}
	return true
}

// bindable reports whether 127.0.0.1:port binds right now.
func bindable(port int, tcp, udp bool) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if tcp {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	if udp {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		_ = c.Close()
	}
	return true
}
