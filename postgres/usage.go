package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/guichet/guichet"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var _ guichet.Ledger = (*DB)(nil)

// usageColumnNames are the columns of usage_lines, in the order Record
// copies them.
var usageColumnNames = []string{"time", "request_id", "attempt", "organization_id", "user_id", "key_id",
	"endpoint", "model", "provider_model", "provider", "status", "prompt_tokens", "completion_tokens",
	"cost", "kwh", "kgco2eq", "latency_us", "ttft_us", "cancelled"}

var usageColumns = strings.Join(usageColumnNames, ", ")

// usageOrder maps the names a page of usage lines may order by to
// expressions (a whitelist: OrderBy never reaches the SQL).
var usageOrder = map[string]string{
	"time":         "time",
	"cost":         "cost",
	"total_tokens": "(prompt_tokens + completion_tokens)",
}

// createStaging makes the session's staging table, where Record copies a
// batch before inserting it; a commit empties it.
const createStaging = `CREATE TEMPORARY TABLE IF NOT EXISTS usage_staging (
    time              timestamptz NOT NULL,
    request_id        text COLLATE "C" NOT NULL,
    attempt           integer NOT NULL,
    organization_id   bigint NOT NULL,
    user_id           bigint NOT NULL,
    key_id            bigint NOT NULL,
    endpoint          text NOT NULL,
    model             text COLLATE "C" NOT NULL,
    provider_model    text NOT NULL,
    provider          text NOT NULL,
    status            integer NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost              bigint NOT NULL,
    kwh               double precision,
    kgco2eq           double precision,
    latency_us        bigint NOT NULL,
    ttft_us           bigint NOT NULL,
    cancelled         boolean NOT NULL
) ON COMMIT DELETE ROWS`

// insertStaged moves the staged lines into usage_lines, skipping those
// already there, and adds the requests' lines (attempt 0) it inserted to
// the daily rollup: replays add nothing. Both sides go in key order, so
// concurrent overlapping batches wait on each other rather than
// deadlock.
var insertStaged = `WITH inserted AS (
    INSERT INTO usage_lines (` + usageColumns + `)
    SELECT ` + usageColumns + ` FROM usage_staging ORDER BY request_id, attempt
    ON CONFLICT DO NOTHING
    RETURNING time, organization_id, user_id, model, attempt, prompt_tokens, completion_tokens, cost, kwh, kgco2eq
)
INSERT INTO usage_daily AS d (day, organization_id, user_id, model, requests, prompt_tokens,
    completion_tokens, cost, kwh, kgco2eq)
SELECT (time AT TIME ZONE 'UTC')::date, organization_id, user_id, model, count(*), sum(prompt_tokens),
    sum(completion_tokens), sum(cost), coalesce(sum(kwh), 0), coalesce(sum(kgco2eq), 0)
FROM inserted WHERE attempt = 0
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (day, organization_id, user_id, model) DO UPDATE SET
    requests = d.requests + EXCLUDED.requests,
    prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens,
    cost = d.cost + EXCLUDED.cost,
    kwh = d.kwh + EXCLUDED.kwh,
    kgco2eq = d.kgco2eq + EXCLUDED.kgco2eq`

// Record copies the lines into a staging table and inserts them from
// there in one transaction, with the daily rollup; a line already
// recorded (same request_id, attempt and time) is skipped. It first
// creates the month partitions the lines need.
func (db *DB) Record(ctx context.Context, lines []guichet.UsageLine) error {
	if len(lines) == 0 {
		return nil
	}
	err := db.record(ctx, lines)
	if isNoPartition(err) {
		// Another replica dropped a partition this one remembered.
		db.partitions.Clear()
		err = db.record(ctx, lines)
	}
	if err != nil {
		return fmt.Errorf("record %d usage lines: %w", len(lines), err)
	}
	return nil
}

func (db *DB) record(ctx context.Context, lines []guichet.UsageLine) error {
	if err := db.createPartitions(ctx, lines); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, createStaging); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"usage_staging"}, usageColumnNames,
			pgx.CopyFromSlice(len(lines), func(i int) ([]any, error) {
				l := &lines[i]
				return []any{l.Time.UTC().Truncate(time.Microsecond), l.RequestID, l.Attempt,
					l.OrganizationID, l.UserID, l.KeyID, string(l.Endpoint), l.Model, l.ProviderModel,
					l.Provider, l.Status, l.PromptTokens, l.CompletionTokens, int64(l.Cost), l.KWh,
					l.KgCO2eq, int64(l.Latency / time.Microsecond), int64(l.TTFT / time.Microsecond),
					l.Cancelled}, nil
			}))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, insertStaged)
		return err
	})
}

// isNoPartition reports whether err is an insert finding no partition
// for its row.
func isNoPartition(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23514" && strings.Contains(e.Message, "no partition")
}

// createPartitions creates the month partitions lines fall in that are
// not known to exist. Replicas may race to create one: IF NOT EXISTS,
// and a duplicate error from the race, mean it exists.
func (db *DB) createPartitions(ctx context.Context, lines []guichet.UsageLine) error {
	var last time.Time
	for i := range lines {
		month := monthOf(lines[i].Time)
		if month.Equal(last) {
			continue
		}
		last = month
		name := partitionName(month)
		if _, ok := db.partitions.Load(name); ok {
			continue
		}
		_, err := db.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+pgx.Identifier{name}.Sanitize()+
			` PARTITION OF usage_lines FOR VALUES FROM ('`+bound(month)+`') TO ('`+bound(month.AddDate(0, 1, 0))+`')`)
		var e *pgconn.PgError
		if errors.As(err, &e) && (e.Code == "42P07" || e.Code == "42710" || e.Code == "23505") {
			err = nil // duplicate_table, duplicate_object, unique_violation (on the catalog)
		}
		if err != nil {
			return fmt.Errorf("create partition %s: %w", name, err)
		}
		db.partitions.Store(name, struct{}{})
	}
	return nil
}

// monthOf is the start of t's month, in UTC.
func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// partitionName is the name of the partition of the month starting at
// month: usage_lines_YYYYMM.
func partitionName(month time.Time) string {
	return fmt.Sprintf("usage_lines_%04d%02d", month.Year(), int(month.Month()))
}

// partitionMonth parses a partition name back to its month.
func partitionMonth(name string) (time.Time, bool) {
	digits, ok := strings.CutPrefix(name, "usage_lines_")
	if !ok || len(digits) != 6 {
		return time.Time{}, false
	}
	month, err := time.Parse("200601", digits)
	return month, err == nil
}

// bound is a partition bound literal.
func bound(t time.Time) string { return t.Format("2006-01-02 15:04:05") + "+00" }

// DropUsageBefore drops the month partitions of usage_lines that end at
// or before t, whole: retention. The daily rollup keeps their sums. It
// returns the names of the partitions dropped.
func (db *DB) DropUsageBefore(ctx context.Context, t time.Time) (dropped []string, err error) {
	rows, err := db.pool.Query(ctx, `SELECT n.nspname, c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE i.inhparent = 'usage_lines'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("drop usage before %v: %w", t, err)
	}
	parts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (p [2]string, err error) {
		err = row.Scan(&p[0], &p[1])
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("drop usage before %v: %w", t, err)
	}
	dropped = []string{}
	for _, p := range parts {
		month, ok := partitionMonth(p[1])
		if !ok || month.AddDate(0, 1, 0).After(t) {
			continue
		}
		db.partitions.Delete(p[1])
		if _, err := db.pool.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{p[0], p[1]}.Sanitize()); err != nil {
			return dropped, fmt.Errorf("drop usage partition %s: %w", p[1], err)
		}
		dropped = append(dropped, p[1])
	}
	return dropped, nil
}

func scanUsage(row pgx.Row) (guichet.UsageLine, error) {
	var l guichet.UsageLine
	var latency, ttft, cost int64
	var endpoint string
	err := row.Scan(&l.Time, &l.RequestID, &l.Attempt, &l.OrganizationID, &l.UserID, &l.KeyID, &endpoint,
		&l.Model, &l.ProviderModel, &l.Provider, &l.Status, &l.PromptTokens, &l.CompletionTokens,
		&cost, &l.KWh, &l.KgCO2eq, &latency, &ttft, &l.Cancelled)
	if err != nil {
		return l, err
	}
	l.Time, l.Endpoint, l.Cost = l.Time.UTC(), guichet.Endpoint(endpoint), guichet.Amount(cost)
	l.Latency, l.TTFT = time.Duration(latency)*time.Microsecond, time.Duration(ttft)*time.Microsecond
	return l, nil
}

// Usage lists the lines f selects: newest first by default, ties by
// request_id then attempt (always ascending, so a request's line comes
// before its attempts'). A time range only reads the partitions it
// spans.
func (db *DB) Usage(ctx context.Context, f guichet.UsageFilter, p guichet.Page) ([]guichet.UsageLine, error) {
	page, err := usagePageClause(p)
	if err != nil {
		return nil, err
	}
	where, args := usageWhere(f)
	return list(ctx, db.pool, `SELECT `+usageColumns+` FROM usage_lines`+where+page, args, scanUsage)
}

// UsageTotals sums the lines f selects. Only the requests' lines
// (attempt 0) count: attempt lines detail the same request, so adding
// them would count its tokens, cost and energy twice.
func (db *DB) UsageTotals(ctx context.Context, f guichet.UsageFilter) (guichet.UsageTotals, error) {
	where, args := usageWhere(f)
	if where == "" {
		where = " WHERE attempt = 0"
	} else {
		where += " AND attempt = 0"
	}
	var t guichet.UsageTotals
	var cost int64
	err := db.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(prompt_tokens), 0)::bigint,
		coalesce(sum(completion_tokens), 0)::bigint, coalesce(sum(cost), 0)::bigint,
		coalesce(sum(kwh), 0), coalesce(sum(kgco2eq), 0) FROM usage_lines`+where, args...).
		Scan(&t.Requests, &t.PromptTokens, &t.CompletionTokens, &cost, &t.KWh, &t.KgCO2eq)
	t.Cost = guichet.Amount(cost)
	return t, err
}

// PruneUsage drops the month partitions that end before before.
func (db *DB) PruneUsage(ctx context.Context, before time.Time) error {
	_, err := db.DropUsageBefore(ctx, before)
	return err
}

// UsageDaily sums the requests' lines (attempt 0) by UTC day,
// organization, user and model. Without an endpoint filter and with whole
// days as bounds it reads the usage_daily rollup (one row a day per user
// and model, however many requests); otherwise it groups the lines.
func (db *DB) UsageDaily(ctx context.Context, f guichet.UsageFilter) ([]guichet.UsageDay, error) {
	limit := ` ORDER BY day, model, organization_id, user_id LIMIT ` + strconv.Itoa(guichet.MaxUsageDays)
	var query string
	var args []any
	if f.Endpoint == "" && wholeDay(f.From) && wholeDay(f.To) {
		var conds []string
		add := func(cond string, arg any) {
			args = append(args, arg)
			conds = append(conds, cond+" $"+strconv.Itoa(len(args)))
		}
		if f.UserID != 0 {
			add("user_id =", f.UserID)
		}
		if f.OrganizationID != 0 {
			add("organization_id =", f.OrganizationID)
		}
		if !f.From.IsZero() {
			add("day >=", f.From.UTC().Format(time.DateOnly))
		}
		if !f.To.IsZero() {
			add("day <", f.To.UTC().Format(time.DateOnly))
		}
		where := ""
		if len(conds) > 0 {
			where = " WHERE " + strings.Join(conds, " AND ")
		}
		query = `SELECT day, organization_id, user_id, model, requests, prompt_tokens, completion_tokens, cost, kwh, kgco2eq
			FROM usage_daily` + where + limit
	} else {
		var where string
		where, args = usageWhere(f)
		if where == "" {
			where = " WHERE attempt = 0"
		} else {
			where += " AND attempt = 0"
		}
		query = `SELECT (time AT TIME ZONE 'UTC')::date AS day, organization_id, user_id, model, count(*),
			sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(cost)::bigint, coalesce(sum(kwh), 0), coalesce(sum(kgco2eq), 0)
			FROM usage_lines` + where + ` GROUP BY 1, organization_id, user_id, model` + limit
	}
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []guichet.UsageDay
	for rows.Next() {
		var d guichet.UsageDay
		var cost int64
		if err := rows.Scan(&d.Day, &d.OrganizationID, &d.UserID, &d.Model, &d.Requests, &d.PromptTokens, &d.CompletionTokens, &cost, &d.KWh, &d.KgCO2eq); err != nil {
			return nil, err
		}
		d.Day, d.Cost = time.Date(d.Day.Year(), d.Day.Month(), d.Day.Day(), 0, 0, 0, 0, time.UTC), guichet.Amount(cost)
		out = append(out, d)
	}
	return out, rows.Err()
}

// wholeDay reports a bound the daily rollup can answer: none, or midnight UTC.
func wholeDay(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	u := t.UTC()
	return u.Hour() == 0 && u.Minute() == 0 && u.Second() == 0 && u.Nanosecond() == 0
}

// usageWhere is the WHERE clause of a filter ("" when it selects all).
func usageWhere(f guichet.UsageFilter) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, cond+" $"+strconv.Itoa(len(args)))
	}
	if f.UserID != 0 {
		add("user_id =", f.UserID)
	}
	if f.OrganizationID != 0 {
		add("organization_id =", f.OrganizationID)
	}
	if f.Endpoint != "" {
		add("endpoint =", string(f.Endpoint))
	}
	if !f.From.IsZero() {
		add("time >=", f.From)
	}
	if !f.To.IsZero() {
		add("time <", f.To)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// usagePageClause is the ORDER BY, LIMIT and OFFSET of a page of usage
// lines. The default order is newest first; Desc applies to an explicit
// OrderBy. Ties go by request_id then attempt, ascending.
func usagePageClause(p guichet.Page) (string, error) {
	column, dir := "time", " DESC"
	if p.OrderBy != "" {
		var ok bool
		if column, ok = usageOrder[p.OrderBy]; !ok {
			return "", fmt.Errorf("cannot order usage by %q", p.OrderBy)
		}
		dir = " ASC"
		if p.Desc {
			dir = " DESC"
		}
	}
	offset, limit, err := p.Window()
	if err != nil {
		return "", err
	}
	return " ORDER BY " + column + dir + ", request_id, attempt LIMIT " + strconv.Itoa(limit) +
		" OFFSET " + strconv.Itoa(offset), nil
}
