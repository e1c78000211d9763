// Command demo shows QTunnel working on one machine, with nothing to set
// up: it generates a secret, starts a small built-in HTTP backend, runs a
// qtunnel server and client on loopback in front of it (QUIC, then TLS over
// TCP), sends requests through the tunnel, prints what it measured, and
// stops everything cleanly. `make demo` runs it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/qtunnel", "path to the qtunnel binary")
	requests := flag.Int("requests", 200, "requests per latency measurement")
	bulkMiB := flag.Int("bulk-mib", 256, "size of the download used to measure throughput, in MiB")
	flag.Parse()
	if err := demo(*bin, *requests, *bulkMiB); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func demo(bin string, requests, bulkMiB int) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s not found; run `make build` first", bin)
	}
	dir, err := os.MkdirTemp("", "qtunnel-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	secretPath := filepath.Join(dir, "secret")
	step("generating a 256-bit secret")
	if out, err := exec.Command(bin, "-generate-secret", "-secret-file="+secretPath).CombinedOutput(); err != nil { // #nosec G204 -- the qtunnel binary the demo was given, no shell
		return fmt.Errorf("generate secret: %v: %s", err, out)
	}

	backend, stopBackend, err := startBackend()
	if err != nil {
		return err
	}
	defer stopBackend()
	step("built-in test backend on http://" + backend)

	direct, err := measure(backend, requests, bulkMiB)
	if err != nil {
		return fmt.Errorf("direct: %w", err)
	}
	results := []result{{"direct (no tunnel)", direct}}
	for _, quic := range []bool{true, false} {
		mode := "TLS/TCP"
		if quic {
			mode = "QUIC"
		}
		m, err := runTunnel(bin, dir, secretPath, backend, quic, requests, bulkMiB)
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
		results = append(results, result{"qtunnel " + mode, m})
	}

	fmt.Printf("\nMeasured on this machine over loopback (%d fresh connections each; %d MiB download):\n\n", requests, bulkMiB)
	fmt.Printf("  %-20s %14s %14s %14s\n", "path", "median ms", "p99 ms", "MiB/s")
	for _, r := range results {
		fmt.Printf("  %-20s %14.3f %14.3f %14.0f\n", r.name, ms(r.m.median), ms(r.m.p99), r.m.mibps)
	}
	fmt.Println("\n  (request = new TCP connection, HTTP GET, 64-byte reply; loopback hides the network,")
	fmt.Println("   so these show the tunnel's own cost. `make bench` measures emulated WAN links.)")
	return nil
}

type result struct {
	name string
	m    measurement
}

func step(s string) { fmt.Println("==>", s) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runTunnel starts a server and a client, measures through them, and stops
// them with SIGTERM, expecting exit code 0 from both.
func runTunnel(bin, dir, secretPath, backend string, quic bool, requests, bulkMiB int) (measurement, error) {
	serverAddr, err := freeAddr()
	if err != nil {
		return measurement{}, err
	}
	clientAddr, err := freeAddr()
	if err != nil {
		return measurement{}, err
	}
	mode := "-quic=" + strconv.FormatBool(quic)
	name := map[bool]string{true: "QUIC", false: "TLS over TCP"}[quic]
	step(fmt.Sprintf("starting qtunnel server (%s) on %s -> backend", name, serverAddr))
	server, err := startProc(bin, "-listen="+serverAddr, "-backend="+backend, "-secret-file="+secretPath, mode,
		"-state-dir="+filepath.Join(dir, "state"))
	if err != nil {
		return measurement{}, err
	}
	defer server.kill()
	if err := server.waitFor("server started", 15*time.Second); err != nil {
		return measurement{}, err
	}
	step(fmt.Sprintf("starting qtunnel client on %s -> server", clientAddr))
	client, err := startProc(bin, "-listen="+clientAddr, "-backend="+serverAddr, "-clientmode=true",
		"-secret-file="+secretPath, mode, "-state-dir="+filepath.Join(dir, "client-state"))
	if err != nil {
		return measurement{}, err
	}
	defer client.kill()
	if err := client.waitFor("connected to server", 15*time.Second); err != nil {
		return measurement{}, err
	}
	body, err := get(clientAddr, "/")
	if err != nil {
		return measurement{}, err
	}
	step(fmt.Sprintf("through the tunnel: GET / -> %q", strings.TrimSpace(body)))
	m, err := measure(clientAddr, requests, bulkMiB)
	if err != nil {
		return measurement{}, err
	}
	step("stopping client and server (SIGTERM)")
	for _, p := range []*proc{client, server} {
		if code := p.stop(15 * time.Second); code != 0 {
			return m, fmt.Errorf("%s exited with %d:\n%s", p.name, code, p.log.String())
		}
	}
	step("both exited cleanly (code 0)")
	return m, nil
}

type measurement struct {
	median, p99 time.Duration
	mibps       float64
}

// measure times fresh-connection requests and one bulk download via addr.
func measure(addr string, requests, bulkMiB int) (measurement, error) {
	var m measurement
	lat := make([]time.Duration, 0, requests)
	for range requests {
		start := time.Now()
		if _, err := get(addr, "/"); err != nil {
			return m, err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	m.median = lat[len(lat)/2]
	m.p99 = lat[(len(lat)*99)/100]
	start := time.Now()
	body, err := getStream(addr, fmt.Sprintf("/bytes?n=%d", bulkMiB<<20))
	if err != nil {
		return m, err
	}
	if body != int64(bulkMiB)<<20 {
		return m, fmt.Errorf("download returned %d bytes, want %d", body, bulkMiB<<20)
	}
	m.mibps = float64(bulkMiB) / time.Since(start).Seconds()
	return m, nil
}

func newClient() *http.Client {
	// A fresh connection for every request: that is what a tunnel must make fast.
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}
}

func get(addr, path string) (string, error) {
	resp, err := newClient().Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func getStream(addr, path string) (int64, error) {
	resp, err := newClient().Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}

// startBackend serves "/" (a 64-byte greeting) and "/bytes?n=N".
func startBackend() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%-63s\n", "hello from the QTunnel demo backend")
	})
	chunk := make([]byte, 256<<10)
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			k := min(n, int64(len(chunk)))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Shutdown(context.Background()) }, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

func startProc(bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...) // #nosec G204 -- the qtunnel binary the demo was given, no shell
	log := &lockedBuffer{}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: filepath.Base(bin) + " " + args[0], cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.add(sc.Text())
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) waitFor(text string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.log.String(), text) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited early:\n%s", p.name, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: no %q within %v:\n%s", p.name, text, timeout, p.log.String())
}

func (p *proc) stop(timeout time.Duration) int {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// lockedBuffer collects a process's log lines.
type lockedBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *lockedBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}
