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
)

// The names a page may order each list by, and their columns.
var (
	orgOrder  = map[string]string{"id": "id", "name": "name", "created": "created", "updated": "updated"}
	roleOrder = orgOrder
	userOrder = map[string]string{"id": "id", "name": "name", "email": "email", "created": "created", "updated": "updated"}
	// Keys never change: updated is created.
	keyOrder = map[string]string{"id": "id", "name": "name", "created": "created", "updated": "created"}
)

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// list runs a query and scans every row.
func list[T any](ctx context.Context, q querier, query string, args []any, scan func(pgx.Row) (T, error)) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
}

// Organizations

const orgColumns = `id, name, budget, created, updated`

func scanOrg(row pgx.Row) (*guichet.Organization, error) {
	var o guichet.Organization
	var budget *int64
	if err := row.Scan(&o.ID, &o.Name, &budget, &o.Created, &o.Updated); err != nil {
		return nil, err
	}
	o.Budget = amountPtr(budget)
	o.Created, o.Updated = o.Created.UTC(), o.Updated.UTC()
	return &o, nil
}

func (db *DB) CreateOrganization(ctx context.Context, o *guichet.Organization) error {
	t := now()
	var id int64
	err := db.change(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx,
			`INSERT INTO organizations (name, budget, created, updated) VALUES ($1, $2, $3, $3) RETURNING id`,
			o.Name, nullAmount(o.Budget), t).Scan(&id)
	})
	if err != nil {
		return fmt.Errorf("create organization %q: %w", o.Name, storeErr(err, guichet.ErrNotFound))
	}
	o.ID, o.Created, o.Updated = id, t, t
	return nil
}

func (db *DB) Organization(ctx context.Context, id int64) (*guichet.Organization, error) {
	o, err := scanOrg(db.pool.QueryRow(ctx, `SELECT `+orgColumns+` FROM organizations WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("organization", id)
	}
	return o, err
}

func (db *DB) Organizations(ctx context.Context, p guichet.Page) ([]*guichet.Organization, error) {
	page, err := pageClause(p, orgOrder)
	if err != nil {
		return nil, err
	}
	return list(ctx, db.pool, `SELECT `+orgColumns+` FROM organizations`+page, nil, scanOrg)
}

func (db *DB) UpdateOrganization(ctx context.Context, o *guichet.Organization) error {
	t := now()
	err := db.change(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE organizations SET name = $1, budget = $2, updated = $3 WHERE id = $4`,
			o.Name, nullAmount(o.Budget), t, o.ID)
		if err != nil {
			return err
		}
		return affected(tag, "organization", o.ID)
	})
	if err != nil {
		return fmt.Errorf("update organization: %w", storeErr(err, guichet.ErrNotFound))
	}
	o.Updated = t
	return nil
}

func (db *DB) DeleteOrganization(ctx context.Context, id int64) error {
	return db.deleteRow(ctx, "organizations", "organization", id)
}

// deleteRow deletes a row by id; a row still referenced is a conflict.
func (db *DB) deleteRow(ctx context.Context, table, what string, id int64) error {
	err := db.change(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return affected(tag, what, id)
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, storeErr(err, guichet.ErrConflict))
	}
	return nil
}

// Roles

const roleColumns = `id, name, created, updated`

func scanRole(row pgx.Row) (*guichet.Role, error) {
	var r guichet.Role
	if err := row.Scan(&r.ID, &r.Name, &r.Created, &r.Updated); err != nil {
		return nil, err
	}
	r.Created, r.Updated = r.Created.UTC(), r.Updated.UTC()
	return &r, nil
}

func (db *DB) CreateRole(ctx context.Context, r *guichet.Role) error {
	t := now()
	var id int64
	err := db.change(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO roles (name, created, updated) VALUES ($1, $2, $2) RETURNING id`,
			r.Name, t).Scan(&id)
		if err != nil {
			return err
		}
		return insertRoleDetails(ctx, tx, id, r)
	})
	if err != nil {
		return fmt.Errorf("create role %q: %w", r.Name, storeErr(err, guichet.ErrNotFound))
	}
	r.ID, r.Created, r.Updated = id, t, t
	return nil
}

// insertRoleDetails stores a role's permissions and limits, with their
// positions so they read back in the order given.
func insertRoleDetails(ctx context.Context, tx pgx.Tx, id int64, r *guichet.Role) error {
	var batch pgx.Batch
	for i, p := range r.Permissions {
		batch.Queue(`INSERT INTO role_permissions (role_id, position, permission) VALUES ($1, $2, $3)`,
			id, i, string(p))
	}
	for i, l := range r.Limits {
		batch.Queue(`INSERT INTO role_limits (role_id, position, model, type, value) VALUES ($1, $2, $3, $4, $5)`,
			id, i, l.Model, string(l.Type), l.Value)
	}
	if batch.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &batch).Close()
}

// roles reads roles with their permissions and limits, in one
// repeatable-read transaction so each role is read whole.
func (db *DB) roles(ctx context.Context, rest string, args ...any) ([]*guichet.Role, error) {
	var roles []*guichet.Role
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err := pgx.BeginTxFunc(ctx, db.pool, opts, func(tx pgx.Tx) error {
		var err error
		roles, err = list(ctx, tx, `SELECT `+roleColumns+` FROM roles`+rest, args, scanRole)
		if err != nil || len(roles) == 0 {
			return err
		}
		return loadRoleDetails(ctx, tx, roles)
	})
	return roles, err
}

func loadRoleDetails(ctx context.Context, tx pgx.Tx, roles []*guichet.Role) error {
	byID := make(map[int64]*guichet.Role, len(roles))
	ids := make([]int64, len(roles))
	for i, r := range roles {
		byID[r.ID], ids[i] = r, r.ID
	}
	rows, err := tx.Query(ctx, `SELECT role_id, permission FROM role_permissions
		WHERE role_id = ANY($1) ORDER BY role_id, position`, ids)
	if err != nil {
		return err
	}
	var id int64
	var p string
	_, err = pgx.ForEachRow(rows, []any{&id, &p}, func() error {
		r := byID[id]
		r.Permissions = append(r.Permissions, guichet.Permission(p))
		return nil
	})
	if err != nil {
		return err
	}

	rows, err = tx.Query(ctx, `SELECT role_id, model, type, value FROM role_limits
		WHERE role_id = ANY($1) ORDER BY role_id, position`, ids)
	if err != nil {
		return err
	}
	var model, typ string
	var value *int64
	_, err = pgx.ForEachRow(rows, []any{&id, &model, &typ, &value}, func() error {
		r := byID[id]
		r.Limits = append(r.Limits, guichet.Limit{Model: model, Type: guichet.LimitType(typ), Value: value})
		value = nil // a fresh pointer for the next row
		return nil
	})
	return err
}

func (db *DB) Role(ctx context.Context, id int64) (*guichet.Role, error) {
	roles, err := db.roles(ctx, ` WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	if len(roles) == 0 {
		return nil, notFound("role", id)
	}
	return roles[0], nil
}

func (db *DB) RoleByName(ctx context.Context, name string) (*guichet.Role, error) {
	roles, err := db.roles(ctx, ` WHERE name = $1`, name)
	if err != nil {
		return nil, err
	}
	if len(roles) == 0 {
		return nil, notFound("role", fmt.Sprintf("%q", name))
	}
	return roles[0], nil
}

func (db *DB) Roles(ctx context.Context, p guichet.Page) ([]*guichet.Role, error) {
	page, err := pageClause(p, roleOrder)
	if err != nil {
		return nil, err
	}
	return db.roles(ctx, page)
}

// UpdateRole replaces the role's name, permissions and limits.
func (db *DB) UpdateRole(ctx context.Context, r *guichet.Role) error {
	t := now()
	err := db.change(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE roles SET name = $1, updated = $2 WHERE id = $3`, r.Name, t, r.ID)
		if err != nil {
			return err
		}
		if err := affected(tag, "role", r.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM role_permissions WHERE role_id = $1`, r.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM role_limits WHERE role_id = $1`, r.ID); err != nil {
			return err
		}
		return insertRoleDetails(ctx, tx, r.ID, r)
	})
	if err != nil {
		return fmt.Errorf("update role: %w", storeErr(err, guichet.ErrNotFound))
	}
	r.Updated = t
	return nil
}

func (db *DB) DeleteRole(ctx context.Context, id int64) error {
	return db.deleteRow(ctx, "roles", "role", id)
}

// Users

const userColumns = `id, email, name, role_id, organization_id, budget, expires, priority, created, updated`

func scanUser(row pgx.Row) (*guichet.User, error) {
	var u guichet.User
	var org, budget *int64
	var expires *time.Time
	if err := row.Scan(&u.ID, &u.Email, &u.Name, &u.RoleID, &org, &budget, &expires, &u.Priority, &u.Created, &u.Updated); err != nil {
		return nil, err
	}
	if org != nil {
		u.OrganizationID = *org
	}
	u.Budget, u.Expires = amountPtr(budget), utcPtr(expires)
	u.Created, u.Updated = u.Created.UTC(), u.Updated.UTC()
	return &u, nil
}

// CreateUser stores the user with its email lower-cased (emails compare
// case-insensitively).
func (db *DB) CreateUser(ctx context.Context, u *guichet.User) error {
	t := now()
	email := strings.ToLower(u.Email)
	var id int64
	err := db.change(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO users
			(email, name, role_id, organization_id, budget, expires, priority, created, updated)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id`,
			email, u.Name, u.RoleID, nullID(u.OrganizationID), nullAmount(u.Budget), u.Expires, u.Priority, t).Scan(&id)
	})
	if err != nil {
		return fmt.Errorf("create user %q: %w", email, storeErr(err, guichet.ErrNotFound))
	}
	u.ID, u.Email, u.Created, u.Updated = id, email, t, t
	return nil
}

func (db *DB) User(ctx context.Context, id int64) (*guichet.User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("user", id)
	}
	return u, err
}

func (db *DB) UserByEmail(ctx context.Context, email string) (*guichet.User, error) {
	email = strings.ToLower(email)
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, email))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("user", fmt.Sprintf("%q", email))
	}
	return u, err
}

// userWhere is the WHERE clause of a user filter.
func userWhere(f guichet.UserFilter) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, cond+" = $"+strconv.Itoa(len(args)))
	}
	if f.RoleID != 0 {
		add("role_id", f.RoleID)
	}
	if f.OrganizationID != 0 {
		add("organization_id", f.OrganizationID)
	}
	if f.Email != "" {
		add("email", strings.ToLower(f.Email))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func (db *DB) Users(ctx context.Context, f guichet.UserFilter, p guichet.Page) ([]*guichet.User, error) {
	page, err := pageClause(p, userOrder)
	if err != nil {
		return nil, err
	}
	where, args := userWhere(f)
	return list(ctx, db.pool, `SELECT `+userColumns+` FROM users`+where+page, args, scanUser)
}

func (db *DB) CountUsers(ctx context.Context, f guichet.UserFilter) (int64, error) {
	where, args := userWhere(f)
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM users`+where, args...).Scan(&n)
	return n, err
}

// UpdateUser stores every field of u but Created, the email lower-cased.
func (db *DB) UpdateUser(ctx context.Context, u *guichet.User) error {
	t := now()
	email := strings.ToLower(u.Email)
	err := db.change(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET email = $1, name = $2, role_id = $3, organization_id = $4,
			budget = $5, expires = $6, priority = $7, updated = $8 WHERE id = $9`,
			email, u.Name, u.RoleID, nullID(u.OrganizationID), nullAmount(u.Budget), u.Expires, u.Priority, t, u.ID)
		if err != nil {
			return err
		}
		return affected(tag, "user", u.ID)
	})
	if err != nil {
		return fmt.Errorf("update user: %w", storeErr(err, guichet.ErrNotFound))
	}
	u.Email, u.Updated = email, t
	return nil
}

// DeleteUser deletes the user and (by cascade) its keys.
func (db *DB) DeleteUser(ctx context.Context, id int64) error {
	return db.deleteRow(ctx, "users", "user", id)
}

// Keys

const keyColumns = `id, user_id, name, prefix, hash, expires, created`

func scanKey(row pgx.Row) (*guichet.Key, error) {
	var k guichet.Key
	var hash []byte
	var expires *time.Time
	if err := row.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &hash, &expires, &k.Created); err != nil {
		return nil, err
	}
	if len(hash) != len(k.Hash) {
		return nil, fmt.Errorf("key %d: hash has %d bytes", k.ID, len(hash))
	}
	copy(k.Hash[:], hash)
	k.Expires, k.Created = utcPtr(expires), k.Created.UTC()
	return &k, nil
}

func (db *DB) CreateKey(ctx context.Context, k *guichet.Key) error {
	t := now()
	var id int64
	err := db.change(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO api_keys (user_id, name, prefix, hash, expires, created)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			k.UserID, k.Name, k.Prefix, k.Hash[:], k.Expires, t).Scan(&id)
	})
	if err != nil {
		return fmt.Errorf("create key %q: %w", k.Name, storeErr(err, guichet.ErrNotFound))
	}
	k.ID, k.Created = id, t
	return nil
}

func (db *DB) Key(ctx context.Context, id int64) (*guichet.Key, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("key", id)
	}
	return k, err
}

func (db *DB) KeyByHash(ctx context.Context, h guichet.KeyHash) (*guichet.Key, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, h[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("key", "with this hash")
	}
	return k, err
}

func (db *DB) Keys(ctx context.Context, userID int64, p guichet.Page) ([]*guichet.Key, error) {
	page, err := pageClause(p, keyOrder)
	if err != nil {
		return nil, err
	}
	if userID == 0 {
		return list(ctx, db.pool, `SELECT `+keyColumns+` FROM api_keys`+page, nil, scanKey)
	}
	return list(ctx, db.pool, `SELECT `+keyColumns+` FROM api_keys WHERE user_id = $1`+page, []any{userID}, scanKey)
}

// UpdateKey changes a key's name and expiry.
func (db *DB) UpdateKey(ctx context.Context, k *guichet.Key) error {
	err := db.change(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_keys SET name = $1, expires = $2 WHERE id = $3`, k.Name, k.Expires, k.ID)
		if err != nil {
			return err
		}
		return affected(tag, "key", k.ID)
	})
	if err != nil {
		return fmt.Errorf("update key: %w", err)
	}
	return nil
}

func (db *DB) DeleteKey(ctx context.Context, id int64) error {
	return db.deleteRow(ctx, "api_keys", "key", id)
}

// Spend takes amount off the user's and the organization's budgets (those
// that have one, never below zero). It leaves Version alone: budgets move
// with every request, and replicas track them through the quota.
// Unknown ids are no error: there is nothing to take from. Each UPDATE
// locks its row, so concurrent spends add up.
func (db *DB) Spend(ctx context.Context, userID, organizationID int64, amount guichet.Amount) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE users SET budget = GREATEST(0, budget - $1) WHERE id = $2 AND budget IS NOT NULL`,
			int64(amount), userID); err != nil {
			return err
		}
		if organizationID == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE organizations SET budget = GREATEST(0, budget - $1) WHERE id = $2 AND budget IS NOT NULL`,
			int64(amount), organizationID)
		return err
	})
	if err != nil {
		return fmt.Errorf("spend: %w", err)
	}
	return nil
}
