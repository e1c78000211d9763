// Command qtbench is QTunnel's benchmark suite (`make bench`). It runs the
// same workloads side by side through direct TCP (the limit), stunnel (TLS
// 1.3 over TCP, the established peer), QTunnel's TCP mode and QTunnel's
// QUIC mode, on loopback and on each emulated WAN profile of package lab,
// and writes bench/results/<date>.json, a Markdown table and PNG plots.
//
// Every program measured runs as its own process; the load generators and
// backends are this binary's worker subcommands.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/qtunnel/qtunnel/lab"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := worker(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "qtbench:", err)
			os.Exit(1)
		}
		return
	}
	envs := flag.String("envs", "loopback,"+strings.Join(lab.ProfileNames(), ","), "comma-separated environments: loopback and lab profiles")
	variants := flag.String("variants", "", "comma-separated variants to run (default all: direct,stunnel,stunnel-bbr,qtunnel-tcp,qtunnel-quic)")
	out := flag.String("out", "bench/results", "directory for the result files")
	qtunnel := flag.String("qtunnel", "bin/qtunnel", "qtunnel binary to measure")
	bulk := flag.Int("bulk-seconds", 8, "length of each iperf3 run")
	tries := flag.Int("rr-tries", 200, "fresh connections per warm latency measurement")
	cold := flag.Int("cold-tries", 20, "client restarts per cold latency measurement")
	tcpCC := flag.String("tcp-cc", "cubic", "TCP congestion control in the lab namespaces for direct, stunnel and qtunnel-tcp (cubic is Linux's default; stunnel-bbr always uses bbr; empty = leave the kernel's default)")
	render := flag.String("render", "", "re-write the Markdown table and plots of an earlier run from its `JSON` file, without measuring")
	repeat := flag.Int("repeat", 1, "run each measurement this many times, variants interleaved, and keep the median")
	workloads := flag.String("workloads", "", "comma-separated workload groups (default all: "+strings.Join(workloadGroups, ",")+")")
	var compare []string
	flag.Func("compare", "add a QUIC-mode variant quic:LABEL run with another qtunnel binary and/or extra flags on both ends: `LABEL=BINARY[,FLAG...]` (repeatable), e.g. reno=bin/qtunnel,-congestion=reno", func(v string) error {
		compare = append(compare, v)
		return nil
	})
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, `usage: qtbench [flags]   (root: it builds network namespaces)

Runs the same workloads through direct TCP, stunnel, QTunnel TCP mode and
QTunnel QUIC mode, on loopback and on emulated links, and writes
bench/results/<date>.{json,md} and plots.

  qtbench                                      # the whole suite (make bench)
  qtbench -envs=loopback -variants=stunnel,qtunnel-quic -bulk-seconds=4
  qtbench -envs=loopback,wan -variants=qtunnel-quic -compare=before=/tmp/qtunnel-old

`)
		flag.PrintDefaults()
	}
	flag.Parse()
	if *render != "" {
		if err := rerender(*render); err != nil {
			fmt.Fprintln(os.Stderr, "qtbench:", err)
			os.Exit(1)
		}
		return
	}
	var groups []string
	if *workloads != "" {
		groups = strings.Split(*workloads, ",")
		for _, g := range groups {
			if !slices.Contains(workloadGroups, g) {
				fmt.Fprintf(os.Stderr, "qtbench: -workloads: unknown group %q (want some of %s)\n", g, strings.Join(workloadGroups, ","))
				os.Exit(2)
			}
		}
	}
	s := &suite{workloads: groups, repeat: *repeat, bulkSeconds: *bulk, rrTries: *tries, coldTries: *cold,
		logf: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }}
	if err := s.run(*envs, *variants, compare, *tcpCC, *out, *qtunnel); err != nil {
		fmt.Fprintln(os.Stderr, "qtbench:", err)
		os.Exit(1)
	}
}

// run runs the suite on each environment and writes the report.
func (s *suite) run(envList, variantList string, compare []string, tcpCC, outDir, qtunnel string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the benchmark needs root (it builds network namespaces)")
	}
	variants := defaultVariants
	if variantList != "" {
		variants = nil
		for _, v := range strings.Split(variantList, ",") {
			if !slices.Contains(defaultVariants, variant(v)) {
				return fmt.Errorf("-variants: unknown variant %q (want some of %v)", v, defaultVariants)
			}
			variants = append(variants, variant(v))
		}
	}
	alts := map[variant]alt{}
	for _, c := range compare {
		v, a, err := parseCompare(c)
		if err != nil {
			return err
		}
		alts[v] = a
		variants = append(variants, v)
	}
	bins, err := findBinaries(qtunnel)
	if err != nil {
		return err
	}
	bins.tcpCC, bins.alts = tcpCC, alts
	restoreCC, err := allowTCPCongestion(tcpCC, "bbr")
	if err != nil {
		return err
	}
	defer restoreCC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s.variants = variants
	started := time.Now()
	for _, name := range strings.Split(envList, ",") {
		if ctx.Err() != nil {
			break
		}
		dir, err := os.MkdirTemp("", "qtbench-")
		if err != nil {
			return err
		}
		e, err := newEnv(name, bins, dir)
		if err != nil {
			_ = os.RemoveAll(dir)
			return err
		}
		desc := "the host's loopback"
		if e.profile != nil {
			desc = e.profile.String()
		}
		s.logf("== %s (%s)", name, desc)
		err = s.runEnv(ctx, e)
		e.close()
		_ = os.RemoveAll(dir)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted; everything started was removed")
	}
	rep := report{
		Date: started.UTC().Format(time.RFC3339), Seconds: time.Since(started).Seconds(),
		Machine: machine(), Commit: gitCommit(), Results: aggregate(s.results),
		Settings:         map[string]int{"bulk_seconds": s.bulkSeconds, "rr_tries": s.rrTries, "cold_tries": s.coldTries, "repeat": max(1, s.repeat)},
		LabTCPCongestion: tcpCC, Compare: compare,
	}
	for _, n := range lab.ProfileNames() {
		rep.Profiles = append(rep.Profiles, lab.Profiles[n].String())
	}
	return rep.write(outDir)
}

// findBinaries locates what the suite runs, installing iperf3 and stunnel4
// with apt-get if they are missing.
func findBinaries(qtunnel string) (binaries, error) {
	var b binaries
	var err error
	if b.qtunnel, err = filepath.Abs(qtunnel); err != nil {
		return b, err
	}
	if _, err := os.Stat(b.qtunnel); err != nil {
		return b, fmt.Errorf("%s not found: run `make build` first", qtunnel)
	}
	if b.qtbench, err = os.Executable(); err != nil {
		return b, err
	}
	var missing []string
	for _, p := range [][2]string{{"iperf3", "iperf3"}, {"stunnel4", "stunnel4"}} {
		if _, err := exec.LookPath(p[0]); err != nil {
			missing = append(missing, p[1])
		}
	}
	if len(missing) > 0 {
		fmt.Println("== installing", strings.Join(missing, " "), "with apt-get")
		install := func() ([]byte, error) {
			cmd := exec.Command("apt-get", append([]string{"install", "-y", "-q"}, missing...)...) // #nosec G204 -- package names from the constant list above
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			return cmd.CombinedOutput()
		}
		if _, err := install(); err != nil {
			// The package lists of a fresh machine may be empty.
			if upd, uerr := exec.Command("apt-get", "update", "-q").CombinedOutput(); uerr != nil {
				return b, fmt.Errorf("apt-get update: %v: %s", uerr, upd)
			}
			if out, err := install(); err != nil {
				return b, fmt.Errorf("apt-get install %s: %v: %s", strings.Join(missing, " "), err, out)
			}
		}
	}
	if b.iperf3, err = exec.LookPath("iperf3"); err != nil {
		return b, err
	}
	if b.stunnel, err = exec.LookPath("stunnel4"); err != nil {
		return b, err
	}
	return b, nil
}

func machine() map[string]string {
	m := map[string]string{"cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(), "goos": runtime.GOOS + "/" + runtime.GOARCH}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m["kernel"] = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	// iperf3 prints "iperf 3.12 ...", stunnel "stunnel 5.68 ...".
	for name, cmd := range map[string][]string{"iperf3": {"iperf3", "--version"}, "stunnel": {"stunnel4", "-version"}} {
		out, _ := exec.Command(cmd[0], cmd[1:]...).CombinedOutput() // #nosec G204 -- commands from the constant map above
		prefix := strings.TrimSuffix(name, "3") + " "
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				m[name] = strings.TrimSpace(l)
				break
			}
		}
	}
	if out, err := exec.Command("sysctl", "-n", "net.ipv4.tcp_congestion_control").Output(); err == nil {
		m["tcp_cc"] = strings.TrimSpace(string(out))
	}
	return m
}

func gitCommit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func joinArgs(a []string) string { return strings.Join(a, " ") }

func medianP99(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2], s[(len(s)*99)/100]
}

// report is the file written for each run.
type report struct {
	Date     string            `json:"date"`
	Seconds  float64           `json:"seconds"`
	Commit   string            `json:"commit"`
	Machine  map[string]string `json:"machine"`
	Settings map[string]int    `json:"settings"`
	// LabTCPCongestion is the TCP congestion control of direct, stunnel
	// and qtunnel-tcp on the emulated links; Compare the -compare values.
	LabTCPCongestion string   `json:"lab_tcp_congestion"`
	Compare          []string `json:"compare,omitempty"`
	Profiles         []string `json:"profiles"`
	Results          []Result `json:"results"`
}

// rerender reads a run's JSON file and writes its Markdown and plots again
// beside it (and as latest.* if it is the latest run).
func rerender(path string) error {
	b, err := os.ReadFile(path) // #nosec G304 -- the results file the operator named
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	base := strings.TrimSuffix(path, ".json")
	if err := os.WriteFile(base+".md", []byte(r.markdown()), 0o644); err != nil { // #nosec G306 -- results to publish, nothing secret
		return err
	}
	plots, err := r.plots(base)
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	fmt.Printf("wrote %s.md and %d plots\n", base, len(plots))
	return nil
}

func (r report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil { // #nosec G301 -- results to publish (bench/results/), nothing secret
		return err
	}
	stamp := strings.NewReplacer(":", "", "-", "").Replace(r.Date)
	base := filepath.Join(dir, stamp)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", b, 0o644); err != nil { // #nosec G306 -- results to publish, nothing secret
		return err
	}
	md := r.markdown()
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil { // #nosec G306 -- results to publish, nothing secret
		return err
	}
	plots, err := r.plots(base)
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	// The newest run is also kept under fixed names that the docs link to.
	for _, ext := range []string{".json", ".md"} {
		if err := copyFile(base+ext, filepath.Join(dir, "latest"+ext)); err != nil {
			return err
		}
	}
	for _, p := range plots {
		if err := copyFile(p, filepath.Join(dir, "latest-"+strings.TrimPrefix(filepath.Base(p), stamp+"-"))); err != nil {
			return err
		}
	}
	fmt.Println()
	fmt.Print(md)
	fmt.Printf("\nwrote %s.json, %s.md and %d plots\n", base, base, len(plots))
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from) // #nosec G304 -- a results file of this run
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644) // #nosec G306 G703 -- results to publish, in the results directory
}
