package e2e

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/internal/testutil"
	"github.com/qtunnel/qtunnel/lab"
)

// startInLab runs qtunnel in one of the lab's namespaces.
func startInLab(t *testing.T, l *lab.Lab, ns string, args ...string) *proc {
	t.Helper()
	cmd := l.Command(ns, binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "STATE_DIRECTORY=" + t.TempDir(), "GORACE=atexit_sleep_ms=0 halt_on_error=1"}
	return run(t, ns, cmd)
}

// ipIn runs an ip command in namespace ns.
func ipIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %v: %v: %s", ns, args, err, out)
	}
}

// arrivals records when bytes arrive, to measure stalls.
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *arrivals) Write(p []byte) (int, error) {
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	a.mu.Unlock()
	return len(p), nil
}

// firstAfter is when the first bytes arrived after t.
func (a *arrivals) firstAfter(t time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, _ := slices.BinarySearchFunc(a.times, t, func(x, y time.Time) int { return x.Compare(y) })
	if i == len(a.times) {
		return time.Time{}
	}
	return a.times[i]
}

// maxGap is the longest pause in arrivals within [from, to].
func (a *arrivals) maxGap(from, to time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	var gap time.Duration
	prev := from
	for _, x := range a.times {
		if x.Before(from) {
			continue
		}
		if x.After(to) {
			break
		}
		gap = max(gap, x.Sub(prev))
		prev = x
	}
	return gap
}

// TestMobilityInLab: a 200 MiB echo through a QUIC tunnel in the lab, while
// the client's address changes three times and then its link goes down
// for 3 s. It completes with equal SHA-256 sums both ways, on one
// connection, and the time to resume after each change is reported.
func TestMobilityInLab(t *testing.T) {
	link := lab.Params{Delay: 10 * time.Millisecond, RateBitsPerSec: 200_000_000}
	l, srvAddr, secretPath, server := labTunnel(t, link)
	// Deleting the client's first address must leave the others in place.
	if out, err := exec.Command("ip", "netns", "exec", l.Client, "sysctl", "-q", "-w", "net.ipv4.conf.c0.promote_secondaries=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	client, c := settledClient(t, l, srvAddr, secretPath)
	_ = c.SetDeadline(time.Now().Add(3 * time.Minute))

	const size = 200 << 20
	recv := &arrivals{}
	sum := sha256.New()
	got := make(chan error, 1)
	go func() {
		n, err := io.CopyN(io.MultiWriter(sum, recv), c, size)
		if err == nil && n != size {
			err = fmt.Errorf("echo returned %d bytes", n)
		}
		got <- err
	}()
	sent := sha256.New()
	wrote := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		r := rand.New(rand.NewPCG(7, 8))
		for left := size; left > 0; left -= len(buf) {
			for i := range buf {
				buf[i] = byte(r.Uint32())
			}
			sent.Write(buf)
			if _, err := c.Write(buf); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()

	type change struct {
		what string
		at   time.Time // when the path changed, or came back
	}
	var changes []change
	addr := lab.ClientIP.String()
	for i := range 3 {
		time.Sleep(time.Second)
		next := fmt.Sprintf("10.77.1.%d", 11+i)
		ipIn(t, l.Client, "addr", "add", next+"/24", "dev", "c0")
		ipIn(t, l.Client, "addr", "del", addr+"/24", "dev", "c0")
		ipIn(t, l.Client, "route", "replace", "default", "via", "10.77.1.2")
		changes = append(changes, change{"address " + addr + " -> " + next, time.Now()})
		addr = next
	}
	time.Sleep(time.Second)
	ipIn(t, l.Client, "link", "set", "c0", "down")
	time.Sleep(3 * time.Second)
	ipIn(t, l.Client, "link", "set", "c0", "up")
	ipIn(t, l.Client, "route", "replace", "default", "via", "10.77.1.2")
	changes = append(changes, change{"link down 3 s, then up", time.Now()})

	if err := <-wrote; err != nil {
		t.Fatalf("sending: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the echo across the changes: %v", err)
	}
	if string(sent.Sum(nil)) != string(sum.Sum(nil)) {
		t.Fatal("the echo differs from what was sent (SHA-256 mismatch)")
	}

	var resumes []time.Duration
	for _, ch := range changes {
		first := recv.firstAfter(ch.at)
		if first.IsZero() {
			t.Errorf("%s: nothing arrived afterwards", ch.what)
			continue
		}
		// The longest pause around the change: what an application saw.
		stall := max(first.Sub(ch.at), recv.maxGap(ch.at.Add(-4*time.Second), ch.at.Add(2*time.Second)))
		if strings.HasPrefix(ch.what, "address") {
			stall = max(first.Sub(ch.at), recv.maxGap(ch.at, ch.at.Add(2*time.Second)))
		}
		resumes = append(resumes, stall)
		if strings.HasPrefix(ch.what, "link") {
			t.Logf("%s: longest pause in the echo %v, bytes again %v after the link came back", ch.what, stall.Round(time.Millisecond), first.Sub(ch.at).Round(time.Millisecond))
			continue
		}
		t.Logf("%s: longest pause in the echo %v", ch.what, stall.Round(time.Millisecond))
	}
	sorted := slices.Clone(resumes)
	slices.Sort(sorted)
	if len(sorted) > 0 {
		t.Logf("resume after %d changes: median %v, max %v", len(sorted), sorted[len(sorted)/2].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond))
	}
	if n := strings.Count(server.stderr.String(), "client authenticated"); n != 1 {
		t.Errorf("the server authenticated %d connections; the tunnel should have kept its one connection", n)
	}
	if n := strings.Count(client.stderr.String(), "connection moved to a new path"); n < 3 {
		t.Errorf("the client moved its connection %d times; want at least one per address change", n)
	}
}

// labTunnel builds a lab with link both ways, an echo backend and a QUIC
// qtunnel server in the server's namespace.
func labTunnel(t *testing.T, link lab.Params) (l *lab.Lab, srvAddr, secretPath string, server *proc) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("no /dev/net/tun")
	}
	l, err := lab.New(link, link)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	var backendLn net.Listener
	if err := lab.InNamespace(l.Server, func() (err error) {
		backendLn, err = net.Listen("tcp", lab.ServerIP.String()+":7000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backendLn.Close() })
	go func() {
		for {
			c, err := backendLn.Accept()
			if err != nil {
				return
			}
			go testutil.Echo(c.(*net.TCPConn))
		}
	}()
	secretPath = filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretPath, []byte(strongSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srvAddr = lab.ServerIP.String() + ":4433"
	server = startInLab(t, l, l.Server, "-listen="+srvAddr, "-backend="+lab.ServerIP.String()+":7000", "-quic=true",
		"-secret-file="+secretPath, "-state-dir="+t.TempDir(), "-control=off", "-log-level=debug")
	server.waitLog(`msg="server started"`, 20*time.Second)
	return l, srvAddr, secretPath, server
}

// settledClient starts a QUIC client in the lab, waits until it is
// connected and the lab's new links have settled, and opens a connection
// through its forward (127.0.0.1:8000).
func settledClient(t *testing.T, l *lab.Lab, srvAddr, secretPath string) (*proc, *net.TCPConn) {
	t.Helper()
	client := startInLab(t, l, l.Client, "-listen=127.0.0.1:8000", "-backend="+srvAddr, "-clientmode=true", "-quic=true",
		"-secret-file="+secretPath, "-control=off")
	client.waitLog(`msg="connected to server"`, 20*time.Second)
	// IPv6 finishes setting up the new links' addresses a second or two
	// after the lab starts, which the client rightly takes for a network
	// change and moves; let that pass before a test changes the network.
	time.Sleep(2500 * time.Millisecond)
	c, err := dialIn(t, l.Client, "127.0.0.1:8000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return client, c
}

// dialIn connects to addr from namespace ns.
func dialIn(t *testing.T, ns, addr string) (*net.TCPConn, error) {
	var c *net.TCPConn
	err := lab.InNamespace(ns, func() (err error) {
		c, err = testutil.DialTCP(addr)
		return err
	})
	return c, err
}

// TestUDPBlockedInLab: with an nftables rule in the router dropping the
// tunnel's UDP, a QUIC client carries connections over TLS/TCP to the same
// port within a few seconds, and returns to QUIC when the rule goes.
func TestUDPBlockedInLab(t *testing.T) {
	l, srvAddr, secretPath, _ := labTunnel(t, lab.Params{Delay: 10 * time.Millisecond})
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft (Debian package nftables)")
	}
	nft := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"netns", "exec", l.Router, "nft"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v: %s", args, err, out)
		}
	}
	nft("add", "table", "inet", "qtblock")
	nft("add", "chain", "inet", "qtblock", "qtchain", "{ type filter hook forward priority 0 ; }")
	nft("add", "rule", "inet", "qtblock", "qtchain", "udp", "dport", "4433", "drop")

	start := time.Now()
	client := startInLab(t, l, l.Client, "-listen=127.0.0.1:8000", "-backend="+srvAddr, "-clientmode=true", "-quic=true",
		"-secret-file="+secretPath, "-control=off")
	echo := func() error {
		c, err := dialIn(t, l.Client, "127.0.0.1:8000")
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		return testutil.EchoCheck(c, 1<<20, 2)
	}
	var err error
	if !testutil.Eventually(15*time.Second, func() bool { err = echo(); return err == nil }) {
		t.Fatalf("no connection through the tunnel with UDP blocked: %v", err)
	}
	t.Logf("UDP blocked: first connection through the TLS/TCP fallback %v after the client started", time.Since(start).Round(time.Millisecond))
	client.waitLog("carrying new connections over TLS/TCP", 20*time.Second)

	nft("delete", "table", "inet", "qtblock")
	unblocked := time.Now()
	client.waitLog("QUIC gets through again", 20*time.Second)
	t.Logf("UDP unblocked: back on QUIC after %v", time.Since(unblocked).Round(time.Millisecond))
	if err := echo(); err != nil {
		t.Fatalf("a connection after returning to QUIC: %v", err)
	}
}

// TestServerKilledInLab: the server is killed (SIGKILL) mid-session and
// started again; the client's new connections work again soon after, and
// the local connections that failed meanwhile are counted.
func TestServerKilledInLab(t *testing.T) {
	l, srvAddr, secretPath, server := labTunnel(t, lab.Params{Delay: 10 * time.Millisecond})
	client := startInLab(t, l, l.Client, "-listen=127.0.0.1:8000", "-backend="+srvAddr, "-clientmode=true", "-quic=true",
		"-secret-file="+secretPath, "-control=off")
	client.waitLog(`msg="connected to server"`, 20*time.Second)
	echo := func() error {
		c, err := dialIn(t, l.Client, "127.0.0.1:8000")
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		return testutil.EchoCheck(c, 4096, 3)
	}
	if err := echo(); err != nil {
		t.Fatalf("before the kill: %v", err)
	}
	server.kill()
	time.Sleep(time.Second)
	stateDir := strings.TrimPrefix(argWithPrefix(server.cmd.Args, "-state-dir="), "-state-dir=")
	restarted := startInLab(t, l, l.Server, "-listen="+srvAddr, "-backend="+lab.ServerIP.String()+":7000", "-quic=true",
		"-secret-file="+secretPath, "-state-dir="+stateDir, "-control=off")
	restarted.waitLog(`msg="server started"`, 20*time.Second)
	back := time.Now()
	failed := 0
	for {
		err := echo()
		if err == nil {
			break
		}
		failed++
		if time.Since(back) > 5*time.Second {
			t.Fatalf("no working connection 5 s after the server's return (%d failed; last: %v)", failed, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(back)
	t.Logf("first working connection %v after the server's return; %d local connections failed before it", took.Round(time.Millisecond), failed)
	if took > time.Second {
		t.Errorf("new connections worked again only %v after the server's return; want within 1 s", took)
	}
}

// argWithPrefix returns the first argument with the prefix, or "".
func argWithPrefix(args []string, prefix string) string {
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			return a
		}
	}
	return ""
}

// TestNATRebindingInLab: the router NATs the client's UDP to a port of its
// own; mid-transfer the mapping is dropped and made again on another port
// (what a NAT does when it forgets one), so the server sees the client
// move. The transfer completes intact on the same connection.
func TestNATRebindingInLab(t *testing.T) {
	l, srvAddr, secretPath, server := labTunnel(t, lab.Params{Delay: 10 * time.Millisecond, RateBitsPerSec: 100_000_000})
	for _, tool := range []string{"nft", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (Debian packages nftables, conntrack)", tool)
		}
	}
	inRouter := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"netns", "exec", l.Router, name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
	}
	// The router's packets pass conntrack twice, once on each side of the
	// link emulator (TUN devices tc2s and ts2c): conntrack zones keep the
	// two passes apart, so that the NAT applies on the server's side only.
	// As a real NAT does, it drops what the server sends to a mapping it
	// has forgotten: otherwise a server packet that comes first after the
	// flush makes an un-NATed flow that the client's packets then follow.
	// One nft transaction replaces the table, so that no packet passes
	// between the old rules and the new ones without NAT.
	natTo := func(port int) {
		rules := fmt.Sprintf(`table ip qtnat
delete table ip qtnat
table ip qtnat {
	chain pre {
		type filter hook prerouting priority raw ;
		iifname { "r0", "ts2c" } ct zone set 1
		iifname { "tc2s", "r1" } ct zone set 2
	}
	chain forget {
		type filter hook forward priority filter ;
		iifname "r1" ct state new drop
	}
	chain post {
		type nat hook postrouting priority srcnat ;
		oifname "r1" ip saddr 10.77.1.0/24 udp dport 4433 snat to 10.77.2.2:%d-%d
	}
}
`, port, port+9)
		f := filepath.Join(t.TempDir(), "nat.nft")
		if err := os.WriteFile(f, []byte(rules), 0o600); err != nil {
			t.Fatal(err)
		}
		inRouter("nft", "-f", f)
	}
	// Port ranges: a migration (a new client socket) needs a second mapping.
	natTo(40000)
	_, c := settledClient(t, l, srvAddr, secretPath)
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	done := make(chan error, 1)
	go func() { done <- testutil.PacedEcho(c, 64<<20, 256<<10, 5*time.Millisecond) }()
	time.Sleep(time.Second)
	// The NAT forgets: a new rule, and the old mapping dropped.
	natTo(40010)
	inRouter("conntrack", "-D", "-p", "udp", "-w", "2")
	select {
	case err := <-done:
		t.Fatalf("the transfer ended before the rebinding took effect (err %v): make it longer", err)
	default:
	}
	if err := <-done; err != nil {
		t.Fatalf("transfer across the NAT rebinding: %v", err)
	}
	// The client's packets now reach the server through the new mapping.
	out, err := exec.Command("ip", "netns", "exec", l.Router, "conntrack", "-L", "-p", "udp", "-w", "2").CombinedOutput()
	if err != nil || !regexp.MustCompile(`dport=4001\d`).Match(out) {
		t.Errorf("no UDP flow through the new mappings (ports 40010-40019) after the rebinding: %v\n%s", err, out)
	}
	if n := strings.Count(server.stderr.String(), "client authenticated"); n != 1 {
		t.Errorf("the server authenticated %d connections; the rebinding should not have needed a new one", n)
	}
	if !regexp.MustCompile(`client authenticated" peer=10\.77\.2\.2:4000\d`).MatchString(server.stderr.String()) {
		t.Errorf("the client did not reach the server through the first mapping:\n%s", server.stderr)
	}
}
