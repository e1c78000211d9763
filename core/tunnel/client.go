// Package tunnel is the engine's public face: a Client that accepts local
// TCP connections and carries each as a stream to the server, and a Server
// that serves those streams by connecting them to its allowed backends.
//
// Both are started with a context and stop when it is done: they stop
// accepting, let the streams in flight finish for a bounded drain time, cut
// what is left, and return from Wait. Stats reads live counters at any
// time, so that a CLI, a service or a tray app can drive and watch them
// without reaching inside.
package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/core/relay"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/core/transport"
)

// Transport selects how streams travel between client and server.
type Transport string

// Transports.
const (
	// TransportTCP: each stream on its own TLS 1.3 connection over TCP.
	TransportTCP Transport = "tcp"
	// TransportQUIC: each stream a QUIC stream of one long-lived connection.
	TransportQUIC Transport = "quic"
)

// ClientConfig configures a Client. Zero values mean the documented defaults.
type ClientConfig struct {
	// Listen is the local TCP address to accept on, e.g. "127.0.0.1:8080".
	Listen string
	// Server is the QTunnel server's host:port.
	Server string
	// Transport defaults to TransportTCP, as in the design document; QUIC
	// is chosen explicitly.
	Transport Transport
	// Target names the backend the server should connect to; empty means
	// the server's default backend.
	Target string
	// Secret is the shared secret; required.
	Secret secret.Secret
	// Trust says how the server's certificate is checked (the zero value:
	// by the secret proof alone).
	Trust transport.Trust
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// DrainTimeout bounds how long streams may go on after the context is
	// done. Default 10 s.
	DrainTimeout time.Duration
	// ResponseTimeout bounds the wait for the server's answer to a new
	// stream (it dials the backend first). Default 15 s.
	ResponseTimeout time.Duration
	// Dialer tunes connection handling; its Server, TLS, Secret and Logger
	// fields are filled from the fields above.
	Dialer transport.DialerConfig
}

// Client is a running tunnel client.
type Client struct {
	cfg      ClientConfig
	ln       *net.TCPListener
	dialer   transport.Dialer
	counters counters
	done     chan struct{}
	err      error
}

// StartClient validates cfg, binds the local listener and starts serving
// until ctx is done. Errors binding the listener are returned at once.
func StartClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.ResponseTimeout <= 0 {
		cfg.ResponseTimeout = 15 * time.Second
	}
	if cfg.Transport == "" {
		cfg.Transport = TransportTCP
	}
	if !proto.ValidTarget(cfg.Target) {
		return nil, fmt.Errorf("target name %q: want at most %d bytes and no control characters", cfg.Target, proto.MaxTargetLen)
	}
	tlsConf, err := transport.ClientTLSConfig(cfg.Trust, cfg.Server)
	if err != nil {
		return nil, err
	}
	dc := cfg.Dialer
	dc.Server, dc.TLS, dc.Secret, dc.Logger = cfg.Server, tlsConf, cfg.Secret, cfg.Logger
	dc.CertVerified = cfg.Trust.Pin != nil || cfg.Trust.CA
	var dialer transport.Dialer
	switch cfg.Transport {
	case TransportQUIC:
		dialer, err = transport.NewQUICDialer(dc)
	case TransportTCP:
		dialer, err = transport.NewTCPDialer(dc)
	default:
		return nil, fmt.Errorf("unknown transport %q (want %q or %q)", cfg.Transport, TransportQUIC, TransportTCP)
	}
	if err != nil {
		return nil, err
	}
	la, err := net.ResolveTCPAddr("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	ln, err := net.ListenTCP("tcp", la)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	c := &Client{cfg: cfg, ln: ln, dialer: dialer, done: make(chan struct{})}
	go c.run(ctx)
	return c, nil
}

// Addr is the local address the client accepts on.
func (c *Client) Addr() net.Addr { return c.ln.Addr() }

// Wait blocks until the client has stopped and drained.
func (c *Client) Wait() error {
	<-c.done
	return c.err
}

// Done is closed when the client has stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

// Stats returns live counters and the connection state.
func (c *Client) Stats() Stats {
	s := c.counters.snapshot()
	st := c.dialer.Status()
	s.Connection = &st
	return s
}

func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	log := c.cfg.Logger
	dialCtx, stopDialer := context.WithCancel(context.Background())
	dialerDone := make(chan error, 1)
	go func() { dialerDone <- c.dialer.Run(dialCtx) }()

	// Streams live under their own context, cut only after the drain time.
	streamCtx, cutStreams := context.WithCancel(context.Background())
	defer cutStreams()
	var handlers sync.WaitGroup
	stopAccept := context.AfterFunc(ctx, func() { _ = c.ln.Close() })
	defer stopAccept()
	for {
		conn, err := c.ln.AcceptTCP()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				log.Warn("accept failed", "err", err)
				select {
				case <-time.After(50 * time.Millisecond):
					continue
				case <-ctx.Done():
				}
			}
			break
		}
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			c.serve(streamCtx, conn)
		}()
	}
	_ = c.ln.Close()

	drained := make(chan struct{})
	go func() { handlers.Wait(); close(drained) }()
	if active := c.counters.active.Load(); active > 0 {
		log.Info("draining", "active_connections", active, "timeout", c.cfg.DrainTimeout)
	}
	select {
	case <-drained:
	case <-time.After(c.cfg.DrainTimeout):
		log.Warn("drain time over; closing remaining connections", "active_connections", c.counters.active.Load())
		cutStreams()
		<-drained
	}
	stopDialer()
	if err := <-dialerDone; err != nil {
		c.err = err
	}
}

// serve carries one local connection through the tunnel.
func (c *Client) serve(ctx context.Context, local *net.TCPConn) {
	start := time.Now()
	c.counters.active.Add(1)
	defer c.counters.active.Add(-1)
	c.counters.total.Add(1)
	log := c.cfg.Logger.With("local", local.RemoteAddr().String())

	lc := transport.TCPConn{TCPConn: local}
	st, err := c.dialer.Open(ctx)
	if err != nil {
		c.counters.failed.Add(1)
		log.Warn("connection closed: no tunnel to the server", "err", err)
		lc.Abort()
		return
	}
	remote := &answeredStream{Stream: st, timeout: c.cfg.ResponseTimeout}
	req, err := proto.AppendStreamRequest(nil, proto.StreamRequest{Command: proto.CmdConnect, Target: c.cfg.Target})
	if err == nil {
		_, err = st.Write(req)
	}
	if err != nil {
		c.counters.failed.Add(1)
		log.Warn("connection closed: tunnel stream failed", "err", err)
		st.Abort()
		lc.Abort()
		return
	}
	stop := context.AfterFunc(ctx, func() { relay.Abort(lc); relay.Abort(st) })
	defer stop()
	res := relay.Pipe(lc, remote, relay.Counters{AToB: &c.counters.up, BToA: &c.counters.down})
	var refused *RefusedError
	switch {
	case errors.As(res.Err, &refused):
		c.counters.failed.Add(1)
		log.Warn("connection closed: server could not connect it", "reason", refused.Error())
	case res.Err != nil:
		log.Debug("connection aborted", "up", res.AToB, "down", res.BToA, "duration", time.Since(start), "err", res.Err)
	default:
		log.Debug("connection closed", "up", res.AToB, "down", res.BToA, "duration", time.Since(start))
	}
}

// RefusedError is the server's refusal of a stream, in plain words.
type RefusedError struct {
	Status  proto.Status
	Message string
}

func (e *RefusedError) Error() string {
	if e.Message == "" {
		return e.Status.String()
	}
	return e.Status.String() + ": " + e.Message
}

// answeredStream reads the server's answer before the first byte of data,
// turning a refusal into a *RefusedError that aborts the relay (and with it
// the local connection) at once.
type answeredStream struct {
	transport.Stream
	timeout  time.Duration
	answered bool
}

func (s *answeredStream) Read(p []byte) (int, error) {
	if !s.answered {
		_ = s.Stream.SetReadDeadline(time.Now().Add(s.timeout))
		resp, err := proto.ReadStreamResponse(s.Stream)
		_ = s.Stream.SetReadDeadline(time.Time{})
		if err != nil {
			var se *quic.StreamError
			if errors.As(err, &se) && uint64(se.ErrorCode) == proto.StreamCodeRefused {
				return 0, &RefusedError{Status: proto.StatusDraining}
			}
			return 0, fmt.Errorf("read server's answer: %w", err)
		}
		if resp.Status != proto.StatusOK {
			return 0, &RefusedError{Status: resp.Status, Message: resp.Message}
		}
		s.answered = true
	}
	return s.Stream.Read(p)
}

// counters are a tunnel's live statistics.
type counters struct {
	active, total, failed atomic.Int64
	up, down              atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		ActiveStreams: c.active.Load(),
		TotalStreams:  c.total.Load(),
		FailedStreams: c.failed.Load(),
		BytesUp:       c.up.Load(),
		BytesDown:     c.down.Load(),
	}
}

// Stats is a snapshot of a tunnel's counters.
type Stats struct {
	// ActiveStreams are tunneled connections open now.
	ActiveStreams int64
	// TotalStreams counts every tunneled connection so far.
	TotalStreams int64
	// FailedStreams counts connections refused or never carried.
	FailedStreams int64
	// BytesUp moved from client to server side (local to backend);
	// BytesDown the other way.
	BytesUp, BytesDown int64
	// Connection is the client's link to the server (nil on a server).
	Connection *transport.Status
}
