package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Addresses inside every lab (each lab has its own namespaces, so labs do
// not collide).
var (
	ClientIP = netip.MustParseAddr("10.77.1.1")
	ServerIP = netip.MustParseAddr("10.77.2.1")
	routerC  = "10.77.1.2"
	routerS  = "10.77.2.2"
)

const nsPrefix = "qtl"

var labSeq atomic.Int64

// Lab is a running client — router — server topology with an emulated
// link in the router.
type Lab struct {
	// Namespace names, for `ip netns exec` and InNamespace.
	Client, Router, Server string

	up, down *pump // up: client to server
	devs     []*os.File
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu     sync.Mutex
	cmds   []*exec.Cmd
	closed bool
}

// New builds a lab whose link has the given parameters (up: client to
// server; down: server to client). It needs root and /dev/net/tun.
func New(up, down Params) (l *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (network namespaces and TUN devices)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("the lab needs the ip command (Debian package iproute2)")
	}
	RemoveStale()
	id := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), labSeq.Add(1))
	l = &Lab{Client: id + "c", Router: id + "r", Server: id + "s"}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, ns := range []string{l.Client, l.Router, l.Server} {
		if err := ip("netns", "add", ns); err != nil {
			return nil, err
		}
	}
	steps := [][]string{
		{"link", "add", "c0", "netns", l.Client, "type", "veth", "peer", "name", "r0", "netns", l.Router},
		{"link", "add", "s0", "netns", l.Server, "type", "veth", "peer", "name", "r1", "netns", l.Router},
		{"-n", l.Client, "addr", "add", ClientIP.String() + "/24", "dev", "c0"},
		{"-n", l.Router, "addr", "add", routerC + "/24", "dev", "r0"},
		{"-n", l.Router, "addr", "add", routerS + "/24", "dev", "r1"},
		{"-n", l.Server, "addr", "add", ServerIP.String() + "/24", "dev", "s0"},
	}
	for _, ns := range []string{l.Client, l.Router, l.Server} {
		steps = append(steps, []string{"-n", ns, "link", "set", "lo", "up"})
	}
	steps = append(steps,
		[]string{"-n", l.Client, "link", "set", "c0", "up"},
		[]string{"-n", l.Router, "link", "set", "r0", "up"},
		[]string{"-n", l.Router, "link", "set", "r1", "up"},
		[]string{"-n", l.Server, "link", "set", "s0", "up"},
		[]string{"-n", l.Client, "route", "add", "default", "via", routerC},
		[]string{"-n", l.Server, "route", "add", "default", "via", routerS},
	)
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return nil, err
		}
	}
	// The router forwards, and must not drop packets the emulator writes
	// back with a source "from the wrong side" (reverse-path filter).
	if err := run("ip", "netns", "exec", l.Router, "sysctl", "-q", "-w",
		"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"); err != nil {
		return nil, err
	}
	// One TUN device per direction. Policy routing sends what arrives from
	// the client side into tc2s and what arrives from the server side into
	// ts2c; the emulator writes each packet back into the device it came
	// from, and the kernel then forwards it by the main table.
	c2s, err := openTUN(l.Router, "tc2s")
	if err != nil {
		return nil, err
	}
	l.devs = append(l.devs, c2s)
	s2c, err := openTUN(l.Router, "ts2c")
	if err != nil {
		return nil, err
	}
	l.devs = append(l.devs, s2c)
	for _, s := range [][]string{
		{"-n", l.Router, "link", "set", "tc2s", "up", "txqueuelen", "10000"},
		{"-n", l.Router, "link", "set", "ts2c", "up", "txqueuelen", "10000"},
		{"-n", l.Router, "rule", "add", "iif", "r0", "lookup", "100"},
		{"-n", l.Router, "route", "add", "10.77.2.0/24", "dev", "tc2s", "table", "100"},
		{"-n", l.Router, "rule", "add", "iif", "r1", "lookup", "101"},
		{"-n", l.Router, "route", "add", "10.77.1.0/24", "dev", "ts2c", "table", "101"},
	} {
		if err := ip(s...); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	seed := uint64(time.Now().UnixNano())
	l.up, l.down = newPump(c2s, up, seed), newPump(s2c, down, seed+1)
	for _, p := range []*pump{l.up, l.down} {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			p.run(ctx)
		}()
	}
	return l, nil
}

// Set changes the link while it runs (a handover, a congested hour).
func (l *Lab) Set(up, down Params) {
	l.up.set(up)
	l.down.set(down)
}

// Params returns the current settings.
func (l *Lab) Params() (up, down Params) { return l.up.params(), l.down.params() }

// Counters returns the live counters of each direction.
func (l *Lab) Counters() (up, down *Counters) { return &l.up.counters, &l.down.counters }

// Command prepares name to run in namespace ns. The process is killed by
// Close, and by the kernel if this process dies first.
func (l *Lab) Command(ns, name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...) // #nosec G204 -- the lab runs the programs its caller (a test or benchmark) names, no shell
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	l.mu.Lock()
	l.cmds = append(l.cmds, cmd)
	l.mu.Unlock()
	return cmd
}

// Close stops the emulator, kills every process in the lab's namespaces,
// and removes the namespaces (and with them the veth and TUN devices).
func (l *Lab) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	cmds := l.cmds
	l.mu.Unlock()
	for _, c := range cmds {
		if c.Process != nil {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		}
	}
	if l.cancel != nil {
		l.cancel()
	}
	for _, d := range l.devs {
		_ = d.Close()
	}
	l.wg.Wait()
	for _, ns := range []string{l.Client, l.Router, l.Server} {
		removeNamespace(ns)
	}
}

var staleRE = regexp.MustCompile(`^` + nsPrefix + `(\d+)-\d+[crs]$`)

// RemoveStale removes namespaces left by labs whose process is gone (a
// crash, a kill -9).
func RemoveStale() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		m := staleRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		removeNamespace(e.Name())
	}
}

// Namespaces lists the lab namespaces that exist now (for leak checks).
func Namespaces() []string {
	var out []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if staleRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func removeNamespace(ns string) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil { // #nosec G204 -- ns is a namespace name the lab made
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run() // #nosec G204 -- ns is a namespace name the lab made
}

func ip(args ...string) error { return run("ip", args...) }

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput() // #nosec G204 -- ip and tc with arguments the lab builds, no shell
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func isClosed(err error) bool {
	return errors.Is(err, os.ErrClosed)
}
