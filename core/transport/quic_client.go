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
	for ctx.Err() == nil {
		conn, err := d.connect(ctx, tr, onFail)
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
		select {
		case <-conn.Context().Done():
			cause := context.Cause(conn.Context())
			d.cfg.Logger.Warn("connection to server lost; reconnecting", "server", d.cfg.Server, "cause", describeQUICError(cause))
			d.setState(StateConnecting, nil, cause)
		case <-ctx.Done():
			_ = conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeClientShutdown), "client shutting down")
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
func (d *QUICDialer) connect(parent context.Context, tr *quic.Transport, onFail func(error)) (*quic.Conn, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	type result struct {
		conn *quic.Conn
		err  error
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
					c, err := d.attempt(ctx, tr)
					results <- result{c, err}
				}()
			}
			next.Reset(stagger)
		case r := <-results:
			pending--
			if r.err == nil {
				cancel()
				drain()
				return r.conn, nil
			}
			if parent.Err() == nil {
				onFail(r.err)
			}
			if pending == 0 || IsConfigError(r.err) {
				cancel()
				drain()
				return nil, r.err
			}
		case <-parent.Done():
			cancel()
			drain()
			return nil, parent.Err()
		}
	}
}

func (d *QUICDialer) staggerInterval() time.Duration {
	d.mu.Lock()
	rtt := d.lastRTT
	d.mu.Unlock()
	return max(time.Second, 3*rtt)
}

// attempt dials once and proves the secret.
func (d *QUICDialer) attempt(ctx context.Context, tr *quic.Transport) (*quic.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	addr, err := resolveUDP(ctx, d.cfg.Server)
	if err != nil {
		return nil, err
	}
	conn, err := tr.Dial(ctx, addr, d.cfg.TLS, d.qconf)
	if err != nil {
		return nil, fmt.Errorf("QUIC handshake with %s: %w", d.cfg.Server, err)
	}
	if err := clientAuth(ctx, conn, d); err != nil {
		_ = conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeProtocol), "")
		return nil, err
	}
	return conn, nil
}

func clientAuth(ctx context.Context, conn *quic.Conn, d *QUICDialer) error {
	ekm, err := auth.Exporter(conn.ConnectionState().TLS)
	if err != nil {
		return err
	}
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("open control stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ctrl.SetDeadline(dl)
	}
	err = auth.Client(ctrl, d.cfg.Secret, ekm)
	if err != nil {
		var ae *quic.ApplicationError
		if errors.As(err, &ae) && ae.Remote && uint64(ae.ErrorCode) == proto.CodeAuthFailed {
			return auth.ErrRejected
		}
		return fmt.Errorf("authenticate with %s: %w", d.cfg.Server, err)
	}
	// The control stream stays open for the connection's life, reserved for
	// control messages; nothing more is sent on it now.
	_ = ctrl.SetDeadline(time.Time{})
	return nil
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
