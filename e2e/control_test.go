package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

// namedBackend answers every connection with its name and a newline,
// then echoes: a test sees which target a forward reached.
func namedBackend(t *testing.T, name string) *testutil.Backend {
	return testutil.StartBackend(t, func(c *net.TCPConn) {
		if _, err := c.Write([]byte(name + "\n")); err != nil {
			return
		}
		testutil.Echo(c)
	})
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// statusJSON runs `qtunnel status -json` against a control socket.
func statusJSON(t *testing.T, env []string, args ...string) control.Status {
	t.Helper()
	code, out, errOut := runQT(t, env, append([]string{"status", "-json"}, args...)...)
	if code != 0 {
		t.Fatalf("qtunnel status -json %v: exit %d: %s", args, code, errOut)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("qtunnel status -json: %v\n%s", err, out)
	}
	return st
}

// scrape reads a /metrics page and returns each sample line's value by
// its name and labels as printed ("name{a=\"b\"}").
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// readLine reads the backend's name line from a fresh connection.
func readLine(c net.Conn) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			return string(b), err
		}
		if one[0] == '\n' {
			return string(b), nil
		}
		b = append(b, one[0])
	}
}

// TestNamedTargetsOneConnection: a client with three forwards reaches
// three named targets over one QUIC connection, and a fourth forward to a
// target the server does not allow is refused with a clear error.
func TestNamedTargetsOneConnection(t *testing.T) {
	dir := t.TempDir()
	secretPath := secretFile(t, strongSecret)
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srvCtl, cliCtl := filepath.Join(dir, "s", "ctl.sock"), filepath.Join(dir, "c", "ctl.sock")
	names := []string{"alpha", "beta", "gamma"}
	targets := ""
	for _, n := range names {
		targets += fmt.Sprintf("  %s: %s\n", n, namedBackend(t, n).Addr())
	}
	serverCfg := writeFile(t, dir, "server.yaml", fmt.Sprintf(`mode: server
transport: quic
listen: %q
secret-file: %s
state-dir: %s
control: %s
targets:
%s`, srvAddr, secretPath, t.TempDir(), srvCtl, targets))
	forwards := ""
	ports := map[string]string{}
	for _, n := range append(names, "nope") {
		ports[n] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		forwards += fmt.Sprintf("  - listen: %s\n    target: %s\n", ports[n], n)
	}
	clientCfg := writeFile(t, dir, "client.yaml", fmt.Sprintf(`mode: client
transport: quic
server: %s
secret-file: %s
control: %s
forwards:
%s`, srvAddr, secretPath, cliCtl, forwards))

	server := start(t, "server", nil, "-config="+serverCfg)
	server.waitLog(`msg="server started"`, 20*time.Second)
	client := start(t, "client", nil, "-config="+clientCfg, "-log-level=debug")
	client.waitLog(`msg="connected to server"`, 20*time.Second)

	for i, n := range names {
		c, err := testutil.DialTCP(ports[n])
		if err != nil {
			t.Fatal(err)
		}
		got, err := readLine(c)
		if err != nil || got != n {
			t.Fatalf("forward %s reached %q (err %v), want target %s", n, got, err, n)
		}
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		if err := testutil.EchoCheck(c, 1<<20, uint64(i+1)); err != nil {
			t.Fatalf("forward %s: %v", n, err)
		}
		c.Close()
	}

	// The unknown target: the local connection is closed without data,
	// and both ends say why.
	c, err := testutil.DialTCP(ports["nope"])
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("hello"))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 16)); err == nil || n > 0 {
		t.Fatalf("forward to a target the server does not allow: read %d bytes, err %v; want the connection closed", n, err)
	}
	c.Close()
	client.waitLog(`server could not connect it.*not a target this server allows`, 10*time.Second)
	server.waitLog(`stream refused: target not allowed" .*target=nope`, 10*time.Second)

	cs := statusJSON(t, nil, "-control="+cliCtl)
	var nope control.ForwardStatus
	for _, f := range cs.Forwards {
		if f.Name == "nope" {
			nope = f
		}
	}
	if nope.Failed != 1 || !strings.Contains(nope.LastError, `"nope" is not a target this server allows`) {
		t.Errorf("client status of forward nope: %+v; want 1 failed with the server's reason", nope)
	}
	if cs.RelayErrors["not_allowed"] != 1 {
		t.Errorf("client relay errors %v; want not_allowed 1", cs.RelayErrors)
	}

	ss := statusJSON(t, nil, "-control="+srvCtl)
	if ss.Handshakes != 1 || ss.ActiveConnections != 1 || len(ss.Connections) != 1 {
		t.Errorf("server saw %d handshakes, %d open connections (%d listed); want one QUIC connection for all forwards", ss.Handshakes, ss.ActiveConnections, len(ss.Connections))
	}
	if cs.Connects != 1 {
		t.Errorf("client made %d connections; want 1", cs.Connects)
	}
	for _, tg := range ss.Targets {
		if tg.Total != 1 || tg.BytesUp != 1<<20 || tg.BytesDown != 1<<20+int64(len(tg.Name))+1 {
			t.Errorf("server target %s: %+v; want 1 stream, 1 MiB up, 1 MiB and the name down", tg.Name, tg)
		}
	}
	if ss.RelayErrors["not_allowed"] != 1 {
		t.Errorf("server relay errors %v; want not_allowed 1", ss.RelayErrors)
	}
}

// TestStatusAndMetricsAgree: during a transfer, qtunnel status -json
// reports the bytes the test moved (within 1 %), and /metrics says the same.
func TestStatusAndMetricsAgree(t *testing.T) {
	dir := t.TempDir()
	secretPath := secretFile(t, strongSecret)
	backend := testutil.StartEchoBackend(t)
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	fwd := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cliCtl := filepath.Join(dir, "c", "ctl.sock")
	srvMetrics, cliMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	server := start(t, "server", nil, "-listen="+srvAddr, "-backend="+backend.Addr(), "-quic=true",
		"-secret-file="+secretPath, "-state-dir="+t.TempDir(), "-metrics="+srvMetrics)
	server.waitLog(`msg="server started"`, 20*time.Second)
	client := start(t, "client", nil, "-listen="+fwd, "-backend="+srvAddr, "-clientmode=true", "-quic=true",
		"-secret-file="+secretPath, "-control="+cliCtl, "-metrics="+cliMetrics)
	client.waitLog(`msg="connected to server"`, 20*time.Second)

	c, err := testutil.DialTCP(fwd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	const chunk = 1 << 20
	moved := 0
	buf := make([]byte, chunk)
	back := make([]byte, chunk)
	// 24 MiB in echoed 1 MiB steps; the connection stays open while the
	// status is read, so this is a transfer in progress.
	for range 24 {
		for i := range buf {
			buf[i] = byte(rand.Uint32())
		}
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, back); err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(buf) != sha256.Sum256(back) {
			t.Fatal("echo differs")
		}
		moved += chunk
	}
	st := statusJSON(t, nil, "-control="+cliCtl)
	m := scrape(t, cliMetrics)
	sm := scrape(t, srvMetrics)
	within := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 0.01*want {
			t.Errorf("%s = %.0f; want %.0f within 1 %%", what, got, want)
		}
	}
	within("status bytes_up", float64(st.BytesUp), float64(moved))
	within("status bytes_down", float64(st.BytesDown), float64(moved))
	if st.ActiveStreams != 1 || st.State != control.StateConnected {
		t.Errorf("status: %d active streams, state %s; want 1, connected", st.ActiveStreams, st.State)
	}
	within(`client qtunnel_transferred_bytes_total{direction="up"}`, m[`qtunnel_transferred_bytes_total{direction="up"}`], float64(st.BytesUp))
	within(`client qtunnel_transferred_bytes_total{direction="down"}`, m[`qtunnel_transferred_bytes_total{direction="down"}`], float64(st.BytesDown))
	within(`client qtunnel_forward_transferred_bytes_total{direction="up",forward="default"}`, m[`qtunnel_forward_transferred_bytes_total{direction="up",forward="default"}`], float64(moved))
	within(`server qtunnel_transferred_bytes_total{direction="up"}`, sm[`qtunnel_transferred_bytes_total{direction="up"}`], float64(moved))
	if m["qtunnel_streams_active"] != 1 || m["qtunnel_up"] != 1 || sm["qtunnel_connections_active"] != 1 || sm["qtunnel_handshakes_total"] != 1 {
		t.Errorf("metrics: client streams_active %v up %v, server connections_active %v handshakes_total %v; want 1 each",
			m["qtunnel_streams_active"], m["qtunnel_up"], sm["qtunnel_connections_active"], sm["qtunnel_handshakes_total"])
	}
	if m["qtunnel_rtt_seconds"] <= 0 || m["go_goroutines"] <= 0 {
		t.Errorf("metrics: rtt %v, go_goroutines %v; want both > 0", m["qtunnel_rtt_seconds"], m["go_goroutines"])
	}
	if st.RTTMillis <= 0 || st.PacketsSent == 0 {
		t.Errorf("status: rtt %v ms, %d packets sent; want both measured", st.RTTMillis, st.PacketsSent)
	}
}

// TestReloadAddsForward: SIGHUP adds a forward while a transfer through
// another one goes on and completes intact; a second reload removes it.
func TestReloadAddsForward(t *testing.T) {
	dir := t.TempDir()
	secretPath := secretFile(t, strongSecret)
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	alpha, beta := namedBackend(t, "alpha"), namedBackend(t, "beta")
	serverCfg := writeFile(t, dir, "server.yaml", fmt.Sprintf(`mode: server
transport: quic
listen: %q
secret-file: %s
state-dir: %s
targets:
  alpha: %s
  beta: %s
`, srvAddr, secretPath, t.TempDir(), alpha.Addr(), beta.Addr()))
	server := start(t, "server", nil, "-config="+serverCfg, "-control=off")
	server.waitLog(`msg="server started"`, 20*time.Second)

	pa, pb := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cliCtl := filepath.Join(dir, "c", "ctl.sock")
	clientText := func(forwards string) string {
		return fmt.Sprintf("mode: client\ntransport: quic\nserver: %s\nsecret-file: %s\ncontrol: %s\nforwards:\n%s", srvAddr, secretPath, cliCtl, forwards)
	}
	one := fmt.Sprintf("  - listen: %s\n    target: alpha\n", pa)
	two := one + fmt.Sprintf("  - listen: %s\n    target: beta\n", pb)
	clientCfg := writeFile(t, dir, "client.yaml", clientText(one))
	client := start(t, "client", nil, "-config="+clientCfg)
	client.waitLog(`msg="connected to server"`, 20*time.Second)
	if !refuses(pb) {
		t.Fatal("forward beta accepts before it is configured")
	}

	// A paced transfer through alpha, about 3 s long.
	c, err := testutil.DialTCP(pa)
	if err != nil {
		t.Fatal(err)
	}
	if name, err := readLine(c); err != nil || name != "alpha" {
		t.Fatalf("alpha: %q %v", name, err)
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	transfer := make(chan error, 1)
	go func() { transfer <- testutil.PacedEcho(c, 48<<20, 256<<10, 15*time.Millisecond) }()

	time.Sleep(500 * time.Millisecond)
	writeFile(t, dir, "client.yaml", clientText(two))
	if err := client.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	client.waitLog(`msg="configuration reloaded".*forward added: beta`, 10*time.Second)
	cb, err := testutil.DialTCP(pb)
	if err != nil {
		t.Fatalf("forward beta after reload: %v", err)
	}
	if name, err := readLine(cb); err != nil || name != "beta" {
		t.Fatalf("beta after reload reached %q (%v)", name, err)
	}
	_ = cb.SetDeadline(time.Now().Add(time.Minute))
	if err := testutil.EchoCheck(cb, 1<<20, 7); err != nil {
		t.Fatalf("beta: %v", err)
	}
	cb.Close()
	select {
	case err := <-transfer:
		t.Fatalf("the transfer through alpha ended before the reload was checked (err %v): make it longer", err)
	default:
	}
	if err := <-transfer; err != nil {
		t.Fatalf("transfer through alpha across the reload: %v", err)
	}
	c.Close()

	// Removing beta through the control API's reload closes its port and
	// leaves alpha alone.
	writeFile(t, dir, "client.yaml", clientText(one))
	code, out, errOut := runQT(t, nil, "reload", "-control="+cliCtl)
	if code != 0 || !strings.Contains(out, "forward removed: beta") {
		t.Fatalf("qtunnel reload: exit %d, %q %q", code, out, errOut)
	}
	if !refuses(pb) {
		t.Error("forward beta still accepts after it was removed")
	}
	ca, err := testutil.DialTCP(pa)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	if name, err := readLine(ca); err != nil || name != "alpha" {
		t.Fatalf("alpha after the second reload: %q %v", name, err)
	}

	// A broken file is refused with its line, and the running forwards stay.
	writeFile(t, dir, "client.yaml", clientText(one)+"  - listen: 127.0.0.1:99999\n")
	code, _, errOut = runQT(t, nil, "reload", "-control="+cliCtl)
	if code != 1 || !strings.Contains(errOut, "client.yaml:") || !strings.Contains(errOut, "listen") {
		t.Errorf("reload of a broken file: exit %d, stderr %q; want exit 1 naming the file, line and field", code, errOut)
	}
	st := statusJSON(t, nil, "-control="+cliCtl)
	if len(st.Forwards) != 1 || st.Forwards[0].Target != "alpha" {
		t.Errorf("forwards after a refused reload: %+v", st.Forwards)
	}
}

// TestSetSecretInMemory: a client with the wrong secret shows the error
// state in plain words; qtunnel set-secret gives it the right one in
// memory (its file stays as it was) and it connects.
func TestSetSecretInMemory(t *testing.T) {
	dir := t.TempDir()
	backend := testutil.StartEchoBackend(t)
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	fwd := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctl := filepath.Join(dir, "c", "ctl.sock")
	server := start(t, "server", nil, "-listen="+srvAddr, "-backend="+backend.Addr(), "-quic=true",
		"-secret-file="+secretFile(t, strongSecret), "-state-dir="+t.TempDir())
	server.waitLog(`msg="server started"`, 20*time.Second)
	const wrong = "e2e-wrong-1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d"
	wrongPath := secretFile(t, wrong)
	client := start(t, "client", nil, "-listen="+fwd, "-backend="+srvAddr, "-clientmode=true", "-quic=true",
		"-secret-file="+wrongPath, "-control="+ctl)
	client.waitLog(`msg="client started"`, 20*time.Second)
	var st control.Status
	if !testutil.Eventually(10*time.Second, func() bool {
		st = statusJSON(t, nil, "-control="+ctl)
		return st.State == control.StateError
	}) {
		t.Fatalf("with the wrong secret: state %s, last error %q; want error", st.State, st.LastError)
	}
	if !strings.Contains(st.LastError, "did not accept our secret") {
		t.Errorf("last error %q; want it in plain words", st.LastError)
	}

	cmd := exec.Command(binary, "set-secret", "-control="+ctl)
	cmd.Stdin = strings.NewReader(strongSecret + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qtunnel set-secret: %v\n%s", err, out)
	}
	if !testutil.Eventually(10*time.Second, func() bool { return statusJSON(t, nil, "-control="+ctl).State == control.StateConnected }) {
		t.Fatal("not connected after set-secret")
	}
	echoThrough(t, fwd, 256<<10, 9)
	if b, _ := os.ReadFile(wrongPath); strings.TrimSpace(string(b)) != wrong {
		t.Error("set-secret changed the secret file; it must stay in memory")
	}
	if strings.Contains(client.stderr.String()+server.stderr.String(), strongSecret) {
		t.Error("a secret appears in a log")
	}
}

// TestMigrateCommand: `qtunnel migrate` moves a running client's QUIC
// connection to a new path twice during a transfer, which completes
// intact; the status counts the moves, still on one connection.
func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	backend := testutil.StartEchoBackend(t)
	secretPath := secretFile(t, strongSecret)
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	fwd := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctl := filepath.Join(dir, "c", "ctl.sock")
	server := start(t, "server", nil, "-listen="+srvAddr, "-backend="+backend.Addr(), "-quic=true",
		"-secret-file="+secretPath, "-state-dir="+t.TempDir())
	server.waitLog(`msg="server started"`, 20*time.Second)
	client := start(t, "client", nil, "-listen="+fwd, "-backend="+srvAddr, "-clientmode=true", "-quic=true",
		"-secret-file="+secretPath, "-control="+ctl)
	client.waitLog(`msg="connected to server"`, 20*time.Second)

	c, err := testutil.DialTCP(fwd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	transfer := make(chan error, 1)
	go func() { transfer <- testutil.PacedEcho(c, 32<<20, 128<<10, 10*time.Millisecond) }()
	for i := range 2 {
		time.Sleep(500 * time.Millisecond)
		code, out, errOut := runQT(t, nil, "migrate", "-control="+ctl)
		if code != 0 || !strings.HasPrefix(out, "moved from ") {
			t.Fatalf("qtunnel migrate %d: exit %d, %q %q", i+1, code, out, errOut)
		}
	}
	select {
	case err := <-transfer:
		t.Fatalf("the transfer ended before both moves (err %v): make it longer", err)
	default:
	}
	if err := <-transfer; err != nil {
		t.Fatalf("transfer across two migrations: %v", err)
	}
	st := statusJSON(t, nil, "-control="+ctl)
	if st.Migrations != 2 || st.Connects != 1 {
		t.Errorf("status: %d migrations, %d connects; want 2 moves of one connection", st.Migrations, st.Connects)
	}
	server.waitLog(`client authenticated`, time.Second)
	if n := strings.Count(server.stderr.String(), "client authenticated"); n != 1 {
		t.Errorf("the server authenticated %d connections; want 1", n)
	}
}
