package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/lab"
)

// TestNoFalseFailoverInLab: a client with two live servers behind a bad
// link (200 ms round trip, 10 % loss each way) for 30 s. A lost packet
// holds the heartbeat's echoes behind it for a retransmission, but the
// servers are alive: neither is ever taken for silent, and nothing fails
// over.
func TestNoFalseFailoverInLab(t *testing.T) {
	l, first, secretPath, _ := labTunnel(t, lab.Params{Delay: 100 * time.Millisecond, Loss: 0.10})
	second := lab.ServerIP.String() + ":4434"
	server2 := startInLab(t, l, l.Server, "-listen="+second, "-backend="+lab.ServerIP.String()+":7000", "-quic=true",
		"-secret-file="+secretPath, "-state-dir="+t.TempDir(), "-control=off")
	server2.waitLog(`msg="server started"`, 20*time.Second)
	controlPath := filepath.Join(t.TempDir(), "control.sock")
	client := startInLab(t, l, l.Client, "-listen=127.0.0.1:8000", "-backend="+first+","+second, "-clientmode=true", "-quic=true",
		"-secret-file="+secretPath, "-control="+controlPath)
	client.waitLog(`msg="using server"`, 30*time.Second)
	time.Sleep(30 * time.Second)

	st := statusJSON(t, nil, "-control="+controlPath)
	for _, s := range st.Servers {
		t.Logf("%s: healthy %t, in use %t, rtt %.1f ms", s.Address, s.Healthy, s.Active, s.RTTMillis)
		if !s.Healthy {
			t.Errorf("server %s not healthy after 30 s on a lossy link: %s", s.Address, s.LastError)
		}
	}
	log := client.stderr.String()
	if n := strings.Count(log, "stopped answering"); n > 0 || st.Failovers > 0 {
		t.Errorf("live servers taken for silent %d times, %d failovers, on a lossy link; client log:\n%s", n, st.Failovers, log)
	}
}
