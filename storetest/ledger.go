package storetest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guichet/guichet"
)

// Ledger runs the Ledger conformance suite. open must return a new, empty
// ledger on each call (subtests run in parallel); the suite closes it if
// it is an io.Closer.
func Ledger(t *testing.T, open func(t *testing.T) guichet.Ledger) {
	tests := []struct {
		name string
		run  func(t *testing.T, l guichet.Ledger)
	}{
		{"Empty", testUsageEmpty},
		{"RoundTrip", testUsageRoundTrip},
		{"Replay", testUsageReplay},
		{"Filters", testUsageFilters},
		{"Order", testUsageOrder},
		{"PageLimits", testUsagePageLimits},
		{"Concurrent", testUsageConcurrent},
		{"LargeBatch", testUsageLargeBatch},
		{"Daily", testUsageDaily},
		{"Prune", testUsagePrune},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := open(t)
			if c, ok := l.(io.Closer); ok {
				t.Cleanup(func() {
					if err := c.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
			}
			tc.run(t, l)
		})
	}
}

// MonthBoundary is the instant the usage lines the suite records
// straddle, so a store partitioned by month writes and reads two
// partitions.
var MonthBoundary = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// UsageLines makes n lines, for tests and benchmarks: requests prefix-0,
// prefix-1…, every fourth followed by an attempt line; a minute apart,
// straddling MonthBoundary, some sharing a time; three users in two
// organizations; costs, tokens and energies from small sets so that
// orders have ties and float sums are exact in any order.
func UsageLines(prefix string, n int) []guichet.UsageLine {
	lines := make([]guichet.UsageLine, 0, n)
	for i := 0; len(lines) < n; i++ {
		user := int64(i%3 + 1)
		l := guichet.UsageLine{
			Time:             MonthBoundary.Add(time.Duration(i/2-n/4) * time.Minute),
			RequestID:        fmt.Sprintf("%s-%05d", prefix, i),
			OrganizationID:   10 * min(user, 2),
			UserID:           user,
			KeyID:            100 + user,
			Endpoint:         []guichet.Endpoint{guichet.EndpointChat, guichet.EndpointEmbeddings}[i%2],
			Model:            []string{"small", "large"}[i%5%2],
			ProviderModel:    "provider/model",
			Provider:         "albert",
			Status:           200,
			PromptTokens:     int64(i % 7 * 10),
			CompletionTokens: int64(i % 4 * 5),
			Cost:             guichet.Amount(i % 6 * 1000),
			Latency:          time.Duration(i) * time.Millisecond,
		}
		if i%3 != 0 {
			l.KWh, l.KgCO2eq = float64p(float64(i%8)/64), float64p(float64(i%5)/128)
		}
		lines = append(lines, l)
		if i%4 == 1 && len(lines) < n {
			a := l
			a.Attempt, a.Status, a.Provider, a.Cost = 1, 502, "other", 0
			lines = append(lines, a)
		}
	}
	return lines
}

func testUsageEmpty(t *testing.T, l guichet.Ledger) {
	ctx := t.Context()
	must(t, l.Record(ctx, nil))
	got, err := l.Usage(ctx, guichet.UsageFilter{}, guichet.Page{})
	must(t, err)
	if len(got) != 0 {
		t.Errorf("Usage of an empty ledger: %d lines", len(got))
	}
	totals, err := l.UsageTotals(ctx, guichet.UsageFilter{})
	must(t, err)
	same(t, "UsageTotals of an empty ledger", totals, guichet.UsageTotals{})
}

// testUsageRoundTrip checks that every field reads back as written: times
// in UTC to the microsecond, durations to the microsecond, nil energies
// apart from zero ones.
func testUsageRoundTrip(t *testing.T, l guichet.Ledger) {
	ctx := t.Context()
	paris := time.FixedZone("Paris", 3600)
	full := guichet.UsageLine{
		Time:             time.Date(2026, 10, 31, 23, 59, 59, 999_999_999, paris),
		RequestID:        "req-☃-0001",
		OrganizationID:   42,
		UserID:           7,
		KeyID:            1 << 40,
		Endpoint:         guichet.EndpointChat,
		Model:            "Mistral Small ☃",
		ProviderModel:    "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
		Provider:         "albert-1",
		Status:           200,
		PromptTokens:     1_234_567_890_123,
		CompletionTokens: 987_654_321,
		Cost:             123_456_789_012_345,
		KWh:              float64p(0.000123456789012345),
		KgCO2eq:          float64p(1.0000000000000002e-7),
		Latency:          1_234_567_891 * time.Nanosecond,
		TTFT:             345_678_912 * time.Nanosecond,
		Cancelled:        true,
	}
	attempt := full
	attempt.Attempt = 2
	attempt.Endpoint = guichet.EndpointRerank
	attempt.Provider, attempt.ProviderModel = "", ""
	attempt.Status = 499
	attempt.PromptTokens, attempt.CompletionTokens, attempt.Cost = 0, 0, 0
	attempt.KWh, attempt.KgCO2eq = nil, float64p(0)
	attempt.Latency, attempt.TTFT = 999*time.Nanosecond, 0
	attempt.Cancelled = false
	zero := guichet.UsageLine{Time: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), RequestID: "z", UserID: 7}

	must(t, l.Record(ctx, []guichet.UsageLine{full, attempt, zero}))
	got, err := l.Usage(ctx, guichet.UsageFilter{UserID: 7}, guichet.Page{})
	must(t, err)
	same(t, "Usage after a round trip", got, normUsage([]guichet.UsageLine{full, attempt, zero}))
	for _, l := range got {
		if l.Time.Location() != time.UTC {
			t.Errorf("line %s/%d: time %v not in UTC", l.RequestID, l.Attempt, l.Time)
		}
	}
}

// testUsageReplay records batches several times, whole and overlapping:
// each line is kept once and the totals do not move.
func testUsageReplay(t *testing.T, l guichet.Ledger) {
	ctx := t.Context()
	lines := UsageLines("r", 40)
	must(t, l.Record(ctx, lines[:20]))
	first, err := l.UsageTotals(ctx, guichet.UsageFilter{})
	must(t, err)
	same(t, "UsageTotals after one batch", first, sumUsage(lines[:20]))
	must(t, l.Record(ctx, lines[:20]))
	again, err := l.UsageTotals(ctx, guichet.UsageFilter{})
	must(t, err)
	same(t, "UsageTotals after replaying the batch", again, first)

	must(t, l.Record(ctx, lines[10:30]))
	// A batch holding the same line twice keeps it once.
	must(t, l.Record(ctx, append(slices.Clone(lines[25:]), lines[35], lines[0])))
	must(t, l.Record(ctx, lines))
	same(t, "Usage after replays", allUsage(t, l, guichet.UsageFilter{}, guichet.Page{Limit: 100}), sortUsage(lines, "", false))
	totals, err := l.UsageTotals(ctx, guichet.UsageFilter{})
	must(t, err)
	same(t, "UsageTotals after replays", totals, sumUsage(lines))
}

func testUsageFilters(t *testing.T, l guichet.Ledger) {
	ctx := t.Context()
	lines := UsageLines("f", 60)
	// Lines at the boundary's last microsecond and at its first.
	edge := lines[0]
	edge.RequestID, edge.Time = "edge-before", MonthBoundary.Add(-time.Microsecond)
	lines = append(lines, edge)
	edge.RequestID, edge.Time = "edge-after", MonthBoundary
	lines = append(lines, edge)
	must(t, l.Record(ctx, lines))

	hour := time.Hour
	for _, f := range []guichet.UsageFilter{
		{},
		{UserID: 1},
		{UserID: 2},
		{OrganizationID: 20},
		{OrganizationID: 10, UserID: 1},
		{OrganizationID: 10, UserID: 3},
		{Endpoint: guichet.EndpointEmbeddings},
		{Endpoint: guichet.EndpointRerank},
		{From: MonthBoundary},
		{To: MonthBoundary},
		{From: MonthBoundary.Add(-time.Microsecond), To: MonthBoundary.Add(time.Microsecond)},
		{From: MonthBoundary.Add(-time.Microsecond), To: MonthBoundary},
		{From: MonthBoundary, To: MonthBoundary},
		{UserID: 2, Endpoint: guichet.EndpointChat, From: MonthBoundary.Add(-hour / 4), To: MonthBoundary.Add(hour / 4)},
		{From: MonthBoundary.Add(-24 * hour), To: MonthBoundary.Add(24 * hour)},
		{From: MonthBoundary.AddDate(1, 0, 0)},
		{UserID: 999},
	} {
		want := sortUsage(filterUsage(lines, f), "", false)
		got := allUsage(t, l, f, guichet.Page{Limit: 100})
		same(t, fmt.Sprintf("Usage %s", dump(f)), got, want)
		totals, err := l.UsageTotals(ctx, f)
		must(t, err)
		same(t, fmt.Sprintf("UsageTotals %s", dump(f)), totals, sumUsage(want))
	}
	if got := filterUsage(lines, guichet.UsageFilter{From: MonthBoundary.Add(-time.Microsecond), To: MonthBoundary}); len(got) != 1 {
		t.Fatalf("test data: %d lines in the boundary's last microsecond, want 1", len(got))
	}
}

// testUsageOrder pages through every order, both ways, and checks ties
// go by request id then attempt.
func testUsageOrder(t *testing.T, l guichet.Ledger) {
	lines := UsageLines("o", 50)
	must(t, l.Record(t.Context(), lines))
	for _, orderBy := range []string{"", "time", "cost", "total_tokens"} {
		for _, desc := range []bool{false, true} {
			p := guichet.Page{OrderBy: orderBy, Desc: desc, Limit: 7}
			same(t, fmt.Sprintf("Usage by %q, desc %v", orderBy, desc),
				allUsage(t, l, guichet.UsageFilter{}, p), sortUsage(lines, orderBy, desc))
		}
	}
}

func testUsagePageLimits(t *testing.T, l guichet.Ledger) {
	ctx := t.Context()
	lines := UsageLines("p", 120)
	must(t, l.Record(ctx, lines))
	want := sortUsage(lines, "", false)
	for _, tc := range []struct {
		p    guichet.Page
		want []guichet.UsageLine
	}{
		{guichet.Page{}, want[:10]},
		{guichet.Page{Limit: 1000}, want[:100]},
		{guichet.Page{Limit: 100, Offset: 100}, want[100:]},
		{guichet.Page{Limit: 3, Offset: 117}, want[117:]},
		{guichet.Page{Offset: 200}, nil},
	} {
		got, err := l.Usage(ctx, guichet.UsageFilter{}, tc.p)
		must(t, err)
		if len(got) == 0 {
			got = nil
		}
		same(t, fmt.Sprintf("Usage %+v", tc.p), got, tc.want)
	}
	for _, p := range []guichet.Page{{OrderBy: "id"}, {OrderBy: "prompt_tokens; DROP TABLE usage_lines"}, {Offset: -1}, {Limit: -1}} {
		if _, err := l.Usage(ctx, guichet.UsageFilter{}, p); err == nil {
			t.Errorf("Usage %+v: no error", p)
		}
	}
}

// testUsageConcurrent records disjoint batches from several goroutines:
// every line is kept.
func testUsageConcurrent(t *testing.T, l guichet.Ledger) {
	const writers, batches, size = 5, 4, 100
	var all []guichet.UsageLine
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		lines := UsageLines(fmt.Sprintf("c%d", w), batches*size)
		for i := range lines {
			lines[i].UserID = int64(w + 1)
		}
		all = append(all, lines...)
		wg.Go(func() {
			for b := range batches {
				if err := l.Record(t.Context(), lines[b*size:(b+1)*size]); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	totals, err := l.UsageTotals(t.Context(), guichet.UsageFilter{})
	must(t, err)
	same(t, "UsageTotals after concurrent batches", totals, sumUsage(all))
	for w := range writers {
		f := guichet.UsageFilter{UserID: int64(w + 1)}
		totals, err := l.UsageTotals(t.Context(), f)
		must(t, err)
		same(t, fmt.Sprintf("UsageTotals of writer %d", w), totals, sumUsage(filterUsage(all, f)))
	}
}

// testUsageLargeBatch records 2,000 lines in one call (more than one
// statement's worth in SQLite), then again.
func testUsageLargeBatch(t *testing.T, l guichet.Ledger) {
	ctx := t.Context()
	lines := UsageLines("big", 2000)
	must(t, l.Record(ctx, lines))
	must(t, l.Record(ctx, lines))
	totals, err := l.UsageTotals(ctx, guichet.UsageFilter{})
	must(t, err)
	same(t, "UsageTotals of a large batch", totals, sumUsage(lines))
	got := allUsage(t, l, guichet.UsageFilter{}, guichet.Page{OrderBy: "time", Limit: 100})
	if len(got) != len(lines) {
		t.Fatalf("Usage of a large batch: %d lines, want %d", len(got), len(lines))
	}
	same(t, "Usage of a large batch", got, sortUsage(lines, "time", false))
}

// allUsage reads every page of a list.
func allUsage(t *testing.T, l guichet.Ledger, f guichet.UsageFilter, p guichet.Page) []guichet.UsageLine {
	t.Helper()
	var all []guichet.UsageLine
	for {
		page, err := l.Usage(t.Context(), f, p)
		must(t, err)
		all = append(all, page...)
		if len(page) < p.Limit {
			return all
		}
		p.Offset += len(page)
	}
}

// normUsage is lines as a store keeps them: times in UTC and durations
// to the microsecond.
func normUsage(lines []guichet.UsageLine) []guichet.UsageLine {
	out := make([]guichet.UsageLine, len(lines))
	for i, l := range lines {
		l.Time = l.Time.UTC().Truncate(time.Microsecond)
		l.Latency, l.TTFT = l.Latency.Truncate(time.Microsecond), l.TTFT.Truncate(time.Microsecond)
		out[i] = l
	}
	return out
}

// sortUsage is the order a store lists lines in, deduplicated (as a
// store keeps them), normalized.
func sortUsage(lines []guichet.UsageLine, orderBy string, desc bool) []guichet.UsageLine {
	key := func(l guichet.UsageLine) int64 {
		switch orderBy {
		case "cost":
			return int64(l.Cost)
		case "total_tokens":
			return l.PromptTokens + l.CompletionTokens
		}
		return l.Time.UnixMicro()
	}
	if orderBy == "" {
		desc = true
	}
	out := normUsage(lines)
	slices.SortStableFunc(out, func(a, b guichet.UsageLine) int {
		return cmp.Or(strings.Compare(a.RequestID, b.RequestID), cmp.Compare(a.Attempt, b.Attempt))
	})
	out = slices.CompactFunc(out, func(a, b guichet.UsageLine) bool {
		return a.RequestID == b.RequestID && a.Attempt == b.Attempt
	})
	slices.SortStableFunc(out, func(a, b guichet.UsageLine) int {
		c := cmp.Compare(key(a), key(b))
		if desc {
			c = -c
		}
		return c
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// filterUsage is the lines f selects.
func filterUsage(lines []guichet.UsageLine, f guichet.UsageFilter) []guichet.UsageLine {
	var out []guichet.UsageLine
	for _, l := range lines {
		if (f.UserID == 0 || l.UserID == f.UserID) &&
			(f.OrganizationID == 0 || l.OrganizationID == f.OrganizationID) &&
			(f.Endpoint == "" || l.Endpoint == f.Endpoint) &&
			(f.From.IsZero() || !l.Time.Before(f.From)) &&
			(f.To.IsZero() || l.Time.Before(f.To)) {
			out = append(out, l)
		}
	}
	return out
}

// sumUsage is the totals of distinct lines: requests' lines only.
func sumUsage(lines []guichet.UsageLine) guichet.UsageTotals {
	var t guichet.UsageTotals
	for _, l := range sortUsage(lines, "", false) {
		if l.Attempt != 0 {
			continue
		}
		t.Requests++
		t.PromptTokens += l.PromptTokens
		t.CompletionTokens += l.CompletionTokens
		t.Cost += l.Cost
		if l.KWh != nil {
			t.KWh += *l.KWh
		}
		if l.KgCO2eq != nil {
			t.KgCO2eq += *l.KgCO2eq
		}
	}
	return t
}

func float64p(v float64) *float64 { return &v }

// testUsageDaily: daily sums by organization, user and model equal the
// sums of the lines, for every kind of filter (whole days, part of a day,
// an endpoint), replays included.
func testUsageDaily(t *testing.T, l guichet.Ledger) {
	ctx := context.Background()
	lines := UsageLines("daily", 200)
	for range 2 {
		if err := l.Record(ctx, lines); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []guichet.UsageFilter{
		{},
		{From: MonthBoundary},
		{To: MonthBoundary},
		{From: MonthBoundary.Add(-time.Hour + time.Minute)},
		{Endpoint: guichet.EndpointChat},
		{UserID: 2, OrganizationID: 20},
	} {
		got, err := l.UsageDaily(ctx, f)
		if err != nil {
			t.Fatalf("UsageDaily(%+v): %v", f, err)
		}
		groups := map[string][]guichet.UsageLine{}
		var keys []string
		for _, line := range filterUsage(lines, f) {
			day := line.Time.UTC().Truncate(24 * time.Hour)
			k := fmt.Sprintf("%s|%s|%06d|%06d", day.Format(time.DateOnly), line.Model, line.OrganizationID, line.UserID)
			if _, seen := groups[k]; !seen {
				keys = append(keys, k)
			}
			groups[k] = append(groups[k], line)
		}
		sort.Strings(keys)
		var want []guichet.UsageDay
		for _, k := range keys {
			g := groups[k]
			sum := sumUsage(g)
			if sum.Requests == 0 {
				continue // attempt lines only
			}
			want = append(want, guichet.UsageDay{Day: g[0].Time.UTC().Truncate(24 * time.Hour), OrganizationID: g[0].OrganizationID, UserID: g[0].UserID,
				Model: g[0].Model, Requests: sum.Requests, PromptTokens: sum.PromptTokens, CompletionTokens: sum.CompletionTokens,
				Cost: sum.Cost, KWh: sum.KWh, KgCO2eq: sum.KgCO2eq})
		}
		if len(got) != len(want) {
			t.Fatalf("UsageDaily(%+v): %d rows, want %d", f, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("UsageDaily(%+v) row %d:\n got %+v\nwant %+v", f, i, got[i], want[i])
			}
		}
	}
}

// testUsagePrune: retention forgets the lines of the months before the
// bound and keeps the rest (both stores agree on a month boundary).
func testUsagePrune(t *testing.T, l guichet.Ledger) {
	ctx := context.Background()
	lines := UsageLines("prune", 100)
	if err := l.Record(ctx, lines); err != nil {
		t.Fatal(err)
	}
	if err := l.PruneUsage(ctx, MonthBoundary); err != nil {
		t.Fatal(err)
	}
	got := allUsage(t, l, guichet.UsageFilter{}, guichet.Page{Limit: 100})
	want := filterUsage(lines, guichet.UsageFilter{From: MonthBoundary})
	if len(got) != len(want) || len(want) == 0 || len(want) == len(lines) {
		t.Fatalf("after pruning before %v: %d lines, want %d of %d", MonthBoundary, len(got), len(want), len(lines))
	}
	for _, line := range got {
		if line.Time.Before(MonthBoundary) {
			t.Fatalf("a line of %v survived", line.Time)
		}
	}
}
