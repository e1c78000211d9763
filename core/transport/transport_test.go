package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/cert"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},
		{50, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := b.Delay(tt.attempt)
			if d < tt.lo || d > tt.hi {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", tt.attempt, d, tt.lo, tt.hi)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("attempt %d: only %d distinct delays in 200 draws; want jitter", tt.attempt, len(seen))
		}
	}
	if d := (Backoff{}).Delay(1); d <= 0 || d > 100*time.Millisecond {
		t.Errorf("zero Backoff: delay %v, want the 100 ms default", d)
	}
}

func TestIsConfigError(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("connection refused"), false},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("authenticate: %w", auth.ErrRejected), true},
		{auth.ErrServerProof, true},
		{fmt.Errorf("handshake: %w", cert.ErrPinMismatch), true},
		{fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), true},
		{x509.HostnameError{Host: "x"}, true},
		{errors.New("tls: no application protocol"), true},
	}
	for _, tt := range tests {
		if got := IsConfigError(tt.err); got != tt.want {
			t.Errorf("IsConfigError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestClientTLSConfig(t *testing.T) {
	pin := cert.Fingerprint{1}
	tests := []struct {
		name       string
		trust      Trust
		addr       string
		wantErr    bool
		skipVerify bool
		serverName string
		pinned     bool
	}{
		{"secret only, IP", Trust{}, "192.0.2.1:443", false, true, "", false},
		{"secret only, name as SNI", Trust{}, "vpn.example:443", false, true, "vpn.example", false},
		{"pin", Trust{Pin: &pin}, "192.0.2.1:443", false, true, "", true},
		{"CA with name", Trust{CA: true}, "vpn.example:443", false, false, "vpn.example", false},
		{"CA with -sni on an IP", Trust{CA: true, ServerName: "vpn.example"}, "192.0.2.1:443", false, false, "vpn.example", false},
		{"CA needs a name", Trust{CA: true}, "192.0.2.1:443", true, false, "", false},
		{"bad address", Trust{}, "nohostport", true, false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ClientTLSConfig(tt.trust, tt.addr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if c.MinVersion != 0x0304 {
				t.Error("TLS 1.3 not required")
			}
			if c.InsecureSkipVerify != tt.skipVerify || c.ServerName != tt.serverName || (c.VerifyConnection != nil) != tt.pinned {
				t.Errorf("skip=%v name=%q pinned=%v", c.InsecureSkipVerify, c.ServerName, c.VerifyConnection != nil)
			}
		})
	}
}

func TestGroupRefusesAfterClose(t *testing.T) {
	var g group
	var ran atomic.Int32
	release := make(chan struct{})
	if !g.start(func() { <-release; ran.Add(1) }) {
		t.Fatal("start refused on an open group")
	}
	g.close()
	if g.start(func() { ran.Add(1) }) {
		t.Fatal("start accepted after close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if g.wait(ctx) {
		t.Fatal("wait returned true while a goroutine runs")
	}
	close(release)
	if !g.wait(context.Background()) || ran.Load() != 1 {
		t.Fatalf("ran %d goroutines, want 1", ran.Load())
	}
}

func TestBroadcastWakesWaiters(t *testing.T) {
	var b broadcast
	w1, w2 := b.wait(), b.wait()
	select {
	case <-w1:
		t.Fatal("woken before notify")
	default:
	}
	b.notify()
	for _, w := range []<-chan struct{}{w1, w2} {
		select {
		case <-w:
		case <-time.After(time.Second):
			t.Fatal("waiter not woken")
		}
	}
	select {
	case <-b.wait():
		t.Fatal("a new waiter sees an old notification")
	default:
	}
}

func TestParseCongestion(t *testing.T) {
	for in, want := range map[string]Congestion{"": CongestionBBR, "bbr": CongestionBBR, "reno": CongestionReno} {
		if got, err := ParseCongestion(in); err != nil || got != want {
			t.Errorf("ParseCongestion(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseCongestion("cubic"); err == nil {
		t.Error("an unknown controller was accepted")
	}
}
