package osservice

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/kardianos/service"
)

// fakeSysvRoot points the System V paths at a temporary tree and returns
// it.
func fakeSysvRoot(t *testing.T) (root string) {
	t.Helper()
	root = t.TempDir()
	oldInit, oldRC, oldRun := sysvInitDir, sysvRCGlob, sysvRunDir
	t.Cleanup(func() { sysvInitDir, sysvRCGlob, sysvRunDir = oldInit, oldRC, oldRun })
	sysvInitDir = filepath.Join(root, "init.d")
	sysvRCGlob = filepath.Join(root, "rc[0-6].d")
	sysvRunDir = filepath.Join(root, "run")
	for _, d := range []string{"init.d", "rc0.d", "rc2.d", "rc6.d", "run", "log"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func exitError(t *testing.T, code string) error {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("needs sh")
	}
	err := exec.Command("sh", "-c", "exit "+code).Run()
	if err == nil {
		t.Fatal("sh exited 0")
	}
	return err
}

func TestSysvStatus(t *testing.T) {
	root := fakeSysvRoot(t)
	// Not installed, whatever kardianos says.
	for _, err := range []error{exitError(t, "1"), errors.New("x")} {
		if st, err := SysvStatus("svc", service.StatusUnknown, err); st != StatusNotInstalled || err != nil {
			t.Errorf("without an init script: %v, %v; want not installed", st, err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "init.d", "svc"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		st      service.Status
		err     error
		want    Status
		wantErr bool
	}{
		{service.StatusRunning, nil, StatusRunning, false},
		{service.StatusStopped, nil, StatusStopped, false},
		{service.StatusUnknown, exitError(t, "1"), StatusStopped, false}, // kardianos's script (#364)
		{service.StatusUnknown, exitError(t, "3"), StatusStopped, false}, // LSB, svcinstall.SysvScript
		{service.StatusUnknown, exitError(t, "4"), StatusUnknown, true},  // LSB: status unknown
		// An ExitError without a process state has exit code -1: not a
		// stopped service.
		{service.StatusUnknown, &exec.ExitError{}, StatusUnknown, true},
		{service.StatusUnknown, errors.New("service: not found"), StatusUnknown, true},
	} {
		st, err := SysvStatus("svc", tc.st, tc.err)
		if st != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("SysvStatus(%v, %v) = %v, %v; want %v (error %v)", tc.st, tc.err, st, err, tc.want, tc.wantErr)
		}
	}
}

// TestSysvCleanup checks what is removed after kardianos's System V
// uninstall: the rc links to this service's script, its pid file and the
// files asked for, not a link to another script.
func TestSysvCleanup(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks")
	}
	root := fakeSysvRoot(t)
	logs := SysvLogFiles(filepath.Join(root, "log"), "svc")
	script := SysvScriptPath("svc")
	ours := []string{
		filepath.Join(root, "rc2.d", "S50svc"),
		filepath.Join(root, "rc0.d", "K02svc"),
		filepath.Join(root, "rc6.d", "K02svc"),
	}
	for _, l := range ours {
		if err := os.Symlink(script, l); err != nil {
			t.Fatal(err)
		}
	}
	// Someone else's link by the same name must stay.
	other := filepath.Join(root, "rc0.d", "S50svc")
	if err := os.Symlink("/etc/init.d/other", other); err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(root, "run", "svc.pid"), logs[0], logs[1]}
	for _, f := range files {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Refused while the init script is there.
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SysvCleanup("svc", logs[:]...); err == nil {
		t.Fatal("SysvCleanup ran with the service still installed")
	}
	if err := os.Remove(script); err != nil {
		t.Fatal(err)
	}

	if err := SysvCleanup("svc", logs[:]...); err != nil {
		t.Fatal(err)
	}
	for _, f := range append(ours, files...) {
		if _, err := os.Lstat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there", f)
		}
	}
	if _, err := os.Lstat(other); err != nil {
		t.Errorf("someone else's link was removed: %v", err)
	}
}

// TestSysvCleanupKeepsLogs checks that without files the logs stay (as
// svcinstall wants) while the links and the pid file go.
func TestSysvCleanupKeepsLogs(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks")
	}
	root := fakeSysvRoot(t)
	link, pid := filepath.Join(root, "rc2.d", "S50qt"), filepath.Join(root, "run", "qt.pid")
	logs := SysvLogFiles(filepath.Join(root, "log"), "qt")
	if err := os.Symlink(SysvScriptPath("qt"), link); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{pid, logs[0], logs[1]} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := SysvCleanup("qt"); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{link, pid} {
		if _, err := os.Lstat(gone); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there", gone)
		}
	}
	for _, kept := range logs {
		if _, err := os.Lstat(kept); err != nil {
			t.Errorf("the log %s was removed: %v", kept, err)
		}
	}
}
