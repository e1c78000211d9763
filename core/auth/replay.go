package auth

import (
	"errors"
	"sync"
	"time"

	"github.com/qtunnel/qtunnel/core/proto"
)

// Why a ReplayGuard did not take an early proof. Each means "ask for a
// full proof", never "refuse the client": an honest client with a slow
// clock must still get in.
var (
	ErrStale     = errors.New("early proof outside the accepted time window")
	ErrReplayed  = errors.New("early proof seen before")
	ErrGuardFull = errors.New("too many recent early proofs to remember")
)

// ReplayGuard accepts each 0-RTT proof once. Data in 0-RTT can be replayed
// by anyone who recorded it, and the server acts on it before the
// handshake ends; the guard makes a replay fail. It remembers every nonce
// it took for as long as that nonce's time is inside the window, so memory
// is bounded by Max; the caller checks the proof itself first, so only
// holders of the secret can fill it.
//
// One guard protects one server process, which is also the only one that
// can decrypt the session tickets it issued (Go's TLS ticket keys are made
// per process), so a replay to another server fails there anyway.
type ReplayGuard struct {
	// Window is how far a proof's time may be from the server's clock,
	// either way. Default 1 min.
	Window time.Duration
	// Max bounds the nonces remembered. Default 16384.
	Max int

	mu   sync.Mutex
	seen map[[proto.NonceSize]byte]time.Time // nonce -> when it may be forgotten
}

// Check takes the proof's time and nonce at now, or says why not. It does
// not check the proof itself (VerifyEarly does).
func (g *ReplayGuard) Check(req proto.EarlyAuthRequest, now time.Time) error {
	window := g.Window
	if window <= 0 {
		window = time.Minute
	}
	limit := g.Max
	if limit <= 0 {
		limit = 16384
	}
	claimed := time.UnixMilli(int64(min(req.UnixMilli, uint64(1)<<62)))
	if d := now.Sub(claimed); d > window || d < -window {
		return ErrStale
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = make(map[[proto.NonceSize]byte]time.Time)
	}
	if _, ok := g.seen[req.Nonce]; ok {
		return ErrReplayed
	}
	if len(g.seen) >= limit {
		for n, forget := range g.seen {
			if now.After(forget) {
				delete(g.seen, n)
			}
		}
		if len(g.seen) >= limit {
			return ErrGuardFull
		}
	}
	// After claimed+window the time check refuses the nonce by itself.
	g.seen[req.Nonce] = claimed.Add(window)
	return nil
}
