package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guichet/guichet"
)

// maxAdminBody bounds the JSON bodies of the admin and self-service API.
const maxAdminBody = 64 << 10

// decodeBody reads a small JSON object into v; unknown fields are an
// error, so a typo does not silently do nothing.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *guichet.Error {
	return decodeBodyLimit(w, r, v, maxAdminBody)
}

// decodeBodyLimit is decodeBody with another size limit.
func decodeBodyLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) *guichet.Error {
	if r.ContentLength > limit {
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than the limit of %d bytes", limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than the limit of %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case len(bytes.TrimSpace(body)) == 0:
			return errorf(http.StatusUnprocessableEntity, "empty_body", "the request body is empty: send a JSON object")
		case errors.As(err, &te) && te.Field != "":
			return errorf(http.StatusUnprocessableEntity, "invalid_value", "%s: must be %s", te.Field, jsonKind(te.Type.Kind().String())).WithParam(te.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return errorf(http.StatusUnprocessableEntity, "unknown_field", "unknown field %q: see /docs for this endpoint's fields", f).WithParam(f)
		default:
			return errorf(http.StatusBadRequest, "invalid_json", "the body is not a valid JSON object: %v", err)
		}
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid_json", "the body must be one JSON object")
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "int", "int64", "int32":
		return "a whole number"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "slice":
		return "a list"
	}
	return "of another type"
}

// pathID reads the numeric id in the path.
func pathID(r *http.Request, name string) (int64, *guichet.Error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(http.StatusUnprocessableEntity, "invalid_id", "%s must be a positive whole number, not %q", name, r.PathValue(name)).WithParam(name)
	}
	return id, nil
}

// parsePage reads offset, limit, order_by and order_direction.
func parsePage(r *http.Request, orderable ...string) (guichet.Page, *guichet.Error) {
	q := r.URL.Query()
	p := guichet.Page{Limit: 10, OrderBy: "id"}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, errorf(http.StatusUnprocessableEntity, "invalid_value", "offset must be a whole number ≥ 0, not %q", v).WithParam("offset")
		}
		p.Offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return p, errorf(http.StatusUnprocessableEntity, "invalid_value", "limit must be a whole number from 1 to 100, not %q", v).WithParam("limit")
		}
		p.Limit = n
	}
	if v := q.Get("order_by"); v != "" {
		if !slices.Contains(orderable, v) {
			return p, errorf(http.StatusUnprocessableEntity, "invalid_value", "order_by must be one of %s, not %q", strings.Join(orderable, ", "), v).WithParam("order_by")
		}
		p.OrderBy = v
	}
	switch v := q.Get("order_direction"); v {
	case "", "asc":
	case "desc":
		p.Desc = true
	default:
		return p, errorf(http.StatusUnprocessableEntity, "invalid_value", "order_direction must be asc or desc, not %q", v).WithParam("order_direction")
	}
	return p, nil
}

// queryID reads an optional numeric filter from the query.
func queryID(r *http.Request, name string) (int64, *guichet.Error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must be a positive whole number (an id), not %q", name, v).WithParam(name)
	}
	return id, nil
}

// fromPath loads the object whose id is in the path; on failure it has
// answered the client and ok is false.
func fromPath[T any](s *Server, w http.ResponseWriter, r *http.Request, what string, get func(context.Context, int64) (T, error)) (obj T, ok bool) {
	id, gerr := pathID(r, "id")
	if gerr != nil {
		writeError(w, gerr)
		return obj, false
	}
	obj, err := get(r.Context(), id)
	if err != nil {
		writeError(w, s.storeError(err, fmt.Sprintf("%s %d", what, id), ""))
		return obj, false
	}
	return obj, true
}

// deleteByID deletes the object whose id is in the path: 204, or the
// error (conflict says why the store may refuse).
func (s *Server) deleteByID(what, conflict string, del func(context.Context, int64) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, gerr := pathID(r, "id")
		if gerr != nil {
			writeError(w, gerr)
			return
		}
		if err := del(r.Context(), id); err != nil {
			writeError(w, s.storeError(err, fmt.Sprintf("%s %d", what, id), fmt.Sprintf(conflict, id)))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// listed answers a page of objects, each shown by show.
func listed[T, O any](s *Server, w http.ResponseWriter, r *http.Request, what string, items []T, err error, show func(context.Context, T) O) {
	if err != nil {
		writeError(w, s.storeError(err, what, ""))
		return
	}
	out := make([]O, 0, len(items))
	for _, it := range items {
		out = append(out, show(r.Context(), it))
	}
	writeJSON(w, http.StatusOK, listOf(out))
}

// storeError turns a store failure into what the client should read:
// what names the object; conflict says what a conflict means here (the
// store's own text, from the database driver, never reaches a client).
func (s *Server) storeError(err error, what, conflict string) *guichet.Error {
	switch {
	case errors.Is(err, guichet.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "%s not found", what)
	case errors.Is(err, guichet.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "%s", conflict)
	}
	s.log.Error("identity store", "what", what, "err", err)
	return errorf(http.StatusServiceUnavailable, "store_unavailable", "the database did not answer; retry shortly")
}

// nullable reads a tri-state JSON field: absent (set false), null (set,
// nil) or a value.
func nullableAmount(raw json.RawMessage, field string) (set bool, v *guichet.Amount, gerr *guichet.Error) {
	if raw == nil {
		return false, nil, nil
	}
	if string(raw) == "null" {
		return true, nil, nil
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || f < 0 || f > 1e9 || math.IsNaN(f) {
		return false, nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must be null (unlimited) or a number from 0 to 1e9", field).WithParam(field)
	}
	a := guichet.AmountOf(f)
	return true, &a, nil
}

// nullableTime reads an expiry: absent, null, unix seconds or RFC 3339.
func nullableTime(raw json.RawMessage, field string) (set bool, v *time.Time, gerr *guichet.Error) {
	if raw == nil {
		return false, nil, nil
	}
	if string(raw) == "null" {
		return true, nil, nil
	}
	var secs int64
	var s string
	var t time.Time
	switch {
	case json.Unmarshal(raw, &secs) == nil:
		t = time.Unix(secs, 0)
	case json.Unmarshal(raw, &s) == nil:
		var err error
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			return false, nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must be unix seconds or an RFC 3339 time such as 2027-01-31T00:00:00Z, not %q", field, s).WithParam(field)
		}
	default:
		return false, nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must be null, unix seconds or an RFC 3339 time", field).WithParam(field)
	}
	if !t.After(time.Now()) {
		return false, nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must be in the future", field).WithParam(field)
	}
	t = t.UTC()
	return true, &t, nil
}

func checkName(name, field string, max int) *guichet.Error {
	if strings.TrimSpace(name) == "" || len(name) > max {
		return errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must have 1 to %d characters", field, max).WithParam(field)
	}
	return nil
}

func unix(t time.Time) int64 { return t.Unix() }

func unixPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	u := t.Unix()
	return &u
}

func units(a *guichet.Amount) *float64 {
	if a == nil {
		return nil
	}
	f := a.Units()
	return &f
}
