//go:build !linux

package sipside

import (
	"net"
	"net/netip"
)

// batchConn is Linux's recvmmsg and sendmmsg (mmsg_linux.go); elsewhere the
// read loop reads and writes one datagram at a time.
type batchConn struct{ batchWriter }

type batchWriter struct{}

func newBatchConn(*net.UDPConn, int, func(int, netip.AddrPort, error)) *batchConn { return nil }

func newBatchWriter(*net.UDPConn, func(int, netip.AddrPort, error)) *batchWriter { return nil }

func (c *batchConn) read() ([]byte, netip.AddrPort, bool, error) {
	panic("sipside: batchConn without recvmmsg")
}

func (c *batchWriter) buffer() []byte { panic("sipside: batchWriter without sendmmsg") }

func (c *batchWriter) queueBuffer([]byte, netip.AddrPort) {
	panic("sipside: batchWriter without sendmmsg")
}

func (c *batchWriter) queue([]byte, netip.AddrPort) { panic("sipside: batchWriter without sendmmsg") }

func (c *batchWriter) flush() {}
