package bgservice

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/kardianos/service"
)

// Where kardianos's System V backend and its init script put things.
var (
	sysvInitDir = "/etc/init.d"
	sysvRCGlob  = "/etc/rc[0-6].d"
	sysvRunDir  = "/var/run"
)

func sysvScript(name string) string { return filepath.Join(sysvInitDir, name) }

// sysvLogDir is where the init script sends the service's output.
func sysvLogDir(c Config) string { return logDirOr(c, "/var/log") }

// sysvArtifacts lists what installing and running the service creates
// besides the init script: the rc links (kardianos makes S50NAME in rc2-5
// and K02NAME in rc0, 1 and 6), the pid file and the two log files.
func sysvArtifacts(name, logDir string) (links, files []string) {
	dirs, _ := filepath.Glob(sysvRCGlob)
	for _, d := range dirs {
		for _, prefix := range []string{"S50", "K02"} {
			links = append(links, filepath.Join(d, prefix+name))
		}
	}
	files = []string{
		filepath.Join(sysvRunDir, name+".pid"),
		filepath.Join(logDir, name+".log"),
		filepath.Join(logDir, name+".err"),
	}
	return links, files
}

// sysvStatus corrects kardianos's System V status: "service NAME status"
// exits 1 both for a stopped service (the init script prints "Stopped")
// and for an unknown one, and kardianos turns any failure into an error
// (its issue #364). The init script tells the two apart.
func sysvStatus(name string, st service.Status, err error) (Status, error) {
	if _, serr := os.Stat(sysvScript(name)); errors.Is(serr, fs.ErrNotExist) {
		return StatusNotInstalled, nil
	}
	var ee *exec.ExitError
	switch {
	case err == nil && st == service.StatusRunning:
		return StatusRunning, nil
	case err == nil && st == service.StatusStopped:
		return StatusStopped, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return StatusStopped, nil
	case err != nil:
		return StatusUnknown, fmt.Errorf("bgservice: ask %s about %s: %w", PlatformSystemV, name, err)
	}
	return StatusUnknown, nil
}

// sysvCleanup removes what kardianos's System V uninstall leaves: the rc
// links (its issue #95) if they point at this service's init script, the
// pid file and the log files. It is called after the service was stopped
// and its init script removed.
func sysvCleanup(name, logDir string) error {
	if _, err := os.Stat(sysvScript(name)); err == nil {
		return fmt.Errorf("bgservice: %s is still installed (%s exists)", name, sysvScript(name))
	}
	links, files := sysvArtifacts(name, logDir)
	var errs []error
	for _, l := range links {
		target, err := os.Readlink(l)
		if err != nil {
			continue // not there, or not a link: not ours
		}
		if target != sysvScript(name) {
			continue
		}
		if err := os.Remove(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("bgservice: remove the leftover link %s: %w", l, err))
		}
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("bgservice: remove the leftover file %s: %w", f, err))
		}
	}
	return errors.Join(errs...)
}
