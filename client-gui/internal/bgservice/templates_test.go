package bgservice

import (
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func testConfig() Config {
	return Config{
		Name:        "qtunnel-client",
		DisplayName: "QTunnel",
		Description: "QTunnel client engine",
		Executable:  "/opt/QTunnel App/qtunnel-gui",
		Args:        []string{"-service", "-config", "/home/alice/.config/qtunnel/client.yaml"},
		UserService: true,
		Env:         map[string]string{"QTUNNEL_LOG": "info", "A_FIRST": "1"},
	}
}

func TestSystemdUserUnit(t *testing.T) {
	unit, err := SystemdUnit(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unit:\n%s", unit)
	for _, want := range []string{
		"Description=QTunnel client engine\n",
		`ConditionFileIsExecutable=/opt/QTunnel\x20App/qtunnel-gui` + "\n",
		`ExecStart=/opt/QTunnel\x20App/qtunnel-gui "-service" "-config" "/home/alice/.config/qtunnel/client.yaml"` + "\n",
		"Restart=on-failure\nRestartSec=2\n",
		"Environment=A_FIRST=1\nEnvironment=QTUNNEL_LOG=info\n", // sorted
		"\n[Install]\nWantedBy=default.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	for _, bad := range []string{"multi-user.target", "network-online.target", "{{", "Restart=always", "secret"} {
		if strings.Contains(unit, bad) {
			t.Errorf("the user unit contains %q", bad)
		}
	}
}

func TestSystemdSystemUnit(t *testing.T) {
	c := testConfig()
	c.UserService = false
	c.Env = nil
	unit, err := SystemdUnit(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"WantedBy=multi-user.target\n", "After=network-online.target\n", "Restart=on-failure\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the system unit lacks %q:\n%s", want, unit)
		}
	}
	if strings.Contains(unit, "Environment=") || strings.Contains(unit, "default.target") {
		t.Errorf("unexpected lines in the system unit:\n%s", unit)
	}
}

// plist is the part of a property list the tests look at.
type plist struct {
	Dict struct {
		Items []plistItem `xml:",any"`
	} `xml:"dict"`
}

type plistItem struct {
	XMLName xml.Name
	Text    string      `xml:",chardata"`
	Items   []plistItem `xml:",any"`
}

// plistKeys maps each top-level key to the element that follows it.
func plistKeys(t *testing.T, text string) map[string]plistItem {
	t.Helper()
	var p plist
	d := xml.NewDecoder(strings.NewReader(text))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	if err := d.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("the plist is not well-formed XML: %v\n%s", err, text)
	}
	keys := map[string]plistItem{}
	items := p.Dict.Items
	for i := 0; i+1 < len(items); i += 2 {
		if items[i].XMLName.Local != "key" {
			t.Fatalf("expected <key> at item %d, got <%s>", i, items[i].XMLName.Local)
		}
		keys[items[i].Text] = items[i+1]
	}
	return keys
}

func TestLaunchdPlist(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	c := testConfig()
	c.Args = append(c.Args, "a&b <c> \"d\" 'e'")
	text, err := LaunchdPlist(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plist:\n%s", text)
	keys := plistKeys(t, text)

	if got := keys["Label"].Text; got != "qtunnel-client" {
		t.Errorf("Label = %q", got)
	}
	var args []string
	for _, s := range keys["ProgramArguments"].Items {
		args = append(args, s.Text)
	}
	want := append([]string{c.Executable}, c.Args...)
	if strings.Join(args, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("ProgramArguments = %q; want %q", args, want)
	}
	if got := keys["RunAtLoad"].XMLName.Local; got != "true" {
		t.Errorf("RunAtLoad = <%s/>; want <true/>", got)
	}
	ka := keys["KeepAlive"]
	if ka.XMLName.Local != "dict" || len(ka.Items) != 2 || ka.Items[0].Text != "SuccessfulExit" || ka.Items[1].XMLName.Local != "false" {
		t.Errorf("KeepAlive = %+v; want {SuccessfulExit: false}", ka)
	}
	if got := keys["ThrottleInterval"].Text; got != "2" {
		t.Errorf("ThrottleInterval = %q", got)
	}
	env := keys["EnvironmentVariables"].Items
	if len(env) != 4 || env[0].Text != "A_FIRST" || env[1].Text != "1" || env[2].Text != "QTUNNEL_LOG" || env[3].Text != "info" {
		t.Errorf("EnvironmentVariables = %+v", env)
	}
	logs := filepath.Join(home, "Library", "Logs")
	if got := keys["StandardOutPath"].Text; got != logs+"/qtunnel-client.out.log" {
		t.Errorf("StandardOutPath = %q", got)
	}
	if got := keys["StandardErrorPath"].Text; got != logs+"/qtunnel-client.err.log" {
		t.Errorf("StandardErrorPath = %q", got)
	}
	if strings.Contains(text, "secret") {
		t.Error("the plist mentions a secret")
	}
}

func TestLaunchdPlistNoEnv(t *testing.T) {
	c := testConfig()
	c.Env = nil
	c.UserService = false
	text, err := LaunchdPlist(c)
	if err != nil {
		t.Fatal(err)
	}
	keys := plistKeys(t, text)
	if _, ok := keys["EnvironmentVariables"]; ok {
		t.Error("EnvironmentVariables present without Env")
	}
	if got := keys["StandardOutPath"].Text; got != "/var/log/qtunnel-client.out.log" {
		t.Errorf("a daemon's StandardOutPath = %q", got)
	}
}

func TestRender(t *testing.T) {
	data := map[string]any{"S": "x y", "E": "", "L": []string{"a", "b"}, "N": []string(nil)}
	funcs := map[string]func(string) string{"up": strings.ToUpper, "q": func(s string) string { return "<" + s + ">" }}
	for _, tc := range []struct{ in, want string }{
		{"{{S}}", "x y"},
		{"{{ S | up | q }}", "<X Y>"},
		{"{{S|up}}", "X Y"},
		{"{{if S}}yes{{else}}no{{end}}", "yes"},
		{"{{if E}}yes{{else}}no{{end}}", "no"},
		{"{{if N}}yes{{end}}", ""},
		{"{{range L}}[{{.}}]{{end}}", "[a][b]"},
		{"{{range L}}{{. | q}}{{end}}", "<a><b>"},
		{"{{range N}}x{{end}}", ""},
		{"a  {{- S -}}  b", "ax yb"},
		{"{{if L}}{{range L}}{{if S}}{{.}}{{end}}{{end}}{{end}}", "ab"},
	} {
		got, err := render(tc.in, data, funcs)
		if err != nil || got != tc.want {
			t.Errorf("render(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"{{X}}", "{{S | nope}}", "{{L}}", "{{range S}}{{end}}", "{{if S}}", "{{end}}", "{{S", "{{if}}{{end}}"} {
		if got, err := render(bad, data, funcs); err == nil {
			t.Errorf("render(%q) = %q; want an error", bad, got)
		}
	}
}

func TestPrepareRefuses(t *testing.T) {
	ok := testConfig()
	for _, tc := range []struct {
		name     string
		platform string
		edit     func(*Config)
		want     string
	}{
		{"bad name", PlatformSystemd, func(c *Config) { c.Name = "qtunnel client" }, "service name"},
		{"no executable", PlatformSystemd, func(c *Config) { c.Executable = "" }, "path of the program"},
		{"secret flag", PlatformSystemd, func(c *Config) { c.Args = []string{"-secret", "x"} }, "command line"},
		{"secret flag =", PlatformLaunchd, func(c *Config) { c.Args = []string{"--secret=x"} }, "command line"},
		{"secret env", PlatformLaunchd, func(c *Config) { c.Env = map[string]string{"QTUNNEL_SECRET": "x"} }, "QTUNNEL_SECRET"},
		{"bad env name", PlatformLaunchd, func(c *Config) { c.Env = map[string]string{"A-B": "x"} }, "environment variable name"},
		{"newline", PlatformLaunchd, func(c *Config) { c.Args = []string{"a\nb"} }, "control character"},
		{"percent in unit", PlatformSystemd, func(c *Config) { c.Args = []string{"100%"} }, "systemd unit"},
		{"space in unit env", PlatformSystemd, func(c *Config) { c.Env = map[string]string{"A": "b c"} }, "systemd unit"},
		{"space in init script", PlatformSystemV, func(c *Config) { c.UserService = false; c.Args = []string{"/a b"} }, "init script"},
		{"user service on sysv", PlatformSystemV, func(c *Config) { c.Executable = "/usr/bin/qtunnel-gui" }, "no per-user services"},
		{"windows without account", PlatformWindows, func(c *Config) {}, "run as the user"},
		{"account off windows", PlatformSystemd, func(c *Config) { c.Account, c.Password = `.\alice`, "pw" }, "Windows services only"},
	} {
		c := ok
		c.Env = map[string]string{"QTUNNEL_LOG": "info"}
		c.Args = append([]string(nil), ok.Args...)
		tc.edit(&c)
		_, err := prepare(c, tc.platform)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: prepare = %v; want an error about %q", tc.name, err, tc.want)
		}
		if err != nil && c.Password != "" && strings.Contains(err.Error(), c.Password) {
			t.Errorf("%s: the error shows the password", tc.name)
		}
	}
	// What is fine.
	c := ok
	c.Account, c.Password = `.\alice`, "pw"
	c.Executable = `C:\Program Files\QTunnel\qtunnel-gui.exe`
	if _, err := prepare(c, PlatformWindows); err != nil {
		t.Errorf("a Windows service as the user: %v", err)
	}
	c = ok
	c.Env = map[string]string{"QTUNNEL_SECRET_FILE": "/etc/qtunnel/secret"}
	c.Args = []string{"-secret-file", "/etc/qtunnel/secret"}
	if _, err := prepare(c, PlatformSystemd); err != nil {
		t.Errorf("a secret file's path is not a secret: %v", err)
	}
}
