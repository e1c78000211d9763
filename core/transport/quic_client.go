package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/proto"
)

// maxParallelAttempts bounds overlapping connection attempts (see connect).
const maxParallelAttempts = 4

// QUICDialer keeps one authenticated QUIC connection to the server and
// carries every stream on it. When the connection dies it reconnects with
// backoff; streams opened meanwhile wait up to ConnectWait.
type QUICDialer struct {
	cfg     DialerConfig
	qconf   *quic.Config
	changes broadcast

	mu       sync.Mutex
	conn     *quic.Conn // current authenticated connection; nil if none
	state    State
	since    time.Time
	lastErr  error
	connects int64
	lastRTT  time.Duration
}

// NewQUICDialer checks cfg and returns a dialer; Run starts it.
func NewQUICDialer(cfg DialerConfig) (*QUICDialer, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	qc := quicConfig(false)
	qc.MaxIdleTimeout, qc.KeepAlivePeriod = c.IdleTimeout, c.KeepAlive
	qc.CongestionControl = c.Congestion.quic()
	return &QUICDialer{cfg: c, qconf: qc, since: time.Now()}, nil
}

// Run implements Dialer.
func (d *QUICDialer) Run(ctx context.Context) error {
	udp, err := listenUDP(":0", d.cfg.Logger)
	if err != nil {
		return fmt.Errorf("open UDP socket: %w", err)
	}
	tr := &quic.Transport{Conn: udp}
	defer func() {
		_ = tr.Close()
		_ = udp.Close()
		d.setState(StateStopped, nil, nil)
	}()
	d.setState(StateConnecting, nil, nil)
	failures := 0
	onFail := func(err error) {
		failures++
		d.noteFailure(err, failures)
	}
	// After a pipelined connection failed the server's proof, the next
	// attempts wait for it, so that a wrong secret surfaces as the
	// configuration error it is rather than as dropped connections.
	pipeline := d.cfg.CertVerified
	for ctx.Err() == nil {
		conn, verified, err := d.connect(ctx, tr, pipeline, onFail)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			select {
			case <-time.After(d.cfg.Backoff.Delay(failures)):
			case <-ctx.Done():
			}
			continue
		}
		failures = 0
		d.setState(StateConnected, conn, nil)
		d.cfg.Logger.Info("connected to server", "server", d.cfg.Server, "transport", "quic",
			"rtt", conn.ConnectionStats().SmoothedRTT.Round(time.Microsecond), "gso", conn.ConnectionState().GSO)
		for waiting := true; waiting; {
			select {
			case err := <-verified:
				verified = nil // a nil channel is never ready: wait on for the rest
				if err == nil {
					continue
				}
				_ = conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeProtocol), "")
				d.setState(StateConnecting, nil, nil)
				onFail(err)
				pipeline = false
			case <-conn.Context().Done():
				if verified != nil {
					// Closed before the server's proof arrived: the server
					// may have closed it over our proof. The check ends now
					// that the connection has, and says which.
					if err := <-verified; err != nil {
						d.setState(StateConnecting, nil, nil)
						onFail(err)
						pipeline = false
						break
					}
				}
				cause := context.Cause(conn.Context())
				d.cfg.Logger.Warn("connection to server lost; reconnecting", "server", d.cfg.Server, "cause", describeQUICError(cause))
				d.setState(StateConnecting, nil, cause)
			case <-ctx.Done():
				_ = conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeClientShutdown), "client shutting down")
			}
			waiting = false
		}
	}
	return nil
}

// connect establishes one authenticated connection. Attempts overlap: while
// one is still waiting for an answer, a fresh one starts every stagger
// interval. A fresh attempt sends its first packet at once, whereas a
// pending one retransmits at ever longer intervals, so a server that comes
// back is found within about a second; yet a slow handshake on a long, lossy
// link still gets the full HandshakeTimeout to finish. Every failed attempt
// is reported to onFail; connect gives up (for the caller's backoff) when no
// attempt is pending or the failure is one retrying cannot fix.
func (d *QUICDialer) connect(parent context.Context, tr *quic.Transport, pipeline bool, onFail func(error)) (*quic.Conn, <-chan error, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	type result struct {
		conn     *quic.Conn
		verified <-chan error
		err      error
	}
	results := make(chan result)
	pending := 0
	drain := func() {
		for ; pending > 0; pending-- {
			if r := <-results; r.conn != nil {
				_ = r.conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeNoError), "")
			}
		}
	}
	stagger := d.staggerInterval()
	next := time.NewTimer(0)
	defer next.Stop()
	for {
		select {
		case <-next.C:
			if pending < maxParallelAttempts {
				pending++
				go func() {
					c, v, err := d.attempt(ctx, tr, pipeline)
					results <- result{c, v, err}
				}()
			}
			next.Reset(stagger)
		case r := <-results:
			pending--
			if r.err == nil {
				cancel()
				drain()
				return r.conn, r.verified, nil
			}
			if parent.Err() == nil {
				onFail(r.err)
			}
			if pending == 0 || IsConfigError(r.err) {
				cancel()
				drain()
				return nil, nil, r.err
			}
		case <-parent.Done():
			cancel()
			drain()
			return nil, nil, parent.Err()
		}
	}
}

func (d *QUICDialer) staggerInterval() time.Duration {
	d.mu.Lock()
	rtt := d.lastRTT
	d.mu.Unlock()
	return max(time.Second, 3*rtt)
}

// attempt dials once and proves the secret. Pipelined, it returns once
// the client's proof is sent, with a channel that later yields the outcome
// of checking the server's proof; otherwise it returns after that check and
// the channel is nil.
func (d *QUICDialer) attempt(ctx context.Context, tr *quic.Transport, pipeline bool) (*quic.Conn, <-chan error, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	addr, err := resolveUDP(ctx, d.cfg.Server)
	if err != nil {
		return nil, nil, err
	}
	conn, err := tr.Dial(ctx, addr, d.cfg.TLS, d.qconf)
	if err != nil {
		return nil, nil, fmt.Errorf("QUIC handshake with %s: %w", d.cfg.Server, err)
	}
	fail := func(err error) (*quic.Conn, <-chan error, error) {
		_ = conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeProtocol), "")
		return nil, nil, err
	}
	ekm, err := auth.Exporter(conn.ConnectionState().TLS)
	if err != nil {
		return fail(err)
	}
	// The control stream is the connection's first: the server reads the
	// proof from it before it accepts any other stream.
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fail(fmt.Errorf("open control stream: %w", err))
	}
	if err := auth.SendClientProof(ctrl, d.cfg.Secret, ekm); err != nil {
		return fail(d.authError(err))
	}
	deadline := time.Now().Add(d.cfg.HandshakeTimeout)
	if !pipeline {
		_ = ctrl.SetReadDeadline(deadline)
		if err := auth.CheckServerAnswer(ctrl, d.cfg.Secret, ekm); err != nil {
			return fail(d.authError(err))
		}
		_ = ctrl.SetReadDeadline(time.Time{})
		return conn, nil, nil
	}
	verified := make(chan error, 1)
	go func() {
		// Ends with the answer, the deadline, or the connection.
		_ = ctrl.SetReadDeadline(deadline)
		err := auth.CheckServerAnswer(ctrl, d.cfg.Secret, ekm)
		if err == nil {
			_ = ctrl.SetReadDeadline(time.Time{})
		} else {
			err = d.authError(err)
		}
		verified <- err
	}()
	return conn, verified, nil
}

// authError names what went wrong in the proofs' exchange.
func (d *QUICDialer) authError(err error) error {
	var ae *quic.ApplicationError
	switch {
	case errors.As(err, &ae) && ae.Remote && uint64(ae.ErrorCode) == proto.CodeAuthFailed:
		return auth.ErrRejected
	case errors.Is(err, auth.ErrRejected), errors.Is(err, auth.ErrServerProof):
		return err
	}
	return fmt.Errorf("authenticate with %s: %w", d.cfg.Server, err)
}

// Open implements Dialer.
func (d *QUICDialer) Open(ctx context.Context) (Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ConnectWait)
	defer cancel()
	for {
		changed := d.changes.wait()
		d.mu.Lock()
		conn, lastErr := d.conn, d.lastErr
		d.mu.Unlock()
		if conn != nil {
			s, err := conn.OpenStreamSync(ctx)
			if err == nil {
				return quicStream{s}, nil
			}
			lastErr = err // the connection died under us: wait for the next
		} else if IsConfigError(lastErr) {
			return nil, lastErr
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, notConnected(d.cfg.ConnectWait, lastErr)
		}
	}
}

func notConnected(wait time.Duration, lastErr error) error {
	if lastErr == nil {
		return fmt.Errorf("%w within %s", ErrNotConnected, wait)
	}
	return fmt.Errorf("%w within %s (last error: %v)", ErrNotConnected, wait, lastErr)
}

// Status implements Dialer.
func (d *QUICDialer) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Status{State: d.state, Since: d.since, LastError: d.lastErr, Connects: d.connects}
	if d.conn != nil {
		st.RTT = d.conn.ConnectionStats().SmoothedRTT
	}
	return st
}

func (d *QUICDialer) setState(s State, conn *quic.Conn, lastErr error) {
	d.mu.Lock()
	if d.conn != nil && conn == nil {
		d.lastRTT = d.conn.ConnectionStats().SmoothedRTT
	}
	if s == StateConnected {
		d.connects++
	}
	if s != d.state {
		d.since = time.Now()
	}
	d.state, d.conn = s, conn
	if lastErr != nil || s == StateConnected {
		d.lastErr = lastErr
	}
	d.mu.Unlock()
	d.changes.notify()
}

// noteFailure records a failed attempt and logs it (see logFailure).
func (d *QUICDialer) noteFailure(err error, failures int) {
	d.mu.Lock()
	prev := d.lastErr
	d.lastErr = err
	d.mu.Unlock()
	d.changes.notify()
	logFailure(d.cfg, err, prev, failures)
}

// resolveUDP resolves host:port to one UDP address, preferring the first
// address the resolver gives.
func resolveUDP(ctx context.Context, hostport string) (*net.UDPAddr, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("server address %q: %w", hostport, err)
	}
	p, err := net.DefaultResolver.LookupPort(ctx, "udp", port)
	if err != nil {
		return nil, fmt.Errorf("server address %q: port: %w", hostport, err)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ips[0].Unmap(), uint16(p))), nil
}

// describeQUICError turns a QUIC connection error into plain words.
func describeQUICError(err error) string {
	var (
		idle  *quic.IdleTimeoutError
		reset *quic.StatelessResetError
		app   *quic.ApplicationError
	)
	switch {
	case err == nil:
		return "closed"
	case errors.As(err, &idle):
		return "no answer from the server for the idle timeout"
	case errors.As(err, &reset):
		return "the server no longer knows this connection (restarted?)"
	case errors.As(err, &app) && app.Remote && uint64(app.ErrorCode) == proto.CodeServerShutdown:
		return "the server is shutting down"
	}
	return err.Error()
}
