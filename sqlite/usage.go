package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guichet/guichet"
)

var _ guichet.Ledger = (*DB)(nil)

const usageColumns = `time, request_id, attempt, organization_id, user_id, key_id, endpoint, model,
	provider_model, provider, status, prompt_tokens, completion_tokens, cost, kwh, kgco2eq,
	latency_us, ttft_us, cancelled`

// usageColumnCount is the number of usageColumns, the variables one line
// binds.
const usageColumnCount = 19

// usageRowsPerInsert is the most lines one INSERT carries: 19,000
// variables, under SQLite's limit of 32,766 (SQLITE_MAX_VARIABLE_NUMBER
// since 3.32).
const usageRowsPerInsert = 1000

// usageOrder maps the names a page of usage lines may order by to
// expressions (a whitelist: OrderBy never reaches the SQL).
var usageOrder = map[string]string{
	"time":         "time",
	"cost":         "cost",
	"total_tokens": "(prompt_tokens + completion_tokens)",
}

// Record inserts the lines in one transaction, a multi-row INSERT per
// chunk; a line already recorded (same request_id and attempt) is
// skipped.
func (db *DB) Record(ctx context.Context, lines []guichet.UsageLine) error {
	if len(lines) == 0 {
		return nil
	}
	err := db.inTx(ctx, false, func(tx *sql.Tx) error {
		for chunk := range slices.Chunk(lines, usageRowsPerInsert) {
			query, args := insertUsage(chunk)
			if _, err := tx.ExecContext(ctx, query, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record %d usage lines: %w", len(lines), err)
	}
	return nil
}

// insertUsage is the INSERT of a chunk of lines and its arguments.
func insertUsage(lines []guichet.UsageLine) (string, []any) {
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	var b strings.Builder
	b.Grow(64 + len(lines)*(len(row)+2))
	b.WriteString(`INSERT INTO usage_lines (` + usageColumns + `) VALUES `)
	args := make([]any, 0, len(lines)*usageColumnCount)
	for i, l := range lines {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
		cancelled := 0
		if l.Cancelled {
			cancelled = 1
		}
		args = append(args, micros(l.Time), l.RequestID, l.Attempt, l.OrganizationID, l.UserID, l.KeyID,
			string(l.Endpoint), l.Model, l.ProviderModel, l.Provider, l.Status, l.PromptTokens,
			l.CompletionTokens, int64(l.Cost), nullFloat(l.KWh), nullFloat(l.KgCO2eq),
			int64(l.Latency/time.Microsecond), int64(l.TTFT/time.Microsecond), cancelled)
	}
	b.WriteString(` ON CONFLICT (request_id, attempt) DO NOTHING`)
	return b.String(), args
}

func scanUsage(row scanner) (guichet.UsageLine, error) {
	var l guichet.UsageLine
	var t, latency, ttft, cost int64
	var endpoint string
	var kwh, co2 sql.NullFloat64
	err := row.Scan(&t, &l.RequestID, &l.Attempt, &l.OrganizationID, &l.UserID, &l.KeyID, &endpoint,
		&l.Model, &l.ProviderModel, &l.Provider, &l.Status, &l.PromptTokens, &l.CompletionTokens,
		&cost, &kwh, &co2, &latency, &ttft, &l.Cancelled)
	if err != nil {
		return l, err
	}
	l.Time, l.Endpoint, l.Cost = fromMicros(t), guichet.Endpoint(endpoint), guichet.Amount(cost)
	l.KWh, l.KgCO2eq = floatPtr(kwh), floatPtr(co2)
	l.Latency, l.TTFT = time.Duration(latency)*time.Microsecond, time.Duration(ttft)*time.Microsecond
	return l, nil
}

// Usage lists the lines f selects: newest first by default, ties by
// request_id then attempt (always ascending, so a request's line comes
// before its attempts').
func (db *DB) Usage(ctx context.Context, f guichet.UsageFilter, p guichet.Page) ([]guichet.UsageLine, error) {
	page, err := usagePageClause(p)
	if err != nil {
		return nil, err
	}
	where, args := usageWhere(f)
	return list(ctx, db.db, `SELECT `+usageColumns+` FROM usage_lines`+where+page, args, scanUsage)
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
	err := db.db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(prompt_tokens), 0),
		coalesce(sum(completion_tokens), 0), coalesce(sum(cost), 0), coalesce(sum(kwh), 0.0),
		coalesce(sum(kgco2eq), 0.0) FROM usage_lines`+where, args...).
		Scan(&t.Requests, &t.PromptTokens, &t.CompletionTokens, &cost, &t.KWh, &t.KgCO2eq)
	t.Cost = guichet.Amount(cost)
	return t, err
}

// PruneUsage deletes the lines older than before.
func (db *DB) PruneUsage(ctx context.Context, before time.Time) error {
	_, err := db.db.ExecContext(ctx, `DELETE FROM usage_lines WHERE time < ?`, micros(before))
	return err
}

// UsageDaily sums the requests' lines (attempt 0) by UTC day,
// organization, user and model.
func (db *DB) UsageDaily(ctx context.Context, f guichet.UsageFilter) ([]guichet.UsageDay, error) {
	where, args := usageWhere(f)
	if where == "" {
		where = " WHERE attempt = 0"
	} else {
		where += " AND attempt = 0"
	}
	rows, err := db.db.QueryContext(ctx, `SELECT time / 86400000000 AS day, organization_id, user_id, model, count(*),
		sum(prompt_tokens), sum(completion_tokens), sum(cost), coalesce(sum(kwh), 0.0), coalesce(sum(kgco2eq), 0.0)
		FROM usage_lines`+where+` GROUP BY day, organization_id, user_id, model
		ORDER BY day, model, organization_id, user_id LIMIT `+strconv.Itoa(guichet.MaxUsageDays), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []guichet.UsageDay
	for rows.Next() {
		var d guichet.UsageDay
		var day, cost int64
		if err := rows.Scan(&day, &d.OrganizationID, &d.UserID, &d.Model, &d.Requests, &d.PromptTokens, &d.CompletionTokens, &cost, &d.KWh, &d.KgCO2eq); err != nil {
			return nil, err
		}
		d.Day, d.Cost = time.Unix(day*86400, 0).UTC(), guichet.Amount(cost)
		out = append(out, d)
	}
	return out, rows.Err()
}

// usageWhere is the WHERE clause of a filter ("" when it selects all).
func usageWhere(f guichet.UsageFilter) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		conds = append(conds, cond)
		args = append(args, arg)
	}
	if f.UserID != 0 {
		add("user_id = ?", f.UserID)
	}
	if f.OrganizationID != 0 {
		add("organization_id = ?", f.OrganizationID)
	}
	if f.Endpoint != "" {
		add("endpoint = ?", string(f.Endpoint))
	}
	if !f.From.IsZero() {
		add("time >= ?", micros(f.From))
	}
	if !f.To.IsZero() {
		add("time < ?", micros(f.To))
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

func nullFloat(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func floatPtr(n sql.NullFloat64) *float64 {
	if !n.Valid {
		return nil
	}
	v := n.Float64
	return &v
}
