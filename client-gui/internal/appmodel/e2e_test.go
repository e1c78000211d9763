package appmodel

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

// qtunnelBin is the headless binary, built once: the engine process and
// the server of the end-to-end test.
var qtunnelBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qtunnel-gui-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	qtunnelBin = filepath.Join(dir, "qtunnel")
	// Built in the root module, with its own go.mod.
	cmd := exec.Command("go", "build", "-o", qtunnelBin, "./server")
	cmd.Dir = "../../.."
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build qtunnel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// memSecrets is a Secrets in memory: the keyring has its own tests.
type memSecrets struct {
	mu sync.Mutex
	b  []byte
}

func (s *memSecrets) Put(b []byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append([]byte(nil), b...)
	return "", nil
}

func (s *memSecrets) Has() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.b) > 0
}

// process is a running qtunnel.
type process struct {
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
}

func startQT(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(qtunnelBin, args...), out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "STATE_DIRECTORY=" + t.TempDir()}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("qtunnel %s:\n%s", strings.Join(args, " "), p.out)
		}
	})
	return p
}

func freeAddr(t *testing.T) string { return testutil.FreeAddr(t) }

const strongSecret = "gui-e2e-5d1c7a9e3f2b8d4c6a0e9f1b3d5c7a2e4f6b8d0c"

// TestModelDrivesRealEngine: the app model, against a real engine process
// (the headless qtunnel with the model's settings file, as the background
// service runs it) and a real server: settings saved, toggle off and on,
// bytes through a forward, toggle off and the port is closed.
func TestModelDrivesRealEngine(t *testing.T) {
	backend := testutil.StartEchoBackend(t)
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "server-secret")
	if err := os.WriteFile(secretPath, []byte(strongSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srvAddr := freeAddr(t)
	startQT(t, nil, "-listen="+srvAddr, "-backend="+backend.Addr(), "-quic=true", "-secret-file="+secretPath,
		"-state-dir="+t.TempDir(), "-control=off")

	ctlPath := filepath.Join(dir, "run", "client.sock")
	cfgPath := filepath.Join(dir, "config", "client.yaml")
	m := New(Options{ConfigPath: cfgPath, Control: control.NewClient(ctlPath), Secrets: &memSecrets{}, Version: "test",
		Retry: 100 * time.Millisecond})
	if !m.FirstRun() {
		t.Fatal("FirstRun is false before any settings are saved")
	}
	if v := m.View(); v.State != StateOff {
		t.Fatalf("view before anything runs: %+v", v)
	}

	// Settings with mistakes are refused field by field and not saved.
	bad := Settings{Server: "no-port", Transport: "quic", Forwards: []Forward{{Listen: "127.0.0.1:99999"}}}
	errs, err := m.Save(context.Background(), bad, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"server": false, "forwards[0].listen": false, "secret": false}
	for _, e := range errs {
		if _, ok := want[e.Field]; ok {
			want[e.Field] = true
		}
	}
	for f, seen := range want {
		if !seen {
			t.Errorf("no error for %s in %v", f, errs)
		}
	}
	if !m.FirstRun() {
		t.Error("settings with errors were saved")
	}

	fwd := freeAddr(t)
	good := Settings{Server: srvAddr, Transport: "quic", Forwards: []Forward{{Listen: fwd}}}
	if errs, err := m.Save(context.Background(), good, strongSecret); err != nil || len(errs) > 0 {
		t.Fatalf("save good settings: %v %v", errs, err)
	}
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(text), strongSecret) {
		t.Fatalf("the settings file holds the secret:\n%s", text)
	}

	// The engine process runs the model's settings (the secret, which the
	// service reads from the keyring, comes from the environment here).
	startQT(t, []string{"QTUNNEL_SECRET=" + strongSecret}, "-config="+cfgPath, "-control="+ctlPath)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	waitState(t, m, StateOn)
	if v := m.View(); !strings.Contains(v.StatusLine, srvAddr) {
		t.Errorf("status line %q does not name the server", v.StatusLine)
	}

	toggle := func(want State) {
		t.Helper()
		if err := m.Toggle(ctx); err != nil {
			t.Fatalf("toggle: %v", err)
		}
		waitState(t, m, want)
	}
	toggle(StateOff)
	if c, err := net.DialTimeout("tcp", fwd, time.Second); err == nil {
		c.Close()
		t.Fatal("the forward accepts while the tunnel is off")
	}
	toggle(StateOn)
	c, err := testutil.DialTCP(fwd)
	if err != nil {
		t.Fatalf("the forward after toggling on: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if err := testutil.EchoCheck(c, 1<<20, 1); err != nil {
		t.Fatalf("bytes through the forward: %v", err)
	}
	c.Close()
	toggle(StateOff)
	if c, err := net.DialTimeout("tcp", fwd, time.Second); err == nil {
		c.Close()
		t.Fatal("the forward accepts after toggling off")
	}

	// Saving while the engine runs applies at once: a second forward.
	toggle(StateOn)
	fwd2 := freeAddr(t)
	good.Forwards = append(good.Forwards, Forward{Name: "second", Listen: fwd2})
	if errs, err := m.Save(ctx, good, ""); err != nil || len(errs) > 0 {
		t.Fatalf("save with a second forward: %v %v", errs, err)
	}
	c2, err := testutil.DialTCP(fwd2)
	if err != nil {
		t.Fatalf("the second forward after saving: %v", err)
	}
	_ = c2.SetDeadline(time.Now().Add(time.Minute))
	if err := testutil.EchoCheck(c2, 64<<10, 2); err != nil {
		t.Fatal(err)
	}
	c2.Close()
}

func waitState(t *testing.T, m *Model, want State) {
	t.Helper()
	if !testutil.Eventually(15*time.Second, func() bool { return m.View().State == want }) {
		t.Fatalf("view state %s, want %s: %+v", m.View().State, want, m.View())
	}
}

// TestImportLink: a share link fills the settings and the secret.
func TestImportLink(t *testing.T) {
	m := New(Options{ConfigPath: filepath.Join(t.TempDir(), "client.yaml"), Control: control.NewClient(filepath.Join(t.TempDir(), "none.sock")), Secrets: &memSecrets{}})
	s, sec, err := m.Import("qtunnel://vps.example.com:443?transport=quic&pin=sha256:" + strings.Repeat("ab", 32) + "&target=db#secret=" + "c2VjcmV0LXZhbHVlLTEyMw")
	if err != nil {
		t.Fatal(err)
	}
	if s.Server != "vps.example.com:443" || s.Transport != "quic" || s.Pin != "sha256:"+strings.Repeat("ab", 32) ||
		len(s.Forwards) != 1 || s.Forwards[0].Target != "db" || s.Forwards[0].Listen != defaultListen || sec != "secret-value-123" {
		t.Errorf("imported %+v, secret %q", s, sec)
	}
	if errs := m.Validate(s, sec); len(errs) != 0 {
		t.Errorf("imported settings do not validate: %v", errs)
	}
	if _, _, err := m.Import("https://example.com/"); err == nil {
		t.Error("a web address imported as a link")
	}
}

// TestNoEngine: with nothing running and no settings, the view says off
// and toggling explains what to do.
func TestNoEngine(t *testing.T) {
	m := New(Options{ConfigPath: filepath.Join(t.TempDir(), "client.yaml"), Control: control.NewClient(filepath.Join(t.TempDir(), "none.sock")), Secrets: &memSecrets{}})
	m.Refresh(context.Background())
	if v := m.View(); v.State != StateOff || v.Error != "" {
		t.Errorf("view with no engine: %+v", v)
	}
	if err := m.Toggle(context.Background()); err == nil || !strings.Contains(err.Error(), "background service") {
		t.Errorf("toggle with no engine and no way to start one: %v", err)
	}
}

// TestSeveralServers: a file with several servers shows them as one
// comma-separated field; saving the field keeps a remaining server's own
// pin and the failover time, which the window does not show, and drops
// the servers taken out.
func TestSeveralServers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "client.yaml")
	pinB := "sha256:" + strings.Repeat("cd", 32)
	file := "mode: client\nservers:\n  - a.example:443\n  - {address: b.example:443, pin: " + pinB + "}\n" +
		"failover-after: 3s\nforwards: [{listen: 127.0.0.1:5432}]\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := &memSecrets{}
	_, _ = secrets.Put([]byte(strongSecret))
	m := New(Options{ConfigPath: path, Control: control.NewClient(filepath.Join(t.TempDir(), "none.sock")), Secrets: secrets})
	s := m.Settings()
	if s.Server != "a.example:443, b.example:443" {
		t.Fatalf("server field %q", s.Server)
	}
	s.Server = "b.example:443 , c.example:443"
	if errs, err := m.Save(context.Background(), s, ""); err != nil || len(errs) > 0 {
		t.Fatalf("save: %v %v", errs, err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []config.ServerEntry{{Address: "b.example:443", Pin: pinB}, {Address: "c.example:443"}}
	if !slices.Equal(cfg.Servers, want) || cfg.Server != "b.example:443" || cfg.FailoverAfter != 3*time.Second {
		t.Errorf("saved servers %+v (server %q, failover-after %v); want %+v", cfg.Servers, cfg.Server, cfg.FailoverAfter, want)
	}
	s.Server = "b.example:443, nope"
	errs := m.Validate(s, "")
	if len(errs) != 1 || errs[0].Field != "server" || !strings.Contains(errs[0].Msg, "nope") {
		t.Errorf("a bad second server: %v", errs)
	}
}

// TestDetailsListServers: "copy details" names each of several servers,
// which one is in use and why another is not, and the failovers.
func TestDetailsListServers(t *testing.T) {
	m := New(Options{ConfigPath: filepath.Join(t.TempDir(), "client.yaml"), Control: control.NewClient(filepath.Join(t.TempDir(), "none.sock")), Secrets: &memSecrets{}})
	st := &control.Status{Role: control.RoleClient, State: control.StateConnected, Server: "b.example:443", Failovers: 1,
		Servers: []control.ServerStatus{
			{Address: "a.example:443", State: control.StateConnecting, LastError: "no answer from the server"},
			{Address: "b.example:443", State: control.StateConnected, Healthy: true, Active: true, RTTMillis: 31},
		}}
	got := m.details(st, View{State: StateOn})
	for _, want := range []string{
		"server a.example:443: connecting, healthy false, in use false, rtt 0.0 ms, last error: no answer from the server\n",
		"server b.example:443: connected, healthy true, in use true, rtt 31.0 ms\n",
		"failovers: 1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("details lack %q:\n%s", want, got)
		}
	}
}
