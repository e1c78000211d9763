package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// client is a minimal valid client file, for cases that need one around
// the key they test.
const client = "mode: client\nserver: vps.example.com:443\nforwards:\n  - listen: 127.0.0.1:5432\n    target: db\n"

// server is a minimal valid server file.
const server = "mode: server\nlisten: \":443\"\ntargets:\n  db: 10.0.0.5:5432\n"

type errorCase struct {
	name string
	yaml string
	want []string // substrings of the error, in order
	n    int      // number of errors, if not 0
}

func errorCases() []errorCase {
	manyForwards := "mode: client\nserver: vps.example.com:443\nforwards:\n"
	for i := range MaxForwards + 1 {
		manyForwards += fmt.Sprintf("  - {listen: 127.0.0.1:%d, target: t%d}\n", 10000+i, i)
	}
	long := strings.Repeat("x", 300)
	manyServers := "mode: client\nforwards: [{listen: \":1\"}]\nservers:\n"
	for i := range MaxServers + 1 {
		manyServers += fmt.Sprintf("  - s%d.example:443\n", i)
	}
	return []errorCase{
		{"server and servers", "mode: client\nserver: a:1\nservers: [b:1]\nforwards: [{listen: \":1\"}]\n",
			[]string{"test.yaml:3: servers: set server or servers, not both"}, 1},
		{"servers not a list", "mode: client\nservers: a:1\nforwards: [{listen: \":1\"}]\n",
			[]string{`test.yaml:2: servers: want a list of host:port such as [vps1.example.com:443, vps2.example.com:443], got "a:1" (for one, use server)`}, 1},
		{"servers empty", "mode: client\nservers: []\nforwards: [{listen: \":1\"}]\n",
			[]string{"test.yaml:2: servers: empty"}, 1},
		{"servers duplicate", "mode: client\nservers:\n  - a:1\n  - {address: a:1}\nforwards: [{listen: \":1\"}]\n",
			[]string{`test.yaml:4: servers[1]: "a:1" is already listed at line 3`}, 1},
		{"servers bad entries", "mode: client\nservers:\n  - a\n  - {pin: x}\n  - [a:1]\n  - {address: b:1, pn: y}\nforwards: [{listen: \":1\"}]\n",
			[]string{`test.yaml:3: servers[0]: want host:port`, `test.yaml:4: servers[1].pin: want sha256:`, `test.yaml:4: servers[1].address: missing`,
				`test.yaml:5: servers[2]: want host:port or a mapping with address (and pin, sni), got a list`, `test.yaml:6: servers[3].pn: unknown key; did you mean pin?`}, 5},
		{"too many servers", manyServers, []string{fmt.Sprintf("test.yaml:3: servers: %d servers; at most %d are allowed", MaxServers+1, MaxServers)}, 1},
		{"failover-after on a server", server + "failover-after: 1s\n", []string{"test.yaml:5: failover-after: only for mode: client"}, 1},
		{"unknown key with suggestion", client + "secrte-file: /s\n",
			[]string{"test.yaml:6: secrte-file: unknown key; did you mean secret-file?"}, 1},
		{"unknown key, other spelling", client + "Drain_Timeout: 10s\n",
			[]string{"test.yaml:6: Drain_Timeout: unknown key; did you mean drain-timeout?"}, 1},
		{"unknown key, no suggestion", client + "colour: blue\n",
			[]string{"test.yaml:6: colour: unknown key"}, 1},
		{"unknown nested key", client + "trust:\n  pinn: x\n",
			[]string{"test.yaml:7: trust.pinn: unknown key; did you mean pin?"}, 1},
		{"unknown nested key, list", client + "log:\n  colour: red\n",
			[]string{"test.yaml:7: log.colour: unknown key; want one of level, format"}, 1},
		{"missing mode", "server: vps.example.com:443\n",
			[]string{"test.yaml:1: mode: missing; want mode: client or mode: server"}, 1},
		{"bad mode", "mode: clinet\n",
			[]string{`test.yaml:1: mode: want client or server, got "clinet"`}, 1},
		{"mode in capitals", "mode: Client\n",
			[]string{`test.yaml:1: mode: want client or server, got "Client" (write it in lower case)`}, 1},
		{"empty mode", "mode:\n",
			[]string{`test.yaml:1: mode: want client or server, got nothing`}, 1},
		{"wrong type", client + "pool: four\n",
			[]string{`test.yaml:6: pool: want a whole number, got "four"`}, 1},
		{"quoted number", client + "pool: \"4\"\n",
			[]string{`test.yaml:6: pool: want a whole number, got "4" (write it without quotes)`}, 1},
		{"tagged value", client + "state-dir: !!binary L3Zhcg==\n",
			[]string{`test.yaml:6: state-dir: want a string, got a value tagged "!!binary"`}, 1},
		{"null key", client + "~: x\n",
			[]string{`test.yaml:6: want a key name, got nothing`}, 1},
		{"mapping for a string", "mode: client\nserver: {host: a}\nforwards: [{listen: \":1\"}]\n",
			[]string{`test.yaml:2: server: want a string, got a mapping`}, 1},
		{"pool out of range", client + "pool: 300\n",
			[]string{`test.yaml:6: pool: want a whole number from 1 to 256, got 300`}, 1},
		{"pool zero", client + "pool: 0\n",
			[]string{`test.yaml:6: pool: want a whole number from 1 to 256, got 0`}, 1},
		{"bad port", "mode: client\nserver: vps.example.com:99999\nforwards: [{listen: \":1\"}]\n",
			[]string{`test.yaml:2: server: bad port "99999" in "vps.example.com:99999"; want a number from 1 to 65535`}, 1},
		{"port zero for server", "mode: client\nserver: vps.example.com:0\nforwards: [{listen: \":1\"}]\n",
			[]string{`test.yaml:2: server: bad port "0"`}, 1},
		{"port name", "mode: client\nserver: vps.example.com:https\nforwards: [{listen: \":1\"}]\n",
			[]string{`test.yaml:2: server: bad port "https"`}, 1},
		{"missing host in server address", "mode: client\nserver: \":443\"\nforwards: [{listen: \":1\"}]\n",
			[]string{`test.yaml:2: server: missing host in ":443"; want host:port such as "vps.example.com:443"`}, 1},
		{"missing port", "mode: client\nserver: vps.example.com\nforwards: [{listen: \":1\"}]\n",
			[]string{`test.yaml:2: server: want host:port such as "vps.example.com:443", got "vps.example.com"`}, 1},
		{"URL for an address", "mode: client\nserver: https://vps.example.com:443\nforwards: [{listen: \":1\"}]\n",
			[]string{`test.yaml:2: server: want host:port`, "write it without a scheme"}, 1},
		{"missing server and forwards", "mode: client\n",
			[]string{"test.yaml:1: server: missing", "test.yaml:1: forwards: missing"}, 2},
		{"empty forwards", "mode: client\nserver: a:1\nforwards: []\n",
			[]string{"test.yaml:3: forwards: empty; a client needs at least one forward"}, 1},
		{"forward without listen", "mode: client\nserver: a:1\nforwards:\n  - target: db\n",
			[]string{"test.yaml:4: forwards[0].listen: missing"}, 1},
		{"forward not a mapping", "mode: client\nserver: a:1\nforwards:\n  - 127.0.0.1:80\n",
			[]string{`test.yaml:4: forwards[0]: want a mapping with listen (and target, name), got "127.0.0.1:80"`}, 1},
		{"duplicate forward listen", client + "  - listen: 127.0.0.1:5432\n    target: web\n",
			[]string{`test.yaml:6: forwards[1].listen: "127.0.0.1:5432" is already the listen address of the forward at line 4`}, 1},
		{"duplicate forward name", client + "  - listen: 127.0.0.1:5433\n    name: db\n",
			[]string{`test.yaml:7: forwards[1].name: "db" is already the name of the forward at line 4; names must be unique`}, 1},
		{"duplicate default forward name", client + "  - listen: 127.0.0.1:5433\n    target: db\n",
			[]string{`test.yaml:6: forwards[1].name: "db" is already the name`, "named after its target"}, 1},
		{"bad target name", client + "  - listen: 127.0.0.1:1\n    target: " + long + "\n",
			[]string{"test.yaml:7: forwards[1].target: a target name of 300 bytes; at most 255 are allowed"}, 1},
		{"target name with control character", client + "  - listen: 127.0.0.1:1\n    target: \"a\\x01b\"\n",
			[]string{"test.yaml:7: forwards[1].target: a target name must not contain control characters"}, 1},
		{"too many forwards", manyForwards,
			[]string{"test.yaml:3: forwards: 257 forwards; at most 256 are allowed"}, 1},
		{"default-target not in targets", server + "default-target: dv\n",
			[]string{`test.yaml:5: default-target: "dv" is not one of the targets; did you mean db?`}, 1},
		{"default-target not in targets, list", server + "  web: 10.0.0.6:80\ndefault-target: mail\n",
			[]string{`test.yaml:6: default-target: "mail" is not one of the targets (db, web)`}, 1},
		{"backend and default-target together", server + "default-target: db\nbackend: 10.0.0.6:80\n",
			[]string{"test.yaml:6: backend: not together with default-target (line 5)"}, 1},
		{"backend and a target named default", "mode: server\nlisten: \":443\"\ntargets:\n  default: 10.0.0.5:1\nbackend: 10.0.0.6:80\n",
			[]string{`test.yaml:5: backend: there is already a target named "default"`}, 1},
		{"server without targets", "mode: server\nlisten: \":443\"\n",
			[]string{"test.yaml:1: targets: missing; a server needs at least one target"}, 1},
		{"empty targets", "mode: server\nlisten: \":443\"\ntargets: {}\n",
			[]string{"test.yaml:3: targets: empty; a server needs at least one target"}, 1},
		{"targets as a list", "mode: server\nlisten: \":443\"\ntargets: [db]\n",
			[]string{"test.yaml:3: targets: want a mapping of names to addresses such as {db: 10.0.0.5:5432}, got a list"}, 1},
		{"target without host", server + "  web: \":80\"\n",
			[]string{`test.yaml:5: targets.web: missing host in ":80"`}, 1},
		{"duplicate target", server + "  db: 10.0.0.6:5432\n",
			[]string{"test.yaml:5: targets.db: set twice (first at line 4)"}, 1},
		{"missing listen", "mode: server\nbackend: 10.0.0.6:80\n",
			[]string{"test.yaml:1: listen: missing"}, 1},
		{"client-only key in a server file", server + "forwards:\n  - listen: \":1\"\n",
			[]string{"test.yaml:5: forwards: only for mode: client"}, 1},
		{"server-only key in a client file", client + "targets:\n  db: 10.0.0.5:5432\n",
			[]string{"test.yaml:6: targets: only for mode: server; a client names its target in forwards"}, 1},
		{"listen in a client file", client + "listen: \":1\"\n",
			[]string{"test.yaml:6: listen: only for mode: server; a client's listen addresses go under forwards"}, 1},
		{"secret refused", client + "secret: hunter2hunter2\n",
			[]string{"test.yaml:6: secret: a secret does not belong in a configuration file", "secret-file"}, 1},
		{"bad duration", client + "drain-timeout: 10\n",
			[]string{`test.yaml:6: drain-timeout: want a Go duration such as "10s" or "5m", got 10`}, 1},
		{"negative duration", server + "limits:\n  handshake-timeout: -1s\n",
			[]string{`test.yaml:6: limits.handshake-timeout: want more than 0, got "-1s"`}, 1},
		{"zero limit", server + "limits:\n  max-clients: 0\n  idle-timeout: 0s\n",
			[]string{"test.yaml:6: limits.max-clients: want a whole number of at least 1, got 0",
				`test.yaml:7: limits.idle-timeout: want more than 0`}, 2},
		{"negative limit", server + "limits:\n  max-clients: -5\n",
			[]string{"test.yaml:6: limits.max-clients: want a whole number of at least 1, got -5"}, 1},
		{"unknown limit", server + "limits:\n  max-client: 5\n",
			[]string{`test.yaml:6: limits.max-client: unknown key; did you mean max-clients?`}, 1},
		{"tiny memory limit", server + "limits:\n  memory-mib: 1\n",
			[]string{"test.yaml:6: limits.memory-mib: want a whole number from 16 to 16777216, got 1"}, 1},
		{"masquerade scheme", server + "masquerade: ftp://example.com\n",
			[]string{"test.yaml:5: masquerade: want default, off, an http:// or https:// site, or a directory; got \"ftp://example.com\""}, 1},
		{"masquerade no host", server + "masquerade: https://\n",
			[]string{"test.yaml:5: masquerade: want a site such as https://www.example.com, got \"https://\""}, 1},
		{"bad pin", client + "trust:\n  pin: sha256:abcd\n",
			[]string{`test.yaml:7: trust.pin: want sha256: and 64 hex digits`, `got "sha256:abcd"`}, 1},
		{"both secret-file and secret-files", server + "secret-file: /a\nsecret-files: [/b, /c]\n",
			[]string{"test.yaml:6: secret-files: set secret-file or secret-files, not both"}, 1},
		{"secret-files as a string", server + "secret-files: /a\n",
			[]string{`test.yaml:5: secret-files: want a list of paths`, "use secret-file"}, 1},
		{"cert-file without key-file", server + "cert-file: /c\n",
			[]string{"test.yaml:5: cert-file: key-file is needed too"}, 1},
		{"home of another user", client + "state-dir: ~bob/x\n",
			[]string{`test.yaml:6: state-dir: only ~/ (your own home) is expanded`}, 1},
		{"bad enum", client + "transport: udp\ncongestion: cubic\nlog:\n  level: INFO\n",
			[]string{`test.yaml:6: transport: want quic or tcp, got "udp"`,
				`test.yaml:7: congestion: want bbr or reno, got "cubic"`,
				`test.yaml:9: log.level: want debug, info, warn or error, got "INFO" (write it in lower case)`}, 3},
		{"duplicate key", client + "mode: server\n",
			[]string{"test.yaml:6: mode: set twice (first at line 1)"}, 1},
		{"YAML syntax error", "mode: client\nserver: [a\n",
			[]string{"test.yaml:2: YAML syntax error: did not find expected ',' or ']'"}, 1},
		{"YAML syntax error, line 1", "[a",
			[]string{"test.yaml:1: YAML syntax error: did not find expected ',' or ']'"}, 1},
		{"YAML syntax error, unclosed flow", "mode: client\nserver: a:1\nforwards: [{listen: \":1\"}\npool: 4\n",
			[]string{"test.yaml:3: YAML syntax error: did not find expected ',' or ']'"}, 1},
		{"YAML syntax error, list in a mapping", "mode: client\n- server: a:1\n",
			[]string{"test.yaml:2: YAML syntax error: did not find expected key"}, 1},
		{"YAML syntax error, scanner", "mode: client\nserver: @a\n",
			[]string{"test.yaml:2: YAML syntax error: found character that cannot start any token"}, 1},
		{"YAML syntax error, tab", "mode: client\n\tserver: a:1\n",
			[]string{"test.yaml:2: YAML syntax error: found a tab character that violates indentation"}, 1},
		{"YAML syntax error, bad indentation", "mode: client\n  server: a:1\n",
			[]string{"test.yaml:2: YAML syntax error: mapping values are not allowed in this context"}, 1},
		{"alias refused", client + "state-dir: &d /x\ncontrol: *d\n",
			[]string{"test.yaml:6: YAML anchors and aliases are not supported (&d)",
				"test.yaml:7: YAML anchors and aliases are not supported (*d)"}, 2},
		{"alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
			[]string{"aliases are not supported"}, 0},
		{"merge key", "base: &b {mode: client}\n<<: *b\n",
			[]string{"aliases are not supported", `test.yaml:2: "<<": YAML merge keys (<<) are not supported`}, 0},
		{"empty file", "",
			[]string{"test.yaml:1: the file is empty"}, 1},
		{"only comments", "# nothing yet\n",
			[]string{"test.yaml:1: the file is empty"}, 1},
		{"not a mapping", "- mode: client\n",
			[]string{`test.yaml:1: want keys such as "mode: client", got a list`}, 1},
		{"a second document", client + "---\nmode: server\n",
			[]string{"test.yaml:6: a second YAML document"}, 1},
		{"too large", client + "# " + strings.Repeat("x", MaxFileSize) + "\n",
			[]string{"test.yaml: the file is larger than 1048576 bytes"}, 1},
		{"several errors, sorted by line", "pool: x\nmode: client\nserver: a\nforwards: [{listen: \":1\", target: db}, {listen: \":1\"}]\nbogus: 1\n",
			[]string{"test.yaml:1: pool:", "test.yaml:3: server:", "test.yaml:4: forwards[1].listen:", "test.yaml:5: bogus:"}, 4},
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range errorCases() {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("test.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with an error")
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error\n%s\ndoes not contain, in order,\n%s", msg, w)
				}
				rest = rest[i+len(w):]
			}
			list := Errors(err)
			if tt.n != 0 && len(list) != tt.n {
				t.Errorf("%d errors, want %d:\n%s", len(list), tt.n, msg)
			}
			if len(list) == 0 || strings.Count(msg, "\n")+1 != len(list) {
				t.Errorf("Errors found %d *Error in\n%s", len(list), msg)
			}
			for i, e := range list {
				if e.File != "test.yaml" {
					t.Errorf("error %q: File %q", e, e.File)
				}
				if i > 0 && e.Line < list[i-1].Line {
					t.Errorf("errors not sorted by line:\n%s", msg)
				}
			}
		})
	}
}

func TestErrorCauses(t *testing.T) {
	_, err := Parse("test.yaml", []byte(client+"drain-timeout: 10\n"))
	var e *Error
	if !errors.As(err, &e) || e.Err == nil || e.Line != 6 || e.Field != "drain-timeout" {
		t.Fatalf("errors.As: %#v", e)
	}
	if errors.Unwrap(e) != e.Err {
		t.Error("Unwrap does not return the cause")
	}
	if got := (&Error{File: "f", Msg: "m"}).Error(); got != "f: m" {
		t.Errorf("no line, no field: %q", got)
	}
	if got := (&Error{File: "f", Line: 3, Msg: "m"}).Error(); got != "f:3: m" {
		t.Errorf("no field: %q", got)
	}
	if Errors(nil) != nil || Errors(errors.New("x")) != nil {
		t.Error("Errors of a plain error")
	}
}

func TestTooManyErrors(t *testing.T) {
	data := client + strings.Repeat("bogus-key-with-a-long-name: 1\n", maxErrors*3)
	_, err := Parse("test.yaml", []byte(data))
	list := Errors(err)
	if len(list) != maxErrors+1 {
		t.Fatalf("%d errors, want %d", len(list), maxErrors+1)
	}
	if last := list[len(list)-1].Msg; !strings.Contains(last, "more errors not shown") {
		t.Errorf("last error %q", last)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

const pin = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestParseGood(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	dir := filepath.Join(t.TempDir(), "etc")

	clientFile := filepath.Join(dir, "client.yaml")
	writeFile(t, clientFile, `# a client
mode: client
transport: tcp
server: "[2001:db8::1]:443"
secret-file: ~/.config/qtunnel/secret
trust:
  # openssl's form, upper case: stored canonical
  pin: SHA256:9F:86:D0:81:88:4C:7D:65:9A:2F:EA:A0:C5:5A:D0:15:A3:BF:4F:1B:2B:0B:82:2C:D1:5D:6C:15:B0:F0:0A:08
  ca: certs/ca.pem
  sni: vps.example.com
pool: 8
forwards:
  - name: database
    listen: 127.0.0.1:5432
    target: db
  - listen: :8080
  - listen: 127.0.0.1:0
    target: web
  - listen: 127.0.0.1:0
    target: 2024
    name: year
log: {level: debug, format: json}
state-dir: ../state
control: ~/qt.sock
metrics: 127.0.0.1:9100
drain-timeout: 1m30s
congestion: reno
`)
	got, err := Load(clientFile)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Mode: ModeClient, Transport: "tcp",
		StateDir:     filepath.Join(filepath.Dir(dir), "state"),
		Control:      filepath.Join(home, "qt.sock"),
		Metrics:      "127.0.0.1:9100",
		DrainTimeout: 90 * time.Second, Congestion: "reno",
		LogLevel: "debug", LogFormat: "json",
		SecretFiles: []string{filepath.Join(home, ".config/qtunnel/secret")},
		Server:      "[2001:db8::1]:443",
		Trust:       Trust{Pin: pin, CA: filepath.Join(dir, "certs/ca.pem"), SNI: "vps.example.com"},
		Pool:        8,
		Forwards: []Forward{
			{Name: "database", Listen: "127.0.0.1:5432", Target: "db"},
			{Name: "default", Listen: ":8080"},
			{Name: "web", Listen: "127.0.0.1:0", Target: "web"},
			{Name: "year", Listen: "127.0.0.1:0", Target: "2024"},
		},
		File: clientFile,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("client:\n got %+v\nwant %+v", got, want)
	}

	serverFile := filepath.Join(dir, "server.yaml")
	writeFile(t, serverFile, `mode: server
listen: "[::]:443"
secret-files: [secret.new, /etc/qtunnel/./secret]
cert-file: tls/server.crt
key-file: tls/server.key
targets:
  web: 10.0.0.6:80
  db: db.internal:5432
  "my app": 10.0.0.7:8000
default-target: my app
limits:
  max-clients: 100
  handshake-timeout: 5s
  idle-timeout: 2m
`)
	got, err = Load(serverFile)
	if err != nil {
		t.Fatal(err)
	}
	want = &Config{
		Mode:        ModeServer,
		SecretFiles: []string{filepath.Join(dir, "secret.new"), "/etc/qtunnel/secret"},
		Listen:      "[::]:443",
		CertFile:    filepath.Join(dir, "tls/server.crt"),
		KeyFile:     filepath.Join(dir, "tls/server.key"),
		Targets: []Target{
			{Name: "web", Address: "10.0.0.6:80"},
			{Name: "db", Address: "db.internal:5432"},
			{Name: "my app", Address: "10.0.0.7:8000"},
		},
		DefaultTarget: "my app",
		Limits:        Limits{MaxClients: 100, HandshakeTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute},
		File:          serverFile,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("server:\n got %+v\nwant %+v", got, want)
	}

	// The design document's server: one backend, which becomes the
	// default target.
	got, err = Parse(serverFile, []byte("mode: server\nlisten: :443\nsecret-file: s\nbackend: 127.0.0.1:8080\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Target{{Name: "default", Address: "127.0.0.1:8080"}}; !reflect.DeepEqual(got.Targets, want) || got.DefaultTarget != "default" {
		t.Errorf("backend: targets %+v, default %q", got.Targets, got.DefaultTarget)
	}
	if want := []string{filepath.Join(dir, "s")}; !reflect.DeepEqual(got.SecretFiles, want) {
		t.Errorf("secret-file: %q, want %q", got.SecretFiles, want)
	}

	// control: off turns the socket off, as -control=off does; it is not
	// a file named off.
	for _, word := range []string{"off", "none"} {
		got, err = Parse(serverFile, []byte("mode: server\nlisten: :443\nbackend: 127.0.0.1:8080\ncontrol: "+word+"\n"))
		if err != nil || got.Control != word {
			t.Errorf("control: %s read as %q (%v)", word, got.Control, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	writeFile(t, big, client+"#"+strings.Repeat("x", MaxFileSize))
	_, err = Load(big)
	if list := Errors(err); len(list) != 1 || !strings.Contains(list[0].Msg, "larger than") {
		t.Errorf("large file: %v", err)
	}
}

// TestExamples parses the example files in testdata, which the
// documentation quotes.
func TestExamples(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	c, err := Load("testdata/client.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeClient || c.Server != "vps.example.com:443" || len(c.Forwards) != 2 ||
		c.Forwards[1].Name != "default" || c.SecretFiles[0] != filepath.Join(home, ".config/qtunnel/secret") {
		t.Errorf("client.yaml: %+v", c)
	}
	s, err := Load("testdata/server.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode != ModeServer || s.Listen != ":443" || len(s.Targets) != 2 || s.DefaultTarget != "web" ||
		len(s.SecretFiles) != 2 || s.Limits.IdleTimeout != 5*time.Minute {
		t.Errorf("server.yaml: %+v", s)
	}
}

func roundTrip(t *testing.T, c *Config) {
	t.Helper()
	out := Format(c)
	got, err := Parse(c.File, out)
	if err != nil {
		t.Fatalf("Parse(Format(c)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("Parse(Format(c)):\n got %+v\nwant %+v\n%s", got, c, out)
	}
}

func TestFormatRoundTrip(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	for _, f := range []string{"testdata/client.yaml", "testdata/server.yaml"} {
		c, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c)
	}

	file := filepath.Join(t.TempDir(), "q.yaml")
	for _, c := range []*Config{
		// What the GUI or the share-link importer would write.
		{Mode: ModeClient, Server: "vps.example.com:443", File: file,
			Forwards: []Forward{{Name: "default", Listen: "127.0.0.1:5432"}}},
		// Names and addresses that YAML would read as something else
		// if they were not quoted.
		{Mode: ModeClient, Server: "[::1]:443", File: file, Trust: Trust{Pin: pin, CA: "system"},
			Forwards: []Forward{
				{Name: "123", Listen: ":1", Target: "123"},
				{Name: "true", Listen: ":2", Target: "null"},
				{Name: "a: b #c", Listen: ":3", Target: "- x"},
				{Name: " lead", Listen: ":4", Target: "'q\""},
				{Name: "ünïcødé", Listen: ":5", Target: "~"},
				{Name: "x\u2028y", Listen: ":6", Target: "\u2029"},
			}},
		// Several servers, one with its own pin.
		{Mode: ModeClient, Server: "a.example:443", File: file, Transport: "quic", FailoverAfter: 2500 * time.Millisecond,
			Servers:  []ServerEntry{{Address: "a.example:443"}, {Address: "[2001:db8::1]:443", Pin: pin, SNI: "b.example"}},
			Forwards: []Forward{{Name: "default", Listen: "127.0.0.1:5432"}}},
		{Mode: ModeServer, Listen: ":443", File: file, Transport: "tcp",
			SecretFiles: []string{"/a/new", "/a/old"},
			Targets:     []Target{{Name: "default", Address: "10.0.0.1:80"}}, DefaultTarget: "default"},
		{Mode: ModeServer, Listen: ":443", File: file,
			SecretFiles: []string{"/a/one"}, CertFile: "/c", KeyFile: "/k",
			Targets: []Target{{Name: "1", Address: "h:1"}, {Name: "default", Address: "h:2"}}, DefaultTarget: "default",
			Limits:   Limits{MaxClients: 7, HandshakeTimeout: time.Millisecond, IdleTimeout: 25 * time.Hour},
			LogLevel: "warn", StateDir: "/var/lib/q", Control: "/run/q.sock", Metrics: ":9100",
			DrainTimeout: 1500 * time.Millisecond, Congestion: "bbr"},
	} {
		roundTrip(t, c)
	}

	out := string(Format(&Config{Mode: ModeServer, Listen: ":443", Targets: []Target{{Name: "default", Address: "h:1"}}, DefaultTarget: "default",
		DrainTimeout: 2 * time.Hour, Limits: Limits{IdleTimeout: 5 * time.Minute, HandshakeTimeout: 90 * time.Second}}))
	for _, want := range []string{"\nbackend: h:1\n", "\ndrain-timeout: 2h\n", "  idle-timeout: 5m\n", "  handshake-timeout: 1m30s\n", "\n# "} {
		if !strings.Contains(out, want) {
			t.Errorf("Format wrote no %q:\n%s", want, out)
		}
	}
}

// TestFormatUnnamedForward: a Config built by a program (the desktop
// client) may leave forward names empty; Format still writes a list.
func TestFormatUnnamedForward(t *testing.T) {
	c := &Config{Mode: ModeClient, Transport: "quic", Server: "a.example:443",
		Forwards: []Forward{{Listen: "127.0.0.1:1"}, {Listen: "127.0.0.1:2", Target: "db"}}}
	got, err := Parse("x.yaml", Format(c))
	if err != nil {
		t.Fatalf("%v\n%s", err, Format(c))
	}
	want := []Forward{{Name: "default", Listen: "127.0.0.1:1"}, {Name: "db", Listen: "127.0.0.1:2", Target: "db"}}
	if !reflect.DeepEqual(got.Forwards, want) {
		t.Errorf("forwards %+v, want %+v", got.Forwards, want)
	}
}
