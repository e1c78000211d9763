package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/proto"
)

// errTooManyPeers refuses a connection over ServerConfig.MaxPeers.
var errTooManyPeers = errors.New("too many connections")

// QUICServer accepts QUIC connections, authenticates each on its first
// stream, and only then accepts its other streams.
type QUICServer struct {
	cfg     ServerConfig
	udp     *net.UDPConn
	tr      *quic.Transport
	ln      *quic.Listener
	conns   group // one goroutine per connection
	streams group // one goroutine per stream handler
	peers   atomic.Int64

	mu   sync.Mutex
	live map[*quic.Conn]struct{}
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
	s := &QUICServer{cfg: c, udp: udp, live: make(map[*quic.Conn]struct{})}
	s.tr = &quic.Transport{
		Conn:              udp,
		StatelessResetKey: resetKey,
		TokenGeneratorKey: tokenKey,
		ConnContext:       s.admit,
	}
	qc := quicConfig(true)
	qc.HandshakeIdleTimeout = c.AuthTimeout
	qc.CongestionControl = c.Congestion.quic()
	s.ln, err = s.tr.Listen(ServerTLSConfig(c.Certificate), qc)
	if err != nil {
		_ = s.tr.Close()
		_ = udp.Close()
		return nil, fmt.Errorf("listen on UDP %s: %w", c.Listen, err)
	}
	return s, nil
}

// admit counts connections from their first packet and refuses those over
// the limit before any handshake work is spent on them.
func (s *QUICServer) admit(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	if s.peers.Add(1) > int64(s.cfg.MaxPeers) {
		s.peers.Add(-1)
		return nil, errTooManyPeers
	}
	context.AfterFunc(ctx, func() { s.peers.Add(-1) })
	return ctx, nil
}

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

// serveConn authenticates conn, then hands each of its streams to h.
func (s *QUICServer) serveConn(conn *quic.Conn, h Handler) {
	defer s.forget(conn)
	log := s.cfg.Logger.With("peer", conn.RemoteAddr().String())
	idx, err := s.authenticate(conn)
	if err != nil {
		code := proto.CodeProtocol
		switch {
		case errors.Is(err, auth.ErrBadProof):
			code = proto.CodeAuthFailed
			log.Warn("authentication failed: wrong secret, or proof relayed from another session")
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			code = proto.CodeAuthTimeout
			log.Info("authentication timed out")
		default:
			log.Info("authentication failed", "err", err)
		}
		_ = conn.CloseWithError(quic.ApplicationErrorCode(code), "")
		return
	}
	log.Info("client authenticated", "transport", "quic")
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
func (s *QUICServer) authenticate(conn *quic.Conn) (int, error) {
	ctx, cancel := context.WithTimeout(conn.Context(), s.cfg.AuthTimeout)
	defer cancel()
	ekm, err := auth.Exporter(conn.ConnectionState().TLS)
	if err != nil {
		return -1, err
	}
	ctrl, err := conn.AcceptStream(ctx)
	if err != nil {
		return -1, fmt.Errorf("wait for control stream: %w", err)
	}
	dl, _ := ctx.Deadline()
	_ = ctrl.SetDeadline(dl)
	idx, err := auth.Server(ctrl, s.cfg.Secrets, ekm)
	if err != nil {
		return -1, err
	}
	_ = ctrl.SetDeadline(time.Time{})
	return idx, nil
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
