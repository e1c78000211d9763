package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qtunnel/qtunnel/control"
)

// The metric descriptions. Names follow the Prometheus conventions: base
// units in the name, counters end in _total. Role-specific metrics are
// only emitted for that role, so a server never shows a client's
// reconnects as a misleading 0.
var (
	// Both roles.
	descInfo = prometheus.NewDesc("qtunnel_info",
		"Always 1; the labels say what this process is.",
		[]string{"role", "version", "transport"}, nil)
	descUp = prometheus.NewDesc("qtunnel_up",
		"1 if the tunnel works: a client is connected, a server is serving.",
		nil, nil)
	descState = prometheus.NewDesc("qtunnel_state",
		"1 for the current state, 0 for the role's other states.",
		[]string{"state"}, nil)
	descBytes = prometheus.NewDesc("qtunnel_transferred_bytes_total",
		"Application bytes through the tunnel; up is client to backend.",
		[]string{"direction"}, nil)
	descStreamsActive = prometheus.NewDesc("qtunnel_streams_active",
		"Streams (relayed TCP connections) open now.",
		nil, nil)
	descStreams = prometheus.NewDesc("qtunnel_streams_total",
		"Streams opened.",
		nil, nil)
	descStreamsFailed = prometheus.NewDesc("qtunnel_streams_failed_total",
		"Streams that failed to open or ended abnormally.",
		nil, nil)
	descRelayErrors = prometheus.NewDesc("qtunnel_relay_errors_total",
		"Streams that ended abnormally, by kind of error.",
		[]string{"kind"}, nil)

	// Client.
	descConnects = prometheus.NewDesc("qtunnel_connects_total",
		"Sessions established with the server (completed handshakes).",
		nil, nil)
	descReconnects = prometheus.NewDesc("qtunnel_reconnects_total",
		"Sessions established after the first one.",
		nil, nil)
	descMigrations = prometheus.NewDesc("qtunnel_migrations_total",
		"Moves of the QUIC connection to a new network path (a network change, or on request).",
		nil, nil)
	descFailovers = prometheus.NewDesc("qtunnel_failovers_total",
		"Moves of new streams away from a server that stopped answering (a client with several servers).",
		nil, nil)
	descServerHealthy = prometheus.NewDesc("qtunnel_server_healthy",
		"1 if the server is connected and answers its heartbeat, by server (a client with several servers).",
		[]string{"server"}, nil)
	descServerInUse = prometheus.NewDesc("qtunnel_server_in_use",
		"1 for the server new streams go to, by server (a client with several servers).",
		[]string{"server"}, nil)
	descServerRTT = prometheus.NewDesc("qtunnel_server_rtt_seconds",
		"Smoothed heartbeat round trip of a healthy server, by server (a client with several servers).",
		[]string{"server"}, nil)
	descRTT = prometheus.NewDesc("qtunnel_rtt_seconds",
		"Smoothed round-trip time of the current connection; absent until measured.",
		nil, nil)
	descPacketsSent = prometheus.NewDesc("qtunnel_packets_sent_total",
		"QUIC packets sent on the current connection (0 in TCP mode).",
		nil, nil)
	descPacketsLost = prometheus.NewDesc("qtunnel_packets_lost_total",
		"QUIC packets of the current connection declared lost (0 in TCP mode).",
		nil, nil)
	descLoss = prometheus.NewDesc("qtunnel_loss_ratio",
		"Fraction of the current connection's packets declared lost; absent before any packet is sent.",
		nil, nil)
	descForwardBytes = prometheus.NewDesc("qtunnel_forward_transferred_bytes_total",
		"Application bytes through one local forward; up is client to backend.",
		[]string{"forward", "direction"}, nil)
	descForwardActive = prometheus.NewDesc("qtunnel_forward_streams_active",
		"Streams of one local forward open now.",
		[]string{"forward"}, nil)
	descForwardStreams = prometheus.NewDesc("qtunnel_forward_streams_total",
		"Streams opened through one local forward.",
		[]string{"forward"}, nil)
	descForwardFailed = prometheus.NewDesc("qtunnel_forward_streams_failed_total",
		"Streams of one local forward that failed.",
		[]string{"forward"}, nil)

	// Server.
	descHandshakes = prometheus.NewDesc("qtunnel_handshakes_total",
		"Client handshakes completed (the client proved the secret).",
		nil, nil)
	descAuthFailures = prometheus.NewDesc("qtunnel_auth_failures_total",
		"Client handshakes refused for a wrong secret.",
		nil, nil)
	descWebVisitors = prometheus.NewDesc("qtunnel_web_visitors_total",
		"Peers without the secret (or with a wrong one) served the masquerade web site.",
		nil, nil)
	descRefused = prometheus.NewDesc("qtunnel_connections_refused_total",
		"Connections refused before any handshake, by reason: rate (over their source's rate), blocked (source sent wrong secrets), full (connection limits).",
		[]string{"reason"}, nil)
	descConnsActive = prometheus.NewDesc("qtunnel_connections_active",
		"Client connections open now.",
		nil, nil)
	descConnRTT = prometheus.NewDesc("qtunnel_connection_rtt_seconds",
		"Smoothed round-trip time of one client connection; absent until measured.",
		[]string{"peer"}, nil)
	descConnLoss = prometheus.NewDesc("qtunnel_connection_loss_ratio",
		"Fraction of one client connection's packets declared lost; absent before any packet is sent.",
		[]string{"peer"}, nil)
	descTargetBytes = prometheus.NewDesc("qtunnel_target_transferred_bytes_total",
		"Application bytes to and from one allowed target; up is client to backend.",
		[]string{"target", "direction"}, nil)
	descTargetActive = prometheus.NewDesc("qtunnel_target_streams_active",
		"Streams to one target open now.",
		[]string{"target"}, nil)
	descTargetStreams = prometheus.NewDesc("qtunnel_target_streams_total",
		"Streams opened to one target.",
		[]string{"target"}, nil)
	descTargetFailed = prometheus.NewDesc("qtunnel_target_streams_failed_total",
		"Streams to one target that failed.",
		[]string{"target"}, nil)
)

// allDescs is what Describe reports: every metric the collector can emit.
var allDescs = []*prometheus.Desc{
	descInfo, descUp, descState, descBytes,
	descStreamsActive, descStreams, descStreamsFailed, descRelayErrors,
	descConnects, descReconnects, descMigrations, descFailovers, descServerHealthy, descServerInUse, descServerRTT, descRTT, descPacketsSent, descPacketsLost, descLoss,
	descForwardBytes, descForwardActive, descForwardStreams, descForwardFailed,
	descHandshakes, descAuthFailures, descWebVisitors, descRefused, descConnsActive, descConnRTT, descConnLoss,
	descTargetBytes, descTargetActive, descTargetStreams, descTargetFailed,
}

// roleStates lists each role's states, so that qtunnel_state reports the
// others as 0: an alert on qtunnel_state{state="error"} == 1 then has a
// series to evaluate instead of an absent one.
var roleStates = map[control.Role][]control.State{
	control.RoleClient: {control.StateOff, control.StateConnecting, control.StateConnected, control.StateError},
	control.RoleServer: {control.StateOff, control.StateServing},
}

// Direction label values.
const (
	dirUp   = "up"
	dirDown = "down"
)

// collector turns one Status per scrape into constant metrics. It holds
// no counters of its own, so it cannot disagree with the status API.
type collector struct {
	status func() control.Status
}

func newCollector(status func() control.Status) collector {
	return collector{status: status}
}

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	e := emitter{ch}

	e.gauge(descInfo, 1, string(st.Role), st.Version, st.Transport)
	up := (st.Role == control.RoleClient && st.State == control.StateConnected) ||
		(st.Role == control.RoleServer && st.State == control.StateServing)
	e.gauge(descUp, boolFloat(up))
	e.states(st.Role, st.State)

	e.counter(descBytes, float64(st.BytesUp), dirUp)
	e.counter(descBytes, float64(st.BytesDown), dirDown)
	e.gauge(descStreamsActive, float64(st.ActiveStreams))
	e.counter(descStreams, float64(st.TotalStreams))
	e.counter(descStreamsFailed, float64(st.FailedStreams))
	for kind, n := range relayErrors(st.RelayErrors) {
		e.counter(descRelayErrors, float64(n), kind)
	}

	switch st.Role {
	case control.RoleClient:
		e.counter(descConnects, float64(st.Connects))
		e.counter(descReconnects, float64(st.Reconnects))
		e.counter(descMigrations, float64(st.Migrations))
		if len(st.Servers) > 0 {
			e.counter(descFailovers, float64(st.Failovers))
		}
		for _, srv := range st.Servers {
			e.gauge(descServerHealthy, boolFloat(srv.Healthy), srv.Address)
			e.gauge(descServerInUse, boolFloat(srv.Active), srv.Address)
			if srv.Healthy && srv.RTTMillis > 0 {
				e.gauge(descServerRTT, srv.RTTMillis/1000, srv.Address)
			}
		}
		// RTT and loss are unknown, not zero, until measured: a 0 would
		// draw as a perfect link.
		if st.RTTMillis > 0 {
			e.gauge(descRTT, st.RTTMillis/1000)
		}
		e.counter(descPacketsSent, float64(st.PacketsSent))
		e.counter(descPacketsLost, float64(st.PacketsLost))
		if st.PacketsSent > 0 {
			e.gauge(descLoss, st.Loss)
		}
		for _, f := range forwards(st.Forwards) {
			e.counter(descForwardBytes, float64(f.BytesUp), f.Name, dirUp)
			e.counter(descForwardBytes, float64(f.BytesDown), f.Name, dirDown)
			e.gauge(descForwardActive, float64(f.Active), f.Name)
			e.counter(descForwardStreams, float64(f.Total), f.Name)
			e.counter(descForwardFailed, float64(f.Failed), f.Name)
		}
	case control.RoleServer:
		e.counter(descHandshakes, float64(st.Handshakes))
		e.counter(descAuthFailures, float64(st.AuthFailures))
		e.counter(descWebVisitors, float64(st.WebVisitors))
		for _, reason := range []string{"rate", "blocked", "full"} {
			e.counter(descRefused, float64(st.Refused[reason]), reason)
		}
		e.gauge(descConnsActive, float64(st.ActiveConnections))
		seen := make(map[string]bool, len(st.Connections))
		for _, cs := range st.Connections {
			// Two entries for one peer would make the label set collide
			// and cost the whole family; the first one is kept.
			if seen[cs.Peer] {
				continue
			}
			seen[cs.Peer] = true
			if cs.RTTMillis > 0 {
				e.gauge(descConnRTT, cs.RTTMillis/1000, cs.Peer)
			}
			if cs.PacketsSent > 0 {
				e.gauge(descConnLoss, cs.Loss, cs.Peer)
			}
		}
		for _, t := range targets(st.Targets) {
			e.counter(descTargetBytes, float64(t.BytesUp), t.Name, dirUp)
			e.counter(descTargetBytes, float64(t.BytesDown), t.Name, dirDown)
			e.gauge(descTargetActive, float64(t.Active), t.Name)
			e.counter(descTargetStreams, float64(t.Total), t.Name)
			e.counter(descTargetFailed, float64(t.Failed), t.Name)
		}
	}
}

// emitter sends constant metrics. A metric that cannot be built (a label
// value that is not UTF-8) becomes an invalid metric, which the handler
// reports and skips, rather than a panic in the scrape.
type emitter struct {
	ch chan<- prometheus.Metric
}

func (e emitter) emit(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e.ch <- m
}

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.emit(d, prometheus.GaugeValue, v, labels...)
}

func (e emitter) counter(d *prometheus.Desc, v float64, labels ...string) {
	e.emit(d, prometheus.CounterValue, v, labels...)
}

// states emits qtunnel_state for the role's known states plus the current
// one if it is not among them (a newer engine may add states).
func (e emitter) states(role control.Role, cur control.State) {
	found := false
	for _, s := range roleStates[role] {
		found = found || s == cur
		e.gauge(descState, boolFloat(s == cur), string(s))
	}
	if !found && cur != "" {
		e.gauge(descState, 1, string(cur))
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unknownKind labels relay errors reported without a kind.
const unknownKind = "unknown"

// relayErrors returns the counts by kind with an empty kind named, since
// an empty label value reads as no label at all.
func relayErrors(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, n := range m {
		if k == "" {
			k = unknownKind
		}
		out[k] += n
	}
	return out
}

// forwards names each forward (by its listen address if it has no name)
// and merges entries with the same name: duplicate label sets would make
// the registry drop the family from the scrape.
func forwards(fs []control.ForwardStatus) []control.ForwardStatus {
	out := make([]control.ForwardStatus, 0, len(fs))
	idx := make(map[string]int, len(fs))
	for _, f := range fs {
		if f.Name == "" {
			f.Name = f.Listen
		}
		if i, ok := idx[f.Name]; ok {
			o := &out[i]
			o.Active += f.Active
			o.Total += f.Total
			o.Failed += f.Failed
			o.BytesUp += f.BytesUp
			o.BytesDown += f.BytesDown
			continue
		}
		idx[f.Name] = len(out)
		out = append(out, f)
	}
	return out
}

// targets is forwards for a server's targets, named by address if unnamed.
func targets(ts []control.TargetStatus) []control.TargetStatus {
	out := make([]control.TargetStatus, 0, len(ts))
	idx := make(map[string]int, len(ts))
	for _, t := range ts {
		if t.Name == "" {
			t.Name = t.Address
		}
		if i, ok := idx[t.Name]; ok {
			o := &out[i]
			o.Active += t.Active
			o.Total += t.Total
			o.Failed += t.Failed
			o.BytesUp += t.BytesUp
			o.BytesDown += t.BytesDown
			continue
		}
		idx[t.Name] = len(out)
		out = append(out, t)
	}
	return out
}
