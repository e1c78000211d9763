package appmodel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/core/sharelink"
)

// Secrets keeps the shared secret (the OS keyring, see package
// secretstore).
type Secrets interface {
	// Put stores the secret; a non-empty warning says it went somewhere
	// weaker than the keyring (a 0600 file) and why.
	Put(secret []byte) (warning string, err error)
	// Has reports whether a secret is stored.
	Has() bool
}

// Service is the background service that runs the engine (package
// bgservice); nil where there is none.
type Service interface {
	Installed() bool
	// Install installs and starts it; Remove stops and uninstalls it.
	Install(ctx context.Context) error
	Remove(ctx context.Context) error
}

// Engine runs the engine inside the app when no service does: it serves
// the same control socket, so the model talks to it the same way.
type Engine interface {
	// Start runs the engine until ctx is done, in the background.
	Start(ctx context.Context) error
	Running() bool
}

// Autostart starts the app at login.
type Autostart interface {
	Enabled() bool
	Set(on bool) error
}

// Options configure a Model.
type Options struct {
	// ConfigPath is the client configuration the app edits and the
	// engine reads (YAML, see core/config); it never holds the secret.
	ConfigPath string
	// Control talks to the engine's control socket.
	Control   *control.Client
	Secrets   Secrets
	Service   Service // nil: none on this system
	Engine    Engine  // nil: the app cannot run the engine itself
	Autostart Autostart
	LogPath   string
	Version   string
	// Retry is the pause before following the engine's events again
	// after it went away. Default 1 s.
	Retry time.Duration
}

// Model implements Controller.
type Model struct {
	opts Options

	mu     sync.Mutex
	view   View
	subs   map[int]func(View)
	nextID int
	status *control.Status // last status from the engine, nil if none
	reach  string          // why the engine cannot be reached, "" if it can
	life   context.Context // Run's context: an engine started in the app lives as long
}

// New returns a model; Run follows the engine.
func New(opts Options) *Model {
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	m := &Model{opts: opts, subs: make(map[int]func(View))}
	m.view = m.render()
	return m
}

var _ Controller = (*Model)(nil)

// Run follows the engine's event stream until ctx is done, keeping the
// view current, and waits and tries again whenever the engine goes away.
func (m *Model) Run(ctx context.Context) {
	m.mu.Lock()
	m.life = ctx
	m.mu.Unlock()
	for ctx.Err() == nil {
		err := m.opts.Control.Events(ctx, func(ev control.Event) {
			if ev.Status != nil {
				st := *ev.Status
				m.update(&st, "")
			}
		})
		if ctx.Err() != nil {
			return
		}
		m.update(nil, reachWords(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.opts.Retry):
		}
	}
}

// Refresh asks the engine for its status once (the event stream does this
// continuously; Refresh is for a view before Run has started).
func (m *Model) Refresh(ctx context.Context) {
	st, err := m.opts.Control.Status(ctx)
	if err != nil {
		m.update(nil, reachWords(err))
		return
	}
	m.update(&st, "")
}

func reachWords(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, control.ErrNotRunning):
		return "not running"
	case errors.Is(err, control.ErrForbidden):
		return "the running engine belongs to another user"
	}
	return err.Error()
}

func (m *Model) update(st *control.Status, reach string) {
	m.mu.Lock()
	m.status, m.reach = st, reach
	v := m.render()
	m.view = v
	subs := make([]func(View), 0, len(m.subs))
	for _, fn := range m.subs {
		subs = append(subs, fn)
	}
	m.mu.Unlock()
	for _, fn := range subs {
		fn(v)
	}
}

// render makes the view from what is known; m.mu is held or m is new.
func (m *Model) render() View {
	v := View{Updated: time.Now(), InProcess: m.opts.Engine != nil && m.opts.Engine.Running()}
	if m.opts.Service != nil {
		v.ServiceInstalled = m.opts.Service.Installed()
	}
	if m.opts.Autostart != nil {
		v.StartAtLogin = m.opts.Autostart.Enabled()
	}
	st := m.status
	if st == nil {
		v.State = StateOff
		v.StatusLine = "Disconnected"
		if m.reach != "" && m.reach != "not running" {
			v.State, v.Error = StateError, "cannot reach the tunnel engine: "+m.reach
		}
		v.Details = m.details(nil, v)
		return v
	}
	switch st.State {
	case control.StateConnected:
		v.State = StateOn
		v.StatusLine = fmt.Sprintf("%s · %.0f ms · ↑ %s/s ↓ %s/s", st.Server, st.RTTMillis, rate(st.RateUp), rate(st.RateDown))
	case control.StateConnecting:
		v.State = StateConnecting
		v.StatusLine = "Connecting to " + st.Server + "…"
	case control.StateError:
		v.State = StateError
		v.StatusLine = "Cannot connect to " + st.Server
	default:
		v.State = StateOff
		v.StatusLine = "Disconnected"
	}
	if st.State != control.StateOff && st.LastError != "" && st.State != control.StateConnected {
		v.Error = st.LastError
	}
	for _, f := range st.Forwards {
		if f.LastError != "" && v.Error == "" && st.State == control.StateConnected {
			v.Error = "forward " + f.Name + ": " + f.LastError
		}
	}
	v.Details = m.details(st, v)
	return v
}

// details is the text behind "copy details": enough for a bug report,
// nothing secret.
func (m *Model) details(st *control.Status, v View) string {
	var b strings.Builder
	fmt.Fprintf(&b, "QTunnel desktop %s\nstate: %s\n", m.opts.Version, v.State)
	if v.Error != "" {
		fmt.Fprintf(&b, "problem: %s\n", v.Error)
	}
	if st == nil {
		fmt.Fprintf(&b, "engine: %s\n", orWords(m.reach, "unknown"))
		return b.String()
	}
	fmt.Fprintf(&b, "engine: %s %s (pid %d), %s since %s\nserver: %s over %s, rtt %.1f ms, loss %.2f %%\n",
		st.Role, st.Version, st.PID, st.State, st.Since.Format(time.RFC3339), st.Server, st.Transport, st.RTTMillis, 100*st.Loss)
	fmt.Fprintf(&b, "streams: %d active, %d total, %d failed; connects %d\n", st.ActiveStreams, st.TotalStreams, st.FailedStreams, st.Connects)
	if st.LastError != "" {
		fmt.Fprintf(&b, "last error: %s\n", st.LastError)
	}
	for _, s := range st.Servers {
		fmt.Fprintf(&b, "server %s: %s, healthy %t, in use %t, rtt %.1f ms", s.Address, s.State, s.Healthy, s.Active, s.RTTMillis)
		if s.LastError != "" {
			fmt.Fprintf(&b, ", last error: %s", s.LastError)
		}
		b.WriteByte('\n')
	}
	if st.Failovers > 0 {
		fmt.Fprintf(&b, "failovers: %d\n", st.Failovers)
	}
	for _, f := range st.Forwards {
		fmt.Fprintf(&b, "forward %s: %s -> %s, %d total, %d failed", f.Name, f.Listen, orWords(f.Target, "(default)"), f.Total, f.Failed)
		if f.LastError != "" {
			fmt.Fprintf(&b, ", last error: %s", f.LastError)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func orWords(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// rate is bytes per second in binary units.
func rate(bps float64) string {
	units := []string{"B", "KiB", "MiB", "GiB"}
	i := 0
	for bps >= 1024 && i < len(units)-1 {
		bps /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", bps, units[i])
	}
	return fmt.Sprintf("%.1f %s", bps, units[i])
}

// View implements Controller.
func (m *Model) View() View {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view
}

// OnChange implements Controller.
func (m *Model) OnChange(fn func(View)) func() {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.nextID
	m.nextID++
	m.subs[id] = fn
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.subs, id)
	}
}

// Toggle implements Controller: it stops a running tunnel, starts a stopped
// one, and with no engine to talk to starts one in the app.
func (m *Model) Toggle(ctx context.Context) error {
	st, err := m.opts.Control.Status(ctx)
	switch {
	case errors.Is(err, control.ErrNotRunning):
		if m.opts.Engine == nil {
			return errors.New("the tunnel engine is not running: install the background service")
		}
		if m.FirstRun() {
			return errors.New("nothing to connect to yet: open Settings first")
		}
		// The engine outlives this call: it runs as long as the model.
		m.mu.Lock()
		life := m.life
		m.mu.Unlock()
		if life == nil {
			life = context.Background()
		}
		if err := m.opts.Engine.Start(life); err != nil {
			return err
		}
	case err != nil:
		return err
	case st.State == control.StateOff:
		err = m.opts.Control.Start(ctx)
	default:
		err = m.opts.Control.Stop(ctx)
	}
	if err != nil {
		return err
	}
	m.Refresh(ctx)
	return nil
}

// defaultListen is the first forward's address when there are no settings.
const defaultListen = "127.0.0.1:8080"

// Settings implements Controller.
func (m *Model) Settings() Settings {
	cfg, err := config.Load(m.opts.ConfigPath)
	if err != nil {
		return Settings{Transport: "quic", Forwards: []Forward{{Listen: defaultListen}}}
	}
	s := Settings{Server: cfg.Server, Transport: orWords(cfg.Transport, "tcp"), Pin: cfg.Trust.Pin, CA: cfg.Trust.CA}
	if len(cfg.Servers) > 0 {
		addrs := make([]string, len(cfg.Servers))
		for i, e := range cfg.Servers {
			addrs[i] = e.Address
		}
		s.Server = strings.Join(addrs, ", ")
	}
	for _, f := range cfg.Forwards {
		s.Forwards = append(s.Forwards, Forward{Name: f.Name, Listen: f.Listen, Target: f.Target})
	}
	return s
}

// current is the settings file as it is, or nil.
func (m *Model) current() *config.Config {
	cfg, err := config.Load(m.opts.ConfigPath)
	if err != nil {
		return nil
	}
	return cfg
}

// HasSecret implements Controller.
func (m *Model) HasSecret() bool { return m.opts.Secrets != nil && m.opts.Secrets.Has() }

// FirstRun implements Controller.
func (m *Model) FirstRun() bool {
	_, err := os.Stat(m.opts.ConfigPath)
	return errors.Is(err, fs.ErrNotExist)
}

// configOf turns settings into the client configuration the engine reads.
// Several servers, comma-separated, become a list; from the file there
// was (old, may be nil), a server still listed keeps its own pin and
// name, and the failover time is kept: the window does not show them.
func configOf(s Settings, old *config.Config) *config.Config {
	c := &config.Config{Mode: config.ModeClient, Transport: s.Transport, Server: strings.TrimSpace(s.Server),
		Trust: config.Trust{Pin: strings.TrimSpace(s.Pin), CA: strings.TrimSpace(s.CA)}}
	if addrs := strings.Split(c.Server, ","); len(addrs) > 1 {
		for _, a := range addrs {
			e := config.ServerEntry{Address: strings.TrimSpace(a)}
			if old != nil {
				for _, o := range old.Servers {
					if o.Address == e.Address {
						e = o
					}
				}
			}
			c.Servers = append(c.Servers, e)
		}
		c.Server = c.Servers[0].Address
		if old != nil {
			c.FailoverAfter = old.FailoverAfter
		}
	}
	for _, f := range s.Forwards {
		c.Forwards = append(c.Forwards, config.Forward{Name: strings.TrimSpace(f.Name), Listen: strings.TrimSpace(f.Listen), Target: strings.TrimSpace(f.Target)})
	}
	return c
}

// Validate implements Controller. The settings are checked by writing
// them as a configuration file and reading it back with the engine's own
// parser, so the window and the engine can never disagree on what is
// valid.
func (m *Model) Validate(s Settings, newSecret string) []FieldError {
	var out []FieldError
	if s.Transport != "quic" && s.Transport != "tcp" {
		out = append(out, FieldError{"transport", "choose QUIC or TCP"})
	}
	if len(s.Forwards) == 0 {
		out = append(out, FieldError{"forwards", "add at least one local port"})
	}
	switch {
	case newSecret == "" && !m.HasSecret():
		out = append(out, FieldError{"secret", "enter the shared secret (or import a link)"})
	case len(newSecret) > secret.MaxLen:
		out = append(out, FieldError{"secret", fmt.Sprintf("at most %d bytes", secret.MaxLen)})
	}
	_, err := config.Parse(m.opts.ConfigPath, config.Format(configOf(s, m.current())))
	for _, e := range config.Errors(err) {
		field := e.Field
		switch {
		case strings.HasPrefix(field, "trust."):
			field = strings.TrimPrefix(field, "trust.")
		case field == "", strings.HasPrefix(field, "servers"):
			field = "server"
		}
		if field == "transport" && len(out) > 0 && out[0].Field == "transport" {
			continue
		}
		out = append(out, FieldError{field, e.Msg})
	}
	return out
}

// Save implements Controller.
func (m *Model) Save(ctx context.Context, s Settings, newSecret string) ([]FieldError, error) {
	if errs := m.Validate(s, newSecret); len(errs) > 0 {
		return errs, nil
	}
	if err := os.MkdirAll(filepath.Dir(m.opts.ConfigPath), 0o700); err != nil {
		return nil, fmt.Errorf("create the settings folder: %w", err)
	}
	if err := writeAtomic(m.opts.ConfigPath, config.Format(configOf(s, m.current()))); err != nil {
		return nil, err
	}
	var warning string
	if newSecret != "" {
		b := []byte(newSecret)
		defer clear(b)
		var err error
		if warning, err = m.opts.Secrets.Put(b); err != nil {
			return nil, fmt.Errorf("store the secret: %w", err)
		}
	}
	// Apply to a running engine: the file now, and a new secret in memory
	// (the engine reads the keyring only when it starts).
	if _, err := m.opts.Control.Status(ctx); err == nil {
		if _, err := m.opts.Control.Reload(ctx); err != nil {
			return nil, fmt.Errorf("the engine refused the new settings: %w", err)
		}
		if newSecret != "" {
			if err := m.opts.Control.SetSecret(ctx, []byte(newSecret)); err != nil {
				return nil, fmt.Errorf("hand the new secret to the engine: %w", err)
			}
		}
	}
	m.Refresh(ctx)
	if warning != "" {
		m.setWarning(warning)
	}
	return nil, nil
}

func (m *Model) statusCopy() *control.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// setWarning shows a warning as the view's problem until the next update.
func (m *Model) setWarning(w string) {
	m.mu.Lock()
	m.view.Error = w
	v := m.view
	subs := make([]func(View), 0, len(m.subs))
	for _, fn := range m.subs {
		subs = append(subs, fn)
	}
	m.mu.Unlock()
	for _, fn := range subs {
		fn(v)
	}
}

// writeAtomic replaces path with data (mode 0600) so that a crash never
// leaves half a file for the engine to read.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".qtunnel-settings-*")
	if err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save settings: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save settings: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	return nil
}

// Import implements Controller.
func (m *Model) Import(link string) (Settings, string, error) {
	l, err := sharelink.Parse(strings.TrimSpace(link))
	if err != nil {
		return Settings{}, "", fmt.Errorf("this is not a QTunnel link: %w", err)
	}
	s := m.Settings()
	listen := defaultListen
	if len(s.Forwards) > 0 && s.Forwards[0].Listen != "" {
		listen = s.Forwards[0].Listen
	}
	s = Settings{Server: l.Server, Transport: l.Transport, Pin: l.Pin,
		Forwards: []Forward{{Name: orWords(l.Target, "default"), Listen: listen, Target: l.Target}}}
	sec := string(l.Secret)
	clear(l.Secret)
	return s, sec, nil
}

// InstallService implements Controller.
func (m *Model) InstallService(ctx context.Context) error {
	if m.opts.Service == nil {
		return errors.New("no background service on this system")
	}
	if m.FirstRun() {
		return errors.New("save your settings first: the service runs them")
	}
	err := m.opts.Service.Install(ctx)
	m.Refresh(ctx)
	return err
}

// RemoveService implements Controller.
func (m *Model) RemoveService(ctx context.Context) error {
	if m.opts.Service == nil {
		return errors.New("no background service on this system")
	}
	err := m.opts.Service.Remove(ctx)
	m.Refresh(ctx)
	return err
}

// SetStartAtLogin implements Controller.
func (m *Model) SetStartAtLogin(on bool) error {
	if m.opts.Autostart == nil {
		return errors.New("starting at login is not supported on this system")
	}
	if err := m.opts.Autostart.Set(on); err != nil {
		return err
	}
	m.update(m.statusCopy(), m.reachCopy())
	return nil
}

func (m *Model) reachCopy() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reach
}

// LogPath implements Controller.
func (m *Model) LogPath() string { return m.opts.LogPath }
