//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package component

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setMaxSegment caps the TCP segments of a socket that is about to connect
// (TCP_MAXSEG). Set before the SYN, the cap is also announced to the peer,
// which then sends no larger segments either.
func setMaxSegment(c syscall.RawConn, n int) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, n)
	}); err != nil {
		return err
	}
	return serr
}
