// Package transport carries tunneled streams between a QTunnel client and
// server, over QUIC (every stream one QUIC stream of one long-lived
// connection) or over TLS 1.3 on TCP (every stream its own TLS connection,
// taken from a pool of ready ones). It owns everything below a stream:
// sockets and their buffers, TLS configuration and trust, the secret-bound
// authentication of every session, reconnecting with backoff, and draining.
//
// Clients implement Dialer, servers implement Server; both hand out Stream
// values that package relay can copy.
package transport
