package transport

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func socketCongestion(t *testing.T, c net.Conn) string {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var gerr error
	_ = raw.Control(func(fd uintptr) {
		name, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return strings.TrimRight(name, "\x00")
}

// TestTCPCongestionControl checks that both ends of a TCP-mode connection
// get the algorithm asked for: the dialed socket, and the accepted one
// through its listener.
func TestTCPCongestionControl(t *testing.T) {
	avail, err := os.ReadFile("/proc/sys/net/ipv4/tcp_available_congestion_control")
	if err != nil || !strings.Contains(string(avail), "reno") {
		t.Skip("cannot read the kernel's congestion controls")
	}
	// reno is built into every Linux kernel, so the test runs everywhere;
	// bbr is asked for the same way.
	const want = "reno"
	var notes []bool
	note := func(ok bool, _ error) { notes = append(notes, ok) }
	lc := net.ListenConfig{Control: tcpCongestionControl(want, note)}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Control: tcpCongestionControl(want, note)}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := socketCongestion(t, c); got != want {
		t.Errorf("dialed socket uses %q, want %q", got, want)
	}
	if got := socketCongestion(t, s); got != want {
		t.Errorf("accepted socket uses %q, want %q", got, want)
	}
	if len(notes) != 2 || !notes[0] || !notes[1] {
		t.Errorf("notes = %v, want two successes", notes)
	}

	// An algorithm the kernel lacks is reported, and the dial still works.
	notes = nil
	d2 := net.Dialer{Control: tcpCongestionControl("no-such-algorithm", note)}
	c2, err := d2.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial with an unknown algorithm failed: %v", err)
	}
	c2.Close()
	if len(notes) != 1 || notes[0] {
		t.Errorf("notes = %v, want one failure", notes)
	}
}
