// Package agent runs the engine from a configuration, for the headless
// binary and the tray app alike. It starts and stops the tunnel on request,
// applies a reloaded configuration (forwards and targets change in place;
// connection settings reconnect), keeps counters over the life of the
// process, and reports status and events: it is the control.Backend that
// the control API serves and the source the metrics endpoint reads.
package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/core/transport"
	"github.com/qtunnel/qtunnel/core/tunnel"
)

// Options configure an Agent. Config is required; the rest have defaults.
type Options struct {
	// Config is the configuration to run, with any command-line overrides
	// applied and StateDir filled in.
	Config *config.Config
	// Load reads the configuration again (the file, then the same
	// overrides) for Reload; nil: reloading is refused.
	Load func() (*config.Config, error)
	// Secrets are used when the configuration names no secret file (they
	// came from the environment or the command line).
	Secrets []secret.Secret
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// LogLevel, if set, follows the configuration's log level on reload.
	LogLevel *slog.LevelVar
	// Version is reported in Status.
	Version string
}

// Agent runs one client or server. Its methods are safe for concurrent use.
type Agent struct {
	opts   Options
	log    *slog.Logger
	meters *tunnel.Meters
	events hub
	rates  rateMeter

	ops sync.Mutex // serialises Start, Stop, Reload and SetSecret

	mu       sync.Mutex
	runCtx   context.Context // set by Run; instances live under it
	cfg      *config.Config
	secrets  []secret.Secret // in use: from files, Options, or SetSecret
	override []secret.Secret // set by SetSecret; wins over files until restart
	inst     *instance
	offSince time.Time
	base     peerTotals // from instances that have stopped
	failed   chan error // an instance that stopped by itself
}

// peerTotals are the transport's counters, summed over instances.
type peerTotals struct {
	connects, migrations, handshakes, authFailures, webVisitors int64
	refusedRate, refusedBlocked, refusedFull                    int64
}

// instance is one running tunnel.Client or tunnel.Server.
type instance struct {
	cancel context.CancelFunc
	client *tunnel.Client
	server *tunnel.Server
	since  time.Time
	done   <-chan struct{}
	// stopping is set when the agent asked it to stop.
	stopping bool
	watched  chan struct{} // closed when its watcher has returned
}

func (i *instance) wait() error {
	if i.client != nil {
		return i.client.Wait()
	}
	return i.server.Wait()
}

func (i *instance) stats() tunnel.Stats {
	if i.client != nil {
		return i.client.Stats()
	}
	return i.server.Stats()
}

// New checks the options and reads the secrets; Run starts the tunnel.
func New(opts Options) (*Agent, error) {
	if opts.Config == nil {
		return nil, errors.New("agent: no configuration")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = "devel"
	}
	a := &Agent{opts: opts, log: opts.Logger, meters: tunnel.NewMeters(), cfg: opts.Config,
		offSince: time.Now(), failed: make(chan error, 1)}
	secrets, err := a.loadSecrets(opts.Config)
	if err != nil {
		return nil, err
	}
	a.secrets = secrets
	return a, nil
}

// Run starts the tunnel and keeps the agent going until ctx is done (then
// it stops the tunnel, draining it) or the tunnel fails by itself.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	a.runCtx = ctx
	a.mu.Unlock()
	if err := a.Start(ctx); err != nil {
		return err
	}
	sampler := make(chan struct{})
	go func() {
		defer close(sampler)
		a.sample(ctx)
	}()
	defer func() { <-sampler }()
	select {
	case <-ctx.Done():
	case err := <-a.failed:
		// The tunnel's context is the run's: one that ended because the
		// run was cancelled (before the agent marked it stopping) is a
		// stop, not a failure.
		if ctx.Err() == nil {
			return err
		}
	}
	a.ops.Lock()
	defer a.ops.Unlock()
	return a.stopLocked()
}

// Start implements control.Backend.
func (a *Agent) Start(context.Context) error {
	a.ops.Lock()
	defer a.ops.Unlock()
	return a.startLocked()
}

// Stop implements control.Backend.
func (a *Agent) Stop(context.Context) error {
	a.ops.Lock()
	defer a.ops.Unlock()
	return a.stopLocked()
}

func (a *Agent) startLocked() error {
	a.mu.Lock()
	if a.inst != nil {
		a.mu.Unlock()
		return nil
	}
	runCtx, cfg := a.runCtx, a.cfg
	secrets := a.secrets
	if a.override != nil {
		secrets = a.override
	}
	a.mu.Unlock()
	if runCtx == nil {
		return errors.New("agent: Start before Run")
	}
	ctx, cancel := context.WithCancel(runCtx)
	inst := &instance{cancel: cancel, since: time.Now(), watched: make(chan struct{})}
	var err error
	if cfg.Mode == config.ModeServer {
		inst.server, err = a.startServer(ctx, cfg, secrets)
		if err == nil {
			inst.done = inst.server.Done()
		}
	} else {
		inst.client, err = a.startClient(ctx, cfg, secrets)
		if err == nil {
			inst.done = inst.client.Done()
		}
	}
	if err != nil {
		cancel()
		return err
	}
	a.mu.Lock()
	a.inst = inst
	a.mu.Unlock()
	go a.watch(inst)
	a.publish(control.EventState, "")
	return nil
}

func (a *Agent) stopLocked() error {
	a.mu.Lock()
	inst := a.inst
	if inst != nil {
		inst.stopping = true
	}
	a.mu.Unlock()
	if inst == nil {
		return nil
	}
	inst.cancel()
	err := inst.wait()
	<-inst.watched
	st := inst.stats()
	a.mu.Lock()
	a.inst = nil
	a.offSince = time.Now()
	if st.Connection != nil {
		a.base.connects += st.Connection.Connects
		a.base.migrations += st.Connection.Migrations
	}
	if st.Peers != nil {
		a.base.handshakes += st.Peers.Handshakes
		a.base.authFailures += st.Peers.AuthFailures
		a.base.webVisitors += st.Peers.WebVisitors
		a.base.refusedRate += st.Peers.RefusedRate
		a.base.refusedBlocked += st.Peers.RefusedBlocked
		a.base.refusedFull += st.Peers.RefusedFull
	}
	a.mu.Unlock()
	a.publish(control.EventState, "")
	return err
}

// watch follows an instance: its state changes become events, and an end
// the agent did not ask for is reported to Run.
func (a *Agent) watch(inst *instance) {
	defer close(inst.watched)
	var changed <-chan struct{}
	last := ""
	for {
		if inst.client != nil {
			changed = inst.client.Changed()
			st := inst.client.Stats().Connection
			now := st.State.String() + "|" + transport.Describe(st.LastError)
			if now != last && last != "" {
				a.publish(control.EventState, "")
				if st.LastError != nil {
					a.publish(control.EventError, transport.Describe(st.LastError))
				}
			}
			last = now
		}
		select {
		case <-changed:
		case <-inst.done:
			a.mu.Lock()
			asked := inst.stopping
			a.mu.Unlock()
			if !asked {
				err := inst.wait()
				if err == nil {
					err = errors.New("the tunnel stopped by itself")
				}
				select {
				case a.failed <- err:
				default:
				}
			}
			return
		}
	}
}

// Reload implements control.Backend.
func (a *Agent) Reload(context.Context) (string, error) {
	if a.opts.Load == nil {
		return "", errors.New("no configuration file to reload (started without -config)")
	}
	a.ops.Lock()
	defer a.ops.Unlock()
	cfg, err := a.opts.Load()
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	old, inst, override := a.cfg, a.inst, a.override
	a.mu.Unlock()
	if cfg.Mode != old.Mode {
		return "", fmt.Errorf("the file now says mode: %s; a running %s cannot change role (restart it)", cfg.Mode, old.Mode)
	}
	secrets, err := a.loadSecrets(cfg)
	if err != nil {
		return "", err
	}
	if a.opts.LogLevel != nil && cfg.LogLevel != "" {
		var l slog.Level
		if l.UnmarshalText([]byte(cfg.LogLevel)) == nil {
			a.opts.LogLevel.Set(l)
		}
	}
	var notes []string
	if cfg.Metrics != old.Metrics || cfg.Control != old.Control || cfg.LogFormat != old.LogFormat {
		notes = append(notes, "metrics, control and log-format settings apply at the next start of the process")
	}
	reconnect := connectionKey(cfg) != connectionKey(old) || (override == nil && !sameSecrets(secrets, a.currentSecrets()))
	a.mu.Lock()
	a.cfg, a.secrets = cfg, secrets
	a.mu.Unlock()
	var msg string
	switch {
	case inst == nil:
		msg = "configuration read; it applies when the tunnel is started"
	case reconnect:
		if err := a.stopLocked(); err != nil {
			a.log.Warn("stopping for reload", "err", err)
		}
		if err := a.startLocked(); err != nil {
			return "", fmt.Errorf("connection settings changed, and the tunnel could not start again: %w", err)
		}
		msg = "connection settings changed: reconnected"
	case inst.client != nil:
		fws := forwardsOf(cfg)
		added, removed, err := inst.client.SetForwards(fws)
		msg = describeChange("forward", added, removed)
		if err != nil {
			a.publish(control.EventReload, msg+"; "+err.Error())
			return "", fmt.Errorf("%s; but: %w", msg, err)
		}
	default:
		before, _ := inst.server.Targets()
		if err := inst.server.SetTargets(targetsOf(cfg), cfg.DefaultTarget); err != nil {
			return "", err
		}
		msg = describeTargets(before, targetsOf(cfg))
	}
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	a.log.Info("configuration reloaded", "file", cfg.File, "result", msg)
	a.publish(control.EventReload, msg)
	return msg, nil
}

// Migrate implements control.Backend.
func (a *Agent) Migrate(ctx context.Context) (string, error) {
	a.mu.Lock()
	inst := a.inst
	a.mu.Unlock()
	switch {
	case inst == nil:
		return "", errors.New("the tunnel is off")
	case inst.client == nil:
		return "", errors.New("a server does not move; its clients do")
	}
	m, err := inst.client.Migrate(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("moved from %s to %s in %s", m.From, m.To, m.Took.Round(time.Millisecond)), nil
}

// SetSecret implements control.Backend: the secret lives in memory only.
func (a *Agent) SetSecret(_ context.Context, b []byte) error {
	s, err := secret.New(b)
	if err != nil {
		return err
	}
	a.ops.Lock()
	defer a.ops.Unlock()
	a.mu.Lock()
	a.override = []secret.Secret{s}
	running := a.inst != nil
	a.mu.Unlock()
	if secret.Weak(s) {
		a.log.Warn("the new secret is weak; make a strong one with: qtunnel -generate-secret")
	}
	if !running {
		return nil
	}
	if err := a.stopLocked(); err != nil {
		a.log.Warn("stopping to change the secret", "err", err)
	}
	a.log.Info("secret replaced; reconnecting")
	return a.startLocked()
}

func (a *Agent) currentSecrets() []secret.Secret {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.secrets
}

// loadSecrets reads the configuration's secret files, or falls back to
// the secrets given in Options.
func (a *Agent) loadSecrets(cfg *config.Config) ([]secret.Secret, error) {
	if len(cfg.SecretFiles) == 0 {
		if len(a.opts.Secrets) == 0 {
			return nil, secret.ErrNoSecret
		}
		return a.opts.Secrets, nil
	}
	out := make([]secret.Secret, 0, len(cfg.SecretFiles))
	for _, f := range cfg.SecretFiles {
		s, err := secret.FromFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func sameSecrets(a, b []secret.Secret) bool {
	return slices.EqualFunc(a, b, func(x, y secret.Secret) bool { return bytes.Equal(x.Bytes(), y.Bytes()) })
}

// connectionKey is everything in a configuration whose change needs a new
// connection; forwards, targets and process-level settings are left out,
// and so are the secret files: the secrets themselves are compared (a
// -secret-file flag is read at the start into the secrets, and by a
// reload into the files).
func connectionKey(c *config.Config) string {
	k := *c
	k.Forwards, k.Targets, k.DefaultTarget, k.SecretFiles = nil, nil, "", nil
	k.Metrics, k.Control, k.LogLevel, k.LogFormat, k.File = "", "", "", "", ""
	b, _ := json.Marshal(k)
	return string(b)
}

func describeChange(what string, added, removed []string) string {
	var parts []string
	if len(added) > 0 {
		parts = append(parts, fmt.Sprintf("%s added: %s", what, strings.Join(added, ", ")))
	}
	if len(removed) > 0 {
		parts = append(parts, fmt.Sprintf("%s removed: %s", what, strings.Join(removed, ", ")))
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, "; ")
}

func describeTargets(before, after []tunnel.Target) string {
	var added, removed []string
	for _, t := range after {
		if !slices.Contains(before, t) {
			added = append(added, t.Name)
		}
	}
	for _, t := range before {
		if !slices.Contains(after, t) {
			removed = append(removed, t.Name)
		}
	}
	return describeChange("target", added, removed)
}

func forwardsOf(cfg *config.Config) []tunnel.Forward {
	out := make([]tunnel.Forward, len(cfg.Forwards))
	for i, f := range cfg.Forwards {
		out[i] = tunnel.Forward{Name: f.Name, Listen: f.Listen, Target: f.Target}
	}
	return out
}

// serversOf lists a client's servers, each with the file's trust and its
// own pin or server name if it has one; nil for a file with one server.
func serversOf(cfg *config.Config, trust transport.Trust) ([]tunnel.Endpoint, error) {
	var out []tunnel.Endpoint
	for _, e := range cfg.Servers {
		ep := tunnel.Endpoint{Address: e.Address}
		if e.Pin != "" || e.SNI != "" {
			own := trust
			if e.Pin != "" {
				pin, err := cert.ParsePin(e.Pin)
				if err != nil {
					return nil, fmt.Errorf("server %s: pin: %w", e.Address, err)
				}
				own.Pin = &pin
			}
			if e.SNI != "" {
				own.ServerName = e.SNI
			}
			ep.Trust = &own
		}
		out = append(out, ep)
	}
	return out, nil
}

func targetsOf(cfg *config.Config) []tunnel.Target {
	out := make([]tunnel.Target, len(cfg.Targets))
	for i, t := range cfg.Targets {
		out[i] = tunnel.Target{Name: t.Name, Address: t.Address}
	}
	return out
}

func (a *Agent) startClient(ctx context.Context, cfg *config.Config, secrets []secret.Secret) (*tunnel.Client, error) {
	trust, err := clientTrust(cfg.Trust)
	if err != nil {
		return nil, err
	}
	tr := tunnel.Transport(cfg.Transport)
	if tr == "" {
		tr = tunnel.TransportTCP // the documented default, named in the logs
	}
	dc := transport.DialerConfig{PoolSize: cfg.Pool, Congestion: transport.Congestion(cfg.Congestion)}
	if tr == tunnel.TransportQUIC && cfg.StateDir != "" {
		dc.SessionFile = filepath.Join(cfg.StateDir, "client-sessions.json")
	}
	servers, err := serversOf(cfg, trust)
	if err != nil {
		return nil, err
	}
	c, err := tunnel.StartClient(ctx, tunnel.ClientConfig{
		Forwards:      forwardsOf(cfg),
		Server:        cfg.Server,
		Servers:       servers,
		FailoverAfter: cfg.FailoverAfter,
		Transport:     tr,
		Secret:        secrets[0],
		Trust:         trust,
		Logger:        a.log,
		DrainTimeout:  cfg.DrainTimeout,
		Dialer:        dc,
		Meters:        a.meters,
	})
	if err != nil {
		return nil, err
	}
	for _, f := range c.Stats().Forwards {
		a.log.Info("forward", "name", f.Name, "listen", f.Addr.String(), "target", targetWords(f.Target))
		if host := hostOf(f.Addr.String()); host == "0.0.0.0" || host == "::" {
			a.log.Warn("forward " + f.Name + " accepts connections from other machines too; anyone who can reach " + f.Addr.String() + " can use the tunnel (listen on 127.0.0.1 to keep it local)")
		}
	}
	serverWords := cfg.Server
	if len(servers) > 1 {
		serverWords = ""
		for i, e := range servers {
			if i > 0 {
				serverWords += ","
			}
			serverWords += e.Address
		}
	}
	a.log.Info("client started", "server", serverWords, "transport", string(tr), "server_verified_by", trust.Describe())
	return c, nil
}

func targetWords(t string) string {
	if t == "" {
		return "(the server's default)"
	}
	return t
}

func hostOf(addr string) string {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return addr
	}
	return strings.Trim(addr[:i], "[]")
}

func (a *Agent) startServer(ctx context.Context, cfg *config.Config, secrets []secret.Secret) (*tunnel.Server, error) {
	crt, err := loadCertificate(cfg, a.log)
	if err != nil {
		return nil, err
	}
	fp, err := cert.LeafFingerprint(crt)
	if err != nil {
		return nil, err
	}
	tr := tunnel.Transport(cfg.Transport)
	if tr == "" {
		tr = tunnel.TransportTCP // the documented default, named in the logs
	}
	s, err := tunnel.StartServer(ctx, tunnel.ServerConfig{
		Listen:        cfg.Listen,
		Targets:       targetsOf(cfg),
		DefaultTarget: cfg.DefaultTarget,
		Transport:     tr,
		Certificate:   crt,
		Secrets:       secrets,
		Logger:        a.log,
		DrainTimeout:  cfg.DrainTimeout,
		Meters:        a.meters,
		Masquerade:    cfg.Masquerade,
		MaxRelays:     cfg.Limits.MaxRelays,
		Peers: transport.ServerConfig{
			Congestion:  transport.Congestion(cfg.Congestion),
			MaxPeers:    cfg.Limits.MaxClients,
			MaxPending:  cfg.Limits.MaxPending,
			MaxStreams:  cfg.Limits.MaxStreams,
			AuthTimeout: cfg.Limits.HandshakeTimeout,
			IdleTimeout: cfg.Limits.IdleTimeout,
			Sources: transport.SourceLimits{
				HandshakesPerSecond: float64(cfg.Limits.HandshakesPerSecond),
				FreeFailures:        cfg.Limits.WrongSecrets,
				BlockMax:            cfg.Limits.BlockMax,
			},
		},
	})
	if err != nil {
		return nil, err
	}
	network := "tcp"
	if tr == tunnel.TransportQUIC {
		network = "udp"
	}
	targets, def := s.Targets()
	for _, t := range targets {
		a.log.Info("target", "name", t.Name, "address", t.Address, "default", t.Name == def)
	}
	a.log.Info("server started", "listen", network+"/"+s.Addr().String(), "transport", string(tr))
	a.log.Info("certificate fingerprint; clients may pin it with -pin", "pin", fp.String())
	if cfg.File != "" {
		a.log.Info("to give a user a link and QR code to import: qtunnel share -config=" + cfg.File + " -address=PUBLIC-HOST:PORT")
	}
	return s, nil
}

func loadCertificate(cfg *config.Config, log *slog.Logger) (tls.Certificate, error) {
	if cfg.CertFile != "" {
		return cert.Load(cfg.CertFile, cfg.KeyFile)
	}
	crt, created, err := cert.LoadOrCreate(cfg.StateDir, nil)
	if err != nil {
		return crt, fmt.Errorf("server certificate: %w", err)
	}
	if created {
		log.Info("generated a self-signed certificate", "dir", cfg.StateDir)
	}
	return crt, nil
}

// clientTrust turns the configuration's trust settings into a Trust.
func clientTrust(t config.Trust) (transport.Trust, error) {
	out := transport.Trust{ServerName: t.SNI}
	if t.Pin != "" {
		pin, err := cert.ParsePin(t.Pin)
		if err != nil {
			return out, fmt.Errorf("pin: %w", err)
		}
		out.Pin = &pin
	}
	switch t.CA {
	case "":
	case "system":
		out.CA = true
	default:
		pemData, err := os.ReadFile(t.CA)
		if err != nil {
			return out, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return out, fmt.Errorf("CA file %s holds no PEM certificate", t.CA)
		}
		out.CA, out.RootCAs = true, pool
	}
	return out, nil
}
