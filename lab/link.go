package lab

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Params describe one direction of an emulated link. The zero value is a
// perfect link: no delay, no loss, no rate limit.
type Params struct {
	// Delay is the one-way propagation delay.
	Delay time.Duration
	// Jitter adds a uniform random delay in [-Jitter, +Jitter] to each
	// packet. Packets keep their order (as on most real links, and unlike
	// netem's default); reordering is asked for with Reorder.
	Jitter time.Duration
	// Loss is the probability that a packet is dropped at random.
	Loss float64
	// Burst, if set, adds bursty loss by the Gilbert-Elliott model.
	Burst *GilbertElliott
	// RateBitsPerSec limits the link's rate; zero means unlimited.
	RateBitsPerSec int64
	// QueueBytes bounds the bytes waiting for the rate limit (drop-tail).
	// Zero means 100 ms worth at the rate, at least 64 KiB.
	QueueBytes int
	// Reorder is the probability that a packet skips the delay line and
	// overtakes the packets before it.
	Reorder float64
}

// GilbertElliott is a two-state loss model: in the Good state packets are
// lost with probability LossGood, in the Bad state with LossBad; after each
// packet the state flips Good->Bad with probability P and Bad->Good with R.
// The mean burst (stay in Bad) lasts 1/R packets.
type GilbertElliott struct {
	P, R              float64
	LossGood, LossBad float64
}

// String describes p in netem's words, for logs and result files.
func (p Params) String() string {
	s := fmt.Sprintf("delay %v", p.Delay)
	if p.Jitter > 0 {
		s += fmt.Sprintf(" jitter %v", p.Jitter)
	}
	if p.Loss > 0 {
		s += fmt.Sprintf(" loss %.2f%%", 100*p.Loss)
	}
	if p.Burst != nil {
		s += fmt.Sprintf(" gemodel p %.3f r %.3f", p.Burst.P, p.Burst.R)
	}
	if p.RateBitsPerSec > 0 {
		s += fmt.Sprintf(" rate %.1fMbit", float64(p.RateBitsPerSec)/1e6)
	}
	if p.Reorder > 0 {
		s += fmt.Sprintf(" reorder %.2f%%", 100*p.Reorder)
	}
	return s
}

func (p Params) queueLimit() int {
	if p.QueueBytes > 0 {
		return p.QueueBytes
	}
	return max(64<<10, int(p.RateBitsPerSec/8/10))
}

// shaper decides the fate of each packet of one direction: dropped, or
// delivered at a given time. It is pure logic (time and randomness are
// given to it), so its statistics are tested without a network.
type shaper struct {
	p        Params
	rng      *rand.Rand
	bad      bool      // Gilbert-Elliott state
	linkFree time.Time // when the rate-limited link finishes the last admitted packet
	lastOut  time.Time // latest delivery time handed out, to keep order
}

func newShaper(p Params, seed uint64) *shaper {
	return &shaper{p: p, rng: rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1))} // #nosec G404 -- seeded, reproducible loss emulation
}

// verdict is what happens to a packet.
type verdict struct {
	drop    bool
	reason  string // for drops: "loss", "burst", "queue"
	deliver time.Time
	reorder bool // delivered out of order, ahead of queued packets
}

// admit decides for a packet of size bytes arriving at now.
func (s *shaper) admit(now time.Time, size int) verdict {
	p := s.p
	if p.Burst != nil {
		ge := p.Burst
		lossP := ge.LossGood
		if s.bad {
			lossP = ge.LossBad
		}
		lost := s.rng.Float64() < lossP
		if s.bad {
			s.bad = s.rng.Float64() >= ge.R
		} else {
			s.bad = s.rng.Float64() < ge.P
		}
		if lost {
			return verdict{drop: true, reason: "burst"}
		}
	}
	if p.Loss > 0 && s.rng.Float64() < p.Loss {
		return verdict{drop: true, reason: "loss"}
	}
	t := now
	if p.RateBitsPerSec > 0 {
		start := now
		if s.linkFree.After(start) {
			backlog := int(s.linkFree.Sub(now).Seconds() * float64(p.RateBitsPerSec) / 8)
			if backlog+size > p.queueLimit() {
				return verdict{drop: true, reason: "queue"}
			}
			start = s.linkFree
		}
		s.linkFree = start.Add(time.Duration(float64(size*8) / float64(p.RateBitsPerSec) * float64(time.Second)))
		t = s.linkFree
	}
	if p.Reorder > 0 && s.rng.Float64() < p.Reorder {
		return verdict{deliver: t, reorder: true}
	}
	d := p.Delay
	if p.Jitter > 0 {
		d += time.Duration((s.rng.Float64()*2 - 1) * float64(p.Jitter))
	}
	t = t.Add(max(d, 0))
	if t.Before(s.lastOut) {
		t = s.lastOut // keep order despite jitter
	}
	s.lastOut = t
	return verdict{deliver: t}
}

// set changes the parameters, keeping the link's state (queue, burst state).
func (s *shaper) set(p Params) { s.p = p }
