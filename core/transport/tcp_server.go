package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qtunnel/qtunnel/core/auth"
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
	counts  peerCounters

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
	return &TCPServer{cfg: c, ln: ln, tlsConf: ServerTLSConfig(c.Certificate), live: make(map[net.Conn]bool)}, nil
}

// Addr implements Server.
func (s *TCPServer) Addr() net.Addr { return s.ln.Addr() }

// Serve implements Server.
func (s *TCPServer) Serve(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() { _ = s.ln.Close() })
	defer stop()
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
		if s.peers.Add(1) > int64(s.cfg.MaxPeers) {
			s.peers.Add(-1)
			_ = raw.Close()
			s.cfg.Logger.Warn("connection refused: too many connections", "peer", raw.RemoteAddr().String(), "max", s.cfg.MaxPeers)
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
	log := s.cfg.Logger.With("peer", raw.RemoteAddr().String())
	conn := tls.Server(raw, s.tlsConf)
	idx, err := s.authenticate(conn)
	if err != nil {
		if errors.Is(err, auth.ErrBadProof) {
			s.counts.authFailures.Add(1)
			log.Warn("authentication failed: wrong secret, or proof relayed from another session")
		} else {
			log.Debug("handshake failed", "err", err)
		}
		_ = raw.Close()
		return
	}
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

func (s *TCPServer) authenticate(conn *tls.Conn) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.AuthTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		return -1, fmt.Errorf("TLS handshake: %w", err)
	}
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	defer conn.SetDeadline(time.Time{})
	ekm, err := auth.Exporter(conn.ConnectionState())
	if err != nil {
		return -1, err
	}
	return auth.Server(conn, s.cfg.Secrets, ekm)
}

// Stats implements Server. TCP mode lists no connections: each carries
// one stream, and the kernel does not share its loss counts.
func (s *TCPServer) Stats(int) ServerStats { return s.counts.stats() }

// Drain implements Server.
func (s *TCPServer) Drain(ctx context.Context) error {
	_ = s.ln.Close()
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
