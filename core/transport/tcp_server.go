package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/proto"
)

// TCPServer accepts TLS 1.3 connections over TCP, authenticates each, and
// hands it to the handler as one stream once its first byte arrives (until
// then it is a client's pooled spare, and is closed at once on Drain).
type TCPServer struct {
	cfg     ServerConfig
	ln      net.Listener
	tlsConf *tls.Config
	conns   group
	peers   atomic.Int64
	pending atomic.Int64 // connections not authenticated: handshakes, web visitors
	counts  peerCounters
	limits  *sourceLimiter
	web     *webSite // nil: no web site

	mu       sync.Mutex
	live     map[net.Conn]bool // value: a stream has started on it
	draining bool
}

// ListenTCP binds the TCP socket; Serve accepts.
func ListenTCP(cfg ServerConfig) (*TCPServer, error) {
	c, err := cfg.withDefaults(8192)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	var note ccNote
	if cc := c.Congestion.tcp(); cc != "" {
		// Accepted connections inherit the listener's choice.
		lc.Control = tcpCongestionControl(cc, note.note(c.Logger, cc))
	}
	ln, err := lc.Listen(context.Background(), "tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on TCP %s: %w", c.Listen, err)
	}
	s := &TCPServer{cfg: c, ln: ln, tlsConf: ServerTLSConfig(c.Certificate, false), live: make(map[net.Conn]bool), limits: c.limiter}
	if c.Web != nil {
		s.web = newWebSite(c.Web, ln.Addr())
	}
	return s, nil
}

// Addr implements Server.
func (s *TCPServer) Addr() net.Addr { return s.ln.Addr() }

// Serve implements Server.
func (s *TCPServer) Serve(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() { _ = s.ln.Close() })
	defer stop()
	if s.web != nil {
		s.web.start()
	}
	var tempDelay time.Duration
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait and go on, as
			// net/http does, rather than die.
			tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
			s.cfg.Logger.Warn("accept failed; retrying", "err", err, "delay", tempDelay)
			select {
			case <-time.After(tempDelay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		tempDelay = 0
		if !s.limits.allow(raw.RemoteAddr()) {
			_ = raw.Close()
			continue
		}
		if s.peers.Add(1) > int64(s.cfg.MaxPeers) {
			s.peers.Add(-1)
			s.counts.refusedFull.Add(1)
			_ = raw.Close()
			s.cfg.Logger.Debug("connection refused: too many connections", "peer", raw.RemoteAddr().String(), "max", s.cfg.MaxPeers)
			continue
		}
		if s.pending.Add(1) > int64(s.cfg.MaxPending) {
			s.pending.Add(-1)
			s.peers.Add(-1)
			s.counts.refusedFull.Add(1)
			_ = raw.Close()
			continue
		}
		if !s.track(raw) || !s.conns.start(func() { s.serveConn(raw, h) }) {
			s.untrack(raw)
			_ = raw.Close()
		}
	}
}

func (s *TCPServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.live[c] = false
	return true
}

func (s *TCPServer) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	s.peers.Add(-1)
}

// markStarted records that a stream started on c; it fails if the server
// is draining, in which case c must be closed.
func (s *TCPServer) markStarted(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.live[c] = true
	return true
}

func (s *TCPServer) serveConn(raw net.Conn, h Handler) {
	defer s.untrack(raw)
	pending := true
	defer func() {
		if pending {
			s.pending.Add(-1)
		}
	}()
	log := s.cfg.Logger.With("peer", raw.RemoteAddr().String())
	conn := tls.Server(raw, s.tlsConf)
	idx, read, err := s.authenticate(conn)
	if err != nil {
		wrong := errors.Is(err, auth.ErrBadProof)
		s.limits.failed(raw.RemoteAddr(), wrong, log)
		if wrong {
			s.counts.authFailures.Add(1)
		} else {
			log.Debug("handshake failed", "err", err)
		}
		if s.web != nil && read != nil {
			// The TLS session is up: whoever this is gets the web site,
			// starting with the bytes it sent.
			s.counts.webVisitors.Add(1)
			s.web.serve(conn, read)
			return
		}
		if wrong && s.web == nil {
			_, _ = conn.Write(proto.AppendAuthResponse(nil, proto.AuthResponse{Status: proto.AuthRejected}))
		}
		_ = raw.Close()
		return
	}
	s.limits.succeeded(raw.RemoteAddr())
	pending = false
	s.pending.Add(-1)
	log.Debug("client authenticated", "transport", "tcp")
	s.counts.handshakes.Add(1)
	s.counts.active.Add(1)
	defer s.counts.active.Add(-1)
	// Wait for the first byte: until then this is an idle spare.
	_ = raw.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	var first [1]byte
	n, err := conn.Read(first[:])
	if err != nil || n == 0 {
		_ = raw.Close()
		return
	}
	_ = raw.SetReadDeadline(time.Time{})
	if !s.markStarted(raw) {
		tlsStream{Conn: conn, raw: raw}.Abort()
		return
	}
	st := &prefixedTLSStream{tlsStream: tlsStream{Conn: conn, raw: raw}, prefix: first[:1]}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h(ctx, st, Peer{Addr: raw.RemoteAddr(), SecretIndex: idx})
}

// authenticate runs the TLS handshake and checks the client's proof. When
// the peer is not a client with the secret, read holds the bytes it sent
// after the handshake (not nil, maybe empty), for the web site.
func (s *TCPServer) authenticate(conn *tls.Conn) (idx int, read []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.AuthTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		return -1, nil, fmt.Errorf("TLS handshake: %w", err)
	}
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	defer conn.SetDeadline(time.Time{})
	ekm, err := auth.Exporter(conn.ConnectionState())
	if err != nil {
		return -1, nil, err
	}
	// A client's proof starts with a byte no HTTP request starts with.
	var buf [proto.AuthRequestSize]byte
	n, err := io.ReadFull(conn, buf[:1])
	if err == nil && buf[0] == proto.Version {
		var m int
		m, err = io.ReadFull(conn, buf[1:])
		n += m
	}
	read = slices.Clone(buf[:n])
	if err != nil {
		return -1, read, fmt.Errorf("read client's proof: %w", err)
	}
	if buf[0] != proto.Version {
		return -1, read, errNotFramed
	}
	req, err := proto.ParseAuthRequest(buf[:])
	if err != nil {
		return -1, read, err
	}
	i, err := auth.Verify(req, s.cfg.Secrets, ekm)
	if err != nil {
		return -1, read, err
	}
	resp := proto.AuthResponse{Status: proto.AuthOK, Proof: auth.ServerProof(s.cfg.Secrets[i], ekm)}
	if _, err := conn.Write(proto.AppendAuthResponse(nil, resp)); err != nil {
		return -1, nil, fmt.Errorf("send proof: %w", err)
	}
	return i, nil, nil
}

// Stats implements Server. TCP mode lists no connections: each carries
// one stream, and the kernel does not share its loss counts.
func (s *TCPServer) Stats(int) ServerStats { return s.counts.stats(s.limits) }

// Drain implements Server.
func (s *TCPServer) Drain(ctx context.Context) error {
	_ = s.ln.Close()
	if s.web != nil {
		s.web.close()
	}
	s.mu.Lock()
	s.draining = true
	for c, started := range s.live {
		if !started {
			_ = c.Close() // idle spares and handshakes in progress
		}
	}
	s.mu.Unlock()
	s.conns.close()
	if !s.conns.wait(ctx) {
		s.mu.Lock()
		for c := range s.live {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.conns.wait(context.Background())
	}
	return nil
}

// prefixedTLSStream returns prefix before reading from the connection.
type prefixedTLSStream struct {
	tlsStream
	prefix []byte
}

func (s *prefixedTLSStream) Read(p []byte) (int, error) {
	if len(s.prefix) > 0 {
		n := copy(p, s.prefix)
		s.prefix = s.prefix[n:]
		return n, nil
	}
	return s.tlsStream.Read(p)
}
