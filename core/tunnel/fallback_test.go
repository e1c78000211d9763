package tunnel_test

import (
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/core/transport"
	"github.com/qtunnel/qtunnel/core/tunnel"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

// TestUDPBlockedFallsBackToTCP: with UDP blocked between client and
// server, a QUIC client carries its connections over TLS/TCP to the same
// port number after FallbackAfter, and goes back to QUIC once UDP gets
// through again.
func TestUDPBlockedFallsBackToTCP(t *testing.T) {
	backend := testutil.StartEchoBackend(t)
	var firewall *testutil.UDPDelayProxy
	start := time.Now()
	p := startPair(t, tunnel.TransportQUIC, backend.Addr(), pairOptions{via: func(t *testing.T, server string) string {
		firewall = testutil.StartUDPDelayProxy(t, server, 0)
		firewall.ForwardTCP(t)
		firewall.Block(true)
		return firewall.Addr()
	}})

	echo := func() error {
		c, err := testutil.DialTCP(p.client.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		return testutil.EchoCheck(c, 256<<10, 1)
	}
	var err error
	if !testutil.Eventually(2*transport.FallbackAfter+4*time.Second, func() bool { err = echo(); return err == nil }) {
		t.Fatalf("no connection through the tunnel with UDP blocked: %v", err)
	}
	took := time.Since(start)
	t.Logf("first connection through the TLS/TCP fallback after %v", took.Round(time.Millisecond))
	if st := p.client.Stats().Connection; !st.OverTCP {
		t.Errorf("client status does not say it is on the fallback: %+v", st)
	}
	if ps := p.server.Stats().Peers; ps.FallbackActive < 1 || len(ps.Conns) != 0 {
		t.Errorf("server: %d fallback connections, %d QUIC ones; want the client on the fallback only", ps.FallbackActive, len(ps.Conns))
	}

	firewall.Block(false)
	if !testutil.Eventually(10*time.Second, func() bool {
		st := p.client.Stats().Connection
		return st.State == transport.StateConnected && !st.OverTCP
	}) {
		t.Fatalf("the client did not go back to QUIC after UDP was unblocked: %+v", p.client.Stats().Connection)
	}
	if err := echo(); err != nil {
		t.Fatalf("a connection after going back to QUIC: %v", err)
	}
	if ps := p.server.Stats().Peers; len(ps.Conns) != 1 {
		t.Errorf("server lists %d QUIC connections after the return; want 1", len(ps.Conns))
	}
}
