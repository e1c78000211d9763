package transport

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// QUIC tuning shared by both ends. One place, so that what the tunnel does
// on the wire can be read in one screen.
const (
	// quicIdleTimeout closes a connection that hears nothing for this long.
	quicIdleTimeout = 30 * time.Second
	// quicKeepAlive is below the 30 s after which many NATs forget a UDP
	// mapping, and frequent enough to notice a dead path.
	quicKeepAlive = 10 * time.Second
	// quicMaxStreams bounds concurrent tunneled connections per client
	// connection (quic-go's default of 100 is too few for a busy client).
	quicMaxStreams = 1024
	// Flow-control windows. Per stream 16 MiB covers 1 Gbit/s at 125 ms RTT;
	// per connection 32 MiB bounds what one client can make the server
	// buffer.
	quicMaxStreamWindow = 16 << 20
	quicMaxConnWindow   = 32 << 20
)

// Congestion names the congestion controller for the data a side sends.
// In QUIC mode it picks quic-go's controller; in TCP mode it asks the kernel
// for the matching TCP congestion control on the tunnel's connections.
type Congestion string

// Congestion controllers.
const (
	// CongestionBBR paces at the measured bottleneck bandwidth and does not
	// take random loss for congestion: on long, lossy links it keeps the
	// pipe full where Reno collapses (docs/performance.md). The default.
	// In TCP mode the kernel's BBR, where it has it (Linux 4.9+); the
	// kernel's default otherwise.
	CongestionBBR Congestion = "bbr"
	// CongestionReno is quic-go's stock NewReno; in TCP mode, the kernel's
	// default congestion control (cubic on Linux).
	CongestionReno Congestion = "reno"
)

// ParseCongestion checks a controller name; empty means the default.
func ParseCongestion(s string) (Congestion, error) {
	switch Congestion(s) {
	case "", CongestionBBR:
		return CongestionBBR, nil
	case CongestionReno:
		return CongestionReno, nil
	}
	return "", fmt.Errorf("congestion control %q: want bbr or reno", s)
}

// tcp returns the kernel TCP congestion control to ask for, "" for the
// kernel's default.
func (c Congestion) tcp() string {
	if c == CongestionReno {
		return ""
	}
	return "bbr"
}

func (c Congestion) quic() quic.CongestionControl {
	if c == CongestionReno {
		return quic.CongestionControlReno
	}
	return quic.CongestionControlBBR
}

func quicConfig(server bool) *quic.Config {
	c := &quic.Config{
		HandshakeIdleTimeout:           5 * time.Second,
		MaxIdleTimeout:                 quicIdleTimeout,
		InitialStreamReceiveWindow:     4 << 20,
		InitialConnectionReceiveWindow: 8 << 20,
		MaxStreamReceiveWindow:         quicMaxStreamWindow,
		MaxConnectionReceiveWindow:     quicMaxConnWindow,
		// What HTTP/3 peers open (a control stream and two QPACK streams):
		// a QTunnel connection is one to the eye, and a server that shows a
		// web site needs them. A QTunnel client reads none of them.
		MaxIncomingUniStreams: 3,
		CongestionControl:     quic.CongestionControlBBR,
	}
	if server {
		c.MaxIncomingStreams = quicMaxStreams
	} else {
		c.MaxIncomingStreams = -1 // the server never opens streams
		c.KeepAlivePeriod = quicKeepAlive
	}
	return c
}

// wantUDPBuffer is the socket buffer size quic-go asks for (7 MiB).
const wantUDPBuffer = 7 << 20

// listenUDP opens a UDP socket and raises its buffers so QUIC is not
// throttled by the kernel's small defaults. It warns, once per socket and in
// words a user can act on, when the OS caps them.
func listenUDP(addr string, log *slog.Logger) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", addr, err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	rcv, snd := raiseUDPBuffers(c, wantUDPBuffer)
	if rcv < wantUDPBuffer || snd < wantUDPBuffer {
		log.Warn("UDP socket buffers are smaller than QUIC needs; throughput may suffer",
			"receive_kib", rcv>>10, "send_kib", snd>>10, "want_kib", wantUDPBuffer>>10,
			"fix", udpBufferHint)
	} else {
		log.Debug("UDP socket buffers", "receive_kib", rcv>>10, "send_kib", snd>>10)
	}
	return c, nil
}

// statelessResetKey derives a key from the server's private key, so that a
// restarted server (same key) can tell clients at once that their old
// connection is gone (RFC 9000 section 10.3), instead of leaving them to
// time out.
func statelessResetKey(c tls.Certificate) (*quic.StatelessResetKey, *quic.TokenGeneratorKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("encode private key: %w", err)
	}
	reset, err := hkdf.Key(sha256.New, der, nil, "qtunnel quic stateless reset v1", 32)
	if err != nil {
		return nil, nil, err
	}
	token, err := hkdf.Key(sha256.New, der, nil, "qtunnel quic token v1", 32)
	if err != nil {
		return nil, nil, err
	}
	var rk quic.StatelessResetKey
	var tk quic.TokenGeneratorKey
	copy(rk[:], reset)
	copy(tk[:], token)
	return &rk, &tk, nil
}
