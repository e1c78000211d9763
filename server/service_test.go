package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kardianos/service"

	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/internal/svcinstall"
)

// TestServiceArgs checks the service's command line made from the
// installer's: every flag given kept (as -name=value), the service flags
// dropped, relative paths made absolute, words that are not paths left,
// and a secret on the command line refused.
func TestServiceArgs(t *testing.T) {
	const wd = "/srv/qt"
	tests := []struct {
		name    string
		args    []string
		want    []string
		wantErr string
	}{
		{"config file", []string{"-install-service", "-config", "/etc/qtunnel/server.yaml"},
			[]string{"-config=/etc/qtunnel/server.yaml"}, ""},
		{"design document's flags", []string{"-install-service", "-listen", ":443", "-backend", "127.0.0.1:22", "-quic", "-secret-file", "/etc/qtunnel/secret"},
			[]string{"-backend=127.0.0.1:22", "-listen=:443", "-quic=true", "-secret-file=/etc/qtunnel/secret"}, ""},
		{"relative paths", []string{"-install-service", "-config=server.yaml", "-secret-file=../keys/secret", "-state-dir=./state", "-cert-file=c.pem", "-key-file=k.pem", "-control=run/s.sock", "-masquerade=www"},
			[]string{"-cert-file=/srv/qt/c.pem", "-config=/srv/qt/server.yaml", "-control=/srv/qt/run/s.sock", "-key-file=/srv/qt/k.pem", "-masquerade=/srv/qt/www", "-secret-file=/srv/keys/secret", "-state-dir=/srv/qt/state"}, ""},
		{"words are not paths", []string{"-install-service", "-config=/c.yaml", "-control=off", "-masquerade=https://example.com", "-ca=system", "-clientmode=true"},
			[]string{"-ca=system", "-clientmode=true", "-config=/c.yaml", "-control=off", "-masquerade=https://example.com"}, ""},
		{"service name dropped", []string{"-service-name=qt2", "-install-service=true", "-config=/c.yaml", "-log-level=debug", "-drain-timeout=30s"},
			[]string{"-config=/c.yaml", "-drain-timeout=30s", "-log-level=debug"}, ""},
		{"secret refused", []string{"-install-service", "-listen=:443", "-backend=a:1", "-secret=hunter2"}, nil, "use -secret-file"},
		{"secret refused, double dash", []string{"-install-service", "-config=/c.yaml", "--secret", "hunter2"}, nil, "use -secret-file"},
		{"path with a space", []string{"-install-service", "-config=/etc/my configs/c.yaml"}, nil, "cannot hold spaces"},
		{"relative path with a dollar", []string{"-install-service", "-secret-file=$HOME/s"}, nil, "cannot hold spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o options
			fs := newFlagSet(&o)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := serviceArgs(fs, wd)
			if tt.wantErr != "" {
				var ue usageError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
					t.Fatalf("serviceArgs = %q, %v; want a usage error with %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error repeats the secret: %v", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("serviceArgs = %q, %v\nwant %q", got, err, tt.want)
			}
		})
	}
}

// TestInstallServiceRefuses checks what -install-service and the other
// service flags refuse before touching the system: each a one-line error.
func TestInstallServiceRefuses(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "secret")
	if err := os.WriteFile(good, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("0123456789abcdef0123456789abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"secret on the command line", []string{"-install-service", "-listen=:443", "-backend=127.0.0.1:22", "-secret=hunter2hunter2"}, nil, 2,
			"-install-service: the secret must not be on a service's command line, which every user can read (ps, the service's definition): use -secret-file=FILE (mode 0600) or secret-file: in the configuration"},
		{"secret from this shell", []string{"-install-service", "-listen=:443", "-backend=127.0.0.1:22"}, map[string]string{secret.EnvVar: "x"}, 2, "does not get QTUNNEL_SECRET"},
		{"no secret", []string{"-install-service", "-listen=:443", "-backend=127.0.0.1:22"}, nil, 2, "needs the secret in a file"},
		{"secret file others can read", []string{"-install-service", "-listen=:443", "-backend=127.0.0.1:22", "-secret-file=" + open}, nil, 1, "can be read by other users"},
		{"missing backend", []string{"-install-service", "-listen=:443", "-secret-file=" + good}, nil, 2, "-backend is required"},
		{"missing config", []string{"-install-service", "-config=" + filepath.Join(dir, "none.yaml")}, nil, 1, "none.yaml"},
		{"with -generate-secret", []string{"-install-service", "-generate-secret"}, nil, 2, "do not go with"},
		{"two actions", []string{"-install-service", "-uninstall-service"}, nil, 2, "one at a time"},
		{"bad action", []string{"-service=launch"}, nil, 2, "want start, stop, restart, status"},
		{"bad name", []string{"-uninstall-service", "-service-name=../x"}, nil, 2, "service name"},
		{"name alone", []string{"-listen=:1", "-backend=a:1", "-service-name=qt2"}, nil, 2, "goes with"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runArgs(t, tt.env, tt.args...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != tt.code || len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and one line with %q", code, stderr, tt.code, tt.want)
			}
			if stdout != "" || strings.Contains(stderr, "hunter2") {
				t.Errorf("stdout %q, stderr %q", stdout, stderr)
			}
		})
	}
}

// TestInstallServiceReal builds qtunnel and, as root, installs it as a
// real service with the flags form and relative paths, checks the init
// script, starts it, reaches its port, asks its status, stops it,
// removes it and checks that nothing is left but its logs (removed
// here). It runs where kardianos picks System V (this CI machine: no
// systemd as PID 1); a systemd unit is checked as text in package
// svcinstall.
func TestInstallServiceReal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: installing a system service needs root")
	}
	if p := service.Platform(); p != svcinstall.PlatformSystemV {
		t.Skipf("kardianos picks %s here; this test drives unix-systemv (its systemd unit would hide the test's /tmp: PrivateTmp)", p)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "qtunnel")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "qtunnel-test-" + hex.EncodeToString(b)
	script := "/etc/init.d/" + name
	logs := svcinstall.SysvLogFiles(name)

	qt := func(args ...string) (string, error) {
		if args[0] != "-generate-secret" {
			args = append(args, "-service-name="+name)
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(want string, args ...string) string {
		t.Helper()
		out, err := qt(args...)
		if err != nil || !strings.Contains(out, want) {
			errLog, _ := os.ReadFile(logs[1])
			t.Fatalf("qtunnel %s: %v\n%s\nwant %q; %s:\n%s", strings.Join(args, " "), err, out, want, logs[1], errLog)
		}
		return out
	}
	t.Cleanup(func() {
		if _, err := os.Stat(script); err == nil {
			if out, err := qt("-uninstall-service"); err != nil {
				t.Errorf("cleanup: %v\n%s", err, out)
			}
		}
		for _, f := range logs {
			_ = os.Remove(f)
		}
	})

	// A free port for the server's TCP listener.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	must("wrote", "-generate-secret", "-secret-file=secret")

	// Relative paths, from dir; the state stays in dir and there is no
	// control socket, so the machine's own qtunnel is not disturbed.
	out := must("installed the "+name+" service (unix-systemv, "+script+")",
		"-install-service", "-listen", addr, "-backend=127.0.0.1:9", "-secret-file=secret", "-state-dir=state", "-control=off")
	t.Logf("install:\n%s", out)
	text, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	wantCmd := `cmd="` + bin + " -backend=127.0.0.1:9 -control=off -listen=" + addr + " -secret-file=" + dir + "/secret -state-dir=" + dir + "/state\"\n"
	if !strings.Contains(string(text), wantCmd) {
		t.Fatalf("the init script lacks %q:\n%s", wantCmd, text)
	}
	if out, err := exec.Command("sh", "-n", script).CombinedOutput(); err != nil {
		t.Errorf("sh -n %s: %v\n%s", script, err, out)
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command(sc, "-s", "sh", script).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", script, err, out)
		}
	}
	for _, l := range []string{"/etc/rc2.d/S50" + name, "/etc/rc0.d/K02" + name} {
		if target, err := os.Readlink(l); err != nil || target != script {
			t.Errorf("rc link %s -> %q, %v", l, target, err)
		}
	}
	if out, err := qt("-install-service", "-listen", addr, "-backend=127.0.0.1:9", "-secret-file=secret"); err == nil || !strings.Contains(out, "already installed") {
		t.Errorf("a second install: %v, %q; want already installed", err, out)
	}
	must(name+" (unix-systemv): stopped", "-service=status")

	must(name+" (unix-systemv): running", "-service=start")
	var c net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for c == nil {
		if c, err = net.DialTimeout("tcp", addr, time.Second); err != nil && time.Now().After(deadline) {
			t.Fatalf("the service does not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Close()
	must(name+" (unix-systemv): running", "-service=status")
	must(name+" (unix-systemv): running", "-service=restart")
	must(name+" (unix-systemv): stopped", "-service=stop")
	if errLog, err := os.ReadFile(logs[1]); err != nil || !strings.Contains(string(errLog), "server started") || !strings.Contains(string(errLog), "server stopped") {
		t.Errorf("%s (%v):\n%s\nwant the server's start and stop", logs[1], err, errLog)
	}

	must("removed the "+name+" service", "-uninstall-service")
	left, _ := filepath.Glob("/etc/rc[0-6].d/*" + name)
	for _, f := range append([]string{script, "/var/run/" + name + ".pid"}, left...) {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("left behind: %s", f)
		}
	}
	if out, err := qt("-uninstall-service"); err == nil || !strings.Contains(out, "not installed") {
		t.Errorf("removing it again: %v, %q; want not installed", err, out)
	}
}
