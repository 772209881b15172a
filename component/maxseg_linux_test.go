package component

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// segmentOf reads the MSS the kernel uses on conn (TCP_MAXSEG).
func segmentOf(t *testing.T, conn net.Conn) int {
	t.Helper()
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mss int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		mss, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return mss
}

// The component stream's segments are capped at Config.MaxSegment; without
// the cap, loopback's are about 64 KiB (its MTU is 65536).
func TestDialStreamMaxSegment(t *testing.T) {
	srv := newFakeServer(t, func(int32) string { return "ok" })
	addr := srv.ln.Addr().String()
	dial := func(maxSeg int) int {
		s, err := dialStream(context.Background(), addr, "sip.example.com", srv.secret, 5*time.Second, maxSeg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.kill()
		if s.segmentErr != nil {
			t.Fatalf("segmentErr = %v", s.segmentErr)
		}
		return segmentOf(t, s.conn)
	}
	free := dial(-1)
	if free <= DefaultMaxSegment {
		t.Skipf("loopback MSS is %d without a cap: nothing to cap here", free)
	}
	got := dial(DefaultMaxSegment)
	if got > DefaultMaxSegment || got < DefaultMaxSegment-64 {
		t.Fatalf("MSS with the cap = %d, want about %d (without: %d)", got, DefaultMaxSegment, free)
	}
	t.Logf("MSS %d with the cap, %d without", got, free)
}
