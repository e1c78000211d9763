package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/internal/testutil"
)

// TestSecretRotation: a server that lists two secret files accepts clients
// of either; once the old one is taken out (reload), clients with the new
// secret go on and a client with the old one is no longer accepted.
func TestSecretRotation(t *testing.T) {
	const oldSecret = "e2e-old-secret-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
	const newSecret = "e2e-new-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e"
	backend := testutil.StartEchoBackend(t)
	dir := t.TempDir()
	srvAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	oldPath, newPath := secretFile(t, oldSecret), secretFile(t, newSecret)
	ctl := filepath.Join(dir, "s.sock")
	serverText := func(files string) string {
		return fmt.Sprintf("mode: server\ntransport: quic\nlisten: %s\nbackend: %s\nsecret-files: [%s]\nstate-dir: %s\ncontrol: %s\n",
			srvAddr, backend.Addr(), files, dir, ctl)
	}
	cfg := writeFile(t, dir, "server.yaml", serverText(newPath+", "+oldPath))
	server := start(t, "server", nil, "-config="+cfg)
	server.waitLog(`msg="server started"`, 20*time.Second)

	clients := map[string]string{}
	procs := map[string]*proc{}
	for name, path := range map[string]string{"old": oldPath, "new": newPath} {
		fwd := testutil.FreeAddr(t)
		clients[name] = fwd
		procs[name] = start(t, name+" client", nil, "-listen="+fwd, "-backend="+srvAddr, "-clientmode=true", "-quic=true", "-secret-file="+path)
		procs[name].waitLog(`msg="connected to server"`, 20*time.Second)
		echoThrough(t, fwd, 256<<10, 1)
	}

	writeFile(t, dir, "server.yaml", serverText(newPath))
	if code, out, errOut := runQT(t, nil, "reload", "-control="+ctl); code != 0 {
		t.Fatalf("reload: %d %s %s", code, out, errOut)
	}
	procs["old"].waitLog(`did not accept our proof`, 30*time.Second)
	echoThrough(t, clients["new"], 256<<10, 2)
	if c, err := testutil.DialTCP(clients["old"]); err == nil {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := testutil.EchoCheck(c, 1024, 3); err == nil {
			t.Error("a client with the removed secret is still carried")
		}
		c.Close()
	}
}
