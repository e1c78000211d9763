package transport

import (
	"context"
	"sync"
	"time"
)

// FallbackAfter is how long a QUIC client tries before it also carries
// streams over TLS/TCP to the same port number: UDP blocked by a firewall
// or a captive network shows as QUIC handshakes that time out.
const FallbackAfter = 3 * time.Second

// FallbackDialer is a QUIC dialer that falls back to TLS/TCP when QUIC
// cannot get through, and returns to QUIC when it can again. QUIC keeps
// trying in the background all along (its usual backoff, at most a second
// apart); new streams go over QUIC whenever it is connected. Streams
// already on TLS/TCP stay there until they end.
type FallbackDialer struct {
	quic *QUICDialer
	tcp  *TCPDialer
	log  func(msg string, args ...any)

	changes broadcast

	mu       sync.Mutex
	fallback bool // the TLS/TCP pool runs and takes streams while QUIC is down
	started  bool // the TLS/TCP dialer's Run has started
	tcpCtx   context.Context
}

// NewFallbackDialer makes both dialers from one configuration.
func NewFallbackDialer(cfg DialerConfig) (*FallbackDialer, error) {
	q, err := NewQUICDialer(cfg)
	if err != nil {
		return nil, err
	}
	t, err := NewTCPDialer(cfg)
	if err != nil {
		return nil, err
	}
	return &FallbackDialer{quic: q, tcp: t, log: q.cfg.Logger.Info}, nil
}

// Run implements Dialer.
func (f *FallbackDialer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.mu.Lock()
	f.tcpCtx = ctx
	f.mu.Unlock()
	var quicErr error
	wg.Go(func() { quicErr = f.quic.Run(ctx) })
	start := func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.started {
			f.started = true
			wg.Go(func() { _ = f.tcp.Run(f.tcpCtx) })
		}
	}
	downSince := time.Now()
	for ctx.Err() == nil {
		qc, tc := f.quic.Changed(), f.tcp.Changed()
		qs := f.quic.Status()
		f.mu.Lock()
		was := f.fallback
		switch {
		case qs.State == StateConnected:
			f.fallback = false
			downSince = time.Time{}
		case downSince.IsZero():
			downSince = time.Now()
		case !IsConfigError(qs.LastError) && time.Since(downSince) >= FallbackAfter:
			// A wrong secret or certificate is not a blocked network:
			// TLS/TCP would fail the same way.
			f.fallback = true
		}
		now := f.fallback
		f.mu.Unlock()
		if now && !was {
			start()
			f.log("QUIC does not get through (UDP blocked?); carrying new connections over TLS/TCP meanwhile", "server", f.quic.cfg.Server)
		}
		if was && !now {
			f.log("QUIC gets through again; new connections use it", "server", f.quic.cfg.Server)
		}
		if now != was {
			f.changes.notify()
		}
		var wake <-chan time.Time
		if !now && !downSince.IsZero() {
			wake = time.After(time.Until(downSince.Add(FallbackAfter)) + 10*time.Millisecond)
		}
		select {
		case <-ctx.Done():
		case <-qc:
			f.changes.notify()
		case <-tc:
			f.changes.notify()
		case <-wake:
		}
	}
	cancel()
	wg.Wait()
	return quicErr
}

// usingTCP says whether new streams go over TLS/TCP now.
func (f *FallbackDialer) usingTCP() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fallback
}

// Open implements Dialer: over QUIC when it is connected, else over
// TLS/TCP once the fallback is on; until one of them is ready it waits
// (at most ConnectWait), and a configuration error fails it at once.
func (f *FallbackDialer) Open(ctx context.Context) (Stream, error) {
	deadline := time.Now().Add(f.quic.cfg.ConnectWait)
	for {
		changed := f.changes.wait()
		if f.quic.Status().State == StateConnected {
			return f.quic.Open(ctx)
		}
		if f.usingTCP() {
			return f.tcp.Open(ctx)
		}
		st := f.quic.Status()
		if IsConfigError(st.LastError) {
			return f.quic.Open(ctx) // fails at once, saying why
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, notConnected(f.quic.cfg.ConnectWait, st.LastError)
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// Status implements Dialer: QUIC's, unless streams go over TLS/TCP.
func (f *FallbackDialer) Status() Status {
	qs := f.quic.Status()
	if qs.State == StateConnected || !f.usingTCP() {
		return qs
	}
	ts := f.tcp.Status()
	ts.Connects += qs.Connects
	ts.Migrations = qs.Migrations
	ts.OverTCP = true
	if ts.LastError == nil {
		ts.LastError = qs.LastError
	}
	return ts
}

// Changed implements Dialer.
func (f *FallbackDialer) Changed() <-chan struct{} { return f.changes.wait() }

// Migrate moves the QUIC connection (see QUICDialer.Migrate).
func (f *FallbackDialer) Migrate(ctx context.Context) (Migration, error) {
	return f.quic.Migrate(ctx)
}

// Drop closes the QUIC connection and the TLS/TCP pool (see
// QUICDialer.Drop).
func (f *FallbackDialer) Drop(reason string) {
	f.quic.Drop(reason)
	f.tcp.Drop(reason)
}
