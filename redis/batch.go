package redis

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Script calls made at the same moment by concurrent requests share one
// pipeline: one write and one read for all of them instead of one each.
// Redis still runs each script on its own, atomically; what is saved is
// the system calls and wake-ups of separate round trips, which are most of
// a replica's CPU spent on Redis. A call alone goes out at once.
const (
	batchWorkers = 4  // pipelines in flight at once
	maxBatch     = 64 // calls per pipeline at most
	batchTimeout = 5 * time.Second
)

type scriptCall struct {
	script *goredis.Script
	keys   []string
	args   []any
	res    any
	err    error
	done   chan struct{}
}

type batcher struct {
	rdb   *goredis.Client
	calls chan *scriptCall
	stop  chan struct{}
}

func newBatcher(rdb *goredis.Client) *batcher {
	b := &batcher{rdb: rdb, calls: make(chan *scriptCall, 1024), stop: make(chan struct{})}
	for range batchWorkers {
		go b.work()
	}
	return b
}

// run runs script and waits for its reply (or ctx; the call may still
// reach Redis then, as with any command cancelled in flight).
func (b *batcher) run(ctx context.Context, script *goredis.Script, keys []string, args ...any) (any, error) {
	c := &scriptCall{script: script, keys: keys, args: args, done: make(chan struct{})}
	select {
	case b.calls <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *batcher) work() {
	batch := make([]*scriptCall, 0, maxBatch)
	for {
		select {
		case <-b.stop:
			return
		case c := <-b.calls:
			batch = append(batch[:0], c)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case c := <-b.calls:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		b.send(batch)
	}
}

func (b *batcher) send(batch []*scriptCall) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	if len(batch) == 1 {
		c := batch[0]
		c.res, c.err = c.script.Run(ctx, b.rdb, c.keys, c.args...).Result()
		close(c.done)
		return
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*goredis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	pipe.Exec(ctx) // each command carries its own error
	for i, c := range batch {
		c.res, c.err = cmds[i].Result()
		if c.err != nil && goredis.HasErrorPrefix(c.err, "NOSCRIPT") {
			// Redis restarted and lost its script cache: load it again.
			c.res, c.err = c.script.Run(ctx, b.rdb, c.keys, c.args...).Result()
		}
		close(c.done)
	}
}
