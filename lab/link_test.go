package lab

import (
	"math"
	"testing"
	"time"
)

// binomialTol is 5 standard deviations of a fraction estimated from n draws.
func binomialTol(p float64, n int) float64 { return 5 * math.Sqrt(p*(1-p)/float64(n)) }

func TestShaperRandomLoss(t *testing.T) {
	for _, loss := range []float64{0, 0.001, 0.01, 0.03, 0.5} {
		s := newShaper(Params{Loss: loss}, 1)
		const n = 200000
		lost := 0
		now := time.Unix(0, 0)
		for range n {
			if v := s.admit(now, 1200); v.drop {
				lost++
			}
		}
		got := float64(lost) / n
		if math.Abs(got-loss) > binomialTol(loss, n)+1e-9 {
			t.Errorf("loss %.3f: measured %.4f", loss, got)
		}
	}
}

func TestShaperGilbertElliott(t *testing.T) {
	ge := &GilbertElliott{P: 0.01, R: 0.25, LossBad: 1}
	s := newShaper(Params{Burst: ge}, 2)
	const n = 400000
	lost, bursts, run := 0, 0, 0
	now := time.Unix(0, 0)
	for range n {
		if s.admit(now, 1200).drop {
			lost++
			run++
		} else if run > 0 {
			bursts++
			run = 0
		}
	}
	// Stationary share of the Bad state is P/(P+R); bursts last 1/R.
	wantLoss := ge.P / (ge.P + ge.R)
	if got := float64(lost) / n; math.Abs(got-wantLoss) > 0.005 {
		t.Errorf("loss %.4f, want %.4f", got, wantLoss)
	}
	if mean := float64(lost) / float64(bursts); math.Abs(mean-1/ge.R) > 0.3 {
		t.Errorf("mean burst %.2f packets, want %.2f", mean, 1/ge.R)
	}
}

func TestShaperRateAndQueue(t *testing.T) {
	p := Params{RateBitsPerSec: 8e6, QueueBytes: 10000} // 1 MB/s
	s := newShaper(p, 3)
	start := time.Unix(0, 0)
	// 20 packets of 1000 bytes at once: 10 fit the queue (beyond the one
	// being sent), the rest are dropped at the tail.
	var delivered []time.Time
	drops := 0
	for range 20 {
		v := s.admit(start, 1000)
		if v.drop {
			if v.reason != "queue" {
				t.Fatalf("drop reason %q, want queue", v.reason)
			}
			drops++
			continue
		}
		delivered = append(delivered, v.deliver)
	}
	if drops == 0 || len(delivered) < 10 {
		t.Fatalf("%d delivered, %d dropped; want a full queue and tail drops", len(delivered), drops)
	}
	for i, d := range delivered {
		want := start.Add(time.Duration(i+1) * time.Millisecond) // 1000 B at 1 MB/s = 1 ms each
		if d.Sub(want).Abs() > time.Microsecond {
			t.Fatalf("packet %d delivered at +%v, want +%v", i, d.Sub(start), want.Sub(start))
		}
	}
	// Once the queue drains, packets pass again.
	if v := s.admit(start.Add(time.Second), 1000); v.drop {
		t.Fatal("dropped after the queue drained")
	}
}

func TestShaperDelayJitterKeepsOrder(t *testing.T) {
	p := Params{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond}
	s := newShaper(p, 4)
	now := time.Unix(0, 0)
	var last time.Time
	lo, hi := time.Hour, time.Duration(0)
	for i := range 10000 {
		now = now.Add(time.Millisecond)
		v := s.admit(now, 100)
		if v.deliver.Before(last) {
			t.Fatalf("packet %d delivered before the one ahead of it", i)
		}
		last = v.deliver
		d := v.deliver.Sub(now)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 40*time.Millisecond || hi > 61*time.Millisecond || hi-lo < 15*time.Millisecond {
		t.Errorf("delays within [%v, %v], want spread over 40..60 ms", lo, hi)
	}
}

func TestShaperReorder(t *testing.T) {
	s := newShaper(Params{Delay: 10 * time.Millisecond, Reorder: 0.1}, 5)
	const n = 50000
	re := 0
	for range n {
		if s.admit(time.Unix(0, 0), 100).reorder {
			re++
		}
	}
	if got := float64(re) / n; math.Abs(got-0.1) > binomialTol(0.1, n) {
		t.Errorf("reordered %.4f, want 0.1", got)
	}
}

func TestProfilesStated(t *testing.T) {
	want := map[string]struct {
		rtt  time.Duration
		loss float64
	}{
		"lan": {time.Millisecond, 0}, "wan": {50 * time.Millisecond, 0.001}, "mobile": {100 * time.Millisecond, 0.01},
		"lossy": {200 * time.Millisecond, 0.03}, "cross-border": {250 * time.Millisecond, 0.005},
	}
	for name, w := range want {
		p, ok := Profiles[name]
		if !ok || p.RTT != w.rtt || p.Loss != w.loss || p.RateBitsPerSec <= 0 {
			t.Errorf("profile %s = %+v", name, p)
		}
	}
	if Profiles["mobile"].Jitter != 10*time.Millisecond || Profiles["cross-border"].RateBitsPerSec != 20e6 {
		t.Error("mobile jitter or cross-border rate differ from the design document")
	}
}
