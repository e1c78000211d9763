// Package osservice is what QTunnel's two service installers share on top
// of github.com/kardianos/service: package svcinstall (qtunnel
// -install-service, a system service for the headless binary) and the
// desktop client's bgservice (its engine as a user or system background
// service). It has the service states (Status), a Controller that
// installs, starts, stops, queries and removes a kardianos service in its
// owner's words, and kardianos's System V backend corrected: a stopped
// service is reported as an error (its issue #364: the init script exits
// non-zero) and uninstalling leaves the /etc/rc?.d links and the pid file
// behind (its issue #95).
//
// What differs between the two stays with them: the service definitions
// (their own templates), what a service's command line may hold, where its
// definition file lives, and their error messages.
package osservice

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/kardianos/service"
)

// Platforms kardianos reports (service.Platform) that QTunnel knows.
const (
	PlatformSystemd = "linux-systemd"
	PlatformSystemV = "unix-systemv"
	PlatformLaunchd = "darwin-launchd"
	PlatformWindows = "windows-service"
)

// Status is a service's state as the service manager reports it.
type Status int

// States.
const (
	StatusUnknown      Status = iota // the service manager gave no clear answer
	StatusNotInstalled               // no such service
	StatusStopped                    // installed, not running
	StatusRunning                    // installed and running (or starting)
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

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidName reports whether name can name a unit, init script, launchd job
// or Windows service: letters, digits, '.', '_' and '-', not starting with
// a punctuation mark.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// IsSecretArg reports whether a is the secret flag (-secret, --secret,
// -secret=...), which must never be on a service's command line: the
// service's definition and the process list are readable by every user.
func IsSecretArg(a string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	return strings.HasPrefix(a, "-") && name == "secret"
}

// HasControl reports whether s holds a control character, which no
// service definition can carry.
func HasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Backend returns kardianos's backend for platform ("linux-systemd", ...)
// if it is built into this program, nil if not: tests drive one directly.
func Backend(platform string) service.System {
	for _, s := range service.AvailableSystems() {
		if s.String() == platform {
			return s
		}
	}
	return nil
}

// WrapError puts err, an error of the service manager, after context,
// with a hint in parentheses: noRights for a permission error, failed (if
// not "") for a command that exited non-zero, of which kardianos keeps the
// exit status only (where to look for what it said). It returns nil for
// nil.
func WrapError(context string, err error, noRights, failed string) error {
	if err == nil {
		return nil
	}
	hint := ""
	var ee *exec.ExitError
	switch {
	case errors.Is(err, fs.ErrPermission):
		hint = " (" + noRights + ")"
	case errors.As(err, &ee) && failed != "":
		hint = " (" + failed + ")"
	}
	return fmt.Errorf("%s: %w%s", context, err, hint)
}

// NoProgram is the service.Interface of a program that only installs and
// controls a service and never runs it itself.
type NoProgram struct{}

// Start does nothing.
func (NoProgram) Start(service.Service) error { return nil }

// Stop does nothing.
func (NoProgram) Stop(service.Service) error { return nil }

// Controller installs and controls one kardianos service, correcting what
// kardianos gets wrong, and puts its errors in the words of the package
// that owns the service (Wrap, NotInstalled, AlreadyInstalled).
type Controller struct {
	// Name and Platform are the service's name and the service manager
	// kardianos chose for it.
	Name, Platform string
	// Service is kardianos's service.
	Service service.Service
	// Wrap puts an error of the service manager in context (and returns
	// nil for nil); what is the action: "install", "start", "stop",
	// "stop (before removing)", "remove" or "ask about".
	Wrap func(what string, err error) error
	// NotInstalled is the error of an action ("start", "stop", "remove")
	// on a service that is not installed. Returning nil lets the action
	// succeed: a removal then only cleans the leftovers.
	NotInstalled func(what string) error
	// AlreadyInstalled is Install's error for a service that is installed
	// or whose definition file def exists.
	AlreadyInstalled func(def string) error
	// Cleanup, if set, removes what kardianos's uninstall leaves behind;
	// it runs after an uninstall and after a failed install.
	Cleanup func() error
}

// Status asks the service manager about the service.
func (c *Controller) Status() (Status, error) {
	st, err := c.Service.Status()
	if c.Platform == PlatformSystemV {
		st, err := SysvStatus(c.Name, st, err)
		return st, c.Wrap("ask about", err)
	}
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return StatusNotInstalled, nil
	case err != nil && c.Platform == PlatformSystemd && strings.Contains(err.Error(), "failed state"):
		return StatusFailed, nil
	case err != nil:
		return StatusUnknown, c.Wrap("ask about", err)
	case st == service.StatusRunning:
		return StatusRunning, nil
	case st == service.StatusStopped:
		return StatusStopped, nil
	}
	return StatusUnknown, nil
}

// Install registers the service (enabled: it starts at boot or login)
// without starting it. def is the file that defines it ("" if none or
// unknown): Install refuses to overwrite it. If installing fails half way
// (say "systemctl enable" fails after the unit was written), it removes
// what it wrote.
func (c *Controller) Install(def string) error {
	st, err := c.Status()
	if err != nil {
		return err
	}
	if _, err := os.Lstat(def); st.Installed() || (def != "" && err == nil) {
		return c.AlreadyInstalled(def)
	}
	if err := c.Service.Install(); err != nil {
		// Best effort: undo a half-done install.
		_ = c.Service.Uninstall()
		if def != "" {
			_ = os.Remove(def)
		}
		_ = c.cleanup()
		return c.Wrap("install", err)
	}
	return nil
}

// Uninstall stops the service if it runs and removes it, with what
// kardianos leaves behind (Cleanup). For a service that is not installed
// it cleans those leftovers and returns NotInstalled("remove").
func (c *Controller) Uninstall() error {
	st, err := c.Status()
	if err != nil {
		return err
	}
	if st == StatusRunning {
		if err := c.Service.Stop(); err != nil {
			return c.Wrap("stop (before removing)", err)
		}
	}
	if !st.Installed() {
		if err := c.cleanup(); err != nil {
			return err
		}
		return c.NotInstalled("remove")
	}
	if err := c.Service.Uninstall(); err != nil {
		return c.Wrap("remove", err)
	}
	return c.cleanup()
}

// Start starts the installed service; starting a running one does nothing.
func (c *Controller) Start() error {
	st, err := c.Status()
	switch {
	case err != nil:
		return err
	case !st.Installed():
		return c.NotInstalled("start")
	case st == StatusRunning:
		return nil
	}
	return c.Wrap("start", c.Service.Start())
}

// Stop stops the service; stopping a stopped one does nothing.
func (c *Controller) Stop() error {
	st, err := c.Status()
	switch {
	case err != nil:
		return err
	case !st.Installed():
		return c.NotInstalled("stop")
	case st != StatusRunning:
		return nil
	}
	return c.Wrap("stop", c.Service.Stop())
}

func (c *Controller) cleanup() error {
	if c.Cleanup == nil {
		return nil
	}
	return c.Cleanup()
}
