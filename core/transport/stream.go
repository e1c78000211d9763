package transport

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/core/relay"
)

// Stream is one tunneled, authenticated byte stream.
type Stream interface {
	relay.Conn
	relay.Aborter
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// Peer describes the authenticated remote end of a stream.
type Peer struct {
	Addr net.Addr
	// SecretIndex is which of the server's secrets the peer proved.
	SecretIndex int
}

// Dialer opens streams to one server (client side).
type Dialer interface {
	// Run keeps connections to the server ready until ctx is done, then
	// closes them. Streams still open when it returns are cut.
	Run(ctx context.Context) error
	// Open returns a new stream. If no connection is up, it waits a
	// bounded time for one; it fails at once if the last attempt showed a
	// configuration problem (wrong secret, certificate mismatch).
	Open(ctx context.Context) (Stream, error)
	// Status reports the connection state.
	Status() Status
	// Changed returns a channel closed at the next change of state or
	// last error, so that a front end can follow without polling.
	Changed() <-chan struct{}
}

// Handler serves one stream from an authenticated peer. It owns the stream.
type Handler func(ctx context.Context, s Stream, p Peer)

// Server accepts and authenticates peers and hands their streams to a
// Handler (server side).
type Server interface {
	// Addr is the address the server listens on.
	Addr() net.Addr
	// Serve accepts until ctx is done, calling h for every stream in its own
	// goroutine. It returns nil once ctx is done and no new peer or stream
	// is accepted any more; streams already handed out go on.
	Serve(ctx context.Context, h Handler) error
	// Drain waits for the streams handed out to finish, until ctx is done;
	// then it cuts what is left, closes every connection and the socket, and
	// returns once every goroutine it started has returned.
	Drain(ctx context.Context) error
	// Stats reads the peer counters, listing at most maxConns connections.
	Stats(maxConns int) ServerStats
}

// quicStream adapts a QUIC stream.
type quicStream struct{ *quic.Stream }

func (s quicStream) CloseWrite() error { return s.Stream.Close() }

func (s quicStream) Close() error {
	// After a clean end both directions are finished and these are no-ops;
	// otherwise they tell the peer we are gone.
	s.Stream.CancelRead(quic.StreamErrorCode(proto.StreamCodeAborted))
	return s.Stream.Close()
}

func (s quicStream) Abort() {
	s.Stream.CancelRead(quic.StreamErrorCode(proto.StreamCodeAborted))
	s.Stream.CancelWrite(quic.StreamErrorCode(proto.StreamCodeAborted))
}

// tlsStream adapts a TLS connection carrying one stream.
type tlsStream struct {
	*tls.Conn
	raw net.Conn
}

func (s tlsStream) Abort() {
	if tc, ok := s.raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST, not FIN
	}
	_ = s.raw.Close()
}

// TCPConn adapts a plain TCP connection (a local or backend connection) to
// relay.Conn with reset-on-abort.
type TCPConn struct{ *net.TCPConn }

// Abort closes the connection with a TCP RST.
func (c TCPConn) Abort() {
	_ = c.SetLinger(0)
	_ = c.TCPConn.Close()
}
