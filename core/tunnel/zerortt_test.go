package tunnel_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/core/transport"
	"github.com/qtunnel/qtunnel/core/tunnel"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

// zeroRTTRig runs QUIC servers behind a 30 ms (each way) UDP proxy, so that
// a handshake takes long enough for streams to start in 0-RTT, and clients
// that share one session file, as restarts of one client would.
type zeroRTTRig struct {
	t           *testing.T
	backend     *testutil.Backend
	serverCert  tls.Certificate
	serverAddr  string // where the server listens (the same across restarts)
	proxy       *testutil.UDPDelayProxy
	sessionFile string
	pin         bool
}

func newZeroRTTRig(t *testing.T, pin bool) *zeroRTTRig {
	return &zeroRTTRig{t: t, backend: testutil.StartEchoBackend(t), serverCert: testCert(t),
		sessionFile: filepath.Join(t.TempDir(), "sessions.json"), pin: pin}
}

// startServer starts a server (a new one: new TLS ticket keys, as after a
// restart) on the rig's address; the returned function stops it.
func (r *zeroRTTRig) startServer(log *logBuffer) func() {
	t := r.t
	listen := r.serverAddr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := tunnel.StartServer(ctx, tunnel.ServerConfig{
		Listen: listen, Backend: r.backend.Addr(), Transport: tunnel.TransportQUIC,
		Certificate: r.serverCert, Secrets: []secret.Secret{mustSecret(t, testSecret)}, Logger: log.logger(),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if r.serverAddr == "" {
		r.serverAddr = srv.Addr().String()
		r.proxy = testutil.StartUDPDelayProxy(t, r.serverAddr, 30*time.Millisecond)
	}
	return func() {
		cancel()
		if err := srv.Wait(); err != nil {
			t.Errorf("server: %v", err)
		}
	}
}

// startClient starts a client through the proxy; the returned function
// stops it.
func (r *zeroRTTRig) startClient(log *logBuffer) (*tunnel.Client, func()) {
	t := r.t
	var trust transport.Trust
	if r.pin {
		fp, err := cert.LeafFingerprint(r.serverCert)
		if err != nil {
			t.Fatal(err)
		}
		trust.Pin = &fp
	}
	ctx, cancel := context.WithCancel(context.Background())
	cli, err := tunnel.StartClient(ctx, tunnel.ClientConfig{
		Listen: "127.0.0.1:0", Server: r.proxy.Addr(), Transport: tunnel.TransportQUIC,
		Secret: mustSecret(t, testSecret), Trust: trust, Logger: log.logger(),
		Dialer: transport.DialerConfig{ConnectWait: 3 * time.Second, SessionFile: r.sessionFile},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return cli, func() {
		cancel()
		if err := cli.Wait(); err != nil {
			t.Errorf("client: %v", err)
		}
	}
}

// firstRun connects once, so that the server's ticket is saved.
func (r *zeroRTTRig) firstRun() {
	t := r.t
	log := &logBuffer{}
	cli, stop := r.startClient(log)
	defer stop()
	if err := echoThrough(cli.Addr().String(), 4096); err != nil {
		t.Fatalf("first run: %v\n%s", err, log)
	}
	if !testutil.Eventually(3*time.Second, func() bool {
		b, err := os.ReadFile(r.sessionFile)
		return err == nil && strings.Contains(string(b), `"ticket"`)
	}) {
		t.Fatalf("no session ticket saved in %s\n%s", r.sessionFile, log)
	}
	st, err := os.Stat(r.sessionFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v, want 0600 (it holds resumption secrets)", st.Mode().Perm())
	}
}

func echoThrough(addr string, size int) error {
	c, err := testutil.DialTCP(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return testutil.EchoCheck(c, size, 11)
}

// TestZeroRTTAfterRestart: a restarted client resumes with 0-RTT, its first
// connection works, and the server took the early proof.
func TestZeroRTTAfterRestart(t *testing.T) {
	for _, pin := range []bool{false, true} {
		t.Run(map[bool]string{false: "secret-bound", true: "pinned"}[pin], func(t *testing.T) {
			r := newZeroRTTRig(t, pin)
			serverLog := &logBuffer{}
			defer r.startServer(serverLog)()
			r.firstRun()

			clientLog := &logBuffer{}
			cli, stop := r.startClient(clientLog)
			defer stop()
			if err := echoThrough(cli.Addr().String(), 256<<10); err != nil {
				t.Fatalf("first connection after the restart: %v\nclient:\n%s\nserver:\n%s", err, clientLog, serverLog)
			}
			if !strings.Contains(clientLog.String(), `msg="connected to server"`) || !strings.Contains(clientLog.String(), "0rtt=true") {
				t.Errorf("client did not connect with 0-RTT:\n%s", clientLog)
			}
			if !strings.Contains(serverLog.String(), "0rtt=true") {
				t.Errorf("server did not take an early proof:\n%s", serverLog)
			}
		})
	}
}

// TestZeroRTTRefusedReplays: a server restarted since the ticket was issued
// refuses 0-RTT; the client goes on in 1-RTT and sends again what its first
// streams had sent early, so they still work.
func TestZeroRTTRefusedReplays(t *testing.T) {
	r := newZeroRTTRig(t, true)
	stopFirst := r.startServer(&logBuffer{})
	r.firstRun()
	stopFirst()

	serverLog := &logBuffer{}
	defer r.startServer(serverLog)() // new ticket keys: the saved ticket means nothing to it
	clientLog := &logBuffer{}
	cli, stop := r.startClient(clientLog)
	defer stop()
	// Several connections at once, right at the start: they open in 0-RTT.
	if err := testutil.ConcurrentEcho(cli.Addr().String(), 4, 64<<10); err != nil {
		t.Fatalf("connections after a refused 0-RTT: %v\nclient:\n%s\nserver:\n%s", err, clientLog, serverLog)
	}
	if !strings.Contains(clientLog.String(), "server refused 0-RTT") {
		t.Errorf("client did not see 0-RTT refused (the test did not test the replay):\n%s", clientLog)
	}
	if !strings.Contains(clientLog.String(), "stream sent again after 0-RTT was refused") {
		t.Errorf("no stream was sent again (none started in 0-RTT?):\n%s", clientLog)
	}
}

// TestZeroRTTReplayOpensNothing: an attacker who recorded a restarted
// client's first flight (its 0-RTT proof and a stream to the backend) and
// sends it again gets nothing: the server's replay guard refuses the early
// proof, no stream is accepted before a proof the replayer cannot make, and
// the backend is not connected a second time.
func TestZeroRTTReplayOpensNothing(t *testing.T) {
	r := newZeroRTTRig(t, true)
	serverLog := &logBuffer{}
	defer r.startServer(serverLog)()
	r.firstRun()
	before := r.backend.Accepted.Load()

	stopRecording := r.proxy.Record()
	clientLog := &logBuffer{}
	cli, stop := r.startClient(clientLog)
	if err := echoThrough(cli.Addr().String(), 4096); err != nil {
		t.Fatalf("the recorded connection: %v", err)
	}
	stop()
	pkts := stopRecording()
	if !strings.Contains(clientLog.String(), "0rtt=true") {
		t.Fatalf("the recorded client did not use 0-RTT (nothing to replay):\n%s", clientLog)
	}
	if got := r.backend.Accepted.Load(); got != before+1 {
		t.Fatalf("backend connections after the recorded one: %d, want %d", got, before+1)
	}

	r.proxy.Replay(t, pkts)
	time.Sleep(2 * time.Second) // time for a backend dial, were there one
	if got := r.backend.Accepted.Load(); got != before+1 {
		t.Errorf("the replay of %d datagrams opened %d more backend connection(s)", len(pkts), got-before-1)
	}
	if !strings.Contains(serverLog.String(), "early proof seen before") {
		t.Errorf("the server did not refuse the replayed early proof as seen before:\n%s", serverLog)
	}
}
