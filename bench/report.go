package main

import (
	"fmt"
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

func (r report) variants() []variant {
	var out []variant
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
	charts := []struct {
		name, workload, title, ylabel string
		envFilter                     func(string) bool
	}{
		{"loopback", "bulk-1", "Bulk throughput on loopback, 1 stream", "Mbit/s", func(e string) bool { return e == "loopback" }},
		{"bulk", "bulk-1", "Bulk throughput on emulated links, 1 stream", "Mbit/s", func(e string) bool { return e != "loopback" }},
		{"bulk8", "bulk-8", "Bulk throughput on emulated links, 8 streams", "Mbit/s", func(e string) bool { return e != "loopback" }},
		{"latency", "rr-warm", "New-connection request/response, warm (median)", "ms", func(string) bool { return true }},
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
		for i, v := range vs {
			vals := make(plotter.Values, len(envs))
			for j, e := range envs {
				if x, ok := r.lookup(e, v, c.workload); ok {
					vals[j] = x.Value
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
		p.NominalX(envs...)
		file := fmt.Sprintf("%s-%s.png", base, c.name)
		if err := p.Save(vg.Length(max(4, 1.6*float64(len(envs))))*vg.Inch, 4*vg.Inch, file); err != nil {
			return nil, err
		}
		files = append(files, file)
	}
	return files, nil
}

func (r report) anyFor(env, workload string) bool {
	for _, v := range r.variants() {
		if _, ok := r.lookup(env, v, workload); ok {
			return true
		}
	}
	return false
}
