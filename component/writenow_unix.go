//go:build unix

package component

import (
	"errors"
	"syscall"
)

// haveWriteNow: tryWrite can write without waiting.
const haveWriteNow = true

// writeNow writes what of b the socket of rc takes without blocking: one
// write(2) on the non-blocking descriptor. A full socket buffer is not an
// error: it returns 0.
func writeNow(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), b)
			if !errors.Is(werr, syscall.EINTR) {
				return true // done, whatever happened: never wait for the socket
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if errors.Is(werr, syscall.EAGAIN) {
		return 0, nil
	}
	return max(n, 0), werr
}
