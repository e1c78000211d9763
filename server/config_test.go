package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qtunnel/qtunnel/core/config"
)

// TestBuildConfig: flags given on the command line win over the file,
// flags not given leave it alone, and the flags alone make a config.
func TestBuildConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	client := write("client.yaml", "mode: client\ntransport: quic\nserver: a.example:443\nsecret-file: s\nlog:\n  level: warn\nforwards:\n  - listen: 127.0.0.1:5432\n    target: db\n  - listen: 127.0.0.1:8080\n")
	server := write("server.yaml", "mode: server\nlisten: \":443\"\nsecret-files: [s1, s2]\ntargets:\n  db: 10.0.0.5:5432\n")
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c *config.Config)
		err   string
	}{
		{name: "file alone", args: []string{"-config=" + client}, check: func(t *testing.T, c *config.Config) {
			if c.Server != "a.example:443" || len(c.Forwards) != 2 || c.LogLevel != "warn" || c.Transport != "quic" || c.Pool != 0 {
				t.Errorf("%+v", c)
			}
		}},
		{name: "-backend is the client's server", args: []string{"-config=" + client, "-backend=b.example:8443"}, check: func(t *testing.T, c *config.Config) {
			if c.Server != "b.example:8443" || len(c.Forwards) != 2 {
				t.Errorf("server %s, %d forwards", c.Server, len(c.Forwards))
			}
		}},
		{name: "-listen replaces the forwards", args: []string{"-config=" + client, "-listen=127.0.0.1:9"}, check: func(t *testing.T, c *config.Config) {
			if !reflect.DeepEqual(c.Forwards, []config.Forward{{Name: "default", Listen: "127.0.0.1:9"}}) {
				t.Errorf("forwards %+v", c.Forwards)
			}
		}},
		{name: "flags win, unset flags do not", args: []string{"-config=" + client, "-quic=false", "-log-format=json", "-secret-file=/x"}, check: func(t *testing.T, c *config.Config) {
			if c.Transport != "tcp" || c.LogFormat != "json" || c.LogLevel != "warn" || !reflect.DeepEqual(c.SecretFiles, []string{"/x"}) {
				t.Errorf("%+v", c)
			}
		}},
		{name: "-backend is the server's default target", args: []string{"-config=" + server, "-backend=10.0.0.6:80"}, check: func(t *testing.T, c *config.Config) {
			want := []config.Target{{Name: "db", Address: "10.0.0.5:5432"}, {Name: "default", Address: "10.0.0.6:80"}}
			if !reflect.DeepEqual(c.Targets, want) || c.DefaultTarget != "default" || len(c.SecretFiles) != 2 {
				t.Errorf("targets %+v default %q secrets %v", c.Targets, c.DefaultTarget, c.SecretFiles)
			}
		}},
		{name: "flags alone: client", args: []string{"-listen=127.0.0.1:8080", "-backend=s.example:443", "-clientmode=true", "-quic=true", "-pool=7"}, check: func(t *testing.T, c *config.Config) {
			if c.Mode != config.ModeClient || c.Server != "s.example:443" || c.Pool != 7 || c.Transport != "quic" || c.LogLevel != "info" ||
				!reflect.DeepEqual(c.Forwards, []config.Forward{{Name: "default", Listen: "127.0.0.1:8080"}}) {
				t.Errorf("%+v", c)
			}
		}},
		{name: "-backend lists a client's servers", args: []string{"-listen=127.0.0.1:8080", "-backend=a.example:443,[2001:db8::1]:443", "-clientmode=true"}, check: func(t *testing.T, c *config.Config) {
			want := []config.ServerEntry{{Address: "a.example:443"}, {Address: "[2001:db8::1]:443"}}
			if c.Server != "a.example:443" || !reflect.DeepEqual(c.Servers, want) {
				t.Errorf("server %q, servers %+v", c.Server, c.Servers)
			}
		}},
		{name: "-backend with one server replaces a file's list", args: []string{"-config=" + write("many.yaml", "mode: client\nservers: [a:1, b:2]\nforwards: [{listen: \":1\"}]\n"), "-backend=b.example:8443"}, check: func(t *testing.T, c *config.Config) {
			if c.Server != "b.example:8443" || c.Servers != nil {
				t.Errorf("server %q, servers %+v", c.Server, c.Servers)
			}
		}},
		{name: "flags alone: server", args: []string{"-listen=:443", "-backend=internal:80"}, check: func(t *testing.T, c *config.Config) {
			if c.Mode != config.ModeServer || c.Listen != ":443" || c.Transport != "tcp" || c.DefaultTarget != "default" || len(c.Targets) != 1 {
				t.Errorf("%+v", c)
			}
		}},
		{name: "role contradicts the file", args: []string{"-config=" + server, "-clientmode=true"}, err: "contradicts mode: server"},
		{name: "file with errors", args: []string{"-config=" + write("bad.yaml", "mode: client\nforwards: 3\n")}, err: "bad.yaml:2: forwards"},
		{name: "missing file", args: []string{"-config=" + filepath.Join(dir, "nope.yaml")}, err: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o options
			fs := newFlagSet(&o)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := buildConfig(&o, flagsSet(fs), func(string) string { return "" })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.StateDir == "" {
				t.Error("no state directory filled in")
			}
			tt.check(t, c)
		})
	}
}
