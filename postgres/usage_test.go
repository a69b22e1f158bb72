package postgres_test

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/postgres"
	"github.com/guichet/guichet/postgres/pgtest"
	"github.com/guichet/guichet/storetest"
)

// TestUsageDaily checks that the daily rollup is the sum of the
// requests' lines, whatever the replays.
func TestUsageDaily(t *testing.T) {
	ctx := t.Context()
	db := open(t, pgtest.DSN(t))
	defer db.Close()
	lines := storetest.UsageLines("d", 600)
	for i := range lines {
		// Spread over a few days either side of the month boundary.
		lines[i].Time = lines[i].Time.Add(time.Duration(i%5-2) * 24 * time.Hour)
	}
	must(t, db.Record(ctx, lines[:300]))
	must(t, db.Record(ctx, lines[200:]))
	must(t, db.Record(ctx, lines))
	must(t, db.Record(ctx, lines[100:400]))

	type key struct {
		day       string
		org, user int64
		model     string
	}
	type sums struct {
		requests, prompt, completion, cost int64
		kwh, co2                           float64
	}
	want := map[key]sums{}
	for _, l := range lines {
		if l.Attempt != 0 {
			continue
		}
		k := key{l.Time.UTC().Format(time.DateOnly), l.OrganizationID, l.UserID, l.Model}
		s := want[k]
		s.requests++
		s.prompt += l.PromptTokens
		s.completion += l.CompletionTokens
		s.cost += int64(l.Cost)
		if l.KWh != nil {
			s.kwh += *l.KWh
		}
		if l.KgCO2eq != nil {
			s.co2 += *l.KgCO2eq
		}
		want[k] = s
	}
	rows, err := db.Pool().Query(ctx, `SELECT day::text, organization_id, user_id, model, requests,
		prompt_tokens, completion_tokens, cost, kwh, kgco2eq FROM usage_daily`)
	must(t, err)
	got := map[key]sums{}
	for rows.Next() {
		var k key
		var s sums
		must(t, rows.Scan(&k.day, &k.org, &k.user, &k.model, &s.requests, &s.prompt, &s.completion, &s.cost, &s.kwh, &s.co2))
		got[k] = s
	}
	must(t, rows.Err())
	if len(got) != len(want) {
		t.Errorf("usage_daily: %d rows, want %d", len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("usage_daily %+v: missing", k)
			continue
		}
		if g.requests != w.requests || g.prompt != w.prompt || g.completion != w.completion || g.cost != w.cost ||
			math.Abs(g.kwh-w.kwh) > 1e-9 || math.Abs(g.co2-w.co2) > 1e-9 {
			t.Errorf("usage_daily %+v:\n got %+v\nwant %+v", k, g, w)
		}
	}
}

// TestDropUsageBefore checks that retention drops whole month
// partitions ending at or before the time given, and nothing else; and
// that recording in a dropped month again works, even from a replica
// that remembered the partition.
func TestDropUsageBefore(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	db, other := open(t, dsn), open(t, dsn)
	defer db.Close()
	defer other.Close()

	var lines []guichet.UsageLine
	for i, month := range []time.Month{time.July, time.August, time.September, time.October, time.November} {
		for day := range 3 {
			lines = append(lines, guichet.UsageLine{
				Time:      time.Date(2026, month, 1+day*14, 12, 0, 0, 0, time.UTC),
				RequestID: fmt.Sprintf("m%d-%d", i, day),
				UserID:    1,
			})
		}
	}
	must(t, db.Record(ctx, lines))
	must(t, other.Record(ctx, lines[:3])) // other remembers July's partition
	partitions := func() []string {
		rows, err := db.Pool().Query(ctx, `SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'usage_lines'::regclass ORDER BY 1`)
		must(t, err)
		var names []string
		for rows.Next() {
			var n string
			must(t, rows.Scan(&n))
			names = append(names, n)
		}
		must(t, rows.Err())
		return names
	}
	if got, want := partitions(), []string{"usage_lines_202607", "usage_lines_202608", "usage_lines_202609", "usage_lines_202610", "usage_lines_202611"}; !slices.Equal(got, want) {
		t.Fatalf("partitions %v, want %v", got, want)
	}

	// September ends October 1st: it goes at October 1st, not before.
	dropped, err := db.DropUsageBefore(ctx, time.Date(2026, 10, 1, 0, 0, 0, -1, time.UTC))
	must(t, err)
	if want := []string{"usage_lines_202607", "usage_lines_202608"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
	dropped, err = db.DropUsageBefore(ctx, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))
	must(t, err)
	if want := []string{"usage_lines_202609"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
	if got, want := partitions(), []string{"usage_lines_202610", "usage_lines_202611"}; !slices.Equal(got, want) {
		t.Errorf("partitions after retention %v, want %v", got, want)
	}
	totals, err := db.UsageTotals(ctx, guichet.UsageFilter{})
	must(t, err)
	if totals.Requests != 6 {
		t.Errorf("%d requests left after retention, want 6", totals.Requests)
	}
	var days int
	must(t, db.Pool().QueryRow(ctx, `SELECT count(*) FROM usage_daily`).Scan(&days))
	if days != 15 {
		t.Errorf("usage_daily: %d rows after retention, want 15 (the rollup outlives the lines)", days)
	}

	// Both replicas record in July again: db forgot the partition, other
	// still remembers it and must recover.
	must(t, other.Record(ctx, lines[:1]))
	must(t, db.Record(ctx, lines[:2]))
	got, err := db.Usage(ctx, guichet.UsageFilter{To: time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)}, guichet.Page{})
	must(t, err)
	if len(got) != 2 {
		t.Errorf("%d July lines after recording them again, want 2", len(got))
	}
	dropped, err = db.DropUsageBefore(ctx, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	must(t, err)
	if len(dropped) != 0 {
		t.Errorf("dropped %v before 2020", dropped)
	}
}

// TestUsageReplicas has replicas record into new months at once: they
// race to create the same partitions, and every line is kept.
func TestUsageReplicas(t *testing.T) {
	dsn := pgtest.DSN(t)
	dbs := make([]*postgres.DB, 4)
	for i := range dbs {
		dbs[i] = open(t, dsn)
		defer dbs[i].Close()
	}
	var all []guichet.UsageLine
	errs := make([]error, len(dbs))
	var wg sync.WaitGroup
	for i, db := range dbs {
		lines := storetest.UsageLines(fmt.Sprintf("replica%d", i), 300)
		for j := range lines {
			lines[j].Time = lines[j].Time.AddDate(0, j%4, 0) // four months
		}
		all = append(all, lines...)
		wg.Go(func() { errs[i] = db.Record(t.Context(), lines) })
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	var n int
	must(t, dbs[0].Pool().QueryRow(t.Context(), `SELECT count(*) FROM usage_lines`).Scan(&n))
	if n != len(all) {
		t.Errorf("%d lines recorded, want %d", n, len(all))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
