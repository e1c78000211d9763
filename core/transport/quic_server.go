package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/proto"
)

// errTooManyPeers refuses a connection over ServerConfig.MaxPeers.
var errTooManyPeers = errors.New("too many connections")

// errSourceLimited refuses a connection over its source's limits.
var errSourceLimited = errors.New("source over its limits")

// webMaxHeaderBytes bounds a web visitor's request headers.
const webMaxHeaderBytes = 16 << 10

// errWebVisitor: the peer is not a client (or its proof is wrong) and was
// handed to the web site.
var errWebVisitor = errors.New("served as a web visitor")

// errNotFramed: a first stream that does not begin with a client's proof.
var errNotFramed = errors.New("the first stream does not carry a proof")

// webMaxLifetime closes a web visitor's connection, as web servers do, so
// that a visitor that keeps its connection alive with pings does not hold
// a connection slot for ever. (The HTTP/3 server's own idle timer cannot
// be used: it would close clients' connections too.)
const webMaxLifetime = 5 * time.Minute

// HTTP/3 error codes (RFC 9114 section 8.1) used when closing as a web
// server would.
const (
	h3ErrNoError  = 0x100
	h3ErrInternal = 0x102
)

// QUICServer accepts QUIC connections, authenticates each on its first
// stream, and only then accepts its other streams.
type QUICServer struct {
	cfg     ServerConfig
	udp     *net.UDPConn
	tr      *quic.Transport
	ln      *quic.EarlyListener
	guard   auth.ReplayGuard // each 0-RTT proof is taken once
	conns   group            // one goroutine per connection
	streams group            // one goroutine per stream handler
	peers   atomic.Int64     // connections admitted and not yet closed
	pending atomic.Int64     // of those, the ones not authenticated
	counts  peerCounters
	limits  *sourceLimiter
	h3      *http3.Server // the web site, if any

	mu     sync.Mutex
	live   map[*quic.Conn]struct{}
	authed map[*quic.Conn]time.Time // authenticated, with the time
}

// ListenQUIC binds the UDP socket and starts listening; Serve accepts.
func ListenQUIC(cfg ServerConfig) (*QUICServer, error) {
	c, err := cfg.withDefaults(1024)
	if err != nil {
		return nil, err
	}
	resetKey, tokenKey, err := statelessResetKey(c.Certificate)
	if err != nil {
		return nil, err
	}
	udp, err := listenUDP(c.Listen, c.Logger)
	if err != nil {
		return nil, fmt.Errorf("listen on UDP %s: %w", c.Listen, err)
	}
	s := &QUICServer{cfg: c, udp: udp, live: make(map[*quic.Conn]struct{}), authed: make(map[*quic.Conn]time.Time), limits: c.limiter}
	if c.Web != nil {
		s.h3 = &http3.Server{Handler: c.Web, MaxHeaderBytes: webMaxHeaderBytes}
	}
	s.tr = &quic.Transport{
		Conn:              udp,
		StatelessResetKey: resetKey,
		TokenGeneratorKey: tokenKey,
		ConnContext:       s.admit,
	}
	qc := quicConfig(true)
	qc.HandshakeIdleTimeout = c.AuthTimeout
	qc.CongestionControl = c.Congestion.quic()
	qc.MaxIncomingStreams = int64(c.MaxStreams)
	// 0-RTT: a client resuming a session may send its proof and first
	// streams at once; authenticate takes them only under the ReplayGuard.
	qc.Allow0RTT = true
	s.ln, err = s.tr.ListenEarly(ServerTLSConfig(c.Certificate, true), qc)
	if err != nil {
		_ = s.tr.Close()
		_ = udp.Close()
		return nil, fmt.Errorf("listen on UDP %s: %w", c.Listen, err)
	}
	return s, nil
}

// admit counts connections from their first packet and refuses those over
// a limit (the source's rate, a blocked source, the connection limits)
// before any handshake work is spent on them.
func (s *QUICServer) admit(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
	if !s.limits.allow(ci.RemoteAddr) {
		return nil, errSourceLimited
	}
	if s.peers.Add(1) > int64(s.cfg.MaxPeers) {
		s.peers.Add(-1)
		s.counts.refusedFull.Add(1)
		return nil, errTooManyPeers
	}
	if s.pending.Add(1) > int64(s.cfg.MaxPending) {
		s.pending.Add(-1)
		s.peers.Add(-1)
		s.counts.refusedFull.Add(1)
		return nil, errTooManyPeers
	}
	a := &admission{pending: &s.pending}
	context.AfterFunc(ctx, func() {
		s.peers.Add(-1)
		a.done()
	})
	return context.WithValue(ctx, admissionKey{}, a), nil
}

// admission is a connection's place among the pending ones, given up once
// (when it authenticates, or closes).
type admission struct {
	pending *atomic.Int64
	left    atomic.Bool
}

func (a *admission) done() {
	if a != nil && a.left.CompareAndSwap(false, true) {
		a.pending.Add(-1)
	}
}

type admissionKey struct{}

// Addr implements Server.
func (s *QUICServer) Addr() net.Addr { return s.udp.LocalAddr() }

// Serve implements Server.
func (s *QUICServer) Serve(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() { _ = s.ln.Close() })
	defer stop()
	for {
		conn, err := s.ln.Accept(context.Background())
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, quic.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("accept QUIC connection: %w", err)
		}
		s.mu.Lock()
		s.live[conn] = struct{}{}
		s.mu.Unlock()
		if !s.conns.start(func() { s.serveConn(conn, h) }) {
			s.forget(conn)
			_ = conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeServerShutdown), "shutting down")
		}
	}
}

func (s *QUICServer) forget(conn *quic.Conn) {
	s.mu.Lock()
	delete(s.live, conn)
	s.mu.Unlock()
}

// serveConn authenticates conn, then hands each of its streams to h. A
// connection that turns out not to be a client's is served the web site.
func (s *QUICServer) serveConn(conn *quic.Conn, h Handler) {
	defer s.forget(conn)
	log := s.cfg.Logger.With("peer", conn.RemoteAddr().String())
	var web *webConn
	if s.h3 != nil {
		// Like any HTTP/3 server, open the control stream at once.
		raw, err := s.h3.NewRawServerConn(conn)
		if err != nil {
			log.Debug("HTTP/3 setup failed", "err", err)
			_ = conn.CloseWithError(quic.ApplicationErrorCode(h3ErrInternal), "")
			return
		}
		web = &webConn{raw: raw}
		defer web.wg.Wait() // the connection is closed by then: see below
		defer func() { _ = conn.CloseWithError(quic.ApplicationErrorCode(h3ErrNoError), "") }()
		web.wg.Go(func() {
			for {
				str, err := conn.AcceptUniStream(context.Background())
				if err != nil {
					return
				}
				web.wg.Go(func() { raw.HandleUnidirectionalStream(str) })
			}
		})
	}
	idx, early, answer, err := s.authenticate(conn, web)
	if err != nil {
		s.limits.failed(conn.RemoteAddr(), errors.Is(err, auth.ErrBadProof), log)
		code := proto.CodeProtocol
		switch {
		case errors.Is(err, errWebVisitor):
			if errors.Is(err, auth.ErrBadProof) {
				s.counts.authFailures.Add(1)
			}
			s.counts.webVisitors.Add(1)
			s.serveWeb(conn, web)
			return
		case errors.Is(err, auth.ErrBadProof):
			code = proto.CodeAuthFailed
			s.counts.authFailures.Add(1)
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			code = proto.CodeAuthTimeout
			log.Debug("authentication timed out")
		default:
			log.Debug("authentication failed", "err", err)
		}
		if web != nil {
			// A web server closing a connection that asked nothing.
			code = h3ErrNoError
		}
		_ = conn.CloseWithError(quic.ApplicationErrorCode(code), "")
		return
	}
	s.limits.succeeded(conn.RemoteAddr())
	a, _ := conn.Context().Value(admissionKey{}).(*admission)
	a.done()
	if answer != nil {
		// The server's proof needs the finished handshake; the streams
		// sent in 0-RTT need not wait for it.
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			if err := answer(); err != nil {
				log.Info("could not send our proof after 0-RTT", "err", err)
				_ = conn.CloseWithError(quic.ApplicationErrorCode(proto.CodeProtocol), "")
			}
		}()
	}
	log.Info("client authenticated", "transport", "quic", "0rtt", early)
	s.counts.handshakes.Add(1)
	s.counts.active.Add(1)
	s.mu.Lock()
	s.authed[conn] = time.Now()
	s.mu.Unlock()
	defer func() {
		s.counts.active.Add(-1)
		s.mu.Lock()
		delete(s.authed, conn)
		s.mu.Unlock()
	}()
	peer := Peer{Addr: conn.RemoteAddr(), SecretIndex: idx}
	for {
		st, err := conn.AcceptStream(context.Background())
		if err != nil {
			log.Info("client disconnected", "cause", describeQUICError(err))
			return
		}
		if !s.streams.start(func() { h(conn.Context(), quicStream{st}, peer) }) {
			// Draining: refuse new streams; the client reports the refusal.
			st.CancelRead(quic.StreamErrorCode(proto.StreamCodeRefused))
			st.CancelWrite(quic.StreamErrorCode(proto.StreamCodeRefused))
		}
	}
}

// authenticate reads the client's proof from the first stream. No other
// stream is accepted, and so no backend dialed, before it succeeds.
//
// A proof sent in 0-RTT (an EarlyAuthRequest) is taken at once if it is
// right, the connection really resumed with 0-RTT, and the ReplayGuard has
// not seen it; the server's own proof then follows in answer, once the
// handshake is complete. An early proof that is right but not taken gets
// AuthRetry, and the client's full proof is read next; a wrong one is
// refused like a wrong full proof.
//
// The proof travels in an HTTP/3 frame that HTTP/3 servers ignore
// (proto.H3FrameType). With a web site (web not nil), a first stream that
// does not begin with that frame, or whose proof is wrong, is handed to
// the site as it stands, and the error wraps errWebVisitor: the peer sees
// what any HTTP/3 server would show it.
func (s *QUICServer) authenticate(conn *quic.Conn, web *webConn) (idx int, early bool, answer func() error, err error) {
	ctx, cancel := context.WithTimeout(conn.Context(), s.cfg.AuthTimeout)
	defer cancel()
	ctrl, err := conn.AcceptStream(ctx)
	if err != nil {
		return -1, false, nil, fmt.Errorf("wait for control stream: %w", err)
	}
	dl, _ := ctx.Deadline()
	_ = ctrl.SetDeadline(dl)
	first, read, err := readFramedClientAuth(ctrl)
	// toWeb hands the stream to the web site with the bytes read from it;
	// for a wrong proof, that is the whole frame, which the site skips as
	// HTTP/3 has every server do.
	toWeb := func(err error) error {
		_ = ctrl.SetDeadline(time.Time{})
		web.handle(ctrl, read)
		return fmt.Errorf("%w: %w", errWebVisitor, err)
	}
	if err != nil {
		if web != nil {
			return -1, false, nil, toWeb(err)
		}
		return -1, false, nil, fmt.Errorf("read client's proof: %w", err)
	}
	req := first.Request
	if first.Early {
		idx, err := auth.VerifyEarly(first.EarlyReq, s.cfg.Secrets)
		if err != nil {
			if web != nil {
				return -1, false, nil, toWeb(err)
			}
			_, _ = ctrl.Write(proto.AppendAuthResponse(nil, proto.AuthResponse{Status: proto.AuthRejected}))
			return -1, false, nil, err
		}
		why := "not sent in 0-RTT"
		if conn.ConnectionState().Used0RTT {
			why = ""
			if gerr := s.guard.Check(first.EarlyReq, time.Now()); gerr != nil {
				why = gerr.Error()
			}
		}
		if why == "" {
			answer := func() error {
				ekm, err := handshakeExporter(conn, dl)
				if err == nil {
					resp := proto.AuthResponse{Status: proto.AuthOK, Proof: auth.ServerProof(s.cfg.Secrets[idx], ekm)}
					_, err = ctrl.Write(proto.AppendAuthResponse(nil, resp))
				}
				_ = ctrl.SetDeadline(time.Time{})
				return err
			}
			return idx, true, answer, nil
		}
		s.cfg.Logger.Debug("early proof not taken; asking for a full one", "peer", conn.RemoteAddr().String(), "why", why)
		if _, err := handshakeExporter(conn, dl); err != nil {
			return -1, false, nil, err
		}
		if _, err := ctrl.Write(proto.AppendAuthResponse(nil, proto.AuthResponse{Status: proto.AuthRetry})); err != nil {
			return -1, false, nil, fmt.Errorf("ask for a full proof: %w", err)
		}
		if req, err = proto.ReadAuthRequest(ctrl); err != nil {
			return -1, false, nil, fmt.Errorf("read client's proof: %w", err)
		}
	}
	ekm, err := handshakeExporter(conn, dl)
	if err != nil {
		return -1, false, nil, err
	}
	if web != nil && !first.Early {
		if idx, err = auth.Verify(req, s.cfg.Secrets, ekm); err != nil {
			return -1, false, nil, toWeb(err)
		}
		resp := proto.AuthResponse{Status: proto.AuthOK, Proof: auth.ServerProof(s.cfg.Secrets[idx], ekm)}
		if _, err := ctrl.Write(proto.AppendAuthResponse(nil, resp)); err != nil {
			return -1, false, nil, fmt.Errorf("send proof: %w", err)
		}
	} else if idx, err = auth.Answer(ctrl, req, s.cfg.Secrets, ekm); err != nil {
		// After a right early proof and AuthRetry, the peer is known to hold
		// the secret; a rejection now tells it plainly.
		return -1, false, nil, err
	}
	_ = ctrl.SetDeadline(time.Time{})
	return idx, false, nil, nil
}

// readFramedClientAuth reads a control stream's first frame: an
// H3FrameType frame holding a proto.ClientAuth. It also returns every byte
// it read, which an HTTP/3 server must see as the start of the stream if
// this is not a client's.
func readFramedClientAuth(r io.Reader) (proto.ClientAuth, []byte, error) {
	typ, raw, err := proto.ReadVarint(r)
	read := slices.Clone(raw)
	if err != nil {
		return proto.ClientAuth{}, read, err
	}
	if typ != proto.H3FrameType {
		return proto.ClientAuth{}, read, errNotFramed
	}
	n, raw, err := proto.ReadVarint(r)
	read = append(read, raw...)
	if err != nil {
		return proto.ClientAuth{}, read, err
	}
	if n > proto.MaxH3FramePayload {
		// Not ours: an HTTP/3 server skips the payload of a frame this type.
		return proto.ClientAuth{}, read, errNotFramed
	}
	buf := make([]byte, n)
	got, err := io.ReadFull(r, buf)
	read = append(read, buf[:got]...)
	if err != nil {
		return proto.ClientAuth{}, read, err
	}
	a, err := proto.ParseClientAuth(buf)
	return a, read, err
}

// webConn is a connection served as a web site, and its handlers.
type webConn struct {
	raw *http3.RawServerConn
	wg  sync.WaitGroup
}

// handle serves one request stream, whose first bytes (prefix) were read.
func (w *webConn) handle(str *quic.Stream, prefix []byte) {
	w.wg.Go(func() { w.raw.HandleRequestStreamWithPrefix(str, prefix) })
}

// serveWeb serves conn as an HTTP/3 web site until it closes, or until
// webMaxLifetime: a visitor cannot hold its slot for ever.
func (s *QUICServer) serveWeb(conn *quic.Conn, web *webConn) {
	t := time.AfterFunc(webMaxLifetime, func() {
		_ = conn.CloseWithError(quic.ApplicationErrorCode(h3ErrNoError), "")
	})
	defer t.Stop()
	for {
		str, err := conn.AcceptStream(context.Background())
		if err != nil {
			return
		}
		web.handle(str, nil)
	}
}

// handshakeExporter waits (until deadline) for conn's handshake to
// complete, as a connection accepted early has not, and returns the
// exporter value the proofs are bound to.
func handshakeExporter(conn *quic.Conn, deadline time.Time) ([]byte, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-conn.HandshakeComplete():
	case <-conn.Context().Done():
		return nil, context.Cause(conn.Context())
	case <-t.C:
		return nil, fmt.Errorf("TLS handshake: %w", context.DeadlineExceeded)
	}
	return auth.Exporter(conn.ConnectionState().TLS)
}

// Stats implements Server.
func (s *QUICServer) Stats(maxConns int) ServerStats {
	type authedConn struct {
		conn  *quic.Conn
		since time.Time
	}
	st := s.counts.stats(s.limits)
	s.mu.Lock()
	conns := make([]authedConn, 0, len(s.authed))
	for c, since := range s.authed {
		conns = append(conns, authedConn{c, since})
	}
	s.mu.Unlock()
	// Oldest first, then cut: the list stays bounded whatever the load.
	slices.SortFunc(conns, func(a, b authedConn) int { return a.since.Compare(b.since) })
	for _, c := range conns[:min(len(conns), max(maxConns, 0))] {
		cs := c.conn.ConnectionStats()
		st.Conns = append(st.Conns, ConnInfo{Peer: c.conn.RemoteAddr(), Since: c.since,
			RTT: cs.SmoothedRTT, PacketsSent: cs.PacketsSent, PacketsLost: cs.PacketsLost})
	}
	return st
}

// Drain implements Server.
func (s *QUICServer) Drain(ctx context.Context) error {
	_ = s.ln.Close()
	s.conns.close()
	s.streams.close()
	s.streams.wait(ctx)
	s.mu.Lock()
	for c := range s.live {
		_ = c.CloseWithError(quic.ApplicationErrorCode(proto.CodeServerShutdown), "server shutting down")
	}
	s.mu.Unlock()
	s.conns.wait(context.Background())
	s.streams.wait(context.Background())
	err := s.tr.Close()
	_ = s.udp.Close()
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
