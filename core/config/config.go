// Package config reads and checks QTunnel's YAML configuration file, for
// either role, into plain structs. It is a pure parser: it opens no sockets
// and reads no secrets, so that binaries, the GUI and the share-link
// importer can all use it.
//
// A file is a flat YAML mapping with kebab-case keys; mode (client or
// server) says which other keys belong. Errors are meant for the person
// who wrote the file: each names the file, the line, the field and what is
// expected, unknown keys get a "did you mean" suggestion, and every error
// in a file is reported at once, sorted by line.
//
// Zero values in Config mean defaults, documented on each field; the
// packages that use the values (tunnel, transport) fill them in, so a
// default lives in one place.
//
// Hostile files are bounded: at most MaxFileSize bytes, MaxForwards
// forwards and MaxTargets targets, and no YAML anchors or aliases (which
// would let a small file expand into a huge one).
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Limits on what a file may hold, so that a hostile or mistaken file costs
// little to reject.
const (
	MaxFileSize = 1 << 20 // bytes
	MaxForwards = 256
	MaxTargets  = 1024
	MaxServers  = 16
)

// maxErrors bounds how many errors one file reports: past this many, the
// rest are noise (often one mistake repeated) and cost memory.
const maxErrors = 50

// Mode is the role a file configures.
type Mode string

// The two roles.
const (
	ModeClient Mode = "client"
	ModeServer Mode = "server"
)

// Config is one configuration file. Fields for the other role are zero.
// Paths are absolute: a leading "~/" is expanded to the user's home and a
// relative path is taken from the directory of the file.
type Config struct {
	// Mode is the role; always set in a parsed Config.
	Mode Mode
	// Transport is "quic" or "tcp"; "" means tcp.
	Transport string
	// StateDir keeps generated files (the server's certificate, session
	// tickets); "" means the program's default location.
	StateDir string
	// Control is the control socket's path; "" means none or the
	// program's default.
	Control string
	// Metrics is the host:port of the Prometheus endpoint; "" means none.
	Metrics string
	// DrainTimeout bounds how long streams go on after a shutdown starts;
	// 0 means the default (10 s).
	DrainTimeout time.Duration
	// Congestion is "bbr" or "reno"; "" means bbr.
	Congestion string
	// LogLevel is "debug", "info", "warn" or "error"; "" means info.
	LogLevel string
	// LogFormat is "text" or "json"; "" means text.
	LogFormat string
	// SecretFiles are files holding the shared secret. A client has at
	// most one; a server may list several during a rotation (any of them
	// is accepted). Empty means the secret comes from elsewhere (the
	// environment, a flag, the keyring).
	SecretFiles []string

	// Server (client) is the server's host:port; with servers, the first
	// of them.
	Server string
	// Servers (client) are several servers that serve the same targets
	// with the same secret, when the file lists them (servers:); the
	// client uses the best healthy one and fails over between them.
	// Empty for a file with one server.
	Servers []ServerEntry
	// FailoverAfter (client, with servers) is how long the server in use
	// may stay silent before new connections go to another; 0 means the
	// default (1 s).
	FailoverAfter time.Duration
	// Trust (client) says how the server's certificate is checked.
	Trust Trust
	// Pool (client, TCP transport) is how many connections are kept
	// ready; 0 means the default (4).
	Pool int
	// Forwards (client) are the local listeners, at least one, in file
	// order.
	Forwards []Forward

	// Listen (server) is the address to listen on (":443").
	Listen string
	// CertFile and KeyFile (server) are the TLS certificate and key, both
	// or neither; "" means a certificate generated and kept in StateDir.
	CertFile, KeyFile string
	// Targets (server) are the backends clients may ask for, in file
	// order. The file's "backend: ADDR" appears here as a target named
	// "default" (with DefaultTarget "default").
	Targets []Target
	// DefaultTarget (server) is the name of the target a client that names
	// none gets ("default" for a file's backend); "" means such a client
	// is refused.
	DefaultTarget string
	// Limits (server) bound what clients may use.
	Limits Limits
	// Masquerade (server) is the web site shown to peers without the
	// secret: "" (the built-in page), "off", an https:// site to proxy, or
	// a directory of static files (see package masquerade).
	Masquerade string

	// File is the path the configuration was read from, as given.
	File string
}

// Trust is how a client checks the server's certificate. All empty means
// the certificate is not checked and the server is authenticated by its
// proof of the shared secret alone.
type Trust struct {
	// Pin is the SHA-256 of the server's certificate, in the canonical
	// form "sha256:" and 64 lower-case hex digits.
	Pin string
	// CA is "system" (the system's roots) or the path of a PEM file of
	// CA certificates.
	CA string
	// SNI is the server name to send and verify; "" means the host of
	// Config.Server.
	SNI string
}

// ServerEntry is one of a client's servers.
type ServerEntry struct {
	// Address is the server's host:port.
	Address string
	// Pin and SNI, if set, replace Trust's for this server (servers that
	// each made their own certificate have a pin each).
	Pin, SNI string
}

// Forward is one local listener of a client.
type Forward struct {
	// Name identifies the forward in logs and the GUI; unique in a file.
	// Always set in a parsed Config: the file's name, else Target, else
	// "default".
	Name string
	// Listen is the local host:port; the host may be empty (all
	// interfaces) and the port 0 (any free port).
	Listen string
	// Target is the server's name for the backend; "" means the server's
	// default target.
	Target string
}

// Target is a backend a server lets clients reach.
type Target struct {
	Name    string // what a client asks for
	Address string // host:port the server connects to
}

// Limits bound what a server's clients may use. Zero means the default.
type Limits struct {
	// MaxClients bounds concurrent connections (QUIC connections, or TCP
	// connections); default 1024 for QUIC, 8192 for TCP.
	MaxClients int
	// HandshakeTimeout bounds a client's TLS handshake and proof of the
	// secret; default 10 s.
	HandshakeTimeout time.Duration
	// IdleTimeout (TCP transport) closes an authenticated connection on
	// which no stream starts; default 5 min.
	IdleTimeout time.Duration
	// MaxPending bounds connections not authenticated (handshakes, web
	// visitors); default max-clients/4.
	MaxPending int
	// MaxStreams (QUIC) bounds one client's open streams; default 1024.
	MaxStreams int
	// MaxRelays bounds the streams relayed at once across all clients;
	// default 4096.
	MaxRelays int
	// HandshakesPerSecond is the rate of new connections one source
	// address may open (bursts of three times as many); default 20.
	HandshakesPerSecond int
	// WrongSecrets is how many wrong secrets one source may send before it
	// is blocked, for 1 s doubling up to BlockMax; default 5.
	WrongSecrets int
	// BlockMax is the longest a source is blocked; default 5 min.
	BlockMax time.Duration
	// MemoryMiB is a soft limit on the server's memory (Go's GOMEMLIMIT),
	// in MiB; 0 means none.
	MemoryMiB int
}

// Error is one problem in a configuration file.
type Error struct {
	File  string // the file's name, as given to Parse ("config" if none)
	Line  int    // 1-based; 0 when the problem is the whole file
	Field string // path of the field, such as "forwards[0].listen" (0-based); "" for none
	Msg   string // what is wrong and what is expected
	Err   error  // the underlying cause, if any
}

// Error formats e as "FILE:LINE: FIELD: MSG", leaving out the parts that
// are not set.
func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errors returns the *Error values in an error returned by Parse or Load
// (nil if there are none, as for a file that cannot be read).
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *Error:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// Load reads the file at path and parses it (see Parse).
func Load(path string) (*Config, error) {
	f, err := os.Open(path) // #nosec G304 -- the configuration file the operator named
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	// Read one byte past the limit so that Parse can report the size.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and checks data, the contents of file. file names the
// source in errors, and its directory (made absolute against the working
// directory) is the base of relative paths. The error, if any, joins
// (errors.Join) one *Error per problem, sorted by line; see Errors.
func Parse(file string, data []byte) (*Config, error) {
	p := newParser(file)
	c := p.parse(data)
	if err := p.result(); err != nil {
		return nil, err
	}
	return c, nil
}

// joinErrors joins list into one error that Errors takes apart again.
func joinErrors(list []*Error) error {
	errs := make([]error, len(list))
	for i, e := range list {
		errs[i] = e
	}
	return errors.Join(errs...)
}
