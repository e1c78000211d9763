package lab

import (
	"encoding/binary"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

func newTestLab(t *testing.T, p Params) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("no /dev/net/tun")
	}
	l, err := New(p, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// udpEcho serves UDP echo in the server namespace.
func udpEcho(t *testing.T, l *Lab, port int) {
	var pc *net.UDPConn
	err := InNamespace(l.Server, func() (err error) {
		pc, err = net.ListenUDP("udp", &net.UDPAddr{IP: ServerIP.AsSlice(), Port: port})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteToUDP(buf[:n], a)
		}
	}()
}

// clientUDP opens a UDP socket in the client namespace connected to the server.
func clientUDP(t *testing.T, l *Lab, port int) *net.UDPConn {
	var c *net.UDPConn
	err := InNamespace(l.Client, func() (err error) {
		c, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: ServerIP.AsSlice(), Port: port})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// probeRTT sends n probes spaced apart and returns the sorted RTTs of those
// answered.
func probeRTT(t *testing.T, c *net.UDPConn, n int, gap time.Duration) []time.Duration {
	var rtts []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			k, err := c.Read(buf)
			if err != nil || k < 12 {
				return
			}
			rtts = append(rtts, time.Duration(time.Now().UnixNano()-int64(binary.BigEndian.Uint64(buf[4:12]))))
		}
	}()
	for i := range n {
		var b [64]byte
		binary.BigEndian.PutUint32(b[:4], uint32(i))
		binary.BigEndian.PutUint64(b[4:12], uint64(time.Now().UnixNano()))
		if _, err := c.Write(b[:]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(gap)
	}
	<-done
	slices.Sort(rtts)
	return rtts
}

func median(d []time.Duration) time.Duration { return d[len(d)/2] }

// TestLabSelfCheck measures the emulated link with plain UDP and TCP probes
// and checks RTT, jitter, loss, bursts, rate and live changes against the
// settings. Tolerances: RTT within 2 ms + 5 %; loss within 5 standard
// deviations of the binomial estimate; TCP goodput 80-100 % of the rate
// (headers and slow start cost the rest).
func TestLabSelfCheck(t *testing.T) {
	if raceEnabled {
		t.Skip("a timing check: make test runs it on its own, without -race")
	}
	l := newTestLab(t, Params{Delay: 20 * time.Millisecond})
	udpEcho(t, l, 7001)
	c := clientUDP(t, l, 7001)

	t.Run("rtt", func(t *testing.T) {
		rtts := probeRTT(t, c, 50, 5*time.Millisecond)
		if len(rtts) < 48 {
			t.Fatalf("%d of 50 probes answered on a lossless link", len(rtts))
		}
		if m := median(rtts); (m - 40*time.Millisecond).Abs() > 2*time.Millisecond+2*time.Millisecond { // 2 ms + 5 %
			t.Errorf("median RTT %v, want 40 ms", m)
		}
	})

	t.Run("changed while running", func(t *testing.T) {
		l.Set(Params{Delay: 60 * time.Millisecond}, Params{Delay: 5 * time.Millisecond})
		time.Sleep(100 * time.Millisecond) // let packets under the old setting drain
		if m := median(probeRTT(t, c, 30, 5*time.Millisecond)); (m - 65*time.Millisecond).Abs() > 2*time.Millisecond+3250*time.Microsecond {
			t.Errorf("median RTT %v after the change, want 65 ms", m)
		}
	})

	t.Run("jitter", func(t *testing.T) {
		l.Set(Params{Delay: 20 * time.Millisecond, Jitter: 8 * time.Millisecond}, Params{Delay: 20 * time.Millisecond})
		time.Sleep(100 * time.Millisecond)
		// Probes 20 ms apart: far enough that keeping order rarely binds.
		rtts := probeRTT(t, c, 100, 20*time.Millisecond)
		spread := rtts[len(rtts)*9/10] - rtts[len(rtts)/10]
		// 6 ms: make test runs this beside the e2e tests on two cores, and
		// the pump's wake-ups come late under that load; a wrong delay or
		// a doubled jitter is still far outside.
		if m := median(rtts); (m - 40*time.Millisecond).Abs() > 6*time.Millisecond {
			t.Errorf("median RTT %v with jitter, want about 40 ms", m)
		}
		if spread < 8*time.Millisecond || spread > 18*time.Millisecond {
			t.Errorf("p10-p90 spread %v, want about 12.8 ms (uniform ±8 ms)", spread)
		}
	})

	t.Run("random loss", func(t *testing.T) {
		l.Set(Params{Loss: 0.05}, Params{})
		got := oneWayLoss(t, l, 4000)
		if math.Abs(got-0.05) > binomialTol(0.05, 4000) {
			t.Errorf("one-way loss %.4f, want 0.05", got)
		}
	})

	t.Run("bursty loss", func(t *testing.T) {
		ge := &GilbertElliott{P: 0.02, R: 0.25, LossBad: 1}
		l.Set(Params{Burst: ge}, Params{})
		seqs := received(t, l, 6000)
		lost, bursts := 0, 0
		for i := 1; i < len(seqs); i++ {
			if gap := int(seqs[i] - seqs[i-1] - 1); gap > 0 {
				lost += gap
				bursts++
			}
		}
		if bursts == 0 {
			t.Fatal("no loss at all")
		}
		if mean := float64(lost) / float64(bursts); mean < 2.5 || mean > 6 {
			t.Errorf("mean loss burst %.2f packets, want about 4", mean)
		}
	})

	t.Run("rate", func(t *testing.T) {
		const rate = 20e6
		l.Set(Params{Delay: 5 * time.Millisecond, RateBitsPerSec: rate}, Params{Delay: 5 * time.Millisecond})
		bps := tcpGoodput(t, l, 3*time.Second)
		if bps < 0.8*rate || bps > 1.0*rate {
			t.Errorf("TCP goodput %.1f Mbit/s through a %.0f Mbit/s link", bps/1e6, rate/1e6)
		}
		up, _ := l.Counters()
		t.Logf("goodput %.2f Mbit/s; queue drops %d", bps/1e6, up.LostQueue.Load())
	})

	t.Run("reorder", func(t *testing.T) {
		l.Set(Params{Delay: 10 * time.Millisecond, Reorder: 0.1}, Params{})
		seqs := received(t, l, 4000)
		// A packet overtook others if an older one arrived after it.
		early := 0
		minLater := uint32(math.MaxUint32)
		for i := len(seqs) - 1; i >= 0; i-- {
			if seqs[i] > minLater {
				early++
			}
			minLater = min(minLater, seqs[i])
		}
		if f := float64(early) / float64(len(seqs)); math.Abs(f-0.1) > binomialTol(0.1, len(seqs))+0.01 {
			t.Errorf("%.3f of packets overtook older ones, want 0.1", f)
		}
	})
}

// received sends n numbered datagrams from the client to a sink in the
// server namespace and returns the numbers in arrival order.
func received(t *testing.T, l *Lab, n int) []uint32 {
	port := 7100 + int(time.Now().UnixNano()%800)
	var sink *net.UDPConn
	if err := InNamespace(l.Server, func() (err error) {
		sink, err = net.ListenUDP("udp", &net.UDPAddr{IP: ServerIP.AsSlice(), Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	c := clientUDP(t, l, port)
	var seqs []uint32
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			_ = sink.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			k, err := sink.Read(buf)
			if err != nil || k < 4 {
				return
			}
			seqs = append(seqs, binary.BigEndian.Uint32(buf[:4]))
		}
	}()
	var b [200]byte
	for i := range n {
		binary.BigEndian.PutUint32(b[:4], uint32(i))
		_, _ = c.Write(b[:])
		if i%10 == 9 {
			time.Sleep(2 * time.Millisecond) // ~5000 packets/s: no queueing
		}
	}
	<-done
	return seqs
}

func oneWayLoss(t *testing.T, l *Lab, n int) float64 {
	return 1 - float64(len(received(t, l, n)))/float64(n)
}

// tcpGoodput sends bulk TCP from client to server for d and returns bits/s
// measured at the receiver.
func tcpGoodput(t *testing.T, l *Lab, d time.Duration) float64 {
	var ln net.Listener
	if err := InNamespace(l.Server, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(ServerIP.String(), "7003"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	result := make(chan float64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			result <- 0
			return
		}
		defer c.Close()
		start := time.Now()
		n, _ := io.Copy(io.Discard, c)
		result <- float64(n*8) / time.Since(start).Seconds()
	}()
	var conn net.Conn
	if err := InNamespace(l.Client, func() (err error) {
		conn, err = net.Dial("tcp", net.JoinHostPort(ServerIP.String(), "7003"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := conn.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	return <-result
}

// TestLabCleansUp checks that Close leaves no namespace behind.
func TestLabCleansUp(t *testing.T) {
	l := newTestLab(t, Params{})
	if !slices.Contains(Namespaces(), l.Router) {
		t.Fatal("lab namespace not listed")
	}
	cmd := l.Command(l.Server, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, ns := range []string{l.Client, l.Router, l.Server} {
		if slices.Contains(Namespaces(), ns) {
			t.Errorf("namespace %s still exists", ns)
		}
	}
	if err := cmd.Wait(); err == nil {
		t.Error("process in the lab survived Close")
	}
}
