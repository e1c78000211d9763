package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/qtunnel/qtunnel/control"
)

// dashboardPath is the Grafana dashboard shipped for these metrics.
const dashboardPath = "../packaging/grafana/qtunnel.json"

// TestDashboardMetricsExist keeps the dashboard from drifting from the
// code: every metric a panel queries must be one the handler emits for a
// client or a server (fixtures with every optional part filled in), or a
// Go runtime or process metric the handler also serves.
func TestDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		SchemaVersion int             `json:"schemaVersion"`
		Panels        []dashPanel     `json:"panels"`
		Templating    json.RawMessage `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}

	known := knownMetrics(t)
	check := func(where, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %q: %v", where, expr, err)
			return
		}
		if len(names) == 0 {
			t.Errorf("%s: %q queries no metric", where, expr)
		}
		for _, n := range names {
			if known[n] {
				continue
			}
			// The process collector does not report everything on every
			// platform; Linux, where CI runs, has it all.
			if runtime.GOOS != "linux" && strings.HasPrefix(n, "process_") {
				t.Logf("%s: %s not served on %s", where, n, runtime.GOOS)
				continue
			}
			t.Errorf("%s: %q uses %s, which the handler does not emit", where, expr, n)
		}
	}

	exprs := 0
	for _, p := range flattenPanels(dash.Panels) {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q: target %s has no expr", p.Title, tg.RefID)
				continue
			}
			exprs++
			check(fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), tg.Expr)
		}
	}
	// Guard against a test that passes by reading nothing.
	if exprs < 10 {
		t.Errorf("only %d panel queries found; is %s still a dashboard?", exprs, dashboardPath)
	}

	// Template variable queries must not drift either.
	var tmpl struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	}
	if err := json.Unmarshal(dash.Templating, &tmpl); err != nil {
		t.Fatalf("templating: %v", err)
	}
	for _, v := range tmpl.List {
		if v.Type != "query" {
			continue
		}
		q := variableQuery(t, v.Query)
		// label_values(METRIC, label): the metric is the first argument.
		inner, ok := strings.CutPrefix(q, "label_values(")
		if !ok {
			t.Errorf("variable %s: want a label_values query, got %q", v.Name, q)
			continue
		}
		metric, _, _ := strings.Cut(inner, ",")
		check("variable "+v.Name, strings.TrimSpace(metric))
	}
}

// dashPanel is the part of a Grafana panel this test reads.
type dashPanel struct {
	Type    string      `json:"type"`
	Title   string      `json:"title"`
	Panels  []dashPanel `json:"panels"` // a collapsed row's panels
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func flattenPanels(ps []dashPanel) []dashPanel {
	var out []dashPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flattenPanels(p.Panels)...)
	}
	return out
}

// variableQuery reads a query variable's query, which Grafana stores as
// a string or, in newer versions, as an object with a query field.
func variableQuery(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("variable query %s: %v", raw, err)
	}
	return o.Query
}

// knownMetrics is every series name a PromQL query can use against the
// handler: the families of a client and a server scrape, plus the _sum,
// _count and _bucket series of summaries and histograms.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	for _, st := range []control.Status{clientStatus(), serverStatus()} {
		for name, mf := range scrape(t, st) {
			known[name] = true
			switch mf.GetType() {
			case dto.MetricType_SUMMARY:
				known[name+"_sum"] = true
				known[name+"_count"] = true
			case dto.MetricType_HISTOGRAM:
				known[name+"_sum"] = true
				known[name+"_count"] = true
				known[name+"_bucket"] = true
			}
		}
	}
	return known
}

// PromQL words that are not metric names.
var (
	aggregations = []string{
		"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
		"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
	}
	// Modifiers followed by a parenthesised list of label names.
	labelListModifiers = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	keywords           = []string{"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan", "start", "end"}
)

// metricNames returns the metric names a PromQL expression selects. It is
// a small lexer, not a parser: it skips strings, label matchers, range
// and subquery brackets, numbers, Grafana $variables, function calls and
// the label lists of by/without/on/ignoring/group_left/group_right.
func metricNames(expr string) ([]string, error) {
	var names []string
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }
	// skipTo returns the index after the closing byte that matches the
	// opener at i, skipping quoted strings inside.
	skipTo := func(i int, closer byte) (int, error) {
		for j := i + 1; j < len(expr); j++ {
			switch expr[j] {
			case '"', '\'', '`':
				k, err := skipString(expr, j)
				if err != nil {
					return 0, err
				}
				j = k - 1
			case closer:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unclosed %q at offset %d", expr[i], i)
	}
	nextNonSpace := func(i int) int {
		for i < len(expr) && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
			i++
		}
		return i
	}

	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(expr, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			j, err := skipTo(i, '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i, ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '$':
			// A Grafana variable: $name or ${name...}.
			i++
			if i < len(expr) && expr[i] == '{' {
				j, err := skipTo(i, '}')
				if err != nil {
					return nil, err
				}
				i = j
				continue
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case '0' <= c && c <= '9' || c == '.':
			// Numbers and durations: 1, 0.5, 1e3, 5m, 0x1f.
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			lower := strings.ToLower(word) // PromQL keywords ignore case
			k := nextNonSpace(j)
			switch {
			case slices.Contains(labelListModifiers, lower):
				if k < len(expr) && expr[k] == '(' {
					end, err := skipTo(k, ')')
					if err != nil {
						return nil, err
					}
					j = end
				}
			case k < len(expr) && expr[k] == '(':
				// A function call; its arguments are lexed next.
			case slices.Contains(aggregations, lower), slices.Contains(keywords, lower):
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	return names, nil
}

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at offset %d", i)
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`qtunnel_up`, []string{"qtunnel_up"}},
		{`qtunnel_state{instance=~"$instance"} == 1`, []string{"qtunnel_state"}},
		{`sum by (instance, kind) (rate(qtunnel_relay_errors_total{instance=~"$instance"}[$__rate_interval]))`, []string{"qtunnel_relay_errors_total"}},
		{`max(x{a="}{[("}) without (y) / ignoring(z) group_left(w) rate(b[5m:1m] offset 1h)`, []string{"x", "b"}},
		{`increase(qtunnel_reconnects_total[${__range}]) > bool 0.5e3`, []string{"qtunnel_reconnects_total"}},
		{`histogram_quantile(0.9, sum by (le) (rate(go_gc_duration_seconds_bucket[5m]))) and on() vector(1)`, []string{"go_gc_duration_seconds_bucket"}},
		{`sum(a) BY (b) or c # comment d`, []string{"a", "c"}},
		{`vector(1)`, nil},
	}
	for _, tt := range tests {
		got, err := metricNames(tt.expr)
		if err != nil {
			t.Errorf("%q: %v", tt.expr, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.expr, got, tt.want)
		}
	}
	for _, bad := range []string{`a{b="c"`, `rate(a[5m)`, `a{b="c}`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
