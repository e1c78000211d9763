// Package control is QTunnel's local control API: the JSON types a running
// engine reports, an HTTP handler that serves them over a socket only the
// owning user can reach (a Unix socket on Linux and macOS, a named pipe on
// Windows), and the Go client that the CLI and the tray app use. It does
// not import the engine: whatever runs the engine implements Backend.
package control

import (
	"context"
	"time"
)

// Role is what a running qtunnel process is.
type Role string

// Roles.
const (
	RoleClient Role = "client"
	RoleServer Role = "server"
)

// State is where a tunnel stands, in the words a UI shows.
type State string

// States.
const (
	// StateOff: stopped on request (qtunnel down); the process still runs
	// and answers the control API.
	StateOff State = "off"
	// StateConnecting: a client trying to reach its server.
	StateConnecting State = "connecting"
	// StateConnected: a client with an authenticated connection.
	StateConnected State = "connected"
	// StateError: a client whose last attempt showed a problem retrying
	// will not fix (wrong secret, certificate mismatch); it keeps trying
	// at its slowest pace until the configuration changes.
	StateError State = "error"
	// StateServing: a server accepting clients.
	StateServing State = "serving"
)

// Status is a snapshot of a running client or server. Counters are totals
// since the process started (they survive qtunnel down/up and reloads);
// rates are averaged over the last few seconds.
type Status struct {
	Role       Role      `json:"role"`
	Version    string    `json:"version"`
	PID        int       `json:"pid"`
	ConfigFile string    `json:"config_file,omitempty"`
	State      State     `json:"state"`
	Since      time.Time `json:"since"`
	Transport  string    `json:"transport"`
	// Server is the client's server address; Listen the server's own.
	Server string `json:"server,omitempty"`
	Listen string `json:"listen,omitempty"`

	// Client: the current QUIC connection's smoothed RTT and the fraction
	// of its packets declared lost (0 in TCP mode, where the kernel hides it).
	RTTMillis   float64 `json:"rtt_ms"`
	Loss        float64 `json:"loss"`
	PacketsSent uint64  `json:"packets_sent"`
	PacketsLost uint64  `json:"packets_lost"`

	// Application bytes through the tunnel: up is client to backend.
	BytesUp   int64   `json:"bytes_up"`
	BytesDown int64   `json:"bytes_down"`
	RateUp    float64 `json:"rate_up_bytes_per_second"`
	RateDown  float64 `json:"rate_down_bytes_per_second"`

	ActiveStreams int64 `json:"active_streams"`
	TotalStreams  int64 `json:"total_streams"`
	FailedStreams int64 `json:"failed_streams"`

	// Client: sessions established, and those after the first (reconnects);
	// moves of the QUIC connection to a new network path (migrations).
	Connects   int64 `json:"connects"`
	Reconnects int64 `json:"reconnects"`
	Migrations int64 `json:"migrations"`
	// OverTCP: QUIC does not get through (UDP blocked?), and streams go
	// over the server's TLS/TCP fallback on the same port meanwhile.
	OverTCP bool `json:"over_tcp_fallback,omitempty"`
	// Servers: a client with several servers, each with its health; Server
	// is then the one new streams go to. Failovers counts moves away from
	// a server that stopped answering.
	Servers   []ServerStatus `json:"servers,omitempty"`
	Failovers int64          `json:"failovers,omitempty"`

	// Server: handshakes completed (secret proved), refused for a wrong
	// secret, and client connections open now with their measurements.
	Handshakes   int64 `json:"handshakes,omitempty"`
	AuthFailures int64 `json:"auth_failures,omitempty"`
	// WebVisitors counts peers without the secret served the masquerade
	// web site; Refused, connections refused before any handshake, by
	// reason: "rate" (over their source's rate), "blocked" (their source
	// sent wrong secrets), "full" (the server's connection limits).
	WebVisitors       int64            `json:"web_visitors,omitempty"`
	Refused           map[string]int64 `json:"refused,omitempty"`
	ActiveConnections int64            `json:"active_connections,omitempty"`
	Connections       []ConnStatus     `json:"connections,omitempty"`

	// RelayErrors counts streams that ended abnormally, by kind (for
	// example "reset", "timeout", "dial_refused", "not_allowed").
	RelayErrors map[string]int64 `json:"relay_errors,omitempty"`

	Forwards []ForwardStatus `json:"forwards,omitempty"`
	Targets  []TargetStatus  `json:"targets,omitempty"`

	// LastError is the most recent failure in plain words, "" if none.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// ForwardStatus is one of a client's local listeners.
type ForwardStatus struct {
	Name      string `json:"name"`
	Listen    string `json:"listen"`
	Target    string `json:"target"`
	Active    int64  `json:"active_streams"`
	Total     int64  `json:"total_streams"`
	Failed    int64  `json:"failed_streams"`
	BytesUp   int64  `json:"bytes_up"`
	BytesDown int64  `json:"bytes_down"`
	LastError string `json:"last_error,omitempty"`
}

// TargetStatus is one of a server's allowed targets.
type TargetStatus struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Active    int64  `json:"active_streams"`
	Total     int64  `json:"total_streams"`
	Failed    int64  `json:"failed_streams"`
	BytesUp   int64  `json:"bytes_up"`
	BytesDown int64  `json:"bytes_down"`
}

// ServerStatus is one server of a client with several.
type ServerStatus struct {
	Address string `json:"address"`
	// State is "connected" or "connecting".
	State State `json:"state"`
	// Healthy: connected and answering its heartbeat; Active: new streams
	// go to it.
	Healthy   bool    `json:"healthy"`
	Active    bool    `json:"active"`
	RTTMillis float64 `json:"rtt_ms"`
	OverTCP   bool    `json:"over_tcp_fallback,omitempty"`
	LastError string  `json:"last_error,omitempty"`
}

// ConnStatus is one client connection as a server sees it.
type ConnStatus struct {
	Peer        string    `json:"peer"`
	Since       time.Time `json:"since"`
	RTTMillis   float64   `json:"rtt_ms"`
	Loss        float64   `json:"loss"`
	PacketsSent uint64    `json:"packets_sent"`
	PacketsLost uint64    `json:"packets_lost"`
}

// EventType says what an Event reports.
type EventType string

// Event types.
const (
	// EventState: the state changed (Status holds the new snapshot).
	EventState EventType = "state"
	// EventError: a failure worth showing (Message in plain words).
	EventError EventType = "error"
	// EventStats: a periodic snapshot (about once a second), so that a UI
	// can show rates without asking.
	EventStats EventType = "stats"
	// EventReload: the configuration was read again (Message says what changed).
	EventReload EventType = "reload"
)

// Event is one item of the event stream.
type Event struct {
	Type    EventType `json:"type"`
	Time    time.Time `json:"time"`
	Message string    `json:"message,omitempty"`
	Status  *Status   `json:"status,omitempty"`
}

// Backend is what the control API drives: the process that runs the engine.
// Methods may be called concurrently.
type Backend interface {
	// Status returns a fresh snapshot.
	Status() Status
	// Start starts the tunnel if it is off; a no-op if it runs.
	Start(ctx context.Context) error
	// Stop stops the tunnel (listeners closed, streams drained) but keeps
	// the process and the control API running; a no-op if it is off.
	Stop(ctx context.Context) error
	// Reload reads the configuration file again and applies it; it
	// returns what changed in a sentence, or why the file was refused
	// (the running configuration then stays as it was).
	Reload(ctx context.Context) (string, error)
	// Migrate moves a client's QUIC connection to a new network path now
	// (as after a network change) and says where to, in a sentence.
	Migrate(ctx context.Context) (string, error)
	// SetSecret replaces the shared secret in memory only (it is never
	// written anywhere) and reconnects with it.
	SetSecret(ctx context.Context, secret []byte) error
	// Subscribe returns events until ctx is done; the channel is then
	// closed. A subscriber that falls behind loses events, never blocks
	// the engine.
	Subscribe(ctx context.Context) <-chan Event
}
