package lab

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxQueued bounds the packets held in a delay line, whatever the settings,
// so a misconfigured link cannot eat the machine's memory.
const maxQueued = 1 << 16

// Counters count what one direction of the link did.
type Counters struct {
	Packets, Bytes                      atomic.Int64 // delivered
	LostRandom, LostBurst, LostQueue    atomic.Int64 // dropped, by cause
	Reordered                           atomic.Int64
	OverflowDropped                     atomic.Int64 // dropped at the hard queue cap
	ReadErrors, WriteErrors, ShortWrite atomic.Int64
}

// pump moves packets of one direction: read from the TUN device, decide,
// hold until their delivery time, write back to the device (from where the
// kernel forwards them on).
type pump struct {
	dev      *os.File
	mu       sync.Mutex
	shaper   *shaper
	queue    chan queued
	counters Counters
	bufs     sync.Pool
}

type queued struct {
	buf     *[]byte
	n       int
	deliver time.Time
}

func newPump(dev *os.File, p Params, seed uint64) *pump {
	return &pump{
		dev:    dev,
		shaper: newShaper(p, seed),
		queue:  make(chan queued, maxQueued),
		bufs:   sync.Pool{New: func() any { b := make([]byte, 65536); return &b }},
	}
}

func (p *pump) set(params Params) {
	p.mu.Lock()
	p.shaper.set(params)
	p.mu.Unlock()
}

func (p *pump) params() Params {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shaper.p
}

// run reads until the device is closed; deliver runs beside it.
func (p *pump) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.deliver(ctx)
	}()
	for {
		bp := p.bufs.Get().(*[]byte)
		n, err := p.dev.Read(*bp)
		if err != nil {
			p.bufs.Put(bp)
			if ctx.Err() != nil || isClosed(err) {
				break
			}
			p.counters.ReadErrors.Add(1)
			continue
		}
		p.mu.Lock()
		v := p.shaper.admit(time.Now(), n)
		p.mu.Unlock()
		switch {
		case v.drop:
			p.bufs.Put(bp)
			switch v.reason {
			case "burst":
				p.counters.LostBurst.Add(1)
			case "queue":
				p.counters.LostQueue.Add(1)
			default:
				p.counters.LostRandom.Add(1)
			}
		case v.reorder:
			p.counters.Reordered.Add(1)
			p.write(bp, n) // overtakes everything in the delay line
		default:
			select {
			case p.queue <- queued{buf: bp, n: n, deliver: v.deliver}:
			default:
				p.bufs.Put(bp)
				p.counters.OverflowDropped.Add(1)
			}
		}
	}
	close(p.queue)
	wg.Wait()
}

// deliver writes queued packets at their delivery times. The delay line is
// FIFO: the shaper hands out non-decreasing times (reordered packets bypass
// it).
func (p *pump) deliver(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for q := range p.queue {
		if d := time.Until(q.deliver); d > 20*time.Microsecond {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			p.bufs.Put(q.buf)
			continue
		}
		p.write(q.buf, q.n)
	}
}

func (p *pump) write(bp *[]byte, n int) {
	w, err := p.dev.Write((*bp)[:n])
	switch {
	case err != nil:
		p.counters.WriteErrors.Add(1)
	case w != n:
		p.counters.ShortWrite.Add(1)
	default:
		p.counters.Packets.Add(1)
		p.counters.Bytes.Add(int64(n))
	}
	p.bufs.Put(bp)
}
