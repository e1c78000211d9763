package bgservice

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kardianos/service"
)

// skipOrFail skips, or fails if the environment variable require is "1"
// (scripts/test-keyring-service.sh sets QTUNNEL_REQUIRE_SERVICE=1 when run
// as root, so that CI cannot pass by skipping).
func skipOrFail(t *testing.T, require, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(require) == "1" {
		t.Fatalf("%s (and %s=1 requires this test)", msg, require)
	}
	t.Skip(msg)
}

// TestRealService installs the test binary as a real system service under
// a unique name, starts it, checks that it runs the helper (RunService),
// stops it, removes it, and checks that nothing is left: no init script or
// unit, no rc links, no pid or log file, no process. It runs as root on
// System V (as here, without systemd as PID 1) or systemd.
func TestRealService(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "QTUNNEL_REQUIRE_SERVICE", "not root: installing a system service needs root")
	}
	platform := service.Platform()
	if platform != PlatformSystemV && platform != PlatformSystemd {
		skipOrFail(t, "QTUNNEL_REQUIRE_SERVICE", "kardianos chose %q here; this test knows unix-systemv and linux-systemd", platform)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "qtunnel-test-" + hex.EncodeToString(b)
	marker := filepath.Join(t.TempDir(), "marker")
	m, err := New(Config{
		Name:        name,
		Description: "QTunnel bgservice test",
		Executable:  exe,
		Args:        []string{"-service"},
		Env:         map[string]string{helperEnv: "run", helperNameEnv: name, helperMarkerEnv: marker},
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Platform() != platform {
		t.Fatalf("Platform = %q; kardianos says %q", m.Platform(), platform)
	}
	t.Logf("service %s on %s, program %s", name, platform, exe)

	// Whatever happens, leave nothing behind.
	t.Cleanup(func() {
		if err := m.Uninstall(); err != nil {
			t.Errorf("cleanup: Uninstall: %v", err)
		}
		if pid := markerPID(t, marker); pid != 0 && alive(pid) {
			t.Errorf("cleanup: the service process %d still runs; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, f := range leftovers(t, platform, name) {
			t.Errorf("cleanup: removing leftover %s", f)
			os.Remove(f)
		}
	})
	logs := func() string {
		var s strings.Builder
		for _, ext := range []string{".log", ".err"} {
			b, _ := os.ReadFile("/var/log/" + name + ext)
			fmt.Fprintf(&s, "--- /var/log/%s%s:\n%s", name, ext, b)
		}
		return s.String()
	}

	status := func(want Status) {
		t.Helper()
		st, err := m.Status()
		if err != nil || st != want {
			t.Fatalf("Status = %v, %v; want %v\n%s", st, err, want, logs())
		}
	}
	status(StatusNotInstalled)
	if err := m.Start(); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start before Install: %v; want ErrNotInstalled", err)
	}

	if err := m.Install(); err != nil {
		t.Fatalf("Install: %v", err)
	}
	status(StatusStopped) // kardianos alone reports an error here on System V (#364)
	if err := m.Install(); !errors.Is(err, ErrAlreadyInstalled) {
		t.Fatalf("second Install: %v; want ErrAlreadyInstalled", err)
	}
	t.Logf("installed: %v", leftovers(t, platform, name))

	if err := m.Start(); err != nil {
		t.Fatalf("Start: %v\n%s", err, logs())
	}
	var pid int
	if !waitFor(15*time.Second, func() bool {
		st, err := m.Status()
		pid = markerPID(t, marker)
		return err == nil && st == StatusRunning && pid != 0
	}) {
		st, err := m.Status()
		t.Fatalf("the service did not run the helper within 15s (status %v, %v; marker pid %d)\n%s", st, err, pid, logs())
	}
	if !alive(pid) {
		t.Fatalf("the helper's process %d is not running", pid)
	}
	if err := m.Start(); err != nil {
		t.Fatalf("Start while running: %v", err)
	}
	t.Logf("running as pid %d", pid)

	if err := m.Stop(); err != nil {
		t.Fatalf("Stop: %v\n%s", err, logs())
	}
	if !waitFor(15*time.Second, func() bool { return !alive(pid) }) {
		t.Fatalf("the helper's process %d still runs after Stop", pid)
	}
	if b, _ := os.ReadFile(marker); !bytes.HasSuffix(b, []byte("stopped\n")) {
		t.Fatalf("the helper was not stopped through its context (marker %q)\n%s", b, logs())
	}
	status(StatusStopped)
	if err := m.Stop(); err != nil {
		t.Fatalf("Stop while stopped: %v", err)
	}

	// kardianos's own uninstall, to see (and say) what it leaves behind.
	if err := m.ctl.Service.Uninstall(); err != nil {
		t.Fatalf("kardianos Uninstall: %v", err)
	}
	left := leftovers(t, platform, name)
	t.Logf("kardianos's Uninstall left behind: %v", left)
	if platform == PlatformSystemV && len(left) == 0 {
		t.Log("kardianos now cleans up after itself on System V: osservice.SysvCleanup may be obsolete")
	}
	status(StatusNotInstalled)

	// Manager.Uninstall on what is left: it cleans up.
	if err := m.Uninstall(); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	if left := leftovers(t, platform, name); len(left) != 0 {
		t.Fatalf("left behind after Uninstall: %v", left)
	}
	if procs := processesOf(t, name); len(procs) != 0 {
		t.Fatalf("processes of the service still run: %v", procs)
	}

	// And the whole cycle through Manager alone: install, start, remove
	// while running.
	os.Remove(marker)
	if err := m.Install(); err != nil {
		t.Fatalf("reinstall: %v", err)
	}
	if err := m.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if !waitFor(15*time.Second, func() bool { pid = markerPID(t, marker); return pid != 0 }) {
		t.Fatalf("the service did not start again\n%s", logs())
	}
	if err := m.Uninstall(); err != nil {
		t.Fatalf("Uninstall while running: %v", err)
	}
	if !waitFor(15*time.Second, func() bool { return !alive(pid) }) {
		t.Fatalf("Uninstall left the process %d running", pid)
	}
	status(StatusNotInstalled)
	if left := leftovers(t, platform, name); len(left) != 0 {
		t.Fatalf("left behind after Uninstall of a running service: %v", left)
	}
	if procs := processesOf(t, name); len(procs) != 0 {
		t.Fatalf("processes of the service still run: %v", procs)
	}
}

// leftovers lists the files the service manager has for name.
func leftovers(t *testing.T, platform, name string) []string {
	t.Helper()
	var patterns []string
	switch platform {
	case PlatformSystemV:
		patterns = []string{"/etc/init.d/" + name, "/etc/rc*.d/*" + name, "/var/run/" + name + ".pid", "/run/" + name + ".pid", "/var/log/" + name + ".*"}
	case PlatformSystemd:
		patterns = []string{"/etc/systemd/system/" + name + ".service", "/etc/systemd/system/*/" + name + ".service", "/var/log/" + name + ".*"}
	}
	var found []string
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range matches {
			if _, err := os.Lstat(f); err == nil {
				found = append(found, f)
			}
		}
	}
	return found
}

// alive reports whether pid runs (a zombie waiting for init to reap it
// counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// processesOf lists the pids whose environment names service name.
func processesOf(t *testing.T, name string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	needle := []byte(helperNameEnv + "=" + name + "\x00")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.ESRCH) {
				t.Logf("read the environment of %d: %v", pid, err)
			}
			continue
		}
		if bytes.Contains(append(env, 0), needle) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
