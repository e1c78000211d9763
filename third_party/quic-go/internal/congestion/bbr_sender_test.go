package congestion

// QTunnel fork: tests of the BBR-style sender against a simulated path.

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/monotime"
	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/utils"
)

type simClock struct{ now monotime.Time }

func (c *simClock) Now() monotime.Time { return c.now }

type simPath struct {
	rate     float64       // bottleneck, bytes per second
	delay    time.Duration // one way
	loss     float64       // random loss of data packets
	queueCap time.Duration // bottleneck queue, in time at the rate
}

type simPacket struct {
	pn      protocol.PacketNumber
	size    protocol.ByteCount
	sent    monotime.Time
	arrival monotime.Time // at the sender, as an ack
	lost    bool
}

// simulate runs the sender over path for d with an always-backlogged
// application and returns the goodput in bytes per second measured over the
// second half (after start-up).
func simulate(t *testing.T, path simPath, d time.Duration, seed uint64) float64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	clock := &simClock{now: monotime.Now()}
	start := clock.now
	rtt := utils.NewRTTStats()
	var stats utils.ConnectionStats
	const size = protocol.ByteCount(1400)
	b := NewBBRSender(clock, rtt, &stats, size, nil)
	var (
		inflight     protocol.ByteCount
		pn           protocol.PacketNumber
		queue        []*simPacket // in flight, by send order
		linkFree     = clock.now
		deliveredAt2 protocol.ByteCount
		delivered    protocol.ByteCount
	)
	step := 100 * time.Microsecond
	for clock.now.Sub(start) < d {
		now := clock.now
		// deliver acks (and loss reports, one RTT after sending) that are due
		for len(queue) > 0 && !queue[0].arrival.After(now) {
			p := queue[0]
			queue = queue[1:]
			prior := inflight
			inflight -= p.size
			if p.lost {
				b.OnCongestionEvent(p.pn, p.size, prior)
				continue
			}
			rtt.UpdateRTT(now.Sub(p.sent), 0)
			b.OnPacketAcked(p.pn, p.size, prior, now)
			delivered += p.size
		}
		if deliveredAt2 == 0 && now.Sub(start) >= d/2 {
			deliveredAt2 = delivered
		}
		// send what the controller and the pacer allow
		for b.CanSend(inflight) && b.HasPacingBudget(now) {
			inflight += size
			b.OnPacketSent(now, inflight, pn, size, true)
			p := &simPacket{pn: pn, size: size, sent: now}
			pn++
			// the bottleneck: serialize, or drop at the tail of its queue
			begin := max(linkFree, now)
			if begin.Sub(now) > path.queueCap {
				p.lost = true
				p.arrival = now.Add(2*path.delay + 10*time.Millisecond)
			} else {
				linkFree = begin.Add(time.Duration(float64(size) / path.rate * 1e9))
				p.lost = rng.Float64() < path.loss
				p.arrival = linkFree.Add(2 * path.delay)
				if p.lost {
					p.arrival = p.arrival.Add(10 * time.Millisecond) // found lost a little after
				}
			}
			queue = insertByArrival(queue, p)
		}
		clock.now = now.Add(step)
	}
	return float64(delivered-deliveredAt2) / (d / 2).Seconds()
}

func insertByArrival(q []*simPacket, p *simPacket) []*simPacket {
	i := len(q)
	for i > 0 && q[i-1].arrival.After(p.arrival) {
		i--
	}
	q = append(q, nil)
	copy(q[i+1:], q[i:])
	q[i] = p
	return q
}

func TestBBRFillsPathDespiteRandomLoss(t *testing.T) {
	tests := []struct {
		name     string
		path     simPath
		minShare float64 // of the bottleneck rate
	}{
		{"wan 100 Mbit/s 50 ms 0.1%", simPath{rate: 12.5e6, delay: 25 * time.Millisecond, loss: 0.001, queueCap: 100 * time.Millisecond}, 0.85},
		{"lossy 20 Mbit/s 200 ms 3%", simPath{rate: 2.5e6, delay: 100 * time.Millisecond, loss: 0.03, queueCap: 100 * time.Millisecond}, 0.8},
		{"shallow queue 50 Mbit/s 20 ms", simPath{rate: 6.25e6, delay: 10 * time.Millisecond, queueCap: 5 * time.Millisecond}, 0.8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := simulate(t, tt.path, 30*time.Second, 7)
			if share := got / tt.path.rate; share < tt.minShare || share > 1.01 {
				t.Errorf("goodput %.2f of the bottleneck, want at least %.2f", share, tt.minShare)
			}
		})
	}
}

// A sender with little to send (the receiving end of a transfer, sending
// window updates and ACKs) must still be allowed to send them promptly.
func TestBBRPacingFloorWhenAppLimited(t *testing.T) {
	clock := &simClock{now: monotime.Now()}
	rtt := utils.NewRTTStats()
	rtt.UpdateRTT(50*time.Millisecond, 0)
	var stats utils.ConnectionStats
	b := NewBBRSender(clock, rtt, &stats, 1400, nil)
	// a trickle: one small packet every 50 ms, acked one RTT later
	for i := range 200 {
		now := clock.now
		b.OnPacketSent(now, 40, protocol.PacketNumber(i), 40, true)
		clock.now = now.Add(50 * time.Millisecond)
		b.OnPacketAcked(protocol.PacketNumber(i), 40, 40, clock.now)
	}
	// the initial window per RTT: 32 x 1400 B / 50 ms
	if floor := BandwidthFromDelta(32*1400, 50*time.Millisecond); b.pacingRate() < floor {
		t.Fatalf("pacing rate %d bit/s after app-limited trickle, want at least %d", b.pacingRate(), floor)
	}
	if !b.CanSend(0) || !b.HasPacingBudget(clock.now) {
		t.Fatal("an idle, app-limited sender may not send")
	}
}

func TestBBRSentRing(t *testing.T) {
	var r bbrSentRing
	t0 := monotime.Now()
	for pn := range protocol.PacketNumber(200) {
		if pn == 50 {
			continue // a skipped packet number
		}
		r.push(pn, bbrSent{sentTime: t0.Add(time.Duration(pn) * time.Millisecond), delivered: protocol.ByteCount(pn)})
	}
	r.push(3, bbrSent{}) // not above the last: another number space, ignored
	if r.n != 199 {
		t.Fatalf("ring holds %d entries, want 199", r.n)
	}
	if s, ok := r.take(120); !ok || s.delivered != 120 {
		t.Fatalf("take(120) = %v, %v", s, ok)
	}
	if _, ok := r.take(120); ok {
		t.Fatal("an entry was taken twice")
	}
	if _, ok := r.take(50); ok {
		t.Fatal("a skipped packet number was found")
	}
	for pn := range protocol.PacketNumber(10) {
		r.take(pn)
	}
	r.trim(t0) // nothing is stale yet
	if r.n != 189 || r.at(0).pn != 10 {
		t.Fatalf("after trim: %d entries from pn %d, want 189 from 10", r.n, r.at(0).pn)
	}
	// Entries never reported (a lost MTU probe) leave once stale.
	r.trim(t0.Add(30 * time.Millisecond))
	if r.at(0).pn != 30 {
		t.Fatalf("head pn %d after a stale trim, want 30", r.at(0).pn)
	}
}
