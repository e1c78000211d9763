package control

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestDefaultPath(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	mine := func(dir string) bool { return dir == "/run/user/1000" }
	tests := []struct {
		name string
		env  pathEnv
		role Role
		want string
	}{
		{"linux xdg", pathEnv{goos: "linux", euid: 1000, getenv: env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}), tempDir: "/tmp", ownedByMe: mine}, RoleClient, "/run/user/1000/qtunnel/client.sock"},
		{"linux xdg server", pathEnv{goos: "linux", euid: 1000, getenv: env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}), tempDir: "/tmp", ownedByMe: mine}, RoleServer, "/run/user/1000/qtunnel/server.sock"},
		{"linux xdg of another user", pathEnv{goos: "linux", euid: 1001, getenv: env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}), tempDir: "/tmp", ownedByMe: func(string) bool { return false }}, RoleClient, "/tmp/qtunnel-1001/client.sock"},
		{"linux xdg relative", pathEnv{goos: "linux", euid: 1000, getenv: env(map[string]string{"XDG_RUNTIME_DIR": "run"}), tempDir: "/tmp"}, RoleClient, "/tmp/qtunnel-1000/client.sock"},
		{"linux no xdg", pathEnv{goos: "linux", euid: 1000, getenv: env(nil), tempDir: "/var/tmp"}, RoleServer, "/var/tmp/qtunnel-1000/server.sock"},
		{"linux root", pathEnv{goos: "linux", euid: 0, getenv: env(nil), tempDir: "/tmp"}, RoleServer, "/run/qtunnel/server.sock"},
		{"linux root with xdg", pathEnv{goos: "linux", euid: 0, getenv: env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/0"}), tempDir: "/tmp"}, RoleClient, "/run/qtunnel/client.sock"},
		{"freebsd like linux", pathEnv{goos: "freebsd", euid: 1000, getenv: env(nil), tempDir: "/tmp"}, RoleClient, "/tmp/qtunnel-1000/client.sock"},
		{"darwin tmpdir", pathEnv{goos: "darwin", euid: 501, getenv: env(map[string]string{"TMPDIR": "/var/folders/xy/abc/T/"}), tempDir: "/var/folders/xy/abc/T/"}, RoleClient, "/var/folders/xy/abc/T/qtunnel/client.sock"},
		{"darwin root", pathEnv{goos: "darwin", euid: 0, getenv: env(map[string]string{"TMPDIR": "/var/folders/zz/T/"}), tempDir: "/tmp"}, RoleServer, "/var/run/qtunnel/server.sock"},
		{"darwin no tmpdir", pathEnv{goos: "darwin", euid: 501, getenv: env(nil), tempDir: "/tmp"}, RoleServer, "/tmp/qtunnel-501/server.sock"},
		{"windows", pathEnv{goos: "windows", euid: -1, username: `DESKTOP-1\Alice Smith`}, RoleClient, `\\.\pipe\qtunnel-DESKTOP-1_Alice_Smith-client`},
		{"windows unicode", pathEnv{goos: "windows", euid: -1, username: `José`}, RoleServer, `\\.\pipe\qtunnel-José-server`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := defaultPath(tt.env, tt.role)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaultPathRefuses(t *testing.T) {
	env := pathEnv{goos: "linux", euid: 1000, getenv: func(string) string { return "" }, tempDir: "/tmp"}
	for _, role := range []Role{"", "../x", "a/b", "Client"} {
		if p, err := defaultPath(env, role); err == nil {
			t.Errorf("role %q: got %q, want an error", role, p)
		}
	}
	if p, err := defaultPath(pathEnv{goos: "windows", username: ""}, RoleClient); err == nil {
		t.Errorf("windows without a user name: got %q, want an error", p)
	}
}

func TestDefaultPathCurrent(t *testing.T) {
	p, err := DefaultPath(RoleClient)
	if err != nil {
		t.Skipf("no default path here: %v", err)
	}
	if !strings.Contains(p, "client") {
		t.Errorf("DefaultPath(client) = %q", p)
	}
}

func TestSecretJSONRoundTrip(t *testing.T) {
	for _, s := range []string{
		"plain",
		"q\"uo\\te/",
		"ctl\x00\x01\x1f\b\f\n\r\tend",
		"wörd ☃ 😀",
		"\u2028\u2029",
	} {
		body := appendJSONString(nil, []byte(s))
		// What the client writes is JSON that encoding/json agrees with.
		var viaStd string
		if err := json.Unmarshal(append(append([]byte{'"'}, body...), '"'), &viaStd); err != nil || viaStd != s {
			t.Errorf("%q: encoding/json reads %q, %v", s, viaStd, err)
		}
		got, err := unquoteJSON(append(append([]byte{'"'}, body...), '"'))
		if err != nil || string(got) != s {
			t.Errorf("%q: round trip gave %q, %v", s, got, err)
		}
	}
}

func TestUnquoteJSONMatchesStd(t *testing.T) {
	for _, lit := range []string{
		`"\u00e9\u00E9"`,
		`"\ud83d\ude00"`,
		`"\ud83d"`,
		`"\ude00x"`,
		`"\ud83dx"`,
		`"\ud83d\u0041"`,
		`"a\/b"`,
		`""`,
	} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		got, err := unquoteJSON([]byte(lit))
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s: got %q (%v), want %q", lit, got, err, want)
		}
	}
	for _, lit := range []string{`"\x"`, `"\u12"`, `"\u12g4"`, "\"a\x01\"", `abc`, `"`, `"\"`} {
		if got, err := unquoteJSON([]byte(lit)); err == nil {
			t.Errorf("%q: got %q, want an error", lit, got)
		}
	}
}
