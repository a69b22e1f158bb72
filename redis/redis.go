// Package redis is guichet's shared state in cluster mode: the quota
// (guichet.Quota on Redis, see Quota) and a pub/sub channel replicas use
// to tell each other that something changed.
package redis

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
)

// Client is a connection pool to one Redis server, as given by a
// redis:// or rediss:// URL.
type Client struct {
	rdb   *goredis.Client
	batch *batcher
}

// Open connects to the Redis at url (redis://[user:password@]host:port/db,
// rediss:// for TLS; go-redis's query options such as dial_timeout are
// accepted) and checks it answers.
func Open(ctx context.Context, url string) (*Client, error) {
	c, err := New(url)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx); err != nil {
		c.rdb.Close()
		return nil, err
	}
	return c, nil
}

// New is Open without the check: connections are made on first use, so a
// server that starts while Redis is away can run degraded until it comes.
func New(url string) (*Client, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	// One dial attempt per command attempt (go-redis makes 5 by default,
	// 100 ms apart): the quota is on the request path, and Fallback
	// handles an outage better than waiting does.
	opt.DialerRetries = 1
	return newClient(goredis.NewClient(opt)), nil
}

func newClient(rdb *goredis.Client) *Client {
	return &Client{rdb: rdb, batch: newBatcher(rdb)}
}

// Ping checks Redis answers (for /ready).
func (c *Client) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}

// Close closes the connections. Subscribe calls end with it.
func (c *Client) Close() error {
	close(c.batch.stop)
	return c.rdb.Close()
}

// Publish sends message to every current subscriber of channel. The empty
// message is reserved (Subscribe's "you may have missed messages").
func (c *Client) Publish(ctx context.Context, channel, message string) error {
	if message == "" {
		return errors.New("redis: publish: the empty message is reserved")
	}
	if err := c.rdb.Publish(ctx, channel, message).Err(); err != nil {
		return fmt.Errorf("redis: publish: %w", err)
	}
	return nil
}

// Subscribe calls handle with every message published on channel, one at
// a time, until ctx is done (or the client is closed).
//
// handle("") is called each time the subscription is established: once
// at the start and again after every reconnection. Pub/sub delivers only
// to connected subscribers, so whatever was published before (or while
// the connection was down) is lost: on "", the handler must assume it
// missed messages (e.g. drop its whole cache, or re-read a version
// counter). The connection is checked with a ping every few seconds when
// idle, and re-established (channel subscribed again) after any failure,
// retrying until ctx is done. A handler blocking for more than a minute
// makes the subscription drop messages: hand slow work to a goroutine.
func (c *Client) Subscribe(ctx context.Context, channel string, handle func(message string)) {
	ps := c.rdb.Subscribe(ctx, channel) // a failure here is retried by the receiver
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *goredis.Subscription:
				if m.Kind == "subscribe" {
					handle("")
				}
			case *goredis.Message:
				handle(m.Payload)
			}
		}
	}
}
