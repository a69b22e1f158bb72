package identity

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/guichet/guichet"
)

// maxUnknown bounds the memory of keys known not to exist.
const maxUnknown = 10000

// Directory answers "who is this key?" from memory. It loads a key's
// principal from the store once, and forgets everything whenever an
// identity changes: through this process, through another replica (Redis
// pub/sub calls Invalidate) or behind its back (Watch polls the store's
// version, which also catches `guichet admin` run on the same database).
type Directory struct {
	store     guichet.IdentityStore
	master    guichet.KeyHash
	hasMaster bool
	log       *slog.Logger
	// Publish, when set, tells the other replicas that identities changed.
	Publish func(ctx context.Context) error

	mu         sync.RWMutex
	gen        uint64 // advances on each invalidation
	principals map[guichet.KeyHash]*guichet.Principal
	unknown    map[guichet.KeyHash]struct{}
	roles      map[int64]*guichet.Role
	orgs       map[int64]*guichet.Organization
	loading    map[guichet.KeyHash]*load
}

type load struct {
	done chan struct{}
	p    *guichet.Principal
	err  error
}

// NewDirectory serves principals from store. masterKey, if not empty, is
// the operator's key: only its hash is kept.
func NewDirectory(store guichet.IdentityStore, masterKey string, log *slog.Logger) *Directory {
	d := &Directory{store: store, log: log}
	if masterKey != "" {
		d.master, d.hasMaster = HashKey(masterKey), true
	}
	d.reset()
	return d
}

func (d *Directory) reset() {
	d.principals = map[guichet.KeyHash]*guichet.Principal{}
	d.unknown = map[guichet.KeyHash]struct{}{}
	d.roles = map[int64]*guichet.Role{}
	d.orgs = map[int64]*guichet.Organization{}
	d.loading = map[guichet.KeyHash]*load{}
}

// Master is the principal of the master key: every permission, every
// model, no limit, no budget.
var Master = &guichet.Principal{
	Master: true,
	User:   &guichet.User{Name: "master"},
	Role: &guichet.Role{Name: "master", Permissions: []guichet.Permission{guichet.PermAdmin},
		Limits: []guichet.Limit{{Model: guichet.AllModels, Type: guichet.RequestsPerMinute}}},
}

var (
	errInvalidKey = guichet.Errorf(http.StatusUnauthorized, "invalid_api_key", "invalid API key: it does not exist or was revoked")
	errStore      = guichet.Errorf(http.StatusServiceUnavailable, "identity_unavailable", "keys cannot be checked right now (the database is unreachable); retry shortly")
)

// Authenticate returns the principal of an API key. An unknown, revoked
// or expired key is a 401 *guichet.Error. An expired user still gets its
// principal: the caller decides what it may do (see its own info only).
func (d *Directory) Authenticate(ctx context.Context, secret string) (*guichet.Principal, error) {
	h := HashKey(secret)
	if d.hasMaster && subtle.ConstantTimeCompare(h[:], d.master[:]) == 1 {
		return Master, nil
	}
	d.mu.RLock()
	p, ok := d.principals[h]
	_, unknown := d.unknown[h]
	d.mu.RUnlock()
	if !ok && !unknown {
		var err error
		if p, err = d.load(ctx, h); err != nil {
			return nil, err
		}
	}
	if p == nil {
		return nil, errInvalidKey
	}
	if p.Key.Expired(time.Now()) {
		return nil, guichet.Errorf(http.StatusUnauthorized, "expired_api_key", "this API key expired on %s: create a new one", p.Key.Expires.UTC().Format(time.RFC3339))
	}
	return p, nil
}

// load reads a principal from the store, once for concurrent callers.
// A nil principal with no error means no such key.
func (d *Directory) load(ctx context.Context, h guichet.KeyHash) (*guichet.Principal, error) {
	d.mu.Lock()
	if l, ok := d.loading[h]; ok {
		d.mu.Unlock()
		select {
		case <-l.done:
			return l.p, l.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l := &load{done: make(chan struct{})}
	d.loading[h] = l
	gen := d.gen
	d.mu.Unlock()

	l.p, l.err = d.read(ctx, h)

	d.mu.Lock()
	if d.loading[h] == l {
		delete(d.loading, h)
	}
	// Keep it only if nothing changed meanwhile: a change during the
	// read may have been missed by it.
	if l.err == nil && d.gen == gen {
		if l.p != nil {
			d.principals[h] = l.p
			d.roles[l.p.Role.ID] = l.p.Role
			if o := l.p.Organization; o != nil {
				d.orgs[o.ID] = o
			}
		} else {
			if len(d.unknown) >= maxUnknown {
				clear(d.unknown)
			}
			d.unknown[h] = struct{}{}
		}
	}
	d.mu.Unlock()
	close(l.done)
	return l.p, l.err
}

func (d *Directory) read(ctx context.Context, h guichet.KeyHash) (*guichet.Principal, error) {
	if d.store == nil {
		return nil, nil
	}
	k, err := d.store.KeyByHash(ctx, h)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		d.log.Error("loading an API key", "err", err)
		return nil, errStore
	}
	u, err := d.store.User(ctx, k.UserID)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		d.log.Error("loading a user", "user", k.UserID, "err", err)
		return nil, errStore
	}
	p := &guichet.Principal{Key: k, User: u}
	d.mu.RLock()
	p.Role = d.roles[u.RoleID]
	p.Organization = d.orgs[u.OrganizationID]
	d.mu.RUnlock()
	if p.Role == nil {
		if p.Role, err = d.store.Role(ctx, u.RoleID); err != nil {
			d.log.Error("loading a role", "role", u.RoleID, "err", err)
			return nil, errStore
		}
	}
	if p.Organization == nil && u.OrganizationID != 0 {
		if p.Organization, err = d.store.Organization(ctx, u.OrganizationID); err != nil {
			d.log.Error("loading an organization", "organization", u.OrganizationID, "err", err)
			return nil, errStore
		}
	}
	return p, nil
}

// Invalidate forgets every cached identity.
func (d *Directory) Invalidate() {
	d.mu.Lock()
	d.gen++
	loading := d.loading
	d.reset()
	d.loading = loading
	d.mu.Unlock()
}

// Changed records that this process changed identities: it forgets its
// cache and tells the other replicas.
func (d *Directory) Changed(ctx context.Context) {
	d.Invalidate()
	if d.Publish != nil {
		if err := d.Publish(ctx); err != nil {
			d.log.Warn("could not tell other replicas of an identity change; they will see it by polling within a second", "err", err)
		}
	}
}

// Watch polls the store's version every interval until ctx ends, and
// forgets the cache when it moved: the safety net under pub/sub, and
// what makes changes by `guichet admin` visible to a running server.
func (d *Directory) Watch(ctx context.Context, every time.Duration) {
	if d.store == nil {
		return
	}
	last, err := d.store.Version(ctx)
	failing := err != nil
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v, err := d.store.Version(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				d.log.Warn("cannot read the identity version; cached keys stay valid until the store answers again", "err", err)
			}
			failing = true
		case err == nil:
			if failing {
				d.log.Info("identity store reachable again")
				failing = false
				d.Invalidate()
			}
			if v != last {
				last = v
				d.Invalidate()
			}
		}
	}
}

// Store is the directory's store with every change reported through
// Changed, for the admin API.
// It is nil when the directory has no store (master key only).
func (d *Directory) Store() guichet.IdentityStore {
	if d.store == nil {
		return nil
	}
	return notifying{d.store, d}
}
