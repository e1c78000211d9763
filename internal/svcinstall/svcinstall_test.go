package svcinstall

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/kardianos/service"

	"github.com/qtunnel/qtunnel/internal/osservice"
)

func TestCheckArg(t *testing.T) {
	tests := []struct {
		arg  string
		want string // "" for accepted, ErrSecretArg's text, or a part of the error
	}{
		{"-config=/etc/qtunnel/server.yaml", ""},
		{"-listen=[::1]:443", ""},
		{"-quic=true", ""},
		{"-secret-file=/etc/qtunnel/secret", ""},
		{"-masquerade=https://example.com/a?b=c&d", ""},
		{"-secret=abc", "use -secret-file"},
		{"--secret=abc", "use -secret-file"},
		{"-secret", "use -secret-file"},
		{"-config=/etc/my dir/server.yaml", "spaces, quotes"},
		{`-config=/etc/"q"/server.yaml`, "spaces, quotes"},
		{"-config=/etc/$HOME/server.yaml", "spaces, quotes"},
		{"-config=/etc/100%/server.yaml", "spaces, quotes"},
		{`-config=C:\server.yaml`, "spaces, quotes"},
		{"-config=/etc/`id`", "spaces, quotes"},
		{"-config=/etc/a\nb", "control characters"},
	}
	for _, tt := range tests {
		err := CheckArg(tt.arg)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckArg(%q) = %v; want nil", tt.arg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckArg(%q) = %v; want an error with %q", tt.arg, err, tt.want)
		}
	}
	if err := CheckArg("-secret=x"); !errors.Is(err, ErrSecretArg) {
		t.Errorf("CheckArg(-secret=x) = %v; want ErrSecretArg", err)
	}
	if strings.Contains(ErrSecretArg.Error(), "\n") {
		t.Error("ErrSecretArg is not one line")
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"qtunnel", "qtunnel-2", "qt.vpn_1"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "a b", "../x", "a/b", strings.Repeat("a", 65)} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) = nil", bad)
		}
	}
}

// TestSystemdUnit has kardianos's own systemd backend write the unit from
// SystemdUnit (as a user unit into a throwaway HOME, with a systemctl
// that does nothing: the text is the same as for the system unit, which
// goes to /etc/systemd/system), and checks it: the command line, the
// restart policy and the sandbox. systemd is not PID 1 here, so the unit
// is not started; where systemd-analyze is installed, it checks the unit
// (verify) and scores its sandbox (security --offline).
func TestSystemdUnit(t *testing.T) {
	sys := osservice.Backend(PlatformSystemd)
	if sys == nil {
		t.Skipf("kardianos has no %s backend on %s", PlatformSystemd, runtime.GOOS)
	}
	home, bin := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	analyze, _ := exec.LookPath("systemd-analyze")
	t.Setenv("HOME", home)
	t.Setenv("PATH", bin)
	exe, err := os.Executable() // a program that exists, for systemd-analyze verify
	if err != nil {
		t.Fatal(err)
	}
	c := Config{
		Name:        "qtunnel-unit-test",
		Description: "QTunnel server (TCP over an authenticated QUIC or TLS tunnel)",
		Executable:  exe,
		Args:        []string{"-config=/etc/qtunnel/server.yaml", "-listen=[::]:443", "-secret-file=/etc/qtunnel/secret"},
	}
	if err := check(c); err != nil {
		t.Fatal(err)
	}
	s, err := sys.New(osservice.NoProgram{}, kardianosConfig(c, service.KeyValue{"UserService": true}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Install(); err != nil {
		t.Fatalf("kardianos Install: %v", err)
	}
	path := filepath.Join(home, ".config", "systemd", "user", c.Name+".service")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	t.Logf("the unit kardianos wrote:\n%s", unit)
	for _, want := range []string{
		"\nDescription=QTunnel server (TCP over an authenticated QUIC or TLS tunnel)\n",
		"\nConditionFileIsExecutable=" + exe + "\n",
		"\nExecStart=" + exe + ` "-config=/etc/qtunnel/server.yaml" "-listen=[::]:443" "-secret-file=/etc/qtunnel/secret"` + "\n",
		"\nExecReload=/bin/kill -HUP $MAINPID\n",
		"\nRestart=on-failure\n",
		"\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"\nNoNewPrivileges=yes\n",
		"\nProtectSystem=full\n",
		"\nProtectHome=read-only\n",
		"\nPrivateTmp=yes\n",
		"\nMemoryDenyWriteExecute=yes\n",
		"\nSystemCallFilter=~@privileged @resources\n",
		"\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	for _, bad := range []string{"{{", "}}", "Restart=always", "DynamicUser", "User=", "\nEnvironment"} {
		if strings.Contains(unit, bad) {
			t.Errorf("the unit contains %q", bad)
		}
	}
	if analyze == "" {
		t.Log("systemd-analyze is not installed: the unit was not verified")
		return
	}
	dir := t.TempDir()
	unitFile := filepath.Join(dir, c.Name+".service")
	if err := os.WriteFile(unitFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	out, err := exec.Command(analyze, "verify", unitFile).CombinedOutput()
	// verify also reports the units this one names that this machine
	// lacks (network-online.target in a container); only lines about
	// this unit count.
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, c.Name) {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
	if err != nil && strings.Contains(string(out), c.Name) {
		t.Errorf("systemd-analyze verify: %v", err)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", unitFile).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security --offline=yes: %s %s", m[1], m[2])
	// Root with one capability and most of the packaged unit's sandbox
	// (which scores 1.5 with its own user): 2.1 with systemd 252. More
	// than 3 means a hardening line went missing.
	if score > 3.0 {
		t.Errorf("exposure %.1f, want at most 3.0:\n%s", score, out)
	}
}

// TestUnreadableByService checks the reading rules of root without
// CAP_DAC_OVERRIDE: files of another user, and a directory of another user
// above a file of root's. It needs root to give files away.
func TestUnreadableByService(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: giving files to another user needs root")
	}
	const nobody = 65534
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, nobody); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootOwned := write("root-0600", 0o600, 0)
	othersRead := write("nobody-0644", 0o644, nobody)
	nobodys := write("nobody-0600", 0o600, nobody)
	sub := filepath.Join(dir, "private")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(sub, "root-file")
	if err := os.WriteFile(inside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sub, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(nobodys, link); err != nil {
		t.Fatal(err)
	}
	got := UnreadableByService([]string{rootOwned, othersRead, nobodys, inside, link, filepath.Join(dir, "missing"), ""})
	t.Logf("%q", got)
	if len(got) != 3 {
		t.Fatalf("got %d complaints, want 3 (nobody's 0600 file, a file under nobody's 0700 directory, a link to it)", len(got))
	}
	for i, want := range []string{nobodys + ": the service could not read", inside + ": the service could not search " + sub, link + ": the service could not read " + nobodys} {
		if !strings.HasPrefix(got[i], want) {
			t.Errorf("complaint %d = %q; want it to start with %q", i, got[i], want)
		}
	}
}
