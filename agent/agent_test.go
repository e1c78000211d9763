package agent

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// running is an agent whose Run goroutine the test owns.
type running struct {
	*Agent
	cancel context.CancelFunc
	done   chan error
}

func runAgent(t *testing.T, opts Options) *running {
	t.Helper()
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
	})
	if !testutil.Eventually(10*time.Second, func() bool { return a.Status().State != control.StateOff }) {
		t.Fatalf("agent did not start: %+v", a.Status())
	}
	return r
}

// cfgBox is a configuration a test changes between reloads.
type cfgBox struct {
	mu  sync.Mutex
	cfg config.Config
}

func (b *cfgBox) load() (*config.Config, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cfg
	c.Forwards = append([]config.Forward(nil), c.Forwards...)
	c.Targets = append([]config.Target(nil), c.Targets...)
	return &c, nil
}

func (b *cfgBox) set(f func(*config.Config)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.cfg)
}

func namedEcho(t *testing.T, name string) string {
	return testutil.StartBackend(t, func(c *net.TCPConn) {
		_, _ = c.Write([]byte(name))
		testutil.Echo(c)
	}).Addr()
}

// reach connects to addr and returns what the backend says first, or "".
func reach(t *testing.T, addr string, n int) string {
	t.Helper()
	c, err := testutil.DialTCP(addr)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		return ""
	}
	return string(b)
}

// TestReloadTargetsAndForwards: a server's reload adds a target in place
// (its client's connection stays up), a client's reload adds a forward,
// and counters carry on across a stop and start.
func TestReloadTargetsAndForwards(t *testing.T) {
	sec, err := secret.New([]byte("agent-test-secret-2c7e9f41a0b3d5e6f7a8b9c0d1e2"))
	if err != nil {
		t.Fatal(err)
	}
	// A fixed port: a reload that reconnects binds the server again.
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := uc.LocalAddr().String()
	uc.Close()
	srvBox := &cfgBox{cfg: config.Config{Mode: config.ModeServer, Transport: "quic", Listen: port, StateDir: t.TempDir(),
		Targets: []config.Target{{Name: "one", Address: namedEcho(t, "one")}}}}
	first, _ := srvBox.load()
	srv := runAgent(t, Options{Config: first, Load: srvBox.load, Secrets: []secret.Secret{sec}})
	srvAddr := srv.Status().Listen

	cliBox := &cfgBox{cfg: config.Config{Mode: config.ModeClient, Transport: "quic", Server: srvAddr,
		Forwards: []config.Forward{{Name: "one", Listen: "127.0.0.1:0", Target: "one"}, {Name: "two", Listen: "127.0.0.1:0", Target: "two"}}}}
	firstCli, _ := cliBox.load()
	cli := runAgent(t, Options{Config: firstCli, Load: cliBox.load, Secrets: []secret.Secret{sec}})
	if !testutil.Eventually(10*time.Second, func() bool { return cli.Status().State == control.StateConnected }) {
		t.Fatalf("client not connected: %+v", cli.Status())
	}
	fwd := func(name string) string {
		for _, f := range cli.Status().Forwards {
			if f.Name == name {
				return f.Listen
			}
		}
		return ""
	}
	if got := reach(t, fwd("one"), 3); got != "one" {
		t.Fatalf("forward one reached %q", got)
	}
	if got := reach(t, fwd("two"), 3); got != "" {
		t.Fatalf("forward two reached %q before the server allows it", got)
	}

	srvBox.set(func(c *config.Config) {
		c.Targets = append(c.Targets, config.Target{Name: "two", Address: namedEcho(t, "two")})
	})
	msg, err := srv.Reload(context.Background())
	if err != nil || msg != "target added: two" {
		t.Fatalf("server reload: %q, %v", msg, err)
	}
	if got := reach(t, fwd("two"), 3); got != "two" {
		t.Fatalf("forward two reached %q after the server's reload", got)
	}
	if st := cli.Status(); st.Connects != 1 {
		t.Errorf("the client connected %d times; a target reload must not cut it", st.Connects)
	}

	cliBox.set(func(c *config.Config) {
		c.Forwards = append(c.Forwards, config.Forward{Name: "three", Listen: "127.0.0.1:0", Target: "one"})
	})
	msg, err = cli.Reload(context.Background())
	if err != nil || msg != "forward added: three" {
		t.Fatalf("client reload: %q, %v", msg, err)
	}
	if got := reach(t, fwd("three"), 3); got != "one" {
		t.Fatalf("new forward three reached %q", got)
	}

	// A connection-level change (the transport) reconnects.
	srvBox.set(func(c *config.Config) { c.Congestion = "reno" })
	msg, err = srv.Reload(context.Background())
	if err != nil || !strings.Contains(msg, "reconnected") {
		t.Fatalf("server reload with new congestion control: %q, %v", msg, err)
	}

	before := cli.Status()
	if err := cli.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	off := cli.Status()
	if off.State != control.StateOff || off.TotalStreams != before.TotalStreams || off.BytesDown != before.BytesDown {
		t.Errorf("after Stop: %+v; want off with the counters kept (%d streams, %d bytes down)", off, before.TotalStreams, before.BytesDown)
	}
	if err := cli.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !testutil.Eventually(10*time.Second, func() bool { return reach(t, fwd("one"), 3) == "one" }) {
		t.Fatal("forward one does not work after Start")
	}
	after := cli.Status()
	if after.TotalStreams <= before.TotalStreams || after.Connects < 2 || after.Reconnects != after.Connects-1 {
		t.Errorf("after Start: %d streams (was %d), %d connects, %d reconnects", after.TotalStreams, before.TotalStreams, after.Connects, after.Reconnects)
	}
}

// TestReloadSecretFileFromFlag: a server started with -secret-file (the
// packaged unit's way: the file holds no secret-file, or another) reads it
// into its secrets at the start and into SecretFiles at a reload; a
// target change must still not reconnect its clients.
func TestReloadSecretFileFromFlag(t *testing.T) {
	const value = "agent-test-secret-2c7e9f41a0b3d5e6f7a8b9c0d1e2"
	sec, _ := secret.New([]byte(value))
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	box := &cfgBox{cfg: config.Config{Mode: config.ModeServer, Listen: "127.0.0.1:0", StateDir: t.TempDir(),
		Targets: []config.Target{{Name: "default", Address: "127.0.0.1:1"}}, DefaultTarget: "default"}}
	first, _ := box.load()
	box.set(func(c *config.Config) {
		c.SecretFiles = []string{path}
		c.Targets = append(c.Targets, config.Target{Name: "two", Address: "127.0.0.1:2"})
	})
	srv := runAgent(t, Options{Config: first, Load: box.load, Secrets: []secret.Secret{sec}})
	msg, err := srv.Reload(context.Background())
	if err != nil || msg != "target added: two" {
		t.Fatalf("reload: %q, %v; want only the target added", msg, err)
	}
}

// TestEventsFollowState: a subscriber sees the state change of a Stop
// without asking.
func TestEventsFollowState(t *testing.T) {
	sec, _ := secret.New([]byte("agent-test-secret-2c7e9f41a0b3d5e6f7a8b9c0d1e2"))
	cfg := &config.Config{Mode: config.ModeServer, Listen: "127.0.0.1:0", StateDir: t.TempDir(),
		Targets: []config.Target{{Name: "default", Address: "127.0.0.1:1"}}, DefaultTarget: "default"}
	srv := runAgent(t, Options{Config: cfg, Secrets: []secret.Secret{sec}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := srv.Subscribe(ctx)
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Type == control.EventState && e.Status != nil && e.Status.State == control.StateOff {
				if _, err := srv.Reload(context.Background()); err == nil {
					t.Error("reload without a file: want an error")
				}
				return
			}
		case <-timeout:
			t.Fatal("no state event for Stop")
		}
	}
}
