//go:build unix

package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeBackend records what the API asks of it and lets a test publish
// events to its subscribers.
type fakeBackend struct {
	mu         sync.Mutex
	status     Status
	starts     int
	stops      int
	reloadMsg  string
	reloadErr  error
	secrets    [][]byte
	migrations int
	subs       map[chan Event]struct{}
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		status: Status{Role: RoleClient, Version: "test", PID: 42, State: StateConnected},
		subs:   make(map[chan Event]struct{}),
	}
}

func (f *fakeBackend) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeBackend) Start(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	return nil
}

func (f *fakeBackend) Stop(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	return nil
}

func (f *fakeBackend) Migrate(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.migrations++
	return "moved", nil
}

func (f *fakeBackend) Reload(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloadMsg, f.reloadErr
}

func (f *fakeBackend) SetSecret(_ context.Context, secret []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets = append(f.secrets, secret) // the API hands over ownership
	return nil
}

// Subscribe registers a channel until ctx is done; publish and the
// unsubscribing goroutine share the mutex, so no send hits a closed
// channel.
func (f *fakeBackend) Subscribe(ctx context.Context) <-chan Event {
	ch := make(chan Event, 16)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.subs, ch)
		close(ch)
		f.mu.Unlock()
	}()
	return ch
}

func (f *fakeBackend) publish(ev Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (f *fakeBackend) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// shortTempDir is a temporary directory with a short path: t.TempDir
// embeds the test name, and socket paths are limited to about 100 bytes.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qtc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// server is a Serve running on a real socket.
type server struct {
	path   string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startServer serves b on a socket under a fresh directory, with ln made
// by listen (nil for Listen).
func startServer(t *testing.T, b Backend, mk func(string) (net.Listener, error)) *server {
	t.Helper()
	if mk == nil {
		mk = Listen
	}
	path := filepath.Join(shortTempDir(t), "ctl", "client.sock")
	ln, err := mk(path)
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, b, ln, path)
}

// serveOn runs Serve on ln (at path) until the test ends.
func serveOn(t *testing.T, b Backend, ln net.Listener, path string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{path: path, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- Serve(ctx, ln, b) }()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// stop cancels Serve's context and waits for it to return.
func (s *server) stop() error {
	s.once.Do(func() {
		s.cancel()
		select {
		case s.err = <-s.done:
		case <-time.After(10 * time.Second):
			s.err = errors.New("Serve did not return within 10s of its context ending")
		}
	})
	return s.err
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStatusRoundTrip(t *testing.T) {
	b := newFakeBackend()
	since := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	b.status = Status{
		Role: RoleClient, Version: "1.2.3", PID: 1234, ConfigFile: "/etc/qtunnel.toml",
		State: StateConnected, Since: since, Transport: "quic", Server: "example.org:443",
		RTTMillis: 12.5, Loss: 0.01, PacketsSent: 1000, PacketsLost: 10,
		BytesUp: 1 << 20, BytesDown: 2 << 20, RateUp: 100.5, RateDown: 200.25,
		ActiveStreams: 2, TotalStreams: 10, FailedStreams: 1, Connects: 3, Reconnects: 2,
		RelayErrors: map[string]int64{"reset": 1},
		Forwards:    []ForwardStatus{{Name: "ssh", Listen: "127.0.0.1:2222", Target: "ssh", Active: 1, Total: 4}},
		LastError:   "timeout", LastErrorAt: since.Add(time.Minute),
	}
	s := startServer(t, b, nil)
	got, err := NewClient(s.path).Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b.status) {
		t.Errorf("got\n%+v\nwant\n%+v", got, b.status)
	}
}

func TestCommandsReachBackend(t *testing.T) {
	b := newFakeBackend()
	b.reloadMsg = "2 forwards changed"
	s := startServer(t, b, nil)
	c := NewClient(s.path)
	ctx := testCtx(t)

	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	msg, err := c.Reload(ctx)
	if err != nil || msg != b.reloadMsg {
		t.Errorf("Reload = %q, %v; want %q", msg, err, b.reloadMsg)
	}
	b.mu.Lock()
	starts, stops := b.starts, b.stops
	b.reloadErr = errors.New(`config.toml:3: unknown key "fowrard"`)
	b.mu.Unlock()
	if starts != 1 || stops != 2 {
		t.Errorf("backend saw %d starts and %d stops, want 1 and 2", starts, stops)
	}

	_, err = c.Reload(ctx)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("Reload error = %v, want an *APIError with 422", err)
	}
	if err.Error() != `config.toml:3: unknown key "fowrard"` {
		t.Errorf("Reload error says %q", err)
	}
}

func TestSetSecret(t *testing.T) {
	b := newFakeBackend()
	s := startServer(t, b, nil)
	c := NewClient(s.path)
	ctx := testCtx(t)

	secret := []byte("s3cr\"et\\ with\nnew line, \x01 tab\t, wörd and 😀")
	sent := bytes.Clone(secret)
	if err := c.SetSecret(ctx, sent); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sent, secret) {
		t.Error("SetSecret changed the caller's slice")
	}
	if err := c.SetSecret(ctx, nil); err == nil {
		t.Error("an empty secret was accepted")
	}
	if err := c.SetSecret(ctx, []byte{0xff, 0xfe}); err == nil {
		t.Error("a secret that is not UTF-8 was accepted")
	}

	// Other clients may escape differently; the server decodes any JSON.
	hc := rawClient(s.path)
	resp := doRaw(t, hc, http.MethodPut, "/v1/secret", `{"secret":"\u00e9\ud83d\ude00\/x"}`)
	if resp.code != http.StatusOK {
		t.Fatalf("PUT escaped secret: %d %s", resp.code, resp.body)
	}
	for _, body := range []string{`{"secret":""}`, `{}`, `{"secret":null}`, `{"secret":12}`, `not json`} {
		if r := doRaw(t, hc, http.MethodPut, "/v1/secret", body); r.code != http.StatusBadRequest {
			t.Errorf("PUT %s: %d %s, want 400", body, r.code, r.body)
		}
	}
	big := `{"secret":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	if r := doRaw(t, hc, http.MethodPut, "/v1/secret", big); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT %d bytes: %d %s, want 413", len(big), r.code, r.body)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.secrets) != 2 {
		t.Fatalf("backend got %d secrets, want 2", len(b.secrets))
	}
	if !bytes.Equal(b.secrets[0], secret) {
		t.Errorf("secret arrived as %q, want %q", b.secrets[0], secret)
	}
	if string(b.secrets[1]) != "é😀/x" {
		t.Errorf("escaped secret arrived as %q", b.secrets[1])
	}
}

func TestRoutes(t *testing.T) {
	s := startServer(t, newFakeBackend(), nil)
	hc := rawClient(s.path)
	tests := []struct {
		method, path string
		code         int
		allow        string
	}{
		{http.MethodGet, "/v1/nope", http.StatusNotFound, ""},
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/status", http.StatusMethodNotAllowed, http.MethodGet},
		{http.MethodGet, "/v1/start", http.StatusMethodNotAllowed, http.MethodPost},
		{http.MethodDelete, "/v1/stop", http.StatusMethodNotAllowed, http.MethodPost},
		{http.MethodPost, "/v1/secret", http.StatusMethodNotAllowed, http.MethodPut},
		{http.MethodPost, "/v1/events", http.StatusMethodNotAllowed, http.MethodGet},
	}
	for _, tt := range tests {
		r := doRaw(t, hc, tt.method, tt.path, "")
		if r.code != tt.code {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, r.code, tt.code)
		}
		if got := r.header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
		var e errorResponse
		if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
			t.Errorf("%s %s: body %q is not a JSON error", tt.method, tt.path, r.body)
		}
	}
}

func TestEvents(t *testing.T) {
	b := newFakeBackend()
	s := startServer(t, b, nil)
	c := NewClient(s.path)

	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	got := make(chan Event, 16)
	done := make(chan error, 1)
	go func() { done <- c.Events(ctx, func(ev Event) { got <- ev }) }()

	first := receive(t, got)
	if first.Type != EventStats || first.Status == nil || first.Status.PID != 42 {
		t.Fatalf("first event = %+v, want stats with the status", first)
	}
	// The handler subscribed before sending the first event.
	want := []Event{
		{Type: EventState, Time: time.Unix(1, 0).UTC(), Status: &Status{State: StateConnecting}},
		{Type: EventError, Time: time.Unix(2, 0).UTC(), Message: "server unreachable"},
		{Type: EventReload, Time: time.Unix(3, 0).UTC(), Message: "2 forwards changed"},
	}
	for _, ev := range want {
		b.publish(ev)
	}
	for i, w := range want {
		if ev := receive(t, got); !reflect.DeepEqual(ev, w) {
			t.Errorf("event %d = %+v, want %+v", i, ev, w)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Events after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Events did not return after its context ended")
	}
	waitFor(t, "the subscription to end", func() bool { return b.subscribers() == 0 })
}

// TestShutdown: Serve ends a live event stream and returns promptly when
// its context ends, leaving no goroutine behind.
func TestShutdown(t *testing.T) {
	b := newFakeBackend()
	s := startServer(t, b, nil)
	c := NewClient(s.path)

	got := make(chan Event, 16)
	done := make(chan error, 1)
	go func() { done <- c.Events(testCtx(t), func(ev Event) { got <- ev }) }()
	receive(t, got)

	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > shutdownTimeout/2 {
		t.Errorf("Serve took %v to return; the event stream held it up", d)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrStreamEnded) {
			t.Errorf("Events = %v, want ErrStreamEnded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Events did not return after Serve stopped")
	}
	if _, err := os.Lstat(s.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left behind: %v", err)
	}
	if _, err := c.Status(testCtx(t)); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Status after shutdown = %v, want ErrNotRunning", err)
	}
	goleak.VerifyNone(t)
}

func TestServeListenerFails(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "ctl", "client.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = Serve(testCtx(t), ln, newFakeBackend())
	if err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
}

func TestNotRunning(t *testing.T) {
	dir := shortTempDir(t)
	missing := filepath.Join(dir, "client.sock")
	_, err := NewClient(missing).Status(testCtx(t))
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Status = %v, want ErrNotRunning", err)
	}
	want := "no qtunnel client is running (no control socket at " + missing + "); start one, or give -control=PATH"
	if err.Error() != want {
		t.Errorf("error says\n%s\nwant\n%s", err, want)
	}

	// A socket file whose process died: nobody answers.
	stale := filepath.Join(dir, "server.sock")
	makeStaleSocket(t, stale)
	err = NewClient(stale).Start(testCtx(t))
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "no qtunnel server is running") {
		t.Errorf("Start = %v, want ErrNotRunning", err)
	}
}

// TestPeerCheckRefuses runs the refusal path without a second user: the
// listener believes the process runs as another uid.
func TestPeerCheckRefuses(t *testing.T) {
	s := startServer(t, newFakeBackend(), func(path string) (net.Listener, error) {
		return listen(path, os.Geteuid()+1)
	})
	_, err := NewClient(s.path).Status(testCtx(t))
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "this control socket belongs to another user") {
		t.Errorf("Status = %v, want ErrForbidden with the server's message", err)
	}
	if got := rawRequest(s.path); !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") ||
		!strings.HasSuffix(got, "\r\n\r\nthis control socket belongs to another user\n") {
		t.Errorf("raw answer %q", got)
	}
}

// --- helpers ---

func receive(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return Event{}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawClient speaks HTTP to the socket without the Client's checks and
// error mapping, to see status codes and bodies as they are.
func rawClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
}

type rawResponse struct {
	code   int
	header http.Header
	body   string
}

func doRaw(t *testing.T, hc *http.Client, method, path, body string) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, "http://qtunnel"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return rawResponse{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// rawRequest sends a GET over a plain connection and returns what comes
// back, or "error: ..." if the connection fails.
func rawRequest(path string) string {
	c, err := net.DialTimeout("unix", path, 3*time.Second)
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: qtunnel\r\n\r\n"); err != nil {
		return "error: " + err.Error()
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return fmt.Sprintf("%s (then error: %v)", b, err)
	}
	return string(b)
}

// makeStaleSocket leaves a socket file behind with nobody listening.
func makeStaleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}
