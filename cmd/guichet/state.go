package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/identity"
	"github.com/guichet/guichet/postgres"
	"github.com/guichet/guichet/quota"
	"github.com/guichet/guichet/redis"
	"github.com/guichet/guichet/sqlite"
)

// state is where guichet keeps what outlives a request: the identity
// store (SQLite in the data dir, or PostgreSQL) and, in cluster mode, Redis.
type state struct {
	store   guichet.IdentityStore
	usage   guichet.Ledger  // the same database
	library guichet.Library // the same database: RAG collections and documents
	index   guichet.Index   // the same database: RAG chunks
	redis   *redis.Client   // nil in embedded mode
	mode    string          // for the logs: embedded or cluster
}

// openState opens the configured stores; migrations run on open. Redis,
// when configured and withRedis, may be unreachable: the server then
// starts with its limits in the configured outage mode (log is told).
func openState(ctx context.Context, cfg *config.Config, withRedis bool, log *slog.Logger) (*state, error) {
	st := &state{mode: "embedded"}
	var err error
	if dsn := cfg.Storage.Postgres; dsn != "" {
		st.mode = "cluster"
		db, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("storage.postgres: %w", err)
		}
		if cfg.RAG.EmbeddingModel != "" {
			// Semantic search needs pgvector: say so now, with the fix,
			// rather than at the first upload.
			if ok, err := db.HasVector(ctx); !ok {
				db.Close()
				if err == nil {
					err = postgres.ErrNoVector
				}
				return nil, fmt.Errorf("storage.postgres with rag.embedding_model %q: %w", cfg.RAG.EmbeddingModel, err)
			}
		}
		st.store, st.usage, st.library, st.index = db, db, db, db.Index()
	} else {
		path := filepath.Join(cfg.Server.DataDir, "guichet.db")
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", path, err)
		}
		st.store, st.usage, st.library, st.index = db, db, db, db.Index()
	}
	if url := cfg.Storage.Redis; url != "" && withRedis {
		if st.redis, err = redis.New(url); err != nil {
			st.store.Close()
			return nil, fmt.Errorf("storage.redis: %w", err)
		}
		if err := st.redis.Ping(ctx); err != nil {
			log.Warn("Redis is unreachable at start: rate limits and budgets follow limits.on_redis_down until it answers", "mode", cfg.Limits.OnRedisDown, "err", err)
		}
	}
	return st, nil
}

func (st *state) Close() {
	if st.redis != nil {
		st.redis.Close()
	}
	if c, ok := st.index.(io.Closer); ok {
		c.Close() // the embedded index saves its vector graphs
	}
	st.store.Close()
}

// quota is the admission backend: in process, or Redis with the
// configured behaviour when Redis fails.
func (st *state) quota(cfg *config.Config, log *slog.Logger) (guichet.Quota, *quota.Fallback) {
	local := quota.NewMemory(nil)
	if st.redis == nil {
		if cfg.Storage.Postgres != "" {
			log.Warn("storage.postgres without storage.redis: each replica applies rate limits and budgets on its own")
		}
		return local, nil
	}
	mode := quota.FailClosed
	if cfg.Limits.OnRedisDown == config.FailLocal {
		mode = quota.Local
	}
	f := quota.NewFallback(st.redis.Quota(cfg.Storage.RedisPrefix+"q:"), local, mode, log)
	return f, f
}

// directory builds the in-memory identity directory, kept fresh by
// polling the store's version and, in cluster mode, by Redis pub/sub.
func (st *state) directory(ctx context.Context, cfg *config.Config, masterKey string, log *slog.Logger) *identity.Directory {
	d := identity.NewDirectory(st.store, masterKey, log)
	if rc := st.redis; rc != nil {
		// "identities changed", between replicas.
		channel := cfg.Storage.RedisPrefix + "identity"
		d.Publish = func(ctx context.Context) error { return rc.Publish(ctx, channel, "changed") }
		// Any message, or a reconnection (messages may have been missed),
		// drops the cache.
		go rc.Subscribe(ctx, channel, func(string) { d.Invalidate() })
	}
	go d.Watch(ctx, time.Second)
	return d
}
