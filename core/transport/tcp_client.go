package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/qtunnel/qtunnel/core/auth"
)

// TCPDialer carries every stream over its own TLS 1.3 connection. It keeps
// PoolSize connections handshaken and authenticated in advance, so that a
// new stream starts without waiting for TCP, TLS and the proofs; a stream
// that finds the pool empty dials its own.
//
// Unlike QUIC, a TCP connection cannot move to a new network path: a
// network change breaks the streams on it, and only the pool is refilled.
type TCPDialer struct {
	cfg     DialerConfig
	refill  chan struct{}
	watches sync.WaitGroup
	ccNote  ccNote
	changes broadcast // state and last-error changes

	mu       sync.Mutex
	idle     []*pooledConn // oldest first
	running  bool
	state    State
	since    time.Time
	lastErr  error
	connects int64
}

// NewTCPDialer checks cfg and returns a dialer; Run starts its pool.
func NewTCPDialer(cfg DialerConfig) (*TCPDialer, error) {
	cfg.TLS = withALPN(cfg.TLS, false)
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &TCPDialer{cfg: c, refill: make(chan struct{}, 1), since: time.Now()}, nil
}

// pooledConn is an authenticated connection waiting for a stream. A watcher
// goroutine reads from it meanwhile, so that a server that closes it (a
// restart, its idle limit) is noticed at once rather than when a stream
// tries to use it.
type pooledConn struct {
	conn    *tls.Conn
	raw     net.Conn
	born    time.Time
	watched chan struct{} // closed when the watcher's read returns
	n       int
	err     error
}

func (pc *pooledConn) watch(onDead func(*pooledConn)) {
	var b [1]byte
	pc.n, pc.err = pc.conn.Read(b[:])
	close(pc.watched)
	if !isTimeout(pc.err) {
		onDead(pc)
	}
}

// claim stops the watcher and reports whether the connection is still good.
func (pc *pooledConn) claim() bool {
	_ = pc.raw.SetReadDeadline(time.Unix(1, 0))
	<-pc.watched
	_ = pc.raw.SetReadDeadline(time.Time{})
	// A timeout is the watcher being stopped; anything else (data the
	// server should not send, EOF, a reset) means the connection is unusable.
	return pc.n == 0 && isTimeout(pc.err)
}

// Run implements Dialer: it fills the pool until ctx is done.
func (d *TCPDialer) Run(ctx context.Context) error {
	d.mu.Lock()
	d.running = true
	d.mu.Unlock()
	d.setState(StateConnecting, nil)
	defer func() {
		d.mu.Lock()
		d.running = false
		idle := d.idle
		d.idle = nil
		d.mu.Unlock()
		for _, pc := range idle {
			_ = pc.raw.Close()
		}
		d.watches.Wait()
		d.setState(StateStopped, nil)
	}()
	failures := 0
	prune := time.NewTicker(d.cfg.PoolMaxAge / 2)
	defer prune.Stop()
	for ctx.Err() == nil {
		d.pruneOld()
		if d.idleCount() >= d.cfg.PoolSize {
			select {
			case <-d.refill:
			case <-prune.C:
			case <-ctx.Done():
			}
			continue
		}
		pc, err := d.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			d.noteFailure(err, failures)
			select {
			case <-time.After(d.cfg.Backoff.Delay(failures)):
			case <-ctx.Done():
			}
			continue
		}
		if failures > 0 || d.Status().State != StateConnected {
			d.cfg.Logger.Info("connected to server", "server", d.cfg.Server, "transport", "tcp")
		}
		failures = 0
		d.addIdle(pc)
		d.setState(StateConnected, nil)
	}
	return nil
}

func (d *TCPDialer) idleCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.idle)
}

func (d *TCPDialer) addIdle(pc *pooledConn) {
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		_ = pc.raw.Close()
		return
	}
	d.idle = append(d.idle, pc)
	d.watches.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.watches.Done()
		pc.watch(d.dropDead)
	}()
}

// dropDead removes a pooled connection the server closed, and refills.
func (d *TCPDialer) dropDead(pc *pooledConn) {
	d.mu.Lock()
	for i, p := range d.idle {
		if p == pc {
			d.idle = append(d.idle[:i], d.idle[i+1:]...)
			break
		}
	}
	d.mu.Unlock()
	_ = pc.raw.Close()
	d.kick()
}

// pruneOld retires pooled connections before the server's idle limit.
func (d *TCPDialer) pruneOld() {
	d.mu.Lock()
	var old []*pooledConn
	keep := d.idle[:0]
	for _, pc := range d.idle {
		if time.Since(pc.born) > d.cfg.PoolMaxAge {
			old = append(old, pc)
		} else {
			keep = append(keep, pc)
		}
	}
	d.idle = keep
	d.mu.Unlock()
	for _, pc := range old {
		_ = pc.conn.Close()
	}
}

func (d *TCPDialer) kick() {
	select {
	case d.refill <- struct{}{}:
	default:
	}
}

// take pops the oldest pooled connection that is still good.
func (d *TCPDialer) take() *pooledConn {
	for {
		d.mu.Lock()
		if len(d.idle) == 0 {
			d.mu.Unlock()
			return nil
		}
		pc := d.idle[0]
		d.idle = d.idle[1:]
		d.mu.Unlock()
		d.kick()
		if pc.claim() && time.Since(pc.born) < d.cfg.PoolMaxAge {
			return pc
		}
		_ = pc.raw.Close()
	}
}

// Drop closes the pooled connections, which Run then makes again (see
// QUICDialer.Drop); streams already handed out are their users' to end.
func (d *TCPDialer) Drop(string) {
	d.mu.Lock()
	idle := d.idle
	d.idle = nil
	d.mu.Unlock()
	for _, pc := range idle {
		_ = pc.raw.Close()
	}
	d.kick()
}

// Open implements Dialer.
func (d *TCPDialer) Open(ctx context.Context) (Stream, error) {
	if pc := d.take(); pc != nil {
		return tlsStream{Conn: pc.conn, raw: pc.raw}, nil
	}
	// The pool is empty: dial directly, retrying within ConnectWait while
	// the server is unreachable.
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ConnectWait)
	defer cancel()
	for attempt := 1; ; attempt++ {
		pc, err := d.dial(ctx)
		if err == nil {
			return tlsStream{Conn: pc.conn, raw: pc.raw}, nil
		}
		if IsConfigError(err) {
			return nil, err
		}
		select {
		case <-time.After(d.cfg.Backoff.Delay(attempt)):
		case <-ctx.Done():
			return nil, notConnected(d.cfg.ConnectWait, err)
		}
		if pc := d.take(); pc != nil {
			return tlsStream{Conn: pc.conn, raw: pc.raw}, nil
		}
	}
}

// dial makes one authenticated TLS connection.
func (d *TCPDialer) dial(ctx context.Context) (*pooledConn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	dialer := net.Dialer{KeepAlive: 15 * time.Second}
	if cc := d.cfg.Congestion.tcp(); cc != "" {
		dialer.Control = tcpCongestionControl(cc, d.ccNote.note(d.cfg.Logger, cc))
	}
	raw, err := dialer.DialContext(ctx, "tcp", d.cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", d.cfg.Server, err)
	}
	conn := tls.Client(raw, d.cfg.TLS)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", d.cfg.Server, err)
	}
	ekm, err := auth.Exporter(conn.ConnectionState())
	if err == nil {
		dl, _ := ctx.Deadline()
		_ = raw.SetDeadline(dl)
		err = auth.Client(conn, d.cfg.Secret, ekm)
		_ = raw.SetDeadline(time.Time{})
	}
	if err != nil {
		_ = raw.Close()
		if errors.Is(err, auth.ErrRejected) || errors.Is(err, auth.ErrServerProof) || errors.Is(err, auth.ErrNoVerdict) {
			return nil, err
		}
		return nil, fmt.Errorf("authenticate with %s: %w", d.cfg.Server, err)
	}
	d.mu.Lock()
	d.connects++
	d.mu.Unlock()
	return &pooledConn{conn: conn, raw: raw, born: time.Now(), watched: make(chan struct{})}, nil
}

// Status implements Dialer.
func (d *TCPDialer) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Status{State: d.state, Since: d.since, LastError: d.lastErr, Connects: d.connects}
}

func (d *TCPDialer) setState(s State, lastErr error) {
	d.mu.Lock()
	if s != d.state {
		d.since = time.Now()
	}
	d.state = s
	if lastErr != nil || s == StateConnected {
		d.lastErr = lastErr
	}
	d.mu.Unlock()
	d.changes.notify()
}

// Changed implements Dialer.
func (d *TCPDialer) Changed() <-chan struct{} { return d.changes.wait() }

func (d *TCPDialer) noteFailure(err error, failures int) {
	d.mu.Lock()
	prev := d.lastErr
	d.lastErr = err
	if len(d.idle) == 0 && d.state == StateConnected {
		d.state, d.since = StateConnecting, time.Now()
	}
	d.mu.Unlock()
	d.changes.notify()
	logFailure(d.cfg, err, prev, failures)
}
