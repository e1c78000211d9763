package osservice

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/kardianos/service"
)

// Where kardianos's System V backend and the init scripts put things
// (variables for the tests).
var (
	sysvInitDir = "/etc/init.d"
	sysvRCGlob  = "/etc/rc[0-6].d"
	sysvRunDir  = "/var/run"
)

// SysvScriptPath is where the init script of service name goes.
func SysvScriptPath(name string) string { return filepath.Join(sysvInitDir, name) }

// SysvLogFiles are where an init script (kardianos's and QTunnel's) sends
// the service's standard output and standard error: NAME.log and NAME.err
// in dir.
func SysvLogFiles(dir, name string) [2]string {
	return [2]string{filepath.Join(dir, name+".log"), filepath.Join(dir, name+".err")}
}

// SysvStatus corrects kardianos's System V status st, err: "service NAME
// status" exits non-zero for a stopped service, which kardianos returns as
// an error (its issue #364): 1 from kardianos's own init script, which
// prints "Stopped", and 3 ("program is not running", as LSB says) from
// QTunnel's own (svcinstall.SysvScript). "service" also exits 1 for a
// service it does not know, which the missing init script tells apart.
// Other errors are returned as they are, with StatusUnknown.
func SysvStatus(name string, st service.Status, err error) (Status, error) {
	if _, serr := os.Stat(SysvScriptPath(name)); errors.Is(serr, fs.ErrNotExist) {
		return StatusNotInstalled, nil
	}
	var ee *exec.ExitError
	switch {
	case err == nil && st == service.StatusRunning:
		return StatusRunning, nil
	case err == nil && st == service.StatusStopped:
		return StatusStopped, nil
	case errors.As(err, &ee) && (ee.ExitCode() == 1 || ee.ExitCode() == 3):
		return StatusStopped, nil
	}
	return StatusUnknown, err
}

// sysvLinks are the rc links kardianos makes for name: S50NAME in rc2-5,
// K02NAME in rc0, 1 and 6.
func sysvLinks(name string) []string {
	dirs, _ := filepath.Glob(sysvRCGlob)
	var links []string
	for _, d := range dirs {
		links = append(links, filepath.Join(d, "S50"+name), filepath.Join(d, "K02"+name))
	}
	return links
}

// SysvCleanup removes what kardianos's System V uninstall leaves behind
// (its issue #95): the rc links if they point at the service's (removed)
// init script, its pid file, and files (the logs, for an owner that
// removes them). It refuses while the init script exists.
func SysvCleanup(name string, files ...string) error {
	script := SysvScriptPath(name)
	if _, err := os.Stat(script); err == nil {
		return fmt.Errorf("service %s is still installed (%s exists)", name, script)
	}
	var errs []error
	for _, l := range sysvLinks(name) {
		if target, err := os.Readlink(l); err != nil || target != script {
			continue // not there, or not ours
		}
		if err := os.Remove(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove the leftover link %s: %w", l, err))
		}
	}
	for _, f := range append([]string{filepath.Join(sysvRunDir, name+".pid")}, files...) {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove the leftover file %s: %w", f, err))
		}
	}
	return errors.Join(errs...)
}
