package bgservice

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kardianos/service"
)

// The service definitions QTunnel installs, in kardianos's template
// language (not text/template: kardianos v1.3 renders with a small engine
// of its own, see the KeyValue documentation): {{Key}}, {{Key | fn}},
// {{if Key}}…{{else}}…{{end}}, {{range Key}}…{{.}}…{{end}}. The keys and
// functions are those kardianos passes: for systemd Path, Arguments,
// Description, WorkingDirectory, EnvVars (one "Environment=K=V" line
// each) and the functions cmd (double-quote) and cmdEscape (spaces as
// \x20); for launchd Name, Path, Arguments, EnvVars (a <key>/<string>
// pair each), WorkingDirectory, StandardOutPath and StandardErrorPath and
// the function html (XML escaping).

// SystemdUserUnit is the unit of a "systemctl --user" service: it starts
// with the user's service manager (default.target) and is restarted 2 s
// after a failure, at most 10 times a minute. The secret is not on the
// command line: the engine reads it from the user's keyring.
const SystemdUserUnit = `[Unit]
Description={{Description}}
ConditionFileIsExecutable={{Path | cmdEscape}}
StartLimitIntervalSec=60
StartLimitBurst=10

[Service]
Type=simple
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
{{if WorkingDirectory}}WorkingDirectory={{WorkingDirectory | cmdEscape}}
{{end}}{{range EnvVars}}{{.}}
{{end}}Restart=on-failure
RestartSec=2

[Install]
WantedBy=default.target
`

// SystemdSystemUnit is the same for a system-wide service (installed as
// root): it waits for the network and starts with multi-user.target.
const SystemdSystemUnit = `[Unit]
Description={{Description}}
ConditionFileIsExecutable={{Path | cmdEscape}}
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=60
StartLimitBurst=10

[Service]
Type=simple
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}
{{if WorkingDirectory}}WorkingDirectory={{WorkingDirectory | cmdEscape}}
{{end}}{{range EnvVars}}{{.}}
{{end}}Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
`

// LaunchdAgentPlist is the property list of a LaunchAgent (or daemon): it
// starts when loaded (RunAtLoad, so at login), is started again 2 s after
// it exits with an error (KeepAlive on unsuccessful exit, ThrottleInterval)
// but not after a clean stop, and writes its output to log files.
const LaunchdAgentPlist = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{{Name | html}}</string>
	<key>ProgramArguments</key>
	<array>
		<string>{{Path | html}}</string>
{{range Arguments}}		<string>{{. | html}}</string>
{{end}}	</array>
{{if EnvVars}}	<key>EnvironmentVariables</key>
	<dict>
{{range EnvVars}}{{.}}
{{end}}	</dict>
{{end}}{{if WorkingDirectory}}	<key>WorkingDirectory</key>
	<string>{{WorkingDirectory | html}}</string>
{{end}}	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>2</integer>
	<key>StandardOutPath</key>
	<string>{{StandardOutPath | html}}</string>
	<key>StandardErrorPath</key>
	<string>{{StandardErrorPath | html}}</string>
</dict>
</plist>
`

// kardianosConfig is c (already prepared) as kardianos takes it, with
// QTunnel's templates and options.
func kardianosConfig(c Config, platform string) (*service.Config, error) {
	opt := service.KeyValue{
		"UserService":   c.UserService,
		"SystemdScript": systemdTemplate(c),
		"LaunchdConfig": LaunchdAgentPlist,
		// Windows: restart 2 s after a crash, like Restart=on-failure.
		"OnFailure":              "restart",
		"OnFailureDelayDuration": "2s",
		"OnFailureResetPeriod":   60,
		"StartType":              "automatic",
	}
	if c.Password != "" {
		opt["Password"] = c.Password
	}
	switch {
	case platform == PlatformLaunchd:
		dir, err := launchdLogDir(c)
		if err != nil {
			return nil, err
		}
		opt["LogDirectory"] = dir
	case c.LogDirectory != "":
		opt["LogDirectory"] = c.LogDirectory
	}
	return &service.Config{
		Name:        c.Name,
		DisplayName: c.DisplayName,
		Description: c.Description,
		UserName:    c.Account,
		Executable:  c.Executable,
		Arguments:   c.Args,
		EnvVars:     c.Env,
		Option:      opt,
	}, nil
}

func systemdTemplate(c Config) string {
	if c.UserService {
		return SystemdUserUnit
	}
	return SystemdSystemUnit
}

// SystemdUnit returns the unit file kardianos writes for c on systemd
// (~/.config/systemd/user/NAME.service for a user service,
// /etc/systemd/system/NAME.service otherwise), without installing it.
func SystemdUnit(c Config) (string, error) {
	c, err := prepare(c, PlatformSystemd)
	if err != nil {
		return "", err
	}
	// The data kardianos's systemd backend passes (service_systemd_linux.go,
	// Install), with its defaults for the options QTunnel does not set.
	data := map[string]any{
		"Description":       c.Description,
		"Path":              c.Executable,
		"Name":              c.Name,
		"Dependencies":      []string(nil),
		"Arguments":         c.Args,
		"ChRoot":            "",
		"WorkingDirectory":  "",
		"UserName":          c.Account,
		"ReloadSignal":      "",
		"PIDFile":           "",
		"LogDirectory":      logDirOr(c, "/var/log"),
		"OutputFileSupport": "",
		"LimitNOFILE":       "",
		"Restart":           "always",
		"SuccessExitStatus": "",
		"EnvVars":           envLines(c.Env, func(k, v string) string { return "Environment=" + k + "=" + v }),
	}
	return render(systemdTemplate(c), data, map[string]func(string) string{
		"cmd":       func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` },
		"cmdEscape": func(s string) string { return strings.ReplaceAll(s, " ", `\x20`) },
	})
}

// LaunchdPlist returns the property list kardianos writes for c on macOS
// (~/Library/LaunchAgents/NAME.plist for a user service,
// /Library/LaunchDaemons/NAME.plist otherwise), without installing it.
func LaunchdPlist(c Config) (string, error) {
	c, err := prepare(c, PlatformLaunchd)
	if err != nil {
		return "", err
	}
	dir, err := launchdLogDir(c)
	if err != nil {
		return "", err
	}
	logs := launchdLogFiles(dir, c.Name)
	// The data kardianos's launchd backend passes (service_darwin.go,
	// Install).
	data := map[string]any{
		"Name":              c.Name,
		"Path":              c.Executable,
		"Arguments":         c.Args,
		"ChRoot":            "",
		"UserName":          c.Account,
		"WorkingDirectory":  "",
		"KeepAlive":         "true",
		"RunAtLoad":         "false",
		"SessionCreate":     "false",
		"StandardOutPath":   logs[0],
		"StandardErrorPath": logs[1],
		"EnvVars": envLines(c.Env, func(k, v string) string {
			return "\t\t<key>" + xmlEscape(k) + "</key>\n\t\t<string>" + xmlEscape(v) + "</string>"
		}),
	}
	return render(LaunchdAgentPlist, data, map[string]func(string) string{"html": xmlEscape})
}

// xmlEscape is kardianos's plistEscaper (text/template's html escaping).
var xmlEscape = strings.NewReplacer(`&`, "&amp;", `'`, "&#39;", `<`, "&lt;", `>`, "&gt;", `"`, "&#34;").Replace

// launchdLogDir is where a LaunchAgent's output goes: Config.LogDirectory,
// else ~/Library/Logs for a user service and /var/log for a daemon.
// QTunnel always tells kardianos, whose own default for a user service is
// the home directory itself.
func launchdLogDir(c Config) (string, error) {
	if c.LogDirectory != "" {
		return c.LogDirectory, nil
	}
	if !c.UserService {
		return "/var/log", nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("bgservice: where to keep the service's logs: %w", err)
	}
	return filepath.Join(home, "Library", "Logs"), nil
}

// launchdLogFiles are kardianos's names for the output files in dir.
func launchdLogFiles(dir, name string) [2]string {
	return [2]string{dir + "/" + name + ".out.log", dir + "/" + name + ".err.log"}
}

func logDirOr(c Config, def string) string {
	if c.LogDirectory != "" {
		return c.LogDirectory
	}
	return def
}

// envLines renders env one line per variable, sorted by name, as
// kardianos's envVars does.
func envLines(env map[string]string, f func(k, v string) string) []string {
	if len(env) == 0 {
		return nil
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, f(k, env[k]))
	}
	return out
}

// render executes a template in kardianos's language, with its rules:
// values are strings or lists of strings, an unknown key or function is an
// error, {{if}} tests for a non-empty string or list, {{range}} binds
// {{.}} to each item, and {{- and -}} trim the whitespace next to them.
func render(text string, data map[string]any, funcs map[string]func(string) string) (string, error) {
	nodes, stop, _, err := parse(tokenize(text), "")
	if err != nil {
		return "", err
	}
	if stop != "" {
		return "", fmt.Errorf("bgservice: template: unexpected {{%s}}", stop)
	}
	var b strings.Builder
	if err := execute(&b, nodes, data, nil, funcs); err != nil {
		return "", err
	}
	return b.String(), nil
}

type token struct {
	action bool
	text   string // literal text, or the action without {{ }} and trim marks
}

// tokenize splits text into literals and actions, applying trim marks.
func tokenize(text string) []token {
	var toks []token
	trimNext := false
	for {
		open := strings.Index(text, "{{")
		closing := -1
		if open >= 0 {
			closing = strings.Index(text[open:], "}}")
		}
		if open < 0 || closing < 0 {
			if trimNext {
				text = strings.TrimLeft(text, " \t\r\n")
			}
			if text != "" {
				toks = append(toks, token{text: text})
			}
			if open >= 0 {
				// An unclosed action: keep it as an action so that
				// parse reports it.
				toks = append(toks, token{action: true, text: "\x00unclosed"})
			}
			return toks
		}
		lit, act := text[:open], text[open+2:open+closing]
		text = text[open+closing+2:]
		if trimNext {
			lit = strings.TrimLeft(lit, " \t\r\n")
		}
		if strings.HasPrefix(act, "-") {
			act = act[1:]
			lit = strings.TrimRight(lit, " \t\r\n")
		}
		trimNext = strings.HasSuffix(act, "-")
		if trimNext {
			act = act[:len(act)-1]
		}
		if lit != "" {
			toks = append(toks, token{text: lit})
		}
		toks = append(toks, token{action: true, text: strings.TrimSpace(act)})
	}
}

type node struct {
	kind      string // "text", "value", "if", "range"
	text      string // literal, or key
	funcs     []string
	body, alt []node
}

// parse builds nodes from toks until one of the block keywords in stops
// ("end", "else"); it returns the nodes, the keyword that stopped it and
// the remaining tokens.
func parse(toks []token, stops string) ([]node, string, []token, error) {
	var nodes []node
	for len(toks) > 0 {
		t := toks[0]
		toks = toks[1:]
		if !t.action {
			nodes = append(nodes, node{kind: "text", text: t.text})
			continue
		}
		if t.text == "\x00unclosed" {
			return nil, "", nil, errors.New(`bgservice: template: unclosed "{{"`)
		}
		kw, rest, _ := strings.Cut(t.text, " ")
		if i := strings.IndexAny(kw, "|\t"); i >= 0 {
			kw, rest = kw[:i], t.text[i:]
		}
		switch kw {
		case "end", "else":
			if !strings.Contains(stops, kw) {
				return nil, "", nil, fmt.Errorf("bgservice: template: unexpected {{%s}}", kw)
			}
			return nodes, kw, toks, nil
		case "if", "range":
			key := strings.TrimSpace(rest)
			if key == "" {
				return nil, "", nil, fmt.Errorf("bgservice: template: {{%s}} needs a key", kw)
			}
			n := node{kind: kw, text: key}
			bodyStops := "end"
			if kw == "if" {
				bodyStops = "else end"
			}
			var stop string
			var err error
			n.body, stop, toks, err = parse(toks, bodyStops)
			if err != nil {
				return nil, "", nil, err
			}
			if stop == "else" {
				if n.alt, stop, toks, err = parse(toks, "end"); err != nil {
					return nil, "", nil, err
				}
			}
			if stop != "end" {
				return nil, "", nil, fmt.Errorf("bgservice: template: {{%s %s}} has no {{end}}", kw, key)
			}
			nodes = append(nodes, n)
		default:
			parts := strings.Split(t.text, "|")
			n := node{kind: "value", text: strings.TrimSpace(parts[0])}
			for _, p := range parts[1:] {
				n.funcs = append(n.funcs, strings.TrimSpace(p))
			}
			nodes = append(nodes, n)
		}
	}
	return nodes, "", nil, nil
}

func execute(b *strings.Builder, nodes []node, data map[string]any, dot any, funcs map[string]func(string) string) error {
	for _, n := range nodes {
		if n.kind == "text" {
			b.WriteString(n.text)
			continue
		}
		v := dot
		if n.text != "." {
			var ok bool
			if v, ok = data[n.text]; !ok {
				return fmt.Errorf("bgservice: template: unknown key %q", n.text)
			}
		}
		switch n.kind {
		case "value":
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("bgservice: template: %q is not a string", n.text)
			}
			for _, name := range n.funcs {
				f, ok := funcs[name]
				if !ok {
					return fmt.Errorf("bgservice: template: unknown function %q", name)
				}
				s = f(s)
			}
			b.WriteString(s)
		case "if":
			body := n.alt
			if s, ok := v.(string); ok && s != "" {
				body = n.body
			} else if l, ok := v.([]string); ok && len(l) > 0 {
				body = n.body
			}
			if err := execute(b, body, data, dot, funcs); err != nil {
				return err
			}
		case "range":
			items, ok := v.([]string)
			if !ok {
				return fmt.Errorf("bgservice: template: %q is not a list", n.text)
			}
			for _, item := range items {
				if err := execute(b, n.body, data, item, funcs); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
