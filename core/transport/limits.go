package transport

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// SourceLimits bound what one source may do: an IPv4 address, or an IPv6
// /64 (what one host or customer usually holds). Zero values mean the
// defaults documented on each field.
type SourceLimits struct {
	// HandshakesPerSecond is how many new connections a source may open
	// per second on average; bursts of three times as many pass. Default
	// 20. A source that proved the secret in the last TrustFor is not held
	// to it: in TCP mode a client opens a connection per stream.
	HandshakesPerSecond float64
	// TrustFor is how long a source that proved the secret may open
	// connections at any rate. Default 10 min.
	TrustFor time.Duration
	// FreeFailures is how many wrong proofs of the secret a source may
	// make before it is blocked. Default 5.
	FreeFailures int
	// BlockMin is how long a source is blocked after its first failure
	// past FreeFailures; it doubles with each further one, up to BlockMax.
	// Defaults 1 s and 5 min. A right proof clears the count.
	BlockMin, BlockMax time.Duration
	// MaxSources bounds the sources remembered; past it, the one idle the
	// longest is forgotten. Default 65536 (a few MiB).
	MaxSources int
}

func (l SourceLimits) withDefaults() SourceLimits {
	if l.HandshakesPerSecond <= 0 {
		l.HandshakesPerSecond = 20
	}
	if l.TrustFor <= 0 {
		l.TrustFor = 10 * time.Minute
	}
	if l.FreeFailures <= 0 {
		l.FreeFailures = 5
	}
	if l.BlockMin <= 0 {
		l.BlockMin = time.Second
	}
	if l.BlockMax <= 0 {
		l.BlockMax = 5 * time.Minute
	}
	if l.BlockMax < l.BlockMin {
		l.BlockMax = l.BlockMin
	}
	if l.MaxSources <= 0 {
		l.MaxSources = 65536
	}
	return l
}

// sourceLimiter applies SourceLimits. Its table is bounded, and each
// check is a map lookup under one mutex: refusing a flooding source costs
// far less than the handshake it would have started.
type sourceLimiter struct {
	lim     SourceLimits
	now     func() time.Time
	mu      sync.Mutex
	sources map[netip.Prefix]*sourceState
	// lastSweep is when evict last scanned the whole table.
	lastSweep time.Time
	// Counts of refusals, for the server's statistics.
	refusedRate, refusedBlocked int64
}

type sourceState struct {
	tokens       float64
	last         time.Time // of the last token update or failure
	failures     int
	blockedUntil time.Time
	trustedUntil time.Time // it proved the secret lately
}

func newSourceLimiter(l SourceLimits) *sourceLimiter {
	return &sourceLimiter{lim: l.withDefaults(), now: time.Now, sources: make(map[netip.Prefix]*sourceState)}
}

// sourceOf maps an address to the prefix limits apply to; ok is false for
// an address that is not IP (nothing to limit by).
func sourceOf(a net.Addr) (netip.Prefix, bool) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		return netip.Prefix{}, false
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

// allow reports whether a new connection from a may start its handshake,
// and takes a token if so.
func (l *sourceLimiter) allow(a net.Addr) bool {
	if l == nil {
		return true
	}
	src, ok := sourceOf(a)
	if !ok {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.get(src, now)
	if now.Before(st.blockedUntil) {
		l.refusedBlocked++
		return false
	}
	if now.Before(st.trustedUntil) {
		return true
	}
	burst := l.burst()
	st.tokens = min(burst, st.tokens+now.Sub(st.last).Seconds()*l.lim.HandshakesPerSecond)
	st.last = now
	if st.tokens < 1 {
		l.refusedRate++
		return false
	}
	st.tokens--
	return true
}

// failed records a failed handshake from a; wrongSecret says it proved a
// wrong secret (other failures, such as a timeout, are not counted). It
// logs each wrong secret of a source up to FreeFailures, then each time
// it blocks the source: a flood cannot flood the log.
func (l *sourceLimiter) failed(a net.Addr, wrongSecret bool, log *slog.Logger) {
	if !wrongSecret {
		return
	}
	const msg = "authentication failed: wrong secret, or a proof relayed from another session"
	if l == nil {
		log.Info(msg)
		return
	}
	src, ok := sourceOf(a)
	if !ok {
		return
	}
	now := l.now()
	l.mu.Lock()
	st := l.get(src, now)
	st.failures++
	over := st.failures - l.lim.FreeFailures
	var block time.Duration
	if over > 0 {
		block = l.lim.BlockMin
		for i := 1; i < over && block < l.lim.BlockMax; i++ {
			block *= 2
		}
		block = min(block, l.lim.BlockMax)
		st.blockedUntil = now.Add(block)
	}
	n := st.failures
	l.mu.Unlock()
	if block == 0 {
		log.Info(msg)
	} else {
		log.Warn("wrong secrets from this source; blocking it", "source", src.String(), "failures", n, "for", block)
	}
}

// succeeded clears a's failures: a client that fixed its secret is not
// held to its earlier mistakes.
func (l *sourceLimiter) succeeded(a net.Addr) {
	if l == nil {
		return
	}
	src, ok := sourceOf(a)
	if !ok {
		return
	}
	l.mu.Lock()
	st := l.get(src, l.now())
	st.failures = 0
	st.blockedUntil = time.Time{}
	st.trustedUntil = l.now().Add(l.lim.TrustFor)
	l.mu.Unlock()
}

// refusals returns how many connections were refused for their rate and
// while their source was blocked.
func (l *sourceLimiter) refusals() (rate, blocked int64) {
	if l == nil {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refusedRate, l.refusedBlocked
}

func (l *sourceLimiter) burst() float64 { return 3 * l.lim.HandshakesPerSecond }

// get returns src's state, making room for it if it is new. l.mu is held.
func (l *sourceLimiter) get(src netip.Prefix, now time.Time) *sourceState {
	if st := l.sources[src]; st != nil {
		return st
	}
	if len(l.sources) >= l.lim.MaxSources {
		l.evict(now)
	}
	st := &sourceState{tokens: l.burst(), last: now}
	l.sources[src] = st
	return st
}

// evict forgets sources that no longer matter (bucket full again, not
// blocked), or, if none, the one idle the longest among a sample: a flood
// from many addresses cannot grow the table past MaxSources.
func (l *sourceLimiter) evict(now time.Time) {
	// A full sweep at most once a second: its cost is bounded whatever the
	// rate of new sources.
	if now.Sub(l.lastSweep) > time.Second {
		l.lastSweep = now
		const refill = 3 * time.Second // a bucket refills in 3 s at any rate
		for src, st := range l.sources {
			if now.Sub(st.last) > refill && !now.Before(st.blockedUntil) && !now.Before(st.trustedUntil) && st.failures <= l.lim.FreeFailures {
				delete(l.sources, src)
			}
		}
		if len(l.sources) < l.lim.MaxSources {
			return
		}
	}
	var oldest netip.Prefix
	var oldestAt time.Time
	n := 0
	for src, st := range l.sources { // map order is random: a fair sample
		if n == 0 || st.last.Before(oldestAt) {
			oldest, oldestAt = src, st.last
		}
		if n++; n == 64 {
			break
		}
	}
	delete(l.sources, oldest)
}
