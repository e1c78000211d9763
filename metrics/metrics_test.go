package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/qtunnel/qtunnel/control"
)

// big is above 2^32 so that a truncation to 32 bits would show; it is
// below 2^53 so that float64 holds it exactly.
const big = int64(1)<<40 + 3

// clientStatus and serverStatus have every role-specific part filled in,
// so that every metric the handler knows is emitted by one of them.
func clientStatus() control.Status {
	return control.Status{
		Role:          control.RoleClient,
		Version:       "1.2.3",
		PID:           42,
		State:         control.StateConnected,
		Since:         time.Unix(1_700_000_000, 0),
		Transport:     "quic",
		Server:        "vpn.example.com:443",
		RTTMillis:     23.5,
		Loss:          0.015625,
		PacketsSent:   1 << 20,
		PacketsLost:   1 << 14,
		BytesUp:       big,
		BytesDown:     big + 7,
		ActiveStreams: 3,
		TotalStreams:  1001,
		FailedStreams: 17,
		Connects:      5,
		Reconnects:    4,
		Migrations:    3,
		RelayErrors:   map[string]int64{"reset": 9, "timeout": 8},
		Forwards: []control.ForwardStatus{
			{Name: "ssh", Listen: "127.0.0.1:2222", Target: "ssh", Active: 1, Total: 600, Failed: 10, BytesUp: 1000, BytesDown: 2000},
			{Name: "web", Listen: "127.0.0.1:8080", Target: "web", Active: 2, Total: 401, Failed: 7, BytesUp: big - 1000, BytesDown: big + 7 - 2000},
		},
	}
}

func serverStatus() control.Status {
	return control.Status{
		Role:          control.RoleServer,
		Version:       "1.2.3",
		State:         control.StateServing,
		Transport:     "tcp",
		Listen:        ":443",
		BytesUp:       123456789,
		BytesDown:     987654321,
		ActiveStreams: 4,
		TotalStreams:  77,
		FailedStreams: 6,
		Handshakes:    12,
		AuthFailures:  3, WebVisitors: 9, Refused: map[string]int64{"rate": 40, "blocked": 5},
		ActiveConnections: 2,
		Connections: []control.ConnStatus{
			{Peer: "192.0.2.1:50000", RTTMillis: 40, Loss: 0.25, PacketsSent: 100, PacketsLost: 25},
			{Peer: "[2001:db8::1]:50001", RTTMillis: 1.5, Loss: 0, PacketsSent: 10},
		},
		RelayErrors: map[string]int64{"dial_refused": 2, "not_allowed": 4},
		Targets: []control.TargetStatus{
			{Name: "ssh", Address: "127.0.0.1:22", Active: 4, Total: 70, Failed: 5, BytesUp: 123456000, BytesDown: 987654000},
			{Name: "db", Address: "10.0.0.5:5432", Total: 7, Failed: 1, BytesUp: 789, BytesDown: 321},
		},
	}
}

// sample is one expected series.
type sample struct {
	name   string
	labels string // "k=v,k=v" sorted by key, "" for none
	value  float64
}

func (s sample) key() string { return s.name + "{" + s.labels + "}" }

// scrapeBody fetches the handler's text exposition.
func scrapeBody(t *testing.T, h http.Handler) []byte {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: HTTP %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

// scrape parses a scrape of Handler for st.
func scrape(t *testing.T, st control.Status) map[string]*dto.MetricFamily {
	t.Helper()
	body := scrapeBody(t, Handler(func() control.Status { return st }))
	return parse(t, body)
}

func parse(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse scrape: %v\n%s", err, body)
	}
	return mfs
}

// qtunnelSamples flattens the qtunnel_ families into series key -> value
// and checks each family's type against its name.
func qtunnelSamples(t *testing.T, mfs map[string]*dto.MetricFamily) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "qtunnel_") {
			continue
		}
		wantType := dto.MetricType_GAUGE
		if strings.HasSuffix(name, "_total") {
			wantType = dto.MetricType_COUNTER
		}
		if mf.GetType() != wantType {
			t.Errorf("%s is a %v, want %v", name, mf.GetType(), wantType)
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(ls)
			k := sample{name: name, labels: strings.Join(ls, ",")}.key()
			if _, dup := out[k]; dup {
				t.Errorf("series %s appears twice", k)
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[k] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[k] = m.GetGauge().GetValue()
			default:
				t.Errorf("%s: unexpected type %v", name, mf.GetType())
			}
		}
	}
	return out
}

func TestHandlerValues(t *testing.T) {
	cli := clientStatus()
	srv := serverStatus()

	// A client still looking for its server: nothing measured yet.
	connecting := control.Status{
		Role: control.RoleClient, Version: "dev", State: control.StateConnecting, Transport: "tcp",
		Forwards: []control.ForwardStatus{{Listen: "127.0.0.1:5432"}},
	}
	// A server stopped with qtunnel down, and one in a state this
	// package does not know yet.
	// A client with two servers, after a failover to the second.
	multi := control.Status{
		Role: control.RoleClient, Version: "dev", State: control.StateConnected, Transport: "quic", Failovers: 1,
		Servers: []control.ServerStatus{
			{Address: "a.example:443", State: control.StateConnected, RTTMillis: 12},
			{Address: "b.example:443", State: control.StateConnected, Healthy: true, Active: true, RTTMillis: 40},
		},
	}
	srvOff := control.Status{Role: control.RoleServer, Version: "dev", State: control.StateOff, Transport: "quic"}
	srvNew := control.Status{Role: control.RoleServer, Version: "dev", State: "draining", Transport: "quic"}

	tests := []struct {
		name string
		st   control.Status
		want []sample
	}{
		{"client connected", cli, []sample{
			{"qtunnel_info", "role=client,transport=quic,version=1.2.3", 1},
			{"qtunnel_up", "", 1},
			{"qtunnel_state", "state=off", 0},
			{"qtunnel_state", "state=connecting", 0},
			{"qtunnel_state", "state=connected", 1},
			{"qtunnel_state", "state=error", 0},
			{"qtunnel_transferred_bytes_total", "direction=up", float64(cli.BytesUp)},
			{"qtunnel_transferred_bytes_total", "direction=down", float64(cli.BytesDown)},
			{"qtunnel_streams_active", "", 3},
			{"qtunnel_streams_total", "", 1001},
			{"qtunnel_streams_failed_total", "", 17},
			{"qtunnel_relay_errors_total", "kind=reset", 9},
			{"qtunnel_relay_errors_total", "kind=timeout", 8},
			{"qtunnel_connects_total", "", 5},
			{"qtunnel_reconnects_total", "", 4},
			{"qtunnel_migrations_total", "", 3},
			{"qtunnel_rtt_seconds", "", 0.0235},
			{"qtunnel_packets_sent_total", "", 1 << 20},
			{"qtunnel_packets_lost_total", "", 1 << 14},
			{"qtunnel_loss_ratio", "", 0.015625},
			{"qtunnel_forward_transferred_bytes_total", "direction=up,forward=ssh", 1000},
			{"qtunnel_forward_transferred_bytes_total", "direction=down,forward=ssh", 2000},
			{"qtunnel_forward_transferred_bytes_total", "direction=up,forward=web", float64(big - 1000)},
			{"qtunnel_forward_transferred_bytes_total", "direction=down,forward=web", float64(big + 7 - 2000)},
			{"qtunnel_forward_streams_active", "forward=ssh", 1},
			{"qtunnel_forward_streams_active", "forward=web", 2},
			{"qtunnel_forward_streams_total", "forward=ssh", 600},
			{"qtunnel_forward_streams_total", "forward=web", 401},
			{"qtunnel_forward_streams_failed_total", "forward=ssh", 10},
			{"qtunnel_forward_streams_failed_total", "forward=web", 7},
		}},
		{"client with several servers", multi, []sample{
			{"qtunnel_info", "role=client,transport=quic,version=dev", 1},
			{"qtunnel_up", "", 1},
			{"qtunnel_state", "state=off", 0},
			{"qtunnel_state", "state=connecting", 0},
			{"qtunnel_state", "state=connected", 1},
			{"qtunnel_state", "state=error", 0},
			{"qtunnel_transferred_bytes_total", "direction=up", 0},
			{"qtunnel_transferred_bytes_total", "direction=down", 0},
			{"qtunnel_streams_active", "", 0},
			{"qtunnel_streams_total", "", 0},
			{"qtunnel_streams_failed_total", "", 0},
			{"qtunnel_connects_total", "", 0},
			{"qtunnel_reconnects_total", "", 0},
			{"qtunnel_migrations_total", "", 0},
			{"qtunnel_failovers_total", "", 1},
			{"qtunnel_server_healthy", "server=a.example:443", 0},
			{"qtunnel_server_healthy", "server=b.example:443", 1},
			{"qtunnel_server_in_use", "server=a.example:443", 0},
			{"qtunnel_server_in_use", "server=b.example:443", 1},
			// Only a healthy server's round trip: a silent one's is stale.
			{"qtunnel_server_rtt_seconds", "server=b.example:443", 0.04},
			{"qtunnel_packets_sent_total", "", 0},
			{"qtunnel_packets_lost_total", "", 0},
		}},
		{"client connecting", connecting, []sample{
			{"qtunnel_info", "role=client,transport=tcp,version=dev", 1},
			{"qtunnel_up", "", 0},
			{"qtunnel_state", "state=off", 0},
			{"qtunnel_state", "state=connecting", 1},
			{"qtunnel_state", "state=connected", 0},
			{"qtunnel_state", "state=error", 0},
			{"qtunnel_transferred_bytes_total", "direction=up", 0},
			{"qtunnel_transferred_bytes_total", "direction=down", 0},
			{"qtunnel_streams_active", "", 0},
			{"qtunnel_streams_total", "", 0},
			{"qtunnel_streams_failed_total", "", 0},
			{"qtunnel_connects_total", "", 0},
			{"qtunnel_reconnects_total", "", 0},
			{"qtunnel_migrations_total", "", 0},
			// No RTT and no loss ratio: unknown is not 0.
			{"qtunnel_packets_sent_total", "", 0},
			{"qtunnel_packets_lost_total", "", 0},
			// An unnamed forward is named by its listen address.
			{"qtunnel_forward_transferred_bytes_total", "direction=up,forward=127.0.0.1:5432", 0},
			{"qtunnel_forward_transferred_bytes_total", "direction=down,forward=127.0.0.1:5432", 0},
			{"qtunnel_forward_streams_active", "forward=127.0.0.1:5432", 0},
			{"qtunnel_forward_streams_total", "forward=127.0.0.1:5432", 0},
			{"qtunnel_forward_streams_failed_total", "forward=127.0.0.1:5432", 0},
		}},
		{"server serving", srv, []sample{
			{"qtunnel_info", "role=server,transport=tcp,version=1.2.3", 1},
			{"qtunnel_up", "", 1},
			{"qtunnel_state", "state=off", 0},
			{"qtunnel_state", "state=serving", 1},
			{"qtunnel_transferred_bytes_total", "direction=up", 123456789},
			{"qtunnel_transferred_bytes_total", "direction=down", 987654321},
			{"qtunnel_streams_active", "", 4},
			{"qtunnel_streams_total", "", 77},
			{"qtunnel_streams_failed_total", "", 6},
			{"qtunnel_relay_errors_total", "kind=dial_refused", 2},
			{"qtunnel_relay_errors_total", "kind=not_allowed", 4},
			{"qtunnel_handshakes_total", "", 12},
			{"qtunnel_auth_failures_total", "", 3},
			{"qtunnel_web_visitors_total", "", 9},
			{"qtunnel_connections_refused_total", "reason=rate", 40},
			{"qtunnel_connections_refused_total", "reason=blocked", 5},
			{"qtunnel_connections_refused_total", "reason=full", 0},
			{"qtunnel_connections_active", "", 2},
			{"qtunnel_connection_rtt_seconds", "peer=192.0.2.1:50000", 0.04},
			{"qtunnel_connection_rtt_seconds", "peer=[2001:db8::1]:50001", 0.0015},
			{"qtunnel_connection_loss_ratio", "peer=192.0.2.1:50000", 0.25},
			{"qtunnel_connection_loss_ratio", "peer=[2001:db8::1]:50001", 0},
			{"qtunnel_target_transferred_bytes_total", "direction=up,target=ssh", 123456000},
			{"qtunnel_target_transferred_bytes_total", "direction=down,target=ssh", 987654000},
			{"qtunnel_target_transferred_bytes_total", "direction=up,target=db", 789},
			{"qtunnel_target_transferred_bytes_total", "direction=down,target=db", 321},
			{"qtunnel_target_streams_active", "target=ssh", 4},
			{"qtunnel_target_streams_active", "target=db", 0},
			{"qtunnel_target_streams_total", "target=ssh", 70},
			{"qtunnel_target_streams_total", "target=db", 7},
			{"qtunnel_target_streams_failed_total", "target=ssh", 5},
			{"qtunnel_target_streams_failed_total", "target=db", 1},
		}},
		{"server off", srvOff, []sample{
			{"qtunnel_info", "role=server,transport=quic,version=dev", 1},
			{"qtunnel_up", "", 0},
			{"qtunnel_state", "state=off", 1},
			{"qtunnel_state", "state=serving", 0},
			{"qtunnel_transferred_bytes_total", "direction=up", 0},
			{"qtunnel_transferred_bytes_total", "direction=down", 0},
			{"qtunnel_streams_active", "", 0},
			{"qtunnel_streams_total", "", 0},
			{"qtunnel_streams_failed_total", "", 0},
			{"qtunnel_handshakes_total", "", 0},
			{"qtunnel_auth_failures_total", "", 0},
			{"qtunnel_web_visitors_total", "", 0},
			{"qtunnel_connections_refused_total", "reason=rate", 0},
			{"qtunnel_connections_refused_total", "reason=blocked", 0},
			{"qtunnel_connections_refused_total", "reason=full", 0},
			{"qtunnel_connections_active", "", 0},
		}},
		{"server in an unknown state", srvNew, []sample{
			{"qtunnel_info", "role=server,transport=quic,version=dev", 1},
			{"qtunnel_up", "", 0},
			{"qtunnel_state", "state=off", 0},
			{"qtunnel_state", "state=serving", 0},
			{"qtunnel_state", "state=draining", 1},
			{"qtunnel_transferred_bytes_total", "direction=up", 0},
			{"qtunnel_transferred_bytes_total", "direction=down", 0},
			{"qtunnel_streams_active", "", 0},
			{"qtunnel_streams_total", "", 0},
			{"qtunnel_streams_failed_total", "", 0},
			{"qtunnel_handshakes_total", "", 0},
			{"qtunnel_auth_failures_total", "", 0},
			{"qtunnel_web_visitors_total", "", 0},
			{"qtunnel_connections_refused_total", "reason=rate", 0},
			{"qtunnel_connections_refused_total", "reason=blocked", 0},
			{"qtunnel_connections_refused_total", "reason=full", 0},
			{"qtunnel_connections_active", "", 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mfs := scrape(t, tt.st)
			got := qtunnelSamples(t, mfs)
			want := map[string]float64{}
			for _, s := range tt.want {
				want[s.key()] = s.value
			}
			// Exactly the expected series: this also proves that the
			// other role's metrics are absent.
			for k, v := range want {
				g, ok := got[k]
				switch {
				case !ok:
					t.Errorf("missing %s", k)
				case g != v:
					t.Errorf("%s = %v, want %v", k, g, v)
				}
			}
			for k, v := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("unexpected %s = %v", k, v)
				}
			}
			if _, ok := mfs["go_goroutines"]; !ok {
				t.Error("go_goroutines missing")
			}
			if runtime.GOOS == "linux" {
				if _, ok := mfs["process_resident_memory_bytes"]; !ok {
					t.Error("process_resident_memory_bytes missing")
				}
			}
		})
	}
}

// TestHandlerTotalsMatchForwards checks the client fixture itself: its
// per-forward counters add up to the totals, as the engine's do, so the
// dashboard's per-forward and total panels agree.
func TestHandlerTotalsMatchForwards(t *testing.T) {
	st := clientStatus()
	var up, down, total, failed, active int64
	for _, f := range st.Forwards {
		up += f.BytesUp
		down += f.BytesDown
		total += f.Total
		failed += f.Failed
		active += f.Active
	}
	if up != st.BytesUp || down != st.BytesDown || total != st.TotalStreams || failed != st.FailedStreams || active != st.ActiveStreams {
		t.Fatalf("fixture inconsistent: forwards sum to up=%d down=%d total=%d failed=%d active=%d", up, down, total, failed, active)
	}
}

func TestHandlerMergesDuplicates(t *testing.T) {
	st := control.Status{
		Role: control.RoleClient, State: control.StateConnected,
		Forwards: []control.ForwardStatus{
			{Name: "a", Total: 1, BytesUp: 10},
			{Name: "a", Total: 2, BytesUp: 20},
		},
		RelayErrors: map[string]int64{"": 3},
	}
	srv := control.Status{
		Role: control.RoleServer, State: control.StateServing,
		Connections: []control.ConnStatus{
			{Peer: "p", RTTMillis: 10, PacketsSent: 1},
			{Peer: "p", RTTMillis: 20, PacketsSent: 1},
		},
		Targets: []control.TargetStatus{{Address: "h:1", Total: 1}, {Address: "h:1", Total: 4}},
	}
	got := qtunnelSamples(t, scrape(t, st))
	for k, v := range map[string]float64{
		"qtunnel_forward_streams_total{forward=a}":                        3,
		"qtunnel_forward_transferred_bytes_total{direction=up,forward=a}": 30,
		"qtunnel_relay_errors_total{kind=unknown}":                        3,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	got = qtunnelSamples(t, scrape(t, srv))
	for k, v := range map[string]float64{
		"qtunnel_connection_rtt_seconds{peer=p}":   0.01,
		"qtunnel_target_streams_total{target=h:1}": 5,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestHandlerBadLabel checks that a label value Prometheus cannot carry
// costs that series only, not the scrape.
func TestHandlerBadLabel(t *testing.T) {
	st := clientStatus()
	st.Forwards = append(st.Forwards, control.ForwardStatus{Name: "bad\xff"})
	got := qtunnelSamples(t, scrape(t, st))
	if got["qtunnel_streams_total{}"] != 1001 {
		t.Errorf("qtunnel_streams_total = %v, want 1001", got["qtunnel_streams_total{}"])
	}
	for k := range got {
		if strings.Contains(k, "bad") {
			t.Errorf("invalid series served: %q", k)
		}
	}
}

// TestHandlerReadsStatusOncePerScrape: one snapshot per scrape keeps the
// families of a scrape consistent with each other.
func TestHandlerReadsStatusOncePerScrape(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	h := Handler(func() control.Status {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return clientStatus()
	})
	for i := 1; i <= 3; i++ {
		scrapeBody(t, h)
		mu.Lock()
		n := calls
		mu.Unlock()
		if n != i {
			t.Fatalf("after %d scrapes status was called %d times", i, n)
		}
	}
}

func TestHandlerConcurrentScrapes(t *testing.T) {
	var mu sync.Mutex
	st := clientStatus()
	h := Handler(func() control.Status {
		mu.Lock()
		defer mu.Unlock()
		st.TotalStreams++
		return st
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				errs <- err
				return
			}
			// MaxRequestsInFlight may turn some away; that is fine,
			// anything else is not.
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
				errs <- fmt.Errorf("HTTP %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPromlint(t *testing.T) {
	for _, st := range []control.Status{clientStatus(), serverStatus()} {
		t.Run(string(st.Role), func(t *testing.T) {
			body := scrapeBody(t, Handler(func() control.Status { return st }))
			problems, err := promlint.New(bytes.NewReader(body)).Lint()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("promlint: %s: %s", p.Metric, p.Text)
			}
		})
	}
}

func TestServe(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, clientStatus) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	resp, err := client.Get(base + Path)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d", Path, resp.StatusCode)
	}
	got := qtunnelSamples(t, parse(t, body))
	if got["qtunnel_up{}"] != 1 {
		t.Errorf("qtunnel_up = %v, want 1", got["qtunnel_up{}"])
	}

	resp, err = client.Get(base + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing: HTTP %d, want 404", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := client.Get(base + Path); err == nil {
		t.Error("server still answers after Serve returned")
	}
}

// TestServeCancelled: a context done before Serve starts still closes
// the listener and returns at once.
func TestServeCancelled(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Serve(ctx, ln, clientStatus); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Fatal("listener still open")
	}
}

func TestListenError(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The port is taken: the error comes from Listen, at once.
	_, err = Listen(ln.Addr().String())
	if err == nil {
		t.Fatal("second Listen on the same address succeeded")
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("error does not wrap the net.OpError: %v", err)
	}
	if !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("error does not name the address: %v", err)
	}
	if _, err := Listen("not an address"); err == nil {
		t.Error("Listen accepted a malformed address")
	}
}
