package main

import (
	"fmt"
	"github.com/qtunnel/qtunnel/lab"
	"image/color"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// lookup finds a result.
func (r report) lookup(env string, v variant, workload string) (Result, bool) {
	for _, x := range r.Results {
		if x.Env == env && x.Variant == v && x.Workload == workload && x.Error == "" {
			return x, true
		}
	}
	return Result{}, false
}

func (r report) envs() []string {
	var out []string
	for _, x := range r.Results {
		if !slices.Contains(out, x.Env) {
			out = append(out, x.Env)
		}
	}
	return out
}

// variants lists the variants of the run: the standard ones in their
// usual order, then -compare ones in the order they ran.
func (r report) variants() []variant {
	var out []variant
	for _, v := range defaultVariants {
		for _, x := range r.Results {
			if x.Variant == v {
				out = append(out, v)
				break
			}
		}
	}
	for _, x := range r.Results {
		if !slices.Contains(out, x.Variant) {
			out = append(out, x.Variant)
		}
	}
	return out
}

func (r report) has(workload string) bool {
	for _, x := range r.Results {
		if x.Workload == workload {
			return true
		}
	}
	return false
}

var workloadTitles = []struct{ id, title, note string }{
	{"bulk-1", "Bulk throughput, 1 stream (Mbit/s, higher is better)", "iperf3 -t N -P 1, client to server"},
	{"bulk-8", "Bulk throughput, 8 streams (Mbit/s, higher is better)", "iperf3 -t N -P 8"},
	{"conns-100", "100 concurrent connections x 1 MiB: completion (s, lower is better; p99 in brackets)", "qtbench worker conns -n 100 -size 1048576"},
	{"rr-warm", "New-connection request/response, tunnel up (median ms; p99 in brackets)", "qtbench worker rr -n TRIES: fresh TCP connection, 64-byte request, 64-byte reply"},
	{"rr-cold", "First request after the client starts (median ms; p99 in brackets)", "client restarted before each try"},
	{"hol-8", "8 parallel 1 MiB transfers on lossy: worst completion (s, lower is better)", "qtbench worker conns -n 8 -size 1048576"},
	{"idle-mem", "Memory per idle tunneled connection (KiB, client + server; idle client RSS in brackets)", "qtbench worker hold -n 1000: RSS growth with 1000 open, silent connections"},
}

// ratioColumn is a column of the ratio of two variants' figures.
type ratioColumn struct{ num, den variant }

func (c ratioColumn) title() string { return fmt.Sprintf("%s / %s", c.num, c.den) }

// ratioColumns lists the ratios worth a column: QUIC mode against each
// stunnel, and each -compare variant against QUIC mode.
func (r report) ratioColumns() []ratioColumn {
	vs := r.variants()
	var out []ratioColumn
	for _, den := range []variant{vStunnel, vStunnelBBR} {
		if slices.Contains(vs, vQQUIC) && slices.Contains(vs, den) {
			out = append(out, ratioColumn{vQQUIC, den})
		}
	}
	for _, v := range vs {
		if strings.HasPrefix(string(v), "quic:") && slices.Contains(vs, vQQUIC) {
			out = append(out, ratioColumn{v, vQQUIC})
		}
	}
	return out
}

func (r report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Benchmark run %s\n\n", r.Date)
	cc := r.LabTCPCongestion
	if cc == "" {
		cc = "the kernel's default"
	}
	fmt.Fprintf(&b, "Commit `%s`; %s CPUs (%s), kernel %s, %s; %s; %s. TCP congestion control: %s on the host (loopback), %s on the emulated links (stunnel-bbr: bbr). Suite took %.0f s. Settings: %v.\n\n",
		r.Commit, r.Machine["cpus"], r.Machine["cpu"], r.Machine["kernel"], r.Machine["go"], r.Machine["iperf3"], r.Machine["stunnel"], r.Machine["tcp_cc"], cc, r.Seconds, r.Settings)
	if len(r.Compare) > 0 {
		fmt.Fprintf(&b, "Compared variants (`-compare`): %s.\n\n", strings.Join(r.Compare, "; "))
	}
	vs := r.variants()
	ratios := r.ratioColumns()
	for _, w := range workloadTitles {
		if !r.has(w.id) {
			continue
		}
		fmt.Fprintf(&b, "### %s\n\n`%s`\n\n| env |", w.title, w.note)
		for _, v := range vs {
			fmt.Fprintf(&b, " %s |", v)
		}
		withRatios := w.id == "bulk-1" || w.id == "bulk-8" || strings.HasPrefix(w.id, "rr")
		cols := 0
		if withRatios {
			for _, c := range ratios {
				fmt.Fprintf(&b, " %s |", c.title())
			}
			cols = len(ratios)
			if strings.HasPrefix(w.id, "rr") {
				b.WriteString(" quic / RTT |")
				cols++
			}
		}
		b.WriteString("\n|---|")
		for range len(vs) + cols {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
		for _, env := range r.envs() {
			row := fmt.Sprintf("| %s |", env)
			any := false
			for _, v := range vs {
				x, ok := r.lookup(env, v, w.id)
				if !ok {
					row += " – |"
					continue
				}
				any = true
				row += " " + cell(x) + " |"
			}
			if withRatios {
				for _, c := range ratios {
					n, ok1 := r.lookup(env, c.num, w.id)
					d, ok2 := r.lookup(env, c.den, w.id)
					if ok1 && ok2 && d.Value > 0 {
						row += fmt.Sprintf(" %.2f× |", n.Value/d.Value)
					} else {
						row += " – |"
					}
				}
				if strings.HasPrefix(w.id, "rr") {
					q, ok := r.lookup(env, vQQUIC, w.id)
					if rtt := q.Extra["rtt_ms"]; ok && rtt > 0 {
						row += fmt.Sprintf(" %.2f× |", q.Value/rtt)
					} else {
						row += " – |"
					}
				}
			}
			if any {
				b.WriteString(row + "\n")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString(r.claims())
	b.WriteString("Failures, if any:\n\n")
	n := 0
	for _, x := range r.Results {
		if x.Error != "" {
			fmt.Fprintf(&b, "- %s %s %s: %s\n", x.Env, x.Variant, x.Workload, x.Error)
			n++
		}
	}
	if n == 0 {
		b.WriteString("- none\n")
	}
	return b.String()
}

func cell(x Result) string {
	switch {
	case strings.HasPrefix(x.Workload, "bulk"):
		s := fmt.Sprintf("%.0f", x.Value)
		if c, ok := x.Extra["cpu_s_per_gib"]; ok {
			s += fmt.Sprintf(" (%.1f CPU-s/GiB)", c)
		}
		return s
	case strings.HasPrefix(x.Workload, "rr"):
		return fmt.Sprintf("%.2f (%.2f)", x.Value, x.Extra["p99_ms"])
	case x.Workload == "idle-mem":
		return fmt.Sprintf("%.1f (%.1f MiB)", x.Value, x.Extra["client_idle_mib"])
	case x.Workload == "conns-100":
		return fmt.Sprintf("%.2f (%.2f)", x.Value, x.Extra["p99_s"])
	}
	return fmt.Sprintf("%.2f", x.Value)
}

var variantColors = map[variant]color.Color{
	vDirect:     color.RGBA{150, 150, 150, 255},
	vStunnel:    color.RGBA{228, 120, 51, 255},
	vStunnelBBR: color.RGBA{180, 70, 40, 255},
	vQTCP:       color.RGBA{90, 140, 200, 255},
	vQQUIC:      color.RGBA{40, 160, 90, 255},
}

// colorOf gives -compare variants shades of QUIC mode's green.
func colorOf(v variant, i int) color.Color {
	if c, ok := variantColors[v]; ok {
		return c
	}
	return color.RGBA{uint8(20 + 40*(i%4)), 110, uint8(60 + 50*(i%3)), 255}
}

// plots draws grouped bar charts and returns the files written.
func (r report) plots(base string) ([]string, error) {
	var files []string
	// On the emulated links throughput is shown as a share of the link's
	// rate, so that a 20 Mbit/s link reads as well as a 500 Mbit/s one.
	linkShare := func(env string, v float64) float64 {
		if p, ok := lab.Profiles[env]; ok && p.RateBitsPerSec > 0 {
			return 100 * v * 1e6 / float64(p.RateBitsPerSec)
		}
		return v
	}
	asIs := func(_ string, v float64) float64 { return v }
	charts := []struct {
		name, workload, title, ylabel string
		envFilter                     func(string) bool
		scale                         func(string, float64) float64
	}{
		{"loopback", "bulk-1", "Bulk throughput on loopback, 1 stream", "Mbit/s", func(e string) bool { return e == "loopback" }, asIs},
		{"bulk", "bulk-1", "Bulk throughput on emulated links, 1 stream", "% of the link's rate", func(e string) bool { return e != "loopback" }, linkShare},
		{"bulk8", "bulk-8", "Bulk throughput on emulated links, 8 streams", "% of the link's rate", func(e string) bool { return e != "loopback" }, linkShare},
		{"latency", "rr-cold", "First request after a client start (median)", "multiples of the RTT", func(e string) bool { return e != "loopback" }, rttMultiple},
	}
	for _, c := range charts {
		var envs []string
		for _, e := range r.envs() {
			if c.envFilter(e) {
				if _, ok := r.lookup(e, vDirect, c.workload); ok || r.anyFor(e, c.workload) {
					envs = append(envs, e)
				}
			}
		}
		if len(envs) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = c.title
		p.Y.Label.Text = c.ylabel
		vs := r.variants()
		w := vg.Points(14)
		top := 0.0
		for i, v := range vs {
			vals := make(plotter.Values, len(envs))
			for j, e := range envs {
				if x, ok := r.lookup(e, v, c.workload); ok {
					vals[j] = c.scale(e, x.Value)
					top = max(top, vals[j])
				}
			}
			bars, err := plotter.NewBarChart(vals, w)
			if err != nil {
				return nil, err
			}
			bars.Color = colorOf(v, i)
			bars.LineStyle.Width = 0
			bars.Offset = w * vg.Length(float64(i)-float64(len(vs)-1)/2)
			p.Add(bars)
			p.Legend.Add(string(v), bars)
		}
		p.Legend.Top = true
		p.Y.Min, p.Y.Max = 0, top*(1+0.09*float64(len(vs))) // room for the legend above the bars
		p.NominalX(envs...)
		file := fmt.Sprintf("%s-%s.png", base, c.name)
		if err := p.Save(vg.Length(max(4, 1.6*float64(len(envs))))*vg.Inch, 4*vg.Inch, file); err != nil {
			return nil, err
		}
		files = append(files, file)
	}
	return files, nil
}

// rttMultiple turns a latency in ms into multiples of the link's RTT.
func rttMultiple(env string, ms float64) float64 {
	if p, ok := lab.Profiles[env]; ok && p.RTT > 0 {
		return ms / (float64(p.RTT) / 1e6)
	}
	return ms
}

func (r report) anyFor(env, workload string) bool {
	for _, v := range r.variants() {
		if _, ok := r.lookup(env, v, workload); ok {
			return true
		}
	}
	return false
}

// Design document claims, section "性能基准测试": latency in ms (TCP mode,
// QUIC mode) per network class, and throughput in Mbit/s per scenario.
var latencyClaims = []struct {
	env, class     string
	tcpLo, tcpHi   float64
	quicLo, quicHi float64
}{
	{"loopback", "本地网络 local", 1, 2, 0.5, 1},
	{"lan", "局域网 LAN", 5, 10, 3, 6},
	{"wan", "广域网 WAN", 50, 100, 30, 60},
	{"mobile", "移动网络 mobile", 100, 200, 60, 120},
	{"lossy", "高丢包网络 high loss", 200, 500, 80, 150},
}

var throughputClaims = []struct {
	scenario, env, workload string
	tcp, quic               float64
}{
	{"单连接大文件 one connection, large file", "loopback", "bulk-1", 100, 95},
	{"多连接并发 many connections", "wan", "conns-100", 80, 120},
	{"高延迟网络 high latency", "cross-border", "bulk-1", 50, 85},
	{"丢包环境 packet loss", "lossy", "bulk-1", 30, 75},
	{"移动网络 mobile", "mobile", "bulk-1", 40, 70},
}

// claims puts the design document's performance tables beside what this
// run measured.
func (r report) claims() string {
	var b strings.Builder
	b.WriteString("### The design document's claims beside this run\n\n")
	b.WriteString("Latency: the document gives no definition; measured here is a fresh TCP connection through a running tunnel, a 64-byte request and its reply (rr-warm, median), and the same right after the client started (rr-cold, median).\n\n")
	b.WriteString("| network (env) | claimed TCP mode | claimed QUIC mode | qtunnel-tcp warm | qtunnel-quic warm | qtunnel-tcp cold | qtunnel-quic cold | stunnel cold | holds? |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, c := range latencyClaims {
		tw, ok1 := r.lookup(c.env, vQTCP, "rr-warm")
		qw, ok2 := r.lookup(c.env, vQQUIC, "rr-warm")
		tc, _ := r.lookup(c.env, vQTCP, "rr-cold")
		qc, _ := r.lookup(c.env, vQQUIC, "rr-cold")
		sc, _ := r.lookup(c.env, vStunnel, "rr-cold")
		if !ok1 || !ok2 {
			continue
		}
		verdict := "yes"
		switch {
		case qw.Value > c.quicHi:
			verdict = fmt.Sprintf("no: QUIC mode %.2f ms is above the claimed %.0f-%.0f", qw.Value, c.quicLo, c.quicHi)
		case qw.Value < c.quicLo:
			verdict = "better than claimed"
		}
		fmt.Fprintf(&b, "| %s (%s) | %g-%g | %g-%g | %.2f | %.2f | %s | %s | %s | %s |\n", c.class, c.env, c.tcpLo, c.tcpHi, c.quicLo, c.quicHi,
			tw.Value, qw.Value, optMS(tc), optMS(qc), optMS(sc), verdict)
	}
	b.WriteString("\nThroughput: the document gives Mbit/s without a link; compared here is its QUIC/TCP ratio with the measured QUIC mode over QUIC mode's TCP-based peers, on the link named. (For many connections: completion time of 100 × 1 MiB, TCP's over QUIC's.)\n\n")
	b.WriteString("| scenario (env, workload) | claimed QUIC / TCP | qtunnel-quic / stunnel (CUBIC) | qtunnel-quic / stunnel-bbr | qtunnel-quic / qtunnel-tcp (BBR) | holds? |\n|---|---:|---:|---:|---:|---|\n")
	for _, c := range throughputClaims {
		q, ok := r.lookup(c.env, vQQUIC, c.workload)
		if !ok {
			continue
		}
		ratio := func(v variant) (float64, string) {
			x, ok := r.lookup(c.env, v, c.workload)
			if !ok || x.Value <= 0 || q.Value <= 0 {
				return 0, "–"
			}
			f := q.Value / x.Value
			if c.workload == "conns-100" { // a time: lower is better
				f = x.Value / q.Value
			}
			return f, fmt.Sprintf("%.2f×", f)
		}
		claimed := c.quic / c.tcp
		fs, ss := ratio(vStunnel)
		_, sb := ratio(vStunnelBBR)
		ft, st := ratio(vQTCP)
		verdict := "–"
		switch {
		case fs == 0:
		case fs >= claimed && (ft == 0 || ft >= claimed):
			verdict = "yes"
		case fs >= claimed:
			verdict = "against stunnel on CUBIC yes; against BBR-based TCP no"
		default:
			verdict = "no"
		}
		fmt.Fprintf(&b, "| %s (%s, %s) | %.2f× | %s | %s | %s | %s |\n", c.scenario, c.env, c.workload, claimed, ss, sb, st, verdict)
	}
	b.WriteString("\n")
	return b.String()
}

func optMS(x Result) string {
	if x.Workload == "" {
		return "–"
	}
	return fmt.Sprintf("%.2f", x.Value)
}
