package ui

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"fyne.io/fyne/v2/test"

	"github.com/qtunnel/qtunnel/client-gui/internal/appmodel"
	"github.com/qtunnel/qtunnel/control"
)

// engineBackend stands in for the engine behind a real control socket: it
// records what the control API asked of it.
type engineBackend struct {
	mu           sync.Mutex
	state        control.State
	lastErr      string
	starts, stop int
}

func (b *engineBackend) Status() control.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return control.Status{Role: control.RoleClient, State: b.state, Server: "vps.example.com:443", Transport: "quic",
		RTTMillis: 12, RateUp: 1.5 * 1024 * 1024, LastError: b.lastErr}
}

func (b *engineBackend) Start(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.starts++
	b.state = control.StateConnected
	return nil
}

func (b *engineBackend) Stop(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stop++
	b.state = control.StateOff
	return nil
}

func (b *engineBackend) Reload(context.Context) (string, error)  { return "no change", nil }
func (b *engineBackend) Migrate(context.Context) (string, error) { return "moved", nil }
func (b *engineBackend) SetSecret(context.Context, []byte) error { return nil }
func (b *engineBackend) Subscribe(ctx context.Context) <-chan control.Event {
	ch := make(chan control.Event)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch
}

func (b *engineBackend) set(st control.State, lastErr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state, b.lastErr = st, lastErr
}

func (b *engineBackend) counts() (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.starts, b.stop
}

type noSecrets struct{}

func (noSecrets) Put([]byte) (string, error) { return "", nil }
func (noSecrets) Has() bool                  { return true }

// TestRealModelOverControlAPI: the UI with the real app model, which
// talks to an engine over a real control socket. The toggle reaches the
// engine through the API, the engine's status renders in the tray, and
// the settings window shows the engine parser's own messages inline.
func TestRealModelOverControlAPI(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "client.sock")
	ln, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	b := &engineBackend{state: control.StateOff}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- control.Serve(ctx, ln, b) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("control.Serve: %v", err)
		}
	})

	model := appmodel.New(appmodel.Options{ConfigPath: filepath.Join(dir, "client.yaml"), Control: control.NewClient(sock), Secrets: noSecrets{}})
	app := test.NewTempApp(t)
	u := New(app, model, Options{})
	u.background = func(f func()) { f() } // each click has finished when it returns
	u.Start()
	t.Cleanup(u.Close)
	model.Refresh(ctx)

	item(t, u.TrayMenu(), labelConnect).Action()
	if starts, _ := b.counts(); starts != 1 {
		t.Fatalf("the engine got %d starts through the control API, want 1", starts)
	}
	if it := hasItem(u.TrayMenu(), "vps.example.com:443 · 12 ms · ↑ 1.5 MiB/s"); it == nil {
		t.Errorf("no status line from the engine's status in %v", labels(u.TrayMenu()))
	}
	if u.TrayIcon().Name() != "tray-on.png" {
		t.Errorf("tray icon %s, want tray-on.png", u.TrayIcon().Name())
	}
	item(t, u.TrayMenu(), labelDisconnect).Action()
	if _, stops := b.counts(); stops != 1 {
		t.Fatalf("the engine got %d stops, want 1", stops)
	}

	b.set(control.StateError, "the server refused our secret: the two ends do not have the same secret")
	model.Refresh(ctx)
	if it := hasItem(u.TrayMenu(), problemLabelPrefix+"the server refused our secret"); it == nil {
		t.Errorf("the engine's error is not in the menu: %v", labels(u.TrayMenu()))
	}
	if u.TrayIcon().Name() != "tray-error.png" {
		t.Errorf("tray icon %s, want tray-error.png", u.TrayIcon().Name())
	}

	u.ShowSettings()
	f := u.settings
	f.server.SetText("")
	test.Type(f.server, "vps.example.com")
	if l := f.errs["server"]; !l.Visible() || !strings.Contains(l.Text, `got "vps.example.com"`) {
		t.Errorf("server error from the real model: %q (visible %v)", l.Text, l.Visible())
	}
}
