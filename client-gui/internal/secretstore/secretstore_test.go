package secretstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zalando/go-keyring"
)

const testSecret = "s3cret-value-that-must-not-leak"

// mockKeyring switches go-keyring to its in-memory mock (failing every
// call with fail, if not nil) for the rest of the test binary's life: the
// real tests that need the OS keyring set the provider back themselves by
// running in a child process. On Linux it also makes the session look
// like it has a bus, so that sessionCheck lets the calls through to the
// mock (which never dials it).
func mockKeyring(t *testing.T, fail error) {
	t.Helper()
	if fail != nil {
		keyring.MockInitWithError(fail)
	} else {
		keyring.MockInit()
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/mock-bus")
}

func newStore(t *testing.T) Store {
	t.Helper()
	return Store{
		Service:      "qtunnel-test",
		Account:      "client",
		FallbackFile: filepath.Join(t.TempDir(), "cfg", "secret"),
		Timeout:      5 * time.Second,
	}
}

// noLeak fails if err's text holds the secret.
func noLeak(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testSecret) {
		t.Fatalf("an error shows the secret: %v", err)
	}
}

func TestKeyringRoundTrip(t *testing.T) {
	mockKeyring(t, nil)
	s := newStore(t)

	where, err := s.Set([]byte(testSecret))
	if err != nil || where != WhereKeyring {
		t.Fatalf("Set = %v, %v; want the keyring, nil", where, err)
	}
	if _, err := os.Stat(s.FallbackFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the fallback file exists although the keyring worked (stat: %v)", err)
	}
	b, where, err := s.Get()
	if err != nil || where != WhereKeyring || string(b) != testSecret {
		t.Fatalf("Get = %q, %v, %v; want the secret from the keyring", b, where, err)
	}
	if err := s.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, err := s.Get(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v; want ErrNotFound", err)
	}
	// Deleting what is not there is fine.
	if err := s.Delete(); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestSetRemovesStalePlainTextCopy(t *testing.T) {
	mockKeyring(t, nil)
	s := newStore(t)
	if err := writeFile(s.FallbackFile, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if where, err := s.Set([]byte(testSecret)); err != nil || where != WhereKeyring {
		t.Fatalf("Set = %v, %v", where, err)
	}
	if _, err := os.Stat(s.FallbackFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the old plain-text copy is still there (stat: %v)", err)
	}
}

func TestKeyringWinsOverFile(t *testing.T) {
	mockKeyring(t, nil)
	s := newStore(t)
	if err := writeFile(s.FallbackFile, []byte("from-file")); err != nil {
		t.Fatal(err)
	}
	if err := keyring.Set(s.Service, s.Account, "from-keyring"); err != nil {
		t.Fatal(err)
	}
	b, where, err := s.Get()
	if err != nil || where != WhereKeyring || string(b) != "from-keyring" {
		t.Fatalf("Get = %q, %v, %v; want the keyring's", b, where, err)
	}
}

func TestFallbackWhenUnavailable(t *testing.T) {
	mockKeyring(t, errors.New("mock: no keyring here"))
	s := newStore(t)

	where, err := s.Set([]byte(testSecret))
	noLeak(t, err)
	var fe *FallbackError
	if where != WhereFile || !errors.As(err, &fe) {
		t.Fatalf("Set = %v, %v; want the file and a *FallbackError", where, err)
	}
	if fe.File != s.FallbackFile || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("FallbackError = %+v; want file %s and a cause matching ErrUnavailable", fe, s.FallbackFile)
	}
	if !strings.Contains(err.Error(), s.FallbackFile+" (mode 0600) instead") {
		t.Fatalf("the message does not say where the secret went: %v", err)
	}
	t.Logf("message: %v", err)
	checkPrivateFile(t, s.FallbackFile)

	b, where, err := s.Get()
	if err != nil || where != WhereFile || string(b) != testSecret {
		t.Fatalf("Get = %q, %v, %v; want the secret from the file", b, where, err)
	}
	if err := s.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := os.Stat(s.FallbackFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete left the file (stat: %v)", err)
	}
	if _, _, err := s.Get(); !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get after Delete: %v; want ErrNotFound that also says the keyring is unavailable", err)
	}
}

// checkPrivateFile asserts path is mode 0600 in a 0700 directory.
func checkPrivateFile(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %04o; want 0600", path, perm)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("%s has mode %04o; want 0700", filepath.Dir(path), perm)
	}
}

func TestNoFallbackFileConfigured(t *testing.T) {
	mockKeyring(t, errors.New("mock: no keyring here"))
	s := newStore(t)
	dir := filepath.Dir(s.FallbackFile)
	s.FallbackFile = ""
	where, err := s.Set([]byte(testSecret))
	noLeak(t, err)
	if err == nil || where != 0 || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Set = %v, %v; want nowhere and an unavailable error", where, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Set created %s without a fallback file configured", dir)
	}
}

func TestGetRefusesFileOthersCanRead(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits mean nothing on Windows")
	}
	mockKeyring(t, nil)
	s := newStore(t)
	if err := writeFile(s.FallbackFile, []byte(testSecret)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.FallbackFile, 0o640); err != nil {
		t.Fatal(err)
	}
	_, where, err := s.Get()
	noLeak(t, err)
	if err == nil || where != 0 || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get = %v, %v; want a refusal", where, err)
	}
	if !strings.Contains(err.Error(), "0640") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("the refusal does not say why and what to do: %v", err)
	}
	t.Logf("message: %v", err)
}

func TestGetRefusesSymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	mockKeyring(t, nil)
	s := newStore(t)
	real := filepath.Join(t.TempDir(), "elsewhere")
	if err := writeFile(real, []byte(testSecret)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(s.FallbackFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, s.FallbackFile); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Get through a symlink: %v; want a refusal", err)
	}
}

func TestNotFound(t *testing.T) {
	mockKeyring(t, nil)
	s := newStore(t)
	if _, _, err := s.Get(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get = %v; want ErrNotFound", err)
	}
}

func TestBadInput(t *testing.T) {
	mockKeyring(t, nil)
	s := newStore(t)
	for _, b := range [][]byte{nil, []byte(" \n"), make([]byte, 5000)} {
		if _, err := s.Set(b); err == nil {
			t.Errorf("Set of a %d-byte bad secret succeeded", len(b))
		}
	}
	for _, bad := range []Store{{Account: "a"}, {Service: "s"}} {
		if _, err := bad.Set([]byte(testSecret)); err == nil {
			t.Errorf("Set with %+v succeeded", bad)
		}
		if _, _, err := bad.Get(); err == nil {
			t.Errorf("Get with %+v succeeded", bad)
		}
		if err := bad.Delete(); err == nil {
			t.Errorf("Delete with %+v succeeded", bad)
		}
	}
}

func TestAvailableWithMock(t *testing.T) {
	mockKeyring(t, nil)
	if err := Available(); err != nil {
		t.Fatalf("Available with a working keyring: %v", err)
	}
	mockKeyring(t, errors.New("mock: no keyring"))
	if err := Available(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Available with a failing keyring: %v; want ErrUnavailable", err)
	}
}

// TestCallBounded checks that a keyring call that hangs gives up after the
// timeout, that later calls fail fast while it still hangs instead of
// stacking up, and that calls work again once it returns.
func TestCallBounded(t *testing.T) {
	release := make(chan struct{})
	finished := make(chan struct{})
	err := call(50*time.Millisecond, func() error {
		defer close(finished)
		<-release
		return nil
	})
	var te *TimeoutError
	if !errors.As(err, &te) || unavailable(err) {
		t.Fatalf("hung call: %v; want a *TimeoutError that is not 'unavailable'", err)
	}
	start := time.Now()
	if err := call(50*time.Millisecond, func() error { return nil }); !errors.Is(err, errBusy) {
		t.Fatalf("call while one hangs: %v; want errBusy", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the busy call took %v", d)
	}
	close(release)
	<-finished
	// The slot is freed by the goroutine right after op returns.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := call(time.Second, func() error { return nil })
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls still fail after the hung one returned: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWhereString(t *testing.T) {
	for w, want := range map[Where]string{0: "nowhere", WhereKeyring: "the OS keyring", WhereFile: "a plain-text file"} {
		if got := w.String(); got != want {
			t.Errorf("Where(%d) = %q; want %q", w, got, want)
		}
	}
}
