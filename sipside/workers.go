package sipside

import (
	"sync"
	"time"
)

// workers runs the handling of incoming MESSAGEs (conversation turn,
// MessageHandler, response) on goroutines that outlive one request. sipgo
// starts a goroutine per request; the handling goes deep (the handler, then
// sipgo down to the socket write) and that goroutine's small initial stack
// was grown by copying on every request: about a tenth of stox's CPU per
// SIP->XMPP message in `make bench`. The sipgo goroutine now hands the work
// over and waits for it; a worker's stack stays grown from one request to
// the next. Idle workers exit after idle; there is no queue (a request goes
// to a waiting worker or gets a new one), so requests are never held up
// behind each other here. The UA owns the workers: Close stops the idle ones
// and waits for all.
type workers struct {
	jobs chan func()
	idle time.Duration
	quit <-chan struct{}
	wg   *sync.WaitGroup
}

func newWorkers(idle time.Duration, quit <-chan struct{}, wg *sync.WaitGroup) *workers {
	return &workers{jobs: make(chan func()), idle: idle, quit: quit, wg: wg}
}

// do runs job on a worker and returns when it has finished.
func (p *workers) do(job func()) {
	done := make(chan struct{})
	run := func() {
		defer close(done)
		job()
	}
	select {
	case p.jobs <- run:
	default:
		p.wg.Add(1)
		go p.worker(run)
	}
	<-done
}

// submit runs job on a worker and returns at once.
func (p *workers) submit(job func()) {
	select {
	case p.jobs <- job:
	default:
		p.wg.Add(1)
		go p.worker(job)
	}
}

func (p *workers) worker(job func()) {
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
