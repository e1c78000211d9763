// Command qtunnel is QTunnel's headless binary: the server on a VPS, and
// the client role without a GUI (-clientmode=true). It turns the command
// line into a tunnel configuration, starts the engine (package
// core/tunnel), and stops it cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"syscall"
	"time"

	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/core/transport"
	"github.com/qtunnel/qtunnel/core/tunnel"
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
	var o options
	fs := newFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs)
			return 0
		}
		fmt.Fprintf(stderr, "qtunnel: %v (see qtunnel -help)\n", err)
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
	if err == nil {
		err = execute(ctx, &o, stdout, stderr, getenv)
	}
	if err != nil {
		fmt.Fprintf(stderr, "qtunnel: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

func execute(ctx context.Context, o *options, stdout, stderr io.Writer, getenv func(string) string) error {
	switch {
	case o.version:
		fmt.Fprintln(stdout, "qtunnel", buildVersion(), runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
		return nil
	case o.generateSecret:
		return generateSecret(o, stdout, stderr)
	case o.generateCert:
		return generateCert(o, stdout)
	}
	level, _ := parseLevel(o.logLevel)
	log := newLogger(stderr, o.logFormat, level)
	if o.pprof != "" {
		if err := servePprof(ctx, o.pprof, log); err != nil {
			return err
		}
	}

	sec, src, err := secret.Resolve(o.secret, o.secretFile, getenv(secret.EnvVar))
	if err != nil {
		if errors.Is(err, secret.ErrNoSecret) || errors.Is(err, secret.ErrManySources) {
			return usageError{err.Error()}
		}
		return err
	}
	if src == secret.SourceFlag {
		log.Warn("the secret given with -secret can be read by other users of this machine (ps, /proc); prefer -secret-file or " + secret.EnvVar)
	}
	if secret.Weak(sec) {
		log.Warn("the secret is weak: someone who intercepts one handshake could guess it offline; make a strong one with: qtunnel -generate-secret")
	}
	if o.clientMode {
		return runClient(ctx, o, sec, log, getenv)
	}
	return runServer(ctx, o, sec, log, getenv)
}

func runClient(ctx context.Context, o *options, sec secret.Secret, log *slog.Logger, getenv func(string) string) error {
	trust, err := clientTrust(o)
	if err != nil {
		return err
	}
	if err := checkResolvable(o.backend); err != nil {
		return err
	}
	tr := o.transport()
	c, err := tunnel.StartClient(ctx, tunnel.ClientConfig{
		Listen:       o.listen,
		Server:       o.backend,
		Transport:    tr,
		Secret:       sec,
		Trust:        trust,
		Logger:       log,
		DrainTimeout: o.drainTimeout,
		Dialer: transport.DialerConfig{PoolSize: o.poolSize, Congestion: transport.Congestion(o.congestion),
			SessionFile: sessionFile(o, getenv)},
	})
	if err != nil {
		return err
	}
	if host, _, _ := net.SplitHostPort(o.listen); host == "" || host == "0.0.0.0" || host == "::" {
		log.Warn("the client accepts connections from other machines too; anyone who can reach " + c.Addr().String() + " can use the tunnel (use -listen=127.0.0.1:PORT to keep it local)")
	}
	log.Info("client started", "listen", c.Addr().String(), "server", o.backend, "transport", string(tr), "server_verified_by", trust.Describe())
	if err := c.Wait(); err != nil {
		return err
	}
	log.Info("client stopped")
	return nil
}

func runServer(ctx context.Context, o *options, sec secret.Secret, log *slog.Logger, getenv func(string) string) error {
	var (
		crt tls.Certificate
		err error
	)
	if o.certFile != "" {
		crt, err = cert.Load(o.certFile, o.keyFile)
		if err != nil {
			return err
		}
	} else {
		dir := o.stateDir
		if dir == "" {
			dir = defaultStateDir(getenv)
		}
		var created bool
		crt, created, err = cert.LoadOrCreate(dir, nil)
		if err != nil {
			return fmt.Errorf("server certificate: %w", err)
		}
		if created {
			log.Info("generated a self-signed certificate", "dir", dir)
		}
	}
	fp, err := cert.LeafFingerprint(crt)
	if err != nil {
		return err
	}
	tr := o.transport()
	s, err := tunnel.StartServer(ctx, tunnel.ServerConfig{
		Listen:       o.listen,
		Backend:      o.backend,
		Transport:    tr,
		Certificate:  crt,
		Secrets:      []secret.Secret{sec},
		Logger:       log,
		DrainTimeout: o.drainTimeout,
		Peers:        transport.ServerConfig{Congestion: transport.Congestion(o.congestion)},
	})
	if err != nil {
		return err
	}
	network := "tcp"
	if o.useQUIC {
		network = "udp"
	}
	log.Info("server started", "listen", network+"/"+s.Addr().String(), "backend", o.backend, "transport", string(tr))
	log.Info("certificate fingerprint; clients may pin it with -pin", "pin", fp.String())
	if err := s.Wait(); err != nil {
		return err
	}
	log.Info("server stopped")
	return nil
}

func clientTrust(o *options) (transport.Trust, error) {
	t := transport.Trust{ServerName: o.sni}
	if o.pin != "" {
		pin, err := cert.ParsePin(o.pin) // checked in options.check
		if err != nil {
			return t, err
		}
		t.Pin = &pin
	}
	switch o.ca {
	case "":
	case "system":
		t.CA = true
	default:
		pemData, err := os.ReadFile(o.ca)
		if err != nil {
			return t, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return t, fmt.Errorf("CA file %s holds no PEM certificate", o.ca)
		}
		t.CA, t.RootCAs = true, pool
	}
	return t, nil
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
		return fmt.Errorf("-backend=%s: no such host %q", hostport, host)
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
		f.Close()
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

// sessionFile is where a QUIC client keeps its TLS session tickets, so
// that after a restart it resumes with 0-RTT; "" (memory only) in TCP mode.
func sessionFile(o *options, getenv func(string) string) string {
	if o.transport() != tunnel.TransportQUIC {
		return ""
	}
	dir := o.stateDir
	if dir == "" {
		dir = defaultStateDir(getenv)
	}
	return filepath.Join(dir, "client-sessions.json")
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

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("-log-level=%s: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
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
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}
