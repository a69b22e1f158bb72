package redis

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Replicas see each other within a heartbeat, and one that stops is no
// longer counted.
func TestReplicasCountEachOther(t *testing.T) {
	c := open(t)
	key := fmt.Sprintf("guichet-test:replicas:%d", time.Now().UnixNano())
	t.Cleanup(func() { c.rdb.Del(context.Background(), key) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := c.Replicas(key, "a"), c.Replicas(key, "b")
	go a.Run(ctx)
	bctx, stopB := context.WithCancel(ctx)
	go b.Run(bctx)
	waitLive := func(r *Replicas, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); r.Live() != n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d live, want %d", r.Live(), n)
			}
		}
	}
	waitLive(a, 2)
	stopB() // b leaves the set as it stops
	waitLive(a, 1)
}
