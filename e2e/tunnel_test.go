package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

var modes = []bool{true, false}

// TestConcurrentEcho is the core claim: 100 concurrent connections, each
// echoing 1 MiB through the tunnel, arrive intact.
func TestConcurrentEcho(t *testing.T) {
	for _, q := range modes {
		t.Run(modeName(q), func(t *testing.T) {
			backend := testutil.StartEchoBackend(t)
			s := startTunnel(t, q, backend.Addr())
			start := time.Now()
			if err := testutil.ConcurrentEcho(s.clientAddr, 100, 1<<20); err != nil {
				t.Fatal(err)
			}
			t.Logf("100 x 1 MiB echoed in %v", time.Since(start).Round(time.Millisecond))
			if n := backend.Accepted.Load(); n != 100 {
				t.Errorf("backend saw %d connections, want 100", n)
			}
			if q {
				// One QUIC connection carried every stream.
				if n := strings.Count(s.server.stderr.String(), `msg="client authenticated"`); n != 1 {
					t.Errorf("server authenticated %d QUIC connections, want 1", n)
				}
			}
			if code := s.client.stop(15 * time.Second); code != 0 {
				t.Errorf("client exit code %d after SIGTERM, want 0", code)
			}
			if code := s.server.stop(15 * time.Second); code != 0 {
				t.Errorf("server exit code %d after SIGTERM, want 0", code)
			}
		})
	}
}

func TestHalfClose(t *testing.T) {
	for _, q := range modes {
		t.Run(modeName(q), func(t *testing.T) {
			afterFIN := make(chan string, 1)
			backend := testutil.StartBackend(t, func(c *net.TCPConn) {
				req, _ := io.ReadAll(c) // up to the client's FIN
				_, _ = c.Write([]byte("reply to " + string(req)))
				_ = c.CloseWrite()
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				rest, _ := io.ReadAll(c)
				afterFIN <- string(rest)
			})
			s := startTunnel(t, q, backend.Addr())
			c, err := testutil.DialTCP(s.clientAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil { // client -> backend FIN
				t.Fatal(err)
			}
			reply, err := io.ReadAll(c) // ends at backend -> client FIN
			if err != nil || string(reply) != "reply to ping" {
				t.Fatalf("reply %q, %v; want %q then EOF", reply, err, "reply to ping")
			}
			s.client.waitLog(`level=DEBUG msg="connection closed".* up=4 down=13`, 5*time.Second)
			s.server.waitLog(`level=DEBUG msg="connection closed".* up=4 down=13`, 5*time.Second)
			select {
			case rest := <-afterFIN:
				if rest != "" {
					t.Fatalf("backend read %q after the client's FIN", rest)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("backend never saw the end of the stream")
			}
		})
	}
}

func TestWrongSecretCarriesNothing(t *testing.T) {
	for _, q := range modes {
		t.Run(modeName(q), func(t *testing.T) {
			backend := testutil.StartEchoBackend(t)
			srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			cliAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			server := start(t, "server", nil, "-listen="+srvAddr, "-backend="+backend.Addr(),
				"-secret-file="+secretFile(t, strongSecret), modeFlag(q), "-state-dir="+t.TempDir())
			server.waitLog(`msg="server started"`, 20*time.Second)
			client := start(t, "client", []string{"QTUNNEL_SECRET=not-the-right-secret-but-long-enough-to-be-strong-9"},
				"-listen="+cliAddr, "-backend="+srvAddr, "-clientmode=true", modeFlag(q))
			client.waitLog(`did not accept our proof`, 20*time.Second)

			got := tryExchange(cliAddr, "must not reach the backend")
			if len(got) != 0 {
				t.Errorf("got %q back through a tunnel with the wrong secret", got)
			}
			if n := backend.Accepted.Load(); n != 0 {
				t.Errorf("backend accepted %d connections", n)
			}
			server.waitLog(`authentication failed`, 5*time.Second)
			for _, p := range []*proc{server, client} {
				if strings.Contains(p.stderr.String(), strongSecret) || strings.Contains(p.stderr.String(), "not-the-right-secret") {
					t.Errorf("%s logged a secret", p.name)
				}
			}
		})
	}
}

func TestBackendDown(t *testing.T) {
	for _, q := range modes {
		t.Run(modeName(q), func(t *testing.T) {
			s := startTunnel(t, q, testutil.ClosedPort(t))
			start := time.Now()
			var got []byte
			c, err := testutil.DialTCP(s.clientAddr)
			switch {
			case errors.Is(err, syscall.ECONNRESET):
				// The reset arrived before connect returned: same outcome, sooner.
			case err != nil:
				t.Fatal(err)
			default:
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				got, err = io.ReadAll(c)
			}
			elapsed := time.Since(start)
			if len(got) != 0 || err == nil {
				t.Errorf("read %q, %v; want nothing and a reset", got, err)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the local connection was not closed")
			}
			if elapsed > 2*time.Second {
				t.Errorf("closed after %v, want at once", elapsed)
			}
			s.server.waitLog(`backend connection failed.*connection refused`, 5*time.Second)
			s.client.waitLog(`server could not connect it.*connection refused`, 5*time.Second)
		})
	}
}

// tryExchange connects to addr, sends msg and returns whatever comes back
// before the connection closes. A refusing client may reset the connection
// so fast that even connect fails: that counts as nothing back.
func tryExchange(addr, msg string) []byte {
	c, err := testutil.DialTCP(addr)
	if err != nil {
		return nil
	}
	defer c.Close()
	_, _ = c.Write([]byte(msg))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.ReadAll(c)
	return got
}

// echoOnce sends a short message through addr and checks the echo.
func echoOnce(addr string) error {
	c, err := testutil.DialTCP(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	return testutil.EchoCheck(c, 1024, 7)
}

// TestServerRestart kills the server under a running client and starts it
// again: new connections must work within 2 s of its return.
func TestServerRestart(t *testing.T) {
	for _, q := range modes {
		t.Run(modeName(q), func(t *testing.T) {
			backend := testutil.StartEchoBackend(t)
			s := startTunnel(t, q, backend.Addr())
			if err := echoOnce(s.clientAddr); err != nil {
				t.Fatalf("before restart: %v", err)
			}
			_ = s.server.cmd.Process.Kill() // a crash, not a clean stop
			s.server.wait(5 * time.Second)
			// While the server is down, a local connection waits a bounded
			// time and then closes.
			if err := echoOnce(s.clientAddr); err == nil {
				t.Fatal("a connection worked while the server was down")
			}
			s.startServer(t, backend.Addr())
			back := time.Now()
			failed := 0
			for {
				err := echoOnce(s.clientAddr)
				if err == nil {
					break
				}
				failed++
				if time.Since(back) > 2*time.Second {
					t.Fatalf("no working connection 2 s after the server's return (%d failed; last: %v)", failed, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("first working connection %v after the server's return; %d local connections failed before it",
				time.Since(back).Round(time.Millisecond), failed)
			if err := testutil.ConcurrentEcho(s.clientAddr, 10, 64<<10); err != nil {
				t.Fatalf("after restart: %v", err)
			}
		})
	}
}

// mitm terminates the client's TLS with its own certificate and relays
// everything to the real server over a second TLS session, as an attacker
// on the path would. It counts what the client sent it.
type mitm struct {
	addr        string
	streams     atomic.Int64 // streams (QUIC) or connections (TCP) the client opened
	clientBytes atomic.Int64 // bytes the client sent, all streams
	afterFirst  atomic.Int64 // QUIC: bytes the client sent beyond each connection's first stream
	wg          sync.WaitGroup
}

// mitmTLSConfig and upstreamTLS speak QTunnel's application protocols:
// HTTP/3's on QUIC, HTTPS's on TLS/TCP.
func mitmTLSConfig(t *testing.T, alpn ...string) *tls.Config {
	c := testutil.Certificate(t, "127.0.0.1")
	return &tls.Config{Certificates: []tls.Certificate{c}, NextProtos: alpn, MinVersion: tls.VersionTLS13}
}

func upstreamTLS(alpn ...string) *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, NextProtos: alpn, MinVersion: tls.VersionTLS13}
}

// count copies src to dst, counting bytes into the mitm's tallies.
func (m *mitm) count(dst io.Writer, src io.Reader, first bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			m.clientBytes.Add(int64(n))
			if !first {
				m.afterFirst.Add(int64(n))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func startTCPMITM(t *testing.T, server string) *mitm {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", mitmTLSConfig(t, proto.ALPNTCP...))
	if err != nil {
		t.Fatal(err)
	}
	m := &mitm{addr: ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			m.streams.Add(1)
			up, err := tls.Dial("tcp", server, upstreamTLS(proto.ALPNTCP...))
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			m.wg.Add(2)
			go func() { defer m.wg.Done(); m.count(up, c, true); up.Close() }()
			go func() { defer m.wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		m.wg.Wait()
	})
	return m
}

func startQUICMITM(t *testing.T, server string) *mitm {
	ln, err := quic.ListenAddr("127.0.0.1:0", mitmTLSConfig(t, proto.ALPNQUIC), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &mitm{addr: ln.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			down, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			up, err := quic.DialAddr(ctx, server, upstreamTLS(proto.ALPNQUIC), nil)
			if err != nil {
				_ = down.CloseWithError(0, "")
				continue
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				defer up.CloseWithError(0, "")
				defer down.CloseWithError(0, "")
				for i := 0; ; i++ {
					ds, err := down.AcceptStream(ctx)
					if err != nil {
						return
					}
					m.streams.Add(1)
					first := i == 0 // the first stream of each connection
					us, err := up.OpenStreamSync(ctx)
					if err != nil {
						return
					}
					m.wg.Add(2)
					go func() { defer m.wg.Done(); m.count(us, ds, first); us.Close() }()
					go func() { defer m.wg.Done(); _, _ = io.Copy(ds, us); ds.Close() }()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		m.wg.Wait()
	})
	return m
}

// TestManInTheMiddleRefused puts an attacker who terminates TLS with its own
// certificate between a client that pins nothing and the server: the client
// must refuse it before sending any data, and the server must refuse the
// relayed proof and dial no backend.
func TestManInTheMiddleRefused(t *testing.T) {
	for _, q := range modes {
		t.Run(modeName(q), func(t *testing.T) {
			backend := testutil.StartEchoBackend(t)
			secretPath := secretFile(t, strongSecret)
			srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			server := start(t, "server", nil, "-listen="+srvAddr, "-backend="+backend.Addr(),
				"-secret-file="+secretPath, modeFlag(q), "-state-dir="+t.TempDir())
			server.waitLog(`msg="server started"`, 20*time.Second)
			var m *mitm
			if q {
				m = startQUICMITM(t, srvAddr)
			} else {
				m = startTCPMITM(t, srvAddr)
			}
			cliAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			client := start(t, "client", nil, "-listen="+cliAddr, "-backend="+m.addr, "-clientmode=true",
				"-secret-file="+secretPath, modeFlag(q))
			client.waitLog(`did not accept our proof|could not prove`, 20*time.Second)

			got := tryExchange(cliAddr, "secret application data")
			if len(got) != 0 {
				t.Errorf("client received %q through the man in the middle", got)
			}
			server.waitLog(`authentication failed`, 5*time.Second)
			if n := backend.Accepted.Load(); n != 0 {
				t.Errorf("backend accepted %d connections via the man in the middle", n)
			}
			if q {
				// Only the control stream, holding only the proof (version
				// byte and 32-byte HMAC); no stream of application data.
				if n := m.afterFirst.Load(); n != 0 {
					t.Errorf("client sent %d bytes on streams beyond its control stream", n)
				}
			} else if m.clientBytes.Load() > 33*m.streams.Load() {
				t.Errorf("client sent %d bytes over %d TLS connections; want only a 33-byte proof on each", m.clientBytes.Load(), m.streams.Load())
			}
			if strings.Contains(client.stderr.String(), "secret application data") {
				t.Error("application data in the client log")
			}
		})
	}
}

// TestSignalDrain stops the server with SIGTERM while a connection is open:
// the connection keeps working during the drain and the server exits 0
// once it closes.
func TestSignalDrain(t *testing.T) {
	for _, q := range modes {
		t.Run(modeName(q), func(t *testing.T) {
			backend := testutil.StartEchoBackend(t)
			s := startTunnel(t, q, backend.Addr())
			c, err := testutil.DialTCP(s.clientAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(15 * time.Second))
			buf := make([]byte, 4)
			if _, err := c.Write([]byte("one.")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
			_ = s.server.cmd.Process.Signal(os.Interrupt)
			s.server.waitLog(`msg=draining`, 5*time.Second)
			if _, err := c.Write([]byte("two.")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "two." {
				t.Fatalf("during drain: %q, %v", buf, err)
			}
			c.Close()
			if code := s.server.wait(10 * time.Second); code != 0 {
				t.Errorf("server exit code %d, want 0", code)
			}
		})
	}
}

// TestServerDownBoundedWait: with no server at all, a local connection
// waits a bounded time (the client's connect wait, 5 s) and is then closed.
func TestServerDownBoundedWait(t *testing.T) {
	for _, q := range modes {
		t.Run(modeName(q), func(t *testing.T) {
			t.Parallel()
			cli := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			client := start(t, "client", nil, "-listen="+cli, fmt.Sprintf("-backend=127.0.0.1:%d", freePort(t)),
				"-clientmode=true", "-secret-file="+secretFile(t, strongSecret), modeFlag(q))
			client.waitLog(`cannot connect to server`, 20*time.Second)
			c, err := testutil.DialTCP(cli)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err = io.ReadAll(c)
			elapsed := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("local connection still open after 20 s")
			}
			if elapsed < 4*time.Second || elapsed > 8*time.Second {
				t.Errorf("local connection closed after %v; want after the 5 s connect wait", elapsed)
			}
			client.waitLog(`no tunnel to the server.*not connected to the server within 5s`, 5*time.Second)
		})
	}
}
