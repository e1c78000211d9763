package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/core/transport"
	"github.com/qtunnel/qtunnel/core/tunnel"
)

// options are the command line, parsed but not yet checked against each other.
type options struct {
	listen, backend     string
	clientMode, useQUIC bool

	secret, secretFile string
	generateSecret     bool

	generateCert                 bool
	certFile, keyFile, certHosts string

	pin, ca, sni string
	stateDir     string

	logLevel, logFormat string
	drainTimeout        time.Duration
	poolSize            int
	pprof               string
	congestion          string
	version             bool

	configFile, checkConfig string
	control, metrics        string
	masquerade              string

	// -install-service and friends (service.go); serviceArgs is the
	// service's command line, made by run from the parsed flags.
	installService, uninstallService bool
	serviceName, serviceAction       string
	serviceArgs                      []string
}

const usageHead = `qtunnel carries TCP connections through an encrypted tunnel, over QUIC or
over TLS 1.3 on TCP, authenticated both ways with a shared secret.

Usage:
  qtunnel -listen=ADDR -backend=ADDR [-quic=true] [options]                 server
  qtunnel -listen=ADDR -backend=SERVER -clientmode=true [-quic=true] [options] client
  qtunnel -config=FILE [options]              client or server from a YAML file (flags override it)
  qtunnel -check-config=FILE                  check a configuration file and exit
  qtunnel status [-json] | up | down | reload  talk to the running client (-server: the server)
  qtunnel share -config=FILE -address=HOST:PORT  print a link and QR code for a client to import
  qtunnel import LINK [-config=FILE]          write a client configuration from a link
  qtunnel -generate-secret [-secret-file=PATH]
  qtunnel -generate-cert [-cert-file=server.crt -key-file=server.key]
  qtunnel -install-service -config=FILE | FLAGS   install a system service running the rest (root)
  qtunnel -uninstall-service | -service=start|stop|restart|status   [-service-name=NAME]

Examples:
  # on the server: accept QUIC on UDP 443, forward to an internal web server
  qtunnel -generate-secret -secret-file=/etc/qtunnel/secret
  qtunnel -listen=:443 -backend=internal-server:80 -secret-file=/etc/qtunnel/secret -quic=true

  # on the client: local port 8080 reaches internal-server:80 through the tunnel
  qtunnel -listen=127.0.0.1:8080 -backend=server.example:443 -clientmode=true \
          -secret-file=$HOME/.config/qtunnel/secret -quic=true -pin=sha256:<printed by the server>

  # the design document's form (the secret on the command line shows in ps; a warning says so)
  qtunnel -listen=:8080 -backend=server:80 -secret=mysecret

  # several forwards over one connection, from a file (see docs/configuration.md)
  qtunnel -config=$HOME/.config/qtunnel/client.yaml
  qtunnel status
  kill -HUP $(pidof qtunnel)     # or: qtunnel reload   (re-reads the file)

The secret comes from exactly one of -secret-file, the QTUNNEL_SECRET environment
variable, or -secret. Without -pin or -ca the client trusts the server because it
proves the secret inside the TLS session; a pin or CA verification adds a check on
its certificate.

Options:
`

func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("qtunnel", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.listen, "listen", "", "`address` to accept on: the tunnel port (server) or the local TCP port (client), e.g. :443, 127.0.0.1:8080, [::1]:8080")
	fs.StringVar(&o.backend, "backend", "", "`address` to forward to: the backend (server) or the QTunnel server (client), host:port; a client may list several, comma-separated, to use the nearest and fail over between")
	fs.BoolVar(&o.clientMode, "clientmode", false, "run as the client (default: server)")
	fs.BoolVar(&o.useQUIC, "quic", false, "carry streams over QUIC (UDP) instead of TLS over TCP; both ends must agree")
	fs.StringVar(&o.secret, "secret", "", "the shared `secret` (visible to other users in ps: prefer -secret-file or QTUNNEL_SECRET)")
	fs.StringVar(&o.secretFile, "secret-file", "", "read the shared secret from `file` (mode 0600); with -generate-secret, write it there")
	fs.BoolVar(&o.generateSecret, "generate-secret", false, "print (or write to -secret-file) a new random 256-bit secret and exit")
	fs.BoolVar(&o.generateCert, "generate-cert", false, "write a new ECDSA P-256 self-signed certificate and key to -cert-file and -key-file, and exit")
	fs.StringVar(&o.certFile, "cert-file", "", "server certificate `file` (PEM); default: one generated once and kept in -state-dir")
	fs.StringVar(&o.keyFile, "key-file", "", "server private key `file` (PEM)")
	fs.StringVar(&o.certHosts, "cert-hosts", "", "with -generate-cert: comma-separated host `names` and IPs to put in the certificate")
	fs.StringVar(&o.pin, "pin", "", "client: accept only the server certificate with this fingerprint, `sha256:HEX` (the server prints it)")
	fs.StringVar(&o.ca, "ca", "", "client: verify the server certificate against `system` roots or a PEM file of CAs")
	fs.StringVar(&o.sni, "sni", "", "client: server `name` to send and, with -ca, to verify (default: the host of -backend)")
	fs.StringVar(&o.stateDir, "state-dir", "", "`directory` for state kept across restarts: the server's generated certificate, the QUIC client's TLS session tickets for 0-RTT (default: $STATE_DIRECTORY, /var/lib/qtunnel as root, else ~/.local/state/qtunnel)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug (a line per tunneled connection), info, warn, error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format`: text or json")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, let open connections finish for this `long`")
	fs.IntVar(&o.poolSize, "pool", 4, "client, TCP mode: `number` of connections kept ready")
	fs.StringVar(&o.congestion, "congestion", "bbr", "congestion control for what this side sends: `bbr` (keeps long, lossy links full; in TCP mode the kernel's BBR where it has it) or reno (quic-go's NewReno; in TCP mode the kernel's default)")
	fs.StringVar(&o.pprof, "pprof", "", "serve Go's profiler (net/http/pprof) on this loopback `address`, for diagnosing performance")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.configFile, "config", "", "read the configuration from this YAML `file`; flags given as well override it")
	fs.StringVar(&o.checkConfig, "check-config", "", "check the configuration `file`, print what it sets up or every error with its line, and exit")
	fs.StringVar(&o.control, "control", "", "control socket `path` for qtunnel status/up/down/reload (default: a per-user path; off: none)")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at http://`address`/metrics, e.g. 127.0.0.1:9100")
	fs.BoolVar(&o.installService, "install-service", false, "install a system service (systemd, System V init or launchd; root) that runs qtunnel with the other flags given, paths made absolute; never with -secret: the secret comes from -secret-file or the configuration's secret-file")
	fs.BoolVar(&o.uninstallService, "uninstall-service", false, "stop and remove the system service -install-service installed")
	fs.StringVar(&o.serviceName, "service-name", "qtunnel", "the system service's `name`, with -install-service, -uninstall-service and -service")
	fs.StringVar(&o.serviceAction, "service", "", "`action` on the system service -install-service installed: start, stop, restart or status")
	fs.StringVar(&o.masquerade, "masquerade", "", "server: the web `site` shown to peers without the secret: default (a built-in page), off, an https:// site to proxy, or a directory of files")
	return fs
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usageHead)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprint(w, "\n"+subcommandUsage)
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// check validates the options against each other.
func (o *options) check() error {
	if done, err := o.checkServiceFlags(); done || err != nil {
		return err
	}
	if o.generateSecret || o.generateCert || o.version || o.checkConfig != "" {
		return nil
	}
	if o.configFile == "" {
		if err := o.checkRole(); err != nil {
			return err
		}
	}
	if err := o.checkCommon(); err != nil {
		return err
	}
	if err := o.checkText(); err != nil {
		return err
	}
	if o.configFile != "" {
		// The file supplies what the flags leave out; checkMerged looks
		// at the result.
		return nil
	}
	if o.listen == "" {
		return usagef("-listen is required (for example -listen=:443)")
	}
	if o.backend == "" {
		if o.clientMode {
			return usagef("-backend is required: the QTunnel server's host:port")
		}
		return usagef("-backend is required: the host:port to forward to")
	}
	return nil
}

// checkText refuses, in the flags that name files, sites and sockets,
// what a configuration file refuses too: control characters and bytes
// that are not UTF-8 (a path with a line break is a mistake or a trick).
func (o *options) checkText() error {
	for _, f := range []struct{ name, value string }{
		{"-secret-file", o.secretFile}, {"-cert-file", o.certFile}, {"-key-file", o.keyFile}, {"-ca", o.ca},
		{"-state-dir", o.stateDir}, {"-config", o.configFile}, {"-control", o.control}, {"-masquerade", o.masquerade},
		{"-sni", o.sni}, {"-pin", o.pin},
	} {
		if !utf8.ValidString(f.value) || strings.ContainsFunc(f.value, unicode.IsControl) {
			return usagef("%s=%q: control characters and invalid UTF-8 are not allowed", f.name, f.value)
		}
	}
	if strings.ContainsAny(o.sni, " /") {
		return usagef("-sni=%q: want a server name such as vps.example.com", o.sni)
	}
	return nil
}

// checkBackend checks -backend: one address, or for a client several,
// comma-separated, to fail over between.
func (o *options) checkBackend() error {
	addrs := strings.Split(o.backend, ",")
	if len(addrs) > 1 && !o.clientMode {
		return usagef("-backend=%q: a server forwards to one backend (several targets go in a -config file)", o.backend)
	}
	if len(addrs) > config.MaxServers {
		return usagef("-backend: %d servers; at most %d are allowed", len(addrs), config.MaxServers)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if err := checkAddr("-backend", a, false); err != nil {
			return err
		}
		if seen[a] {
			return usagef("-backend: %s is listed twice", a)
		}
		seen[a] = true
	}
	return nil
}

// checkRole refuses flags of the other role (with -config, the file says
// which role; flags of the other one are then ignored).
func (o *options) checkRole() error {
	if o.clientMode {
		if o.certFile != "" {
			return usagef("-cert-file and -key-file are for the server; the client checks the server with -pin or -ca")
		}
		return nil
	}
	for _, f := range []struct{ name, value string }{{"-pin", o.pin}, {"-ca", o.ca}, {"-sni", o.sni}} {
		if f.value != "" {
			return usagef("%s is for the client (-clientmode=true)", f.name)
		}
	}
	return nil
}

// checkCommon checks the flags that mean the same with or without -config.
func (o *options) checkCommon() error {
	if (o.certFile == "") != (o.keyFile == "") {
		return usagef("-cert-file and -key-file go together")
	}
	if o.listen != "" {
		if err := checkAddr("-listen", o.listen, true); err != nil {
			return err
		}
	}
	if o.backend != "" {
		if err := o.checkBackend(); err != nil {
			return err
		}
	}
	if o.metrics != "" {
		if err := checkAddr("-metrics", o.metrics, true); err != nil {
			return err
		}
	}
	if o.pin != "" {
		if _, err := cert.ParsePin(o.pin); err != nil {
			return usageError{"-pin: " + err.Error()}
		}
	}
	switch o.logFormat {
	case "text", "json":
	default:
		return usagef("-log-format=%s: want text or json", o.logFormat)
	}
	if _, err := parseLevel(o.logLevel); err != nil {
		return err
	}
	if o.poolSize < 1 || o.poolSize > 256 {
		return usagef("-pool=%d: want 1 to 256", o.poolSize)
	}
	if _, err := transport.ParseCongestion(o.congestion); err != nil {
		return usageError{"-congestion: " + err.Error()}
	}
	if o.pprof != "" {
		host, _, err := net.SplitHostPort(o.pprof)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return usagef("-pprof=%s: want a loopback address such as 127.0.0.1:6060 (the profiler must not be public)", o.pprof)
		}
	}
	if o.drainTimeout < 0 {
		return usagef("-drain-timeout must not be negative")
	}
	return nil
}

// checkAddr checks host:port syntax; the host may be empty only where we listen.
func checkAddr(flagName, addr string, listening bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return usagef("%s=%s: %s (want host:port, [IPv6]:port, or :port)", flagName, addr, ae.Err)
		}
		return usagef("%s=%s: want host:port", flagName, addr)
	}
	if host == "" && !listening {
		return usagef("%s=%s: a host is needed", flagName, addr)
	}
	// What the configuration file's parser refuses, refused here too.
	if strings.ContainsAny(host, " /\\") || !utf8.ValidString(host) || strings.ContainsFunc(host, unicode.IsControl) {
		return usagef("%s=%s: %q is not a host name or IP address", flagName, addr, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || strings.TrimLeft(port, "0123456789") != "" || n < 0 || n > 65535 || (n == 0 && !listening) {
		return usagef("%s=%s: port %q must be a number from 1 to 65535", flagName, addr, port)
	}
	return nil
}

// transport is the tunnel transport the -quic flag selects.
func (o *options) transport() tunnel.Transport {
	if o.useQUIC {
		return tunnel.TransportQUIC
	}
	return tunnel.TransportTCP
}
