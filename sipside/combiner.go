package sipside

import (
	"net"
	"net/netip"
	"sync"
)

// combiner sends datagrams that several goroutines produce, several to a
// system call (batchWriter, sendmmsg): each goroutine adds its datagram and
// then flushes; one that finds another flushing leaves its datagram to it,
// and the flusher takes the queue again until it finds it empty. Under
// load the datagrams of goroutines that finish together leave in one
// call; alone, a goroutine sends its own at once.
type combiner struct {
	w     *batchWriter
	onErr func(outDatagram, error) // a datagram that could not be sent (flusher only)

	mu       sync.Mutex
	q, spare []outDatagram
	flushing bool
	chunk    []outDatagram // being sent (flusher only)
}

// batchSlots is how many datagrams one system call reads or sends at most
// (mmsg_linux.go).
const batchSlots = 16

// outDatagram is a datagram to send; branch names the client transaction
// of a request.
type outDatagram struct {
	branch string
	data   []byte
	dst    netip.AddrPort
}

// newCombiner returns nil where the OS cannot send in batches.
func newCombiner(pc *net.UDPConn, onErr func(outDatagram, error)) *combiner {
	c := &combiner{onErr: onErr}
	c.w = newBatchWriter(pc, func(i int, _ netip.AddrPort, err error) { c.onErr(c.chunk[i], err) })
	if c.w == nil {
		return nil
	}
	return c
}

// add queues d for the next flush; false when c is nil (no batching: the
// caller sends d itself). d.data must not change until it is sent.
func (c *combiner) add(d outDatagram) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	c.q = append(c.q, d)
	c.mu.Unlock()
	return true
}

// flush sends what is queued, unless another goroutine is sending: then it
// leaves the queue to that one and returns at once.
func (c *combiner) flush() {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.flushing || len(c.q) == 0 {
		c.mu.Unlock()
		return
	}
	c.flushing = true
	for len(c.q) > 0 {
		q := c.q
		c.q = c.spare
		c.mu.Unlock()
		all := q
		for len(q) > 0 {
			c.chunk = q[:min(batchSlots, len(q))]
			for _, d := range c.chunk {
				c.w.queue(d.data, d.dst)
			}
			c.w.flush()
			q = q[len(c.chunk):]
		}
		clear(all)
		c.chunk = nil
		c.mu.Lock()
		c.spare = all[:0]
	}
	c.flushing = false
	c.mu.Unlock()
}
