// Package svcinstall installs the headless qtunnel binary as a system
// service on a host without QTunnel's packages (qtunnel -install-service),
// and starts, stops, queries and removes it, through
// github.com/kardianos/service: a systemd unit, a System V init script or
// a launchd daemon, whichever service manager kardianos finds.
//
// The service runs the same executable with arguments the caller has
// already checked and rewritten (package main: the command line without
// -install-service, paths made absolute). This package refuses what must
// not be in a service's definition: a -secret argument (the unit, the init
// script and the process list are readable by every user) and characters
// that the unit or the init script would interpret (spaces, quotes, $, %,
// \, `).
//
// The systemd unit and the System V script are QTunnel's own templates
// (SystemdUnit, SysvScript), given to kardianos through its SystemdScript
// and SysvScript options. The service runs as root: unlike the packaged
// unit (packaging/linux/qtunnel.service: DynamicUser, the secret handed
// over with LoadCredential), a hand-installed service reads the files on
// its command line where they are. The systemd unit takes from root every
// capability but binding ports below 1024, so root must own those files
// (or they must be readable by others): UnreadableByService finds the ones
// it could not read.
//
// kardianos's System V backend leaves the /etc/rc?.d links and the pid file
// behind when it uninstalls (its issue #95) and reports a stopped service
// as an error (the init script exits non-zero); Manager does both right,
// through package osservice, which it shares with the desktop client's
// background service.
package svcinstall

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kardianos/service"

	"github.com/qtunnel/qtunnel/internal/osservice"
)

// DefaultName is the service's name unless -service-name says otherwise.
const DefaultName = "qtunnel"

// Platforms kardianos reports (Manager.Platform) that this package knows.
const (
	PlatformSystemd = osservice.PlatformSystemd
	PlatformSystemV = osservice.PlatformSystemV
	PlatformLaunchd = osservice.PlatformLaunchd
)

// Config describes the service.
type Config struct {
	// Name names the unit, init script or launchd job: letters, digits,
	// '.', '_' and '-'.
	Name string
	// Description is shown by the service manager.
	Description string
	// Executable is the program the service runs: an absolute path.
	Executable string
	// Args are its arguments, each checked by CheckArg.
	Args []string
}

// Status is the service's state as the service manager reports it.
type Status = osservice.Status

// States.
const (
	StatusUnknown      = osservice.StatusUnknown      // the service manager gave no clear answer
	StatusNotInstalled = osservice.StatusNotInstalled // no such service
	StatusStopped      = osservice.StatusStopped      // installed, not running
	StatusRunning      = osservice.StatusRunning      // installed and running
	StatusFailed       = osservice.StatusFailed       // installed, stopped after an error (systemd)
)

// Errors the Manager's methods wrap.
var (
	ErrNotInstalled     = errors.New("not installed")
	ErrAlreadyInstalled = errors.New("already installed")
)

// ErrSecretArg is CheckArg's error for a secret on the command line.
var ErrSecretArg = errors.New("the secret must not be on a service's command line, which every user can read (ps, the service's definition): " +
	"use -secret-file=FILE (mode 0600) or secret-file: in the configuration")

// unsafeChars are what the unit (quotes, systemd's $VARIABLE and
// %-specifier expansion, \ escapes) or the init script (which splits the
// command on white space inside a double-quoted string) would interpret.
const unsafeChars = " \t\"'$%\\`"

// CheckName checks a service name.
func CheckName(name string) error {
	if !osservice.ValidName(name) || len(name) > 64 {
		return fmt.Errorf("service name %q: want letters, digits, '.', '_' and '-' (at most 64)", name)
	}
	return nil
}

// CheckArg refuses a secret on the command line (-secret, --secret,
// -secret=...) and what a service definition cannot carry verbatim.
func CheckArg(a string) error {
	if osservice.IsSecretArg(a) {
		return ErrSecretArg
	}
	return checkText(fmt.Sprintf("argument %q", a), a)
}

func checkText(what, s string) error {
	if osservice.HasControl(s) {
		return fmt.Errorf("%s: control characters cannot go into a service's definition", what)
	}
	if strings.ContainsAny(s, unsafeChars) {
		return fmt.Errorf("%s: a service's command line cannot hold spaces, quotes, $, %%, \\ or ` (move the file to a path without them)", what)
	}
	return nil
}

// Manager installs and controls one service.
type Manager struct {
	cfg Config
	ctl osservice.Controller
}

// New checks c and returns a Manager for the service manager kardianos
// finds on this system. It changes nothing on the system.
func New(c Config) (*Manager, error) {
	if runtime.GOOS == "windows" {
		return nil, errors.New("qtunnel cannot be installed as a Windows service yet (it does not answer the Service Control Manager); " +
			"start it from Task Scheduler at boot, or use the desktop client's background service")
	}
	platform := service.Platform()
	if platform == "" {
		return nil, errors.New("no service manager was found on this system")
	}
	return newWith(c, platform, func(kc *service.Config) (service.Service, error) { return service.New(osservice.NoProgram{}, kc) })
}

// newWith is New with the backend chosen by the caller (tests).
func newWith(c Config, platform string, mk func(*service.Config) (service.Service, error)) (*Manager, error) {
	if err := check(c); err != nil {
		return nil, err
	}
	s, err := mk(kardianosConfig(c, nil))
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: c}
	m.ctl = osservice.Controller{
		Name:     c.Name,
		Platform: platform,
		Service:  s,
		Wrap:     m.wrap,
		NotInstalled: func(string) error {
			return fmt.Errorf("service %s: %w", c.Name, ErrNotInstalled)
		},
		AlreadyInstalled: func(def string) error {
			return fmt.Errorf("service %s: %w (%s): remove it first with -uninstall-service", c.Name, ErrAlreadyInstalled, def)
		},
		Cleanup: m.cleanLeftovers,
	}
	return m, nil
}

func check(c Config) error {
	if err := CheckName(c.Name); err != nil {
		return err
	}
	if !filepath.IsAbs(c.Executable) {
		return fmt.Errorf("the program's path %q is not absolute", c.Executable)
	}
	if err := checkText("the program's path "+c.Executable, c.Executable); err != nil {
		return err
	}
	if osservice.HasControl(c.Description) {
		return errors.New("the description contains a control character")
	}
	for _, a := range c.Args {
		if err := CheckArg(a); err != nil {
			return err
		}
	}
	return nil
}

// kardianosConfig is c as kardianos takes it, with QTunnel's templates;
// extra options (tests) are added to them.
func kardianosConfig(c Config, extra service.KeyValue) *service.Config {
	opt := service.KeyValue{
		"SystemdScript": SystemdUnit,
		"SysvScript":    SysvScript,
		// launchd: start at boot, restart after a crash, log to
		// /var/log/NAME.out.log and .err.log.
		"RunAtLoad": true,
		"KeepAlive": true,
		"LogOutput": true,
	}
	for k, v := range extra {
		opt[k] = v
	}
	return &service.Config{
		Name: c.Name,
		// The System V script's "Provides:" line.
		DisplayName: c.Name,
		Description: c.Description,
		Executable:  c.Executable,
		Arguments:   c.Args,
		Option:      opt,
	}
}

// Platform is the service manager kardianos chose: "linux-systemd",
// "unix-systemv", "darwin-launchd", ...
func (m *Manager) Platform() string { return m.ctl.Platform }

// DefinitionPath is the file that defines the service: the unit, the init
// script or the property list ("" where this package does not know it).
func (m *Manager) DefinitionPath() string {
	switch m.ctl.Platform {
	case PlatformSystemd:
		return "/etc/systemd/system/" + m.cfg.Name + ".service"
	case PlatformSystemV:
		return osservice.SysvScriptPath(m.cfg.Name)
	case PlatformLaunchd:
		return "/Library/LaunchDaemons/" + m.cfg.Name + ".plist"
	}
	return ""
}

// Status asks the service manager about the service.
func (m *Manager) Status() (Status, error) { return m.ctl.Status() }

// Install registers the service, enabled at boot, without starting it.
// If it fails half way it removes what it wrote.
func (m *Manager) Install() error { return m.ctl.Install(m.DefinitionPath()) }

// Uninstall stops the service if it runs and removes it, with what
// kardianos leaves behind (the System V rc links and pid file; the logs
// stay). Removing a service that is not installed is an error wrapping
// ErrNotInstalled, after those leftovers are cleaned.
func (m *Manager) Uninstall() error { return m.ctl.Uninstall() }

// Start starts the installed service; starting a running one does nothing.
func (m *Manager) Start() error { return m.ctl.Start() }

// Stop stops the service; stopping a stopped one does nothing.
func (m *Manager) Stop() error { return m.ctl.Stop() }

// Restart stops the service if it runs, then starts it.
func (m *Manager) Restart() error {
	if err := m.Stop(); err != nil {
		return err
	}
	return m.Start()
}

func (m *Manager) wrap(what string, err error) error {
	name, failed := m.cfg.Name, ""
	switch m.ctl.Platform {
	case PlatformSystemd:
		failed = fmt.Sprintf("see: systemctl status %s; journalctl -u %s", name, name)
	case PlatformSystemV:
		failed = fmt.Sprintf("see /var/log/%s.err", name)
	}
	return osservice.WrapError(fmt.Sprintf("%s service %s (%s)", what, name, m.ctl.Platform), err, "a system service needs root", failed)
}

func (m *Manager) cleanLeftovers() error {
	switch m.ctl.Platform {
	case PlatformSystemV:
		return osservice.SysvCleanup(m.cfg.Name)
	case PlatformSystemd:
		// A unit removed while failed stays loaded as "failed" until
		// this, and kardianos would report it so (make systemd-test
		// saw -service=status say "stopped after an error" for a removed
		// service). Nothing to reset is not an error worth reporting.
		_ = exec.Command("systemctl", "reset-failed", m.cfg.Name+".service").Run()
	}
	return nil
}

// SysvLogFiles are where the System V init script sends the service's
// standard output and standard error.
func SysvLogFiles(name string) [2]string { return osservice.SysvLogFiles("/var/log", name) }
