package tunnel_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/core/transport"
	"github.com/qtunnel/qtunnel/core/tunnel"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

// startQUICServer runs a QUIC server in front of backend until the test ends.
func startQUICServer(t *testing.T, backend string, log *logBuffer) *tunnel.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := tunnel.StartServer(ctx, tunnel.ServerConfig{
		Listen:      "127.0.0.1:0",
		Backend:     backend,
		Transport:   tunnel.TransportQUIC,
		Certificate: testCert(t),
		Secrets:     []secret.Secret{mustSecret(t, testSecret)},
		Logger:      log.logger(),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := srv.Wait(); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return srv
}

// TestFailover: a client with two QUIC servers, each behind a UDP proxy
// (the nearer one 2 ms away, the other 15 ms), sends its streams to the
// nearer one although it is listed second. When that one's path goes dead
// (the proxy drops everything, as a dead host would), new connections go
// to the other, and the connection that was in flight on the dead one
// fails instead of hanging.
func TestFailover(t *testing.T) {
	backend := testutil.StartEchoBackend(t)
	nearLog, farLog, clientLog := &logBuffer{}, &logBuffer{}, &logBuffer{}
	near := startQUICServer(t, backend.Addr(), nearLog)
	far := startQUICServer(t, backend.Addr(), farLog)
	nearProxy := testutil.StartUDPDelayProxy(t, near.Addr().String(), time.Millisecond)
	farProxy := testutil.StartUDPDelayProxy(t, far.Addr().String(), 15*time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	cli, err := tunnel.StartClient(ctx, tunnel.ClientConfig{
		Listen:    "127.0.0.1:0",
		Servers:   []tunnel.Endpoint{{Address: farProxy.Addr()}, {Address: nearProxy.Addr()}},
		Transport: tunnel.TransportQUIC,
		Secret:    mustSecret(t, testSecret),
		Logger:    clientLog.logger(),
		Dialer:    transport.DialerConfig{NoTCPFallback: true, NoNetworkWatch: true, ConnectWait: 3 * time.Second},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := cli.Wait(); err != nil {
			t.Errorf("client: %v", err)
		}
		if t.Failed() {
			t.Logf("client log:\n%s\nnear server log:\n%s\nfar server log:\n%s", clientLog, nearLog, farLog)
		}
	})

	// Both measured and healthy, the nearer one in use.
	settled := testutil.Eventually(10*time.Second, func() bool {
		st := cli.Stats().Connection
		if st.Server != nearProxy.Addr() || len(st.Servers) != 2 {
			return false
		}
		for _, s := range st.Servers {
			if !s.Healthy || s.RTT == 0 {
				return false
			}
		}
		return true
	})
	st := cli.Stats().Connection
	if !settled {
		t.Fatalf("not settled on the nearer server: %+v", st)
	}
	t.Logf("measured: %s %v, %s %v", st.Servers[0].Address, st.Servers[0].RTT, st.Servers[1].Address, st.Servers[1].RTT)
	if st.Servers[0].RTT <= st.Servers[1].RTT {
		t.Errorf("the far server (%v) measured no slower than the near one (%v)", st.Servers[0].RTT, st.Servers[1].RTT)
	}

	addr := cli.Addr().String()
	conn, err := testutil.DialTCP(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A round trip that leaves the connection open.
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, 4)); err != nil {
		t.Fatalf("echo before the failure: %v", err)
	}
	if n := near.Stats().ActiveStreams; n != 1 {
		t.Fatalf("near server relays %d streams, want the 1 in flight", n)
	}

	nearProxy.Block(true)
	dead := time.Now()
	// The connection in flight: a byte sent now never comes back; the
	// client cuts it once the server has been silent long enough.
	inflight := make(chan error, 1)
	go func() {
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Write([]byte("x")); err != nil {
			inflight <- err
			return
		}
		_, err := io.ReadFull(conn, make([]byte, 1))
		inflight <- err
	}()

	var took time.Duration
	for failed := 0; ; failed++ {
		c, err := testutil.DialTCP(addr)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
			err = testutil.EchoCheck(c, 4096, 2)
			c.Close()
		}
		if err == nil {
			took = time.Since(dead)
			t.Logf("first new connection through the other server %v after the failure (%d failed before)", took.Round(time.Millisecond), failed)
			break
		}
		if time.Since(dead) > 10*time.Second {
			t.Fatalf("no new connection got through 10 s after the failure: %v", err)
		}
	}
	if far.Stats().TotalStreams == 0 {
		t.Errorf("the far server carried no stream")
	}

	select {
	case err := <-inflight:
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("in-flight connection: err %v, want it cut", err)
		}
		t.Logf("in-flight connection ended %v after the failure: %v", time.Since(dead).Round(time.Millisecond), err)
	case <-time.After(15 * time.Second):
		t.Fatal("the in-flight connection still hangs 15 s after the failure")
	}
	st = cli.Stats().Connection
	if st.Failovers != 1 || st.Server != farProxy.Addr() {
		t.Errorf("after the failure: %d failovers, server %q; want 1, %s", st.Failovers, st.Server, farProxy.Addr())
	}

	// The near server's path comes back: it is measured again and, being
	// clearly faster, takes the new streams.
	nearProxy.Block(false)
	if !testutil.Eventually(15*time.Second, func() bool { return cli.Stats().Connection.Server == nearProxy.Addr() }) {
		t.Errorf("did not return to the nearer server: %+v", cli.Stats().Connection)
	}
}
