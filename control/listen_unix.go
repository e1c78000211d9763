//go:build unix

package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Listen serves the control socket at path (a Unix socket). Only the user
// the process runs as (its effective uid) may use it: the socket lives in
// a directory that must be that user's and not writable by others (Listen
// creates it with mode 0700 if missing), the socket itself is mode 0600,
// and every connection is checked with the kernel's peer credentials. A
// peer of another uid is answered "403 Forbidden" and closed; this holds
// for root too, which can only manage its own tunnels through this socket.
//
// A socket file left behind by a process that died is replaced; one that
// answers means another qtunnel runs, and Listen fails with an error
// matching ErrInUse. Closing the listener removes the socket file.
func Listen(path string) (net.Listener, error) {
	return listen(path, os.Geteuid())
}

// listen is Listen for the given uid; tests pass another one to see the
// refusal without a second user.
func listen(path string, euid int) (net.Listener, error) {
	if !peerCredSupported {
		return nil, errors.New("control: cannot check who connects to a Unix socket on this system, so the control API is not available")
	}
	path = filepath.Clean(path)
	if limit := len(unix.RawSockaddrUnix{}.Path) - 1; len(path) > limit {
		return nil, fmt.Errorf("control: socket path %s is %d bytes long, longer than the %d the system allows", path, len(path), limit)
	}
	if err := prepareDir(filepath.Dir(path), os.Geteuid()); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", path, err)
	}
	// The directory already keeps others out; 0600 is the second lock in
	// case someone loosens the directory.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("control: restrict control socket: %w", err)
	}
	return &peerListener{ln: ln, euid: euid, sem: make(chan struct{}, maxRefusing)}, nil
}

// prepareDir makes sure dir exists, belongs to euid and is not writable by
// group or others: whoever can write the directory can replace the socket
// with their own and receive what the CLI sends, the secret included.
func prepareDir(dir string, euid int) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("control: create socket directory: %w", err)
	}
	// Mkdir, not MkdirAll, for the directory itself: it fails if someone
	// made it first, and then the checks below look at theirs.
	switch err := os.Mkdir(dir, 0o700); {
	case err == nil:
		// Mkdir applies the umask; set the mode we mean.
		if err := os.Chmod(dir, 0o700); err != nil { // #nosec G302 -- a directory: 0700 is owner-only, and it needs x to be entered
			return fmt.Errorf("control: restrict socket directory: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("control: create socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("control: socket directory: %w", err)
	}
	return checkDir(dir, fi, euid)
}

func checkDir(dir string, fi fs.FileInfo, euid int) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("control: socket directory %s is a symbolic link; give a real directory", dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("control: socket directory %s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("control: cannot tell who owns %s", dir)
	}
	if int(st.Uid) != euid {
		return fmt.Errorf("control: socket directory %s belongs to uid %d, not to this user (uid %d); another user could swap the socket, so it is refused", dir, st.Uid, euid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("control: socket directory %s is writable by other users (mode %04o); another user could swap the socket, so it is refused: use a directory only you can write to", dir, fi.Mode().Perm())
	}
	return nil
}

// ownedByMe reports whether dir is a directory that belongs to euid.
func ownedByMe(dir string, euid int) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == euid
}

// removeStale removes a socket file nobody answers on. Two processes
// starting in the same instant could both find it stale; the later bind
// then wins the path, which is no worse than a crash.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control: %s exists and is not a socket; remove it or choose another path", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return &kindError{kind: ErrInUse, msg: "control: another qtunnel is already running with control socket " + path}
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		// Something listens but its queue is full: a live process.
		return &kindError{
			kind:  ErrInUse,
			msg:   fmt.Sprintf("control: control socket %s is in use but does not answer; if no qtunnel is running, remove it", path),
			cause: err,
		}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control: control socket %s exists but cannot be probed (%w); if no qtunnel is running, remove it", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control: remove stale control socket: %w", err)
	}
	return nil
}

// Dial connects to the control socket at path and checks that the process
// serving it runs as the same user: a socket in a shared directory could
// belong to someone else waiting for the CLI to send it the secret.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok { // cannot happen with "unix"; be safe
		_ = c.Close()
		return nil, fmt.Errorf("control: unexpected connection type %T", c)
	}
	uid, err := peerUID(uc)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("control: check who serves %s: %w", path, err)
	}
	if euid := os.Geteuid(); uid != euid {
		_ = c.Close()
		return nil, &kindError{
			kind: ErrForbidden,
			msg:  fmt.Sprintf("control socket %s is served by uid %d, not by this user (uid %d); not talking to it", path, uid, euid),
		}
	}
	return c, nil
}

func currentPathEnv() (pathEnv, error) {
	euid := os.Geteuid()
	return pathEnv{
		goos:      runtime.GOOS,
		euid:      euid,
		getenv:    os.Getenv,
		tempDir:   os.TempDir(),
		ownedByMe: func(dir string) bool { return ownedByMe(dir, euid) },
	}, nil
}

// Refusals: how long one may take, and how many may run at once (beyond
// that, connections are closed without an answer, so another user cannot
// pile up goroutines).
const (
	refuseTimeout = time.Second
	maxRefusing   = 16
)

const (
	forbiddenBody = "this control socket belongs to another user\n"
	uncheckedBody = "could not check which user is connecting to this control socket\n"
)

// peerListener returns from Accept only connections whose peer runs as
// euid; others get a 403 in a goroutine of their own so that a slow peer
// cannot hold up Accept.
type peerListener struct {
	ln   *net.UnixListener
	euid int
	sem  chan struct{}

	mu       sync.Mutex
	closed   bool
	refusing sync.WaitGroup
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.ln.AcceptUnix()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && uid == l.euid {
			return c, nil
		}
		body := forbiddenBody
		if err != nil {
			body = uncheckedBody
		}
		l.refuse(c, body)
	}
}

func (l *peerListener) refuse(c *net.UnixConn, body string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return
	}
	select {
	case l.sem <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	l.refusing.Add(1)
	go func() {
		defer l.refusing.Done()
		defer func() { <-l.sem }()
		writeRefusal(c, body)
	}()
}

// writeRefusal answers 403 and closes c within refuseTimeout. It waits
// for the request header first: an HTTP client drops an answer that comes
// before its request. After answering it drains what remains, so that the
// peer's write does not fail before it gets to read the answer.
func writeRefusal(c *net.UnixConn, body string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseTimeout))
	buf := make([]byte, maxHeaderBytes)
	for n := 0; n < len(buf) && !bytes.Contains(buf[:n], []byte("\r\n\r\n")); {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return
		}
	}
	resp := fmt.Sprintf("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	if _, err := io.WriteString(c, resp); err != nil {
		return
	}
	_ = c.CloseWrite()
	_, _ = io.Copy(io.Discard, io.LimitReader(c, maxBodyBytes))
}

// Close stops accepting, removes the socket file and waits for refusals
// in progress (each ends within refuseTimeout).
func (l *peerListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	err := l.ln.Close()
	l.refusing.Wait()
	return err
}

func (l *peerListener) Addr() net.Addr { return l.ln.Addr() }

// peerUID is the uid of the process at the other end of c, as the kernel
// recorded it when the connection was made.
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	uid := -1
	var credErr error
	if err := raw.Control(func(fd uintptr) { uid, credErr = peerUIDOf(int(fd)) }); err != nil {
		return -1, err
	}
	return uid, credErr
}
