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
	"slices"
	"strconv"
	"sync"
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

// Forward is one local listener of a Client and the target that the
// connections it accepts reach.
type Forward struct {
	// Name tells forwards apart in stats and on reload; default: Target,
	// or "default" if Target is empty. Unique within a Client.
	Name string
	// Listen is the local TCP address to accept on, e.g. "127.0.0.1:5432".
	Listen string
	// Target names the backend the server should connect to; empty means
	// the server's default target.
	Target string
}

func (f Forward) withDefaults() Forward {
	if f.Name == "" {
		f.Name = f.Target
		if f.Name == "" {
			f.Name = "default"
		}
	}
	return f
}

// Endpoint is one of a client's servers.
type Endpoint struct {
	// Address is the server's host:port.
	Address string
	// Trust, if set, replaces ClientConfig.Trust for this server (its own
	// pin, say).
	Trust *transport.Trust
}

// ClientConfig configures a Client. Zero values mean the documented defaults.
type ClientConfig struct {
	// Forwards are the local listeners; all share one connection to the
	// server (one QUIC connection, or one pool of TLS connections).
	Forwards []Forward
	// Listen and Target are shorthand for a single forward (the design
	// document's -listen); used only if Forwards is empty.
	Listen, Target string
	// Server is the QTunnel server's host:port; used only if Servers is
	// empty.
	Server string
	// Servers are several servers that serve the same targets with the
	// same secret: the client keeps a connection to each, measures them,
	// sends new streams to the best healthy one and fails over when it
	// stops answering (transport.MultiDialer).
	Servers []Endpoint
	// FailoverAfter is how long the server in use may stay silent before
	// new streams go to another (with Servers); default 1 s (see
	// transport.MultiConfig).
	FailoverAfter time.Duration
	// Transport defaults to TransportTCP, as in the design document; QUIC
	// is chosen explicitly.
	Transport Transport
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
	// Meters receive the counters; nil: new ones.
	Meters *Meters
}

// Client is a running tunnel client.
type Client struct {
	cfg    ClientConfig
	dialer transport.Dialer
	meters *Meters
	done   chan struct{}
	err    error

	// Streams live under their own context, cut only after the drain time.
	streamCtx  context.Context
	cutStreams context.CancelFunc
	handlers   sync.WaitGroup // one per local connection
	accepting  sync.WaitGroup // one per forward's accept loop

	mu       sync.Mutex
	stopping bool
	forwards []*forward // running, in configuration order
}

// forward is a running Forward.
type forward struct {
	Forward
	ln    *net.TCPListener
	meter *meter
}

// StartClient validates cfg, binds the local listeners and starts serving
// until ctx is done. Errors binding a listener are returned at once.
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
	if len(cfg.Forwards) == 0 {
		cfg.Forwards = []Forward{{Listen: cfg.Listen, Target: cfg.Target}}
	}
	forwards, err := checkForwards(cfg.Forwards)
	if err != nil {
		return nil, err
	}
	if len(cfg.Servers) == 0 {
		cfg.Servers = []Endpoint{{Address: cfg.Server}}
	}
	dialer, err := newDialer(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Meters == nil {
		cfg.Meters = NewMeters()
	}
	c := &Client{cfg: cfg, dialer: dialer, meters: cfg.Meters, done: make(chan struct{})}
	c.streamCtx, c.cutStreams = context.WithCancel(context.Background())
	for _, f := range forwards {
		if err := c.addForward(f); err != nil {
			c.closeForwards()
			c.cutStreams()
			return nil, err
		}
	}
	go c.run(ctx) // #nosec G118 -- run gets ctx; the streams' and dialer's contexts are stopped by run itself after draining
	return c, nil
}

// newDialer makes the dialer for cfg's servers: one server's own, or a
// MultiDialer over one for each.
func newDialer(cfg ClientConfig) (transport.Dialer, error) {
	var eps []transport.Endpoint
	seen := make(map[string]bool, len(cfg.Servers))
	for i, ep := range cfg.Servers {
		if seen[ep.Address] {
			return nil, fmt.Errorf("server %s is listed twice", ep.Address)
		}
		seen[ep.Address] = true
		trust := cfg.Trust
		if ep.Trust != nil {
			trust = *ep.Trust
		}
		dc := cfg.Dialer
		if dc.SessionFile != "" && len(cfg.Servers) > 1 {
			// Each dialer keeps its own file: they would overwrite one.
			dc.SessionFile += "." + strconv.Itoa(i+1)
		}
		d, err := serverDialer(cfg, dc, ep.Address, trust)
		if err != nil {
			if len(cfg.Servers) > 1 {
				err = fmt.Errorf("server %s: %w", ep.Address, err)
			}
			return nil, err
		}
		eps = append(eps, transport.Endpoint{Address: ep.Address, Dialer: d})
	}
	if len(eps) == 1 {
		return eps[0].Dialer, nil
	}
	return transport.NewMultiDialer(transport.MultiConfig{FailoverAfter: cfg.FailoverAfter, ConnectWait: cfg.Dialer.ConnectWait,
		Logger: cfg.Logger}, eps)
}

// serverDialer makes the dialer for one server.
func serverDialer(cfg ClientConfig, dc transport.DialerConfig, server string, trust transport.Trust) (transport.Dialer, error) {
	tlsConf, err := transport.ClientTLSConfig(trust, server)
	if err != nil {
		return nil, err
	}
	dc.Server, dc.TLS, dc.Secret, dc.Logger = server, tlsConf, cfg.Secret, cfg.Logger
	dc.CertVerified = trust.Pin != nil || trust.CA
	switch cfg.Transport {
	case TransportQUIC:
		if dc.NoTCPFallback {
			return transport.NewQUICDialer(dc)
		}
		return transport.NewFallbackDialer(dc)
	case TransportTCP:
		return transport.NewTCPDialer(dc)
	}
	return nil, fmt.Errorf("unknown transport %q (want %q or %q)", cfg.Transport, TransportQUIC, TransportTCP)
}

// checkForwards fills defaults and refuses what cannot work together.
func checkForwards(in []Forward) ([]Forward, error) {
	out := make([]Forward, 0, len(in))
	names := make(map[string]bool, len(in))
	for _, f := range in {
		f = f.withDefaults()
		if !proto.ValidTarget(f.Target) {
			return nil, fmt.Errorf("forward %q: target name %q: want at most %d bytes and no control characters", f.Name, f.Target, proto.MaxTargetLen)
		}
		if names[f.Name] {
			return nil, fmt.Errorf("two forwards are named %q; give each its own name", f.Name)
		}
		names[f.Name] = true
		out = append(out, f)
	}
	return out, nil
}

// addForward binds f's listener and starts accepting on it.
func (c *Client) addForward(f Forward) error {
	la, err := net.ResolveTCPAddr("tcp", f.Listen)
	if err != nil {
		return fmt.Errorf("forward %q: listen address %q: %w", f.Name, f.Listen, err)
	}
	ln, err := net.ListenTCP("tcp", la)
	if err != nil {
		return fmt.Errorf("forward %q: listen on %s: %w", f.Name, f.Listen, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		_ = ln.Close()
		return errors.New("the client is stopping")
	}
	fw := &forward{Forward: f, ln: ln, meter: c.meters.get(f.Name)}
	c.forwards = append(c.forwards, fw)
	c.accepting.Add(1)
	go func() {
		defer c.accepting.Done()
		c.accept(fw)
	}()
	return nil
}

// closeForwards closes every listener; their accept loops then return.
func (c *Client) closeForwards() {
	c.mu.Lock()
	c.stopping = true
	fws := c.forwards
	c.forwards = nil
	c.mu.Unlock()
	for _, f := range fws {
		_ = f.ln.Close()
	}
}

// SetForwards changes the running forwards to fs: forwards whose name,
// listen address and target are unchanged go on untouched; removed ones
// stop accepting (their open connections finish); new or changed ones are
// bound. It reports what it did; on an error (a port in use, say) the
// forwards it could set up run, and the error names the others.
func (c *Client) SetForwards(fs []Forward) (added, removed []string, err error) {
	want, err := checkForwards(fs)
	if err != nil {
		return nil, nil, err
	}
	keep := make(map[string]bool)
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return nil, nil, errors.New("the client is stopping")
	}
	var kept, gone []*forward
	for _, cur := range c.forwards {
		same := false
		for _, f := range want {
			if f == cur.Forward {
				same = true
				break
			}
		}
		if same {
			kept = append(kept, cur)
			keep[cur.Name] = true
		} else {
			gone = append(gone, cur)
		}
	}
	c.forwards = kept
	c.mu.Unlock()
	for _, f := range gone {
		_ = f.ln.Close()
		removed = append(removed, f.Name)
		c.cfg.Logger.Info("forward removed", "forward", f.Name, "listen", f.ln.Addr().String())
	}
	var errs []error
	for _, f := range want {
		if keep[f.Name] {
			continue
		}
		if err := c.addForward(f); err != nil {
			errs = append(errs, err)
			continue
		}
		added = append(added, f.Name)
		c.cfg.Logger.Info("forward added", "forward", f.Name, "listen", c.ForwardAddr(f.Name).String(), "target", f.Target)
	}
	c.sortForwards(want)
	return added, removed, errors.Join(errs...)
}

// sortForwards puts the running forwards in the order of the configuration.
func (c *Client) sortForwards(order []Forward) {
	pos := make(map[string]int, len(order))
	for i, f := range order {
		pos[f.Name] = i
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	slices.SortStableFunc(c.forwards, func(a, b *forward) int { return pos[a.Name] - pos[b.Name] })
}

// Addr is the local address of the first forward.
func (c *Client) Addr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.forwards) == 0 {
		return nil
	}
	return c.forwards[0].ln.Addr()
}

// ForwardAddr is the local address of the named forward, or nil.
func (c *Client) ForwardAddr(name string) net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.forwards {
		if f.Name == name {
			return f.ln.Addr()
		}
	}
	return nil
}

// Wait blocks until the client has stopped and drained.
func (c *Client) Wait() error {
	<-c.done
	return c.err
}

// Done is closed when the client has stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

// ErrCannotMigrate: TCP mode has nothing to move (a TCP connection is
// tied to its addresses; after a network change its pool is refilled).
var ErrCannotMigrate = errors.New("only a QUIC connection can move to a new network path; TCP mode reconnects instead")

// Migrate moves the QUIC connection to a new local socket and path, with
// every stream on it (see transport.QUICDialer.Migrate).
func (c *Client) Migrate(ctx context.Context) (transport.Migration, error) {
	m, ok := c.dialer.(interface {
		Migrate(context.Context) (transport.Migration, error)
	})
	if !ok {
		return transport.Migration{}, ErrCannotMigrate
	}
	return m.Migrate(ctx)
}

// Changed returns a channel closed at the next change of the connection's
// state or last error.
func (c *Client) Changed() <-chan struct{} { return c.dialer.Changed() }

// Stats returns live counters and the connection state.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	fws := slices.Clone(c.forwards)
	c.mu.Unlock()
	s := c.meters.Totals()
	for _, f := range fws {
		s.Forwards = append(s.Forwards, ForwardStats{Forward: f.Forward, Addr: f.ln.Addr(), Counts: f.meter.snapshot(),
			LastError: f.meter.lastError()})
	}
	st := c.dialer.Status()
	s.Connection = &st
	return s
}

func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	defer c.cutStreams()
	log := c.cfg.Logger
	dialCtx, stopDialer := context.WithCancel(context.Background())
	dialerDone := make(chan error, 1)
	go func() { dialerDone <- c.dialer.Run(dialCtx) }()

	<-ctx.Done()
	c.closeForwards()
	c.accepting.Wait()

	drained := make(chan struct{})
	go func() { c.handlers.Wait(); close(drained) }()
	if active := c.Stats().ActiveStreams; active > 0 {
		log.Info("draining", "active_connections", active, "timeout", c.cfg.DrainTimeout)
	}
	select {
	case <-drained:
	case <-time.After(c.cfg.DrainTimeout):
		log.Warn("drain time over; closing remaining connections", "active_connections", c.Stats().ActiveStreams)
		c.cutStreams()
		<-drained
	}
	stopDialer()
	if err := <-dialerDone; err != nil {
		c.err = err
	}
}

// accept serves f's listener until it is closed.
func (c *Client) accept(f *forward) {
	for {
		conn, err := f.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.cfg.Logger.Warn("accept failed", "forward", f.Name, "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c.handlers.Add(1)
		go func() {
			defer c.handlers.Done()
			c.serve(c.streamCtx, f, conn)
		}()
	}
}

// serve carries one local connection through the tunnel.
func (c *Client) serve(ctx context.Context, f *forward, local *net.TCPConn) {
	start := time.Now()
	m := f.meter
	m.active.Add(1)
	defer m.active.Add(-1)
	m.total.Add(1)
	log := c.cfg.Logger.With("forward", f.Name, "local", local.RemoteAddr().String())

	lc := transport.TCPConn{TCPConn: local}
	st, err := c.dialer.Open(ctx)
	if err != nil {
		m.fail("no tunnel to the server: " + err.Error())
		c.meters.errs.add(ErrNoTunnel)
		log.Warn("connection closed: no tunnel to the server", "err", err)
		lc.Abort()
		return
	}
	remote := &answeredStream{Stream: st, timeout: c.cfg.ResponseTimeout}
	req, err := proto.AppendStreamRequest(nil, proto.StreamRequest{Command: proto.CmdConnect, Target: f.Target})
	if err == nil {
		_, err = st.Write(req)
	}
	if err != nil {
		m.fail("tunnel stream failed: " + err.Error())
		c.meters.errs.add(ErrReset)
		log.Warn("connection closed: tunnel stream failed", "err", err)
		st.Abort()
		lc.Abort()
		return
	}
	stop := context.AfterFunc(ctx, func() { relay.Abort(lc); relay.Abort(st) })
	defer stop()
	res := relay.Pipe(lc, remote, relay.Counters{AToB: &m.up, BToA: &m.down})
	var refused *RefusedError
	switch {
	case errors.As(res.Err, &refused):
		m.fail("server refused: " + refused.Error())
		c.meters.errs.add(errorKind(refused.Status))
		log.Warn("connection closed: server could not connect it", "reason", refused.Error())
	case res.Err != nil:
		c.meters.errs.add(ErrReset)
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
