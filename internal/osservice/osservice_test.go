package osservice

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kardianos/service"
)

func TestStatus(t *testing.T) {
	for st, want := range map[Status]string{
		StatusUnknown: "unknown", StatusNotInstalled: "not installed", StatusStopped: "stopped",
		StatusRunning: "running", StatusFailed: "stopped after an error", Status(99): "unknown",
	} {
		if st.String() != want {
			t.Errorf("Status(%d) = %q; want %q", int(st), st, want)
		}
		if installed := st == StatusStopped || st == StatusRunning || st == StatusFailed; st.Installed() != installed {
			t.Errorf("%v.Installed() = %v", st, st.Installed())
		}
	}
}

func TestChecks(t *testing.T) {
	for _, ok := range []string{"qtunnel", "qtunnel-client", "qt.vpn_1"} {
		if !ValidName(ok) {
			t.Errorf("ValidName(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "-x", "a b", "../x", "a/b"} {
		if ValidName(bad) {
			t.Errorf("ValidName(%q) = true", bad)
		}
	}
	for a, want := range map[string]bool{
		"-secret": true, "--secret": true, "-secret=x": true, "--secret=x": true,
		"-secret-file=x": false, "secret": false, "-config=secret": false, "-secretx": false,
	} {
		if IsSecretArg(a) != want {
			t.Errorf("IsSecretArg(%q) = %v", a, !want)
		}
	}
	if !HasControl("a\nb") || !HasControl("a\x7f") || HasControl("a b/ü") {
		t.Error("HasControl is wrong")
	}
}

// fakeService is a kardianos service in memory; the actions named in fail
// fail.
type fakeService struct {
	service.Service
	installed, running bool
	fail               string
	calls              []string
}

func (f *fakeService) do(what string) error {
	f.calls = append(f.calls, what)
	if strings.Contains(f.fail, what) {
		return fmt.Errorf("%s fails", what)
	}
	return nil
}

func (f *fakeService) Status() (service.Status, error) {
	switch {
	case !f.installed:
		return service.StatusUnknown, service.ErrNotInstalled
	case f.running:
		return service.StatusRunning, nil
	}
	return service.StatusStopped, nil
}

func (f *fakeService) Install() error {
	err := f.do("install")
	f.installed = true // written, even if enabling failed
	return err
}

func (f *fakeService) Uninstall() error {
	if err := f.do("uninstall"); err != nil {
		return err
	}
	f.installed = false
	return nil
}

func (f *fakeService) Start() error {
	if err := f.do("start"); err != nil {
		return err
	}
	f.running = true
	return nil
}

func (f *fakeService) Stop() error {
	if err := f.do("stop"); err != nil {
		return err
	}
	f.running = false
	return nil
}

var errNotInstalled = errors.New("not installed")

func fakeController(f *fakeService, missingOK bool) (*Controller, *int) {
	cleaned := new(int)
	return &Controller{
		Name: "svc", Platform: PlatformSystemd, Service: f,
		Wrap: func(what string, err error) error {
			if err == nil {
				return nil
			}
			return fmt.Errorf("%s: %w", what, err)
		},
		NotInstalled: func(what string) error {
			if missingOK && what == "remove" {
				return nil
			}
			return fmt.Errorf("%s: %w", what, errNotInstalled)
		},
		AlreadyInstalled: func(def string) error { return fmt.Errorf("already installed (%s)", def) },
		Cleanup:          func() error { *cleaned++; return nil },
	}, cleaned
}

func TestController(t *testing.T) {
	f := &fakeService{}
	c, cleaned := fakeController(f, false)
	if st, err := c.Status(); st != StatusNotInstalled || err != nil {
		t.Fatalf("Status = %v, %v", st, err)
	}
	for name, action := range map[string]func() error{"start": c.Start, "stop": c.Stop, "remove": c.Uninstall} {
		if err := action(); !errors.Is(err, errNotInstalled) || !strings.HasPrefix(err.Error(), name+":") {
			t.Errorf("%s before Install = %v", name, err)
		}
	}
	if *cleaned != 1 {
		t.Errorf("removing a service that is not installed cleaned %d times; want 1", *cleaned)
	}
	if err := c.Install(""); err != nil {
		t.Fatal(err)
	}
	if err := c.Install(""); err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Fatalf("second Install = %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop while stopped = %v", err)
	}
	if err := c.Start(); err != nil || !f.running {
		t.Fatalf("Start = %v (running %v)", err, f.running)
	}
	f.calls = nil
	if err := c.Start(); err != nil || len(f.calls) != 0 {
		t.Fatalf("Start while running = %v, calls %v", err, f.calls)
	}
	if err := c.Uninstall(); err != nil || f.installed || f.running {
		t.Fatalf("Uninstall = %v (installed %v, running %v)", err, f.installed, f.running)
	}
	if want := []string{"stop", "uninstall"}; fmt.Sprint(f.calls) != fmt.Sprint(want) {
		t.Errorf("Uninstall of a running service called %v; want %v", f.calls, want)
	}

	// A removal that may find nothing only cleans.
	c, cleaned = fakeController(&fakeService{}, true)
	if err := c.Uninstall(); err != nil || *cleaned != 1 {
		t.Errorf("Uninstall with nothing installed = %v (cleaned %d)", err, *cleaned)
	}
}

// TestControllerInstallRollsBack checks that a failed install removes
// the service again, and its definition file even when kardianos's
// uninstall fails too, and that an existing definition is not overwritten.
func TestControllerInstallRollsBack(t *testing.T) {
	def := filepath.Join(t.TempDir(), "svc.service")
	f := &fakeService{fail: "install uninstall"}
	c, cleaned := fakeController(f, false)
	c.Service = writingService{f, def}
	err := c.Install(def)
	if err == nil || !strings.HasPrefix(err.Error(), "install: install fails") {
		t.Fatalf("Install = %v", err)
	}
	if _, err := os.Lstat(def); err == nil {
		t.Error("the definition file is still there")
	}
	if *cleaned != 1 {
		t.Errorf("cleaned %d times; want 1", *cleaned)
	}

	if err := os.WriteFile(def, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ = fakeController(&fakeService{}, false)
	if err := c.Install(def); err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Fatalf("Install over an existing definition = %v", err)
	}
	if b, _ := os.ReadFile(def); string(b) != "mine" {
		t.Errorf("the existing definition was changed: %q", b)
	}
}

// writingService writes the definition file def when installing.
type writingService struct {
	*fakeService
	def string
}

func (w writingService) Install() error {
	if err := os.WriteFile(w.def, []byte("unit"), 0o644); err != nil {
		return err
	}
	return w.fakeService.Install()
}

func TestWrapError(t *testing.T) {
	if WrapError("x", nil, "root", "logs") != nil {
		t.Error("WrapError of nil is not nil")
	}
	for _, tc := range []struct {
		err    error
		failed string
		want   string
	}{
		{fs.ErrPermission, "see logs", "start svc: permission denied (needs root)"},
		{exitError(t, "5"), "see logs", "start svc: exit status 5 (see logs)"},
		{exitError(t, "5"), "", "start svc: exit status 5"},
		{errors.New("boom"), "see logs", "start svc: boom"},
	} {
		err := WrapError("start svc", tc.err, "needs root", tc.failed)
		if err == nil || err.Error() != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("WrapError(%v, %q) = %v; want %q, wrapping it", tc.err, tc.failed, err, tc.want)
		}
	}
}
