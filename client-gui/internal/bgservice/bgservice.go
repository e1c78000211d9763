// Package bgservice installs QTunnel's client engine as an OS background
// service with github.com/kardianos/service, starts, stops and removes it,
// and hosts the engine inside the service process (RunService). The tray
// app talks to a running service only through the local control API
// (package control); this package never carries tunnel settings or the
// secret.
//
// The service is the tray app's own executable started with arguments
// such as "-service -config PATH". On systemd and launchd the files that
// define it come from QTunnel's templates (SystemdUserUnit,
// SystemdSystemUnit, LaunchdAgentPlist), handed to kardianos through its
// SystemdScript and LaunchdConfig options; SystemdUnit and LaunchdPlist
// render them as kardianos does, with the same data and template rules,
// for tests and for "show me what will be installed" (the tests compare
// SystemdUnit with the unit kardianos's systemd backend writes; the
// launchd backend only builds on macOS).
//
// # How the service gets the secret
//
// The secret is never on the service's command line, in its environment
// or in the files that define it (New refuses a -secret argument or a
// *SECRET* variable): those are readable by other users and by anyone
// who lists processes.
//
//   - Linux with systemd, UserService: a "systemctl --user" unit. It runs
//     in the user's own service manager, next to the login session, so it
//     reads the secret from the user's keyring itself (package
//     secretstore: the Secret Service on the session bus, which the user
//     manager's environment points to; gnome-keyring or KWallet is
//     unlocked at login by PAM). If the keyring is locked or missing,
//     secretstore's owner-only fallback file is used, as for the app.
//   - macOS, UserService: a LaunchAgent in ~/Library/LaunchAgents, loaded
//     in the user's GUI session, where the login Keychain is unlocked; it
//     reads the item itself through the same /usr/bin/security tool that
//     wrote it, so no prompt appears.
//   - Windows: kardianos installs a Windows service, which by default runs
//     as LocalSystem. LocalSystem cannot read the user's Credential
//     Manager, and the tray app could not talk to it either: the control
//     API's named pipe admits only the user who created it, and the
//     client refuses a pipe owned by anyone else (SYSTEM included), so
//     handing the secret over with set-secret is not possible without
//     weakening that. QTunnel therefore installs the Windows service to
//     run as the user (Config.Account and Config.Password, which the
//     tray app asks for once and passes straight to the Service Control
//     Manager; QTunnel never stores the password). Running as the user,
//     the service reads the Credential Manager itself and serves the
//     control pipe as the user, like the other platforms. New refuses a
//     Windows service without an account. Installing needs administrator
//     rights (an elevation prompt), and the account needs the "Log on as
//     a service" right, which Windows grants when the service is set up
//     in services.msc but not through the API: without it, starting fails
//     with "The service did not start due to a logon failure". A user who
//     does not want to give the password runs the engine inside the tray
//     app instead (no service).
//   - Linux without systemd (kardianos's unix-systemv and friends): there
//     are no per-user services, so only a system service, installed as
//     root and running as root, is possible. It has no user session and no
//     keyring; its configuration must name a root-only secret file
//     (config SecretFiles). The tray app normally runs the engine in
//     process there instead.
//
// # Leftovers
//
// kardianos's System V backend does not undo all of its install (its
// issue #95): Uninstall removes the init script but not the
// /etc/rc?.d/S50NAME and K02NAME links, and a stopped service leaves its
// logs in /var/log/NAME.log and NAME.err. Manager.Uninstall removes those
// too (links only if they point at the service's own init script). Its
// Status also reports an error for a merely stopped service (issue #364:
// the init script exits 1 for "Stopped"); Manager.Status reads that as
// stopped. Both corrections, the service states and the install, start,
// stop and remove logic come from package osservice, which this package
// shares with qtunnel -install-service (package svcinstall).
package bgservice

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kardianos/service"

	"github.com/qtunnel/qtunnel/internal/osservice"
)

// Platforms kardianos reports (Manager.Platform) that this package treats
// specially.
const (
	PlatformSystemd = osservice.PlatformSystemd
	PlatformSystemV = osservice.PlatformSystemV
	PlatformLaunchd = osservice.PlatformLaunchd
	PlatformWindows = osservice.PlatformWindows
)

// DefaultStopTimeout is how long RunService waits for the engine to stop
// when Config.StopTimeout is zero: longer than the engine's default drain
// (10 s).
const DefaultStopTimeout = 15 * time.Second

// Config describes the service. The same Config serves the tray app
// (New) and the service process (RunService), which only needs Name.
type Config struct {
	// Name is the service's name: letters, digits, '.', '_' and '-'
	// ("qtunnel-client"). It names the unit, plist, init script or
	// Windows service.
	Name string
	// DisplayName and Description are shown by the service manager.
	DisplayName, Description string
	// Executable is the program the service runs (the qtunnel-gui
	// binary); it is made absolute.
	Executable string
	// Args are its arguments, e.g. {"-service", "-config", PATH}. Never
	// the secret.
	Args []string
	// UserService installs a per-user service: a "systemctl --user" unit
	// on Linux, a LaunchAgent on macOS. On Windows, where every service
	// belongs to the Service Control Manager, it is ignored: see Account.
	UserService bool
	// Env is extra environment for the service, written into its
	// definition. Never the secret.
	Env map[string]string
	// Account and Password (Windows only, both required there) are the
	// user the service runs as (".\alice", "DOMAIN\alice" or
	// "MicrosoftAccount\alice@example.com") and that user's password,
	// passed to the Service Control Manager at install and kept nowhere
	// by QTunnel.
	Account, Password string
	// LogDirectory, if set, is where the service manager writes the
	// service's output (System V and launchd); "" means the default
	// (/var/log for system services, ~/Library/Logs for a LaunchAgent).
	// systemd units log to the journal.
	LogDirectory string
	// StopTimeout bounds how long RunService waits for the engine to stop;
	// 0 means DefaultStopTimeout.
	StopTimeout time.Duration
}

// Status is the service's state as the service manager reports it.
type Status = osservice.Status

// States.
const (
	StatusUnknown      = osservice.StatusUnknown      // the service manager gave no clear answer
	StatusNotInstalled = osservice.StatusNotInstalled // no such service
	StatusStopped      = osservice.StatusStopped      // installed, not running
	StatusRunning      = osservice.StatusRunning      // installed and running (or starting)
	StatusFailed       = osservice.StatusFailed       // installed, stopped after an error (systemd)
)

// Errors that Manager's methods wrap.
var (
	ErrNotInstalled     = errors.New("the background service is not installed")
	ErrAlreadyInstalled = errors.New("the background service is already installed")
)

// Manager installs and controls one service. Its methods shell out to the
// service manager (systemctl, service, launchctl) or call the Windows
// Service Control Manager; they are meant for the tray app, one at a time.
type Manager struct {
	cfg Config
	ctl osservice.Controller
}

// New checks c for the service manager kardianos found on this system and
// returns a Manager for it. It changes nothing on the system.
func New(c Config) (*Manager, error) {
	platform := service.Platform()
	if platform == "" {
		return nil, errors.New("bgservice: no service manager was found on this system")
	}
	c, err := prepare(c, platform)
	if err != nil {
		return nil, err
	}
	kc, err := kardianosConfig(c, platform)
	if err != nil {
		return nil, err
	}
	// The program is only called by Run, which a Manager never calls.
	svc, err := service.New(osservice.NoProgram{}, kc)
	if err != nil {
		return nil, fmt.Errorf("bgservice: %w", err)
	}
	return newManager(c, svc, svc.Platform()), nil
}

// newManager is a Manager for c (prepared), installed and controlled
// through svc.
func newManager(c Config, svc service.Service, platform string) *Manager {
	m := &Manager{cfg: c}
	m.ctl = osservice.Controller{
		Name:     c.Name,
		Platform: platform,
		Service:  svc,
		Wrap:     m.wrap,
		NotInstalled: func(what string) error {
			if what == "remove" {
				return nil // removing only cleans the leftovers
			}
			return fmt.Errorf("bgservice: %s %s: %w", what, c.Name, ErrNotInstalled)
		},
		AlreadyInstalled: func(string) error {
			return fmt.Errorf("bgservice: install %s: %w", c.Name, ErrAlreadyInstalled)
		},
		Cleanup: m.cleanLeftovers,
	}
	return m
}

// Platform is the service manager kardianos chose: "linux-systemd",
// "unix-systemv", "darwin-launchd", "windows-service", ...
func (m *Manager) Platform() string { return m.ctl.Platform }

// Status asks the service manager about the service.
func (m *Manager) Status() (Status, error) { return m.ctl.Status() }

// Install registers the service (enabled: it starts at boot or login)
// without starting it. It fails with ErrAlreadyInstalled if it is; if it
// fails half way (say "systemctl --user enable" fails after the unit was
// written) it removes what it wrote.
func (m *Manager) Install() error {
	def, err := m.definitionPath()
	if err != nil {
		return err
	}
	return m.ctl.Install(def)
}

// definitionPath is the file kardianos writes to define the service, ""
// where there is none (Windows keeps services in the registry).
func (m *Manager) definitionPath() (string, error) {
	home := func() (string, error) {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("bgservice: where a user service goes: %w", err)
		}
		return h, nil
	}
	name := m.cfg.Name
	switch m.ctl.Platform {
	case PlatformSystemV:
		return osservice.SysvScriptPath(name), nil
	case PlatformSystemd:
		if !m.cfg.UserService {
			return "/etc/systemd/system/" + name + ".service", nil
		}
		h, err := home()
		if err != nil {
			return "", err
		}
		return filepath.Join(h, ".config", "systemd", "user", name+".service"), nil
	case PlatformLaunchd:
		if !m.cfg.UserService {
			return "/Library/LaunchDaemons/" + name + ".plist", nil
		}
		h, err := home()
		if err != nil {
			return "", err
		}
		return filepath.Join(h, "Library", "LaunchAgents", name+".plist"), nil
	}
	return "", nil
}

// Start starts the installed service.
func (m *Manager) Start() error { return m.ctl.Start() }

// Stop stops the service; stopping a stopped service is not an error.
func (m *Manager) Stop() error { return m.ctl.Stop() }

// Uninstall stops the service if it runs and removes it, with what
// kardianos leaves behind (see the package comment). Removing a service
// that is not installed only cleans those leftovers.
func (m *Manager) Uninstall() error { return m.ctl.Uninstall() }

func (m *Manager) wrap(what string, err error) error {
	failed := ""
	if m.ctl.Platform == PlatformSystemd {
		// kardianos keeps systemctl's exit status, not what it said.
		user := ""
		if m.cfg.UserService {
			user = " --user"
		}
		failed = fmt.Sprintf("systemctl failed: see \"systemctl%s status %s.service\"", user, m.cfg.Name)
	}
	return osservice.WrapError(fmt.Sprintf("bgservice: %s %s (%s)", what, m.cfg.Name, m.ctl.Platform), err,
		"a system service needs administrator rights", failed)
}

// cleanLeftovers removes what kardianos's uninstall leaves behind.
func (m *Manager) cleanLeftovers() error {
	switch m.ctl.Platform {
	case PlatformSystemV:
		logs := osservice.SysvLogFiles(logDirOr(m.cfg, "/var/log"), m.cfg.Name)
		if err := osservice.SysvCleanup(m.cfg.Name, logs[:]...); err != nil {
			return fmt.Errorf("bgservice: %w", err)
		}
		return nil
	case PlatformLaunchd:
		dir, err := launchdLogDir(m.cfg)
		if err != nil {
			return err
		}
		var errs []error
		for _, f := range launchdLogFiles(dir, m.cfg.Name) {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	return nil
}

var (
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// shellSafeRE is what an argument or value may hold where kardianos
	// writes it unquoted into a shell script or an Environment= line.
	shellSafeRE = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]*$`)
)

// prepare checks c for platform and fills in defaults.
func prepare(c Config, platform string) (Config, error) {
	if !osservice.ValidName(c.Name) {
		return c, fmt.Errorf("bgservice: the service name %q must be letters, digits, '.', '_' and '-'", c.Name)
	}
	if c.DisplayName == "" {
		c.DisplayName = c.Name
	}
	if c.Description == "" {
		c.Description = "QTunnel client engine"
	}
	if c.Executable == "" {
		return c, errors.New("bgservice: the service needs the path of the program to run")
	}
	exe, err := filepath.Abs(c.Executable)
	if err != nil {
		return c, fmt.Errorf("bgservice: the program's path: %w", err)
	}
	c.Executable = exe
	if err := checkText("the program's path", exe, platform); err != nil {
		return c, err
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = DefaultStopTimeout
	}

	if platform == PlatformWindows {
		if c.Account == "" || c.Password == "" {
			return c, errors.New("bgservice: on Windows the service must run as the user (Account and Password): " +
				"as LocalSystem it could neither read the user's Credential Manager nor be reached over the user's control pipe")
		}
	} else if c.Account != "" || c.Password != "" {
		return c, errors.New("bgservice: Account and Password are for Windows services only")
	}
	if c.UserService && platform != PlatformSystemd && platform != PlatformLaunchd && platform != PlatformWindows {
		return c, fmt.Errorf("bgservice: this system's service manager (%s) has no per-user services: install a system service as root, or run the engine inside the app", platform)
	}

	for _, a := range c.Args {
		if err := checkArg(a, platform); err != nil {
			return c, err
		}
	}
	for k, v := range c.Env {
		if !envKeyRE.MatchString(k) {
			return c, fmt.Errorf("bgservice: %q is not a valid environment variable name", k)
		}
		if u := strings.ToUpper(k); strings.Contains(u, "SECRET") && !strings.HasSuffix(u, "_FILE") {
			return c, fmt.Errorf("bgservice: %s would put a secret in the service's definition, which other users can read; the service reads the secret from the keyring", k)
		}
		if err := checkText("the value of "+k, v, platform); err != nil {
			return c, err
		}
	}
	return c, nil
}

// checkArg refuses a secret on the command line and what the platform's
// service definition cannot carry.
func checkArg(a, platform string) error {
	if osservice.IsSecretArg(a) {
		return errors.New("bgservice: the secret must not be on the service's command line, which other users can read; the service reads it from the keyring")
	}
	return checkText("argument "+fmt.Sprintf("%q", a), a, platform)
}

func checkText(what, s, platform string) error {
	if osservice.HasControl(s) {
		return fmt.Errorf("bgservice: %s contains a control character", what)
	}
	switch platform {
	case PlatformLaunchd, PlatformWindows:
		return nil // XML-escaped, or passed as a list
	case PlatformSystemd:
		// ExecStart quotes each argument but still expands %-specifiers
		// and $VARIABLES, and Environment= lines split on spaces.
		if strings.ContainsAny(s, `%$\`) || (strings.HasPrefix(what, "the value") && !shellSafeRE.MatchString(s)) {
			return fmt.Errorf("bgservice: %s cannot be written safely into a systemd unit (no spaces, quotes, %%, $ or \\)", what)
		}
		return nil
	}
	// System V and the other init scripts write arguments into a shell
	// variable that is split on spaces.
	if !shellSafeRE.MatchString(s) {
		return fmt.Errorf("bgservice: %s cannot be written safely into a %s init script (only letters, digits and _@%%+=:,./-)", what, platform)
	}
	return nil
}
