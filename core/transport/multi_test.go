package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/qtunnel/qtunnel/core/auth"
	"github.com/qtunnel/qtunnel/core/proto"
)

// stubDialer is a Dialer that only reports a status.
type stubDialer struct {
	status  Status
	changes broadcast
}

func (d *stubDialer) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (d *stubDialer) Open(context.Context) (Stream, error) {
	return nil, errors.New("stub dialer opens nothing")
}
func (d *stubDialer) Status() Status           { return d.status }
func (d *stubDialer) Changed() <-chan struct{} { return d.changes.wait() }

func TestMultiChoose(t *testing.T) {
	const ms = time.Millisecond
	type srv struct {
		connected, heard, noHeartbeat bool
		rtt                           time.Duration
	}
	up := func(rtt time.Duration) srv { return srv{connected: true, heard: true, rtt: rtt} }
	tests := []struct {
		name          string
		servers       []srv
		current       int // index in use before, -1 for none
		want          int // index chosen, -1 for none
		wantFailovers int64
	}{
		{"none healthy", []srv{{}, {connected: true}}, -1, -1, 0},
		{"connected but silent is not healthy", []srv{{connected: true, rtt: ms}}, -1, -1, 0},
		{"first healthy, unmeasured", []srv{{connected: true, heard: true}, {}}, -1, 0, 0},
		{"measured beats unmeasured", []srv{{connected: true, heard: true}, up(50 * ms)}, -1, 1, 0},
		{"lowest round trip", []srv{up(30 * ms), up(10 * ms), up(20 * ms)}, -1, 1, 0},
		{"equal: order decides", []srv{up(10 * ms), up(10 * ms)}, -1, 0, 0},
		{"keeps current if not clearly faster", []srv{up(20 * ms), up(16 * ms)}, 0, 0, 0},
		{"keeps current: 2 ms is noise", []srv{up(4 * ms), up(2500 * time.Microsecond)}, 0, 0, 0},
		{"switches to a clearly faster one", []srv{up(20 * ms), up(10 * ms)}, 0, 1, 0},
		{"fails over from a silent one", []srv{{connected: true, rtt: 5 * ms}, up(80 * ms)}, 0, 1, 1},
		{"fails over from a disconnected one", []srv{up(80 * ms), {heard: true, rtt: 5 * ms}, up(90 * ms)}, 1, 0, 1},
		{"an old server without heartbeats is healthy while connected", []srv{{connected: true, noHeartbeat: true}, {}}, -1, 0, 0},
		{"none left", []srv{{connected: true}, {}}, 0, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var eps []Endpoint
			for range tt.servers {
				eps = append(eps, Endpoint{Address: "s", Dialer: &stubDialer{}})
			}
			m, err := NewMultiDialer(MultiConfig{}, eps)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.servers {
				mb := m.members[i]
				mb.connected, mb.heard, mb.noHeartbeat, mb.rtt = s.connected, s.heard, s.noHeartbeat, s.rtt
			}
			if tt.current >= 0 {
				m.active = m.members[tt.current]
			}
			m.chooseLocked()
			got := -1
			for i, mb := range m.members {
				if mb == m.active {
					got = i
				}
			}
			if got != tt.want || m.failovers != tt.wantFailovers {
				t.Fatalf("chose %d with %d failovers; want %d with %d", got, m.failovers, tt.want, tt.wantFailovers)
			}
		})
	}
}

// TestMultiFailoverCountsAfterGap: the server in use fails while no other
// is healthy; when another comes up, that is a failover too.
func TestMultiFailoverCountsAfterGap(t *testing.T) {
	m, err := NewMultiDialer(MultiConfig{}, []Endpoint{{Address: "a", Dialer: &stubDialer{}}, {Address: "b", Dialer: &stubDialer{}}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := m.members[0], m.members[1]
	a.connected, a.heard = true, true
	m.chooseLocked()
	a.heard = false
	m.chooseLocked()
	if m.active != nil {
		t.Fatal("a silent server is still in use")
	}
	b.connected, b.heard = true, true
	m.chooseLocked()
	if m.active != b || m.failovers != 1 {
		t.Fatalf("active %v, %d failovers; want b, 1", m.active, m.failovers)
	}
}

// TestMultiOpenConfigError: when every server rejects the configuration
// (a wrong secret everywhere), Open says so at once rather than wait.
func TestMultiOpenConfigError(t *testing.T) {
	wrong := fmt.Errorf("authenticate: %w", auth.ErrRejected)
	m, err := NewMultiDialer(MultiConfig{ConnectWait: time.Minute}, []Endpoint{
		{Address: "a", Dialer: &stubDialer{status: Status{State: StateConnecting, LastError: wrong}}},
		{Address: "b", Dialer: &stubDialer{status: Status{State: StateConnecting, LastError: wrong}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := m.Open(context.Background()); !IsConfigError(err) {
		t.Fatalf("Open err = %v, want the configuration error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Open took %v", d)
	}
}

// pipeStream is a Stream over one end of net.Pipe.
type pipeStream struct{ net.Conn }

func (s pipeStream) CloseWrite() error { return s.Conn.Close() }
func (s pipeStream) Abort()            { _ = s.Conn.Close() }

// oldServerDialer is connected, and each stream it opens reaches a server
// that refuses heartbeats, as a version without them does.
type oldServerDialer struct{ stubDialer }

func (d *oldServerDialer) Open(context.Context) (Stream, error) {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		req, err := proto.ReadStreamRequest(server)
		if err != nil {
			return
		}
		status := proto.StatusOK
		if req.Command != proto.CmdConnect {
			status = proto.StatusBadRequest
		}
		_, _ = server.Write(proto.AppendStreamResponse(nil, proto.StreamResponse{Status: status}))
		_, _ = io.Copy(io.Discard, server)
	}()
	return pipeStream{client}, nil
}

// TestMultiOldServer: a server that refuses heartbeats is used while its
// connection is up, rather than never.
func TestMultiOldServer(t *testing.T) {
	old := &oldServerDialer{stubDialer: stubDialer{status: Status{State: StateConnected}}}
	m, err := NewMultiDialer(MultiConfig{ConnectWait: 5 * time.Second}, []Endpoint{
		{Address: "down", Dialer: &stubDialer{status: Status{State: StateConnecting}}},
		{Address: "old", Dialer: old},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	st, err := m.Open(context.Background())
	if err != nil {
		t.Fatalf("Open: %v (status %+v)", err, m.Status())
	}
	defer st.Close()
	s := m.Status()
	if s.State != StateConnected || s.Server != "old" || !s.Servers[1].Healthy || s.Servers[0].Healthy {
		t.Errorf("status %+v", s)
	}
}
