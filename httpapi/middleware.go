package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
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

func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := idPrefix + strconv.FormatUint(idCounter.Add(1), 36)
		w.Header().Set("X-Request-Id", id)
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

// authenticate checks the bearer key. In this version the only key is the
// master key; it is compared by hash, in constant time, and never logged.
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
		sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
		if subtle.ConstantTimeCompare(sum[:], s.keyHash[:]) != 1 {
			writeError(w, errorf(http.StatusUnauthorized, "invalid_api_key", "invalid API key"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
