//go:build !linux

package sipside

import (
	"net"
	"net/netip"
)

// batchConn is Linux's recvmmsg and sendmmsg (mmsg_linux.go); elsewhere the
// read loop reads and writes one datagram at a time.
type batchConn struct{}

func newBatchConn(*net.UDPConn, int, func(netip.AddrPort, error)) *batchConn { return nil }

func (c *batchConn) read() ([]byte, netip.AddrPort, bool, error) {
	panic("sipside: batchConn without recvmmsg")
}

func (c *batchConn) buffer() []byte { panic("sipside: batchConn without sendmmsg") }

func (c *batchConn) queue([]byte, netip.AddrPort) { panic("sipside: batchConn without sendmmsg") }

func (c *batchConn) flush() {}
