package bgservice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a service program: with helperEnv set it
// runs helperMain instead of the tests. helperEnv "run" writes the marker
// file (its pid) once running and "stopped" when asked to stop; "fail"
// makes run fail at once.
const (
	helperEnv       = "QTUNNEL_BGSERVICE_HELPER"
	helperNameEnv   = "QTUNNEL_BGSERVICE_NAME"
	helperMarkerEnv = "QTUNNEL_BGSERVICE_MARKER"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

func helperMain(mode string) int {
	marker := os.Getenv(helperMarkerEnv)
	err := RunService(Config{Name: os.Getenv(helperNameEnv), StopTimeout: 5 * time.Second}, func(ctx context.Context) error {
		if mode == "fail" {
			return errors.New("helper: failing as asked")
		}
		if err := writeMarker(marker, fmt.Sprintf("%d\n", os.Getpid())); err != nil {
			return err
		}
		<-ctx.Done()
		return appendMarker(marker, "stopped\n")
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

func writeMarker(path, s string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func appendMarker(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// markerPID returns the pid in the marker file, 0 if there is none yet.
func markerPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("marker %s holds %q", path, b)
	}
	return pid
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// TestRunServiceStopsOnSIGTERM runs the helper as a plain child process
// (as a service manager would, without installing anything) and stops it
// the way systemd and the System V script do: SIGTERM. run's context must
// be cancelled, and the process must exit 0.
func TestRunServiceStopsOnSIGTERM(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	marker := filepath.Join(t.TempDir(), "marker")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=run", helperNameEnv+"=qtunnel-test-sigterm", helperMarkerEnv+"="+marker)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	if !waitFor(10*time.Second, func() bool { return markerPID(t, marker) != 0 }) {
		t.Fatalf("the helper did not start run within 10s:\n%s", out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("the helper exited with %v after SIGTERM:\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the helper did not exit within 10s of SIGTERM")
	}
	b, _ := os.ReadFile(marker)
	if !strings.HasSuffix(string(b), "stopped\n") {
		t.Fatalf("run's context was not cancelled (marker %q)", b)
	}
}

// TestRunServiceRunFails checks that an engine failing by itself ends the
// service process with a non-zero status (so that the service manager
// restarts it) instead of leaving it idle.
func TestRunServiceRunFails(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=fail", helperNameEnv+"=qtunnel-test-fail")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		defer close(done)
		out, err = cmd.CombinedOutput()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("the helper kept running after run failed")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !bytes.Contains(out, []byte("failing as asked")) {
		t.Fatalf("helper: %v\n%s\nwant exit status 1 with run's error", err, out)
	}
}

// TestProgramStopBounded checks that Stop gives up on a run that ignores
// its context, and that Stop cancels the context.
func TestProgramStopBounded(t *testing.T) {
	release := make(chan struct{})
	p := newProgram(func(ctx context.Context) error {
		<-release
		return ctx.Err()
	}, 50*time.Millisecond)
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(nil); err == nil || !strings.Contains(err.Error(), "did not stop") {
		t.Fatalf("Stop = %v; want a timeout", err)
	}
	close(release)
	<-p.done
	if !errors.Is(p.err, context.Canceled) {
		t.Fatalf("run's context: %v; want it cancelled by Stop", p.err)
	}

	p = newProgram(func(ctx context.Context) error { <-ctx.Done(); return nil }, time.Second)
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(nil); err != nil {
		t.Fatalf("Stop of a well-behaved run: %v", err)
	}
}

func TestRunServiceChecks(t *testing.T) {
	if err := RunService(Config{Name: "x"}, nil); err == nil {
		t.Error("RunService without a function succeeded")
	}
	if err := RunService(Config{Name: "a b"}, func(context.Context) error { return nil }); err == nil {
		t.Error("RunService with a bad name succeeded")
	}
}
