package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/identity"
)

// The admin API (OpenGateLLM 0.4 layout): organizations, roles, users and
// tokens. Every change goes through s.store, which invalidates the
// identity caches of every replica.

// Organization is an organization as the API shows it.
type Organization struct {
	Object  string   `json:"object" enum:"organization"`
	ID      int64    `json:"id"`
	Name    string   `json:"name"`
	Budget  *float64 `json:"budget" doc:"Remaining budget in the currency of model prices; null = unlimited."`
	Users   int64    `json:"users"`
	Created int64    `json:"created"`
	Updated int64    `json:"updated"`
}

// OrganizationRequest creates or changes an organization.
type OrganizationRequest struct {
	Name   *string         `json:"name,omitempty" maxLength:"255"`
	Budget json.RawMessage `json:"budget,omitempty" doc:"Remaining budget; null = unlimited; absent = unchanged."`
}

// Role is a role as the API shows it.
type Role struct {
	Object      string               `json:"object" enum:"role"`
	ID          int64                `json:"id"`
	Name        string               `json:"name"`
	Permissions []guichet.Permission `json:"permissions"`
	Limits      []guichet.Limit      `json:"limits"`
	Users       int64                `json:"users"`
	Created     int64                `json:"created"`
	Updated     int64                `json:"updated"`
}

// RoleRequest creates or changes a role.
type RoleRequest struct {
	Name        *string              `json:"name,omitempty" maxLength:"255"`
	Permissions []guichet.Permission `json:"permissions,omitempty" doc:"admin, create_public_collection, read_metric, provide_models."`
	Limits      []LimitRequest       `json:"limits,omitempty" doc:"Per-model limits. A model with no entry (its own or \"*\") is invisible to the role; value null = unlimited, 0 = forbidden."`
}

// LimitRequest is a limit in a RoleRequest; router is OpenGateLLM's name
// for model.
type LimitRequest struct {
	Model  string            `json:"model,omitempty" doc:"A model name, or * for every model without its own entries."`
	Router json.RawMessage   `json:"router,omitempty" doc:"OpenGateLLM's field: accepted as a model name."`
	Type   guichet.LimitType `json:"type" enum:"rpm,rpd,tpm,tpd,concurrent"`
	Value  *int64            `json:"value"`
}

// User is a user as the API shows it.
type User struct {
	Object       string   `json:"object" enum:"user"`
	ID           int64    `json:"id"`
	Email        string   `json:"email"`
	Name         string   `json:"name"`
	Role         int64    `json:"role"`
	Organization *int64   `json:"organization"`
	Budget       *float64 `json:"budget" doc:"Remaining budget; null = unlimited."`
	Expires      *int64   `json:"expires" doc:"Unix seconds; null = never."`
	Priority     int      `json:"priority"`
	Created      int64    `json:"created"`
	Updated      int64    `json:"updated"`
}

// UserRequest creates or changes a user.
type UserRequest struct {
	Email        *string         `json:"email,omitempty" maxLength:"254"`
	Name         *string         `json:"name,omitempty" maxLength:"255"`
	Role         *int64          `json:"role,omitempty"`
	Organization json.RawMessage `json:"organization,omitempty" doc:"An organization id, or null for none."`
	Budget       json.RawMessage `json:"budget,omitempty" doc:"Remaining budget; null = unlimited."`
	Expires      json.RawMessage `json:"expires,omitempty" doc:"Unix seconds or RFC 3339; null = never."`
	Priority     *int            `json:"priority,omitempty" minimum:"0" maximum:"100"`
	Password     *string         `json:"password,omitempty" doc:"Accepted for OpenGateLLM compatibility and ignored: guichet authenticates with API keys."`
}

// Token is an API key as lists show it: never the secret.
type Token struct {
	Object  string `json:"object" enum:"token"`
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Token   string `json:"token" doc:"The key's first characters only."`
	User    int64  `json:"user"`
	Expires *int64 `json:"expires"`
	Created int64  `json:"created"`
}

// TokenRequest creates a key (for a user, in the admin API).
type TokenRequest struct {
	Name    string          `json:"name" maxLength:"255"`
	User    int64           `json:"user,omitempty" doc:"Admin API only: the user the key is for."`
	Expires json.RawMessage `json:"expires,omitempty" doc:"Unix seconds or RFC 3339; null or absent = never (unless the operator caps key lifetimes)."`
}

// TokenPatch renames a key or changes its expiry.
type TokenPatch struct {
	Name    *string         `json:"name,omitempty" maxLength:"255"`
	Expires json.RawMessage `json:"expires,omitempty" doc:"Unix seconds or RFC 3339; null = never (unless the operator caps key lifetimes); absent = unchanged."`
}

// CreatedToken is the answer to a key's creation: the only time the
// secret is shown.
type CreatedToken struct {
	ID    int64  `json:"id"`
	Token string `json:"token" doc:"The API key. Store it now: it is never shown again."`
}

// List is a page of objects.
type List[T any] struct {
	Object string `json:"object" enum:"list"`
	Data   []T    `json:"data"`
}

func listOf[T any](data []T) List[T] {
	if data == nil {
		data = []T{}
	}
	return List[T]{Object: "list", Data: data}
}

// ---- organizations

func (s *Server) organizationObject(ctx context.Context, o *guichet.Organization) Organization {
	n, _ := s.store.CountUsers(ctx, guichet.UserFilter{OrganizationID: o.ID})
	return Organization{Object: "organization", ID: o.ID, Name: o.Name, Budget: units(o.Budget), Users: n, Created: unix(o.Created), Updated: unix(o.Updated)}
}

func (s *Server) applyOrganization(o *guichet.Organization, req OrganizationRequest, creating bool) (budgetChanged bool, gerr *guichet.Error) {
	if req.Name != nil {
		o.Name = strings.TrimSpace(*req.Name)
	}
	if creating || req.Name != nil {
		if gerr := checkName(o.Name, "name", 255); gerr != nil {
			return false, gerr
		}
	}
	set, b, gerr := nullableAmount(req.Budget, "budget")
	if gerr != nil {
		return false, gerr
	}
	if set {
		o.Budget = b
	}
	return set, nil
}

func (s *Server) createOrganization(w http.ResponseWriter, r *http.Request) {
	var req OrganizationRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	o := &guichet.Organization{}
	if _, gerr := s.applyOrganization(o, req, true); gerr != nil {
		writeError(w, gerr)
		return
	}
	if err := s.store.CreateOrganization(r.Context(), o); err != nil {
		writeError(w, s.storeError(err, fmt.Sprintf("organization %q", o.Name), fmt.Sprintf("an organization named %q already exists", o.Name)))
		return
	}
	writeJSON(w, http.StatusCreated, s.organizationObject(r.Context(), o))
}

func (s *Server) listOrganizations(w http.ResponseWriter, r *http.Request) {
	page, gerr := parsePage(r, "id", "name", "created", "updated")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	orgs, err := s.store.Organizations(r.Context(), page)
	listed(s, w, r, "organizations", orgs, err, s.organizationObject)
}

func (s *Server) getOrganization(w http.ResponseWriter, r *http.Request) {
	if o, ok := fromPath(s, w, r, "organization", s.store.Organization); ok {
		writeJSON(w, http.StatusOK, s.organizationObject(r.Context(), o))
	}
}

func (s *Server) patchOrganization(w http.ResponseWriter, r *http.Request) {
	o, ok := fromPath(s, w, r, "organization", s.store.Organization)
	if !ok {
		return
	}
	var req OrganizationRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	budgetChanged, gerr := s.applyOrganization(o, req, false)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	if err := s.store.UpdateOrganization(r.Context(), o); err != nil {
		writeError(w, s.storeError(err, fmt.Sprintf("organization %d", o.ID), fmt.Sprintf("an organization named %q already exists", o.Name)))
		return
	}
	if budgetChanged {
		s.forgetBalance(r.Context(), budgetKey('o', o.ID))
	}
	writeJSON(w, http.StatusOK, s.organizationObject(r.Context(), o))
}

// forgetBalance makes the quota reload a budget an operator changed.
func (s *Server) forgetBalance(ctx context.Context, key string) {
	if err := s.quota.ForgetBalance(ctx, key); err != nil {
		s.log.Error("the new budget may take effect late: the quota store did not answer", "budget", key, "err", err)
	}
}

// ---- roles

func (s *Server) roleObject(ctx context.Context, ro *guichet.Role) Role {
	n, _ := s.store.CountUsers(ctx, guichet.UserFilter{RoleID: ro.ID})
	out := Role{Object: "role", ID: ro.ID, Name: ro.Name, Permissions: ro.Permissions, Limits: ro.Limits, Users: n, Created: unix(ro.Created), Updated: unix(ro.Updated)}
	if out.Permissions == nil {
		out.Permissions = []guichet.Permission{}
	}
	if out.Limits == nil {
		out.Limits = []guichet.Limit{}
	}
	return out
}

func (s *Server) applyRole(ro *guichet.Role, req RoleRequest, creating bool) *guichet.Error {
	if req.Name != nil {
		ro.Name = strings.TrimSpace(*req.Name)
	}
	if creating || req.Name != nil {
		if gerr := checkName(ro.Name, "name", 255); gerr != nil {
			return gerr
		}
	}
	if req.Permissions != nil {
		seen := map[guichet.Permission]bool{}
		ro.Permissions = ro.Permissions[:0:0]
		for i, p := range req.Permissions {
			if !p.Valid() {
				return errorf(http.StatusUnprocessableEntity, "invalid_value", "permissions[%d]: %q is not a permission; want one of admin, create_public_collection, read_metric, provide_models", i, p).WithParam("permissions")
			}
			if !seen[p] {
				seen[p] = true
				ro.Permissions = append(ro.Permissions, p)
			}
		}
	}
	if req.Limits != nil {
		ro.Limits = make([]guichet.Limit, 0, len(req.Limits))
		seen := map[string]bool{}
		for i, l := range req.Limits {
			field := fmt.Sprintf("limits[%d]", i)
			model := l.Model
			if model == "" && l.Router != nil {
				json.Unmarshal(l.Router, &model)
			}
			switch {
			case model == "":
				return errorf(http.StatusUnprocessableEntity, "invalid_value", "%s.model is required: a model name, or * for every model", field).WithParam(field + ".model")
			case model != guichet.AllModels && s.models.Lookup(model) == nil:
				return errorf(http.StatusUnprocessableEntity, "invalid_value", "%s.model: no model is named %q (GET /v1/models lists them), and * means every model", field, model).WithParam(field + ".model")
			case !l.Type.Valid():
				return errorf(http.StatusUnprocessableEntity, "invalid_value", "%s.type must be rpm, rpd, tpm, tpd or concurrent, not %q", field, l.Type).WithParam(field + ".type")
			case l.Value != nil && *l.Value < 0:
				return errorf(http.StatusUnprocessableEntity, "invalid_value", "%s.value must be null (unlimited), 0 (forbidden) or a positive number", field).WithParam(field + ".value")
			}
			if m := s.models.Lookup(model); m != nil {
				model = m.Name // an alias names its model
			}
			k := model + "\x00" + string(l.Type)
			if seen[k] {
				return errorf(http.StatusUnprocessableEntity, "invalid_value", "%s: model %q already has a %s limit in this role", field, model, l.Type).WithParam(field)
			}
			seen[k] = true
			ro.Limits = append(ro.Limits, guichet.Limit{Model: model, Type: l.Type, Value: l.Value})
		}
	}
	return nil
}

func (s *Server) createRole(w http.ResponseWriter, r *http.Request) {
	var req RoleRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	ro := &guichet.Role{}
	if gerr := s.applyRole(ro, req, true); gerr != nil {
		writeError(w, gerr)
		return
	}
	if err := s.store.CreateRole(r.Context(), ro); err != nil {
		writeError(w, s.storeError(err, fmt.Sprintf("role %q", ro.Name), fmt.Sprintf("a role named %q already exists", ro.Name)))
		return
	}
	writeJSON(w, http.StatusCreated, s.roleObject(r.Context(), ro))
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request) {
	page, gerr := parsePage(r, "id", "name", "created", "updated")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	roles, err := s.store.Roles(r.Context(), page)
	listed(s, w, r, "roles", roles, err, s.roleObject)
}

func (s *Server) getRole(w http.ResponseWriter, r *http.Request) {
	if ro, ok := fromPath(s, w, r, "role", s.store.Role); ok {
		writeJSON(w, http.StatusOK, s.roleObject(r.Context(), ro))
	}
}

func (s *Server) patchRole(w http.ResponseWriter, r *http.Request) {
	ro, ok := fromPath(s, w, r, "role", s.store.Role)
	if !ok {
		return
	}
	var req RoleRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	if gerr := s.applyRole(ro, req, false); gerr != nil {
		writeError(w, gerr)
		return
	}
	if err := s.store.UpdateRole(r.Context(), ro); err != nil {
		writeError(w, s.storeError(err, fmt.Sprintf("role %d", ro.ID), fmt.Sprintf("a role named %q already exists", ro.Name)))
		return
	}
	writeJSON(w, http.StatusOK, s.roleObject(r.Context(), ro))
}

// ---- users

func userObject(u *guichet.User) User {
	out := User{Object: "user", ID: u.ID, Email: u.Email, Name: u.Name, Role: u.RoleID, Budget: units(u.Budget), Expires: unixPtr(u.Expires), Priority: u.Priority, Created: unix(u.Created), Updated: unix(u.Updated)}
	if u.OrganizationID != 0 {
		id := u.OrganizationID
		out.Organization = &id
	}
	return out
}

func (s *Server) applyUser(ctx context.Context, u *guichet.User, req UserRequest, creating bool) (budgetChanged bool, gerr *guichet.Error) {
	if req.Email != nil {
		u.Email = strings.ToLower(strings.TrimSpace(*req.Email))
	}
	if creating || req.Email != nil {
		if len(u.Email) > 254 || strings.Count(u.Email, "@") != 1 || strings.HasPrefix(u.Email, "@") || strings.HasSuffix(u.Email, "@") {
			return false, errorf(http.StatusUnprocessableEntity, "invalid_value", "email must be an address such as name@example.org").WithParam("email")
		}
	}
	if req.Name != nil {
		u.Name = strings.TrimSpace(*req.Name)
		if len(u.Name) > 255 {
			return false, errorf(http.StatusUnprocessableEntity, "invalid_value", "name must have at most 255 characters").WithParam("name")
		}
	}
	if creating && u.Name == "" {
		u.Name = u.Email
	}
	if req.Role != nil {
		if _, err := s.store.Role(ctx, *req.Role); err != nil {
			return false, errorf(http.StatusUnprocessableEntity, "invalid_value", "role: no role has id %d (GET /v1/admin/roles lists them)", *req.Role).WithParam("role")
		}
		u.RoleID = *req.Role
	} else if creating {
		return false, errorf(http.StatusUnprocessableEntity, "invalid_value", "role is required: the id of a role (GET /v1/admin/roles lists them)").WithParam("role")
	}
	if req.Organization != nil {
		var id int64
		if string(req.Organization) != "null" {
			if json.Unmarshal(req.Organization, &id) != nil || id <= 0 {
				return false, errorf(http.StatusUnprocessableEntity, "invalid_value", "organization must be an organization id or null").WithParam("organization")
			}
			if _, err := s.store.Organization(ctx, id); err != nil {
				return false, errorf(http.StatusUnprocessableEntity, "invalid_value", "organization: no organization has id %d", id).WithParam("organization")
			}
		}
		u.OrganizationID = id
	}
	set, b, gerr := nullableAmount(req.Budget, "budget")
	if gerr != nil {
		return false, gerr
	}
	if set {
		u.Budget = b
	}
	tset, t, gerr := nullableTime(req.Expires, "expires")
	if gerr != nil {
		return false, gerr
	}
	if tset {
		u.Expires = t
	}
	if req.Priority != nil {
		if *req.Priority < 0 || *req.Priority > 100 {
			return false, errorf(http.StatusUnprocessableEntity, "invalid_value", "priority must be from 0 to 100").WithParam("priority")
		}
		u.Priority = *req.Priority
	}
	return set, nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var req UserRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	u := &guichet.User{}
	if _, gerr := s.applyUser(r.Context(), u, req, true); gerr != nil {
		writeError(w, gerr)
		return
	}
	if err := s.store.CreateUser(r.Context(), u); err != nil {
		writeError(w, s.storeError(err, fmt.Sprintf("user %q", u.Email), fmt.Sprintf("a user with email %q already exists", u.Email)))
		return
	}
	writeJSON(w, http.StatusCreated, userObject(u))
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	page, gerr := parsePage(r, "id", "email", "name", "created", "updated")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	var f guichet.UserFilter
	if f.RoleID, gerr = queryID(r, "role"); gerr != nil {
		writeError(w, gerr)
		return
	}
	if f.OrganizationID, gerr = queryID(r, "organization"); gerr != nil {
		writeError(w, gerr)
		return
	}
	f.Email = strings.ToLower(strings.TrimSpace(r.URL.Query().Get("email")))
	users, err := s.store.Users(r.Context(), f, page)
	listed(s, w, r, "users", users, err, func(_ context.Context, u *guichet.User) User { return userObject(u) })
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	if u, ok := fromPath(s, w, r, "user", s.store.User); ok {
		if u.Budget != nil {
			left := *u.Budget - s.spend.pendingFor('u', u.ID)
			u.Budget = &left
		}
		writeJSON(w, http.StatusOK, userObject(u))
	}
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) {
	u, ok := fromPath(s, w, r, "user", s.store.User)
	if !ok {
		return
	}
	var req UserRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	budgetChanged, gerr := s.applyUser(r.Context(), u, req, false)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	if err := s.store.UpdateUser(r.Context(), u); err != nil {
		writeError(w, s.storeError(err, fmt.Sprintf("user %d", u.ID), fmt.Sprintf("a user with email %q already exists", u.Email)))
		return
	}
	if budgetChanged {
		s.forgetBalance(r.Context(), budgetKey('u', u.ID))
	}
	writeJSON(w, http.StatusOK, userObject(u))
}

// ---- tokens (keys), admin side

func tokenObject(k *guichet.Key) Token {
	return Token{Object: "token", ID: k.ID, Name: k.Name, Token: identity.Masked(k.Prefix), User: k.UserID, Expires: unixPtr(k.Expires), Created: unix(k.Created)}
}

// newKey creates a key for user, within the operator's lifetime cap.
func (s *Server) newKey(ctx context.Context, userID int64, name string, expiresRaw json.RawMessage) (*CreatedToken, *guichet.Error) {
	name = strings.TrimSpace(name)
	if gerr := checkName(name, "name", 255); gerr != nil {
		return nil, gerr
	}
	_, expires, gerr := nullableTime(expiresRaw, "expires")
	if gerr != nil {
		return nil, gerr
	}
	if days := s.cfg.Limits.MaxKeyDays; days > 0 && expires == nil {
		limit := time.Now().Add(time.Duration(days) * 24 * time.Hour)
		expires = &limit // no expiry asked: the longest allowed
	}
	if gerr := s.checkKeyLifetime(expires); gerr != nil {
		return nil, gerr
	}
	secret, prefix, hash := identity.NewKey()
	k := &guichet.Key{UserID: userID, Name: name, Prefix: prefix, Hash: hash, Expires: expires}
	if err := s.store.CreateKey(ctx, k); err != nil {
		return nil, s.storeError(err, fmt.Sprintf("user %d", userID), "")
	}
	return &CreatedToken{ID: k.ID, Token: secret}, nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	if req.User <= 0 {
		writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_value", "user is required: the id of the user the key is for").WithParam("user"))
		return
	}
	if _, err := s.store.User(r.Context(), req.User); err != nil {
		writeError(w, s.storeError(err, fmt.Sprintf("user %d", req.User), ""))
		return
	}
	created, gerr := s.newKey(r.Context(), req.User, req.Name, req.Expires)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	writeJSON(w, http.StatusCreated, created)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	page, gerr := parsePage(r, "id", "name", "created")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	user, gerr := queryID(r, "user")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	keys, err := s.store.Keys(r.Context(), user, page)
	listed(s, w, r, "tokens", keys, err, func(_ context.Context, k *guichet.Key) Token { return tokenObject(k) })
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request) {
	if k, ok := fromPath(s, w, r, "token", s.store.Key); ok {
		writeJSON(w, http.StatusOK, tokenObject(k))
	}
}

func (s *Server) patchToken(w http.ResponseWriter, r *http.Request) {
	k, ok := fromPath(s, w, r, "token", s.store.Key)
	if !ok {
		return
	}
	var req TokenPatch
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	if req.Name != nil {
		k.Name = strings.TrimSpace(*req.Name)
		if gerr := checkName(k.Name, "name", 255); gerr != nil {
			writeError(w, gerr)
			return
		}
	}
	set, expires, gerr := nullableTime(req.Expires, "expires")
	if gerr == nil && set {
		gerr = s.checkKeyLifetime(expires)
		k.Expires = expires
	}
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	if err := s.store.UpdateKey(r.Context(), k); err != nil {
		writeError(w, s.storeError(err, fmt.Sprintf("token %d", k.ID), ""))
		return
	}
	writeJSON(w, http.StatusOK, tokenObject(k))
}

// checkKeyLifetime enforces the operator's cap on key lifetimes.
func (s *Server) checkKeyLifetime(expires *time.Time) *guichet.Error {
	days := s.cfg.Limits.MaxKeyDays
	if days > 0 && (expires == nil || expires.After(time.Now().Add(time.Duration(days)*24*time.Hour))) {
		return errorf(http.StatusUnprocessableEntity, "invalid_value", "expires must be within %d days from now (the operator's cap on key lifetimes)", days).WithParam("expires")
	}
	return nil
}
