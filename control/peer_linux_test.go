package control

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const nobody = 65534

// TestOtherUserRefused runs a second process as uid/gid 65534 (nobody)
// and checks, in both directions, that a user other than the socket's
// owner is refused while the owner gets through. It needs root to switch
// users.
func TestOtherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper process as another user (uid 65534); the same refusal path is covered by TestPeerCheckRefuses")
	}
	exe := copyTestBinary(t)
	base := shortTempDir(t)
	if err := os.Chmod(base, 0o755); err != nil { // nobody must reach into it
		t.Fatal(err)
	}

	t.Run("server root, directory closed", func(t *testing.T) {
		b := newFakeBackend()
		path := filepath.Join(base, "a1", "client.sock")
		ln, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		s := serveOn(t, b, ln, path)
		if err := clientStatus(s.path); err != nil {
			t.Fatalf("same user: %v", err)
		}
		out := runDialHelper(t, exe, s.path)
		// The 0700 directory stops nobody before the socket.
		if !strings.Contains(out["raw"], "permission denied") {
			t.Errorf("raw connect as nobody: %s, want permission denied", out["raw"])
		}
		if !strings.HasPrefix(out["client"], "forbidden: ") {
			t.Errorf("Client as nobody: %s, want forbidden", out["client"])
		}
	})

	t.Run("server root, socket open", func(t *testing.T) {
		b := newFakeBackend()
		path := filepath.Join(base, "a2", "client.sock")
		ln, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		s := serveOn(t, b, ln, path)
		// Open the file permissions, so that only the peer-credential
		// check stands in the way.
		if err := os.Chmod(filepath.Dir(s.path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(s.path, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := clientStatus(s.path); err != nil {
			t.Fatalf("same user: %v", err)
		}
		out := runDialHelper(t, exe, s.path)
		raw, err := strconv.Unquote(out["raw"])
		if err != nil {
			t.Fatalf("raw: %s", out["raw"])
		}
		if !strings.HasPrefix(raw, "HTTP/1.1 403 Forbidden\r\n") || !strings.HasSuffix(raw, "\r\n\r\nthis control socket belongs to another user\n") {
			t.Errorf("raw request as nobody got %q, want the 403", raw)
		}
		// The Client refuses even earlier: the server is not its user's.
		if want := "forbidden: control socket " + s.path + " is served by uid 0"; !strings.HasPrefix(out["client"], want) {
			t.Errorf("Client as nobody: %s, want %s...", out["client"], want)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.starts != 0 || len(b.secrets) != 0 {
			t.Error("the refused user reached the backend")
		}
	})

	t.Run("server nobody", func(t *testing.T) {
		dir := filepath.Join(base, "b")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "server.sock")
		h := startServeHelper(t, exe, path)
		if got := h.line(t); got != "self: ok" {
			t.Fatalf("nobody to its own server: %s", got)
		}
		// Root passes the file permissions; the peer check stops it.
		if raw := rawRequest(path); !strings.HasPrefix(raw, "HTTP/1.1 403 Forbidden\r\n") ||
			!strings.HasSuffix(raw, "\r\n\r\nthis control socket belongs to another user\n") {
			t.Errorf("raw request as root got %q, want the 403", raw)
		}
		err := clientStatus(path)
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "served by uid 65534") {
			t.Errorf("Client as root: %v, want ErrForbidden", err)
		}
		h.stop(t)
	})
}

// copyTestBinary copies the running test binary where nobody can run it:
// go test builds it in a 0700 directory.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := shortTempDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	exe := filepath.Join(dir, "control.test")
	dst, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return exe
}

func helperCmd(ctx context.Context, exe, mode, path string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = []string{helperEnv + "=" + mode, helperPathEnv + "=" + path, "PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Groups empty: drop root's supplementary groups too.
		Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}},
	}
	return cmd
}

// runDialHelper runs the "dial" helper as nobody and returns its output
// lines by prefix.
func runDialHelper(t *testing.T, exe, path string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := helperCmd(ctx, exe, "dial", path).CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	lines := make(map[string]string)
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		lines[k] = v
	}
	t.Logf("helper as nobody:\n%s", out)
	return lines
}

// serveHelper is the "serve" helper running as nobody.
type serveHelper struct {
	cmd   *exec.Cmd
	stdin io.Closer
	lines chan string
	read  chan struct{} // closed when stdout is drained
}

func startServeHelper(t *testing.T, exe, path string) *serveHelper {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := helperCmd(ctx, exe, "serve", path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &serveHelper{cmd: cmd, stdin: stdin, lines: make(chan string, 16), read: make(chan struct{})}
	go func() {
		defer close(h.read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { h.stop(t) })
	if got := h.line(t); got != "ready" {
		t.Fatalf("serve helper: %s", got)
	}
	return h
}

func (h *serveHelper) line(t *testing.T) string {
	t.Helper()
	select {
	case l := <-h.lines:
		return l
	case <-h.read:
		return "(helper exited)"
	case <-time.After(20 * time.Second):
		t.Fatal("no output from the serve helper within 20s")
		return ""
	}
}

// stop closes the helper's stdin, which makes it shut down, and waits.
func (h *serveHelper) stop(t *testing.T) {
	t.Helper()
	if h.cmd.ProcessState != nil {
		return
	}
	h.stdin.Close()
	<-h.read // Wait must not run before stdout is drained
	if err := h.cmd.Wait(); err != nil {
		t.Errorf("serve helper: %v", err)
	}
}
