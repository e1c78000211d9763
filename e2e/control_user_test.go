package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

// nobody is the unprivileged user the ownership tests run processes as.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// userDir makes a directory that only cred's user can use, in a place that
// user can reach (t.TempDir's parent is root's alone).
func userDir(t *testing.T, cred *syscall.Credential) string {
	t.Helper()
	d, err := os.MkdirTemp("", "qtunnel-e2e-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	chownAll(t, cred, d)
	return d
}

// TestControlSocketRefusesOtherUser: only the user who runs a qtunnel
// may use its control socket; root is refused by a user's, and a user by
// root's, even when file permissions would let them in.
func TestControlSocketRefusesOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run processes as two users")
	}
	backend := testutil.StartEchoBackend(t)
	secretPath := secretFile(t, strongSecret)
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	server := start(t, "server", nil, "-listen="+srvAddr, "-backend="+backend.Addr(), "-quic=true",
		"-secret-file="+secretPath, "-state-dir="+t.TempDir())
	server.waitLog(`msg="server started"`, 20*time.Second)

	// A client of root's.
	rootDir := filepath.Join(t.TempDir(), "ctl")
	rootCtl := filepath.Join(rootDir, "client.sock")
	rootClient := start(t, "root client", nil, fmt.Sprintf("-listen=127.0.0.1:%d", freePort(t)), "-backend="+srvAddr,
		"-clientmode=true", "-quic=true", "-secret-file="+secretPath, "-control="+rootCtl)
	rootClient.waitLog(`msg="connected to server"`, 20*time.Second)
	if st := statusJSON(t, nil, "-control="+rootCtl); st.Role != control.RoleClient {
		t.Fatalf("root's own status: %+v", st)
	}
	refused := regexp.MustCompile(`belongs to another user|not by this user`)
	// The file system keeps nobody out first (the directory is 0700) ...
	code, _, errOut := runAs(t, nobody, "status", "-control="+rootCtl)
	if code != 1 || !refused.MatchString(errOut) {
		t.Errorf("nobody's status of root's socket (0700 directory): exit %d, %q; want 1 and a refusal", code, errOut)
	}
	// ... and with the permissions opened, the peer check still does.
	if err := os.Chmod(filepath.Dir(rootDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(rootDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(rootCtl, 0o777); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runAs(t, nobody, "status", "-control="+rootCtl)
	if code != 1 || !refused.MatchString(errOut) {
		t.Errorf("nobody's status of root's socket (opened permissions): exit %d, %q; want 1 and the peer check's refusal", code, errOut)
	}
	code, _, errOut = runAs(t, nobody, "down", "-control="+rootCtl)
	if code != 1 || !refused.MatchString(errOut) {
		t.Errorf("nobody's down of root's client: exit %d, %q", code, errOut)
	}
	if st := statusJSON(t, nil, "-control="+rootCtl); st.State != control.StateConnected {
		t.Errorf("root's client after nobody's attempts: %s; want still connected", st.State)
	}

	// A client of nobody's: root is refused, nobody is served.
	dir := userDir(t, nobody)
	userSecret := filepath.Join(dir, "secret")
	if err := os.WriteFile(userSecret, []byte(strongSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	chownAll(t, nobody, userSecret)
	userCtl := filepath.Join(dir, "run", "client.sock")
	userClient := startAs(t, nobody, "nobody's client", nil, fmt.Sprintf("-listen=127.0.0.1:%d", freePort(t)), "-backend="+srvAddr,
		"-clientmode=true", "-quic=true", "-secret-file="+userSecret, "-control="+userCtl)
	userClient.waitLog(`msg="connected to server"`, 20*time.Second)
	code, out, errOut := runAs(t, nobody, "status", "-json", "-control="+userCtl)
	if code != 0 || !strings.Contains(out, `"state": "connected"`) {
		t.Errorf("nobody's own status: exit %d, %q %q", code, out, errOut)
	}
	code, _, errOut = runQT(t, nil, "status", "-control="+userCtl)
	if code != 1 || !refused.MatchString(errOut) {
		t.Errorf("root's status of nobody's socket: exit %d, %q; want 1 and a refusal", code, errOut)
	}
	code, _, errOut = runQT(t, nil, "down", "-control="+userCtl)
	if code != 1 || !refused.MatchString(errOut) {
		t.Errorf("root's down of nobody's client: exit %d, %q", code, errOut)
	}
	// The CLI stops at its own check of who serves the socket; the
	// server's check is what keeps out a client that skips that.
	if resp := rawRequest(t, userCtl, "POST /v1/stop"); !strings.HasPrefix(resp, "HTTP/1.1 403") || !strings.Contains(resp, "another user") {
		t.Errorf("root's raw POST /v1/stop to nobody's socket: %q; want 403", resp)
	}
	if st := statusJSONAs(t, nobody, userCtl); st.State != control.StateConnected {
		t.Errorf("nobody's client after root's attempts: %s; want still connected", st.State)
	}
}

// rawRequest sends one HTTP request line to a control socket without the
// control client's checks, and returns the answer.
func rawRequest(t *testing.T, path, requestLine string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s HTTP/1.1\r\nHost: qtunnel\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", requestLine); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// statusJSONAs is statusJSON run as cred's user.
func statusJSONAs(t *testing.T, cred *syscall.Credential, path string) control.Status {
	t.Helper()
	code, out, errOut := runAs(t, cred, "status", "-json", "-control="+path)
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status as %d: exit %d %q %q", cred.Uid, code, out, errOut)
	}
	return st
}

// runAs runs a qtunnel command as cred's user.
func runAs(t *testing.T, cred *syscall.Credential, args ...string) (int, string, string) {
	t.Helper()
	p := startAs(t, cred, "qtunnel as "+fmt.Sprint(cred.Uid), nil, args...)
	code := p.wait(30 * time.Second)
	return code, p.stdout.String(), p.stderr.String()
}

// TestDefaultControlPathUpDown: with no -control, the client and the
// server of one user each serve their own default socket, qtunnel status
// (and -server) finds them, down closes the forward's port, up opens it
// again, and an event stream reports both changes.
func TestDefaultControlPathUpDown(t *testing.T) {
	backend := testutil.StartEchoBackend(t)
	secretPath := secretFile(t, strongSecret)
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	fwd := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// "-control=" is the default path; the same environment for every
	// process, so that they compute the same one.
	env := []string{"XDG_RUNTIME_DIR=" + t.TempDir(), "TMPDIR=" + t.TempDir()}
	server := start(t, "server", env, "-listen="+srvAddr, "-backend="+backend.Addr(), "-quic=true",
		"-secret-file="+secretPath, "-state-dir="+t.TempDir(), "-control=")
	server.waitLog(`msg="control socket"`, 20*time.Second)
	client := start(t, "client", env, "-listen="+fwd, "-backend="+srvAddr, "-clientmode=true", "-quic=true",
		"-secret-file="+secretPath, "-control=")
	client.waitLog(`msg="connected to server"`, 20*time.Second)
	if client.hasLog("no control socket") || server.hasLog("no control socket") {
		t.Fatalf("a default control socket was not available:\nserver: %s\nclient: %s", server.stderr, client.stderr)
	}

	if st := statusJSON(t, env); st.Role != control.RoleClient || st.State != control.StateConnected {
		t.Fatalf("qtunnel status: role %s, state %s; want the connected client", st.Role, st.State)
	}
	if st := statusJSON(t, env, "-server"); st.Role != control.RoleServer || st.ActiveConnections != 1 {
		t.Fatalf("qtunnel status -server: role %s, %d connections; want the server with one client", st.Role, st.ActiveConnections)
	}
	code, out, _ := runQT(t, env, "status")
	if code != 0 || !strings.Contains(out, "connected") || !strings.Contains(out, srvAddr) {
		t.Errorf("qtunnel status (for people): exit %d\n%s", code, out)
	}

	watch := start(t, "watch", env, "status", "-watch", "-json")
	waitOutput(t, watch, `"type":"stats"`)

	if code, out, errOut := runQT(t, env, "down"); code != 0 {
		t.Fatalf("qtunnel down: exit %d %q %q", code, out, errOut)
	}
	if st := statusJSON(t, env); st.State != control.StateOff {
		t.Errorf("after down: state %s; want off", st.State)
	}
	if !refuses(fwd) {
		t.Error("the forward still accepts after qtunnel down")
	}
	waitOutput(t, watch, `"type":"state".*"state":"off"`)

	if code, out, errOut := runQT(t, env, "up"); code != 0 {
		t.Fatalf("qtunnel up: exit %d %q %q", code, out, errOut)
	}
	waitOutput(t, watch, `"type":"state".*"state":"connected"`)
	echoThrough(t, fwd, 256<<10, 3)
}

// waitOutput waits until some line of p's stdout matches pattern.
func waitOutput(t *testing.T, p *proc, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	match := func() bool {
		sc := bufio.NewScanner(strings.NewReader(p.stdout.String()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if re.MatchString(sc.Text()) {
				return true
			}
		}
		return false
	}
	if !testutil.Eventually(10*time.Second, match) {
		t.Fatalf("%s: no output line matching %q; stdout:\n%s\nstderr:\n%s", p.name, pattern, p.stdout, p.stderr)
	}
}

// TestShareAndImport: the server's share link, imported by a client,
// gives a working client configuration that holds no secret itself.
func TestShareAndImport(t *testing.T) {
	dir := t.TempDir()
	backend := testutil.StartEchoBackend(t)
	secretPath := secretFile(t, strongSecret)
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	stateDir := t.TempDir()
	serverCfg := writeFile(t, dir, "server.yaml", fmt.Sprintf("mode: server\ntransport: quic\nlisten: %q\nsecret-file: %s\nstate-dir: %s\nbackend: %s\n",
		srvAddr, secretPath, stateDir, backend.Addr()))
	code, out, errOut := runQT(t, nil, "share", "-config="+serverCfg, "-address="+srvAddr)
	if code != 0 {
		t.Fatalf("qtunnel share: exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "CONTAINS THE SECRET") {
		t.Errorf("qtunnel share does not warn that the link holds the secret: %q", errOut)
	}
	link, qr, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(link, "qtunnel://") || !strings.ContainsAny(qr, "█▀▄") {
		t.Fatalf("qtunnel share printed %q", out)
	}
	server := start(t, "server", nil, "-config="+serverCfg, "-control=off")
	server.waitLog(`msg="server started"`, 20*time.Second)

	clientCfg := filepath.Join(dir, "client", "client.yaml")
	fwd := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	code, out, errOut = runQT(t, nil, "import", "-config="+clientCfg, "-listen="+fwd, link)
	if code != 0 {
		t.Fatalf("qtunnel import: exit %d: %s %s", code, out, errOut)
	}
	text, err := os.ReadFile(clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(text), strongSecret) {
		t.Errorf("the imported configuration holds the secret:\n%s", text)
	}
	fi, err := os.Stat(filepath.Join(dir, "client", "secret"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the imported secret file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if code, out, errOut := runQT(t, nil, "-check-config="+clientCfg); code != 0 {
		t.Fatalf("-check-config of the imported file: exit %d %s %s", code, out, errOut)
	}
	client := start(t, "client", nil, "-config="+clientCfg, "-control=off")
	client.waitLog(`msg="connected to server"`, 20*time.Second)
	if !client.hasLog(`server_verified_by="pin`) {
		t.Errorf("the imported client does not pin the server's certificate:\n%s", client.stderr)
	}
	echoThrough(t, fwd, 1<<20, 5)
}

// TestCheckConfig: -check-config prints every error with its line, or
// what a good file sets up.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", "mode: client\nsever: example.com:443\nforwards:\n  - listen: 127.0.0.1:70000\n")
	code, _, errOut := runQT(t, nil, "-check-config="+bad)
	for _, want := range []string{"bad.yaml:2: sever: unknown key; did you mean server?", "bad.yaml:4: forwards[0].listen"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("-check-config of a bad file: stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code != 1 {
		t.Errorf("-check-config of a bad file: exit %d, want 1", code)
	}
	good := writeFile(t, dir, "good.yaml", "mode: server\nlisten: \":443\"\ntargets:\n  db: 10.0.0.5:5432\ndefault-target: db\n")
	code, out, errOut := runQT(t, nil, "-check-config="+good)
	if code != 0 || !strings.Contains(out, "target db: 10.0.0.5:5432 (default)") {
		t.Errorf("-check-config of a good file: exit %d\n%s%s", code, out, errOut)
	}
}
