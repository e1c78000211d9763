package tunnel_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/core/transport"
	"github.com/qtunnel/qtunnel/core/tunnel"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

func TestMain(m *testing.M) {
	// Every test stops what it starts; anything left running is a leak.
	goleak.VerifyTestMain(m)
}

var transports = []tunnel.Transport{tunnel.TransportQUIC, tunnel.TransportTCP}

func testCert(t testing.TB) tls.Certificate { return testutil.Certificate(t, "localhost") }

func mustSecret(t testing.TB, s string) secret.Secret {
	t.Helper()
	sec, err := secret.New([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct{ testutil.SyncBuffer }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type pair struct {
	server     *tunnel.Server
	client     *tunnel.Client
	serverLog  *logBuffer
	clientLog  *logBuffer
	stopServer context.CancelFunc
	stopClient context.CancelFunc
}

type pairOptions struct {
	clientSecret string
	drain        time.Duration
	pin          bool // the client pins the server's certificate
	masquerade   string
	// via, if set, gives the address the client dials for the server's
	// (a proxy in front of it).
	via func(t *testing.T, serverAddr string) string
}

const testSecret = "correct horse battery staple, but much longer 1234567890"

// startPair runs a server in front of backend and a client in front of it.
func startPair(t *testing.T, tr tunnel.Transport, backend string, o pairOptions) *pair {
	t.Helper()
	if o.clientSecret == "" {
		o.clientSecret = testSecret
	}
	p := &pair{serverLog: &logBuffer{}, clientLog: &logBuffer{}}
	serverCert := testCert(t)
	var trust transport.Trust
	if o.pin {
		fp, err := cert.LeafFingerprint(serverCert)
		if err != nil {
			t.Fatal(err)
		}
		trust.Pin = &fp
	}
	sctx, scancel := context.WithCancel(context.Background())
	srv, err := tunnel.StartServer(sctx, tunnel.ServerConfig{
		Listen:       "127.0.0.1:0",
		Backend:      backend,
		Transport:    tr,
		Certificate:  serverCert,
		Secrets:      []secret.Secret{mustSecret(t, testSecret)},
		Logger:       p.serverLog.logger(),
		DrainTimeout: o.drain,
		Masquerade:   o.masquerade,
	})
	if err != nil {
		scancel()
		t.Fatal(err)
	}
	serverAddr := srv.Addr().String()
	if o.via != nil {
		serverAddr = o.via(t, serverAddr)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	cli, err := tunnel.StartClient(cctx, tunnel.ClientConfig{
		Listen:       "127.0.0.1:0",
		Server:       serverAddr,
		Transport:    tr,
		Secret:       mustSecret(t, o.clientSecret),
		Trust:        trust,
		Logger:       p.clientLog.logger(),
		DrainTimeout: o.drain,
		Dialer:       transport.DialerConfig{ConnectWait: 2 * time.Second},
	})
	if err != nil {
		ccancel()
		scancel()
		srv.Wait()
		t.Fatal(err)
	}
	p.server, p.client, p.stopServer, p.stopClient = srv, cli, scancel, ccancel
	t.Cleanup(func() {
		ccancel()
		scancel()
		if err := cli.Wait(); err != nil {
			t.Errorf("client: %v", err)
		}
		if err := srv.Wait(); err != nil {
			t.Errorf("server: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s\nclient log:\n%s", p.serverLog, p.clientLog)
		}
	})
	return p
}

// pairCase is a transport, with or without a pinned server certificate.
type pairCase struct {
	name string
	tr   tunnel.Transport
	pin  bool
}

// pinnedOrNot lists each transport with and without a pinned server
// certificate: with a pin, a QUIC client sends its first streams without
// waiting for the server's proof (transport.DialerConfig.CertVerified).
func pinnedOrNot() []pairCase {
	var out []pairCase
	for _, tr := range transports {
		out = append(out, pairCase{string(tr), tr, false}, pairCase{string(tr) + "-pinned", tr, true})
	}
	return out
}

func TestConcurrentEcho(t *testing.T) {
	for _, tc := range pinnedOrNot() {
		tr := tc.tr
		t.Run(tc.name, func(t *testing.T) {
			backend := testutil.StartEchoBackend(t)
			p := startPair(t, tr, backend.Addr(), pairOptions{pin: tc.pin})
			if err := testutil.ConcurrentEcho(p.client.Addr().String(), 32, 256<<10); err != nil {
				t.Fatal(err)
			}
			st := p.client.Stats()
			if st.TotalStreams != 32 || st.BytesUp != 32*256<<10 || st.BytesDown != 32*256<<10 {
				t.Errorf("client stats = %+v, want 32 streams and %d bytes each way", st, 32*256<<10)
			}
			if ss := p.server.Stats(); ss.BytesUp != st.BytesUp || ss.BytesDown != st.BytesDown {
				t.Errorf("server moved %d/%d bytes, client %d/%d", ss.BytesUp, ss.BytesDown, st.BytesUp, st.BytesDown)
			}
			if tr == tunnel.TransportQUIC {
				if n := st.Connection.Connects; n != 1 {
					t.Errorf("QUIC connections made = %d, want 1 carrying every stream", n)
				}
			}
		})
	}
}

// TestHalfClose checks that an end of data travels each way on its own
// while the other direction keeps flowing.
func TestHalfClose(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Run("client closes first", func(t *testing.T) {
				// The backend reads to EOF, then answers and closes.
				backend := testutil.StartBackend(t, func(c *net.TCPConn) {
					got, _ := io.ReadAll(c)
					_, _ = c.Write([]byte("got " + string(got)))
					_ = c.CloseWrite()
				})
				p := startPair(t, tr, backend.Addr(), pairOptions{})
				c, err := testutil.DialTCP(p.client.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte("request")); err != nil {
					t.Fatal(err)
				}
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				reply, err := io.ReadAll(c)
				if err != nil {
					t.Fatal(err)
				}
				if string(reply) != "got request" {
					t.Fatalf("reply %q, want %q", reply, "got request")
				}
			})
			t.Run("backend closes first", func(t *testing.T) {
				// The backend greets and half-closes, then reads what the
				// client sends after that and reports it out of band.
				afterEOF := make(chan string, 1)
				backend := testutil.StartBackend(t, func(c *net.TCPConn) {
					_, _ = c.Write([]byte("hello"))
					_ = c.CloseWrite()
					got, _ := io.ReadAll(c)
					afterEOF <- string(got)
				})
				p := startPair(t, tr, backend.Addr(), pairOptions{})
				c, err := testutil.DialTCP(p.client.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				greeting, err := io.ReadAll(c) // ends at the backend's FIN
				if err != nil || string(greeting) != "hello" {
					t.Fatalf("greeting %q, %v", greeting, err)
				}
				if _, err := c.Write([]byte("still talking")); err != nil {
					t.Fatal(err)
				}
				_ = c.CloseWrite()
				select {
				case got := <-afterEOF:
					if got != "still talking" {
						t.Fatalf("backend got %q after its FIN", got)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("backend never got the data sent after its FIN")
				}
			})
		})
	}
}

// readClosed reads from c until it is closed and says how long it took and
// what arrived.
func readClosed(t *testing.T, c net.Conn) (time.Duration, []byte, error) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	b, err := io.ReadAll(c)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection not closed within 15 s")
	}
	return time.Since(start), b, err
}

// TestWrongSecretCarriesNothing: with the masquerade off the server says
// plainly that the secret is wrong; with it on (the default) it answers as
// a web site would, and the client says it was not accepted. Either way
// nothing reaches the backend.
func TestWrongSecretCarriesNothing(t *testing.T) {
	for _, web := range []string{"off", ""} {
		for _, tc := range pinnedOrNot() {
			name := tc.name + "/masquerade"
			if web != "" {
				name += "-" + web
			}
			t.Run(name, func(t *testing.T) { testWrongSecret(t, tc, web) })
		}
	}
}

func testWrongSecret(t *testing.T, tc pairCase, web string) {
	backend := testutil.StartEchoBackend(t)
	p := startPair(t, tc.tr, backend.Addr(), pairOptions{clientSecret: "a different secret that is also long enough 42", pin: tc.pin, masquerade: web})
	// The client may reset a connection so soon after accepting it
	// that connect itself fails: nothing carried either way.
	var elapsed time.Duration
	var got []byte
	if c, err := testutil.DialTCP(p.client.Addr().String()); err == nil {
		defer c.Close()
		_, _ = c.Write([]byte("should never arrive"))
		elapsed, got, _ = readClosed(t, c)
	}
	if len(got) != 0 {
		t.Errorf("received %q through a tunnel with the wrong secret", got)
	}
	// Wrong secret is a configuration error: no waiting for retries.
	// With the masquerade, the client waits for an answer that does not
	// come: the handshake timeout (5 s).
	limit := 3 * time.Second
	if web != "off" {
		limit = 8 * time.Second
	}
	if elapsed > limit {
		t.Errorf("local connection closed after %v, want promptly", elapsed)
	}
	if n := backend.Accepted.Load(); n != 0 {
		t.Errorf("backend accepted %d connections for a peer with the wrong secret", n)
	}
	// The server logs after its answer is on the way: wait a little.
	serverSays, clientSays := "authentication failed", "rejected our secret"
	if web != "off" {
		clientSays = "did not accept our proof"
	}
	if !testutil.Eventually(2*time.Second, func() bool { return strings.Contains(p.serverLog.String(), serverSays) }) {
		t.Errorf("server did not log the failed authentication:\n%s", p.serverLog)
	}
	if !testutil.Eventually(8*time.Second, func() bool { return strings.Contains(p.clientLog.String(), clientSays) }) {
		t.Errorf("client did not say the secret was not accepted:\n%s", p.clientLog)
	}
	if strings.Contains(p.serverLog.String()+p.clientLog.String(), testSecret) {
		t.Error("a secret appears in the logs")
	}
}

func TestBackendDown(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			p := startPair(t, tr, testutil.ClosedPort(t), pairOptions{})
			c, err := testutil.DialTCP(p.client.Addr().String())
			if errors.Is(err, syscall.ECONNRESET) {
				// With a warm pool the client learns of the failure and resets
				// the local connection before connect has even returned here:
				// the reset we want, only seen sooner.
				t.Logf("reset during connect: %v", err)
			} else if err != nil {
				t.Fatal(err)
			}
			var elapsed time.Duration
			var got []byte
			if c != nil {
				defer c.Close()
				elapsed, got, err = readClosed(t, c)
			}
			if len(got) != 0 {
				t.Errorf("got %q from a dead backend", got)
			}
			if err == nil {
				t.Error("local connection ended with a clean EOF; want a reset, so the application sees a failure")
			}
			if elapsed > 2*time.Second {
				t.Errorf("local connection closed after %v, want at once", elapsed)
			}
			if !strings.Contains(p.serverLog.String(), "backend connection failed") {
				t.Errorf("server log has no line about the backend:\n%s", p.serverLog)
			}
			// The client logs just after it resets the local connection.
			if !testutil.Eventually(2*time.Second, func() bool { return strings.Contains(p.clientLog.String(), "connection refused") }) {
				t.Errorf("client log does not say why:\n%s", p.clientLog)
			}
		})
	}
}

// TestDrain checks that stopping the server lets a stream in flight finish.
func TestDrain(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			backend := testutil.StartEchoBackend(t)
			p := startPair(t, tr, backend.Addr(), pairOptions{drain: 5 * time.Second})
			c, err := testutil.DialTCP(p.client.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 5)
			if _, err := c.Write([]byte("first")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
			p.stopServer()
			if !testutil.Eventually(5*time.Second, func() bool {
				_, err := net.DialTimeout("tcp", p.server.Addr().String(), time.Second)
				return err != nil || tr == tunnel.TransportQUIC
			}) {
				t.Fatal("server still accepts after stop")
			}
			if _, err := c.Write([]byte("again")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "again" {
				t.Fatalf("stream in flight broke during drain: %q, %v", buf, err)
			}
			c.Close()
			select {
			case <-p.server.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("server did not stop after its last stream closed")
			}
		})
	}
}

// TestQUICSurvivesIdle keeps the one QUIC connection through an idle period
// three times its idle timeout: keep-alives must hold it open.
func TestQUICSurvivesIdle(t *testing.T) {
	backend := testutil.StartEchoBackend(t)
	sctx, stopServer := context.WithCancel(context.Background())
	srv, err := tunnel.StartServer(sctx, tunnel.ServerConfig{
		Listen: "127.0.0.1:0", Backend: backend.Addr(), Transport: tunnel.TransportQUIC,
		Certificate: testCert(t), Secrets: []secret.Secret{mustSecret(t, testSecret)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stopServer(); srv.Wait() }()
	cctx, stop := context.WithCancel(context.Background())
	cli, err := tunnel.StartClient(cctx, tunnel.ClientConfig{
		Listen: "127.0.0.1:0", Server: srv.Addr().String(), Transport: tunnel.TransportQUIC,
		Secret: mustSecret(t, testSecret),
		Dialer: transport.DialerConfig{IdleTimeout: 600 * time.Millisecond, KeepAlive: 150 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stop(); cli.Wait() }()
	if err := testutil.ConcurrentEcho(cli.Addr().String(), 1, 1024); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * 600 * time.Millisecond) // idle on purpose: this is what is tested
	if err := testutil.ConcurrentEcho(cli.Addr().String(), 1, 1024); err != nil {
		t.Fatal(err)
	}
	if st := cli.Stats().Connection; st.Connects != 1 || st.State != transport.StateConnected {
		t.Fatalf("after idling: %d connections made, state %v; want the first one still up", st.Connects, st.State)
	}
}
