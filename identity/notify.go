package identity

import (
	"context"
	"errors"

	"github.com/guichet/guichet"
)

func isNotFound(err error) bool { return errors.Is(err, guichet.ErrNotFound) }

// notifying wraps a store so each successful change invalidates the
// directory (here and, through Publish, on every replica).
type notifying struct {
	guichet.IdentityStore
	d *Directory
}

func (n notifying) done(ctx context.Context, err error) error {
	if err == nil {
		n.d.Changed(ctx)
	}
	return err
}

func (n notifying) CreateOrganization(ctx context.Context, o *guichet.Organization) error {
	return n.done(ctx, n.IdentityStore.CreateOrganization(ctx, o))
}
func (n notifying) UpdateOrganization(ctx context.Context, o *guichet.Organization) error {
	return n.done(ctx, n.IdentityStore.UpdateOrganization(ctx, o))
}
func (n notifying) DeleteOrganization(ctx context.Context, id int64) error {
	return n.done(ctx, n.IdentityStore.DeleteOrganization(ctx, id))
}
func (n notifying) CreateRole(ctx context.Context, r *guichet.Role) error {
	return n.done(ctx, n.IdentityStore.CreateRole(ctx, r))
}
func (n notifying) UpdateRole(ctx context.Context, r *guichet.Role) error {
	return n.done(ctx, n.IdentityStore.UpdateRole(ctx, r))
}
func (n notifying) DeleteRole(ctx context.Context, id int64) error {
	return n.done(ctx, n.IdentityStore.DeleteRole(ctx, id))
}
func (n notifying) CreateUser(ctx context.Context, u *guichet.User) error {
	return n.done(ctx, n.IdentityStore.CreateUser(ctx, u))
}
func (n notifying) UpdateUser(ctx context.Context, u *guichet.User) error {
	return n.done(ctx, n.IdentityStore.UpdateUser(ctx, u))
}
func (n notifying) DeleteUser(ctx context.Context, id int64) error {
	return n.done(ctx, n.IdentityStore.DeleteUser(ctx, id))
}
func (n notifying) CreateKey(ctx context.Context, k *guichet.Key) error {
	// A new key needs no invalidation, except of a cached "unknown" entry
	// for its hash, which cannot exist for a fresh random key.
	return n.IdentityStore.CreateKey(ctx, k)
}
func (n notifying) UpdateKey(ctx context.Context, k *guichet.Key) error {
	return n.done(ctx, n.IdentityStore.UpdateKey(ctx, k))
}
func (n notifying) DeleteKey(ctx context.Context, id int64) error {
	return n.done(ctx, n.IdentityStore.DeleteKey(ctx, id))
}
