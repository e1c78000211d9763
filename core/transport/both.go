package transport

import (
	"context"
	"errors"
	"net"
	"sync"
)

// bothServers serves one handler from two servers: a QUIC server and the
// TLS/TCP server on the same port number that clients fall back to when
// UDP does not get through.
type bothServers struct {
	primary, fallback Server
}

// Both returns a Server that runs primary and fallback side by side;
// Addr is primary's.
func Both(primary, fallback Server) Server { return &bothServers{primary, fallback} }

func (b *bothServers) Addr() net.Addr { return b.primary.Addr() }

func (b *bothServers) Serve(ctx context.Context, h Handler) error {
	var wg sync.WaitGroup
	var errFallback error
	// If one stops with an error, the other stops too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		errFallback = b.fallback.Serve(ctx, h)
		if errFallback != nil {
			cancel()
		}
	})
	err := b.primary.Serve(ctx, h)
	if err != nil {
		cancel()
	}
	wg.Wait()
	return errors.Join(err, errFallback)
}

func (b *bothServers) Drain(ctx context.Context) error {
	var wg sync.WaitGroup
	var errFallback error
	wg.Go(func() { errFallback = b.fallback.Drain(ctx) })
	err := b.primary.Drain(ctx)
	wg.Wait()
	return errors.Join(err, errFallback)
}

func (b *bothServers) Stats(maxConns int) ServerStats {
	p, f := b.primary.Stats(maxConns), b.fallback.Stats(maxConns)
	p.Handshakes += f.Handshakes
	p.AuthFailures += f.AuthFailures
	p.Active += f.Active
	p.WebVisitors += f.WebVisitors
	p.RefusedFull += f.RefusedFull
	// RefusedRate and RefusedBlocked come from the one limiter both share.
	p.FallbackActive = f.Active
	return p
}
