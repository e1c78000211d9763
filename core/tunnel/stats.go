package tunnel

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/qtunnel/qtunnel/core/proto"
	"github.com/qtunnel/qtunnel/core/transport"
)

// Counts are one meter's stream and byte counters.
type Counts struct {
	// ActiveStreams are tunneled connections open now.
	ActiveStreams int64
	// TotalStreams counts every tunneled connection so far.
	TotalStreams int64
	// FailedStreams counts connections refused or never carried.
	FailedStreams int64
	// BytesUp moved from client to server side (local to backend);
	// BytesDown the other way.
	BytesUp, BytesDown int64
}

// Stats is a snapshot of a tunnel's counters. The totals cover every
// forward or target there has been, including removed ones, so that they
// only ever grow.
type Stats struct {
	Counts
	// Forwards (client) and Targets (server) are the running ones, in
	// configuration order.
	Forwards []ForwardStats
	Targets  []TargetStats
	// Errors counts streams that ended abnormally, by kind (the Err*
	// constants).
	Errors map[string]int64
	// Connection is the client's link to the server (nil on a server).
	Connection *transport.Status
	// Peers are the server's peer counters (nil on a client).
	Peers *transport.ServerStats
}

// ForwardStats is one running forward of a client.
type ForwardStats struct {
	Forward
	// Addr is the address the listener is bound to.
	Addr net.Addr
	Counts
	// LastError is the last failure of a connection through this forward,
	// in plain words ("" if none).
	LastError string
}

// TargetStats is one target of a server.
type TargetStats struct {
	Target
	Counts
}

// Kinds of abnormal stream ends, as counted in Stats.Errors.
const (
	ErrNoTunnel    = "no_tunnel"    // client: no connection to the server came up in time
	ErrReset       = "reset"        // a stream or a TCP end was aborted mid-way
	ErrNotAllowed  = "not_allowed"  // the target is not one the server allows
	ErrDialFailed  = "dial_failed"  // the backend refused or could not be reached
	ErrDialTimeout = "dial_timeout" // the backend did not answer in time
	ErrDraining    = "draining"     // the server was shutting down
	ErrBadRequest  = "bad_request"  // a stream's request was not understood
	ErrOverloaded  = "overloaded"   // a server limit was reached
)

// errorKind names the kind of a refusal.
func errorKind(s proto.Status) string {
	switch s {
	case proto.StatusNotAllowed:
		return ErrNotAllowed
	case proto.StatusDialFailed:
		return ErrDialFailed
	case proto.StatusDialTimeout:
		return ErrDialTimeout
	case proto.StatusDraining:
		return ErrDraining
	case proto.StatusOverloaded:
		return ErrOverloaded
	}
	return ErrBadRequest
}

// meter is the live counters of one forward or target.
type meter struct {
	active, total, failed atomic.Int64
	up, down              atomic.Int64

	mu      sync.Mutex
	lastErr string
}

func (m *meter) snapshot() Counts {
	return Counts{
		ActiveStreams: m.active.Load(),
		TotalStreams:  m.total.Load(),
		FailedStreams: m.failed.Load(),
		BytesUp:       m.up.Load(),
		BytesDown:     m.down.Load(),
	}
}

// fail counts a failed connection and keeps why, in plain words.
func (m *meter) fail(why string) {
	m.failed.Add(1)
	m.mu.Lock()
	m.lastErr = why
	m.mu.Unlock()
}

func (m *meter) lastError() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}

func (s *Stats) add(c Counts) {
	s.ActiveStreams += c.ActiveStreams
	s.TotalStreams += c.TotalStreams
	s.FailedStreams += c.FailedStreams
	s.BytesUp += c.BytesUp
	s.BytesDown += c.BytesDown
}

// Meters hold a tunnel's counters: per forward or target name, and
// abnormal ends by kind. A front end that restarts a tunnel (to apply a new
// secret, say) passes the same Meters to the new one, so that counters
// only ever grow over the life of the process.
type Meters struct {
	errs errorCounts

	mu     sync.Mutex
	byName map[string]*meter
}

// NewMeters returns empty counters.
func NewMeters() *Meters { return &Meters{byName: make(map[string]*meter)} }

// get returns the named meter, making it on first use.
func (ms *Meters) get(name string) *meter {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	m := ms.byName[name]
	if m == nil {
		m = &meter{}
		ms.byName[name] = m
	}
	return m
}

// Totals sums every meter there has been, and copies the error counts.
func (ms *Meters) Totals() Stats {
	ms.mu.Lock()
	all := make([]*meter, 0, len(ms.byName))
	for _, m := range ms.byName {
		all = append(all, m)
	}
	ms.mu.Unlock()
	var s Stats
	for _, m := range all {
		s.add(m.snapshot())
	}
	s.Errors = ms.errs.snapshot()
	return s
}

// errorCounts counts abnormal stream ends by kind.
type errorCounts struct {
	mu sync.Mutex
	n  map[string]int64
}

func (e *errorCounts) add(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = make(map[string]int64)
	}
	e.n[kind]++
}

func (e *errorCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.n))
	for k, v := range e.n {
		out[k] = v
	}
	return out
}
