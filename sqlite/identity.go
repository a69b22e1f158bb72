package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/guichet/guichet"
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
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// list runs a query and scans every row.
func list[T any](ctx context.Context, q querier, query string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Organizations

const orgColumns = `id, name, budget, created, updated`

func scanOrg(row scanner) (*guichet.Organization, error) {
	var o guichet.Organization
	var budget sql.NullInt64
	var created, updated int64
	if err := row.Scan(&o.ID, &o.Name, &budget, &created, &updated); err != nil {
		return nil, err
	}
	o.Budget = amountPtr(budget)
	o.Created, o.Updated = fromMicros(created), fromMicros(updated)
	return &o, nil
}

func (db *DB) CreateOrganization(ctx context.Context, o *guichet.Organization) error {
	t := now()
	var id int64
	err := db.change(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx,
			`INSERT INTO organizations (name, budget, created, updated) VALUES (?, ?, ?, ?) RETURNING id`,
			o.Name, nullAmount(o.Budget), micros(t), micros(t)).Scan(&id)
	})
	if err != nil {
		return fmt.Errorf("create organization %q: %w", o.Name, storeErr(err, guichet.ErrNotFound))
	}
	o.ID, o.Created, o.Updated = id, t, t
	return nil
}

func (db *DB) Organization(ctx context.Context, id int64) (*guichet.Organization, error) {
	o, err := scanOrg(db.db.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM organizations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("organization", id)
	}
	return o, err
}

func (db *DB) Organizations(ctx context.Context, p guichet.Page) ([]*guichet.Organization, error) {
	page, err := pageClause(p, orgOrder)
	if err != nil {
		return nil, err
	}
	return list(ctx, db.db, `SELECT `+orgColumns+` FROM organizations`+page, nil, scanOrg)
}

func (db *DB) UpdateOrganization(ctx context.Context, o *guichet.Organization) error {
	t := now()
	err := db.change(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE organizations SET name = ?, budget = ?, updated = ? WHERE id = ?`,
			o.Name, nullAmount(o.Budget), micros(t), o.ID)
		if err != nil {
			return err
		}
		return affected(res, "organization", o.ID)
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
	err := db.change(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return affected(res, what, id)
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, storeErr(err, guichet.ErrConflict))
	}
	return nil
}

// Roles

const roleColumns = `id, name, created, updated`

func scanRole(row scanner) (*guichet.Role, error) {
	var r guichet.Role
	var created, updated int64
	if err := row.Scan(&r.ID, &r.Name, &created, &updated); err != nil {
		return nil, err
	}
	r.Created, r.Updated = fromMicros(created), fromMicros(updated)
	return &r, nil
}

func (db *DB) CreateRole(ctx context.Context, r *guichet.Role) error {
	t := now()
	var id int64
	err := db.change(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO roles (name, created, updated) VALUES (?, ?, ?) RETURNING id`,
			r.Name, micros(t), micros(t)).Scan(&id)
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
func insertRoleDetails(ctx context.Context, tx *sql.Tx, id int64, r *guichet.Role) error {
	for i, p := range r.Permissions {
		if _, err := tx.ExecContext(ctx, `INSERT INTO role_permissions (role_id, position, permission) VALUES (?, ?, ?)`,
			id, i, string(p)); err != nil {
			return err
		}
	}
	for i, l := range r.Limits {
		if _, err := tx.ExecContext(ctx, `INSERT INTO role_limits (role_id, position, model, type, value) VALUES (?, ?, ?, ?, ?)`,
			id, i, l.Model, string(l.Type), nullInt(l.Value)); err != nil {
			return err
		}
	}
	return nil
}

// roles reads roles with their permissions and limits, in one
// transaction so each role is read whole.
func (db *DB) roles(ctx context.Context, rest string, args ...any) ([]*guichet.Role, error) {
	var roles []*guichet.Role
	err := db.inTx(ctx, true, func(tx *sql.Tx) error {
		var err error
		roles, err = list(ctx, tx, `SELECT `+roleColumns+` FROM roles`+rest, args, scanRole)
		if err != nil || len(roles) == 0 {
			return err
		}
		return loadRoleDetails(ctx, tx, roles)
	})
	return roles, err
}

func loadRoleDetails(ctx context.Context, tx *sql.Tx, roles []*guichet.Role) error {
	byID := make(map[int64]*guichet.Role, len(roles))
	ids := make([]int64, len(roles))
	for i, r := range roles {
		byID[r.ID], ids[i] = r, r.ID
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT role_id, permission FROM role_permissions
		WHERE role_id IN (SELECT value FROM json_each(?)) ORDER BY role_id, position`, string(idList))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var p string
		if err := rows.Scan(&id, &p); err != nil {
			return err
		}
		r := byID[id]
		r.Permissions = append(r.Permissions, guichet.Permission(p))
	}
	if err := rows.Err(); err != nil {
		return err
	}

	rows, err = tx.QueryContext(ctx, `SELECT role_id, model, type, value FROM role_limits
		WHERE role_id IN (SELECT value FROM json_each(?)) ORDER BY role_id, position`, string(idList))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var l guichet.Limit
		var value sql.NullInt64
		if err := rows.Scan(&id, &l.Model, &l.Type, &value); err != nil {
			return err
		}
		l.Value = intPtr(value)
		r := byID[id]
		r.Limits = append(r.Limits, l)
	}
	return rows.Err()
}

func (db *DB) Role(ctx context.Context, id int64) (*guichet.Role, error) {
	roles, err := db.roles(ctx, ` WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(roles) == 0 {
		return nil, notFound("role", id)
	}
	return roles[0], nil
}

func (db *DB) RoleByName(ctx context.Context, name string) (*guichet.Role, error) {
	roles, err := db.roles(ctx, ` WHERE name = ?`, name)
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
	err := db.change(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE roles SET name = ?, updated = ? WHERE id = ?`, r.Name, micros(t), r.ID)
		if err != nil {
			return err
		}
		if err := affected(res, "role", r.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM role_permissions WHERE role_id = ?`, r.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM role_limits WHERE role_id = ?`, r.ID); err != nil {
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

func scanUser(row scanner) (*guichet.User, error) {
	var u guichet.User
	var org, budget, expires sql.NullInt64
	var created, updated int64
	if err := row.Scan(&u.ID, &u.Email, &u.Name, &u.RoleID, &org, &budget, &expires, &u.Priority, &created, &updated); err != nil {
		return nil, err
	}
	u.OrganizationID = org.Int64
	u.Budget, u.Expires = amountPtr(budget), timePtr(expires)
	u.Created, u.Updated = fromMicros(created), fromMicros(updated)
	return &u, nil
}

// CreateUser stores the user with its email lower-cased (emails compare
// case-insensitively).
func (db *DB) CreateUser(ctx context.Context, u *guichet.User) error {
	t := now()
	email := strings.ToLower(u.Email)
	var id int64
	err := db.change(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO users
			(email, name, role_id, organization_id, budget, expires, priority, created, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			email, u.Name, u.RoleID, nullID(u.OrganizationID), nullAmount(u.Budget), nullTime(u.Expires), u.Priority,
			micros(t), micros(t)).Scan(&id)
	})
	if err != nil {
		return fmt.Errorf("create user %q: %w", email, storeErr(err, guichet.ErrNotFound))
	}
	u.ID, u.Email, u.Created, u.Updated = id, email, t, t
	return nil
}

func (db *DB) User(ctx context.Context, id int64) (*guichet.User, error) {
	u, err := scanUser(db.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user", id)
	}
	return u, err
}

func (db *DB) UserByEmail(ctx context.Context, email string) (*guichet.User, error) {
	email = strings.ToLower(email)
	u, err := scanUser(db.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user", fmt.Sprintf("%q", email))
	}
	return u, err
}

// userWhere is the WHERE clause of a user filter.
func userWhere(f guichet.UserFilter) (string, []any) {
	var conds []string
	var args []any
	if f.RoleID != 0 {
		conds, args = append(conds, "role_id = ?"), append(args, f.RoleID)
	}
	if f.OrganizationID != 0 {
		conds, args = append(conds, "organization_id = ?"), append(args, f.OrganizationID)
	}
	if f.Email != "" {
		conds, args = append(conds, "email = ?"), append(args, strings.ToLower(f.Email))
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
	return list(ctx, db.db, `SELECT `+userColumns+` FROM users`+where+page, args, scanUser)
}

func (db *DB) CountUsers(ctx context.Context, f guichet.UserFilter) (int64, error) {
	where, args := userWhere(f)
	var n int64
	err := db.db.QueryRowContext(ctx, `SELECT count(*) FROM users`+where, args...).Scan(&n)
	return n, err
}

// UpdateUser stores every field of u but Created, the email lower-cased.
func (db *DB) UpdateUser(ctx context.Context, u *guichet.User) error {
	t := now()
	email := strings.ToLower(u.Email)
	err := db.change(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET email = ?, name = ?, role_id = ?, organization_id = ?,
			budget = ?, expires = ?, priority = ?, updated = ? WHERE id = ?`,
			email, u.Name, u.RoleID, nullID(u.OrganizationID), nullAmount(u.Budget), nullTime(u.Expires), u.Priority,
			micros(t), u.ID)
		if err != nil {
			return err
		}
		return affected(res, "user", u.ID)
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

func scanKey(row scanner) (*guichet.Key, error) {
	var k guichet.Key
	var hash []byte
	var expires sql.NullInt64
	var created int64
	if err := row.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &hash, &expires, &created); err != nil {
		return nil, err
	}
	if len(hash) != len(k.Hash) {
		return nil, fmt.Errorf("key %d: hash has %d bytes", k.ID, len(hash))
	}
	copy(k.Hash[:], hash)
	k.Expires, k.Created = timePtr(expires), fromMicros(created)
	return &k, nil
}

func (db *DB) CreateKey(ctx context.Context, k *guichet.Key) error {
	t := now()
	var id int64
	err := db.change(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO api_keys (user_id, name, prefix, hash, expires, created)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			k.UserID, k.Name, k.Prefix, k.Hash[:], nullTime(k.Expires), micros(t)).Scan(&id)
	})
	if err != nil {
		return fmt.Errorf("create key %q: %w", k.Name, storeErr(err, guichet.ErrNotFound))
	}
	k.ID, k.Created = id, t
	return nil
}

func (db *DB) Key(ctx context.Context, id int64) (*guichet.Key, error) {
	k, err := scanKey(db.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("key", id)
	}
	return k, err
}

func (db *DB) KeyByHash(ctx context.Context, h guichet.KeyHash) (*guichet.Key, error) {
	k, err := scanKey(db.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = ?`, h[:]))
	if errors.Is(err, sql.ErrNoRows) {
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
		return list(ctx, db.db, `SELECT `+keyColumns+` FROM api_keys`+page, nil, scanKey)
	}
	return list(ctx, db.db, `SELECT `+keyColumns+` FROM api_keys WHERE user_id = ?`+page, []any{userID}, scanKey)
}

// UpdateKey changes a key's name and expiry.
func (db *DB) UpdateKey(ctx context.Context, k *guichet.Key) error {
	err := db.change(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET name = ?, expires = ? WHERE id = ?`, k.Name, nullTime(k.Expires), k.ID)
		if err != nil {
			return err
		}
		return affected(res, "key", k.ID)
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
// Unknown ids are no error: there is nothing to take from.
func (db *DB) Spend(ctx context.Context, userID, organizationID int64, amount guichet.Amount) error {
	err := db.inTx(ctx, false, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET budget = max(0, budget - ?) WHERE id = ? AND budget IS NOT NULL`,
			int64(amount), userID); err != nil {
			return err
		}
		if organizationID == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE organizations SET budget = max(0, budget - ?) WHERE id = ? AND budget IS NOT NULL`,
			int64(amount), organizationID)
		return err
	})
	if err != nil {
		return fmt.Errorf("spend: %w", err)
	}
	return nil
}
