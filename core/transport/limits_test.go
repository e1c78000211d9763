package transport

import (
	"log/slog"
	"net"
	"testing"
	"time"
)

// fakeClock is a settable time for the limiter.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func udp(ip string) *net.UDPAddr             { return &net.UDPAddr{IP: net.ParseIP(ip), Port: 4433} }
func newTestLimiter(l SourceLimits) (*sourceLimiter, *fakeClock) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	lim := newSourceLimiter(l)
	lim.now = clock.now
	return lim, clock
}

func TestSourceLimiterRate(t *testing.T) {
	lim, clock := newTestLimiter(SourceLimits{HandshakesPerSecond: 10})
	a := udp("192.0.2.1")
	allowed := 0
	for range 100 {
		if lim.allow(a) {
			allowed++
		}
	}
	if allowed != 30 {
		t.Errorf("a burst from one source: %d allowed, want 30 (three seconds' worth)", allowed)
	}
	if !lim.allow(udp("192.0.2.2")) {
		t.Error("another source is refused: limits must be per source")
	}
	clock.advance(time.Second)
	allowed = 0
	for range 100 {
		if lim.allow(a) {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("one second later: %d allowed, want 10", allowed)
	}
	if rate, blocked := lim.refusals(); rate != 160 || blocked != 0 {
		t.Errorf("refusals %d rate, %d blocked; want 160, 0", rate, blocked)
	}
}

func TestSourceLimiterIPv6Prefix(t *testing.T) {
	lim, _ := newTestLimiter(SourceLimits{HandshakesPerSecond: 1})
	for i := range 3 {
		if !lim.allow(udp("2001:db8:1:2::" + string(rune('a'+i)))) {
			t.Fatalf("handshake %d refused within the burst", i)
		}
	}
	if lim.allow(udp("2001:db8:1:2::ffff")) {
		t.Error("a fourth address in the same /64 was allowed: a /64 is one source")
	}
	if !lim.allow(udp("2001:db8:1:3::1")) {
		t.Error("another /64 was refused")
	}
	if !lim.allow(udp("::ffff:192.0.2.9")) {
		t.Error("an IPv4-mapped address was refused")
	}
}

func TestSourceLimiterBackoff(t *testing.T) {
	lim, clock := newTestLimiter(SourceLimits{HandshakesPerSecond: 1000, FreeFailures: 3, BlockMin: time.Second, BlockMax: 4 * time.Second})
	a := udp("198.51.100.7")
	log := slog.New(slog.DiscardHandler)
	steps := []struct {
		fail      bool
		wantBlock time.Duration // how long a is refused after this step
	}{
		{true, 0}, {true, 0}, {true, 0}, // free
		{true, time.Second}, {true, 2 * time.Second}, {true, 4 * time.Second}, {true, 4 * time.Second}, // doubling, capped
	}
	for i, s := range steps {
		lim.failed(a, s.fail, log)
		if s.wantBlock == 0 {
			if !lim.allow(a) {
				t.Fatalf("step %d: blocked after %d failures, want free", i, i+1)
			}
			continue
		}
		if lim.allow(a) {
			t.Fatalf("step %d: allowed right after failure %d, want blocked for %v", i, i+1, s.wantBlock)
		}
		clock.advance(s.wantBlock - time.Millisecond)
		if lim.allow(a) {
			t.Fatalf("step %d: allowed before %v passed", i, s.wantBlock)
		}
		clock.advance(2 * time.Millisecond)
		if !lim.allow(a) {
			t.Fatalf("step %d: still blocked after %v", i, s.wantBlock)
		}
	}
	// A timeout is no wrong secret; a right proof clears the count.
	lim.failed(a, false, log)
	if !lim.allow(a) {
		t.Fatal("a failure that was not a wrong secret blocked the source")
	}
	lim.succeeded(a)
	lim.failed(a, true, log)
	if !lim.allow(a) {
		t.Error("after a right proof, one wrong secret blocked the source")
	}
}

func TestSourceLimiterTrustsClients(t *testing.T) {
	lim, clock := newTestLimiter(SourceLimits{HandshakesPerSecond: 1, TrustFor: time.Minute})
	a := udp("203.0.113.5")
	lim.succeeded(a)
	for i := range 100 {
		if !lim.allow(a) {
			t.Fatalf("a source that proved the secret was refused at connection %d (TCP mode opens one per stream)", i)
		}
	}
	clock.advance(time.Minute + time.Second)
	n := 0
	for range 100 {
		if lim.allow(a) {
			n++
		}
	}
	if n != 3 {
		t.Errorf("after the trust ran out: %d allowed, want the burst of 3", n)
	}
}

func TestSourceLimiterBounded(t *testing.T) {
	lim, clock := newTestLimiter(SourceLimits{MaxSources: 100})
	log := slog.New(slog.DiscardHandler)
	for i := range 10000 {
		a := &net.UDPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: 1}
		lim.allow(a)
		lim.failed(a, true, log)
		clock.advance(time.Millisecond)
	}
	if n := len(lim.sources); n > 100 {
		t.Errorf("the table holds %d sources, over its bound of 100", n)
	}
}

func TestSourceLimiterNil(t *testing.T) {
	var lim *sourceLimiter
	if !lim.allow(udp("192.0.2.1")) {
		t.Error("a nil limiter refused")
	}
	lim.failed(udp("192.0.2.1"), true, slog.New(slog.DiscardHandler))
	lim.succeeded(udp("192.0.2.1"))
}
