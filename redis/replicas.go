package redis

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Replicas counts the guichet replicas alive, through a sorted set of
// heartbeats (member: replica id, score: when its heartbeat expires). The
// scheduler uses it to take its share of a model's capacity, since every
// replica sends to the same model servers.
type Replicas struct {
	c    *Client
	key  string
	id   string
	live atomic.Int64
}

// ReplicaTTL is how long a replica counts as alive after its heartbeat.
const ReplicaTTL = 5 * time.Second

// Replicas returns the replica counter under key for this replica (id).
func (c *Client) Replicas(key, id string) *Replicas {
	r := &Replicas{c: c, key: key, id: id}
	r.live.Store(1)
	return r
}

// Live is the number of replicas alive at the last heartbeat (at least 1:
// while Redis is unreachable each replica counts on itself alone).
func (r *Replicas) Live() int { return int(r.live.Load()) }

// Run beats every second until ctx ends, then leaves the set.
func (r *Replicas) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		r.beat(ctx)
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.Background(), time.Second)
			r.c.rdb.ZRem(lctx, r.key, r.id)
			cancel()
			return
		case <-t.C:
		}
	}
}

func (r *Replicas) beat(ctx context.Context) {
	now := time.Now()
	pipe := r.c.rdb.TxPipeline()
	pipe.ZAdd(ctx, r.key, goredis.Z{Score: float64(now.Add(ReplicaTTL).UnixMilli()), Member: r.id})
	pipe.ZRemRangeByScore(ctx, r.key, "-inf", strconv.FormatInt(now.UnixMilli(), 10))
	count := pipe.ZCard(ctx, r.key)
	if _, err := pipe.Exec(ctx); err != nil {
		r.live.Store(1)
		return
	}
	r.live.Store(max(1, count.Val()))
}
