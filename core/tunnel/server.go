package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/core/relay"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/core/transport"
)

// ServerConfig configures a Server. Zero values mean the documented defaults.
type ServerConfig struct {
	// Listen is the address to accept tunnel connections on (UDP for QUIC,
	// TCP otherwise), e.g. ":443".
	Listen string
	// Backend is the host:port every stream is connected to. It is the
	// only target the server allows: it is never an open proxy.
	Backend string
	// Transport defaults to TransportTCP, as in the design document.
	Transport Transport
	// Certificate is the server's TLS certificate; required.
	Certificate tls.Certificate
	// Secrets are the accepted shared secrets; at least one.
	Secrets []secret.Secret
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// DrainTimeout bounds how long streams may go on after the context is
	// done. Default 10 s.
	DrainTimeout time.Duration
	// HeaderTimeout bounds the wait for a stream's request. Default 10 s.
	HeaderTimeout time.Duration
	// DialTimeout bounds connecting to the backend. Default 10 s.
	DialTimeout time.Duration
	// Limits and timeouts of the transport; its Listen, Certificate,
	// Secrets and Logger fields are filled from the fields above.
	Peers transport.ServerConfig
}

// Server is a running tunnel server.
type Server struct {
	cfg      ServerConfig
	tr       transport.Server
	counters counters
	done     chan struct{}
	err      error
}

// StartServer validates cfg, binds the listening socket and serves until
// ctx is done. Errors binding the socket are returned at once.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 10 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Transport == "" {
		cfg.Transport = TransportTCP
	}
	if _, _, err := net.SplitHostPort(cfg.Backend); err != nil {
		return nil, fmt.Errorf("backend address %q: %w", cfg.Backend, err)
	}
	pc := cfg.Peers
	pc.Listen, pc.Certificate, pc.Secrets, pc.Logger = cfg.Listen, cfg.Certificate, cfg.Secrets, cfg.Logger
	var (
		tr  transport.Server
		err error
	)
	switch cfg.Transport {
	case TransportQUIC:
		tr, err = transport.ListenQUIC(pc)
	case TransportTCP:
		tr, err = transport.ListenTCP(pc)
	default:
		return nil, fmt.Errorf("unknown transport %q (want %q or %q)", cfg.Transport, TransportQUIC, TransportTCP)
	}
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, tr: tr, done: make(chan struct{})}
	go s.run(ctx)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.tr.Addr() }

// Wait blocks until the server has stopped and drained.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// Done is closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stats returns live counters.
func (s *Server) Stats() Stats { return s.counters.snapshot() }

func (s *Server) run(ctx context.Context) {
	defer close(s.done)
	// Handlers live under their own context: a backend dial in progress is
	// cut when the drain time is over, not when serving stops.
	handlerCtx, cut := context.WithCancel(context.Background())
	defer cut()
	err := s.tr.Serve(ctx, func(streamCtx context.Context, st transport.Stream, p transport.Peer) {
		hctx, cancel := context.WithCancel(handlerCtx)
		defer cancel()
		stop := context.AfterFunc(streamCtx, cancel)
		defer stop()
		s.serve(hctx, st, p)
	})
	if err != nil {
		s.err = err
		s.cfg.Logger.Error("serving stopped", "err", err)
	}
	if active := s.counters.active.Load(); active > 0 {
		s.cfg.Logger.Info("draining", "active_connections", active, "timeout", s.cfg.DrainTimeout)
	}
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	stop := context.AfterFunc(dctx, cut)
	defer stop()
	if err := s.tr.Drain(dctx); err != nil && s.err == nil {
		s.err = err
	}
}

// serve reads a stream's request, connects the allowed backend and relays.
func (s *Server) serve(ctx context.Context, st transport.Stream, p transport.Peer) {
	start := time.Now()
	log := s.cfg.Logger.With("peer", p.Addr.String())
	_ = st.SetReadDeadline(time.Now().Add(s.cfg.HeaderTimeout))
	req, err := proto.ReadStreamRequest(st)
	if err != nil {
		log.Debug("bad stream request", "err", err)
		st.Abort()
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	s.counters.active.Add(1)
	defer s.counters.active.Add(-1)
	s.counters.total.Add(1)

	target, ok := s.allowed(req.Target)
	if !ok {
		s.counters.failed.Add(1)
		log.Warn("stream refused: target not allowed", "target", req.Target)
		s.refuse(st, proto.StreamResponse{Status: proto.StatusNotAllowed})
		return
	}
	dialer := net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 15 * time.Second}
	backend, err := dialer.DialContext(ctx, "tcp", target)
	if err != nil {
		s.counters.failed.Add(1)
		resp := dialFailure(err)
		log.Warn("backend connection failed; closing the client's connection", "backend", target, "err", err)
		s.refuse(st, resp)
		return
	}
	ok2 := proto.AppendStreamResponse(nil, proto.StreamResponse{Status: proto.StatusOK})
	if _, err := st.Write(ok2); err != nil {
		log.Debug("stream broke before relaying", "err", err)
		st.Abort()
		_ = backend.Close()
		return
	}
	bc := transport.TCPConn{TCPConn: backend.(*net.TCPConn)}
	stop := context.AfterFunc(ctx, func() { relay.Abort(st); relay.Abort(bc) })
	defer stop()
	res := relay.Pipe(st, bc, relay.Counters{AToB: &s.counters.up, BToA: &s.counters.down})
	log.Debug("connection closed", "backend", target, "up", res.AToB, "down", res.BToA,
		"duration", time.Since(start), "err", res.Err)
}

// allowed maps a requested target name to an address the server allows.
func (s *Server) allowed(name string) (string, bool) {
	if name == "" {
		return s.cfg.Backend, true
	}
	return "", false
}

// refuse answers a stream with a failure and ends it.
func (s *Server) refuse(st transport.Stream, resp proto.StreamResponse) {
	_ = st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = st.Write(proto.AppendStreamResponse(nil, resp))
	_ = st.CloseWrite()
	_ = st.Close()
}

// dialFailure turns a backend dial error into an answer for the client,
// in words and without internal detail beyond the kind of failure.
func dialFailure(err error) proto.StreamResponse {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return proto.StreamResponse{Status: proto.StatusDialFailed, Message: "connection refused"}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return proto.StreamResponse{Status: proto.StatusDialTimeout, Message: "no answer"}
	case errors.As(err, &dnsErr):
		return proto.StreamResponse{Status: proto.StatusDialFailed, Message: "cannot resolve backend name"}
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return proto.StreamResponse{Status: proto.StatusDialFailed, Message: "no route to backend"}
	}
	return proto.StreamResponse{Status: proto.StatusDialFailed, Message: "cannot connect"}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
