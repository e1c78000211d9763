// Command qtunnel is QTunnel's headless binary: the server on a VPS, and
// the client role without a GUI (-clientmode=true). It turns the command
// line into a tunnel configuration, starts the engine (package
// core/tunnel), and stops it cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qtunnel/qtunnel/agent"
	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/metrics"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second signal while draining means "now".
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		<-again
		fmt.Fprintln(os.Stderr, "qtunnel: second signal, exiting without draining")
		os.Exit(1)
	}()
	// quic-go's own buffer warning goes to the standard logger; ours
	// (transport) says the same in the log, with the fix.
	_ = os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// run is the whole program, testable: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) > 0 {
		if cmd, ok := subcommands[args[0]]; ok {
			return exitCode(cmd(ctx, args[1:], stdout, stderr, getenv), stderr)
		}
	}
	var o options
	fs := newFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs)
			return 0
		}
		fmt.Fprintln(stderr, errorLine(err, " (see qtunnel -help)"))
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "qtunnel: unexpected argument %q (flags are written -name=value; see qtunnel -help)\n", fs.Arg(0))
		return 2
	}
	if len(args) == 0 {
		printUsage(stderr, fs)
		return 2
	}
	err := o.check()
	if err == nil && o.installService {
		var wd string
		if wd, err = os.Getwd(); err == nil {
			o.serviceArgs, err = serviceArgs(fs, wd)
		}
	}
	if err == nil {
		err = execute(ctx, &o, flagsSet(fs), stdout, stderr, getenv)
	}
	return exitCode(err, stderr)
}

// errorLine is how an error is printed: one line, whatever the error
// quotes from the command line, a file or a link.
func errorLine(err error, suffix string) string {
	return "qtunnel: " + oneLine(err.Error()) + suffix
}

// exitCode reports err and turns it into the exit code: 0, 2 for a
// mistake on the command line, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, errorLine(err, ""))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func execute(ctx context.Context, o *options, set map[string]bool, stdout, stderr io.Writer, getenv func(string) string) error {
	switch {
	case o.installService:
		return installService(o, set, stdout, stderr, getenv)
	case o.uninstallService:
		return uninstallService(o, stdout)
	case o.serviceAction != "":
		return serviceAction(o, stdout)
	case o.version:
		fmt.Fprintln(stdout, "qtunnel", buildVersion(), runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
		return nil
	case o.generateSecret:
		return generateSecret(o, stdout, stderr)
	case o.generateCert:
		return generateCert(o, stdout)
	case o.checkConfig != "":
		return checkConfigFile(o.checkConfig, stdout)
	}
	cfg, err := buildConfig(o, set, getenv)
	if err != nil {
		return err
	}
	levelVar := new(slog.LevelVar)
	level, _ := parseLevel(orDefault(cfg.LogLevel, "info"))
	levelVar.Set(level)
	log := newLogger(stderr, orDefault(cfg.LogFormat, "text"), levelVar)
	if o.pprof != "" {
		if err := servePprof(ctx, o.pprof, log); err != nil {
			return err
		}
	}
	if cfg.Limits.MemoryMiB > 0 {
		// A soft limit: the collector works harder near it. What keeps the
		// server under it are the connection and stream limits.
		debug.SetMemoryLimit(int64(cfg.Limits.MemoryMiB) << 20)
	}
	secrets, err := commandLineSecrets(o, cfg, set, log, getenv)
	if err != nil {
		return err
	}
	if cfg.Mode == config.ModeClient {
		if err := checkResolvable(cfg.Server); err != nil {
			return err
		}
	}
	var load func() (*config.Config, error)
	if o.configFile != "" {
		load = func() (*config.Config, error) { return buildConfig(o, set, getenv) }
	}
	a, err := agent.New(agent.Options{Config: cfg, Load: load, Secrets: secrets, Logger: log, LogLevel: levelVar, Version: buildVersion()})
	if err != nil {
		return err
	}
	return runAgent(ctx, a, cfg, log)
}

// commandLineSecrets are the secrets from -secret, -secret-file or the
// environment, which win over a secret-file named in the configuration
// file; nil when the configuration's secret files are to be read.
func commandLineSecrets(o *options, cfg *config.Config, set map[string]bool, log *slog.Logger, getenv func(string) string) ([]secret.Secret, error) {
	env := getenv(secret.EnvVar)
	if len(cfg.SecretFiles) > 0 && !set["secret-file"] {
		if o.secret == "" && env == "" {
			return nil, nil
		}
		cfg.SecretFiles = nil // the command line and environment override the file
	}
	file := ""
	if len(cfg.SecretFiles) > 0 {
		file = cfg.SecretFiles[0]
		cfg.SecretFiles = nil
	}
	sec, src, err := secret.Resolve(o.secret, file, env)
	if err != nil {
		if errors.Is(err, secret.ErrNoSecret) || errors.Is(err, secret.ErrManySources) {
			return nil, usageError{err.Error()}
		}
		return nil, err
	}
	if src == secret.SourceFlag {
		log.Warn("the secret given with -secret can be read by other users of this machine (ps, /proc); prefer -secret-file or " + secret.EnvVar)
	}
	if secret.Weak(sec) {
		log.Warn("the secret is weak: someone who intercepts one handshake could guess it offline; make a strong one with: qtunnel -generate-secret")
	}
	return []secret.Secret{sec}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// runAgent runs the engine with its control socket, metrics endpoint and
// SIGHUP reloads until ctx is done.
func runAgent(ctx context.Context, a *agent.Agent, cfg *config.Config, log *slog.Logger) error {
	role := control.RoleServer
	if cfg.Mode == config.ModeClient {
		role = control.RoleClient
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	ln, err := controlListener(cfg.Control, role, log)
	if err != nil {
		return err
	}
	if ln != nil {
		log.Info("control socket", "path", ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := control.Serve(ctx, ln, a); err != nil {
				log.Warn("control API stopped", "err", err)
			}
		}()
	}
	if cfg.Metrics != "" {
		ln, err := metrics.Listen(cfg.Metrics)
		if err != nil {
			return fmt.Errorf("metrics endpoint: %w", err)
		}
		log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := metrics.Serve(ctx, ln, a.Status); err != nil {
				log.Warn("metrics endpoint stopped", "err", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		reloadOnHangup(ctx, a, log)
	}()
	err = a.Run(ctx)
	if err == nil {
		log.Info(string(role) + " stopped")
	}
	return err
}

// controlListener opens the control socket: the configured path, or the
// per-user default. A default path held by another running qtunnel of the
// same user is not an error (the design document's users run several
// tunnels side by side): that process then has no control socket.
func controlListener(path string, role control.Role, log *slog.Logger) (net.Listener, error) {
	switch path {
	case "off", "none":
		return nil, nil
	case "":
		def, err := control.DefaultPath(role)
		if err != nil {
			log.Warn("no control socket", "err", err)
			return nil, nil
		}
		ln, err := control.Listen(def)
		if errors.Is(err, control.ErrInUse) {
			log.Warn("no control socket: another qtunnel " + string(role) + " of this user serves the default one; give -control=PATH for one here")
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("control socket: %w (give -control=PATH, or -control=off)", err)
		}
		return ln, nil
	}
	ln, err := control.Listen(path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// reloadOnHangup reads the configuration again on every SIGHUP.
func reloadOnHangup(ctx context.Context, a *agent.Agent, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if _, err := a.Reload(ctx); err != nil {
				log.Error("reload refused; the running configuration stays", "err", err)
			}
		}
	}
}

// checkResolvable fails on a server host name that does not exist: almost
// always a typo, better said at once than retried forever. Other lookup
// failures (no network yet) are left to the reconnect loop.
func checkResolvable(hostport string) error {
	host, _, _ := net.SplitHostPort(hostport)
	if net.ParseIP(host) != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return fmt.Errorf("server address %s: no such host %q", hostport, host)
	}
	return nil
}

func generateSecret(o *options, stdout, stderr io.Writer) error {
	s, err := secret.Generate()
	if err != nil {
		return err
	}
	if o.secretFile == "" {
		fmt.Fprintln(stdout, s)
		fmt.Fprintln(stderr, "qtunnel: keep it in a file only you can read, e.g. qtunnel -generate-secret -secret-file=qtunnel.secret")
		return nil
	}
	f, err := os.OpenFile(o.secretFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; remove it or choose another path", o.secretFile)
		}
		return fmt.Errorf("create secret file: %w", err)
	}
	if _, err := fmt.Fprintln(f, s); err != nil {
		_ = f.Close()
		_ = os.Remove(o.secretFile) // a half-written file would block the next -generate-secret
		return fmt.Errorf("write secret file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write secret file: %w", err)
	}
	fmt.Fprintf(stdout, "wrote a new 256-bit secret to %s (mode 0600); copy it to the other end the same way\n", o.secretFile)
	return nil
}

func generateCert(o *options, stdout io.Writer) error {
	certFile, keyFile := o.certFile, o.keyFile
	if certFile == "" {
		certFile = "server.crt"
	}
	if keyFile == "" {
		keyFile = "server.key"
	}
	var hosts []string
	if o.certHosts != "" {
		hosts = strings.Split(o.certHosts, ",")
	}
	certPEM, keyPEM, err := cert.Generate(hosts)
	if err != nil {
		return err
	}
	if err := cert.WritePair(certFile, keyFile, certPEM, keyPEM); err != nil {
		return err
	}
	der, err := cert.PEMToDER(certPEM)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (key mode 0600)\nfingerprint: %s\nstart the server with -cert-file=%s -key-file=%s; clients may pin it with -pin=%s\n",
		certFile, keyFile, cert.FingerprintOf(der), certFile, keyFile, cert.FingerprintOf(der))
	return nil
}

// defaultStateDir is where the server keeps its generated certificate:
// systemd's StateDirectory if set, /var/lib/qtunnel for root on Unix, else
// the user's state directory.
func defaultStateDir(getenv func(string) string) string {
	if d := getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	if runtime.GOOS != "windows" && os.Geteuid() == 0 {
		return "/var/lib/qtunnel"
	}
	if runtime.GOOS == "linux" {
		if d := getenv("XDG_STATE_HOME"); d != "" {
			return filepath.Join(d, "qtunnel")
		}
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, ".local", "state", "qtunnel")
		}
	}
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "qtunnel")
	}
	return "qtunnel-state"
}

// parseLevel takes exactly the levels a configuration file may name (slog
// itself would also take "DEBUG" or "info+2").
func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, usagef("-log-level=%s: want debug, info, warn or error", s)
}

func newLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
