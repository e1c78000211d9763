package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is one measured figure.
type Result struct {
	Env      string             `json:"env"`
	Variant  variant            `json:"variant"`
	Workload string             `json:"workload"`
	Value    float64            `json:"value"`
	Unit     string             `json:"unit"`
	Extra    map[string]float64 `json:"extra,omitempty"`
	Command  string             `json:"command"`
	Error    string             `json:"error,omitempty"`
}

// suite holds what to run and collects results.
type suite struct {
	variants    []variant
	workloads   []string // workload groups to run; all if empty
	repeat      int      // runs of each measurement; the median is kept
	bulkSeconds int
	rrTries     int
	coldTries   int
	results     []Result
	logf        func(format string, a ...any)
}

func (s *suite) add(r Result) {
	if r.Error != "" {
		s.logf("  %-13s %-12s %-10s ERROR %s", r.Env, r.Variant, r.Workload, r.Error)
	} else {
		s.logf("  %-13s %-12s %-10s %10.2f %s", r.Env, r.Variant, r.Workload, r.Value, r.Unit)
	}
	s.results = append(s.results, r)
}

// runEnv runs every workload on every variant in one environment.
func (s *suite) runEnv(ctx context.Context, e *env) error {
	if _, err := e.start(serverSide, e.bins.iperf3, "-s", "-p", strconv.Itoa(portIperf)); err != nil {
		return err
	}
	if _, err := e.start(serverSide, e.bins.qtbench, "worker", "backend", "-addr", fmt.Sprintf(":%d", portBackend)); err != nil {
		return err
	}
	for _, port := range []int{portIperf, portBackend} {
		if err := e.waitTCP(serverSide, fmt.Sprintf("%s:%d", e.serverIP, port), 10*time.Second); err != nil {
			return err
		}
	}
	slow := e.profile != nil && e.profile.RTT >= 100*time.Millisecond
	// Repeats interleave the variants, so that a slow spell of the machine
	// touches all of them alike; aggregate then keeps each median.
	for range max(1, s.repeat) {
		for _, v := range s.variants {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if v == vStunnelBBR && e.lab == nil {
				continue
			}
			if err := e.setTCPCongestion(e.bins.tcpCongestion(v)); err != nil {
				return err
			}
			if s.wants("bulk") {
				s.bulk(ctx, e, v, 1)
				s.bulk(ctx, e, v, 8)
			}
			if e.name == "loopback" && v != vDirect && s.wants("mem") {
				s.idleMemory(ctx, e, v)
			}
			if !slow && s.wants("conns") {
				s.manyConns(ctx, e, v)
			}
			// On the long links (RTT 100 ms and more) fewer tries keep the
			// suite's length bounded; the medians still rest on 50 and 10.
			if s.wants("rr") {
				s.latency(ctx, e, v, slow)
			}
			if s.wants("cold") {
				s.cold(ctx, e, v, slow)
			}
			if e.name == "lossy" && s.wants("hol") {
				s.headOfLine(ctx, e, v)
			}
		}
	}
	return nil
}

// workloadGroups are the names -workloads takes.
var workloadGroups = []string{"bulk", "mem", "conns", "rr", "cold", "hol"}

func (s *suite) wants(group string) bool {
	return len(s.workloads) == 0 || slices.Contains(s.workloads, group)
}

// aggregate folds repeated results of one env, variant and workload into
// one: the run with the median value, with the spread in its extras.
func aggregate(results []Result) []Result {
	type key struct {
		env      string
		v        variant
		workload string
	}
	groups := map[key][]Result{}
	var order []key
	for _, r := range results {
		k := key{r.Env, r.Variant, r.Workload}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]Result, 0, len(order))
	for _, k := range order {
		g := groups[k]
		var ok []Result
		for _, r := range g {
			if r.Error == "" {
				ok = append(ok, r)
			}
		}
		if len(ok) == 0 {
			out = append(out, g[0])
			continue
		}
		slices.SortFunc(ok, func(a, b Result) int { return cmp.Compare(a.Value, b.Value) })
		m := ok[len(ok)/2]
		if len(g) > 1 {
			m.Extra = maps.Clone(m.Extra)
			if m.Extra == nil {
				m.Extra = map[string]float64{}
			}
			m.Extra["runs"] = float64(len(ok))
			m.Extra["min"] = ok[0].Value
			m.Extra["max"] = ok[len(ok)-1].Value
		}
		out = append(out, m)
	}
	return out
}

// iperfResult is the part of iperf3's JSON output we read.
type iperfResult struct {
	End struct {
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

func (s *suite) bulk(ctx context.Context, e *env, v variant, streams int) {
	r := Result{Env: e.name, Variant: v, Workload: fmt.Sprintf("bulk-%d", streams), Unit: "Mbit/s"}
	defer func() { s.add(r) }()
	pa, err := e.openPath(v, portIperf)
	if err != nil {
		r.Error = err.Error()
		return
	}
	defer pa.close()
	host, port, _ := net.SplitHostPort(pa.entry)
	args := []string{"-c", host, "-p", port, "-t", strconv.Itoa(s.bulkSeconds), "-P", strconv.Itoa(streams), "-J"}
	r.Command = "iperf3 " + joinArgs(args)
	c0, s0 := pa.cpu()
	cctx, cancel := context.WithTimeout(ctx, time.Duration(s.bulkSeconds+60)*time.Second)
	defer cancel()
	out, err := e.output(cctx, clientSide, e.bins.iperf3, args...)
	for try := 1; try < 4 && err != nil && (strings.Contains(err.Error(), "unable to connect") || strings.Contains(err.Error(), "control socket has closed")) && cctx.Err() == nil; try++ {
		// iperf3's server takes a moment to listen again after a test.
		time.Sleep(time.Duration(try) * 500 * time.Millisecond)
		c0, s0 = pa.cpu()
		out, err = e.output(cctx, clientSide, e.bins.iperf3, args...)
	}
	c1, s1 := pa.cpu()
	var ir iperfResult
	if err == nil {
		err = json.Unmarshal(out, &ir)
	}
	if err == nil && ir.Error != "" {
		err = fmt.Errorf("iperf3: %s", ir.Error)
	}
	if err != nil {
		r.Error = err.Error()
		return
	}
	r.Value = ir.End.SumReceived.BitsPerSecond / 1e6
	gib := ir.End.SumReceived.Bytes / (1 << 30)
	r.Extra = map[string]float64{"bytes": ir.End.SumReceived.Bytes}
	if pa.client != nil && gib > 0 {
		r.Extra["cpu_client_s_per_gib"] = (c1 - c0).Seconds() / gib
		r.Extra["cpu_server_s_per_gib"] = (s1 - s0).Seconds() / gib
		r.Extra["cpu_s_per_gib"] = ((c1 - c0) + (s1 - s0)).Seconds() / gib
	}
}

func (s *suite) manyConns(ctx context.Context, e *env, v variant) {
	r := Result{Env: e.name, Variant: v, Workload: "conns-100", Unit: "s"}
	defer func() { s.add(r) }()
	var c Completion
	r.Command, r.Error = s.worker(ctx, e, v, &c, "conns", "-n", "100", "-size", strconv.Itoa(1<<20))
	r.Value = c.TotalS
	r.Extra = map[string]float64{"p50_s": c.P50S, "p99_s": c.P99S, "errors": float64(c.Errors)}
}

func (s *suite) headOfLine(ctx context.Context, e *env, v variant) {
	r := Result{Env: e.name, Variant: v, Workload: "hol-8", Unit: "s"}
	defer func() { s.add(r) }()
	var c Completion
	r.Command, r.Error = s.worker(ctx, e, v, &c, "conns", "-n", "8", "-size", strconv.Itoa(1<<20))
	r.Value = c.MaxS
	r.Extra = map[string]float64{"p50_s": c.P50S, "errors": float64(c.Errors)}
}

func (s *suite) latency(ctx context.Context, e *env, v variant, slow bool) {
	r := Result{Env: e.name, Variant: v, Workload: "rr-warm", Unit: "ms"}
	defer func() { s.add(r) }()
	tries := s.rrTries
	if slow {
		tries = max(10, tries/4)
	}
	var l Latencies
	r.Command, r.Error = s.worker(ctx, e, v, &l, "rr", "-n", strconv.Itoa(tries))
	r.Value = l.MedianUS / 1e3
	r.Extra = map[string]float64{"p99_ms": l.P99US / 1e3, "errors": float64(l.Errors)}
	if e.profile != nil {
		r.Extra["rtt_ms"] = float64(e.profile.RTT) / 1e6
		r.Extra["median_over_rtt"] = r.Value / r.Extra["rtt_ms"]
	}
}

// worker opens v's path to the backend and runs a load worker through it.
func (s *suite) worker(ctx context.Context, e *env, v variant, into any, args ...string) (string, string) {
	pa, err := e.openPath(v, portBackend)
	if err != nil {
		return "", err.Error()
	}
	defer pa.close()
	args = append([]string{"worker", args[0], "-addr", pa.entry}, args[1:]...)
	cmd := "qtbench " + joinArgs(args)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	out, err := e.output(cctx, clientSide, e.bins.qtbench, args...)
	if err == nil {
		err = json.Unmarshal(out, into)
	}
	if err != nil {
		return cmd, err.Error()
	}
	return cmd, ""
}

// cold measures the first request through a client started just before:
// the client's connection set-up is inside the figure. The server side
// stays up between tries, as a real server would.
func (s *suite) cold(ctx context.Context, e *env, v variant, slow bool) {
	r := Result{Env: e.name, Variant: v, Workload: "rr-cold", Unit: "ms"}
	defer func() { s.add(r) }()
	pa, err := e.openPath(v, portBackend)
	if err != nil {
		r.Error = err.Error()
		return
	}
	defer pa.close()
	serverAddr := net.JoinHostPort(e.serverIP, strconv.Itoa(portTunnelServer))
	tries := s.coldTries
	if slow {
		tries = max(5, tries/2)
	}
	var lat []float64
	for range tries {
		if ctx.Err() != nil {
			break
		}
		if pa.client != nil {
			pa.client.stop()
			switch v {
			case vStunnel, vStunnelBBR:
				pa.client, err = e.startStunnelClient(pa.entry, serverAddr)
			default:
				pa.client, err = e.startQTClient(v, pa.entry, serverAddr)
				if err == nil {
					err = pa.client.waitLog("client started", 10*time.Second)
				}
			}
			if err != nil {
				r.Error = err.Error()
				return
			}
		}
		var l Latencies
		args := []string{"worker", "rr", "-addr", pa.entry, "-n", "1"}
		r.Command = "qtbench " + joinArgs(args) + " (client restarted before each)"
		out, err := e.output(ctx, clientSide, e.bins.qtbench, args...)
		if err == nil {
			err = json.Unmarshal(out, &l)
		}
		if err != nil {
			r.Error = err.Error()
			return
		}
		lat = append(lat, l.MedianUS/1e3)
	}
	med, p99 := medianP99(lat)
	r.Value = med
	r.Extra = map[string]float64{"p99_ms": p99, "tries": float64(len(lat))}
	if e.profile != nil {
		r.Extra["rtt_ms"] = float64(e.profile.RTT) / 1e6
		r.Extra["median_over_rtt"] = med / r.Extra["rtt_ms"]
	}
}

// idleMemory measures resident memory: of a client with its connection to
// the server up and nothing flowing, and per idle tunneled connection (the
// growth of client plus server with 1000 connections open and silent).
func (s *suite) idleMemory(ctx context.Context, e *env, v variant) {
	const n = 1000
	r := Result{Env: e.name, Variant: v, Workload: "idle-mem", Unit: "KiB/conn"}
	defer func() { s.add(r) }()
	pa, err := e.openPath(v, portBackend)
	if err != nil {
		r.Error = err.Error()
		return
	}
	defer pa.close()
	time.Sleep(500 * time.Millisecond) // let start-up allocations settle
	c0, s0 := pa.client.rss(), pa.server.rss()
	args := []string{"worker", "hold", "-addr", pa.entry, "-n", strconv.Itoa(n)}
	r.Command = "qtbench " + joinArgs(args) + " (RSS from /proc/PID/status)"
	cmd := e.command(clientSide, e.bins.qtbench, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		r.Error = err.Error()
		return
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.Error = err.Error()
		return
	}
	if err := cmd.Start(); err != nil {
		r.Error = err.Error()
		return
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "held" {
		r.Error = fmt.Sprintf("hold worker: %q %v", line, err)
		return
	}
	time.Sleep(300 * time.Millisecond)
	c1, s1 := pa.client.rss(), pa.server.rss()
	r.Value = float64((c1-c0)+(s1-s0)) / n / 1024
	r.Extra = map[string]float64{
		"client_idle_mib":           float64(c0) / (1 << 20),
		"server_idle_mib":           float64(s0) / (1 << 20),
		"client_kib_per_conn":       float64(c1-c0) / n / 1024,
		"server_kib_per_conn":       float64(s1-s0) / n / 1024,
		"client_mib_with_1000_idle": float64(c1) / (1 << 20),
	}
}
