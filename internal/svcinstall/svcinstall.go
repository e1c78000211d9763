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
// as an error (the init script exits non-zero); Manager does both right.
package svcinstall

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/kardianos/service"
)

// DefaultName is the service's name unless -service-name says otherwise.
const DefaultName = "qtunnel"

// Platforms kardianos reports (Manager.Platform) that this package knows.
const (
	PlatformSystemd = "linux-systemd"
	PlatformSystemV = "unix-systemv"
	PlatformLaunchd = "darwin-launchd"
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
type Status int

// States.
const (
	StatusUnknown      Status = iota // the service manager gave no clear answer
	StatusNotInstalled               // no such service
	StatusStopped                    // installed, not running
	StatusRunning                    // installed and running
	StatusFailed                     // installed, stopped after an error (systemd)
)

// String says the state in words.
func (s Status) String() string {
	switch s {
	case StatusNotInstalled:
		return "not installed"
	case StatusStopped:
		return "stopped"
	case StatusRunning:
		return "running"
	case StatusFailed:
		return "stopped after an error"
	}
	return "unknown"
}

// Installed reports whether s is a state of an installed service.
func (s Status) Installed() bool {
	return s == StatusStopped || s == StatusRunning || s == StatusFailed
}

// Errors the Manager's methods wrap.
var (
	ErrNotInstalled     = errors.New("not installed")
	ErrAlreadyInstalled = errors.New("already installed")
)

// ErrSecretArg is CheckArg's error for a secret on the command line.
var ErrSecretArg = errors.New("the secret must not be on a service's command line, which every user can read (ps, the service's definition): " +
	"use -secret-file=FILE (mode 0600) or secret-file: in the configuration")

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// unsafeChars are what the unit (quotes, systemd's $VARIABLE and
	// %-specifier expansion, \ escapes) or the init script (which splits
	// the command on white space inside a double-quoted string) would
	// interpret.
	unsafeChars = " \t\"'$%\\`"
)

// CheckName checks a service name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) || len(name) > 64 {
		return fmt.Errorf("service name %q: want letters, digits, '.', '_' and '-' (at most 64)", name)
	}
	return nil
}

// CheckArg refuses a secret on the command line (-secret, --secret,
// -secret=...) and what a service definition cannot carry verbatim.
func CheckArg(a string) error {
	if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && name == "secret" {
		return ErrSecretArg
	}
	return checkText(fmt.Sprintf("argument %q", a), a)
}

func checkText(what, s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s: control characters cannot go into a service's definition", what)
		}
	}
	if strings.ContainsAny(s, unsafeChars) {
		return fmt.Errorf("%s: a service's command line cannot hold spaces, quotes, $, %%, \\ or ` (move the file to a path without them)", what)
	}
	return nil
}

// Manager installs and controls one service.
type Manager struct {
	cfg      Config
	svc      service.Service
	platform string
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
	return newWith(c, platform, func(kc *service.Config) (service.Service, error) { return service.New(program{}, kc) })
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
	return &Manager{cfg: c, svc: s, platform: platform}, nil
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
	if strings.ContainsFunc(c.Description, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
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
func (m *Manager) Platform() string { return m.platform }

// DefinitionPath is the file that defines the service: the unit, the init
// script or the property list ("" where this package does not know it).
func (m *Manager) DefinitionPath() string {
	switch m.platform {
	case PlatformSystemd:
		return "/etc/systemd/system/" + m.cfg.Name + ".service"
	case PlatformSystemV:
		return sysvScriptPath(m.cfg.Name)
	case PlatformLaunchd:
		return "/Library/LaunchDaemons/" + m.cfg.Name + ".plist"
	}
	return ""
}

// Status asks the service manager about the service.
func (m *Manager) Status() (Status, error) {
	st, err := m.svc.Status()
	if m.platform == PlatformSystemV {
		return sysvStatus(m.cfg.Name, st, err)
	}
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return StatusNotInstalled, nil
	case err != nil && m.platform == PlatformSystemd && strings.Contains(err.Error(), "failed state"):
		return StatusFailed, nil
	case err != nil:
		return StatusUnknown, m.wrap("ask about", err)
	case st == service.StatusRunning:
		return StatusRunning, nil
	case st == service.StatusStopped:
		return StatusStopped, nil
	}
	return StatusUnknown, nil
}

// Install registers the service, enabled at boot, without starting it.
// If it fails half way it removes what it wrote.
func (m *Manager) Install() error {
	st, err := m.Status()
	if err != nil {
		return err
	}
	def := m.DefinitionPath()
	if _, err := os.Lstat(def); st.Installed() || (def != "" && err == nil) {
		return fmt.Errorf("service %s: %w (%s): remove it first with -uninstall-service", m.cfg.Name, ErrAlreadyInstalled, def)
	}
	if err := m.svc.Install(); err != nil {
		_ = m.svc.Uninstall()
		if def != "" {
			_ = os.Remove(def)
		}
		_ = m.cleanLeftovers()
		return m.wrap("install", err)
	}
	return nil
}

// Uninstall stops the service if it runs and removes it, with what
// kardianos leaves behind (the System V rc links and pid file; the logs
// stay). Removing a service that is not installed is an error wrapping
// ErrNotInstalled, after those leftovers are cleaned.
func (m *Manager) Uninstall() error {
	st, err := m.Status()
	if err != nil {
		return err
	}
	if st == StatusRunning {
		if err := m.svc.Stop(); err != nil {
			return m.wrap("stop (before removing)", err)
		}
	}
	if !st.Installed() {
		if err := m.cleanLeftovers(); err != nil {
			return err
		}
		return fmt.Errorf("service %s: %w", m.cfg.Name, ErrNotInstalled)
	}
	if err := m.svc.Uninstall(); err != nil {
		return m.wrap("remove", err)
	}
	return m.cleanLeftovers()
}

// Start starts the installed service; starting a running one does nothing.
func (m *Manager) Start() error {
	st, err := m.Status()
	switch {
	case err != nil:
		return err
	case !st.Installed():
		return fmt.Errorf("service %s: %w", m.cfg.Name, ErrNotInstalled)
	case st == StatusRunning:
		return nil
	}
	return m.wrap("start", m.svc.Start())
}

// Stop stops the service; stopping a stopped one does nothing.
func (m *Manager) Stop() error {
	st, err := m.Status()
	switch {
	case err != nil:
		return err
	case !st.Installed():
		return fmt.Errorf("service %s: %w", m.cfg.Name, ErrNotInstalled)
	case st != StatusRunning:
		return nil
	}
	return m.wrap("stop", m.svc.Stop())
}

// Restart stops the service if it runs, then starts it.
func (m *Manager) Restart() error {
	if err := m.Stop(); err != nil {
		return err
	}
	return m.Start()
}

func (m *Manager) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	hint := ""
	var ee *exec.ExitError
	switch {
	case errors.Is(err, fs.ErrPermission):
		hint = " (a system service needs root)"
	case errors.As(err, &ee) && m.platform == PlatformSystemd:
		hint = fmt.Sprintf(" (see: systemctl status %s; journalctl -u %s)", m.cfg.Name, m.cfg.Name)
	case errors.As(err, &ee) && m.platform == PlatformSystemV:
		hint = fmt.Sprintf(" (see /var/log/%s.err)", m.cfg.Name)
	}
	return fmt.Errorf("%s service %s (%s): %w%s", what, m.cfg.Name, m.platform, err, hint)
}

func (m *Manager) cleanLeftovers() error {
	switch m.platform {
	case PlatformSystemV:
		return sysvCleanup(m.cfg.Name)
	case PlatformSystemd:
		// A unit removed while failed stays loaded as "failed" until
		// this, and kardianos would report it so (make systemd-test
		// saw -service=status say "stopped after an error" for a removed
		// service). Nothing to reset is not an error worth reporting.
		_ = exec.Command("systemctl", "reset-failed", m.cfg.Name+".service").Run()
	}
	return nil
}

// program is the service.Interface a Manager needs; it never runs the
// service itself (the service is qtunnel's ordinary main).
type program struct{}

func (program) Start(service.Service) error { return nil }
func (program) Stop(service.Service) error  { return nil }

// Where kardianos's System V backend and the init script put things.
var (
	sysvInitDir = "/etc/init.d"
	sysvRCGlob  = "/etc/rc[0-6].d"
	sysvRunDir  = "/var/run"
)

func sysvScriptPath(name string) string { return filepath.Join(sysvInitDir, name) }

// SysvLogFiles are where the System V init script sends the service's
// standard output and standard error.
func SysvLogFiles(name string) [2]string {
	return [2]string{"/var/log/" + name + ".log", "/var/log/" + name + ".err"}
}

// sysvStatus corrects kardianos's System V status: "service NAME status"
// exits non-zero for a stopped service (3, as LSB says, from SysvScript;
// 1 from kardianos's own script), which kardianos returns as an error.
func sysvStatus(name string, st service.Status, err error) (Status, error) {
	if _, serr := os.Stat(sysvScriptPath(name)); errors.Is(serr, fs.ErrNotExist) {
		return StatusNotInstalled, nil
	}
	var ee *exec.ExitError
	switch {
	case err == nil && st == service.StatusRunning:
		return StatusRunning, nil
	case err == nil && st == service.StatusStopped:
		return StatusStopped, nil
	case errors.As(err, &ee) && (ee.ExitCode() == 3 || ee.ExitCode() == 1):
		return StatusStopped, nil
	case err != nil:
		return StatusUnknown, fmt.Errorf("ask %s about service %s: %w", PlatformSystemV, name, err)
	}
	return StatusUnknown, nil
}

// sysvLeftovers are the rc links kardianos makes (S50NAME in rc2-5,
// K02NAME in rc0, 1 and 6) and the pid file.
func sysvLeftovers(name string) (links []string, pidFile string) {
	dirs, _ := filepath.Glob(sysvRCGlob)
	for _, d := range dirs {
		links = append(links, filepath.Join(d, "S50"+name), filepath.Join(d, "K02"+name))
	}
	return links, filepath.Join(sysvRunDir, name+".pid")
}

// sysvCleanup removes the rc links that point at the service's (removed)
// init script, and its pid file.
func sysvCleanup(name string) error {
	script := sysvScriptPath(name)
	if _, err := os.Stat(script); err == nil {
		return fmt.Errorf("service %s is still installed (%s exists)", name, script)
	}
	links, pid := sysvLeftovers(name)
	var errs []error
	for _, l := range links {
		if target, err := os.Readlink(l); err != nil || target != script {
			continue // not there, or not ours
		}
		if err := os.Remove(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(pid); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
