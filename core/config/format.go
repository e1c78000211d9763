package config

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Format writes c as a commented YAML file. It writes the keys of c's
// mode that are set (zero values, the defaults, are left out) and
// nothing of the other mode. Parse accepts the result and gives back c
// if c is itself what Parse returns for some file (paths absolute,
// forwards named, the pin canonical); comments in the original file are
// not kept.
func Format(c *Config) []byte {
	var w writer
	client, server := c.Mode != ModeServer, c.Mode != ModeClient
	role := "QTunnel"
	switch c.Mode {
	case ModeClient:
		role = "QTunnel client"
	case ModeServer:
		role = "QTunnel server"
	}
	w.comment(0, role+" configuration.")
	w.entry("Which end of the tunnel this file configures: client or server.", "mode", scalar(string(c.Mode)))
	if c.Transport != "" {
		w.entry("The carrier between client and server: quic or tcp (the default).", "transport", scalar(c.Transport))
	}

	if client {
		switch {
		case len(c.Servers) > 0:
			w.entry("The servers' host:port, in order of preference: the client uses the\n"+
				"nearest one that answers and fails over when it stops.", "servers", "")
			for _, e := range c.Servers {
				if e.Pin == "" && e.SNI == "" {
					w.line("  - " + scalar(e.Address))
					continue
				}
				w.line("  - address: " + scalar(e.Address))
				w.pair(4, "pin", e.Pin)
				w.pair(4, "sni", e.SNI)
			}
			if c.FailoverAfter != 0 {
				w.entry("How long the server in use may stay silent before new connections\n"+
					"go to another (default 1s).", "failover-after", formatDuration(c.FailoverAfter))
			}
		case c.Server != "":
			w.entry("The server's host:port.", "server", scalar(c.Server))
		}
		if len(c.SecretFiles) > 0 && !server {
			w.entry(secretComment, "secret-file", scalar(c.SecretFiles[0]))
		}
		if c.Trust != (Trust{}) {
			w.entry("How the server's certificate is checked: pin (its SHA-256), ca (system\n"+
				"or a PEM file) and sni (the name to verify). Without pin or ca, the\n"+
				"server is authenticated by its proof of the secret alone.", "trust", "")
			w.pair(2, "pin", c.Trust.Pin)
			w.pair(2, "ca", c.Trust.CA)
			w.pair(2, "sni", c.Trust.SNI)
		}
		if c.Pool != 0 {
			w.entry("Connections kept ready when the transport is tcp (default 4).", "pool", strconv.Itoa(c.Pool))
		}
		if len(c.Forwards) > 0 || c.Mode == ModeClient {
			value := ""
			if len(c.Forwards) == 0 {
				value = "[]"
			}
			w.entry("Local listeners, each tunneled to a target that the server allows\n"+
				"(without a target: the server's default target).", "forwards", value)
			for _, f := range c.Forwards {
				first := "  - "
				if f.Name != "" && f.Name != defaultForwardName(f.Target) {
					w.pair(0, first+"name", f.Name)
					first = "    "
				}
				w.line(first + "listen: " + scalar(f.Listen))
				w.pair(4, "target", f.Target)
			}
		}
	}

	if server {
		if c.Listen != "" {
			w.entry("The address to listen on (\":443\": all interfaces).", "listen", scalar(c.Listen))
		}
		switch {
		case len(c.SecretFiles) == 1:
			w.entry(secretComment, "secret-file", scalar(c.SecretFiles[0]))
		case len(c.SecretFiles) > 1:
			w.entry("The files holding the accepted shared secrets (several while one is\n"+
				"replaced). Secrets never go in this file, which is shared and backed up.", "secret-files", "")
			for _, f := range c.SecretFiles {
				w.line("  - " + scalar(f))
			}
		}
		if c.CertFile != "" || c.KeyFile != "" {
			w.entry("The TLS certificate and its key (without them: one generated and kept\n"+
				"in state-dir).", "cert-file", scalar(c.CertFile))
			w.line("key-file: " + scalar(c.KeyFile))
		}
		if len(c.Targets) == 1 && c.Targets[0].Name == backendName && c.DefaultTarget == backendName {
			w.entry("The backend a client reaches, host:port.", "backend", scalar(c.Targets[0].Address))
		} else {
			if len(c.Targets) > 0 {
				w.entry("The backends clients may ask for (name: host:port).", "targets", "")
				for _, t := range c.Targets {
					w.line("  " + scalar(t.Name) + ": " + scalar(t.Address))
				}
			}
			if c.DefaultTarget != "" {
				w.entry("The target a client that names none gets.", "default-target", scalar(c.DefaultTarget))
			}
		}
		if c.Masquerade != "" {
			w.entry("The web site shown to peers without the secret: default (a built-in\n"+
				"page), off, an https:// site to proxy, or a directory.", "masquerade", scalar(c.Masquerade))
		}
		if c.Limits != (Limits{}) {
			w.entry("Bounds on what clients may use; left out, the defaults: max-clients\n"+
				"1024 (quic) or 8192 (tcp), max-pending a quarter of it, max-streams\n"+
				"1024, max-relays 4096, handshakes-per-second 20, wrong-secrets 5,\n"+
				"block-max 5m, handshake-timeout 10s, idle-timeout 5m (tcp), no memory-mib.", "limits", "")
			for _, kv := range []struct {
				key string
				n   int
			}{{"max-clients", c.Limits.MaxClients}, {"max-pending", c.Limits.MaxPending}, {"max-streams", c.Limits.MaxStreams},
				{"max-relays", c.Limits.MaxRelays}, {"handshakes-per-second", c.Limits.HandshakesPerSecond}, {"wrong-secrets", c.Limits.WrongSecrets}} {
				if kv.n != 0 {
					w.line("  " + kv.key + ": " + strconv.Itoa(kv.n))
				}
			}
			w.duration(2, "block-max", c.Limits.BlockMax)
			w.duration(2, "handshake-timeout", c.Limits.HandshakeTimeout)
			w.duration(2, "idle-timeout", c.Limits.IdleTimeout)
			if c.Limits.MemoryMiB != 0 {
				w.line("  memory-mib: " + strconv.Itoa(c.Limits.MemoryMiB))
			}
		}
	}

	if c.LogLevel != "" || c.LogFormat != "" {
		w.entry("Logging: level debug, info (default), warn or error; format text\n"+
			"(default) or json.", "log", "")
		w.pair(2, "level", c.LogLevel)
		w.pair(2, "format", c.LogFormat)
	}
	if c.StateDir != "" {
		w.entry("Where generated files are kept.", "state-dir", scalar(c.StateDir))
	}
	if c.Control != "" {
		w.entry("The control socket.", "control", scalar(c.Control))
	}
	if c.Metrics != "" {
		w.entry("The address of the Prometheus metrics endpoint.", "metrics", scalar(c.Metrics))
	}
	if c.DrainTimeout != 0 {
		w.entry("How long streams may go on after a shutdown starts (default 10s).", "drain-timeout", scalar(formatDuration(c.DrainTimeout)))
	}
	if c.Congestion != "" {
		w.entry("Congestion control: bbr (the default) or reno.", "congestion", scalar(c.Congestion))
	}
	return w.Bytes()
}

const secretComment = "The file holding the shared secret. The secret never goes in this file,\n" +
	"which is shared and backed up."

// defaultForwardName is the name Parse gives a forward without one.
func defaultForwardName(target string) string {
	if target == "" {
		return "default"
	}
	return target
}

// writer builds the file line by line: a hand-written layout keeps
// comments and blank lines where a reader expects them, while scalar
// leaves quoting to the YAML library.
type writer struct{ bytes.Buffer }

func (w *writer) line(s string) {
	_, _ = w.WriteString(s) // a bytes.Buffer's writes never fail
	_ = w.WriteByte('\n')
}

func (w *writer) comment(indent int, text string) {
	for l := range strings.SplitSeq(text, "\n") {
		w.line(strings.Repeat(" ", indent) + "# " + l)
	}
}

// entry writes a blank line, a comment and a top-level key; an empty
// value leaves the value to the lines that follow.
func (w *writer) entry(comment, key, value string) {
	_ = w.WriteByte('\n')
	w.comment(0, comment)
	if value == "" {
		w.line(key + ":")
	} else {
		w.line(key + ": " + value)
	}
}

// pair writes an indented "key: value" if value is set.
func (w *writer) pair(indent int, key, value string) {
	if value != "" {
		w.line(strings.Repeat(" ", indent) + key + ": " + scalar(value))
	}
}

func (w *writer) duration(indent int, key string, d time.Duration) {
	if d != 0 {
		w.pair(indent, key, formatDuration(d))
	}
}

// formatDuration is d.String() without its zero units: "5m", not "5m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// scalar renders s as a YAML string that reads back as s, quoted only
// where YAML needs it, and always on one line.
func scalar(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	b, err := yaml.Marshal(n)
	if err != nil || bytes.Count(b, []byte("\n")) > 1 {
		// Line breaks would make a block scalar; double quotes escape them.
		n.Style = yaml.DoubleQuotedStyle
		b, err = yaml.Marshal(n)
	}
	if err != nil {
		return strconv.Quote(s) // not reached for valid UTF-8
	}
	return strings.TrimSuffix(string(b), "\n")
}
