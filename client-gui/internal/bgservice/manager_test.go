//go:build linux

package bgservice

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/qtunnel/qtunnel/internal/osservice"
)

// fakeSystemdManager is a Manager on kardianos's systemd backend for a
// user service, with a throwaway HOME and a systemctl script that fails
// for the actions listed in fail and succeeds (saying nothing) otherwise.
func fakeSystemdManager(t *testing.T, fail ...string) (*Manager, string) {
	t.Helper()
	sys := osservice.Backend(PlatformSystemd)
	if sys == nil {
		t.Skipf("kardianos has no %s backend on %s", PlatformSystemd, runtime.GOOS)
	}
	home, bin := t.TempDir(), t.TempDir()
	script := "#!/bin/sh\ncase \"$1\" in\n"
	for _, f := range fail {
		script += "\t" + f + ") echo \"fake systemctl: $1 fails\" >&2; exit 1;;\n"
	}
	script += "\tis-active) exit 3;;\nesac\nexit 0\n"
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("PATH", bin)
	c, err := prepare(testConfig(), PlatformSystemd)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kardianosConfig(c, PlatformSystemd)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sys.New(osservice.NoProgram{}, kc)
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(c, s, PlatformSystemd)
	return m, filepath.Join(home, ".config", "systemd", "user", c.Name+".service")
}

// TestInstallRollsBack checks that an Install failing after the unit was
// written (systemctl --user enable fails) removes the unit again, even
// when kardianos's own uninstall gives up (disable fails too).
func TestInstallRollsBack(t *testing.T) {
	m, unit := fakeSystemdManager(t, "enable", "disable")
	if st, err := m.Status(); st != StatusNotInstalled || err != nil {
		t.Fatalf("Status = %v, %v", st, err)
	}
	err := m.Install()
	if err == nil || !strings.Contains(err.Error(), "install qtunnel-client (linux-systemd)") {
		t.Fatalf("Install = %v; want the failure, in context", err)
	}
	t.Logf("error: %v", err)
	if _, err := os.Stat(unit); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the half-installed unit %s is still there (%v)", unit, err)
	}
}

// TestInstallRefusesExistingUnit checks that Install does not overwrite a
// unit file that exists although systemctl does not know it.
func TestInstallRefusesExistingUnit(t *testing.T) {
	m, unit := fakeSystemdManager(t)
	if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unit, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Install(); !errors.Is(err, ErrAlreadyInstalled) {
		t.Fatalf("Install = %v; want ErrAlreadyInstalled", err)
	}
	if b, _ := os.ReadFile(unit); string(b) != "mine" {
		t.Fatalf("the existing unit was changed: %q", b)
	}
}

// TestSystemdUnitIsWhatKardianosWrites installs a user service through
// Manager and kardianos's own systemd backend (with a systemctl that does
// nothing) into a throwaway HOME, and compares the unit written where
// systemd --user looks with SystemdUnit: the text the tests check is the
// text kardianos writes.
func TestSystemdUnitIsWhatKardianosWrites(t *testing.T) {
	m, unit := fakeSystemdManager(t)
	if err := m.Install(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	want, err := SystemdUnit(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("installed unit:\n%s\nwant:\n%s", got, want)
	}
}
