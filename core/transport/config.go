package transport

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/qtunnel/qtunnel/core/secret"
)

// DialerConfig configures a client's Dialer. Zero values mean the defaults
// documented on each field.
type DialerConfig struct {
	// Server is the server's host:port (IPv4, IPv6 in brackets, or a name,
	// resolved again at every connection attempt).
	Server string
	// TLS is the client's TLS configuration (see ClientTLSConfig).
	TLS *tls.Config
	// Secret is the shared secret; required.
	Secret secret.Secret
	// CertVerified says that TLS verifies the server's certificate (a pin
	// or a CA), so that only the real server can read what the client
	// sends. A QUIC client then sends its first streams right behind its
	// proof of the secret instead of waiting a round trip for the server's
	// proof, which it still checks: a server that fails it is disconnected.
	// Without it, nothing is sent before the server has proved the secret.
	CertVerified bool
	// SessionFile (QUIC only) keeps TLS session tickets across restarts, so
	// that a restarted client resumes its session and sends its first
	// streams in 0-RTT (file mode 0600; it holds resumption secrets). Empty
	// keeps tickets in memory: reconnections still use 0-RTT.
	SessionFile string
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// ConnectWait bounds how long Open waits for a connection while the
	// server is unreachable. Default 5 s.
	ConnectWait time.Duration
	// HandshakeTimeout bounds one connection attempt: TCP or QUIC, TLS and
	// the secret proofs. Default 5 s.
	HandshakeTimeout time.Duration
	// Backoff spaces attempts after failures. Default 100 ms to 1 s: a
	// restarted server is found again within about a second.
	Backoff Backoff
	// IdleTimeout (QUIC only) closes a connection that hears nothing from
	// the server for this long; the connection uses the smaller of this and
	// the server's. Default 30 s.
	IdleTimeout time.Duration
	// KeepAlive (QUIC only) is how often an idle connection pings, to keep
	// NAT mappings and notice a dead path. Default 10 s, below the 30 s
	// after which many NATs forget a UDP mapping.
	KeepAlive time.Duration
	// Congestion is the controller for what the client sends (in TCP mode,
	// the kernel's, asked for per connection). Default CongestionBBR.
	Congestion Congestion
	// NoTCPFallback (QUIC only) turns off carrying streams over TLS/TCP to
	// the same port number when QUIC cannot get through (FallbackDialer).
	NoTCPFallback bool
	// NoNetworkWatch (QUIC only) turns off following the system's network:
	// by default, when an address or link changes, the connection moves to
	// a new path (Migrate).
	NoNetworkWatch bool
	// PoolSize (TCP only) is how many authenticated TLS connections are kept
	// ready so that a new stream does not wait for TCP, TLS and the proofs.
	// Default 4.
	PoolSize int
	// PoolMaxAge (TCP only) retires a pooled connection that has waited this
	// long, before the server's idle limit can cut it. Default 2 min.
	PoolMaxAge time.Duration
}

func (c *DialerConfig) withDefaults() (DialerConfig, error) {
	d := *c
	if d.Server == "" {
		return d, errors.New("no server address")
	}
	if d.TLS == nil {
		return d, errors.New("no TLS configuration")
	}
	if d.Secret.IsZero() {
		return d, secret.ErrNoSecret
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.ConnectWait <= 0 {
		d.ConnectWait = 5 * time.Second
	}
	if d.HandshakeTimeout <= 0 {
		d.HandshakeTimeout = 5 * time.Second
	}
	if d.Backoff.Min <= 0 {
		d.Backoff.Min = 100 * time.Millisecond
	}
	if d.Backoff.Max <= 0 {
		d.Backoff.Max = time.Second
	}
	var err error
	if d.Congestion, err = ParseCongestion(string(d.Congestion)); err != nil {
		return d, err
	}
	if d.IdleTimeout <= 0 {
		d.IdleTimeout = quicIdleTimeout
	}
	if d.KeepAlive <= 0 {
		d.KeepAlive = quicKeepAlive
	}
	if d.PoolSize <= 0 {
		d.PoolSize = 4
	}
	if d.PoolMaxAge <= 0 {
		d.PoolMaxAge = 2 * time.Minute
	}
	return d, nil
}

// ServerConfig configures a Server. Zero values mean the defaults
// documented on each field.
type ServerConfig struct {
	// Listen is the address to listen on (":443", "[::1]:443", "host:443").
	Listen string
	// Certificate is the server's TLS certificate; required.
	Certificate tls.Certificate
	// Secrets are the accepted shared secrets (several during a rotation);
	// at least one is required.
	Secrets []secret.Secret
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// AuthTimeout bounds the TLS handshake plus the client's proof. Default 10 s.
	AuthTimeout time.Duration
	// IdleTimeout (TCP only) closes an authenticated connection on which no
	// stream starts within this time (a client's pooled spare). Default 5 min.
	IdleTimeout time.Duration
	// Congestion is the controller for what the server sends (in TCP mode,
	// the kernel's, asked for per connection). Default CongestionBBR.
	Congestion Congestion
	// MaxPeers bounds concurrent connections: QUIC connections, or TLS/TCP
	// connections (one per stream). Default 1024 for QUIC, 8192 for TCP.
	MaxPeers int
	// MaxPending bounds the connections not (yet) authenticated: those in
	// their handshake and web visitors. Default MaxPeers/4, so that peers
	// without the secret can never take every slot from clients.
	MaxPending int
	// MaxStreams (QUIC only) bounds the streams a client may have open at
	// once on its connection. Default 1024.
	MaxStreams int
	// Sources limits what one source address may do. The limiter is
	// shared with the TLS/TCP fallback of a QUIC server through Limiter.
	Sources SourceLimits
	// Web answers peers that do not prove the secret, as a web server
	// would (package masquerade builds one): HTTP/3 on QUIC, HTTPS on
	// TLS/TCP. Nil: they are disconnected, and a client with a wrong secret
	// is told so.
	Web http.Handler

	// limiter is Sources in effect, shared by servers on one port.
	limiter *sourceLimiter
}

func (c *ServerConfig) withDefaults(defaultMaxPeers int) (ServerConfig, error) {
	s := *c
	if s.Listen == "" {
		return s, errors.New("no listen address")
	}
	if len(s.Certificate.Certificate) == 0 {
		return s, errors.New("no certificate")
	}
	if len(s.Secrets) == 0 {
		return s, secret.ErrNoSecret
	}
	for _, sec := range s.Secrets {
		if sec.IsZero() {
			return s, errors.New("an empty secret is configured")
		}
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.AuthTimeout <= 0 {
		s.AuthTimeout = 10 * time.Second
	}
	if s.IdleTimeout <= 0 {
		s.IdleTimeout = 5 * time.Minute
	}
	var err error
	if s.Congestion, err = ParseCongestion(string(s.Congestion)); err != nil {
		return s, err
	}
	if s.MaxPeers <= 0 {
		s.MaxPeers = defaultMaxPeers
	}
	if s.MaxPending <= 0 {
		s.MaxPending = max(s.MaxPeers/4, 1)
	}
	if s.MaxStreams <= 0 {
		s.MaxStreams = quicMaxStreams
	}
	if s.limiter == nil {
		s.limiter = newSourceLimiter(s.Sources)
	}
	return s, nil
}

// WithSharedLimiter returns c with a source limiter of its own that every
// server made from the result shares: a QUIC server and its TLS/TCP
// fallback on the same port hold a source to one budget.
func (c ServerConfig) WithSharedLimiter() ServerConfig {
	c.limiter = newSourceLimiter(c.Sources)
	return c
}
