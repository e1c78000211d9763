package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qtunnel/qtunnel/core/masquerade"
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
	// Targets are the named backends the server allows; a client asks for
	// one by name, and nothing else is ever dialed: the server is never an
	// open proxy.
	Targets []Target
	// DefaultTarget names the target a client that names none gets (the
	// design document's clients); empty: such a client is refused, unless
	// Backend is set.
	DefaultTarget string
	// Backend is shorthand for a default target named "default" with this
	// host:port (the design document's -backend).
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
	// Meters receive the counters; nil: new ones.
	Meters *Meters
	// NoTCPFallback (QUIC only) turns off the TLS/TCP listener on the same
	// port number, which clients use when UDP does not get through.
	NoTCPFallback bool
	// Masquerade is the web site shown to peers that do not prove the
	// secret (see masquerade.Handler): "" is the built-in page, "off" none.
	Masquerade string
	// MaxRelays bounds the streams relayed at once across all clients;
	// past it a new stream is refused as overloaded. It bounds the relay
	// buffers to MaxRelays x 2 x relay.LargeBufferSize. Default 4096.
	MaxRelays int
	// Limits and timeouts of the transport; its Listen, Certificate,
	// Secrets, Logger and Web fields are filled from the fields above.
	Peers transport.ServerConfig
}

// Target is a backend a server allows, by name.
type Target struct {
	Name    string
	Address string // host:port
}

// targetTable is the server's allowed targets; replaced whole on reload.
type targetTable struct {
	byName      map[string]Target
	order       []string
	defaultName string
}

// Server is a running tunnel server.
type Server struct {
	cfg     ServerConfig
	tr      transport.Server
	targets atomic.Pointer[targetTable]
	meters  *Meters
	relays  atomic.Int64 // streams being served
	done    chan struct{}
	err     error
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
	table, err := newTargetTable(cfg.Targets, cfg.DefaultTarget, cfg.Backend)
	if err != nil {
		return nil, err
	}
	if cfg.MaxRelays <= 0 {
		cfg.MaxRelays = 4096
	}
	pc := cfg.Peers
	pc.Listen, pc.Certificate, pc.Secrets, pc.Logger = cfg.Listen, cfg.Certificate, cfg.Secrets, cfg.Logger
	if pc.Web, err = masquerade.Handler(cfg.Masquerade, cfg.Logger); err != nil {
		return nil, err
	}
	var tr transport.Server
	switch cfg.Transport {
	case TransportQUIC:
		tr, err = listenQUICWithFallback(pc, cfg.NoTCPFallback)
	case TransportTCP:
		tr, err = transport.ListenTCP(pc)
	default:
		return nil, fmt.Errorf("unknown transport %q (want %q or %q)", cfg.Transport, TransportQUIC, TransportTCP)
	}
	if err != nil {
		return nil, err
	}
	if cfg.Meters == nil {
		cfg.Meters = NewMeters()
	}
	s := &Server{cfg: cfg, tr: tr, meters: cfg.Meters, done: make(chan struct{})}
	s.targets.Store(table)
	go s.run(ctx) // #nosec G118 -- run gets ctx; handlers live under their own context so the drain can outlast it
	return s, nil
}

// listenQUICWithFallback binds the QUIC server and, unless turned off, a
// TLS/TCP server on the same port number for clients whose UDP is blocked;
// a TCP port in use costs the fallback, with a warning, not the server.
func listenQUICWithFallback(pc transport.ServerConfig, noFallback bool) (transport.Server, error) {
	pc = pc.WithSharedLimiter()
	q, err := transport.ListenQUIC(pc)
	if err != nil || noFallback {
		return q, err
	}
	host, _, err := net.SplitHostPort(pc.Listen)
	if err != nil {
		return nil, err
	}
	tc := pc
	tc.Listen = net.JoinHostPort(host, strconv.Itoa(q.Addr().(*net.UDPAddr).Port))
	t, err := transport.ListenTCP(tc)
	if err != nil {
		// Common and legitimate: a web server on TCP 443 beside QTunnel on
		// UDP 443. QUIC clients are served; only the fallback is missing.
		pc.Logger.Warn("no TLS/TCP fallback: clients whose UDP is blocked cannot connect", "tcp", tc.Listen, "err", err)
		return q, nil
	}
	return transport.Both(q, t), nil
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

// MaxListedConns bounds the connections Stats lists.
const MaxListedConns = 100

// Stats returns live counters.
func (s *Server) Stats() Stats {
	t := s.targets.Load()
	st := s.meters.Totals()
	for _, name := range t.order {
		st.Targets = append(st.Targets, TargetStats{Target: t.byName[name], Counts: s.meters.get(name).snapshot()})
	}
	ps := s.tr.Stats(MaxListedConns)
	st.Peers = &ps
	return st
}

// Targets returns the allowed targets and the default target's name.
func (s *Server) Targets() ([]Target, string) {
	t := s.targets.Load()
	out := make([]Target, len(t.order))
	for i, n := range t.order {
		out[i] = t.byName[n]
	}
	return out, t.defaultName
}

// SetTargets replaces the allowed targets (on reload). Streams already
// relaying go on; new ones see the new table.
func (s *Server) SetTargets(targets []Target, defaultTarget string) error {
	table, err := newTargetTable(targets, defaultTarget, "")
	if err != nil {
		return err
	}
	s.targets.Store(table)
	return nil
}

func newTargetTable(targets []Target, defaultName, backend string) (*targetTable, error) {
	t := &targetTable{byName: make(map[string]Target, len(targets)+1), defaultName: defaultName}
	if backend != "" {
		if defaultName != "" {
			return nil, errors.New("give a default target by name or by backend address, not both")
		}
		targets = append(slices.Clone(targets), Target{Name: "default", Address: backend})
		t.defaultName = "default"
	}
	for _, tg := range targets {
		if !proto.ValidTarget(tg.Name) || tg.Name == "" {
			return nil, fmt.Errorf("target name %q: want 1 to %d bytes and no control characters", tg.Name, proto.MaxTargetLen)
		}
		if _, dup := t.byName[tg.Name]; dup {
			return nil, fmt.Errorf("target %q is given twice", tg.Name)
		}
		if _, _, err := net.SplitHostPort(tg.Address); err != nil {
			return nil, fmt.Errorf("target %q: address %q: %w", tg.Name, tg.Address, err)
		}
		t.byName[tg.Name] = tg
		t.order = append(t.order, tg.Name)
	}
	if t.defaultName != "" {
		if _, ok := t.byName[t.defaultName]; !ok {
			return nil, fmt.Errorf("default target %q is not one of the targets", t.defaultName)
		}
	}
	if len(t.order) == 0 {
		return nil, errors.New("no target: give the server at least one backend to allow")
	}
	return t, nil
}

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
		s.serve(hctx, ctx.Done(), st, p)
	})
	if err != nil {
		s.err = err
		s.cfg.Logger.Error("serving stopped", "err", err)
	}
	if active := s.Stats().ActiveStreams; active > 0 {
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
// stopping is closed when the server stops taking new streams.
func (s *Server) serve(ctx context.Context, stopping <-chan struct{}, st transport.Stream, p transport.Peer) {
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
	if req.Command == proto.CmdHeartbeat {
		s.heartbeat(ctx, stopping, st)
		return
	}

	if s.relays.Add(1) > int64(s.cfg.MaxRelays) {
		s.relays.Add(-1)
		s.meters.errs.add(ErrOverloaded)
		log.Warn("stream refused: the server relays as many streams as max-relays allows", "max", s.cfg.MaxRelays)
		s.refuse(st, proto.StreamResponse{Status: proto.StatusOverloaded, Message: "the server is at its limit of connections; try again later"})
		return
	}
	defer s.relays.Add(-1)

	target, ok := s.allowed(req.Target)
	if !ok {
		s.meters.errs.add(ErrNotAllowed)
		log.Warn("stream refused: target not allowed", "target", req.Target)
		s.refuse(st, proto.StreamResponse{Status: proto.StatusNotAllowed, Message: notAllowedMessage(req.Target)})
		return
	}
	m := s.meters.get(target.Name)
	m.active.Add(1)
	defer m.active.Add(-1)
	m.total.Add(1)
	dialer := net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 15 * time.Second}
	backend, err := dialer.DialContext(ctx, "tcp", target.Address)
	if err != nil {
		resp := dialFailure(err)
		m.fail(resp.Message)
		s.meters.errs.add(errorKind(resp.Status))
		log.Warn("backend connection failed; closing the client's connection", "target", target.Name, "backend", target.Address, "err", err)
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
	res := relay.Pipe(st, bc, relay.Counters{AToB: &m.up, BToA: &m.down})
	if res.Err != nil {
		s.meters.errs.add(ErrReset)
	}
	log.Debug("connection closed", "target", target.Name, "up", res.AToB, "down", res.BToA,
		"duration", time.Since(start), "err", res.Err)
}

// heartbeatIdle ends a heartbeat stream on which the client has sent
// nothing for this long (it sends several a second).
const heartbeatIdle = time.Minute

// heartbeat answers a heartbeat stream and echoes what the client sends,
// a few bytes at a time, until the client closes it or the server stops
// taking streams: the end of the heartbeat then tells a client with other
// servers to send its new streams there, before the drain is over.
func (s *Server) heartbeat(ctx context.Context, stopping <-chan struct{}, st transport.Stream) {
	end := func() { relay.Abort(st) }
	stop := context.AfterFunc(ctx, end)
	defer stop()
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		select {
		case <-stopping:
			end()
		case <-stopWatch:
		}
	}()
	_ = st.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := st.Write(proto.AppendStreamResponse(nil, proto.StreamResponse{Status: proto.StatusOK})); err != nil {
		st.Abort()
		return
	}
	var buf [16]byte
	for {
		_ = st.SetReadDeadline(time.Now().Add(heartbeatIdle))
		n, err := st.Read(buf[:])
		if n > 0 {
			_ = st.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, werr := st.Write(buf[:n]); werr != nil {
				st.Abort()
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = st.Close()
			} else {
				st.Abort()
			}
			return
		}
	}
}

// allowed maps a requested target name to a target the server allows.
func (s *Server) allowed(name string) (Target, bool) {
	t := s.targets.Load()
	if name == "" {
		name = t.defaultName
	}
	tg, ok := t.byName[name]
	return tg, ok
}

// notAllowedMessage is the refusal's text: it says what was asked for,
// never what is allowed (a client learns nothing of other targets).
func notAllowedMessage(name string) string {
	if name == "" {
		return "this server has no default target; name one"
	}
	return fmt.Sprintf("%q is not a target this server allows", name)
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
