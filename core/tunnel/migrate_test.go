package tunnel_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/core/tunnel"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

// peerPort is the port the server sees its one client connection from.
func peerPort(t *testing.T, s *tunnel.Server) int {
	t.Helper()
	conns := s.Stats().Peers.Conns
	if len(conns) != 1 {
		t.Fatalf("server lists %d connections, want 1", len(conns))
	}
	return conns[0].Peer.(*net.UDPAddr).Port
}

// TestMigrateMidTransfer: the client's connection moves to a new socket
// twice during a transfer; not a byte is lost or repeated, the server
// follows it to its new address, and it is still one connection.
func TestMigrateMidTransfer(t *testing.T) {
	backend := testutil.StartEchoBackend(t)
	p := startPair(t, tunnel.TransportQUIC, backend.Addr(), pairOptions{})
	c, err := testutil.DialTCP(p.client.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	done := make(chan error, 1)
	go func() { done <- testutil.PacedEcho(c, 24<<20, 128<<10, 10*time.Millisecond) }()

	for i := range 2 {
		time.Sleep(400 * time.Millisecond)
		m, err := p.client.Migrate(context.Background())
		if err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
		if m.From.String() == m.To.String() {
			t.Fatalf("migration %d stayed on %s", i+1, m.From)
		}
		to := m.To.(*net.UDPAddr).Port
		if !testutil.Eventually(5*time.Second, func() bool { return peerPort(t, p.server) == to }) {
			t.Fatalf("migration %d: the server still sees port %d, want %d", i+1, peerPort(t, p.server), to)
		}
		t.Logf("migration %d: %s -> %s in %v", i+1, m.From, m.To, m.Took)
	}
	select {
	case err := <-done:
		t.Fatalf("the transfer ended before both migrations were checked (err %v): make it longer", err)
	default:
	}
	if err := <-done; err != nil {
		t.Fatalf("transfer across migrations: %v", err)
	}
	st := p.client.Stats().Connection
	if st.Connects != 1 || st.Migrations < 2 {
		t.Errorf("client: %d connects, %d migrations; want 1 connection that moved", st.Connects, st.Migrations)
	}
	if ps := p.server.Stats().Peers; ps.Handshakes != 1 {
		t.Errorf("server: %d handshakes, want 1", ps.Handshakes)
	}
}

// TestNATRebinding: a NAT between client and server forgets its mapping
// mid-transfer, so the client's packets arrive from a new port; the server
// follows and the transfer completes intact on the same connection.
func TestNATRebinding(t *testing.T) {
	backend := testutil.StartEchoBackend(t)
	var nat *testutil.UDPDelayProxy
	p := startPair(t, tunnel.TransportQUIC, backend.Addr(), pairOptions{via: func(t *testing.T, server string) string {
		nat = testutil.StartUDPDelayProxy(t, server, time.Millisecond)
		return nat.Addr()
	}})
	c, err := testutil.DialTCP(p.client.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	done := make(chan error, 1)
	go func() { done <- testutil.PacedEcho(c, 16<<20, 128<<10, 10*time.Millisecond) }()
	time.Sleep(300 * time.Millisecond)
	before := peerPort(t, p.server)
	nat.Rebind()
	if !testutil.Eventually(5*time.Second, func() bool { return peerPort(t, p.server) != before }) {
		t.Fatalf("the server still sees port %d after the rebinding", before)
	}
	if err := <-done; err != nil {
		t.Fatalf("transfer across a NAT rebinding: %v", err)
	}
	if st := p.client.Stats().Connection; st.Connects != 1 {
		t.Errorf("client connected %d times; the connection should have survived", st.Connects)
	}
}

// TestTCPModeCannotMigrate: TCP mode says so rather than pretending.
func TestTCPModeCannotMigrate(t *testing.T) {
	backend := testutil.StartEchoBackend(t)
	p := startPair(t, tunnel.TransportTCP, backend.Addr(), pairOptions{})
	if _, err := p.client.Migrate(context.Background()); !errors.Is(err, tunnel.ErrCannotMigrate) {
		t.Errorf("Migrate in TCP mode: %v, want ErrCannotMigrate", err)
	}
}
