package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/lab"
)

// Ports. Fixed, distinct numbers: on loopback both sides share one
// namespace.
const (
	portIperf        = 25201
	portBackend      = 29000
	portTunnelServer = 24433 // qtunnel or stunnel server
	portTunnelEntry  = 34433 // qtunnel or stunnel client: where the load connects
)

// env is where benchmarks run: the host's loopback, or a lab profile.
type env struct {
	name     string
	profile  *lab.Profile // nil on loopback
	lab      *lab.Lab
	serverIP string
	dir      string // scratch files: secrets, certificates, stunnel configs
	bins     binaries

	mu    sync.Mutex
	procs []*proc
}

// binaries is what the suite runs, and how.
type binaries struct {
	qtunnel, qtbench, iperf3, stunnel string
	tcpCC                             string // TCP congestion control in the lab, "" for the kernel's default
	alts                              map[variant]alt
}

func newEnv(name string, bins binaries, dir string) (*env, error) {
	e := &env{name: name, bins: bins, dir: dir, serverIP: "127.0.0.1"}
	if name != "loopback" {
		p, ok := lab.Profiles[name]
		if !ok {
			return nil, fmt.Errorf("unknown profile %q", name)
		}
		l, err := lab.New(p.Params(), p.Params())
		if err != nil {
			return nil, err
		}
		e.profile, e.lab, e.serverIP = &p, l, lab.ServerIP.String()
	}
	return e, nil
}

// close kills everything the env started and removes its lab.
func (e *env) close() {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	for _, p := range procs {
		p.stop()
	}
	if e.lab != nil {
		e.lab.Close()
	}
}

type side int

const (
	clientSide side = iota
	serverSide
)

// proc is a process of the benchmark, with its output kept.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	log    *lineLog
	done   chan struct{}
}

type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }

func (l *lineLog) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// command prepares name on a side: in the lab namespace, or on the host.
func (e *env) command(s side, name string, args ...string) *exec.Cmd {
	if e.lab != nil {
		ns := e.lab.Client
		if s == serverSide {
			ns = e.lab.Server
		}
		return e.lab.Command(ns, name, args...)
	}
	cmd := exec.Command(name, args...) // #nosec G204 -- the benchmark runs its own programs (qtunnel, stunnel, iperf3), no shell
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// start runs a long-lived process.
func (e *env) start(s side, name string, args ...string) (*proc, error) {
	p := &proc{name: filepath.Base(name), cmd: e.command(s, name, args...), log: &lineLog{}, done: make(chan struct{})}
	p.cmd.Stdout = &p.stdout
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.log.add(sc.Text())
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// output runs a command to completion and returns its stdout.
func (e *env) output(ctx context.Context, s side, name string, args ...string) ([]byte, error) {
	cmd := e.command(s, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return stdout.Bytes(), nil
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return nil, fmt.Errorf("%s: %w", filepath.Base(name), ctx.Err())
	}
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// waitLog waits for a line containing s on the process's stderr.
func (p *proc) waitLog(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.log.contains(s) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.name, p.log)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: no %q within %v: %s", p.name, s, timeout, p.log)
}

// cpu returns the process's CPU time so far (user + system), read from
// /proc like top does.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// rss returns the process's resident memory in bytes.
func (p *proc) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// waitTCP waits until addr accepts connections, probing from side s.
func (e *env) waitTCP(s side, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var err error
		probe := func() error {
			c, derr := net.DialTimeout("tcp", addr, time.Second)
			if derr == nil {
				_ = c.Close()
			}
			err = derr
			return nil
		}
		if e.lab != nil {
			ns := e.lab.Client
			if s == serverSide {
				ns = e.lab.Server
			}
			_ = lab.InNamespace(ns, probe)
		} else {
			_ = probe()
		}
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not reachable within %v", addr, timeout)
}

// variant is one way for the load to reach the backends.
type variant string

const (
	vDirect     variant = "direct"
	vStunnel    variant = "stunnel"
	vStunnelBBR variant = "stunnel-bbr" // stunnel with the kernel's BBR on the tunnel's TCP connection (lab only)
	vQTCP       variant = "qtunnel-tcp"
	vQQUIC      variant = "qtunnel-quic"
)

// defaultVariants run unless -variants says otherwise. stunnel-bbr is
// skipped on loopback, where nothing is lost and the congestion control
// makes no difference.
var defaultVariants = []variant{vDirect, vStunnel, vStunnelBBR, vQTCP, vQQUIC}

// alt is a QUIC-mode variant run with another qtunnel binary or extra
// flags (-compare), for before/after measurements in one run.
type alt struct {
	binary string
	flags  []string
}

// parseCompare reads a -compare value: LABEL=BINARY[,FLAG...].
func parseCompare(v string) (variant, alt, error) {
	label, rest, ok := strings.Cut(v, "=")
	if !ok || label == "" || rest == "" {
		return "", alt{}, fmt.Errorf("-compare=%q: want LABEL=BINARY[,FLAG...], e.g. reno=bin/qtunnel,-congestion=reno", v)
	}
	parts := strings.Split(rest, ",")
	bin, err := filepath.Abs(parts[0])
	if err != nil {
		return "", alt{}, err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", alt{}, fmt.Errorf("-compare=%q: %w", v, err)
	}
	return variant("quic:" + label), alt{binary: bin, flags: parts[1:]}, nil
}

// tcpCongestion returns the kernel congestion control the variant's TCP
// connections use across the emulated link.
func (b binaries) tcpCongestion(v variant) string {
	if v == vStunnelBBR {
		return "bbr"
	}
	return b.tcpCC
}

// allowTCPCongestion makes the named algorithms settable as a namespace's
// default: outside the host's namespace Linux allows only those listed in
// net.ipv4.tcp_allowed_congestion_control (a host-wide list). It returns a
// function that restores the list.
func allowTCPCongestion(names ...string) (restore func(), err error) {
	const path = "/proc/sys/net/ipv4/tcp_allowed_congestion_control"
	old, err := os.ReadFile(path)
	if err != nil {
		return func() {}, err
	}
	list := strings.Fields(string(old))
	added := false
	for _, n := range names {
		if n != "" && !slices.Contains(list, n) {
			list = append(list, n)
			added = true
		}
	}
	if !added {
		return func() {}, nil
	}
	if err := os.WriteFile(path, []byte(strings.Join(list, " ")), 0o644); err != nil { // #nosec G306 G703 -- path is a constant sysctl file, which exists (the mode is not used)
		return func() {}, fmt.Errorf("allow TCP congestion control %v: %w", names, err)
	}
	return func() { _ = os.WriteFile(path, bytes.TrimSpace(old), 0o644) }, nil // #nosec G306 G703 -- as above
}

// setTCPCongestion sets the default TCP congestion control of the lab's
// client and server namespaces; sockets take it when they are made.
func (e *env) setTCPCongestion(cc string) error {
	if e.lab == nil || cc == "" {
		return nil
	}
	for _, ns := range []string{e.lab.Client, e.lab.Server} {
		if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_congestion_control="+cc).CombinedOutput(); err != nil { // #nosec G204 -- ip and sysctl with the lab's namespace and a congestion control name from the benchmark's flags, no shell
			return fmt.Errorf("set TCP congestion control %s in %s: %v: %s", cc, ns, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// path is a running variant in front of one backend port.
type path struct {
	entry          string
	client, server *proc // tunnel processes; nil for direct
}

func (pa *path) close() {
	for _, p := range []*proc{pa.client, pa.server} {
		if p != nil {
			p.stop()
		}
	}
}

// cpu is the tunnel's CPU time, client and server.
func (pa *path) cpu() (client, server time.Duration) {
	if pa.client != nil {
		client = pa.client.cpu()
	}
	if pa.server != nil {
		server = pa.server.cpu()
	}
	return client, server
}

// openPath starts v's server side in front of backendPort and its client
// side, and waits until the client is ready.
func (e *env) openPath(v variant, backendPort int) (*path, error) {
	backend := fmt.Sprintf("127.0.0.1:%d", backendPort)
	serverAddr := net.JoinHostPort(e.serverIP, strconv.Itoa(portTunnelServer))
	entry := fmt.Sprintf("127.0.0.1:%d", portTunnelEntry)
	pa := &path{entry: entry}
	var err error
	switch v {
	case vDirect:
		pa.entry = net.JoinHostPort(e.serverIP, strconv.Itoa(backendPort))
		return pa, nil
	case vStunnel, vStunnelBBR:
		if pa.server, err = e.start(serverSide, e.bins.stunnel, e.stunnelConf("server", serverAddr, backend)); err != nil {
			return nil, err
		}
		if err = e.waitTCP(serverSide, serverAddr, 10*time.Second); err == nil {
			pa.client, err = e.startStunnelClient(entry, serverAddr)
		}
	default:
		bin, flags := e.qtunnelFor(v)
		crt, key, _ := e.qtunnelCert()
		args := append([]string{"-listen=" + serverAddr, "-backend=" + backend, "-secret-file=" + e.secretFile(),
			fmt.Sprintf("-quic=%v", v != vQTCP), "-cert-file=" + crt, "-key-file=" + key, "-log-level=warn"}, flags...)
		pa.server, err = e.start(serverSide, bin, args...)
		if err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
		pa.client, err = e.startQTClient(v, entry, serverAddr)
		if err == nil {
			err = pa.client.waitLog("connected to server", 15*time.Second)
		}
	}
	if err != nil {
		pa.close()
		return nil, err
	}
	return pa, nil
}

func (e *env) startQTClient(v variant, entry, serverAddr string) (*proc, error) {
	bin, flags := e.qtunnelFor(v)
	_, _, pin := e.qtunnelCert()
	args := append([]string{"-listen=" + entry, "-backend=" + serverAddr, "-clientmode=true",
		"-secret-file=" + e.secretFile(), fmt.Sprintf("-quic=%v", v != vQTCP), "-pin=" + pin,
		"-state-dir=" + filepath.Join(e.dir, "client-state-"+string(v)), "-log-level=info"}, flags...)
	return e.start(clientSide, bin, args...)
}

// qtunnelCert returns the qtunnel server's certificate and key files,
// made once per environment, and the pin clients check it with: the setup
// the README recommends (-pin), under which a QUIC client also sends its
// first streams without waiting for the server's proof of the secret.
func (e *env) qtunnelCert() (crt, key, pin string) {
	crt, key = filepath.Join(e.dir, "qtunnel.crt"), filepath.Join(e.dir, "qtunnel.key")
	if _, err := os.Stat(crt); err != nil {
		c, k, _ := cert.Generate([]string{"localhost"})
		_ = os.WriteFile(crt, c, 0o644) // #nosec G306 -- a certificate is public; the key below is 0600
		_ = os.WriteFile(key, k, 0o600)
	}
	pemBytes, _ := os.ReadFile(crt) // #nosec G304 -- the certificate this function wrote in its own directory
	der, err := cert.PEMToDER(pemBytes)
	if err != nil {
		return crt, key, ""
	}
	return crt, key, cert.FingerprintOf(der).String()
}

// qtunnelFor returns the binary and extra flags of a qtunnel variant.
func (e *env) qtunnelFor(v variant) (string, []string) {
	if a, ok := e.bins.alts[v]; ok {
		return a.binary, a.flags
	}
	return e.bins.qtunnel, nil
}

func (e *env) startStunnelClient(entry, serverAddr string) (*proc, error) {
	p, err := e.start(clientSide, e.bins.stunnel, e.stunnelConf("client", entry, serverAddr))
	if err != nil {
		return nil, err
	}
	if err := e.waitTCP(clientSide, entry, 10*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}

func (e *env) secretFile() string {
	path := filepath.Join(e.dir, "secret")
	if _, err := os.Stat(path); err != nil {
		_ = os.WriteFile(path, []byte("bench-3b7e1d9c5a2f4e8b6d0c1a3f5e7b9d2c4a6e8f0b\n"), 0o600)
	}
	return path
}

// stunnelConf writes a stunnel configuration: TLS 1.3 only, the server
// with an ECDSA P-256 certificate like qtunnel's.
func (e *env) stunnelConf(role, accept, connect string) string {
	crt, key := filepath.Join(e.dir, "stunnel.crt"), filepath.Join(e.dir, "stunnel.key")
	if _, err := os.Stat(crt); err != nil {
		c, k, _ := cert.Generate([]string{"localhost"})
		_ = os.WriteFile(crt, c, 0o644) // #nosec G306 -- a certificate is public; the key below is 0600
		_ = os.WriteFile(key, k, 0o600)
	}
	conf := fmt.Sprintf("foreground = yes\npid =\nsyslog = no\ndebug = 3\n[%s]\naccept = %s\nconnect = %s\nsslVersionMin = TLSv1.3\n", role, accept, connect)
	if role == "server" {
		conf += fmt.Sprintf("cert = %s\nkey = %s\n", crt, key)
	} else {
		conf += "client = yes\n"
	}
	path := filepath.Join(e.dir, "stunnel-"+role+".conf")
	_ = os.WriteFile(path, []byte(conf), 0o600)
	return path
}
