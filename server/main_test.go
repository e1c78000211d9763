package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/secret"
)

func runArgs(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	stateDir := t.TempDir() // never the real state directory
	getenv := func(k string) string {
		if v, ok := env[k]; ok || k != "STATE_DIRECTORY" {
			return v
		}
		return stateDir
	}
	// No control socket at the default path: tests run side by side.
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && !strings.HasPrefix(args[0], "-h") && !strings.HasPrefix(args[0], "--h") {
		args = append([]string{"-control=off"}, args...)
	}
	// A cancelled context: commands that would serve stop at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code := run(ctx, args, &stdout, &stderr, getenv)
	return code, stdout.String(), stderr.String()
}

func TestUsageErrors(t *testing.T) {
	secretPath := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(secretPath, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the one line on stderr
	}{
		{"unknown flag", []string{"-bogus"}, nil, "flag provided but not defined: -bogus"},
		{"bad bool", []string{"-quic=maybe"}, nil, "invalid boolean value"},
		{"stray argument", []string{"-listen=:1", "extra"}, nil, `unexpected argument "extra"`},
		{"no listen", []string{"-backend=a:1", "-secret=x"}, nil, "-listen is required"},
		{"no backend", []string{"-listen=:1", "-secret=x"}, nil, "-backend is required"},
		{"client no backend", []string{"-listen=:1", "-clientmode=true"}, nil, "QTunnel server's host:port"},
		{"backend without port", []string{"-listen=:1", "-backend=server"}, nil, "missing port"},
		{"backend without host", []string{"-listen=:1", "-backend=:80"}, nil, "a host is needed"},
		{"bad port", []string{"-listen=:1", "-backend=a:http2"}, nil, "must be a number"},
		{"port too big", []string{"-listen=:1", "-backend=a:70000"}, nil, "must be a number"},
		{"ipv6 without brackets", []string{"-listen=:1", "-backend=::1:80"}, nil, "too many colons"},
		{"no secret", []string{"-listen=:1", "-backend=a:1"}, nil, "no secret given"},
		{"several backends for a server", []string{"-listen=:1", "-backend=a:1,b:1", "-secret=x"}, nil, "a server forwards to one backend"},
		{"a client's server listed twice", []string{"-listen=:1", "-backend=a:1,a:1", "-clientmode=true", "-secret=x"}, nil, "a:1 is listed twice"},
		{"a bad one in a client's list", []string{"-listen=:1", "-backend=a:1,b", "-clientmode=true", "-secret=x"}, nil, "missing port"},
		{"two secrets", []string{"-listen=:1", "-backend=a:1", "-secret=x", "-secret-file=" + secretPath}, nil, "more than one way"},
		{"secret twice via env", []string{"-listen=:1", "-backend=a:1", "-secret=x"}, map[string]string{secret.EnvVar: "y"}, "more than one way"},
		{"cert without key", []string{"-listen=:1", "-backend=a:1", "-cert-file=a"}, nil, "go together"},
		{"cert on client", []string{"-listen=:1", "-backend=a:1", "-clientmode=true", "-cert-file=a", "-key-file=b"}, nil, "are for the server"},
		{"pin on server", []string{"-listen=:1", "-backend=a:1", "-pin=sha256:00"}, nil, "-pin is for the client"},
		{"bad pin", []string{"-listen=:1", "-backend=127.0.0.1:1", "-clientmode=true", "-secret=x", "-pin=abc"}, nil, "want sha256:"},
		{"bad log level", []string{"-listen=:1", "-backend=a:1", "-log-level=loud"}, nil, "-log-level=loud"},
		{"bad log format", []string{"-listen=:1", "-backend=a:1", "-log-format=xml"}, nil, "-log-format=xml"},
		{"bad pool", []string{"-listen=:1", "-backend=a:1", "-pool=0"}, nil, "-pool=0"},
		{"bad congestion", []string{"-listen=:1", "-backend=a:1", "-congestion=vegas"}, nil, "want bbr or reno"},
		{"public pprof", []string{"-listen=:1", "-backend=a:1", "-pprof=0.0.0.0:6060"}, nil, "loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runArgs(t, tt.env, tt.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "qtunnel: ") || !strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr = %q, want one line starting \"qtunnel: \" containing %q", stderr, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-help", "--help", "-h"} {
		code, stdout, _ := runArgs(t, nil, arg)
		if code != 0 {
			t.Errorf("%s: exit code %d", arg, code)
		}
		for _, want := range []string{"Examples:", "-clientmode", "-generate-secret", "-pin", "-secret-file", "QTUNNEL_SECRET"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s: usage lacks %q", arg, want)
			}
		}
	}
	if code, _, stderr := runArgs(t, nil); code != 2 || !strings.Contains(stderr, "Usage:") {
		t.Errorf("no arguments: exit %d, stderr %q; want usage and 2", code, stderr)
	}
}

func TestGenerateSecret(t *testing.T) {
	code, stdout, stderr := runArgs(t, nil, "-generate-secret")
	if code != 0 || len(strings.TrimSpace(stdout)) != 43 {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	if !strings.Contains(stderr, "-secret-file") {
		t.Errorf("no advice on keeping it: %q", stderr)
	}
	path := filepath.Join(t.TempDir(), "secret")
	if code, _, stderr := runArgs(t, nil, "-generate-secret", "-secret-file="+path); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, mode %v", err, fi.Mode())
	}
	s, err := secret.FromFile(path)
	if err != nil || secret.Weak(s) {
		t.Fatalf("generated secret unusable: %v", err)
	}
	before, _ := os.ReadFile(path)
	if code, _, stderr := runArgs(t, nil, "-generate-secret", "-secret-file="+path); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("overwrite: exit %d, %q; want 1 and a refusal", code, stderr)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the existing secret file was changed")
	}
}

func TestGenerateCert(t *testing.T) {
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	code, stdout, stderr := runArgs(t, nil, "-generate-cert", "-cert-file="+crt, "-key-file="+key, "-cert-hosts=vpn.example,192.0.2.7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	c, err := cert.Load(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := cert.LeafFingerprint(c)
	if !strings.Contains(stdout, fp.String()) {
		t.Errorf("fingerprint %s not printed: %q", fp, stdout)
	}
	if code, _, stderr := runArgs(t, nil, "-generate-cert", "-cert-file="+crt, "-key-file="+key); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("second run: exit %d, %q; want 1 and a refusal to overwrite", code, stderr)
	}
}

func TestRuntimeErrorsExit1(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	loose := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(loose, []byte("a strong enough secret for this test 123456"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"port in use", []string{"-listen=" + busy.Addr().String(), "-backend=127.0.0.1:1", "-secret=x", "-state-dir=" + t.TempDir()}, "address already in use"},
		{"unknown server host", []string{"-listen=127.0.0.1:0", "-backend=no-such-host.invalid:443", "-clientmode=true", "-secret=x"}, "no such host"},
		{"secret file readable by others", []string{"-listen=:1", "-backend=a:1", "-secret-file=" + loose}, "chmod 600"},
		{"missing cert file", []string{"-listen=127.0.0.1:0", "-backend=a:1", "-secret=x", "-cert-file=/nonexistent.crt", "-key-file=/nonexistent.key"}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runArgs(t, nil, tt.args...)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			last := strings.TrimSpace(stderr)
			if i := strings.LastIndex(last, "\n"); i >= 0 {
				last = last[i+1:] // warnings may precede the error line
			}
			if !strings.HasPrefix(last, "qtunnel: ") || !strings.Contains(last, tt.want) {
				t.Errorf("last stderr line %q, want \"qtunnel: ...%s...\"", last, tt.want)
			}
		})
	}
}

func TestSecretWarnings(t *testing.T) {
	// The design document's own example secret: on the command line, and weak.
	code, _, stderr := runArgs(t, nil, "-listen=127.0.0.1:0", "-backend=127.0.0.1:1", "-secret=mysecret", "-state-dir="+t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"can be read by other users", "the secret is weak", "-generate-secret"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no warning containing %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "mysecret") {
		t.Error("the secret itself was logged")
	}
	// A strong secret from the environment: neither warning.
	strong, _ := secret.Generate()
	_, _, stderr = runArgs(t, map[string]string{secret.EnvVar: strong}, "-listen=127.0.0.1:0", "-backend=127.0.0.1:1", "-state-dir="+t.TempDir())
	if strings.Contains(stderr, "weak") || strings.Contains(stderr, "other users") {
		t.Errorf("warnings for a strong secret from the environment:\n%s", stderr)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runArgs(t, nil, "-version")
	if code != 0 || !strings.HasPrefix(stdout, "qtunnel ") {
		t.Errorf("exit %d, %q", code, stdout)
	}
}

func TestJSONLogs(t *testing.T) {
	_, _, stderr := runArgs(t, nil, "-listen=127.0.0.1:0", "-backend=127.0.0.1:1", "-secret=mysecret",
		"-state-dir="+t.TempDir(), "-log-format=json")
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) < 3 {
		t.Fatalf("too few log lines: %q", stderr)
	}
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil || v["msg"] == nil || v["level"] == nil {
			t.Errorf("not a JSON log line: %q (%v)", l, err)
		}
	}
}
