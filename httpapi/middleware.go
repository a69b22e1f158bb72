package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/guichet/guichet"
)

// requestIDs are a random per-process prefix and a counter: unique, cheap.
var (
	idPrefix  = newIDPrefix()
	idCounter atomic.Uint64
)

func newIDPrefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "req-" + hex.EncodeToString(b) + "-"
}

func newRequestID() string { return idPrefix + strconv.FormatUint(idCounter.Add(1), 36) }

func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", newRequestID())
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic into a 500 that says nothing of the cause to
// the client, and logs the cause for the operator.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "path", r.URL.Path, "request_id", w.Header().Get("X-Request-Id"), "panic", v, "stack", string(debug.Stack()))
				writeError(w, errorf(http.StatusInternalServerError, "internal_error", "internal error (request %s)", w.Header().Get("X-Request-Id")))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// authenticate is the authenticate step: the bearer key becomes a
// Principal, from the directory's memory (no database round trip in steady
// state). The key itself is never logged.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		scheme, key, ok := strings.Cut(h, " ")
		if h == "" {
			writeError(w, errorf(http.StatusUnauthorized, "missing_api_key", "no API key: send the header Authorization: Bearer <your key>"))
			return
		}
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			writeError(w, errorf(http.StatusUnauthorized, "invalid_authentication_scheme", "the Authorization header must be: Bearer <your key>"))
			return
		}
		_, span := s.startSpan(r.Context(), "authenticate")
		p, err := s.identity.Authenticate(r.Context(), strings.TrimSpace(key))
		span.End()
		if err != nil {
			writeError(w, asError(err))
			return
		}
		// An expired account may still read its own info (to learn why).
		if p.User.Expired(time.Now()) && !(r.Method == http.MethodGet && r.URL.Path == "/v1/me/info") {
			writeError(w, errorf(http.StatusForbidden, "account_expired", "this account expired on %s: ask your administrator to extend it", p.User.Expires.UTC().Format(time.RFC3339)))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

type principalKey struct{}

// principal is the caller, set by authenticate.
func principal(r *http.Request) *guichet.Principal {
	p, _ := r.Context().Value(principalKey{}).(*guichet.Principal)
	return p
}

// require lets through only callers whose role grants perm.
func require(perm guichet.Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := principal(r); p == nil || !p.Role.Has(perm) {
			writeError(w, errorf(http.StatusForbidden, "permission_denied", "this needs the %s permission, which your role does not have", perm))
			return
		}
		next.ServeHTTP(w, r)
	})
}
