package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/internal/testutil"
)

// secretForms are the ways a secret could show up in text: as is, and
// encoded the ways a careless program would print bytes.
func secretForms(s string) map[string]string {
	b := []byte(s)
	return map[string]string{
		"plain":     s,
		"hex":       hex.EncodeToString(b),
		"base64":    base64.StdEncoding.EncodeToString(b),
		"base64url": base64.RawURLEncoding.EncodeToString(b),
		"go bytes":  fmt.Sprint(b[:8]), // %v of a []byte: "[101 50 ...]"
	}
}

// leakScan collects text a secret must never appear in.
type leakScan struct {
	texts map[string]string // where -> text
}

func (l *leakScan) add(where, text string) {
	if l.texts == nil {
		l.texts = map[string]string{}
	}
	l.texts[where] += text
}

// check fails for every form of every secret found anywhere.
func (l *leakScan) check(t *testing.T, secrets ...string) {
	t.Helper()
	total := 0
	for where, text := range l.texts {
		total += len(text)
		for _, s := range secrets {
			for form, v := range secretForms(s) {
				if strings.Contains(text, v) {
					t.Errorf("the secret (%s) appears in %s", form, where)
				}
			}
		}
	}
	t.Logf("scanned %d places, %d KiB, for %d secrets in %d forms each", len(l.texts), total>>10, len(secrets), len(secretForms("x")))
}

// TestSecretNeverLeaks runs a server and clients through what produces
// text — debug logs, transfers, a client with a wrong secret, a reload
// with a broken file, errors, status, metrics, a set-secret, a Go stack
// dump — and looks for the secrets in all of it and in every process's
// command line. The secrets come from files, as they should; the
// environment (QTUNNEL_SECRET) is checked for the command line too.
func TestSecretNeverLeaks(t *testing.T) {
	const wrongSecret = "e2e-wrong-secret-5f1d3b7a9c2e4f6a8b0d1c3e5f7a9b1d"
	const newSecret = "e2e-rotated-secret-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
	backend := testutil.StartEchoBackend(t)
	dir := t.TempDir()
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srvMetrics, cliMetrics := testutil.FreeAddr(t), testutil.FreeAddr(t)
	srvCtl, cliCtl := filepath.Join(dir, "s.sock"), filepath.Join(dir, "c.sock")
	secretPath := secretFile(t, strongSecret)
	serverCfg := writeFile(t, dir, "server.yaml", fmt.Sprintf(`mode: server
transport: quic
listen: %s
backend: %s
secret-files: [%s]
state-dir: %s
metrics: %s
control: %s
log:
  level: debug
`, srvAddr, backend.Addr(), secretPath, t.TempDir(), srvMetrics, srvCtl))
	server := start(t, "server", nil, "-config="+serverCfg)
	server.waitLog(`msg="server started"`, 20*time.Second)

	fwd := testutil.FreeAddr(t)
	client := start(t, "client", nil, "-listen="+fwd, "-backend="+srvAddr, "-clientmode=true", "-quic=true",
		"-secret-file="+secretPath, "-log-level=debug", "-metrics="+cliMetrics, "-control="+cliCtl)
	client.waitLog(`msg="connected to server"`, 20*time.Second)
	echoThrough(t, fwd, 1<<20, 1)

	// A client whose secret comes from the environment, and one with a
	// wrong secret (from a file): the server must not print what it got.
	envFwd := testutil.FreeAddr(t)
	envClient := start(t, "env client", []string{"QTUNNEL_SECRET=" + strongSecret}, "-listen="+envFwd, "-backend="+srvAddr,
		"-clientmode=true", "-quic=true", "-log-level=debug")
	envClient.waitLog(`msg="connected to server"`, 20*time.Second)
	echoThrough(t, envFwd, 64<<10, 2)
	wrongFwd := testutil.FreeAddr(t)
	wrongClient := start(t, "wrong client", nil, "-listen="+wrongFwd, "-backend="+srvAddr, "-clientmode=true", "-quic=true",
		"-secret-file="+secretFile(t, wrongSecret), "-log-level=debug")
	wrongClient.waitLog(`did not accept our proof`, 20*time.Second)
	if c, err := testutil.DialTCP(wrongFwd); err == nil {
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}

	var scan leakScan
	// Every process's command line, while they run.
	for _, p := range []*proc{server, client, envClient, wrongClient} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		scan.add(p.name+" /proc/PID/cmdline", string(b))
	}

	// A reload with a broken file: the error names the file and line.
	if err := os.WriteFile(serverCfg, []byte("mode: server\nlisten: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runQT(t, nil, "reload", "-control="+srvCtl)
	if code == 0 {
		t.Errorf("reload of a broken file succeeded: %s", out)
	}
	scan.add("reload output", out+errOut)
	for _, args := range [][]string{{"status", "-control=" + srvCtl}, {"status", "-json", "-control=" + srvCtl},
		{"status", "-control=" + cliCtl}, {"status", "-json", "-control=" + cliCtl}, {"-check-config=" + serverCfg}} {
		_, out, errOut := runQT(t, nil, args...)
		scan.add("qtunnel "+strings.Join(args, " "), out+errOut)
	}
	// A secret set through the control API is not echoed either.
	cmd := exec.Command(binary, "set-secret", "-control="+cliCtl)
	cmd.Stdin = strings.NewReader(newSecret + "\n")
	setOut, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("set-secret: %v\n%s", err, setOut)
	}
	scan.add("set-secret output", string(setOut))
	client.waitLog(`secret replaced`, 10*time.Second)

	for name, addr := range map[string]string{"server": srvMetrics, "client": cliMetrics} {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		scan.add(name+" /metrics", string(b))
	}

	// A Go stack dump (SIGQUIT) of every process, then its whole log.
	for _, p := range []*proc{server, client, envClient, wrongClient} {
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		p.wait(20 * time.Second)
		if !strings.Contains(p.stderr.String(), "goroutine ") {
			t.Errorf("%s printed no stack dump on SIGQUIT", p.name)
		}
		scan.add(p.name+" log and stack dump", p.stderr.String()+p.stdout.String())
	}
	if !strings.Contains(scan.texts["server log and stack dump"], "level=DEBUG") {
		t.Error("the server logged nothing at debug level; the scan would prove little")
	}
	scan.check(t, strongSecret, wrongSecret, newSecret)
}
