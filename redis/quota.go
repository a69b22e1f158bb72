package redis

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/quota"
)

// The Redis quota: guichet.Quota for cluster mode, with the semantics of
// package quota (and its conformance suite). Every replica shares the
// state, and every decision is one Lua script call, atomic in Redis.
//
// Key layout, under the prefix P (the caller's keys are appended as they
// are; the short tags keep the namespaces apart whatever they contain):
//
//	P c:<counter key>   sorted set, the counter's log: members
//	                    "<admission ID>|<cost>", scored by expiry (µs)
//	P ct:<counter key>  string, the sum of the log's costs
//	P b:<budget key>    string, the live balance (Amount)
//	P r:<budget key>    sorted set, the reservations, like a log
//	P rt:<budget key>   string, the sum of the reservations
//
// admit.lua, per admission: the balances first (any missing: it returns
// their indices; Go calls Load, and runs the script again with the values,
// which it sets only if still absent, so a concurrent loader never
// overwrites a balance being spent); then each log is pruned (expired
// members removed, their costs taken off the total) and checked; if all
// pass, the entries are added and the totals increased; the reply carries
// the decision and every counter's total and newest expiry. settle.lua
// removes held entries and reservations (charging the cost to the
// balance), and replaces a token entry "<id>|<estimate>" with
// "<id>|<input>" at the same score: only members still present change,
// so it is idempotent. Each script call is one round trip (EVALSHA; EVAL
// once after a server restart), shared with the calls of other requests
// made at the same moment (batch.go); a Settle with nothing to release
// costs none, and the first use of a budget two.
//
// Time is the Redis server's TIME, so replicas with skewed clocks agree;
// QuotaWithClock passes a time instead, for tests. Every key expires
// when its newest entry does (plus a second), balances after BalanceIdle
// without use: Redis holds only live state.
//
// Amounts and totals are exact int64 in Redis (INCRBY/DECRBY); the
// checks run on Lua doubles, exact up to 2^53 (9 million currency units
// in nano-units), which covers any real budget.
//
// It needs Redis 5 or later (TIME in a script that writes relies on
// script effects replication); it is tested on Redis 7.
//
// In Redis Cluster, the keys of one admission must share a hash slot:
// give a prefix with a hash tag, like "{guichet}:q:" (all quota keys then
// live on one shard).

//go:embed admit.lua
var admitSrc string

//go:embed settle.lua
var settleSrc string

var (
	admitScript  = goredis.NewScript(admitSrc)
	settleScript = goredis.NewScript(settleSrc)
)

// ttlSlack is kept on top of a key's last entry's expiry.
const ttlSlack = time.Second

type redisQuota struct {
	batch  *batcher
	del    func(ctx context.Context, keys ...string) *goredis.IntCmd
	prefix string
	clock  func() time.Time // nil: the server's TIME
}

// Quota returns the Redis quota, its keys under prefix (e.g. "guichet:q:").
func (c *Client) Quota(prefix string) guichet.Quota {
	return c.QuotaWithClock(prefix, nil)
}

// QuotaWithClock is Quota reading time from clock instead of the Redis
// server: for tests (quotatest's manual clock). clock nil: server TIME.
func (c *Client) QuotaWithClock(prefix string, clock func() time.Time) guichet.Quota {
	return &redisQuota{batch: c.batch, del: c.rdb.Del, prefix: prefix, clock: clock}
}

func (q *redisQuota) keys(keys []string, c guichet.Counter) []string {
	return append(keys, q.prefix+"c:"+c.Key, q.prefix+"ct:"+c.Key)
}

func (q *redisQuota) budgetKeys(keys []string, b guichet.BudgetHold) []string {
	return append(keys, q.prefix+"b:"+b.Key, q.prefix+"r:"+b.Key, q.prefix+"rt:"+b.Key)
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
func itoa(n int64) string       { return strconv.FormatInt(n, 10) }

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Admit implements guichet.Quota.
func (q *redisQuota) Admit(ctx context.Context, a *guichet.Admission) (guichet.Decision, error) {
	if err := quota.Validate(a); err != nil {
		return guichet.Decision{}, err
	}
	nc, nb := len(a.Counters), len(a.Budgets)
	if nc == 0 && nb == 0 {
		return guichet.Decision{Allowed: true, Counters: []guichet.CounterState{}}, nil
	}
	keys := make([]string, 0, 2*nc+3*nb)
	args := make([]any, 7, 7+4*nc+2*nb)
	args[1], args[2], args[3] = a.ID, itoa(int64(nc)), itoa(int64(nb))
	args[4], args[5], args[6] = itoa(quota.Lease(a).Microseconds()), ms(quota.BalanceIdle), ms(ttlSlack)
	for _, c := range a.Counters {
		keys = q.keys(keys, c)
		args = append(args, itoa(c.Limit), itoa(c.Window.Microseconds()), itoa(c.Cost), flag(c.Held))
	}
	loaded := len(args)
	for _, b := range a.Budgets {
		keys = q.budgetKeys(keys, b)
		args = append(args, itoa(int64(b.Reserve)), "")
	}
	for attempt := 0; ; attempt++ {
		args[0] = ""
		if q.clock != nil {
			args[0] = itoa(q.clock().UnixMicro())
		}
		reply, err := q.batch.run(ctx, admitScript, keys, args...)
		res, ok := reply.([]any)
		if err == nil && !ok {
			err = fmt.Errorf("unexpected reply %v", reply)
		}
		if err != nil {
			return guichet.Decision{}, fmt.Errorf("redis quota: admit: %w", err)
		}
		if s, ok := res[0].(string); !ok || s != "need" {
			return decision(a, res)
		}
		if attempt == quota.MaxLoads {
			return guichet.Decision{}, fmt.Errorf("redis quota: the balance of budget %q keeps being forgotten while it loads", a.Budgets[0].Key)
		}
		for _, v := range res[1:] {
			j, ok := v.(int64)
			if !ok || j < 0 || int(j) >= nb {
				return guichet.Decision{}, fmt.Errorf("redis quota: admit: unexpected reply %v", res)
			}
			bal, err := a.Budgets[j].Load(ctx)
			if err != nil {
				return guichet.Decision{}, &quota.LoadError{Key: a.Budgets[j].Key, Err: err}
			}
			args[loaded+2*int(j)+1] = itoa(int64(bal))
		}
	}
}

// decision reads admit.lua's reply.
func decision(a *guichet.Admission, res []any) (guichet.Decision, error) {
	nc, nb := len(a.Counters), len(a.Budgets)
	bad := func() (guichet.Decision, error) {
		return guichet.Decision{}, fmt.Errorf("redis quota: admit: unexpected reply %v", res)
	}
	if len(res) != 3+2*nc+2*nb {
		return bad()
	}
	n := make([]int64, len(res))
	for i, v := range res {
		switch v := v.(type) {
		case int64:
			n[i] = v
		case string: // a balance
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return bad()
			}
			n[i] = x
		default:
			return bad()
		}
	}
	d := guichet.Decision{
		Allowed:    n[0] == 1,
		Refused:    int(n[1]),
		RetryAfter: time.Duration(n[2]) * time.Microsecond,
		Counters:   make([]guichet.CounterState, nc),
	}
	for i, c := range a.Counters {
		d.Counters[i] = guichet.CounterState{
			Remaining: max(c.Limit-n[3+2*i], 0),
			Reset:     time.Duration(n[4+2*i]) * time.Microsecond,
		}
	}
	if nb > 0 {
		d.Balances = make([]guichet.Amount, nb)
		for j := range a.Budgets {
			d.Balances[j] = guichet.Amount(n[3+2*nc+2*j] - n[4+2*nc+2*j])
		}
	}
	return d, nil
}

// Settle implements guichet.Quota. Only held counters, token counters
// with a real count to correct to, and budgets go to the script; with
// none of them there is no round trip.
func (q *redisQuota) Settle(ctx context.Context, a *guichet.Admission, s guichet.Settlement) error {
	var keys []string
	args := make([]any, 6, 6+2*len(a.Counters)+len(a.Budgets))
	nc := 0
	for _, c := range a.Counters {
		if c.Held || c.Tokens && s.InputTokens >= 0 && s.InputTokens != c.Cost {
			keys = q.keys(keys, c)
			args = append(args, itoa(c.Cost), flag(c.Held))
			nc++
		}
	}
	for _, b := range a.Budgets {
		keys = q.budgetKeys(keys, b)
		args = append(args, itoa(int64(b.Reserve)))
	}
	if len(keys) == 0 {
		return nil
	}
	args[0], args[1], args[2] = a.ID, itoa(int64(nc)), itoa(int64(len(a.Budgets)))
	args[3], args[4], args[5] = itoa(s.InputTokens), itoa(int64(s.Cost)), ms(quota.BalanceIdle)
	if _, err := q.batch.run(ctx, settleScript, keys, args...); err != nil && err != goredis.Nil {
		return fmt.Errorf("redis quota: settle: %w", err)
	}
	return nil
}

// ForgetBalance implements guichet.Quota.
func (q *redisQuota) ForgetBalance(ctx context.Context, budgetKey string) error {
	if err := q.del(ctx, q.prefix+"b:"+budgetKey).Err(); err != nil {
		return fmt.Errorf("redis quota: forget balance: %w", err)
	}
	return nil
}
