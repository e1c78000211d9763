package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/internal/testutil"
)

// binary is the qtunnel executable under test, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv(attackEnv) != "" {
		os.Exit(m.Run()) // the attack's child process runs no qtunnel
	}
	dir, err := os.MkdirTemp("", "qtunnel-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by all: one test runs the binary as an unprivileged user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "qtunnel")
	args := []string{"build", "-o", binary}
	// The processes run with the race detector too, unless asked not to.
	if os.Getenv("QTUNNEL_E2E_RACE") != "0" {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../server")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build qtunnel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running qtunnel process.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	stdout *testutil.SyncBuffer
	done   chan struct{}
	err    error
}

// start runs qtunnel with args and env (added to a minimal environment).
// A tunnel process gets -control=off unless args choose a control socket
// or a configuration file (which then must), so that tests running side by
// side do not compete for the default one.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	return startAs(t, nil, name, env, args...)
}

// startAs is start as another user (cred nil: as this process's user).
func startAs(t *testing.T, cred *syscall.Credential, name string, env []string, args ...string) *proc {
	t.Helper()
	return startBinary(t, binary, cred, name, env, args...)
}

// startBinary is startAs with another qtunnel executable.
func startBinary(t *testing.T, bin string, cred *syscall.Credential, name string, env []string, args ...string) *proc {
	t.Helper()
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && !slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "-control") || strings.HasPrefix(a, "-config")
	}) {
		args = append(args, "-control=off")
	}
	cmd := exec.Command(bin, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	// GORACE: the race runtime otherwise sleeps 1 s at every exit; any race
	// still fails the process (exit code 66).
	// STATE_DIRECTORY: a client keeps its session tickets there; a test
	// must not write them to the real /var/lib/qtunnel or ~/.local/state.
	home, state := t.TempDir(), t.TempDir()
	if cred != nil {
		home, state = userDir(t, cred), userDir(t, cred)
	}
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "STATE_DIRECTORY=" + state,
		"GORACE=atexit_sleep_ms=0 halt_on_error=1"}, env...)
	return run(t, name, cmd)
}

// run starts cmd as a proc that is killed when the test ends, its output
// logged if the test failed.
func run(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: cmd, stderr: &testutil.SyncBuffer{}, stdout: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr, p.cmd.Stdout = p.stderr, p.stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s (%s) stderr:\n%s", p.name, strings.Join(cmd.Args, " "), p.stderr)
		}
	})
	return p
}

// waitLog waits until the process's stderr matches pattern.
func (p *proc) waitLog(pattern string, timeout time.Duration) {
	p.t.Helper()
	re := regexp.MustCompile(pattern)
	ok := testutil.Eventually(timeout, func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		return re.MatchString(p.stderr.String())
	})
	if !ok || !re.MatchString(p.stderr.String()) {
		p.t.Fatalf("%s: no log line matching %q within %v; stderr:\n%s", p.name, pattern, timeout, p.stderr)
	}
}

// hasLog reports whether stderr matches pattern.
func (p *proc) hasLog(pattern string) bool {
	return regexp.MustCompile(pattern).MatchString(p.stderr.String())
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(timeout time.Duration) int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(timeout)
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("%s did not exit within %v", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// runQT runs qtunnel to completion and returns exit code, stdout, stderr.
func runQT(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	p := start(t, "qtunnel", env, args...)
	code := p.wait(30 * time.Second)
	return code, p.stdout.String(), p.stderr.String()
}

// freePort returns a loopback port free on TCP and UDP.
func freePort(t *testing.T) int { return testutil.FreePort(t) }

// secretFile writes a strong secret into a 0600 file and returns its path.
func secretFile(t *testing.T, value string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const strongSecret = "e2e-7f3c9a1d5b2e8f4a6c0d9e1b3a5f7c2d4e6a8b0c"

// tunnelSetup is a server and a client process in front of a backend.
type tunnelSetup struct {
	server, client *proc
	serverAddr     string
	clientAddr     string
	stateDir       string
	secretPath     string
	quic           bool
}

func modeFlag(quic bool) string {
	if quic {
		return "-quic=true"
	}
	return "-quic=false"
}

func modeName(quic bool) string {
	if quic {
		return "quic"
	}
	return "tcp"
}

// startServer starts (or restarts) the setup's server process.
func (s *tunnelSetup) startServer(t *testing.T, backend string) {
	t.Helper()
	s.server = start(t, "server", nil, "-listen="+s.serverAddr, "-backend="+backend,
		"-secret-file="+s.secretPath, modeFlag(s.quic), "-state-dir="+s.stateDir, "-log-level=debug")
	s.server.waitLog(`msg="server started"`, 20*time.Second)
}

// startTunnel starts a server in front of backend and a client in front of it.
func startTunnel(t *testing.T, quic bool, backend string) *tunnelSetup {
	t.Helper()
	s := &tunnelSetup{
		serverAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		clientAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		stateDir:   t.TempDir(),
		secretPath: secretFile(t, strongSecret),
		quic:       quic,
	}
	s.startServer(t, backend)
	s.client = start(t, "client", nil, "-listen="+s.clientAddr, "-backend="+s.serverAddr, "-clientmode=true",
		"-secret-file="+s.secretPath, modeFlag(quic), "-log-level=debug")
	s.client.waitLog(`msg="connected to server"`, 20*time.Second)
	return s
}

// chownAll gives paths to cred's user, for a process started as it.
func chownAll(t *testing.T, cred *syscall.Credential, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

// echoThrough opens a connection to addr and checks an echo of size bytes.
func echoThrough(t *testing.T, addr string, size int, seed uint64) {
	t.Helper()
	c, err := testutil.DialTCP(addr)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if err := testutil.EchoCheck(c, size, seed); err != nil {
		t.Fatalf("echo through %s: %v", addr, err)
	}
}

// refuses reports whether nothing accepts TCP connections at addr.
func refuses(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err != nil
}
