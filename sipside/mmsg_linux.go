//go:build linux

package sipside

import (
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchConn reads the datagrams of a UDP socket several at a time with
// recvmmsg(2), and sends the responses the read loop writes several at a
// time with sendmmsg(2), after the datagrams it read in one go. Under load
// that saves a system call per datagram each way (about 2 us to read and
// 3-4 us to send, of 12-15 us the read loop spends per MESSAGE it
// refuses): at two or three times the sustainable rate, the loop must
// answer each excess MESSAGE (503) faster than it arrives, or the kernel
// drops datagrams and the senders' retransmissions add to the load.
//
// Only the read loop uses it.
type batchConn struct {
	batchWriter

	// reading: n datagrams read, next is the next to hand out
	in      []mmsghdr
	inIov   []unix.Iovec
	inName  []unix.RawSockaddrInet6 // large enough for either family
	inBuf   [][]byte
	n, next int
}

// batchWriter sends queued datagrams with sendmmsg(2). One goroutine at a
// time uses it.
type batchWriter struct {
	rc syscall.RawConn
	v6 bool // an AF_INET6 socket: IPv4 destinations as mapped addresses

	out     []mmsghdr
	outIov  []unix.Iovec
	outName []unix.RawSockaddrInet6
	outBuf  [][]byte // buffers for queueBuffer, reused
	nOut    int
	// sendErr hears of each datagram that could not be sent, with its
	// index in the batch (counting from the last flush).
	sendErr func(i int, dst netip.AddrPort, err error)
}

// mmsghdr is struct mmsghdr: Go's alignment pads it as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// newBatchConn returns nil when the socket cannot be read in batches.
// size is the largest datagram to read whole.
func newBatchConn(uc *net.UDPConn, size int, sendErr func(int, netip.AddrPort, error)) *batchConn {
	w := newBatchWriter(uc, sendErr)
	if w == nil {
		return nil
	}
	c := &batchConn{
		batchWriter: *w,
		in:          make([]mmsghdr, batchSlots),
		inIov:       make([]unix.Iovec, batchSlots),
		inName:      make([]unix.RawSockaddrInet6, batchSlots),
		inBuf:       make([][]byte, batchSlots),
	}
	for i := range c.in {
		c.inBuf[i] = make([]byte, size)
		c.inIov[i].Base = &c.inBuf[i][0]
		c.inIov[i].SetLen(size)
		c.in[i].hdr.Iov = &c.inIov[i]
		c.in[i].hdr.SetIovlen(1)
		c.in[i].hdr.Name = (*byte)(unsafe.Pointer(&c.inName[i]))
	}
	return c
}

// newBatchWriter returns nil when the socket cannot be written in batches.
func newBatchWriter(uc *net.UDPConn, sendErr func(int, netip.AddrPort, error)) *batchWriter {
	if uc == nil {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var family int
	if err := rc.Control(func(fd uintptr) {
		sa, e := unix.Getsockname(int(fd))
		switch sa.(type) {
		case *unix.SockaddrInet4:
			family = unix.AF_INET
		case *unix.SockaddrInet6:
			family = unix.AF_INET6
		}
		err = e
	}); err != nil || family == 0 {
		return nil
	}
	w := &batchWriter{
		rc:      rc,
		v6:      family == unix.AF_INET6,
		out:     make([]mmsghdr, batchSlots),
		outIov:  make([]unix.Iovec, batchSlots),
		outName: make([]unix.RawSockaddrInet6, batchSlots),
		outBuf:  make([][]byte, batchSlots),
		sendErr: sendErr,
	}
	for i := range w.out {
		w.out[i].hdr.Iov = &w.outIov[i]
		w.out[i].hdr.SetIovlen(1)
		w.out[i].hdr.Name = (*byte)(unsafe.Pointer(&w.outName[i]))
		w.outBuf[i] = make([]byte, 0, 512)
	}
	return w
}

// read returns the next datagram and its source, reading a batch when the
// last one is used up (after sending what is queued). waited: the read
// found the socket empty and waited for a datagram. data is valid until
// the next call.
func (c *batchConn) read() (data []byte, src netip.AddrPort, waited bool, err error) {
	for c.next >= c.n {
		c.flush()
		c.next, c.n = 0, 0
		for i := range c.in {
			c.in[i].hdr.Namelen = uint32(unsafe.Sizeof(c.inName[i]))
			c.in[i].hdr.Flags = 0
		}
		tries := 0
		var errno syscall.Errno
		err := c.rc.Read(func(fd uintptr) bool {
			tries++
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.in[0])), uintptr(len(c.in)), 0, 0, 0)
			if e == unix.EAGAIN || e == unix.EINTR {
				return false
			}
			errno = e
			if e == 0 {
				c.n = int(r)
			}
			return true
		})
		if err != nil {
			return nil, src, false, err
		}
		if errno != 0 {
			return nil, src, false, &net.OpError{Op: "read", Net: "udp", Err: errno}
		}
		waited = tries > 1
	}
	i := c.next
	c.next++
	return c.inBuf[i][:c.in[i].len], sockaddrPort(&c.inName[i]), waited, nil
}

// buffer returns an empty buffer for the next datagram to queue with
// queueBuffer.
func (c *batchWriter) buffer() []byte {
	if c.nOut == len(c.out) {
		c.flush()
	}
	return c.outBuf[c.nOut][:0]
}

// queueBuffer queues b, which buffer returned (and append may have
// grown), to send at the next flush. Its array is reused after that.
func (c *batchWriter) queueBuffer(b []byte, dst netip.AddrPort) {
	if c.nOut == len(c.out) {
		c.flush() // b was not from buffer: it is not overwritten
	}
	c.outBuf[c.nOut] = b[:0]
	c.queue(b, dst)
}

// queue adds b to the datagrams to send at the next flush, flushing first
// when the batch is full. b must not change until then; it is not kept
// after it.
func (c *batchWriter) queue(b []byte, dst netip.AddrPort) {
	if c.nOut == len(c.out) {
		c.flush()
	}
	i := c.nOut
	c.outIov[i].Base = unsafe.SliceData(b)
	c.outIov[i].SetLen(len(b))
	c.out[i].hdr.Namelen = c.putSockaddr(&c.outName[i], dst)
	c.nOut++
}

// flush sends the queued datagrams.
//
// The system call runs under rc.Control, which keeps the descriptor open
// without taking the socket's write lock: other goroutines' writes to the
// socket (sipgo's, the workers' responses) hold that lock, one at a time,
// and one the OS preempted while holding it kept the read loop waiting
// (seen in goroutine dumps at 3x overload). The kernel takes concurrent
// sends on a datagram socket. Only when the send buffer is full does
// flush wait, through rc.Write and the poller.
func (c *batchWriter) flush() {
	sent := 0
	for sent < c.nOut {
		var r uintptr
		var errno syscall.Errno
		sendmmsg := func(fd uintptr) {
			for {
				r, _, errno = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&c.out[sent])), uintptr(c.nOut-sent), 0, 0, 0)
				if errno != unix.EINTR {
					return
				}
			}
		}
		err := c.rc.Control(sendmmsg)
		if err == nil && errno == unix.EAGAIN {
			err = c.rc.Write(func(fd uintptr) bool {
				sendmmsg(fd)
				return errno != unix.EAGAIN
			})
		}
		switch {
		case err != nil:
			c.failed(sent, c.nOut, err)
			sent = c.nOut
		case errno != 0:
			// The datagram at sent failed (an address of the other
			// family, say); the ones before it went in an earlier call.
			c.failed(sent, sent+1, errno)
			sent++
		default:
			sent += int(r)
		}
	}
	for i := range c.nOut {
		c.outIov[i].Base = nil // let the sent datagrams go
	}
	c.nOut = 0
}

func (c *batchWriter) failed(from, to int, err error) {
	if c.sendErr == nil {
		return
	}
	for i := from; i < to; i++ {
		c.sendErr(i, sockaddrPort(&c.outName[i]), err)
	}
}

// putSockaddr writes dst into sa in the socket's family and returns its
// length.
func (c *batchWriter) putSockaddr(sa *unix.RawSockaddrInet6, dst netip.AddrPort) uint32 {
	a := dst.Addr()
	if !c.v6 && a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() && !c.v6 {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		putPort(&s4.Port, dst.Port())
		return unix.SizeofSockaddrInet4
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	if z, err := strconv.ParseUint(a.Zone(), 10, 32); err == nil {
		sa.Scope_id = uint32(z)
	}
	putPort(&sa.Port, dst.Port())
	return unix.SizeofSockaddrInet6
}

// sockaddrPort reads an address that the kernel wrote, IPv4-mapped ones
// unmapped.
func sockaddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), getPort(&s4.Port))
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr).Unmap()
		if sa.Scope_id != 0 && a.Is6() {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, getPort(&sa.Port))
	}
	return netip.AddrPort{}
}

// The port fields hold network byte order.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}
