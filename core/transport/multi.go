package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/qtunnel/qtunnel/core/proto"
)

// MultiConfig configures a MultiDialer. Zero values mean the defaults
// documented on each field.
type MultiConfig struct {
	// FailoverAfter is how long a server may stay silent (no heartbeat
	// echoed) before new streams go to another server. Default 1 s; a
	// server far away gets at least three of its round trips more. A
	// server silent for three times as long is given up: its streams are
	// cut, so that they fail cleanly instead of hanging, and its
	// connection is made again - but only while another server is
	// healthy, so that a slow path is never cut for nothing.
	FailoverAfter time.Duration
	// ConnectWait bounds how long Open waits for a healthy server.
	// Default 5 s.
	ConnectWait time.Duration
	// Logger receives failovers and switches; nil discards them.
	Logger *slog.Logger
}

// Endpoint is one of a MultiDialer's servers.
type Endpoint struct {
	// Address is the server's host:port, for status and logs.
	Address string
	// Dialer connects to it.
	Dialer Dialer
}

// ServerStatus is one server of a client with several.
type ServerStatus struct {
	Address string
	// State is its dialer's connection state.
	State State
	// Healthy: connected and answering its heartbeat in time.
	Healthy bool
	// Active: the server new streams go to.
	Active bool
	// RTT is the heartbeat's smoothed round trip (application to
	// application, so it includes both ends' scheduling); zero when not
	// measured.
	RTT time.Duration
	// OverTCP: QUIC does not get through to it; streams use TLS/TCP.
	OverTCP bool
	// LastError is its last connection or heartbeat failure.
	LastError error
}

// MultiDialer spreads a client over several servers that serve the same
// targets with the same secret. It keeps a connection to every server and
// a heartbeat stream on each (CmdHeartbeat: the server echoes a byte
// several times a second), which measures each server's round trip and
// notices within FailoverAfter that one stopped answering - a killed
// process or a dead host sends nothing, and QUIC alone would notice only
// at its idle timeout. New streams go to the healthy server with the
// lowest round trip; a server keeps them until it fails or another is
// clearly faster (by a quarter), so that noise does not flip them.
type MultiDialer struct {
	cfg     MultiConfig
	members []*member
	changes broadcast

	mu        sync.Mutex
	active    *member // nil: none healthy
	lost      *member // the server in use when the last one failed, until another is chosen
	failovers int64
	running   bool
}

// member is one server and what the MultiDialer knows of it; fields
// below dialer are guarded by MultiDialer.mu.
type member struct {
	addr   string
	dialer Dialer

	connected   bool          // its dialer reports StateConnected
	heard       bool          // its heartbeat was answered within the failover time
	noHeartbeat bool          // it does not answer heartbeats (an older server): health is its state
	rtt         time.Duration // smoothed heartbeat round trip
	lastErr     error
	streams     map[*trackedStream]struct{}
}

// heartbeatsPerFailover is how many heartbeats are sent per FailoverAfter.
const heartbeatsPerFailover = 4

// NewMultiDialer returns a dialer over the given servers, in order of
// preference when they measure alike.
func NewMultiDialer(cfg MultiConfig, servers []Endpoint) (*MultiDialer, error) {
	if len(servers) == 0 {
		return nil, errors.New("no server")
	}
	if cfg.FailoverAfter <= 0 {
		cfg.FailoverAfter = time.Second
	}
	if cfg.ConnectWait <= 0 {
		cfg.ConnectWait = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &MultiDialer{cfg: cfg}
	for _, s := range servers {
		if s.Dialer == nil {
			return nil, fmt.Errorf("server %s: no dialer", s.Address)
		}
		m.members = append(m.members, &member{addr: s.Address, dialer: s.Dialer, streams: map[*trackedStream]struct{}{}})
	}
	return m, nil
}

// Run implements Dialer: it runs every server's dialer and heartbeat until
// ctx is done.
func (m *MultiDialer) Run(ctx context.Context) error {
	m.mu.Lock()
	m.running = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running = false
		m.mu.Unlock()
		m.changes.notify()
	}()
	var wg sync.WaitGroup
	errs := make([]error, len(m.members))
	for i, mb := range m.members {
		wg.Go(func() { errs[i] = mb.dialer.Run(ctx) })
		wg.Go(func() { m.follow(ctx, mb) })
		wg.Go(func() { m.beat(ctx, mb) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// follow tracks a server's connection state, so that a connection lost
// (closed by the server, a stateless reset) takes the server out at once.
func (m *MultiDialer) follow(ctx context.Context, mb *member) {
	for {
		changed := mb.dialer.Changed()
		st := mb.dialer.Status()
		m.mu.Lock()
		mb.connected = st.State == StateConnected
		if !mb.connected {
			mb.heard = false
		}
		m.chooseLocked()
		m.mu.Unlock()
		m.changes.notify()
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// failAfter is how long mb may stay silent before it is taken out.
func (m *MultiDialer) failAfter(mb *member) time.Duration {
	m.mu.Lock()
	rtt := mb.rtt
	m.mu.Unlock()
	return max(m.cfg.FailoverAfter, 3*rtt+100*time.Millisecond)
}

// ErrSilent: a server of a MultiDialer stopped answering its heartbeat.
var ErrSilent = errors.New("the server stopped answering its heartbeat")

// beat keeps a heartbeat stream open to mb while it is connected.
func (m *MultiDialer) beat(ctx context.Context, mb *member) {
	failures := 0
	for ctx.Err() == nil {
		changed := mb.dialer.Changed()
		if mb.dialer.Status().State != StateConnected {
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		err := m.heartbeat(ctx, mb)
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		mb.heard = false
		if !errors.Is(err, errNoHeartbeat) {
			mb.lastErr = err
		}
		m.chooseLocked()
		m.mu.Unlock()
		m.changes.notify()
		wait := Backoff{Min: 100 * time.Millisecond, Max: time.Second}.Delay(failures + 1)
		if errors.Is(err, errNoHeartbeat) {
			wait = 30 * time.Second // ask again now and then: the server may be upgraded
		} else {
			failures++
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

// errNoHeartbeat: the server refused the heartbeat (a version without it).
var errNoHeartbeat = errors.New("the server does not answer heartbeats")

// heartbeat runs one heartbeat stream to mb until it fails or ctx is done.
func (m *MultiDialer) heartbeat(ctx context.Context, mb *member) error {
	limit := m.failAfter(mb)
	octx, cancel := context.WithTimeout(ctx, limit)
	st, err := mb.dialer.Open(octx)
	cancel()
	if err != nil {
		return fmt.Errorf("heartbeat to %s: %w", mb.addr, err)
	}
	stop := context.AfterFunc(ctx, st.Abort)
	defer stop()
	defer st.Abort()
	start := time.Now()
	req, _ := proto.AppendStreamRequest(nil, proto.StreamRequest{Command: proto.CmdHeartbeat})
	_ = st.SetWriteDeadline(start.Add(limit))
	if _, err := st.Write(req); err != nil {
		return fmt.Errorf("heartbeat to %s: %w", mb.addr, err)
	}
	_ = st.SetReadDeadline(start.Add(limit))
	resp, err := proto.ReadStreamResponse(st)
	if err != nil {
		return fmt.Errorf("heartbeat to %s: no answer: %w", mb.addr, err)
	}
	if resp.Status != proto.StatusOK {
		m.mu.Lock()
		mb.noHeartbeat = true
		m.chooseLocked()
		m.mu.Unlock()
		m.changes.notify()
		return errNoHeartbeat
	}
	heard := time.Now()
	m.mu.Lock()
	mb.noHeartbeat = false // it may have been upgraded since it refused
	m.mu.Unlock()
	m.heardFrom(mb, m.rttSample(mb, heard.Sub(start)))

	// Signs of life: an echo, or on QUIC any packet from the server. A
	// packet lost on a lossy path holds the echoes behind it until it is
	// sent again (the stream is ordered), while the server's ACKs of the
	// later heartbeats still arrive; counting them keeps a slow but live
	// path from being taken for a dead one. Echoes still matter: a
	// server whose QUIC stack answers but which echoes nothing for three
	// times the limit is given up all the same.
	alive, checked := heard, heard
	var packets uint64
	var sent [256]time.Time // when each sequence byte went out
	var seq byte
	var buf [64]byte
	next := heard
	silentSince := time.Time{}
	for {
		now := time.Now()
		limit = m.failAfter(mb)
		if !now.Before(next) {
			_ = st.SetWriteDeadline(now.Add(limit))
			if _, err := st.Write([]byte{seq}); err != nil {
				return fmt.Errorf("heartbeat to %s: %w", mb.addr, err)
			}
			sent[seq] = now
			seq++
			next = now.Add(limit / heartbeatsPerFailover)
		}
		// Wake for the next heartbeat, or the moment silence would last
		// too long, whichever is first.
		wake := next
		if due := alive.Add(limit); silentSince.IsZero() && due.Before(next) {
			wake = due
		}
		_ = st.SetReadDeadline(wake)
		n, err := st.Read(buf[:])
		now = time.Now()
		if n > 0 {
			var sample time.Duration
			for _, b := range buf[:n] {
				sample = now.Sub(sent[b])
			}
			heard, alive = now, now
			m.heardFrom(mb, m.rttSample(mb, sample))
		}
		if err != nil && !isTimeout(err) {
			return fmt.Errorf("heartbeat to %s: %w", mb.addr, err)
		}
		if p := mb.dialer.Status().PacketsReceived; p != packets {
			// They came after the last look: count from then, not now,
			// so that a dead server is not thought alive a wake longer.
			if p > packets && checked.After(alive) {
				alive = checked
			}
			packets = p // a new connection counts from zero
		}
		checked = now
		silent := now.Sub(alive) >= limit || now.Sub(heard) >= 3*limit
		switch {
		case silent && silentSince.IsZero():
			silentSince = alive
			m.cfg.Logger.Warn("server stopped answering; new connections go to another server", "server", mb.addr,
				"silent_for", now.Sub(alive).Round(time.Millisecond), "no_echo_for", now.Sub(heard).Round(time.Millisecond))
			m.mu.Lock()
			mb.heard = false
			mb.lastErr = ErrSilent
			m.chooseLocked()
			m.mu.Unlock()
			m.changes.notify()
		case !silent && !silentSince.IsZero():
			m.cfg.Logger.Info("server answers again", "server", mb.addr, "silent_for", now.Sub(silentSince).Round(time.Millisecond))
			silentSince = time.Time{}
			m.mu.Lock()
			mb.heard = true
			m.chooseLocked()
			m.mu.Unlock()
			m.changes.notify()
		}
		if now.Sub(heard) >= 3*limit && m.giveUp(mb) {
			return ErrSilent
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// rttSample is the round trip to rank mb by: QUIC's own estimate when the
// connection has one (loss recovery does not inflate it, as it does an
// echo held behind a lost packet), else the echo's.
func (m *MultiDialer) rttSample(mb *member, echo time.Duration) time.Duration {
	if rtt := mb.dialer.Status().RTT; rtt > 0 {
		return rtt
	}
	return echo
}

// heardFrom records a heartbeat answer and its round trip.
func (m *MultiDialer) heardFrom(mb *member, sample time.Duration) {
	m.mu.Lock()
	was := mb.heard
	mb.heard = true
	if mb.rtt == 0 {
		mb.rtt = sample
	} else {
		mb.rtt += (sample - mb.rtt) / 8
	}
	m.chooseLocked()
	m.mu.Unlock()
	if !was {
		m.changes.notify()
	}
}

// giveUp cuts the streams on a silent server and makes its dialer connect
// again, if another server is healthy; it reports whether it did.
func (m *MultiDialer) giveUp(mb *member) bool {
	m.mu.Lock()
	other := m.active != nil && m.active != mb
	var cut []*trackedStream
	if other {
		for s := range mb.streams {
			cut = append(cut, s)
		}
	}
	m.mu.Unlock()
	if !other {
		return false
	}
	m.cfg.Logger.Warn("server silent too long; cutting its connections and connecting again", "server", mb.addr, "connections", len(cut))
	for _, s := range cut {
		s.Abort()
	}
	if d, ok := mb.dialer.(interface{ Drop(reason string) }); ok {
		d.Drop("the server stopped answering")
	}
	return true
}

// healthy reports whether new streams may go to mb; m.mu is held.
func (mb *member) healthy() bool {
	return mb.connected && (mb.heard || mb.noHeartbeat)
}

// clearlyFaster: a round trip a quarter and 2 ms below another.
func clearlyFaster(a, b time.Duration) bool {
	return a > 0 && b > 0 && a < b*3/4 && b-a > 2*time.Millisecond
}

// chooseLocked picks the server new streams go to; m.mu is held.
func (m *MultiDialer) chooseLocked() {
	var best *member
	for _, mb := range m.members {
		if !mb.healthy() {
			continue
		}
		if best == nil || (mb.rtt > 0 && (best.rtt == 0 || mb.rtt < best.rtt)) {
			best = mb
		}
	}
	cur := m.active
	switch {
	case best == nil:
		if cur != nil {
			m.cfg.Logger.Warn("no server answers; new connections wait for one", "server", cur.addr)
			m.lost = cur
		}
		m.active = nil
	case cur == nil:
		m.active = best
		if m.lost != nil && m.lost != best {
			m.failovers++
		}
		m.lost = nil
		m.cfg.Logger.Info("using server", "server", best.addr, "rtt", best.rtt.Round(time.Microsecond))
	case !cur.healthy():
		m.active = best
		m.failovers++
		m.cfg.Logger.Warn("failed over to another server", "from", cur.addr, "to", best.addr, "rtt", best.rtt.Round(time.Microsecond))
	case best != cur && clearlyFaster(best.rtt, cur.rtt):
		m.active = best
		m.cfg.Logger.Info("switching new connections to a faster server", "from", cur.addr, "from_rtt", cur.rtt.Round(time.Microsecond),
			"to", best.addr, "to_rtt", best.rtt.Round(time.Microsecond))
	}
}

// Open implements Dialer: a stream to the server in use, waiting a
// bounded time for one to be healthy.
func (m *MultiDialer) Open(ctx context.Context) (Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ConnectWait)
	defer cancel()
	var lastErr error
	for {
		changed := m.changes.wait()
		m.mu.Lock()
		mb := m.active
		m.mu.Unlock()
		if mb != nil {
			st, err := mb.dialer.Open(ctx)
			if err == nil {
				return m.track(mb, st), nil
			}
			if ctx.Err() != nil {
				return nil, notConnected(m.cfg.ConnectWait, err)
			}
			// Its connection went between the choice and the open: take
			// it out until its state or heartbeat says otherwise.
			lastErr = err
			m.mu.Lock()
			mb.heard, mb.lastErr = false, err
			m.chooseLocked()
			m.mu.Unlock()
			continue
		}
		if err := m.configError(); err != nil {
			return nil, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = m.Status().LastError
			}
			return nil, notConnected(m.cfg.ConnectWait, lastErr)
		}
	}
}

// configError is the first server's configuration error if every server
// has one (a wrong secret everywhere: waiting will not help).
func (m *MultiDialer) configError() error {
	var first error
	for _, mb := range m.members {
		err := mb.dialer.Status().LastError
		if !IsConfigError(err) {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// trackedStream is a stream the MultiDialer can cut if its server goes
// silent.
type trackedStream struct {
	Stream
	m    *MultiDialer
	mb   *member
	once sync.Once
}

func (m *MultiDialer) track(mb *member, st Stream) *trackedStream {
	ts := &trackedStream{Stream: st, m: m, mb: mb}
	m.mu.Lock()
	mb.streams[ts] = struct{}{}
	m.mu.Unlock()
	return ts
}

func (s *trackedStream) forget() {
	s.once.Do(func() {
		s.m.mu.Lock()
		delete(s.mb.streams, s)
		s.m.mu.Unlock()
	})
}

func (s *trackedStream) Close() error {
	s.forget()
	return s.Stream.Close()
}

func (s *trackedStream) Abort() {
	s.forget()
	s.Stream.Abort()
}

// Status implements Dialer: the state of the server in use (or, with none
// healthy, the best any server has), and every server's.
func (m *MultiDialer) Status() Status {
	m.mu.Lock()
	active := m.active
	failovers := m.failovers
	running := m.running
	type snap struct {
		healthy     bool
		rtt         time.Duration
		lastErr     error
		noHeartbeat bool
	}
	snaps := make([]snap, len(m.members))
	for i, mb := range m.members {
		snaps[i] = snap{mb.healthy(), mb.rtt, mb.lastErr, mb.noHeartbeat}
	}
	m.mu.Unlock()

	var st Status
	servers := make([]ServerStatus, len(m.members))
	var connects, migrations int64
	var firstErr error
	for i, mb := range m.members {
		ds := mb.dialer.Status()
		connects += ds.Connects
		migrations += ds.Migrations
		rtt := snaps[i].rtt
		if snaps[i].noHeartbeat {
			rtt = ds.RTT
		}
		lastErr := ds.LastError
		if lastErr == nil && !snaps[i].healthy {
			lastErr = snaps[i].lastErr
		}
		if firstErr == nil {
			firstErr = lastErr
		}
		servers[i] = ServerStatus{Address: mb.addr, State: ds.State, Healthy: snaps[i].healthy, Active: mb == active,
			RTT: rtt, OverTCP: ds.OverTCP, LastError: lastErr}
		if mb == active {
			st = ds
		}
	}
	switch {
	case active != nil:
		st.State = StateConnected
		st.Server = active.addr
	case running:
		st = Status{State: StateConnecting, Since: m.members[0].dialer.Status().Since, LastError: firstErr}
		if err := m.configError(); err != nil {
			st.LastError = err
		}
	default:
		st = Status{State: StateStopped, LastError: firstErr}
	}
	st.Connects, st.Migrations, st.Failovers, st.Servers = connects, migrations, failovers, servers
	return st
}

// Changed implements Dialer.
func (m *MultiDialer) Changed() <-chan struct{} { return m.changes.wait() }

// Migrate moves the connection of the server in use to a new path (see
// QUICDialer.Migrate); the others follow network changes on their own.
func (m *MultiDialer) Migrate(ctx context.Context) (Migration, error) {
	m.mu.Lock()
	mb := m.active
	m.mu.Unlock()
	if mb == nil {
		return Migration{}, ErrNotConnected
	}
	mg, ok := mb.dialer.(interface {
		Migrate(context.Context) (Migration, error)
	})
	if !ok {
		return Migration{}, errors.New("the server in use is reached over TLS/TCP, which cannot move to a new path")
	}
	return mg.Migrate(ctx)
}
