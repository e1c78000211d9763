package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/cert"
)

// State is where a Dialer stands with its server.
type State int32

// Dialer states.
const (
	StateStopped    State = iota // Run has not started or has returned
	StateConnecting              // no usable connection yet, trying
	StateConnected               // a connection is up and authenticated
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	}
	return "stopped"
}

// Status is a snapshot of a Dialer.
type Status struct {
	State State
	// Since is when State was entered.
	Since time.Time
	// LastError is the last connection failure, or nil.
	LastError error
	// Connects counts sessions established (QUIC connections, or pooled
	// TLS connections in TCP mode).
	Connects int64
	// RTT is the smoothed round-trip time of the current QUIC connection;
	// zero when unknown.
	RTT time.Duration
	// Migrations counts moves of a connection to a new path (QUIC only).
	Migrations int64
	// OverTCP: a QUIC client whose UDP does not get through carries its
	// streams over the TLS/TCP fallback (FallbackDialer).
	OverTCP bool
	// PacketsSent and PacketsLost count the current QUIC connection's
	// packets, and those declared lost (zero in TCP mode: the kernel keeps
	// that to itself).
	PacketsSent, PacketsLost uint64
	// PacketsReceived counts the current QUIC connection's packets from
	// the server (zero in TCP mode): a sign of life even when a stream's
	// data waits for a lost packet.
	PacketsReceived uint64
	// Server is the address new streams go to, for a client with several
	// servers (MultiDialer); "" otherwise or when none is healthy.
	Server string
	// Servers lists each server of a client with several, in the order
	// configured; nil for one.
	Servers []ServerStatus
	// Failovers counts moves of new streams away from a server that stopped
	// answering (MultiDialer).
	Failovers int64
}

// ServerStats counts a Server's peers.
type ServerStats struct {
	// Handshakes counts peers that proved the secret; AuthFailures those
	// that sent a wrong proof.
	Handshakes, AuthFailures int64
	// Active is the number of authenticated connections open now (in TCP
	// mode one per stream or pooled spare).
	Active int64
	// FallbackActive is the part of Active on the TLS/TCP fallback of a
	// QUIC server (clients whose UDP does not get through).
	FallbackActive int64
	// WebVisitors counts connections served the web site (peers without
	// the secret, or with a wrong one).
	WebVisitors int64
	// RefusedRate and RefusedBlocked count connections refused before any
	// handshake: over their source's rate, or from a source blocked after
	// wrong secrets. RefusedFull counts those refused because the server
	// held as many connections as its limits allow.
	RefusedRate, RefusedBlocked, RefusedFull int64
	// Conns lists open authenticated QUIC connections, oldest first, at
	// most the number asked for; empty in TCP mode.
	Conns []ConnInfo
}

// ConnInfo is one authenticated QUIC connection as the server sees it.
type ConnInfo struct {
	Peer                     net.Addr
	Since                    time.Time
	RTT                      time.Duration
	PacketsSent, PacketsLost uint64
}

// peerCounters are the counters both servers keep for ServerStats.
type peerCounters struct {
	handshakes, authFailures, active, webVisitors, refusedFull atomic.Int64
}

func (p *peerCounters) stats(l *sourceLimiter) ServerStats {
	rate, blocked := l.refusals()
	return ServerStats{Handshakes: p.handshakes.Load(), AuthFailures: p.authFailures.Load(), Active: p.active.Load(),
		WebVisitors: p.webVisitors.Load(), RefusedRate: rate, RefusedBlocked: blocked, RefusedFull: p.refusedFull.Load()}
}

// ErrNotConnected is returned by Open when no connection came up in time.
var ErrNotConnected = errors.New("not connected to the server")

// IsConfigError reports whether err shows a problem that retrying will not
// fix: the ends do not share the secret, or the server's certificate is not
// the expected one. Open fails at once on these instead of waiting.
func IsConfigError(err error) bool {
	if err == nil {
		return false
	}
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.Is(err, auth.ErrRejected) ||
		errors.Is(err, auth.ErrNoVerdict) ||
		errors.Is(err, auth.ErrServerProof) ||
		errors.Is(err, cert.ErrPinMismatch) ||
		errors.As(err, &unknownAuthority) ||
		errors.As(err, &hostname) ||
		errors.As(err, &invalid) ||
		errors.As(err, &verify) ||
		strings.Contains(err.Error(), "no application protocol")
}

// Backoff spaces reconnection attempts: exponential from Min to Max, each
// delay drawn uniformly from its upper half so that many clients of one
// restarted server do not return in lockstep.
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the wait before attempt number n (n >= 1 after failures).
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1) // #nosec G404 -- back-off jitter, not a secret
}

// broadcast is a state cell whose waiters learn of every change.
type broadcast struct {
	mu      sync.Mutex
	changed chan struct{}
}

// wait returns a channel closed at the next change.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.changed
}

// notify wakes every waiter.
func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// Describe says what a connection failure means, in words a user can act
// on; "" for nil.
func Describe(err error) string {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
		dnsErr           *net.DNSError
		netErr           net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, auth.ErrRejected):
		return "the server refused our secret: the two ends do not have the same secret"
	case errors.Is(err, auth.ErrNoVerdict):
		return "the server did not accept our secret (it answered like a web site): the two ends do not have the same secret, or this is not a QTunnel server"
	case errors.Is(err, auth.ErrServerProof):
		return "the server could not prove it knows the secret: a different secret, or someone in the middle"
	case errors.Is(err, cert.ErrPinMismatch):
		return "the server's certificate does not match the pin: a different server, or someone in the middle"
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return "the server's certificate could not be verified: " + err.Error()
	case strings.Contains(err.Error(), "no application protocol"):
		return "the server does not speak QTunnel: a wrong port, or the two ends use different transports (-quic)"
	case errors.As(err, &dnsErr):
		return "cannot find the server's address: " + dnsErr.Error()
	case errors.Is(err, ErrSilent):
		return "the server stopped answering (no heartbeat for longer than failover-after)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the server refused the connection: nothing listens on that port"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to the server: is the network up?"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "no answer from the server: is it running, and is its port open (UDP for QUIC)?"
	}
	return "cannot connect to the server: " + err.Error()
}
