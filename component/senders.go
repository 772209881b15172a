package component

import (
	"sync"
	"time"
)

// senderPool runs the Sessions' SIP sends (deliver) on goroutines that
// outlive one message. A send goes deep (sipside, then sipgo down to the
// socket write) and blocks for the whole transaction; a fresh goroutine per
// message started with a small stack and grew it, by copying, every time:
// about a tenth of stox's CPU per XMPP->SIP message in `make bench`. A
// worker that finishes a send waits idle for the next one and exits after
// idle without work, so the goroutines follow the load back down.
//
// There is no queue: a send goes to a worker that is waiting, or gets a new
// worker. The number of workers is the number of sends in flight, which the
// Sessions bound (one per destination; SessionQueue) as before. The Gateway
// owns the workers: they stop when its context ends and Close waits for them.
type senderPool struct {
	jobs chan func()
	idle time.Duration
	quit <-chan struct{}
	wg   *sync.WaitGroup
}

func newSenderPool(idle time.Duration, quit <-chan struct{}, wg *sync.WaitGroup) *senderPool {
	return &senderPool{jobs: make(chan func()), idle: idle, quit: quit, wg: wg}
}

// run starts job on a waiting worker or a new one.
func (p *senderPool) run(job func()) {
	select {
	case p.jobs <- job:
		return
	default:
	}
	p.wg.Add(1)
	go p.worker(job)
}

func (p *senderPool) worker(job func()) {
	defer p.wg.Done()
	idle := time.NewTimer(p.idle)
	defer idle.Stop()
	for {
		job()
		idle.Reset(p.idle)
		select {
		case job = <-p.jobs:
		case <-idle.C:
			return
		case <-p.quit:
			return
		}
	}
}
