package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
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
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/core/secret"
	"github.com/qtunnel/qtunnel/internal/testutil"
)

// The attack runs in a child process (this test binary, re-run with
// attackEnv set) at the lowest CPU priority: a real attacker's CPU is not
// the server's, and on this two-core machine an attacker at full priority
// would measure its own cost, not the server's.
const attackEnv = "QTUNNEL_E2E_ATTACK"

// attackPlan tells the child what to attack.
type attackPlan struct {
	Server  string   // host:port, UDP (QUIC) and TCP (fallback)
	Sources []string // source IPs to attack from
	// TCPProofSource is where the TLS/TCP wrong proofs come from: not one
	// of Sources, which the QUIC wrong secrets get blocked at the same
	// time (the block covers both transports), so that some of them reach
	// the masquerade whatever the timing.
	TCPProofSource string
	WrongSecret    string
	Handshakes     int // wrong-secret QUIC handshakes
}

// attackReport is what the child did, for the test's log.
type attackReport struct {
	GarbageDatagrams     int
	RandomTCP, TCPClosed int
	Truncated            int
	Handshakes           int
	Refused              int // refused before the handshake (rate, blocked, full)
	Served               int // handshake done, proof sent, no verdict: the web site's silence
	Rejected             int // an explicit rejection (would mean the masquerade is off)
	TCPWrongProofs       int
	TCPWebAnswers        int // TLS/TCP wrong proofs that got an HTTP answer
	// Took is how long each part of the attack took.
	Took map[string]string
}

// noRaceBinary builds qtunnel without the race detector, once: the attack
// test measures the server's service under load, which the detector's
// cost would distort (every other e2e test keeps it).
var noRace struct {
	once sync.Once
	path string
	err  error
}

func noRaceBinary(t *testing.T) string {
	t.Helper()
	noRace.once.Do(func() {
		noRace.path = filepath.Join(filepath.Dir(binary), "qtunnel-norace")
		out, err := exec.Command("go", "build", "-o", noRace.path, "../server").CombinedOutput()
		if err != nil {
			noRace.err = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if noRace.err != nil {
		t.Fatal(noRace.err)
	}
	return noRace.path
}

// TestServerUnderAttack: while one client downloads at a steady 160
// Mbit/s, the server gets garbage UDP datagrams, random TCP bytes,
// truncated and oversized headers, slow-loris peers that never finish a
// handshake or never speak, and a burst of 1,000 wrong-secret handshakes.
// The client's throughput during the attack stays at least 80 % of before
// (measured in this one run), its connection is never dropped, the
// server's peak memory stays under its configured memory-mib, every bad
// peer is closed, and the limits show in the metrics.
func TestServerUnderAttack(t *testing.T) {
	bin := noRaceBinary(t)
	const rate = 20 << 20 // bytes per second the backend sends
	backend := testutil.StartBackend(t, func(c *net.TCPConn) { pacedSource(c, rate) })

	dir := t.TempDir()
	port := freePort(t)
	serverAddr := fmt.Sprintf("127.0.0.1:%d", port)
	metricsAddr := testutil.FreeAddr(t)
	secretPath := secretFile(t, strongSecret)
	const memoryMiB = 256
	cfg := writeFile(t, dir, "server.yaml", fmt.Sprintf(`mode: server
transport: quic
listen: %s
backend: %s
secret-file: %s
state-dir: %s
metrics: %s
control: off
limits:
  handshake-timeout: 3s
  memory-mib: %d
`, serverAddr, backend.Addr(), secretPath, t.TempDir(), metricsAddr, memoryMiB))
	server := startBinary(t, bin, nil, "server", nil, "-config="+cfg)
	server.waitLog(`msg="server started"`, 20*time.Second)
	clientAddr := testutil.FreeAddr(t)
	client := startBinary(t, bin, nil, "client", nil, "-listen="+clientAddr, "-backend="+serverAddr, "-clientmode=true",
		"-quic=true", "-secret-file="+secretPath, "-control=off")
	client.waitLog(`msg="connected to server"`, 20*time.Second)

	// The legitimate client's download, sampled.
	dl := startDownload(t, clientAddr)
	time.Sleep(time.Second) // past the start
	goroutinesBefore := scrape(t, metricsAddr)["go_goroutines"]
	before := dl.rate(3 * time.Second)

	// Slow-loris peers, from their own source address.
	loris := startSlowLoris(t, serverAddr, "127.0.0.12", 30)

	// The attack.
	plan := attackPlan{Server: serverAddr, WrongSecret: "attacker-guess-0123456789abcdef0123456789abcdef", Handshakes: 1000,
		TCPProofSource: "127.0.0.13"}
	for i := 2; i <= 11; i++ {
		plan.Sources = append(plan.Sources, "127.0.0."+strconv.Itoa(i))
	}
	mark := dl.mark()
	began := time.Now()
	report := runAttack(t, plan)
	attackTime := time.Since(began)
	// A short attack is measured over at least 3 s from its start.
	if attackTime < 3*time.Second {
		time.Sleep(3*time.Second - attackTime)
	}
	during := dl.since(mark)
	t.Logf("attack: %+v in %v", report, attackTime.Round(time.Millisecond))
	t.Logf("client download: %.1f MiB/s before, %.1f MiB/s during the attack (%.0f %%)",
		before/(1<<20), during/(1<<20), 100*during/before)
	if during < 0.8*before {
		t.Errorf("the client's throughput fell to %.0f %% of before during the attack; want at least 80 %%", 100*during/before)
	}
	if report.Handshakes != plan.Handshakes {
		t.Errorf("attack made %d wrong-secret handshakes, planned %d", report.Handshakes, plan.Handshakes)
	}
	if report.Rejected != 0 {
		t.Errorf("%d wrong secrets got an explicit rejection; the masquerade should answer as a web site", report.Rejected)
	}
	if report.TCPWebAnswers == 0 {
		t.Error("no TLS/TCP wrong proof got the web site's answer")
	}

	// Every slow-loris peer was closed by the server, in about the
	// handshake timeout.
	loris.check(t, 3*time.Second)

	m := scrape(t, metricsAddr)
	if m["qtunnel_auth_failures_total"] == 0 || m[`qtunnel_connections_refused_total{reason="blocked"}`] == 0 {
		t.Errorf("metrics show %v wrong secrets and %v refusals of blocked sources; want both above 0",
			m["qtunnel_auth_failures_total"], m[`qtunnel_connections_refused_total{reason="blocked"}`])
	}
	t.Logf("server metrics: %v wrong secrets, %v web visitors, refused: %v rate, %v blocked, %v full",
		m["qtunnel_auth_failures_total"], m["qtunnel_web_visitors_total"], m[`qtunnel_connections_refused_total{reason="rate"}`],
		m[`qtunnel_connections_refused_total{reason="blocked"}`], m[`qtunnel_connections_refused_total{reason="full"}`])
	if v := m["qtunnel_connections_active"]; v != 1 {
		t.Errorf("server has %v client connections, want the 1 legitimate one", v)
	}
	// The server lets go of what the attack took.
	var after float64
	if !testutil.Eventually(20*time.Second, func() bool {
		after = scrape(t, metricsAddr)["go_goroutines"]
		return after <= goroutinesBefore+10
	}) {
		t.Errorf("server goroutines: %v before the attack, %v after it", goroutinesBefore, after)
	}
	peak := peakRSS(t, server.cmd.Process.Pid)
	t.Logf("server peak memory (VmHWM): %.1f MiB, limit %d MiB; goroutines %v before, %v after", float64(peak)/(1<<20), memoryMiB, goroutinesBefore, after)
	if peak >= memoryMiB<<20 {
		t.Errorf("server peak memory %.1f MiB, over its memory-mib of %d", float64(peak)/(1<<20), memoryMiB)
	}
	// The legitimate client's connection was never dropped.
	dl.stop(t)
	if n := strings.Count(client.stderr.String(), `msg="connected to server"`); n != 1 {
		t.Errorf("client connected %d times; want once (its connection never dropped)", n)
	}
}

// pacedSource writes to c at rate bytes per second until c fails.
func pacedSource(c *net.TCPConn, rate int) {
	buf := make([]byte, 32<<10)
	start := time.Now()
	sent := 0
	for {
		due := int(time.Since(start).Seconds() * float64(rate))
		if sent >= due {
			time.Sleep(time.Millisecond)
			continue
		}
		n, err := c.Write(buf[:min(len(buf), due-sent)])
		sent += n
		if err != nil {
			return
		}
	}
}

// download reads from a forward without pause, counting what arrives.
type download struct {
	conn  *net.TCPConn
	bytes atomic.Int64
	done  chan error
}

func startDownload(t *testing.T, addr string) *download {
	t.Helper()
	c, err := testutil.DialTCP(addr)
	if err != nil {
		t.Fatal(err)
	}
	d := &download{conn: c, done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			d.bytes.Add(int64(n))
			if err != nil {
				d.done <- err
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return d
}

type downloadMark struct {
	at    time.Time
	bytes int64
}

func (d *download) mark() downloadMark { return downloadMark{time.Now(), d.bytes.Load()} }

// since is the rate from m to now, in bytes per second.
func (d *download) since(m downloadMark) float64 {
	return float64(d.bytes.Load()-m.bytes) / time.Since(m.at).Seconds()
}

// rate measures the rate over the next window.
func (d *download) rate(window time.Duration) float64 {
	m := d.mark()
	time.Sleep(window)
	return d.since(m)
}

// stop checks the download never broke, and ends it.
func (d *download) stop(t *testing.T) {
	t.Helper()
	select {
	case err := <-d.done:
		t.Errorf("the client's download broke: %v", err)
	default:
	}
	d.conn.Close()
}

// slowLoris holds peers that never complete a handshake (TCP, a few bytes
// of a ClientHello) or never speak after it (QUIC), and records when the
// server closed each.
type slowLoris struct {
	began  time.Time
	mu     sync.Mutex
	closed []time.Duration // after began, one per peer, -1 for one the server did not close
	clean  int             // QUIC peers closed with an application error (not a timeout of ours)
	wg     sync.WaitGroup
}

func startSlowLoris(t *testing.T, server, source string, n int) *slowLoris {
	t.Helper()
	l := &slowLoris{began: time.Now()}
	const patience = 15 * time.Second
	for range n {
		l.wg.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
			c, err := d.Dial("tcp", server)
			if err != nil {
				l.record(-1, false)
				return
			}
			defer c.Close()
			_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x02}) // the start of a TLS record, and no more
			_ = c.SetReadDeadline(time.Now().Add(patience))
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				l.record(-1, false)
				return
			}
			l.record(time.Since(l.began), true)
		})
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(source)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	t.Cleanup(func() { tr.Close(); udp.Close() })
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto.ALPNQUIC}, MinVersion: tls.VersionTLS13}
	for range n {
		l.wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := tr.Dial(ctx, mustUDPAddr(t, server), tlsConf, &quic.Config{MaxIdleTimeout: patience, MaxIncomingUniStreams: 3})
			if err != nil {
				l.record(-1, false)
				return
			}
			select {
			case <-conn.Context().Done():
				var ae *quic.ApplicationError
				err := context.Cause(conn.Context())
				l.record(time.Since(l.began), errors.As(err, &ae) && ae.Remote)
			case <-time.After(patience):
				_ = conn.CloseWithError(0, "")
				l.record(-1, false)
			}
		})
	}
	return l
}

func (l *slowLoris) record(d time.Duration, clean bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = append(l.closed, d)
	if clean {
		l.clean++
	}
}

// check waits for every peer and checks the server closed each, cleanly
// and in about timeout.
func (l *slowLoris) check(t *testing.T, timeout time.Duration) {
	t.Helper()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.closed)
	t.Logf("slow-loris peers: %d, closed by the server after %v (first) to %v (last), %d cleanly",
		len(l.closed), l.closed[0].Round(10*time.Millisecond), l.closed[len(l.closed)-1].Round(10*time.Millisecond), l.clean)
	if open := len(l.closed) - len(slices.DeleteFunc(slices.Clone(l.closed), func(d time.Duration) bool { return d < 0 })); open > 0 {
		t.Errorf("%d slow-loris peers were not closed by the server", open)
	}
	if last := l.closed[len(l.closed)-1]; last > timeout+5*time.Second {
		t.Errorf("the last slow-loris peer was closed after %v; the handshake timeout is %v", last, timeout)
	}
	if l.clean != len(l.closed) {
		t.Errorf("%d of %d slow-loris peers were closed cleanly", l.clean, len(l.closed))
	}
}

func mustUDPAddr(t *testing.T, addr string) *net.UDPAddr {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// peakRSS reads a process's peak resident memory (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// runAttack runs the attack in a child process at the lowest priority.
func runAttack(t *testing.T, plan attackPlan) attackReport {
	t.Helper()
	js, _ := json.Marshal(plan)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttackHelper$", "-test.v")
	cmd.Env = append(os.Environ(), attackEnv+"="+string(js))
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, 19)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("attack: %v\n%s", err, out)
	}
	var r attackReport
	for line := range strings.SplitSeq(out.String(), "\n") {
		if js, ok := strings.CutPrefix(line, "REPORT "); ok {
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatalf("attack printed no report:\n%s", out)
	return r
}

// TestAttackHelper is the attack's child process; it does nothing in a
// normal test run.
func TestAttackHelper(t *testing.T) {
	js := os.Getenv(attackEnv)
	if js == "" {
		t.Skip("run by TestServerUnderAttack")
	}
	var plan attackPlan
	if err := json.Unmarshal([]byte(js), &plan); err != nil {
		t.Fatal(err)
	}
	var r attackReport
	var wg sync.WaitGroup
	var mu sync.Mutex
	add := func(f func(r *attackReport)) {
		mu.Lock()
		f(&r)
		mu.Unlock()
	}
	r.Took = map[string]string{}
	part := func(name string, f func()) {
		wg.Go(func() {
			start := time.Now()
			f()
			add(func(r *attackReport) { r.Took[name] = time.Since(start).Round(time.Millisecond).String() })
		})
	}
	part("garbage-udp", func() { garbageUDP(t, plan, add) })
	part("random-tcp", func() { randomTCP(plan, add) })
	part("truncated", func() { truncatedHeaders(t, plan, add) })
	part("tcp-wrong-proofs", func() { tcpWrongProofs(plan, add) })
	part("quic-wrong-proofs", func() { wrongSecretHandshakes(t, plan, add) })
	wg.Wait()
	out, _ := json.Marshal(r)
	fmt.Println("REPORT " + string(out))
}

func source(plan attackPlan, i int) net.IP { return net.ParseIP(plan.Sources[i%len(plan.Sources)]) }

// garbageUDP sends random datagrams, some shaped like QUIC long headers.
func garbageUDP(t *testing.T, plan attackPlan, add func(func(*attackReport))) {
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: source(plan, 0)}, mustUDPAddr(t, plan.Server))
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	buf := make([]byte, 1400)
	const n = 20000
	for i := range n {
		b := buf[:1+mrand.IntN(len(buf))]
		_, _ = rand.Read(b)
		if i%2 == 0 {
			b[0] = 0xc0 | b[0]&0x0f // a long header, version and all random
		}
		_, _ = c.Write(b)
	}
	add(func(r *attackReport) { r.GarbageDatagrams = n })
}

// randomTCP connects and sends random bytes; the server must close.
func randomTCP(plan attackPlan, add func(func(*attackReport))) {
	var wg sync.WaitGroup
	const n = 100
	var closed atomic.Int64
	for i := range n {
		wg.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: source(plan, i)}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", plan.Server)
			if err != nil {
				return
			}
			defer c.Close()
			b := make([]byte, 2048)
			_, _ = rand.Read(b)
			_, _ = c.Write(b)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c); err == nil || !isTimeout(err) {
				closed.Add(1)
			}
		})
	}
	wg.Wait()
	add(func(r *attackReport) { r.RandomTCP, r.TCPClosed = n, int(closed.Load()) })
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// truncatedHeaders sends first frames cut short or claiming huge lengths,
// over QUIC and TLS/TCP.
func truncatedHeaders(t *testing.T, plan attackPlan, add func(func(*attackReport))) {
	frames := [][]byte{
		proto.AppendVarint(proto.AppendVarint(nil, proto.H3FrameType), 1<<40),   // a huge length, nothing after
		proto.AppendH3Frame(nil, make([]byte, proto.EarlyAuthRequestSize))[:12], // cut short
		proto.AppendH3Frame(nil, []byte{proto.Version, 1, 2}),                   // the right type, a short payload
		{0x40}, // half a varint
		append(proto.AppendVarint(nil, 1), proto.AppendVarint(nil, 1<<30)...),                // HEADERS claiming 1 GiB
		proto.AppendH3Frame(nil, append([]byte{proto.EarlyAuthMarker}, make([]byte, 56)...)), // an early proof, all zeros
	}
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto.ALPNQUIC}, MinVersion: tls.VersionTLS13}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: source(plan, 1)})
	if err != nil {
		t.Error(err)
		return
	}
	tr := &quic.Transport{Conn: udp}
	defer udp.Close()
	defer tr.Close()
	var wg sync.WaitGroup
	for _, f := range frames {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := tr.Dial(ctx, mustUDPAddr(t, plan.Server), tlsConf, &quic.Config{MaxIncomingUniStreams: 3})
			if err != nil {
				return
			}
			defer conn.CloseWithError(0, "")
			st, err := conn.OpenStreamSync(ctx)
			if err != nil {
				return
			}
			_, _ = st.Write(f)
			_ = st.Close()
			_ = st.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, st)
		})
		wg.Go(func() {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: source(plan, 2)}, Timeout: 5 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp", plan.Server, &tls.Config{InsecureSkipVerify: true, NextProtos: proto.ALPNTCP})
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = c.Write(f)
			_ = c.CloseWrite()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(io.Discard, c)
		})
	}
	wg.Wait()
	add(func(r *attackReport) { r.Truncated = 2 * len(frames) })
}

// tcpWrongProofs proves a wrong secret over TLS/TCP; the masquerade
// answers with HTTP.
func tcpWrongProofs(plan attackPlan, add func(func(*attackReport))) {
	wrong, _ := secret.New([]byte(plan.WrongSecret))
	var wg sync.WaitGroup
	const n = 50
	var web atomic.Int64
	for range n {
		wg.Go(func() {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(plan.TCPProofSource)}, Timeout: 5 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp", plan.Server, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			if err != nil {
				return
			}
			defer c.Close()
			ekm, err := auth.Exporter(c.ConnectionState())
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(12 * time.Second))
			// A wrong proof, then the end of a request line, so that a web
			// server answers at once.
			_, _ = c.Write(append(proto.AppendAuthRequest(nil, proto.AuthRequest{Proof: auth.ClientProof(wrong, ekm)}), " / HTTP/1.1\r\nHost: x\r\n\r\n"...))
			b, _ := io.ReadAll(c)
			if strings.HasPrefix(string(b), "HTTP/1.1 ") {
				web.Add(1)
			}
		})
	}
	wg.Wait()
	add(func(r *attackReport) { r.TCPWrongProofs, r.TCPWebAnswers = n, int(web.Load()) })
}

// wrongSecretHandshakes makes plan.Handshakes QUIC handshakes in a burst,
// each proving a wrong secret.
func wrongSecretHandshakes(t *testing.T, plan attackPlan, add func(func(*attackReport))) {
	wrong, _ := secret.New([]byte(plan.WrongSecret))
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto.ALPNQUIC}, MinVersion: tls.VersionTLS13}
	var trs []*quic.Transport
	for _, src := range plan.Sources {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
		if err != nil {
			t.Error(err)
			return
		}
		tr := &quic.Transport{Conn: udp}
		defer udp.Close()
		defer tr.Close()
		trs = append(trs, tr)
	}
	server := mustUDPAddr(t, plan.Server)
	jobs := make(chan int)
	var refused, served, rejected atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			for i := range jobs {
				// An attacker gives up on a silent server fast.
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				conn, err := trs[i%len(trs)].Dial(ctx, server, tlsConf, &quic.Config{MaxIncomingUniStreams: 3})
				if err != nil {
					refused.Add(1)
					cancel()
					continue
				}
				ekm, _ := auth.Exporter(conn.ConnectionState().TLS)
				st, err := conn.OpenStreamSync(ctx)
				if err == nil {
					_, _ = st.Write(proto.AppendH3Frame(nil, proto.AppendAuthRequest(nil, proto.AuthRequest{Proof: auth.ClientProof(wrong, ekm)})))
					_ = st.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
					if _, err := proto.ReadAuthResponse(st); err == nil {
						rejected.Add(1)
					} else {
						served.Add(1)
					}
				}
				_ = conn.CloseWithError(0, "")
				cancel()
			}
		})
	}
	for i := range plan.Handshakes {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	add(func(r *attackReport) {
		r.Handshakes = plan.Handshakes
		r.Refused, r.Served, r.Rejected = int(refused.Load()), int(served.Load()), int(rejected.Load())
	})
}
