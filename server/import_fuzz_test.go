package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/core/sharelink"
)

// FuzzImport runs qtunnel import (as run does, through subcommands) on
// arbitrary links and -listen values. A
// link comes from someone else, so it is untrusted input that ends up in
// a configuration file. import must never panic; its errors are one line;
// and when it succeeds, the file it wrote is one the client accepts,
// which says exactly what the link said (no value of the link can add or
// change a setting), with the link's secret in a 0600 file of its own.
func FuzzImport(f *testing.F) {
	pin := "sha256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	for _, l := range []sharelink.Link{
		{Server: "vpn.example.com:443", Transport: "quic", Pin: pin, SNI: "vpn.example.com", Target: "ssh", Name: "Office", Secret: []byte("fuzz-secret")},
		{Server: "[2001:db8::1]:8443", Transport: "tcp"},
		{Server: "10.0.0.1:1", Transport: "tcp", Target: "a: b\n#c", Name: "x\"y'z"},
		{Server: "h:443", Transport: "quic", Target: "-", SNI: "xn--bcher-kva.example", Secret: []byte(" padded \n")},
	} {
		f.Add(l.String(), "127.0.0.1:8080")
	}
	f.Add("qtunnel://h:443?transport=tcp&target=%0Amode%3A+server", "127.0.0.1:8080")
	f.Add("qtunnel://h:443?transport=tcp&name=%22%3A+%7B", "[::1]:0")
	f.Add("qtunnel://h:443?transport=tcp", ":5432")
	f.Add("qtunnel://h:443?transport=tcp#secret=AA", "localhost:1")
	f.Add("https://h:443", "127.0.0.1:8080")
	f.Add("", "")
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, link, listen string) {
		dir, err := os.MkdirTemp(root, "import")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		cfgPath := filepath.Join(dir, "client.yaml")
		secretPath := filepath.Join(dir, "secret")
		var stdout bytes.Buffer
		err = subcommands["import"](context.Background(), []string{"-config=" + cfgPath, "-secret-file=" + secretPath, "-listen=" + listen, link}, &stdout, &stdout, func(string) string { return "" })
		if err != nil {
			if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") || len(msg) > 12*(len(link)+len(listen))+1024 {
				t.Fatalf("import %q -listen=%q: the error is not one line of bounded length: %q", link, listen, msg)
			}
			if _, serr := os.Stat(cfgPath); serr == nil {
				t.Fatalf("import %q failed (%v) but wrote a configuration", link, err)
			}
			return
		}
		l, err := sharelink.Parse(link)
		if err != nil {
			t.Fatalf("import accepted %q, which sharelink.Parse refuses: %v", link, err)
		}
		cfg, err := config.Load(cfgPath)
		if err != nil {
			data, _ := os.ReadFile(cfgPath)
			t.Fatalf("import %q -listen=%q wrote a configuration the client refuses: %v\n%s", link, listen, err, data)
		}
		want := config.Trust{Pin: l.Pin, SNI: l.SNI}
		if cfg.Mode != config.ModeClient || cfg.Server != l.Server || cfg.Transport != l.Transport || cfg.Trust != want {
			t.Fatalf("import %q: mode %s, server %s, transport %s, trust %+v", link, cfg.Mode, cfg.Server, cfg.Transport, cfg.Trust)
		}
		if len(cfg.Forwards) != 1 || cfg.Forwards[0].Listen != listen || cfg.Forwards[0].Target != l.Target {
			t.Fatalf("import %q -listen=%q: forwards %+v", link, listen, cfg.Forwards)
		}
		if len(cfg.SecretFiles) != 1 || cfg.SecretFiles[0] != secretPath || len(cfg.Targets) != 0 || cfg.Listen != "" || cfg.Pool != 0 ||
			cfg.StateDir != "" || cfg.Control != "" || cfg.Metrics != "" || cfg.LogLevel != "" || cfg.LogFormat != "" || cfg.Congestion != "" || cfg.DrainTimeout != 0 {
			t.Fatalf("import %q set more than the link says: %+v", link, cfg)
		}
		fi, err := os.Stat(secretPath)
		if l.Secret == nil {
			if err == nil {
				t.Fatalf("import %q wrote a secret file for a link without a secret", link)
			}
			return
		}
		if err != nil {
			t.Fatalf("import %q: no secret file: %v", link, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("secret file mode %v", fi.Mode())
		}
		s, err := secret.FromFile(secretPath)
		if !bytes.Equal(bytes.TrimSpace(l.Secret), s.Bytes()) || (err != nil) != (len(bytes.TrimSpace(l.Secret)) == 0) {
			t.Fatalf("import %q: the secret file reads back as %d bytes, %v", link, len(s.Bytes()), err)
		}
	})
}
