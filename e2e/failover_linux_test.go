package e2e

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/lab"
)

// TestFailoverInLab: a client with two servers in the lab (10 ms each way,
// both on the far side of the emulated link), over QUIC and over TLS/TCP.
// The server in use is killed (SIGKILL) while a connection through it is
// open: new connections go through the other server within 2 s, the open
// one fails with a reset instead of hanging, and `qtunnel status` shows
// the failover.
func TestFailoverInLab(t *testing.T) {
	for _, quic := range []bool{true, false} {
		t.Run(modeName(quic), func(t *testing.T) { testFailoverInLab(t, quic) })
	}
}

func testFailoverInLab(t *testing.T, quic bool) {
	l, first, secretPath, server1 := labTunnel(t, lab.Params{Delay: 10 * time.Millisecond})
	if !quic {
		// labTunnel's server speaks QUIC; this case wants TLS/TCP on both.
		server1.kill()
		server1 = startInLab(t, l, l.Server, "-listen="+first, "-backend="+lab.ServerIP.String()+":7000", "-quic=false",
			"-secret-file="+secretPath, "-state-dir="+t.TempDir(), "-control=off")
		server1.waitLog(`msg="server started"`, 20*time.Second)
	}
	second := lab.ServerIP.String() + ":4434"
	server2 := startInLab(t, l, l.Server, "-listen="+second, "-backend="+lab.ServerIP.String()+":7000", modeFlag(quic),
		"-secret-file="+secretPath, "-state-dir="+t.TempDir(), "-control=off")
	server2.waitLog(`msg="server started"`, 20*time.Second)
	servers := map[string]*proc{first: server1, second: server2}

	controlPath := filepath.Join(t.TempDir(), "control.sock")
	client := startInLab(t, l, l.Client, "-listen=127.0.0.1:8000", "-backend="+first+","+second, "-clientmode=true", modeFlag(quic),
		"-secret-file="+secretPath, "-control="+controlPath)
	client.waitLog(`msg="client started"`, 20*time.Second)
	status := func() control.Status { return statusJSON(t, nil, "-control="+controlPath) }
	// Both servers connected and answering their heartbeats.
	var st control.Status
	deadline := time.Now().Add(20 * time.Second)
	for {
		st = status()
		healthy := 0
		for _, s := range st.Servers {
			if s.Healthy {
				healthy++
			}
		}
		if healthy == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("both servers not healthy within 20 s: %+v\nclient stderr:\n%s", st.Servers, client.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	inUse := st.Server
	other := first
	if inUse == first {
		other = second
	}
	if servers[inUse] == nil {
		t.Fatalf("status names server %q, not one of %s, %s", inUse, first, second)
	}
	t.Logf("servers: %s in use (rtt %.1f ms, %.1f ms)", inUse, st.Servers[0].RTTMillis, st.Servers[1].RTTMillis)

	echo := func() error {
		c, err := dialIn(t, l.Client, "127.0.0.1:8000")
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(400 * time.Millisecond))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 4))
		return err
	}
	if err := echo(); err != nil {
		t.Fatalf("before the kill: %v", err)
	}
	// A connection left open through the server in use.
	open, err := dialIn(t, l.Client, "127.0.0.1:8000")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	_ = open.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := open.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(open, make([]byte, 4)); err != nil {
		t.Fatalf("open connection: %v", err)
	}

	servers[inUse].kill()
	killed := time.Now()
	inflight := make(chan error, 1)
	go func() {
		_, err := open.Write([]byte("more"))
		if err == nil {
			_, err = io.ReadFull(open, make([]byte, 4))
		}
		inflight <- err
	}()
	failed := 0
	for {
		err := echo()
		if err == nil {
			break
		}
		failed++
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("no working connection 10 s after the kill (%d failed; last: %v)\nclient stderr:\n%s", failed, err, client.stderr)
		}
	}
	took := time.Since(killed)
	t.Logf("first working connection %v after the kill; %d local connections failed before it", took.Round(time.Millisecond), failed)
	if took > 2*time.Second {
		t.Errorf("new connections worked again only %v after the kill; want within 2 s", took)
	}

	select {
	case err := <-inflight:
		var ne net.Error
		switch {
		case err == nil:
			t.Errorf("the connection open through the killed server echoed after the kill")
		case errors.As(err, &ne) && ne.Timeout():
			t.Errorf("the connection open through the killed server hung until its deadline: %v", err)
		default:
			t.Logf("the connection open through the killed server ended %v after the kill: %v", time.Since(killed).Round(time.Millisecond), err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("the connection open through the killed server still hangs 15 s after the kill")
	}

	st = status()
	if st.Server != other || st.Failovers != 1 {
		t.Errorf("status after the kill: server %q, %d failovers; want %s, 1", st.Server, st.Failovers, other)
	}
	code, out, _ := runQT(t, nil, "status", "-control="+controlPath)
	t.Logf("qtunnel status after the failover:\n%s", out)
	if code != 0 || !regexp.MustCompile(regexp.QuoteMeta(other)+` +in use`).MatchString(out) || !strings.Contains(out, "failovers") {
		t.Errorf("qtunnel status (exit %d) does not show the failover:\n%s", code, out)
	}
}
