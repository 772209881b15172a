//go:build linux

package msrp

import "syscall"

// reusable: this system lets a connection leave from a listening port.
const reusable = true

// soReusePort is SO_REUSEPORT on Linux (asm-generic/socket.h).
const soReusePort = 0xf

// reuseControl sets SO_REUSEADDR and SO_REUSEPORT, so that a listening
// socket and connections from its port can share the address.
func reuseControl(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		if serr == nil {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
