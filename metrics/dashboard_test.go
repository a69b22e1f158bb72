package metrics_test

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guichet/guichet/metrics"
	"github.com/guichet/guichet/scheduler"
)

// dashboard is the Grafana dashboard shipped for guichet's metrics.
const dashboard = "../deploy/grafana/guichet.json"

// TestDashboardUsesExportedMetrics keeps the dashboard and the metrics in
// step: every metric a query names is one guichet exports, and every
// guichet_* or gen_ai_* metric guichet exports has a panel.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkDashboard(raw, exportedFamilies(t)) {
		t.Error(p)
	}
}

// TestDashboardCheckCatchesMistakes makes sure the check above can fail.
func TestDashboardCheckCatchesMistakes(t *testing.T) {
	raw, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	families := exportedFamilies(t)
	replace := func(old, new string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			if !strings.Contains(string(raw), old) {
				t.Fatalf("the dashboard has no %q to break", old)
			}
			return []byte(strings.ReplaceAll(string(raw), old, new))
		}
	}
	for _, c := range []struct {
		name     string
		broken   func(t *testing.T) []byte
		families map[string]string
		want     []string // each in some problem
		dontWant []string // in no problem
	}{
		{name: "typo in a metric name", broken: replace("guichet_ledger_spilled_lines", "guichet_ledger_spiled_lines"),
			want: []string{"guichet_ledger_spiled_lines is not", "guichet_ledger_spilled_lines has no panel"}},
		{name: "typo in a variable's query", broken: replace("label_values(gen_ai_server_request_duration_seconds_count,", "label_values(gen_ai_server_request_duration_seconds_cont,"),
			want: []string{"gen_ai_server_request_duration_seconds_cont is not"}},
		{name: "histogram without a series suffix", broken: replace("gen_ai_client_token_usage_sum{", "gen_ai_client_token_usage{"),
			want: []string{"gen_ai_client_token_usage is a histogram"}},
		{name: "histogram suffix on a gauge", broken: replace("(guichet_requests_in_flight)", "(guichet_requests_in_flight_count)"),
			want: []string{"guichet_requests_in_flight_count is not", "guichet_requests_in_flight has no panel"}},
		{name: "unbalanced parentheses", broken: replace("(guichet_ledger_spilled_lines)", "(guichet_ledger_spilled_lines))"),
			want: []string{"unbalanced"}},
		{name: "duplicate panel id", broken: replace(`"id": 3,`, `"id": 2,`),
			want: []string{"id 2 is used twice"}},
		{name: "not JSON", broken: func(*testing.T) []byte { return raw[:len(raw)/2] },
			want: []string{"not JSON"}},
		{name: "panel in a collapsed row", broken: func(*testing.T) []byte {
			return []byte(`{"title": "t", "panels": [{"type": "row", "id": 1, "gridPos": {"h": 1, "w": 24}, "collapsed": true, "panels": [
				{"type": "timeseries", "id": 2, "gridPos": {"h": 8, "w": 24}, "targets": [{"expr": "sum by (guichet_x) (rate(guichet_not_exported_total{gen_ai_request_model=\"m\"}[5m]))"}]}]}]}`)
		}, want: []string{"guichet_not_exported_total is not"},
			dontWant: []string{"guichet_x", "gen_ai_request_model"}},
		{name: "metric without a panel", broken: func(*testing.T) []byte { return raw },
			families: map[string]string{"guichet_brand_new": "GAUGE"},
			want:     []string{"guichet_brand_new has no panel"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fams := families
			if c.families != nil {
				fams = make(map[string]string)
				for k, v := range families {
					fams[k] = v
				}
				for k, v := range c.families {
					fams[k] = v
				}
			}
			problems := checkDashboard(c.broken(t), fams)
			for _, w := range c.want {
				if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("no problem says %q; problems: %q", w, problems)
				}
			}
			for _, w := range c.dontWant {
				if slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("a problem says %q; problems: %q", w, problems)
				}
			}
		})
	}
	if p := checkDashboard(raw, families); len(p) > 0 {
		t.Errorf("the unbroken dashboard has problems: %q", p)
	}
}

// exportedFamilies returns the name and type (COUNTER, GAUGE, HISTOGRAM...)
// of every metric family guichet's registry exports.
func exportedFamilies(t *testing.T) map[string]string {
	t.Helper()
	one := func() float64 { return 1 }
	m := metrics.New(metrics.Sources{
		InFlight: one, LimitsUp: one, LedgerQueued: one, LedgerSpilled: one,
		Providers: func(report func(model, provider string, up bool, inFlight int64)) {
			report("m", "m#0", true, 1)
		},
		Pools: func(report func(model string, v scheduler.PoolView)) {
			report("m", scheduler.PoolView{Capacity: 8, Running: 8, Queued: 3, Tenants: []scheduler.TenantView{{Tenant: "org:1", InputTokens: 10}}})
		},
	})
	observeEveryVector(t, m)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	families := make(map[string]string, len(mfs))
	for _, mf := range mfs {
		families[mf.GetName()] = mf.GetType().String()
	}
	for _, name := range []string{"gen_ai_server_request_duration_seconds", "guichet_provider_up", "go_goroutines"} {
		if _, ok := families[name]; !ok {
			t.Fatalf("the registry does not export %s; it exports %v", name, families)
		}
	}
	return families
}

// observeEveryVector gives each vector among m's fields one child, since a
// vector with none exports no family. Fields are found by reflection so that
// a vector added to Metrics is covered too (and then needs a panel).
func observeEveryVector(t *testing.T, m *metrics.Metrics) {
	t.Helper()
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		var child func(lvs []string) error
		switch vec := v.Field(i).Interface().(type) {
		case *prometheus.HistogramVec:
			child = func(lvs []string) error {
				o, err := vec.GetMetricWithLabelValues(lvs...)
				if err == nil {
					o.Observe(1)
				}
				return err
			}
		case *prometheus.SummaryVec:
			child = func(lvs []string) error {
				o, err := vec.GetMetricWithLabelValues(lvs...)
				if err == nil {
					o.Observe(1)
				}
				return err
			}
		case *prometheus.CounterVec:
			child = func(lvs []string) error {
				c, err := vec.GetMetricWithLabelValues(lvs...)
				if err == nil {
					c.Inc()
				}
				return err
			}
		case *prometheus.GaugeVec:
			child = func(lvs []string) error {
				g, err := vec.GetMetricWithLabelValues(lvs...)
				if err == nil {
					g.Set(1)
				}
				return err
			}
		default:
			continue
		}
		// The number of labels is not exported: try until one fits.
		ok := false
		for n := 0; n <= 16 && !ok; n++ {
			ok = child(slices.Repeat([]string{"x"}, n)) == nil
		}
		if !ok {
			t.Fatalf("Metrics.%s takes no number of labels up to 16", f.Name)
		}
	}
}

var (
	// ours are the families the dashboard must show (not go_*, process_*).
	ours = regexp.MustCompile(`^(?:gen_ai|guichet)_`)
	// In PromQL, what is not a metric name: string literals, label
	// matchers, and the label lists of by, without, on, ignoring, group_*.
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promLabels   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	// label_values(query, label): the label is not a metric.
	labelValues = regexp.MustCompile(`(?s)^\s*label_values\s*\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
	queryResult = regexp.MustCompile(`(?s)^\s*query_result\s*\((.*)\)\s*$`)
)

// checkDashboard returns what is wrong with the dashboard, given the
// families guichet exports (name to type).
func checkDashboard(raw []byte, families map[string]string) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	var d struct {
		Title      string
		Panels     []json.RawMessage
		Templating struct {
			List []struct {
				Name  string
				Type  string
				Query json.RawMessage // a string, or an object with a query
			}
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return []string{fmt.Sprintf("the dashboard is not JSON: %v", err)}
	}
	if d.Title == "" {
		report("the dashboard has no title")
	}
	if len(d.Panels) == 0 {
		report("the dashboard has no panels")
	}

	used := make(map[string]bool) // families the queries name
	checkExpr := func(where, expr string) {
		if strings.TrimSpace(expr) == "" {
			report("%s: empty query", where)
			return
		}
		expr = promString.ReplaceAllString(expr, `""`)
		if !balanced(expr) {
			report("%s: unbalanced brackets in %q", where, expr)
		}
		for prev := ""; prev != expr; {
			prev, expr = expr, promMatchers.ReplaceAllString(expr, "")
		}
		expr = promLabels.ReplaceAllString(expr, "")
		for _, name := range promIdent.FindAllString(expr, -1) {
			if !ours.MatchString(name) {
				continue
			}
			if f, ok := family(name, families); ok {
				used[f] = true
			} else if families[name] == "HISTOGRAM" {
				report("%s: %s is a histogram: query its _bucket, _sum or _count", where, name)
				used[name] = true
			} else {
				report("%s: %s is not a metric guichet exports", where, name)
			}
		}
	}

	ids := make(map[int]bool)
	var walk func(panels []json.RawMessage)
	walk = func(panels []json.RawMessage) {
		for _, rp := range panels {
			var p struct {
				ID      *int
				Type    string
				Title   string
				GridPos *struct{ H, W int }
				Targets []struct {
					RefID string
					Expr  *string
				}
				Panels []json.RawMessage // a row's, when collapsed
			}
			if err := json.Unmarshal(rp, &p); err != nil {
				report("a panel is not a panel: %v", err)
				continue
			}
			where := fmt.Sprintf("panel %q", p.Title)
			switch {
			case p.ID == nil:
				report("%s has no id", where)
			case ids[*p.ID]:
				report("%s: id %d is used twice", where, *p.ID)
			default:
				ids[*p.ID] = true
			}
			if p.GridPos == nil || p.GridPos.H <= 0 || p.GridPos.W <= 0 {
				report("%s has no gridPos", where)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				report("%s has no query", where)
			}
			for _, tg := range p.Targets {
				if tg.Expr == nil {
					report("%s: target %s has no expr", where, tg.RefID)
					continue
				}
				checkExpr(where, *tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var o struct{ Query string }
			if err := json.Unmarshal(v.Query, &o); err != nil {
				report("variable %s: query is neither a string nor an object: %v", v.Name, err)
				continue
			}
			q = o.Query
		}
		where := "variable " + v.Name
		if m := labelValues.FindStringSubmatch(q); m != nil {
			checkExpr(where, m[1])
		} else if m := queryResult.FindStringSubmatch(q); m != nil {
			checkExpr(where, m[1])
		}
	}

	var missing []string
	for name := range families {
		if ours.MatchString(name) && !used[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	for _, name := range missing {
		report("%s has no panel", name)
	}
	return problems
}

// family returns the family a series name belongs to: the name itself, or a
// histogram's name plus _bucket, _sum or _count.
func family(name string, families map[string]string) (string, bool) {
	if t, ok := families[name]; ok && t != "HISTOGRAM" {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if t := families[base]; t == "HISTOGRAM" || (t == "SUMMARY" && suffix != "_bucket") {
			return base, true
		}
	}
	return "", false
}

// balanced reports whether (), [] and {} pair up in a query without strings.
func balanced(expr string) bool {
	var stack []rune
	for _, r := range expr {
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			open := map[rune]rune{')': '(', ']': '[', '}': '{'}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0
}
