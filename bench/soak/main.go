// Command qtsoak is QTunnel's soak test (make soak): a QUIC tunnel in the
// lab on an emulated link, many connections opening and closing at once
// with random sizes, the client's connection moved to a new path every
// minute, while the server's memory and goroutines are sampled. It fails
// on a corrupted stream, on memory or goroutines that keep growing after
// the first minute, or on anything left behind at exit, and writes a CSV,
// a plot and a summary.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/lab"
)

func main() {
	bin := flag.String("bin", "bin/qtunnel", "the qtunnel `binary`")
	duration := flag.Duration("duration", 10*time.Minute, "how long to run")
	conns := flag.Int("conns", 500, "concurrent connections")
	profile := flag.String("profile", "mobile", "lab link `profile`: "+strings.Join(lab.ProfileNames(), ", "))
	migrateEvery := flag.Duration("migrate-every", time.Minute, "move the client's connection to a new path this often")
	maxSize := flag.Int("max-size", 256<<10, "largest echo of one connection, bytes")
	out := flag.String("out", "bench/results/soak", "`directory` for soak.csv, soak.png, summary.txt")
	flag.Parse()
	if err := run(*bin, *duration, *conns, *profile, *migrateEvery, *maxSize, *out); err != nil {
		fmt.Fprintln(os.Stderr, "qtsoak:", err)
		os.Exit(1)
	}
}

// sample is one look at the server process.
type sample struct {
	at                          time.Duration
	rssKiB, heapKiB, goroutines int64
	done, corrupt, failed       int64
}

// counts are the connection loops' results.
type counts struct{ done, corrupt, failed atomic.Int64 }

func run(bin string, duration time.Duration, nconns int, profileName string, migrateEvery time.Duration, maxSize int, out string) error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root")
	}
	prof, ok := lab.Profiles[profileName]
	if !ok {
		return fmt.Errorf("no profile %q (have %s)", profileName, strings.Join(lab.ProfileNames(), ", "))
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil { // #nosec G301 -- results to publish (bench/results/), nothing secret
		return err
	}
	tmp, err := os.MkdirTemp("", "qtsoak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	l, err := lab.New(prof.Params(), prof.Params())
	if err != nil {
		return err
	}
	defer l.Close()
	stopBackend, err := echoBackend(l)
	if err != nil {
		return err
	}
	defer stopBackend()

	secretPath := filepath.Join(tmp, "secret")
	if err := os.WriteFile(secretPath, []byte("qtsoak-5e1f0a9c3b7d2e4f6a8c0b1d3e5f7a9c\n"), 0o600); err != nil {
		return err
	}
	srvAddr := lab.ServerIP.String() + ":4433"
	server, serverLog, err := startIn(l, l.Server, tmp, bin, "-listen="+srvAddr, "-backend="+lab.ServerIP.String()+":7000",
		"-quic=true", "-secret-file="+secretPath, "-state-dir="+filepath.Join(tmp, "srv"), "-control=off",
		"-metrics=127.0.0.1:9100", "-drain-timeout=5s")
	if err != nil {
		return err
	}
	ctl := filepath.Join(tmp, "ctl", "client.sock")
	client, clientLog, err := startIn(l, l.Client, tmp, bin, "-listen=127.0.0.1:8000", "-backend="+srvAddr, "-clientmode=true",
		"-quic=true", "-secret-file="+secretPath, "-control="+ctl, "-drain-timeout=5s")
	if err != nil {
		return err
	}
	if err := waitFor(clientLog, `msg="connected to server"`, 30*time.Second); err != nil {
		return err
	}
	fmt.Printf("qtsoak: %d connections on %s for %v, a migration every %v\n", nconns, prof, duration, migrateEvery)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var c counts
	var wg sync.WaitGroup
	for i := range nconns {
		wg.Go(func() { loop(ctx, l, uint64(i), maxSize, &c) }) // #nosec G115 -- i counts up from 0: a seed
	}
	var migrations, migrationFailures int
	ctlClient := control.NewClient(ctl)
	var samples []sample
	start := time.Now()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	nextMigration := start.Add(migrateEvery)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case now := <-tick.C:
			s := sample{at: now.Sub(start), done: c.done.Load(), corrupt: c.corrupt.Load(), failed: c.failed.Load()}
			s.rssKiB, _ = rssKiB(server.Process.Pid)
			if m, err := scrape(l); err == nil {
				s.goroutines, s.heapKiB = int64(m["go_goroutines"]), int64(m["go_memstats_heap_inuse_bytes"]/1024)
			}
			samples = append(samples, s)
			fmt.Printf("%6s  rss %6d KiB  heap %6d KiB  goroutines %5d  streams done %7d  corrupt %d  failed %d\n",
				s.at.Round(time.Second), s.rssKiB, s.heapKiB, s.goroutines, s.done, s.corrupt, s.failed)
			if now.After(nextMigration) {
				nextMigration = nextMigration.Add(migrateEvery)
				mctx, mcancel := context.WithTimeout(context.Background(), 10*time.Second)
				msg, err := ctlClient.Migrate(mctx)
				mcancel()
				if err != nil {
					migrationFailures++
					fmt.Println("qtsoak: migration failed:", err)
				} else {
					migrations++
					fmt.Println("qtsoak:", msg)
				}
			}
		}
	}
	wg.Wait()

	// Stop both ends as an operator would; they must exit cleanly.
	exitErrs := []error{stop(client), stop(server)}
	l.Close()
	left := lab.Namespaces()

	if err := writeCSV(filepath.Join(out, "soak.csv"), samples); err != nil {
		return err
	}
	if err := plotSamples(filepath.Join(out, "soak.png"), samples, prof.Name); err != nil {
		return err
	}
	verdict, problems := judge(samples, &c, migrations, migrationFailures, exitErrs, left, serverLog, clientLog)
	summary := fmt.Sprintf("qtsoak %s: %d connections on %s for %v, a migration every %v\n%s",
		time.Now().UTC().Format(time.RFC3339), nconns, prof, duration, migrateEvery, verdict)
	if err := os.WriteFile(filepath.Join(out, "summary.txt"), []byte(summary), 0o644); err != nil { // #nosec G306 -- results to publish, nothing secret
		return err
	}
	fmt.Print(summary)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// judge says whether the soak passed, in words, and lists what failed.
func judge(samples []sample, c *counts, migrations, migrationFailures int, exitErrs []error, left []string, serverLog, clientLog *logTail) (string, []string) {
	var b strings.Builder
	var problems []string
	fmt.Fprintf(&b, "streams: %d completed, %d corrupted, %d failed\n", c.done.Load(), c.corrupt.Load(), c.failed.Load())
	fmt.Fprintf(&b, "migrations: %d done, %d failed\n", migrations, migrationFailures)
	if c.corrupt.Load() > 0 {
		problems = append(problems, fmt.Sprintf("%d corrupted streams", c.corrupt.Load()))
	}
	if c.done.Load() == 0 {
		problems = append(problems, "no stream completed")
	}
	if migrationFailures > 0 {
		problems = append(problems, fmt.Sprintf("%d migrations failed", migrationFailures))
	}
	// Flat after the first minute: the median over the last two minutes is
	// within 25 % (heap in use: what the server holds; a single sample
	// lands anywhere in a GC cycle, hence medians) or 10 % plus 20
	// (goroutines) of the median over minutes 1 to 3. RSS is reported; the
	// Go runtime returns freed memory to the system only lazily.
	end := samples[len(samples)-1].at
	early := window(samples, time.Minute, 3*time.Minute)
	late := window(samples, end-2*time.Minute, end+time.Second)
	if len(early) == 0 || len(late) == 0 || end < 4*time.Minute {
		problems = append(problems, "ran less than four minutes: too short to judge memory and goroutines")
	} else {
		med := func(ss []sample, f func(sample) int64) int64 {
			v := make([]int64, len(ss))
			for i, s := range ss {
				v[i] = f(s)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		heap := func(s sample) int64 { return s.heapKiB }
		rss := func(s sample) int64 { return s.rssKiB }
		gor := func(s sample) int64 { return s.goroutines }
		fmt.Fprintf(&b, "server heap in use (median): %d KiB over minutes 1-3, %d KiB over the last two\n", med(early, heap), med(late, heap))
		fmt.Fprintf(&b, "server memory, RSS (median): %d KiB over minutes 1-3, %d KiB over the last two\n", med(early, rss), med(late, rss))
		fmt.Fprintf(&b, "server goroutines (median): %d over minutes 1-3, %d over the last two\n", med(early, gor), med(late, gor))
		if float64(med(late, heap)) > 1.25*float64(med(early, heap)) {
			problems = append(problems, "the server's heap grew after the first minute")
		}
		if float64(med(late, gor)) > 1.10*float64(med(early, gor))+20 {
			problems = append(problems, "the server's goroutines grew after the first minute")
		}
	}
	for i, who := range []string{"client", "server"} {
		if exitErrs[i] != nil {
			problems = append(problems, fmt.Sprintf("%s did not exit cleanly: %v", who, exitErrs[i]))
		}
	}
	if len(left) > 0 {
		problems = append(problems, "namespaces left behind: "+strings.Join(left, " "))
	}
	for _, lt := range []*logTail{serverLog, clientLog} {
		if strings.Contains(lt.String(), "DATA RACE") || strings.Contains(lt.String(), "panic:") {
			problems = append(problems, "a race or a panic in a log")
		}
	}
	if len(problems) == 0 {
		b.WriteString("verdict: PASS (no corrupted stream, memory and goroutines flat after the first minute, clean exits, nothing left behind)\n")
	} else {
		b.WriteString("verdict: FAIL: " + strings.Join(problems, "; ") + "\n")
	}
	return b.String(), problems
}

// window returns the samples taken in [from, to).
func window(samples []sample, from, to time.Duration) []sample {
	var out []sample
	for _, s := range samples {
		if s.at >= from && s.at < to {
			out = append(out, s)
		}
	}
	return out
}

// loop opens, echoes and closes connections through the tunnel until ctx
// is done, counting the outcomes.
func loop(ctx context.Context, l *lab.Lab, seed uint64, maxSize int, c *counts) {
	r := rand.New(rand.NewPCG(seed, 42)) // #nosec G404 -- reproducible test traffic, not a secret
	buf := make([]byte, 32<<10)
	for ctx.Err() == nil {
		size := 1 + r.IntN(maxSize)
		conn, err := dialIn(l.Client, "127.0.0.1:8000")
		if err != nil {
			c.failed.Add(1)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
		stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
		ok, err := echoOnce(conn, size, r, buf)
		stop()
		_ = conn.Close()
		switch {
		case ctx.Err() != nil:
		case err != nil:
			c.failed.Add(1)
		case !ok:
			c.corrupt.Add(1)
		default:
			c.done.Add(1)
		}
	}
}

// echoOnce sends size random bytes and compares the SHA-256 of the echo.
func echoOnce(conn *net.TCPConn, size int, r *rand.Rand, buf []byte) (bool, error) {
	sent := sha256.New()
	got := make(chan error, 1)
	recv := sha256.New()
	go func() {
		n, err := io.Copy(recv, conn)
		if err == nil && n != int64(size) {
			err = fmt.Errorf("echo returned %d of %d bytes", n, size)
		}
		got <- err
	}()
	for left := size; left > 0; {
		n := min(left, len(buf))
		for i := range buf[:n] {
			buf[i] = byte(r.Uint32()) // #nosec G115 -- truncation meant: a random byte
		}
		sent.Write(buf[:n])
		if _, err := conn.Write(buf[:n]); err != nil {
			<-got
			return false, err
		}
		left -= n
	}
	if err := conn.CloseWrite(); err != nil {
		<-got
		return false, err
	}
	if err := <-got; err != nil {
		return false, err
	}
	return string(sent.Sum(nil)) == string(recv.Sum(nil)), nil
}

func dialIn(ns, addr string) (*net.TCPConn, error) {
	var c net.Conn
	err := lab.InNamespace(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// echoBackend serves TCP echo on the server's address, port 7000.
func echoBackend(l *lab.Lab) (func(), error) {
	var ln net.Listener
	if err := lab.InNamespace(l.Server, func() (err error) {
		ln, err = net.Listen("tcp", lab.ServerIP.String()+":7000")
		return err
	}); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
			})
		}
	})
	return func() { _ = ln.Close(); wg.Wait() }, nil
}

// logTail keeps a process's output.
type logTail struct {
	mu sync.Mutex
	b  strings.Builder
}

func (t *logTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.Write(p)
}

func (t *logTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}

func startIn(l *lab.Lab, ns, tmp, bin string, args ...string) (*exec.Cmd, *logTail, error) {
	cmd := l.Command(ns, bin, args...)
	home, err := os.MkdirTemp(tmp, "home-")
	if err != nil {
		return nil, nil, err
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "STATE_DIRECTORY=" + home}
	lt := &logTail{}
	cmd.Stdout, cmd.Stderr = lt, lt
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return cmd, lt, nil
}

func waitFor(lt *logTail, what string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(lt.String(), what) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no %q within %v:\n%s", what, timeout, lt)
}

// stop sends SIGTERM and waits for a clean exit.
func stop(cmd *exec.Cmd) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("did not exit within 30 s of SIGTERM")
	}
}

// rssKiB reads a process's resident memory.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

// scrape reads the server's metrics endpoint, which listens on loopback
// inside the server's namespace: the value of each unlabelled sample.
func scrape(l *lab.Lab) (map[string]float64, error) {
	var c net.Conn
	if err := lab.InNamespace(l.Server, func() (err error) {
		c, err = net.DialTimeout("tcp", "127.0.0.1:9100", 5*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: soak\r\n\r\n"); err != nil {
		return nil, err
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.ContainsAny(name, "{#") {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}

func writeCSV(path string, samples []sample) error {
	f, err := os.Create(path) // #nosec G304 -- a file in the output directory the operator chose
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"seconds", "server_rss_kib", "server_heap_inuse_kib", "server_goroutines", "streams_done", "streams_corrupt", "streams_failed"})
	for _, s := range samples {
		_ = w.Write([]string{strconv.Itoa(int(s.at.Seconds())), strconv.FormatInt(s.rssKiB, 10), strconv.FormatInt(s.heapKiB, 10), strconv.FormatInt(s.goroutines, 10),
			strconv.FormatInt(s.done, 10), strconv.FormatInt(s.corrupt, 10), strconv.FormatInt(s.failed, 10)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// plotSamples draws the server's memory and goroutines over time.
func plotSamples(path string, samples []sample, profile string) error {
	p := plot.New()
	p.Title.Text = "qtsoak on " + profile + ": the server over time"
	p.X.Label.Text = "minutes"
	p.Y.Label.Text = "MiB / goroutines (tens)"
	rss := make(plotter.XYs, len(samples))
	heap := make(plotter.XYs, len(samples))
	gor := make(plotter.XYs, len(samples))
	for i, s := range samples {
		rss[i] = plotter.XY{X: s.at.Minutes(), Y: float64(s.rssKiB) / 1024}
		heap[i] = plotter.XY{X: s.at.Minutes(), Y: float64(s.heapKiB) / 1024}
		gor[i] = plotter.XY{X: s.at.Minutes(), Y: float64(s.goroutines) / 10}
	}
	l1, err := plotter.NewLine(rss)
	if err != nil {
		return err
	}
	lh, err := plotter.NewLine(heap)
	if err != nil {
		return err
	}
	lh.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
	l2, err := plotter.NewLine(gor)
	if err != nil {
		return err
	}
	l2.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	p.Add(l1, lh, l2, plotter.NewGrid())
	p.Legend.Add("server RSS, MiB", l1)
	p.Legend.Add("server heap in use, MiB", lh)
	p.Legend.Add("server goroutines / 10", l2)
	p.Legend.Left = true
	p.Legend.Top = true
	p.Y.Min = 0
	return p.Save(8*vg.Inch, 4*vg.Inch, path)
}
