package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/core/sharelink"
)

// subcommands are the words that may come first on the command line.
var subcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error{
	"status":     cmdStatus,
	"up":         cmdUp,
	"down":       cmdDown,
	"reload":     cmdReload,
	"migrate":    cmdMigrate,
	"set-secret": cmdSetSecret,
	"share":      cmdShare,
	"import":     cmdImport,
	"health":     cmdHealth,
}

const subcommandUsage = `Commands that talk to a running qtunnel (the client's, or with -server the
server's, control socket at its per-user default path unless -control is given):
  qtunnel status [-json] [-watch]   state, server, RTT, loss, traffic, streams, forwards
  qtunnel up | down                 start or stop the tunnel (the process keeps running)
  qtunnel reload                    read the configuration file again (as SIGHUP does)
  qtunnel migrate                   move the QUIC connection to a new network path now
  qtunnel set-secret < FILE         replace the secret in memory (read from standard input)
  qtunnel health                    exit 0 if it serves (server) or is connected (client), else 1

Onboarding:
  qtunnel share -config=server.yaml -address=vps.example.com:443
  qtunnel import [-config=client.yaml] [-listen=127.0.0.1:8080] 'qtunnel://...'
`

// controlFlags are the flags every control command takes.
type controlFlags struct {
	path   string
	server bool
}

func newCommandFlags(name string, cf *controlFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("qtunnel "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if cf != nil {
		fs.StringVar(&cf.path, "control", "", "control socket `path` (default: the per-user path of the client, or of the server with -server)")
		fs.BoolVar(&cf.server, "server", false, "talk to this user's server instead of the client")
	}
	return fs
}

// parseCommand parses a subcommand's flags; -help prints them.
func parseCommand(fs *flag.FlagSet, args []string, stdout io.Writer) (bool, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage of %s:\n", fs.Name())
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return true, nil
		}
		return false, usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	return false, nil
}

func (cf *controlFlags) client() (*control.Client, error) {
	if cf.path != "" {
		return control.NewClient(cf.path), nil
	}
	role := control.RoleClient
	if cf.server {
		role = control.RoleServer
	}
	p, err := control.DefaultPath(role)
	if err != nil {
		return nil, err
	}
	return control.NewClient(p), nil
}

func cmdStatus(ctx context.Context, args []string, stdout, _ io.Writer, _ func(string) string) error {
	var cf controlFlags
	fs := newCommandFlags("status", &cf)
	asJSON := fs.Bool("json", false, "print the status as JSON, for scripts")
	watch := fs.Bool("watch", false, "keep printing: one line per event (state changes, errors, and stats every second)")
	if done, err := parseCommand(fs, args, stdout); done || err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if *watch {
		return c.Events(ctx, func(ev control.Event) {
			if *asJSON {
				b, _ := json.Marshal(ev)
				fmt.Fprintln(stdout, string(b))
				return
			}
			fmt.Fprintln(stdout, eventLine(ev))
		})
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(stdout, st, time.Now())
	return nil
}

func simpleCommand(name, done string, call func(context.Context, *control.Client) (string, error)) func(context.Context, []string, io.Writer, io.Writer, func(string) string) error {
	return func(ctx context.Context, args []string, stdout, _ io.Writer, _ func(string) string) error {
		var cf controlFlags
		fs := newCommandFlags(name, &cf)
		if stop, err := parseCommand(fs, args, stdout); stop || err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		msg, err := call(ctx, c)
		if err != nil {
			return err
		}
		if msg == "" {
			msg = done
		}
		fmt.Fprintln(stdout, msg)
		return nil
	}
}

var (
	cmdUp = simpleCommand("up", "tunnel started", func(ctx context.Context, c *control.Client) (string, error) {
		return "", c.Start(ctx)
	})
	cmdDown = simpleCommand("down", "tunnel stopped (the process still runs: qtunnel up starts it again)", func(ctx context.Context, c *control.Client) (string, error) {
		return "", c.Stop(ctx)
	})
	cmdReload = simpleCommand("reload", "", func(ctx context.Context, c *control.Client) (string, error) {
		return c.Reload(ctx)
	})
	cmdMigrate = simpleCommand("migrate", "", func(ctx context.Context, c *control.Client) (string, error) {
		return c.Migrate(ctx)
	})
)

func cmdSetSecret(ctx context.Context, args []string, stdout, _ io.Writer, _ func(string) string) error {
	var cf controlFlags
	fs := newCommandFlags("set-secret", &cf)
	if stop, err := parseCommand(fs, args, stdout); stop || err != nil {
		return err
	}
	line, err := bufio.NewReaderSize(os.Stdin, secret.MaxLen+2).ReadSlice('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the secret from standard input: %w", err)
	}
	sec := []byte(strings.TrimRight(string(line), "\r\n"))
	defer clear(sec)
	if len(sec) == 0 {
		return usagef("set-secret reads the secret from standard input, e.g. qtunnel set-secret < secret-file")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.SetSecret(ctx, sec); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "secret replaced in memory; the tunnel reconnected with it")
	return nil
}

// serverWords describes one of a client's several servers.
func serverWords(s control.ServerStatus) string {
	var w string
	switch {
	case s.Active:
		w = "in use"
	case s.Healthy:
		w = "standby"
	case s.State == control.StateConnected:
		w = "not answering"
	default:
		w = "connecting"
	}
	if s.Healthy && s.RTTMillis > 0 {
		w += fmt.Sprintf(", rtt %.1f ms", s.RTTMillis)
	}
	if s.OverTCP {
		w += ", on the TLS/TCP fallback"
	}
	if !s.Healthy && s.LastError != "" {
		w += ": " + s.LastError
	}
	return w
}

// printStatus writes st for a person.
func printStatus(w io.Writer, st control.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "qtunnel %s (%s, pid %d): %s for %s\n", st.Role, st.Version, st.PID, st.State, now.Sub(st.Since).Round(time.Second))
	if st.ConfigFile != "" {
		fmt.Fprintf(tw, "  config\t%s\n", st.ConfigFile)
	}
	if st.Role == control.RoleClient {
		line := fmt.Sprintf("%s over %s", st.Server, st.Transport)
		if st.OverTCP {
			line += " (QUIC does not get through: on the TLS/TCP fallback)"
		}
		if st.State == control.StateConnected && st.RTTMillis > 0 {
			line += fmt.Sprintf(", rtt %.1f ms", st.RTTMillis)
			if st.PacketsSent > 0 {
				line += fmt.Sprintf(", loss %.2f %%", 100*st.Loss)
			}
		}
		fmt.Fprintf(tw, "  server\t%s\n", line)
		for _, s := range st.Servers {
			fmt.Fprintf(tw, "    %s\t%s\n", s.Address, serverWords(s))
		}
		if st.Failovers > 0 {
			fmt.Fprintf(tw, "  failovers\t%d\n", st.Failovers)
		}
		fmt.Fprintf(tw, "  connects\t%d (%d reconnects, %d moves to a new network path)\n", st.Connects, st.Reconnects, st.Migrations)
	} else {
		fmt.Fprintf(tw, "  listen\t%s over %s\n", st.Listen, st.Transport)
		fmt.Fprintf(tw, "  clients\t%d connected; %d handshakes, %d refused for a wrong secret\n", st.ActiveConnections, st.Handshakes, st.AuthFailures)
		if st.WebVisitors > 0 || len(st.Refused) > 0 {
			fmt.Fprintf(tw, "  others\t%d served the web site; refused: %d over their rate, %d blocked for wrong secrets, %d at the connection limits\n",
				st.WebVisitors, st.Refused["rate"], st.Refused["blocked"], st.Refused["full"])
		}
	}
	fmt.Fprintf(tw, "  traffic\tup %s (%s/s), down %s (%s/s)\n", bytesWords(st.BytesUp), bytesWords(int64(st.RateUp)), bytesWords(st.BytesDown), bytesWords(int64(st.RateDown)))
	fmt.Fprintf(tw, "  streams\t%d active, %d total, %d failed\n", st.ActiveStreams, st.TotalStreams, st.FailedStreams)
	if len(st.Forwards) > 0 {
		fmt.Fprintf(tw, "  forwards\t\n")
		for _, f := range st.Forwards {
			target := f.Target
			if target == "" {
				target = "(default)"
			}
			fmt.Fprintf(tw, "    %s\t%s -> %s\t%d active, %d total, %d failed\tup %s, down %s\n", f.Name, f.Listen, target, f.Active, f.Total, f.Failed, bytesWords(f.BytesUp), bytesWords(f.BytesDown))
			if f.LastError != "" {
				// No tab after it: a long message must not widen the columns.
				fmt.Fprintf(tw, "    \tlast error: %s\n", f.LastError)
			}
		}
	}
	if len(st.Targets) > 0 {
		fmt.Fprintf(tw, "  targets\t\n")
		for _, t := range st.Targets {
			fmt.Fprintf(tw, "    %s\t%s\t%d active, %d total, %d failed\tup %s, down %s\n", t.Name, t.Address, t.Active, t.Total, t.Failed, bytesWords(t.BytesUp), bytesWords(t.BytesDown))
		}
	}
	if len(st.RelayErrors) > 0 {
		var parts []string
		for k, v := range st.RelayErrors {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		slices.Sort(parts)
		fmt.Fprintf(tw, "  errors\t%s\n", strings.Join(parts, ", "))
	}
	if st.LastError != "" {
		fmt.Fprintf(tw, "  last error\t%s\n", st.LastError)
	}
}

// eventLine is one event for -watch.
func eventLine(ev control.Event) string {
	b := ev.Time.Format("15:04:05") + " " + string(ev.Type)
	if ev.Message != "" {
		b += ": " + ev.Message
	}
	if st := ev.Status; st != nil {
		b += fmt.Sprintf(" [%s, up %s/s, down %s/s, %d active]", st.State, bytesWords(int64(st.RateUp)), bytesWords(int64(st.RateDown)), st.ActiveStreams)
	}
	return b
}

// bytesWords is n in binary units.
func bytesWords(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, " KMGT"[i])
}

// cmdShare prints a link and QR code with which a client imports the
// server's address, pin and secret.
func cmdShare(_ context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newCommandFlags("share", nil)
	cfgPath := fs.String("config", "", "the server's configuration `file`")
	address := fs.String("address", "", "the `host:port` clients reach the server at (its public name)")
	target := fs.String("target", "", "the target `name` the client's forward asks for (default: the server's default)")
	noSecret := fs.Bool("no-secret", false, "leave the secret out: the user gets it another way")
	noQR := fs.Bool("no-qr", false, "print the link only")
	if stop, err := parseCommand(fs, args, stdout); stop || err != nil {
		return err
	}
	if *cfgPath == "" || *address == "" {
		return usagef("share needs -config=FILE (the server's) and -address=HOST:PORT (how clients reach it)")
	}
	if err := checkAddr("-address", *address, false); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Mode != config.ModeServer {
		return usagef("%s is a client configuration; share reads the server's", *cfgPath)
	}
	if *target != "" && !hasTarget(cfg, *target) {
		return usagef("-target=%s: the server has no such target", *target)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = defaultStateDir(getenv)
	}
	var crtPin string
	if cfg.CertFile != "" {
		crt, err := cert.Load(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return err
		}
		fp, err := cert.LeafFingerprint(crt)
		if err != nil {
			return err
		}
		crtPin = fp.String()
	} else {
		crt, _, err := cert.LoadOrCreate(cfg.StateDir, nil)
		if err != nil {
			return fmt.Errorf("server certificate: %w", err)
		}
		fp, err := cert.LeafFingerprint(crt)
		if err != nil {
			return err
		}
		crtPin = fp.String()
	}
	link := sharelink.Link{Server: *address, Transport: orDefault(cfg.Transport, "tcp"), Pin: crtPin, Target: *target}
	if !*noSecret {
		if len(cfg.SecretFiles) == 0 {
			return usagef("the configuration names no secret-file to share; give -no-secret and hand the secret over another way")
		}
		s, err := secret.FromFile(cfg.SecretFiles[0])
		if err != nil {
			return err
		}
		link.Secret = s.Bytes()
	}
	text := link.String()
	if link.Secret != nil {
		fmt.Fprintln(stderr, "qtunnel: THIS LINK CONTAINS THE SECRET: anyone who has it can use the tunnel. Send it like a password, and only to the person it is for.")
	} else {
		fmt.Fprintln(stderr, "qtunnel: this link has no secret; the user needs it as well (qtunnel import asks where it is).")
	}
	fmt.Fprintln(stdout, text)
	if !*noQR {
		qr, err := sharelink.QR(text)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, qr)
	}
	return nil
}

func hasTarget(cfg *config.Config, name string) bool {
	for _, t := range cfg.Targets {
		if t.Name == name {
			return true
		}
	}
	return false
}

// cmdImport writes a client configuration (and the secret, to its own
// 0600 file) from a share link.
func cmdImport(_ context.Context, args []string, stdout, _ io.Writer, getenv func(string) string) error {
	fs := newCommandFlags("import", nil)
	cfgPath := fs.String("config", "", "write the client configuration to this `file` (default: ~/.config/qtunnel/client.yaml)")
	secretPath := fs.String("secret-file", "", "write the secret to this `file`, mode 0600 (default: next to the configuration), or, for a link without the secret, read it from there")
	listen := fs.String("listen", "127.0.0.1:8080", "the local `address` the forward listens on")
	if stop, err := parseCommand(fs, args, stdout); stop || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("import takes one link: qtunnel import [-config=FILE] 'qtunnel://...'")
	}
	if err := checkAddr("-listen", *listen, true); err != nil {
		return err
	}
	link, err := sharelink.Parse(fs.Arg(0))
	if err != nil {
		return usageError{"the link: " + err.Error()}
	}
	defer clear(link.Secret)
	if *cfgPath == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("no configuration directory (give -config=FILE): %w", err)
		}
		*cfgPath = filepath.Join(dir, "qtunnel", "client.yaml")
	}
	if *secretPath == "" {
		*secretPath = filepath.Join(filepath.Dir(*cfgPath), "secret")
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	cfg := &config.Config{
		Mode:        config.ModeClient,
		Transport:   link.Transport,
		Server:      link.Server,
		Trust:       config.Trust{Pin: link.Pin, SNI: link.SNI},
		SecretFiles: []string{abs(*secretPath)},
		Forwards:    []config.Forward{{Name: forwardName(link), Listen: *listen, Target: link.Target}},
	}
	data, err := checkedImport(*cfgPath, cfg)
	if err != nil {
		return err
	}
	if _, err := os.Stat(*cfgPath); err == nil {
		return fmt.Errorf("%s already exists; remove it or give -config=ANOTHER", *cfgPath)
	}
	if err := os.MkdirAll(filepath.Dir(*cfgPath), 0o700); err != nil {
		return fmt.Errorf("create configuration directory: %w", err)
	}
	if link.Secret != nil {
		if err := writeNewFile(*secretPath, append(link.Secret, '\n'), 0o600); err != nil {
			return err
		}
	} else if _, err := os.Stat(*secretPath); err != nil {
		fmt.Fprintf(stdout, "the link has no secret: put it in %s (mode 0600) before starting\n", *secretPath)
	}
	if err := writeNewFile(*cfgPath, data, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (server %s, %s, pinned %s)\nstart the client with: qtunnel -config=%s\nthen connect to %s\n",
		*cfgPath, link.Server, link.Transport, link.Pin, *cfgPath, *listen)
	return nil
}

// checkedImport formats cfg as the file import writes, and reads it back
// as the client will: the link is someone else's text and -listen the
// user's, and a value the file refuses, or does not keep as it is, is
// refused now rather than when the client starts.
func checkedImport(path string, cfg *config.Config) ([]byte, error) {
	data := config.Format(cfg)
	back, err := config.Parse(path, data)
	if err != nil {
		msg := err.Error()
		if list := config.Errors(err); len(list) > 0 {
			msg = list[0].Msg
			if list[0].Field != "" {
				msg = list[0].Field + ": " + msg
			}
		}
		return nil, usagef("the link and -listen make a configuration the client would refuse: %s", msg)
	}
	if back.Server != cfg.Server || back.Transport != cfg.Transport || back.Trust != cfg.Trust ||
		!slices.Equal(back.Forwards, cfg.Forwards) || !slices.Equal(back.SecretFiles, cfg.SecretFiles) {
		return nil, usagef("the link or -listen holds text a configuration file cannot keep as it is (such as invalid UTF-8)")
	}
	return data, nil
}

func forwardName(l sharelink.Link) string {
	if l.Target != "" {
		return l.Target
	}
	return "default"
}

// writeNewFile creates path with data, refusing to overwrite.
func writeNewFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm) // #nosec G304 -- the path the user asked import to write; O_EXCL never overwrites
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; remove it or choose another path", path)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(path) // a partial file would block the next try
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
