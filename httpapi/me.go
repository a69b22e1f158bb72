package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/guichet/guichet"
)

// UserInfo is GET /v1/me/info: who the caller is and what it may do.
type UserInfo struct {
	Object       string               `json:"object" enum:"userInfo"`
	ID           int64                `json:"id"`
	Email        string               `json:"email"`
	Name         string               `json:"name"`
	Organization *int64               `json:"organization"`
	Budget       *float64             `json:"budget" doc:"Remaining budget; null = unlimited."`
	Permissions  []guichet.Permission `json:"permissions"`
	Limits       []guichet.Limit      `json:"limits"`
	Expires      *int64               `json:"expires"`
	Priority     int                  `json:"priority"`
	Created      int64                `json:"created"`
	Updated      int64                `json:"updated"`
}

// MeRequest changes the caller's own name or email.
type MeRequest struct {
	Name  *string `json:"name,omitempty" maxLength:"255"`
	Email *string `json:"email,omitempty" maxLength:"254"`
	// OpenGateLLM's password fields, accepted and ignored.
	CurrentPassword *string `json:"current_password,omitempty" doc:"Ignored: guichet authenticates with API keys."`
	Password        *string `json:"password,omitempty" doc:"Ignored: guichet authenticates with API keys."`
}

// Key is one of the caller's API keys as lists show it.
type Key struct {
	Object  string `json:"object" enum:"key"`
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Token   string `json:"token" doc:"The key's first characters only."`
	Expires *int64 `json:"expires"`
	Created int64  `json:"created"`
}

var errMasterIsNoUser = errorf(http.StatusBadRequest, "master_key_has_no_user", "the master key is not a user and has no keys of its own: create an admin user (guichet admin init, or POST /v1/admin/users) and use its key")

func (s *Server) meInfo(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	u := p.User
	// Fresh from the store (not the cache): the budget moves with use.
	if !p.Master {
		if fresh, err := s.store.User(r.Context(), u.ID); err == nil {
			u = fresh
		}
	}
	info := UserInfo{Object: "userInfo", ID: u.ID, Email: u.Email, Name: u.Name, Budget: units(u.Budget), Permissions: p.Role.Permissions, Limits: p.Role.Limits,
		Expires: unixPtr(u.Expires), Priority: u.Priority, Created: unix(u.Created), Updated: unix(u.Updated)}
	if p.Master {
		info.Created, info.Updated = 0, 0
	}
	if u.Budget != nil {
		left := *u.Budget - s.spend.pendingFor('u', u.ID)
		info.Budget = units(&left)
	}
	if u.OrganizationID != 0 {
		id := u.OrganizationID
		info.Organization = &id
	}
	if info.Permissions == nil {
		info.Permissions = []guichet.Permission{}
	}
	if info.Limits == nil {
		info.Limits = []guichet.Limit{}
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) patchMe(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if p.Master {
		writeError(w, errMasterIsNoUser)
		return
	}
	var req MeRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	u, err := s.store.User(r.Context(), p.User.ID)
	if err != nil {
		writeError(w, s.storeError(err, "your user", ""))
		return
	}
	// Only name and email: role, budget and expiry are the operator's.
	if _, gerr := s.applyUser(r.Context(), u, UserRequest{Name: req.Name, Email: req.Email}, false); gerr != nil {
		writeError(w, gerr)
		return
	}
	if err := s.store.UpdateUser(r.Context(), u); err != nil {
		writeError(w, s.storeError(err, "your user", fmt.Sprintf("a user with email %q already exists", u.Email)))
		return
	}
	s.meInfo(w, r)
}

func keyObject(k *guichet.Key) Key {
	t := tokenObject(k)
	return Key{Object: "key", ID: t.ID, Name: t.Name, Token: t.Token, Expires: t.Expires, Created: t.Created}
}

func (s *Server) createMyKey(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if p.Master {
		writeError(w, errMasterIsNoUser)
		return
	}
	var req TokenRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	if req.User != 0 && req.User != p.User.ID {
		writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_value", "user: /v1/me/keys creates keys for yourself only; administrators use /v1/admin/tokens").WithParam("user"))
		return
	}
	created, gerr := s.newKey(r.Context(), p.User.ID, req.Name, req.Expires)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	writeJSON(w, http.StatusCreated, created)
}

func (s *Server) listMyKeys(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if p.Master {
		writeError(w, errMasterIsNoUser)
		return
	}
	page, gerr := parsePage(r, "id", "name", "created")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	keys, err := s.store.Keys(r.Context(), p.User.ID, page)
	if err != nil {
		writeError(w, s.storeError(err, "keys", ""))
		return
	}
	out := make([]Key, 0, len(keys))
	for _, k := range keys {
		out = append(out, keyObject(k))
	}
	writeJSON(w, http.StatusOK, listOf(out))
}

// myKey finds one of the caller's keys; another user's key is "not
// found", exactly like a key that does not exist.
func (s *Server) myKey(w http.ResponseWriter, r *http.Request) *guichet.Key {
	p := principal(r)
	if p.Master {
		writeError(w, errMasterIsNoUser)
		return nil
	}
	id, gerr := pathID(r, "id")
	if gerr != nil {
		writeError(w, gerr)
		return nil
	}
	k, err := s.store.Key(r.Context(), id)
	if errors.Is(err, guichet.ErrNotFound) || (err == nil && k.UserID != p.User.ID) {
		writeError(w, s.storeError(guichet.ErrNotFound, fmt.Sprintf("key %d", id), ""))
		return nil
	}
	if err != nil {
		writeError(w, s.storeError(err, "key", ""))
		return nil
	}
	return k
}

func (s *Server) getMyKey(w http.ResponseWriter, r *http.Request) {
	if k := s.myKey(w, r); k != nil {
		writeJSON(w, http.StatusOK, keyObject(k))
	}
}

func (s *Server) deleteMyKey(w http.ResponseWriter, r *http.Request) {
	k := s.myKey(w, r)
	if k == nil {
		return
	}
	if err := s.store.DeleteKey(r.Context(), k.ID); err != nil {
		writeError(w, s.storeError(err, fmt.Sprintf("key %d", k.ID), ""))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
