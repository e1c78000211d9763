package secretstore

// Tests against the real Secret Service (gnome-keyring) and against
// sessions without one. Each runs its body in a child process (the test
// binary again, limited to that test): go-keyring's provider is global and
// the unit tests replace it with a mock, and godbus keeps one session-bus
// connection per process, so a session changed with t.Setenv would not be
// seen once any test has connected.
//
// scripts/test-keyring-service.sh runs them in a throwaway D-Bus session
// with an unlocked gnome-keyring and QTUNNEL_REQUIRE_KEYRING=1, which
// turns "no keyring, skipped" into a failure.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const childEnv = "QTUNNEL_SECRETSTORE_CHILD"

// inChild reports whether this process is the child running test name.
func inChild(name string) bool { return os.Getenv(childEnv) == name }

// runChild runs test name in a child process with env added (replacing
// DBUS_SESSION_BUS_ADDRESS if env sets it) and fails if the child does.
func runChild(t *testing.T, name string, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, childEnv+"=") {
			continue
		}
		if strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") && hasKey(env, "DBUS_SESSION_BUS_ADDRESS") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, childEnv+"="+name)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	t.Logf("child %s:\n%s", name, out)
	if err != nil {
		t.Fatalf("child %s failed: %v", name, err)
	}
	if bytes.Contains(out, []byte("--- SKIP")) {
		t.Skipf("child %s skipped (see above)", name)
	}
}

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// skipOrFail skips, or fails if the environment variable require is "1"
// (set by the script, so that CI cannot pass by skipping).
func skipOrFail(t *testing.T, require, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(require) == "1" {
		t.Fatalf("%s (and %s=1 requires it)", msg, require)
	}
	t.Skip(msg + " (run scripts/test-keyring-service.sh for the real test)")
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestRealKeyring stores, reads and deletes a test item in the session's
// real Secret Service, and checks that the secret is in no file: not in
// the fallback location, nor (encrypted as gnome-keyring keeps it) in
// plain text anywhere under HOME.
func TestRealKeyring(t *testing.T) {
	if !inChild(t.Name()) {
		if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
			skipOrFail(t, "QTUNNEL_REQUIRE_KEYRING", "DBUS_SESSION_BUS_ADDRESS is not set: no session bus to find a Secret Service on")
		}
		runChild(t, t.Name())
		return
	}
	if err := Available(); err != nil {
		skipOrFail(t, "QTUNNEL_REQUIRE_KEYRING", "the keyring is not usable on this session: %v", err)
	}
	secret := "qtunnel-test-secret-" + randomHex(t, 16)
	s := Store{
		Service:      "qtunnel-test-" + randomHex(t, 4),
		Account:      "client",
		FallbackFile: filepath.Join(t.TempDir(), "qtunnel", "secret"),
	}
	t.Cleanup(func() { s.Delete() })

	where, err := s.Set([]byte(secret))
	if err != nil || where != WhereKeyring {
		t.Fatalf("Set = %v, %v; want the keyring", where, err)
	}
	b, where, err := s.Get()
	if err != nil || where != WhereKeyring || string(b) != secret {
		t.Fatalf("Get = %v, %v (match %v); want the secret from the keyring", where, err, string(b) == secret)
	}
	if _, err := os.Stat(s.FallbackFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a fallback file was written although the keyring works (stat: %v)", err)
	}

	// Look for the secret in plain text in every file that could hold it.
	dirs := []string{filepath.Dir(filepath.Dir(s.FallbackFile))}
	home := os.Getenv("HOME")
	if home != "" && isUnder(home, os.TempDir()) {
		dirs = append(dirs, home) // a throwaway HOME, as the script makes
	} else {
		// A real HOME: only where gnome-keyring keeps its keyrings.
		data := os.Getenv("XDG_DATA_HOME")
		if data == "" {
			data = filepath.Join(home, ".local", "share")
		}
		dirs = append(dirs, filepath.Join(data, "keyrings"))
		t.Logf("HOME %s is not a throwaway directory: searching only %s", home, dirs[1])
	}
	n := 0
	for _, d := range dirs {
		n += searchFiles(t, d, []byte(secret))
	}
	if n == 0 {
		t.Fatalf("no file searched under %v: where does this keyring keep its items?", dirs)
	}
	t.Logf("the secret is in none of the %d files under %v", n, dirs)

	if err := s.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, err := s.Get(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v; want ErrNotFound", err)
	}
}

func isUnder(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}

// searchFiles fails the test if a regular file under dir contains needle,
// and returns how many files it read.
func searchFiles(t *testing.T, dir string, needle []byte) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(b, needle) {
			t.Errorf("the secret is in plain text in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("search %s: %v", dir, err)
	}
	return n
}

// TestFallbackDeadBus points the session at a D-Bus socket nobody listens
// on: go-keyring fails, and the secret goes to the fallback file (0600),
// with a message that says so.
func TestFallbackDeadBus(t *testing.T) {
	if !inChild(t.Name()) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "dead-bus")
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close() // the socket file stays; connecting to it is refused
		runChild(t, t.Name(), "DBUS_SESSION_BUS_ADDRESS=unix:path="+sock)
		return
	}
	checkFallback(t, "no Secret Service on this session: the D-Bus session bus cannot be reached")
}

// TestFallbackNoSecretService runs a private session bus that provides no
// Secret Service (no service files, so nothing can be started on demand):
// the bus answers, the Secret Service does not.
func TestFallbackNoSecretService(t *testing.T) {
	if !inChild(t.Name()) {
		daemon, err := exec.LookPath("dbus-daemon")
		if err != nil {
			skipOrFail(t, "QTUNNEL_REQUIRE_KEYRING", "no dbus-daemon to run a bus without a Secret Service: %v", err)
		}
		addr := startBus(t, daemon)
		runChild(t, t.Name(), "DBUS_SESSION_BUS_ADDRESS="+addr)
		return
	}
	checkFallback(t, "no Secret Service on this session (is gnome-keyring or KWallet running?)")
}

// TestNoSessionBus checks that with no session bus at all the store says so
// without calling go-keyring (which would run dbus-launch and leave a
// stray bus daemon behind).
func TestNoSessionBus(t *testing.T) {
	if _, err := os.Stat(fmt.Sprintf("/run/user/%d/bus", os.Getuid())); err == nil {
		t.Skip("this user has a login session bus, which godbus finds without DBUS_SESSION_BUS_ADDRESS")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	err := sessionCheck()
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "DBUS_SESSION_BUS_ADDRESS is not set") {
		t.Fatalf("sessionCheck = %v; want unavailable, no session bus", err)
	}
	// Through the API: no keyring call is made, so this cannot reach the
	// mock or a real keyring.
	s := Store{Service: "qtunnel-test", Account: "client", FallbackFile: filepath.Join(t.TempDir(), "secret")}
	where, err := s.Set([]byte(testSecret))
	var fe *FallbackError
	if where != WhereFile || !errors.As(err, &fe) {
		t.Fatalf("Set = %v, %v; want the fallback file", where, err)
	}
	t.Logf("message: %v", err)
}

// checkFallback is the child's side of the fallback tests: Set goes to the
// file with a message containing reason, Get reads it back, Delete
// removes it.
func checkFallback(t *testing.T, reason string) {
	t.Helper()
	if err := Available(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Available = %v; want ErrUnavailable", err)
	}
	s := Store{
		Service:      "qtunnel-test",
		Account:      "client",
		FallbackFile: filepath.Join(t.TempDir(), "qtunnel", "secret"),
		Timeout:      10 * time.Second,
	}
	where, err := s.Set([]byte(testSecret))
	noLeak(t, err)
	var fe *FallbackError
	if where != WhereFile || !errors.As(err, &fe) {
		t.Fatalf("Set = %v, %v; want the fallback file", where, err)
	}
	tail := ": the secret was written to " + s.FallbackFile + " (mode 0600) instead"
	if msg := err.Error(); !strings.HasPrefix(msg, reason) || !strings.HasSuffix(msg, tail) {
		t.Fatalf("Set's message:\n  %v\nwant it to start with\n  %s\nand end with\n  %s", err, reason, tail)
	}
	t.Logf("message: %v", err)
	checkPrivateFile(t, s.FallbackFile)
	b, where, err := s.Get()
	if err != nil || where != WhereFile || string(b) != testSecret {
		t.Fatalf("Get = %v, %v; want the secret from the file", where, err)
	}
	if err := s.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := os.Stat(s.FallbackFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete left the file (stat: %v)", err)
	}
}

// startBus starts a session bus of its own, with no service files, on a
// socket in a temporary directory; the test stops it.
func startBus(t *testing.T, daemon string) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	err := os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+sock+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--nofork", "--nopidfile", "--config-file="+conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", daemon, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return "unix:path=" + sock
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("dbus-daemon exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dbus-daemon did not listen on %s within 10s", sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
