package agent

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/qtunnel/qtunnel/control"
	"github.com/qtunnel/qtunnel/core/config"
	"github.com/qtunnel/qtunnel/core/transport"
	"github.com/qtunnel/qtunnel/core/tunnel"
)

// Status implements control.Backend.
func (a *Agent) Status() control.Status {
	a.mu.Lock()
	cfg, inst, base, offSince := a.cfg, a.inst, a.base, a.offSince
	a.mu.Unlock()
	st := control.Status{
		Version:    a.opts.Version,
		PID:        os.Getpid(),
		ConfigFile: cfg.File,
		Transport:  cfg.Transport,
		State:      control.StateOff,
		Since:      offSince,
	}
	if st.Transport == "" {
		st.Transport = string(tunnel.TransportTCP)
	}
	var ts tunnel.Stats
	if inst != nil {
		ts = inst.stats()
	} else {
		ts = a.meters.Totals()
	}
	st.BytesUp, st.BytesDown = ts.BytesUp, ts.BytesDown
	st.ActiveStreams, st.TotalStreams, st.FailedStreams = ts.ActiveStreams, ts.TotalStreams, ts.FailedStreams
	st.RelayErrors = ts.Errors
	st.RateUp, st.RateDown = a.rates.rate(ts.BytesUp, ts.BytesDown, time.Now())

	if cfg.Mode == config.ModeServer {
		st.Role, st.Listen = control.RoleServer, cfg.Listen
		st.Handshakes, st.AuthFailures, st.WebVisitors = base.handshakes, base.authFailures, base.webVisitors
		rate, blocked, full := base.refusedRate, base.refusedBlocked, base.refusedFull
		if inst != nil {
			st.State, st.Since = control.StateServing, inst.since
			st.Listen = inst.server.Addr().String()
			p := ts.Peers
			st.Handshakes += p.Handshakes
			st.AuthFailures += p.AuthFailures
			st.WebVisitors += p.WebVisitors
			rate, blocked, full = rate+p.RefusedRate, blocked+p.RefusedBlocked, full+p.RefusedFull
			st.ActiveConnections = p.Active
			for _, c := range p.Conns {
				st.Connections = append(st.Connections, control.ConnStatus{Peer: c.Peer.String(), Since: c.Since,
					RTTMillis: millis(c.RTT), PacketsSent: c.PacketsSent, PacketsLost: c.PacketsLost,
					Loss: ratio(c.PacketsLost, c.PacketsSent)})
			}
		}
		if rate+blocked+full > 0 {
			st.Refused = map[string]int64{"rate": rate, "blocked": blocked, "full": full}
		}
		for _, t := range ts.Targets {
			st.Targets = append(st.Targets, control.TargetStatus{Name: t.Name, Address: t.Address,
				Active: t.ActiveStreams, Total: t.TotalStreams, Failed: t.FailedStreams, BytesUp: t.BytesUp, BytesDown: t.BytesDown})
		}
		return st
	}

	st.Role, st.Server = control.RoleClient, cfg.Server
	st.Connects, st.Migrations = base.connects, base.migrations
	if c := ts.Connection; c != nil {
		st.Connects += c.Connects
		st.Migrations += c.Migrations
		st.Since = c.Since
		switch {
		case c.State == transport.StateConnected:
			st.State = control.StateConnected
		case transport.IsConfigError(c.LastError):
			st.State = control.StateError
		default:
			st.State = control.StateConnecting
		}
		st.OverTCP = c.OverTCP
		if c.Server != "" {
			st.Server = c.Server
		}
		st.Failovers = c.Failovers
		for _, s := range c.Servers {
			state := control.StateConnecting
			if s.State == transport.StateConnected {
				state = control.StateConnected
			}
			st.Servers = append(st.Servers, control.ServerStatus{Address: s.Address, State: state, Healthy: s.Healthy, Active: s.Active,
				RTTMillis: millis(s.RTT), OverTCP: s.OverTCP, LastError: transport.Describe(s.LastError)})
		}
		st.RTTMillis = millis(c.RTT)
		st.PacketsSent, st.PacketsLost = c.PacketsSent, c.PacketsLost
		st.Loss = ratio(c.PacketsLost, c.PacketsSent)
		st.LastError = transport.Describe(c.LastError)
	}
	st.Reconnects = max(st.Connects-1, 0)
	for _, f := range ts.Forwards {
		st.Forwards = append(st.Forwards, control.ForwardStatus{Name: f.Name, Listen: f.Addr.String(), Target: f.Target,
			Active: f.ActiveStreams, Total: f.TotalStreams, Failed: f.FailedStreams,
			BytesUp: f.BytesUp, BytesDown: f.BytesDown, LastError: f.LastError})
	}
	if inst == nil {
		for _, f := range cfg.Forwards {
			st.Forwards = append(st.Forwards, control.ForwardStatus{Name: f.Name, Listen: f.Listen, Target: f.Target})
		}
	}
	return st
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// Subscribe implements control.Backend.
func (a *Agent) Subscribe(ctx context.Context) <-chan control.Event {
	return a.events.subscribe(ctx)
}

// publish sends an event with a fresh status to every subscriber.
func (a *Agent) publish(t control.EventType, msg string) {
	if !a.events.any() {
		return
	}
	st := a.Status()
	a.events.send(control.Event{Type: t, Time: time.Now(), Message: msg, Status: &st})
}

// sample keeps the rate meter fed and sends a stats event every second.
func (a *Agent) sample(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.mu.Lock()
			inst := a.inst
			a.mu.Unlock()
			var ts tunnel.Stats
			if inst != nil {
				ts = inst.stats()
			} else {
				ts = a.meters.Totals()
			}
			a.rates.add(ts.BytesUp, ts.BytesDown, now)
			a.publish(control.EventStats, "")
		}
	}
}

// rateMeter averages byte rates over the last few samples.
type rateMeter struct {
	mu      sync.Mutex
	samples []rateSample // oldest first, at most rateWindow
}

type rateSample struct {
	at       time.Time
	up, down int64
}

const rateWindow = 4

func (r *rateMeter) add(up, down int64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, rateSample{at, up, down})
	if len(r.samples) > rateWindow {
		r.samples = r.samples[1:]
	}
}

// rate is bytes per second from the oldest sample kept to now.
func (r *rateMeter) rate(up, down int64, now time.Time) (float64, float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 {
		return 0, 0
	}
	s := r.samples[0]
	dt := now.Sub(s.at).Seconds()
	if dt <= 0.1 {
		return 0, 0
	}
	return max(float64(up-s.up), 0) / dt, max(float64(down-s.down), 0) / dt
}

// hub fans events out to subscribers, never blocking the sender.
type hub struct {
	mu   sync.Mutex
	subs map[chan control.Event]struct{}
}

const subscriberBuffer = 64

func (h *hub) subscribe(ctx context.Context) <-chan control.Event {
	ch := make(chan control.Event, subscriberBuffer)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[chan control.Event]struct{})
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
		close(ch)
	})
	return ch
}

func (h *hub) any() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// send delivers e to every subscriber with room for it; a subscriber that
// has fallen behind misses it.
func (h *hub) send(e control.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- e:
		default:
		}
	}
}
