package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

	store   *sessionStore // TLS session tickets, for 0-RTT
	saveErr sync.Once     // the session file's first write error is logged

	migrating sync.Mutex // one migration at a time

	mu       sync.Mutex
	conn     *quic.Conn  // current authenticated connection; nil if none
	early    *earlyState // non-nil while conn's 0-RTT is not yet confirmed
	state    State
	since    time.Time
	lastErr  error
	connects int64
	lastRTT  time.Duration
	// tr is the transport new connections are dialed on: the one conn
	// uses now. retired are the transports conn used before it migrated;
	// they stay open while conn lives (closing a transport closes every
	// connection registered with it) and are closed when it ends.
	tr         *quic.Transport
	retired    []*quic.Transport
	migrations int64
}

// attemptMode says how a connection attempt may save round trips.
type attemptMode struct {
	pipeline bool // send streams before the server's proof (CertVerified)
	early    bool // resume with 0-RTT if a ticket is stored
}

// session is a connection attempt that succeeded, or is under way.
type session struct {
	conn *quic.Conn
	// verified yields the outcome of the checks still pending: the
	// server's proof when pipelined, 0-RTT acceptance and the proof when
	// early. nil if everything was checked before the attempt returned.
	verified <-chan error
	early    *earlyState
	cache    *attemptCache
}

// errEarlyRejected: the server did not take our 0-RTT data (a restarted
// server no longer knows the ticket); the connection goes on in 1-RTT.
var errEarlyRejected = errors.New("0-RTT rejected by the server")

// NewQUICDialer checks cfg and returns a dialer; Run starts it.
func NewQUICDialer(cfg DialerConfig) (*QUICDialer, error) {
	cfg.TLS = withALPN(cfg.TLS, true)
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	qc := quicConfig(false)
	qc.MaxIdleTimeout, qc.KeepAlivePeriod = c.IdleTimeout, c.KeepAlive
	qc.CongestionControl = c.Congestion.quic()
	store, err := openSessionStore(c.SessionFile)
	if err != nil {
		c.Logger.Warn("session tickets not loaded; the first connection takes a full handshake", "err", err)
	}
	return &QUICDialer{cfg: c, qconf: qc, store: store, since: time.Now()}, nil
}

// Run implements Dialer.
func (d *QUICDialer) Run(ctx context.Context) error {
	tr, err := newClientTransport(d.cfg.Logger)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.tr = tr
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		tr := d.tr
		d.tr = nil
		d.mu.Unlock()
		closeTransport(tr)
		d.closeRetired()
		d.setState(StateStopped, nil, nil)
	}()
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watching sync.WaitGroup
	defer watching.Wait()
	defer stopWatch()
	if !d.cfg.NoNetworkWatch {
		watching.Go(func() { watchNetwork(watchCtx, d.cfg.Logger, func() { d.migrateAfterChange(watchCtx) }) })
	}
	d.setState(StateConnecting, nil, nil)
	failures := 0
	onFail := func(err error) {
		failures++
		d.noteFailure(err, failures)
	}
	// After a connection failed a check for a reason retrying cannot fix
	// (a wrong secret), the next attempts check everything before they
	// report a connection, so that the error surfaces as the configuration
	// error it is rather than as dropped connections; a connection that
	// passes every check restores the fast modes.
	fast := attemptMode{pipeline: d.cfg.CertVerified, early: true}
	mode := fast
	for ctx.Err() == nil {
		s, err := d.connect(ctx, d.transport(), mode, onFail)
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
		if s.verified == nil {
			mode = fast
		}
		conn := s.conn
		d.setConnected(conn, s.early)
		d.cfg.Logger.Info("connected to server", "server", d.cfg.Server, "transport", "quic", "0rtt", s.early != nil,
			"rtt", conn.ConnectionStats().SmoothedRTT.Round(time.Microsecond), "gso", conn.ConnectionState().GSO)
		verified := s.verified
		failed := func(err error) {
			_ = conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeProtocol), "")
			d.setState(StateConnecting, nil, nil)
			onFail(err)
			if IsConfigError(err) {
				mode = attemptMode{}
			}
		}
		for waiting := true; waiting; {
			select {
			case err := <-verified:
				verified = nil // a nil channel is never ready: wait on for the rest
				switch {
				case err == nil:
					d.confirm(s.early)
					mode = fast
					continue
				case errors.Is(err, errEarlyRejected):
					// Go on in 1-RTT on the same connection; the streams
					// sent early reopen on it (replayStream).
					d.cfg.Logger.Info("server refused 0-RTT; going on with a full handshake", "server", d.cfg.Server)
					s.early.resolve(false)
					if err := d.afterEarlyRejected(ctx, conn, s.cache); err != nil {
						failed(err)
						break
					}
					d.setConnected(conn, nil)
					continue
				default:
					failed(err)
				}
			case <-conn.Context().Done():
				if verified != nil {
					// Closed before the checks ended: the server may have
					// closed it over our proof. The check ends now that the
					// connection has, and says which.
					if err := <-verified; err != nil && !errors.Is(err, errEarlyRejected) {
						failed(err)
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
		s.early.resolve(false) // no-op if resolved; frees streams waiting on it
		d.closeRetired()
	}
	return nil
}

// newClientTransport opens a UDP socket on a fresh port and a transport on it.
func newClientTransport(log *slog.Logger) (*quic.Transport, error) {
	udp, err := listenUDP(":0", log)
	if err != nil {
		return nil, fmt.Errorf("open UDP socket: %w", err)
	}
	return &quic.Transport{Conn: udp}, nil
}

// closeTransport closes tr and the socket it was given.
func closeTransport(tr *quic.Transport) {
	if tr == nil {
		return
	}
	_ = tr.Close()
	_ = tr.Conn.Close()
}

func (d *QUICDialer) transport() *quic.Transport {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tr
}

// closeRetired closes the transports a connection that has ended used
// before it migrated.
func (d *QUICDialer) closeRetired() {
	d.mu.Lock()
	retired := d.retired
	d.retired = nil
	d.mu.Unlock()
	for _, tr := range retired {
		closeTransport(tr)
	}
}

// maxRetired bounds the sockets one connection keeps after migrating.
const maxRetired = 16

// ErrNoMigration: there is no connection to move, or it cannot move.
var ErrNoMigration = errors.New("cannot migrate")

// Migration is what a Migrate did.
type Migration struct {
	From, To net.Addr      // local addresses before and after
	Took     time.Duration // probing the new path and switching to it
}

// Migrate moves the current connection to a new UDP socket: a new local
// port, and the address the system routes from now, as after a network
// change. The new path is probed and validated before the connection
// switches to it, so no stream notices: nothing is lost or repeated, and
// the server follows the connection to its new address.
func (d *QUICDialer) Migrate(ctx context.Context) (Migration, error) {
	d.migrating.Lock()
	defer d.migrating.Unlock()
	d.mu.Lock()
	conn, old, nretired := d.conn, d.tr, len(d.retired)
	d.mu.Unlock()
	if conn == nil || old == nil {
		return Migration{}, fmt.Errorf("%w: not connected", ErrNoMigration)
	}
	select {
	case <-conn.HandshakeComplete():
	default:
		// RFC 9000 9.1: no migration before the handshake is confirmed.
		return Migration{}, fmt.Errorf("%w: the connection's handshake is not complete yet", ErrNoMigration)
	}
	if nretired >= maxRetired {
		return Migration{}, fmt.Errorf("%w: this connection has moved %d times already", ErrNoMigration, nretired)
	}
	start := time.Now()
	tr, err := newClientTransport(d.cfg.Logger)
	if err != nil {
		return Migration{}, err
	}
	path, err := conn.AddPath(tr)
	if err != nil {
		closeTransport(tr)
		return Migration{}, fmt.Errorf("%w: %v", ErrNoMigration, err)
	}
	// From AddPath on, the connection is registered with tr: closing tr
	// would close the connection. A path that fails is abandoned, and tr
	// is kept with the retired ones until the connection ends.
	abandon := func() {
		_ = path.Close()
		d.mu.Lock()
		if d.conn == conn {
			d.retired = append(d.retired, tr)
			tr = nil
		}
		d.mu.Unlock()
		closeTransport(tr) // the connection ended meanwhile: nothing to keep it for
	}
	pctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	if err := path.Probe(pctx); err != nil {
		abandon()
		return Migration{}, fmt.Errorf("probe the new path: %w", err)
	}
	if err := path.Switch(); err != nil {
		abandon()
		return Migration{}, fmt.Errorf("switch to the new path: %w", err)
	}
	m := Migration{From: old.Conn.LocalAddr(), To: tr.Conn.LocalAddr(), Took: time.Since(start)}
	d.mu.Lock()
	if d.conn == conn {
		d.tr = tr
		d.retired = append(d.retired, old)
		d.migrations++
		tr = nil
	}
	d.mu.Unlock()
	if tr != nil {
		// The connection ended meanwhile; Run dials anew on the old transport.
		closeTransport(tr)
		return Migration{}, fmt.Errorf("%w: the connection ended while moving", ErrNoMigration)
	}
	d.cfg.Logger.Info("connection moved to a new path", "from", m.From.String(), "to", m.To.String(), "took", m.Took.Round(time.Microsecond))
	d.changes.notify()
	return m, nil
}

// migrateAfterChange migrates when the network changed; with no
// connection there is nothing to move (the next attempt uses the new
// network anyway).
func (d *QUICDialer) migrateAfterChange(ctx context.Context) {
	if _, err := d.Migrate(ctx); err != nil && !errors.Is(err, ErrNoMigration) && ctx.Err() == nil {
		d.cfg.Logger.Warn("the network changed and the connection could not move; it reconnects if the old path is gone", "err", err)
	}
}

// connect establishes one authenticated connection. Attempts overlap: while
// one is still waiting for an answer, a fresh one starts every stagger
// interval. A fresh attempt sends its first packet at once, whereas a
// pending one retransmits at ever longer intervals, so a server that comes
// back is found within about a second; yet a slow handshake on a long, lossy
// link still gets the full HandshakeTimeout to finish. Every failed attempt
// is reported to onFail; connect gives up (for the caller's backoff) when no
// attempt is pending or the failure is one retrying cannot fix.
func (d *QUICDialer) connect(parent context.Context, tr *quic.Transport, mode attemptMode, onFail func(error)) (session, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	type result struct {
		s   session
		err error
	}
	results := make(chan result)
	pending := 0
	drain := func() {
		for ; pending > 0; pending-- {
			if r := <-results; r.s.conn != nil {
				_ = r.s.conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeNoError), "")
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
					s, err := d.attempt(ctx, tr, mode)
					results <- result{s, err}
				}()
			}
			next.Reset(stagger)
		case r := <-results:
			pending--
			if r.err == nil {
				cancel()
				drain()
				return r.s, nil
			}
			if parent.Err() == nil {
				onFail(r.err)
			}
			if pending == 0 || IsConfigError(r.err) {
				cancel()
				drain()
				return session{}, r.err
			}
		case <-parent.Done():
			cancel()
			drain()
			return session{}, parent.Err()
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
//
// With a stored ticket it resumes the session in 0-RTT and returns at once:
// the client's early proof and its first streams travel in the first
// flight. Otherwise, after the handshake, it sends its full proof and, when
// pipelined, returns right away too; else it returns once the server has
// proved the secret. Whatever is still to check comes later on
// session.verified.
func (d *QUICDialer) attempt(ctx context.Context, tr *quic.Transport, mode attemptMode) (session, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	addr, err := resolveUDP(ctx, d.cfg.Server)
	if err != nil {
		return session{}, err
	}
	cache := newAttemptCache(d.store, d.noteSessionError)
	tlsConf := d.cfg.TLS.Clone()
	tlsConf.ClientSessionCache = cache
	dial := tr.Dial
	if mode.early {
		dial = tr.DialEarly // returns before the handshake ends only if it can send 0-RTT
	}
	conn, err := dial(ctx, addr, tlsConf, d.qconf)
	if err != nil {
		return session{}, fmt.Errorf("QUIC handshake with %s: %w", d.cfg.Server, err)
	}
	s := session{conn: conn, cache: cache}
	if !conn.ConnectionState().TLS.HandshakeComplete {
		s.early = newEarlyState()
		s.verified, err = d.proveEarly(conn, cache)
	} else {
		s.verified, err = d.prove(ctx, conn, cache, mode.pipeline)
	}
	if err != nil {
		_ = conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeProtocol), "")
		return session{}, err
	}
	return s, nil
}

// prove runs the client's side of the full proof on conn, whose handshake
// is complete. Pipelined, it returns once the proof is sent, with a channel
// for the outcome of the server's proof; otherwise after that outcome.
func (d *QUICDialer) prove(ctx context.Context, conn *quic.Conn, cache *attemptCache, pipeline bool) (<-chan error, error) {
	ekm, err := auth.Exporter(conn.ConnectionState().TLS)
	if err != nil {
		return nil, err
	}
	// The control stream is the connection's first: the server reads the
	// proof from it before it accepts any other stream.
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open control stream: %w", err)
	}
	if err := auth.SendClientProofH3(ctrl, d.cfg.Secret, ekm); err != nil {
		return nil, d.authError(err)
	}
	check := func() error {
		// A server that shows a web site to a wrong proof never answers it:
		// a wrong secret shows as this wait running out.
		_ = ctrl.SetReadDeadline(time.Now().Add(d.cfg.HandshakeTimeout))
		if err := auth.CheckServerAnswer(ctrl, d.cfg.Secret, ekm); err != nil {
			return d.authError(err)
		}
		_ = ctrl.SetReadDeadline(time.Time{})
		cache.confirm()
		return nil
	}
	if !pipeline {
		return nil, check()
	}
	verified := make(chan error, 1)
	go func() { verified <- check() }() // ends with the answer, the deadline, or the connection
	return verified, nil
}

// proveEarly sends the client's 0-RTT proof on conn, whose handshake is
// still under way, and returns a channel for the outcome: the server took
// 0-RTT (else errEarlyRejected) and proved the secret. A server that asks
// for a full proof (AuthRetry) gets one once the handshake is complete.
func (d *QUICDialer) proveEarly(conn *quic.Conn, cache *attemptCache) (<-chan error, error) {
	ctrl, err := conn.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("open control stream: %w", err)
	}
	req, err := auth.NewEarlyRequest(d.cfg.Secret, time.Now())
	if err != nil {
		return nil, err
	}
	if _, err := ctrl.Write(proto.AppendH3Frame(nil, proto.AppendEarlyAuthRequest(nil, req))); err != nil {
		return nil, fmt.Errorf("send early proof: %w", err)
	}
	verified := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(d.cfg.HandshakeTimeout)
		ekm, err := handshakeExporter(conn, deadline)
		if err != nil {
			verified <- fmt.Errorf("QUIC handshake with %s: %w", d.cfg.Server, err)
			return
		}
		if !conn.ConnectionState().Used0RTT {
			verified <- errEarlyRejected
			return
		}
		_ = ctrl.SetReadDeadline(deadline)
		err = auth.CheckServerAnswer(ctrl, d.cfg.Secret, ekm)
		if errors.Is(err, auth.ErrRetry) {
			if err = auth.SendClientProof(ctrl, d.cfg.Secret, ekm); err == nil {
				err = auth.CheckServerAnswer(ctrl, d.cfg.Secret, ekm)
			}
		}
		if err != nil {
			verified <- d.authError(err)
			return
		}
		_ = ctrl.SetReadDeadline(time.Time{})
		cache.confirm()
		verified <- nil
	}()
	return verified, nil
}

// afterEarlyRejected makes conn usable after the server refused its 0-RTT
// data, and proves the secret on it the full way.
func (d *QUICDialer) afterEarlyRejected(ctx context.Context, conn *quic.Conn, cache *attemptCache) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	if _, err := conn.NextConnection(ctx); err != nil {
		return fmt.Errorf("QUIC handshake with %s: %w", d.cfg.Server, err)
	}
	_, err := d.prove(ctx, conn, cache, false)
	return err
}

func (d *QUICDialer) noteSessionError(err error) {
	d.saveErr.Do(func() {
		d.cfg.Logger.Warn("cannot save TLS session tickets; restarts will not use 0-RTT", "err", err)
	})
}

// authError names what went wrong in the proofs' exchange.
func (d *QUICDialer) authError(err error) error {
	var ae *quic.ApplicationError
	switch {
	case errors.As(err, &ae) && ae.Remote && uint64(ae.ErrorCode) == proto.CodeAuthFailed:
		return auth.ErrRejected
	case errors.Is(err, auth.ErrRejected), errors.Is(err, auth.ErrServerProof), errors.Is(err, auth.ErrNoVerdict):
		return err
	}
	return fmt.Errorf("authenticate with %s: %w", d.cfg.Server, err)
}

// Drop closes the current connection as if it were lost: its streams fail
// and Run connects again. A MultiDialer drops a server that stopped
// answering, rather than wait for QUIC's idle timeout.
func (d *QUICDialer) Drop(reason string) {
	d.mu.Lock()
	conn := d.conn
	d.mu.Unlock()
	if conn != nil {
		_ = conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeProtocol), reason)
	}
}

// Open implements Dialer.
func (d *QUICDialer) Open(ctx context.Context) (Stream, error) {
	return d.open(ctx, false)
}

// open returns a stream on the current connection. A stream opened while
// the connection's 0-RTT is unconfirmed is a replayStream; confirmedOnly
// waits for a connection past 0-RTT instead.
func (d *QUICDialer) open(ctx context.Context, confirmedOnly bool) (Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ConnectWait)
	defer cancel()
	for {
		changed := d.changes.wait()
		d.mu.Lock()
		conn, early, lastErr := d.conn, d.early, d.lastErr
		d.mu.Unlock()
		if conn != nil && !(confirmedOnly && early != nil) {
			s, err := conn.OpenStreamSync(ctx)
			if err == nil {
				if early != nil {
					return newReplayStream(d, s, early), nil
				}
				return quicStream{s}, nil
			}
			lastErr = err // the connection died under us, or left 0-RTT: wait for the next
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
	st := Status{State: d.state, Since: d.since, LastError: d.lastErr, Connects: d.connects, Migrations: d.migrations}
	if d.conn != nil {
		cs := d.conn.ConnectionStats()
		st.RTT, st.PacketsSent, st.PacketsLost, st.PacketsReceived = cs.SmoothedRTT, cs.PacketsSent, cs.PacketsLost, cs.PacketsReceived
	}
	return st
}

// Changed implements Dialer.
func (d *QUICDialer) Changed() <-chan struct{} { return d.changes.wait() }

// setConnected records conn as the connection to use; early is its
// unconfirmed 0-RTT state, or nil.
func (d *QUICDialer) setConnected(conn *quic.Conn, early *earlyState) {
	d.mu.Lock()
	d.early = early
	d.mu.Unlock()
	d.setState(StateConnected, conn, nil)
}

// confirm records that the current connection's checks all passed.
func (d *QUICDialer) confirm(early *earlyState) {
	early.resolve(true)
	d.mu.Lock()
	if d.early == early {
		d.early = nil
	}
	d.mu.Unlock()
	d.changes.notify()
}

func (d *QUICDialer) setState(s State, conn *quic.Conn, lastErr error) {
	d.mu.Lock()
	if conn == nil {
		d.early = nil
	}
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
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ips[0].Unmap(), uint16(p))), nil // #nosec G115 -- LookupPort returns 0 to 65535
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
