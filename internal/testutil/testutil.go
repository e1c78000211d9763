// Package testutil holds helpers shared by QTunnel's tests: backends that
// echo or serve, and a way to move and check a lot of data through a
// connection. It is for tests only.
package testutil

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/core/cert"
)

// Backend is a TCP server on loopback run by a test.
type Backend struct {
	ln       net.Listener
	Accepted atomic.Int64 // connections accepted so far
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// Addr is the backend's host:port.
func (b *Backend) Addr() string { return b.ln.Addr().String() }

// StartBackend serves every connection with handle until the test ends.
func StartBackend(t testing.TB, handle func(*net.TCPConn)) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Backend{ln: ln, conns: make(map[net.Conn]struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.Accepted.Add(1)
			b.mu.Lock()
			b.conns[c] = struct{}{}
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer func() {
					b.mu.Lock()
					delete(b.conns, c)
					b.mu.Unlock()
					_ = c.Close()
				}()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(b.Close)
	return b
}

// Close stops the backend and waits for its connections to end.
func (b *Backend) Close() {
	_ = b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// Echo copies everything back, and half-closes when the client does.
func Echo(c *net.TCPConn) {
	_, _ = io.Copy(c, c)
	_ = c.CloseWrite()
}

// StartEchoBackend starts a backend that echoes.
func StartEchoBackend(t testing.TB) *Backend { return StartBackend(t, Echo) }

// EchoCheck sends size random bytes through conn while reading the echo
// concurrently, and checks the SHA-256 of what came back against what was
// sent. It half-closes its side after sending and expects EOF afterwards.
func EchoCheck(conn *net.TCPConn, size int, seed uint64) error {
	src := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) // #nosec G404 -- test data checked by hash, nothing secret
	sent := sha256.New()
	recv := sha256.New()
	errc := make(chan error, 1)
	var got int64
	go func() {
		n, err := io.Copy(recv, conn)
		got = n
		errc <- err
	}()
	buf := make([]byte, 64<<10)
	for left := size; left > 0; {
		n := min(left, len(buf))
		for i := 0; i < n; i += 8 {
			v := src.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				buf[i+j] = byte(v >> (8 * j)) // #nosec G115 -- truncation meant: the random word a byte at a time
			}
		}
		sent.Write(buf[:n])
		if _, err := conn.Write(buf[:n]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		left -= n
	}
	if err := conn.CloseWrite(); err != nil {
		return fmt.Errorf("close write: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("read echo after %d bytes: %w", got, err)
	}
	if got != int64(size) {
		return fmt.Errorf("echo returned %d bytes, want %d", got, size)
	}
	if string(sent.Sum(nil)) != string(recv.Sum(nil)) {
		return errors.New("echo differs from what was sent (SHA-256 mismatch)")
	}
	return nil
}

// PacedEcho sends size random bytes through conn in steps with a pause
// after each (so that a test can act mid-transfer), reads the echo
// concurrently, and compares SHA-256 sums. It does not close conn.
func PacedEcho(conn *net.TCPConn, size, step int, pause time.Duration) error {
	sent, recv := sha256.New(), sha256.New()
	got := make(chan error, 1)
	go func() {
		n, err := io.CopyN(recv, conn, int64(size))
		if err == nil && n != int64(size) {
			err = fmt.Errorf("echo returned %d bytes, want %d", n, size)
		}
		got <- err
	}()
	buf := make([]byte, step)
	src := rand.New(rand.NewPCG(uint64(size), uint64(step))) // #nosec G115 G404 -- a reproducible test pattern: any seed bits will do, nothing secret
	for left := size; left > 0; left -= step {
		for i := range buf {
			buf[i] = byte(src.Uint32()) // #nosec G115 -- truncation meant: a random byte
		}
		sent.Write(buf)
		if _, err := conn.Write(buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		time.Sleep(pause)
	}
	if err := <-got; err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if string(sent.Sum(nil)) != string(recv.Sum(nil)) {
		return errors.New("echo differs from what was sent (SHA-256 mismatch)")
	}
	return nil
}

// DialTCP connects to addr with a timeout.
func DialTCP(addr string) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// ConcurrentEcho runs n EchoCheck connections to addr at once, each of
// size bytes, and returns the first error.
func ConcurrentEcho(addr string, n, size int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := DialTCP(addr)
			if err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
			if err := EchoCheck(c, size, uint64(i)+1); err != nil { // #nosec G115 -- i counts up from 0: a seed
				errs <- fmt.Errorf("conn %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// ClosedPort returns a loopback address on which nothing listens.
func ClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Eventually polls cond every 20 ms until it holds or timeout passes.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SyncBuffer is a bytes.Buffer that goroutines (a logger, a child process's
// output copier) may write while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// UDPDelayProxy forwards UDP datagrams between clients and a target,
// holding each one for a fixed delay each way: a long link on loopback,
// for tests that need a handshake to take a while.
type UDPDelayProxy struct {
	ln     *net.UDPConn
	target *net.UDPAddr
	delay  time.Duration
	wg     sync.WaitGroup

	blocked atomic.Bool // drop every datagram, as a firewall that blocks UDP

	mu        sync.Mutex
	peers     map[string]*net.UDPConn // client address -> socket towards the target
	tcp       net.Listener            // ForwardTCP's listener, or nil
	recording bool
	recorded  [][]byte // datagrams from clients, while recording
}

// Record starts keeping a copy of every datagram clients send; the
// returned function stops and hands them over, for Replay.
func (p *UDPDelayProxy) Record() func() [][]byte {
	p.mu.Lock()
	p.recording, p.recorded = true, nil
	p.mu.Unlock()
	return func() [][]byte {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.recording = false
		return p.recorded
	}
}

// Replay sends pkts to the target from a new socket, as an attacker who
// recorded them would, and keeps that socket open (answers are read and
// dropped) until the test ends.
func (p *UDPDelayProxy) Replay(t testing.TB, pkts [][]byte) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, p.target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, err := c.Read(buf); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}()
	for _, pkt := range pkts {
		if _, err := c.Write(pkt); err != nil {
			t.Fatalf("replay: %v", err)
		}
	}
}

// Block drops every datagram both ways while on: UDP blocked.
func (p *UDPDelayProxy) Block(on bool) { p.blocked.Store(on) }

// ForwardTCP also forwards TCP from the proxy's port number to the
// target's: the path a client falls back to when UDP is blocked.
func (p *UDPDelayProxy) ForwardTCP(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", p.Addr())
	if err != nil {
		t.Fatalf("TCP on the proxy's port: %v", err)
	}
	p.mu.Lock()
	p.tcp = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target.String())
			if err != nil {
				_ = c.Close()
				continue
			}
			p.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer p.wg.Done()
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
}

// StartUDPDelayProxy listens on a loopback port in front of target; it
// stops when the test ends.
func StartUDPDelayProxy(t testing.TB, target string, delay time.Duration) *UDPDelayProxy {
	t.Helper()
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &UDPDelayProxy{ln: ln, target: ta, delay: delay, peers: map[string]*net.UDPConn{}}
	p.wg.Add(1)
	go p.fromClients()
	t.Cleanup(p.close)
	return p
}

// Addr is where clients send.
func (p *UDPDelayProxy) Addr() string { return p.ln.LocalAddr().String() }

func (p *UDPDelayProxy) fromClients() {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := p.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if p.blocked.Load() {
			continue
		}
		p.mu.Lock()
		if p.recording {
			p.recorded = append(p.recorded, append([]byte(nil), buf[:n]...))
		}
		p.mu.Unlock()
		up, err := p.upstream(from)
		if err != nil {
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		p.later(func() { _, _ = up.Write(pkt) })
	}
}

func (p *UDPDelayProxy) upstream(client *net.UDPAddr) (*net.UDPConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if up, ok := p.peers[client.String()]; ok {
		return up, nil
	}
	if p.peers == nil {
		return nil, net.ErrClosed
	}
	up, err := net.DialUDP("udp", nil, p.target)
	if err != nil {
		return nil, err
	}
	p.peers[client.String()] = up
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP errors while the target is down
			}
			if p.blocked.Load() {
				continue
			}
			pkt := append([]byte(nil), buf[:n]...)
			p.later(func() { _, _ = p.ln.WriteToUDP(pkt, client) })
		}
	}()
	return up, nil
}

// Rebind drops the proxy's sockets towards the target, so that the next
// datagram of each client leaves from a new port: what a NAT does when it
// forgets a mapping. The target sees its peers move.
func (p *UDPDelayProxy) Rebind() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for client, up := range p.peers {
		_ = up.Close()
		delete(p.peers, client)
	}
}

// later runs send after the delay, counted as the proxy's work.
func (p *UDPDelayProxy) later(send func()) {
	p.wg.Add(1)
	time.AfterFunc(p.delay, func() {
		defer p.wg.Done()
		send()
	})
}

func (p *UDPDelayProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	if p.tcp != nil {
		_ = p.tcp.Close()
	}
	for _, up := range p.peers {
		_ = up.Close()
	}
	p.peers = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// Certificate returns a fresh self-signed certificate for hosts, made the
// way a QTunnel server makes its own (cert.Generate).
func Certificate(t testing.TB, hosts ...string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := cert.Generate(hosts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// FreePort returns a loopback port that is free on TCP and UDP at the time
// of asking. It picks outside the kernel's ephemeral range, so the source
// port of some unrelated outgoing connection cannot take it between this
// check and the moment a test process binds it (a flake seen in CI).
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := ephemeralRange()
	for range 200 {
		port := 10000 + rand.IntN(lo-10000) // #nosec G404 -- spreads tests over ports; nothing secret
		if port >= lo && port <= hi {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = ln.Close()
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			continue
		}
		_ = uc.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// FreeAddr is FreePort as "127.0.0.1:PORT".
func FreeAddr(t testing.TB) string {
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// ephemeralRange reads Linux's range of ports for outgoing connections,
// or the IANA default elsewhere.
func ephemeralRange() (lo, hi int) {
	lo, hi = 49152, 65535
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var l, h int
		if n, _ := fmt.Sscan(string(b), &l, &h); n == 2 && l > 11000 && h >= l {
			lo, hi = l, h
		}
	}
	return lo, hi
}
