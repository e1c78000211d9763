//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/control"
)

// healthBackend is a control.Backend whose status the test sets.
type healthBackend struct {
	mu sync.Mutex
	st control.Status
}

func (b *healthBackend) set(role control.Role, state control.State, lastErr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st = control.Status{Role: role, State: state, LastError: lastErr, Since: time.Unix(1e9, 0)}
}

func (b *healthBackend) Status() control.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st
}
func (b *healthBackend) Start(context.Context) error                        { return nil }
func (b *healthBackend) Stop(context.Context) error                         { return nil }
func (b *healthBackend) Reload(context.Context) (string, error)             { return "", nil }
func (b *healthBackend) Migrate(context.Context) (string, error)            { return "", nil }
func (b *healthBackend) SetSecret(context.Context, []byte) error            { return nil }
func (b *healthBackend) Subscribe(ctx context.Context) <-chan control.Event { return nil }

func TestHealth(t *testing.T) {
	// A short path: Unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "qth")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "c", "server.sock")
	ln, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	b := &healthBackend{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = control.Serve(ctx, ln, b)
	}()
	t.Cleanup(func() { cancel(); <-done })

	health := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"health"}, args...), &stdout, &stderr, os.Getenv)
		return code, stdout.String(), stderr.String()
	}
	oneLine := func(t *testing.T, stderr, want string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "qtunnel: health: ") || !strings.Contains(lines[0], want) {
			t.Errorf("stderr = %q, want one line \"qtunnel: health: ...%s...\"", stderr, want)
		}
	}

	tests := []struct {
		name    string
		role    control.Role
		state   control.State
		lastErr string
		code    int
		want    string // on stdout if code is 0, else in the line on stderr
	}{
		{"server serving", control.RoleServer, control.StateServing, "", 0, "ok: server serving since 2001-09-09T01:46:40Z"},
		{"server stopped", control.RoleServer, control.StateOff, "", 1, "server state is off, want serving"},
		{"client connected", control.RoleClient, control.StateConnected, "", 0, "ok: client connected"},
		{"client connecting", control.RoleClient, control.StateConnecting, "no answer from the server", 1, "client state is connecting, want connected: no answer from the server"},
		{"client error", control.RoleClient, control.StateError, "the server refused our secret", 1, "client state is error, want connected: the server refused our secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.set(tt.role, tt.state, tt.lastErr)
			code, stdout, stderr := health("-control=" + sock)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d (stdout %q, stderr %q)", code, tt.code, stdout, stderr)
			}
			if tt.code == 0 {
				if !strings.Contains(stdout, tt.want) || stderr != "" {
					t.Errorf("stdout %q, stderr %q; want %q on stdout", stdout, stderr, tt.want)
				}
				return
			}
			oneLine(t, stderr, tt.want)
		})
	}

	t.Run("nothing listening", func(t *testing.T) {
		code, _, stderr := health("-control=" + filepath.Join(dir, "c", "none.sock"))
		if code != 1 {
			t.Fatalf("exit code %d, want 1 (stderr %q)", code, stderr)
		}
		oneLine(t, stderr, "none.sock")
	})
	t.Run("stray argument", func(t *testing.T) {
		code, _, stderr := health("now")
		if code != 2 || !strings.Contains(stderr, `unexpected argument "now"`) {
			t.Errorf("exit code %d, stderr %q; want 2 and the argument named", code, stderr)
		}
	})
}
