package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/sim"
)

// tenancy is a server in front of a simulator, with two ordinary users
// (alice, bob) on a limited role, an admin user, an expired user and a
// revoked key, all made through the admin API.
type tenancy struct {
	t                                    testing.TB
	s                                    *Server
	admin, alice, bob, expired, revoked  string // API keys
	aliceID, bobID, aliceKeyID, bobKeyID int64
	userRole, adminRole                  int64
}

func newTenancy(t testing.TB, roleLimits string) *tenancy {
	return newTenancyWith(t, roleLimits, nil)
}

func newTenancyWith(t testing.TB, roleLimits string, wrap func(guichet.IdentityStore) guichet.IdentityStore) *tenancy {
	up := httptest.NewServer(sim.New(sim.Config{Models: []string{"m", "e"}, OutputTokens: 8}))
	t.Cleanup(up.Close)
	s := serverWith(t, `
models:
  - name: chat
    type: text-generation
    costs: {prompt_tokens: 1000, completion_tokens: 2000}
    providers: [{type: vllm, url: "`+up.URL+`", model_name: m}]
  - name: hidden
    type: text-generation
    providers: [{type: vllm, url: "`+up.URL+`", model_name: m}]
`, wrap)
	tn := &tenancy{t: t, s: s}
	tn.adminRole = tn.id(tn.call(key, "POST", "/v1/admin/roles", `{"name":"admins","permissions":["admin"],"limits":[{"model":"*","type":"rpm","value":null}]}`, 201))
	tn.userRole = tn.id(tn.call(key, "POST", "/v1/admin/roles", `{"name":"users","permissions":[],"limits":`+roleLimits+`}`, 201))
	mk := func(email string, role int64) (int64, string, int64) {
		uid := tn.id(tn.call(key, "POST", "/v1/admin/users", fmt.Sprintf(`{"email":%q,"role":%d}`, email, role), 201))
		var tok CreatedToken
		json.Unmarshal(tn.call(key, "POST", "/v1/admin/tokens", fmt.Sprintf(`{"name":"k","user":%d}`, uid), 201), &tok)
		return uid, tok.Token, tok.ID
	}
	_, tn.admin, _ = mk("root@example.org", tn.adminRole)
	tn.aliceID, tn.alice, tn.aliceKeyID = mk("alice@example.org", tn.userRole)
	tn.bobID, tn.bob, tn.bobKeyID = mk("bob@example.org", tn.userRole)
	expiredID, expiredKey, _ := mk("old@example.org", tn.userRole)
	tn.expired = expiredKey
	u, _ := s.store.User(context.Background(), expiredID)
	past := time.Now().Add(-time.Hour)
	u.Expires = &past
	if err := s.store.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	_, revokedKey, revokedID := mk("gone@example.org", tn.userRole)
	tn.call(revokedKey, "GET", "/v1/me/info", "", 200) // cached before its revocation
	tn.call(key, "DELETE", fmt.Sprintf("/v1/admin/tokens/%d", revokedID), "", 204)
	tn.revoked = revokedKey
	return tn
}

func (tn *tenancy) do(apiKey, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	w := httptest.NewRecorder()
	tn.s.ServeHTTP(w, req)
	return w
}

func (tn *tenancy) call(apiKey, method, path, body string, want int) []byte {
	tn.t.Helper()
	w := tn.do(apiKey, method, path, body)
	if w.Code != want {
		tn.t.Fatalf("%s %s: status %d, want %d: %s", method, path, w.Code, want, w.Body)
	}
	return w.Body.Bytes()
}

func (tn *tenancy) id(body []byte) int64 {
	var v struct{ ID int64 }
	if err := json.Unmarshal(body, &v); err != nil || v.ID == 0 {
		tn.t.Fatalf("no id in %s", body)
	}
	return v.ID
}

const chatBody = `{"model":"chat","messages":[{"role":"user","content":"hello"}],"max_tokens":8}`

func TestAuthorizationMatrix(t *testing.T) {
	tn := newTenancy(t, `[{"model":"chat","type":"rpm","value":null}]`)
	aliceKey := fmt.Sprintf("/v1/me/keys/%d", tn.aliceKeyID)
	callers := []struct {
		name string
		key  string
	}{{"master", key}, {"admin", tn.admin}, {"alice", tn.alice}, {"bob", tn.bob}, {"expired", tn.expired}, {"revoked", tn.revoked}, {"none", ""}}
	// want[i] is the status for callers[i].
	cases := []struct {
		method, path, body string
		want               [7]int
	}{
		{"GET", "/v1/models", "", [7]int{200, 200, 200, 200, 403, 401, 401}},
		{"GET", "/v1/models/chat", "", [7]int{200, 200, 200, 200, 403, 401, 401}},
		{"GET", "/v1/models/hidden", "", [7]int{200, 200, 404, 404, 403, 401, 401}},
		{"POST", "/v1/chat/completions", chatBody, [7]int{200, 200, 200, 200, 403, 401, 401}},
		{"POST", "/v1/chat/completions", strings.Replace(chatBody, `"chat"`, `"hidden"`, 1), [7]int{200, 200, 404, 404, 403, 401, 401}},
		{"GET", "/v1/me/info", "", [7]int{200, 200, 200, 200, 200, 401, 401}},
		{"PATCH", "/v1/me/info", `{"name":"x"}`, [7]int{400, 200, 200, 200, 403, 401, 401}},
		{"GET", "/v1/me/keys", "", [7]int{400, 200, 200, 200, 403, 401, 401}},
		{"GET", aliceKey, "", [7]int{400, 404, 200, 404, 403, 401, 401}},
		{"DELETE", aliceKey, "", [7]int{400, 404, 999, 404, 403, 401, 401}}, // 999: not tried, it would revoke alice's key
		{"GET", "/metrics", "", [7]int{200, 200, 403, 403, 403, 401, 401}},
		{"GET", "/v1/admin/users", "", [7]int{200, 200, 403, 403, 403, 401, 401}},
		{"GET", fmt.Sprintf("/v1/admin/users/%d", tn.aliceID), "", [7]int{200, 200, 403, 403, 403, 401, 401}},
		{"POST", "/v1/admin/roles", `{"name":"r"}`, [7]int{201, 409, 403, 403, 403, 401, 401}},
		{"GET", "/v1/admin/roles", "", [7]int{200, 200, 403, 403, 403, 401, 401}},
		{"GET", "/v1/admin/organizations", "", [7]int{200, 200, 403, 403, 403, 401, 401}},
		{"GET", "/v1/admin/tokens", "", [7]int{200, 200, 403, 403, 403, 401, 401}},
		{"DELETE", fmt.Sprintf("/v1/admin/tokens/%d", tn.bobKeyID), "", [7]int{999, 999, 403, 403, 403, 401, 401}},
	}
	for _, c := range cases {
		for i, who := range callers {
			want := c.want[i]
			if want == 999 {
				continue
			}
			if w := tn.do(who.key, c.method, c.path, c.body); w.Code != want {
				t.Errorf("%s %s as %s: status %d, want %d: %s", c.method, c.path, who.name, w.Code, want, strings.TrimSpace(w.Body.String()))
			}
		}
	}
	// Every admin route: only admins pass; the others are refused the same
	// way whatever the object.
	for _, res := range []string{"organizations", "roles", "users", "tokens"} {
		for _, op := range []struct{ method, path, body string }{
			{"POST", "/v1/admin/" + res, `{}`}, {"GET", "/v1/admin/" + res, ""},
			{"GET", "/v1/admin/" + res + "/1", ""}, {"PATCH", "/v1/admin/" + res + "/1", `{}`},
			{"DELETE", "/v1/admin/" + res + "/999", ""},
		} {
			want := map[string]int{"alice": 403, "bob": 403, "expired": 403, "revoked": 401, "none": 401}
			for _, who := range callers {
				w := tn.do(who.key, op.method, op.path, op.body)
				switch {
				case who.name == "master" || who.name == "admin":
					if w.Code == 401 || w.Code == 403 || w.Code >= 500 {
						t.Errorf("%s %s as %s: %d %s", op.method, op.path, who.name, w.Code, w.Body)
					}
				case w.Code != want[who.name]:
					t.Errorf("%s %s as %s: %d, want %d", op.method, op.path, who.name, w.Code, want[who.name])
				}
			}
		}
	}
	// Every inference endpoint: the expired user and missing or revoked
	// keys are refused before anything else.
	for _, path := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank", "/v1/audio/transcriptions"} {
		for who, want := range map[string]int{tn.expired: 403, tn.revoked: 401, "": 401} {
			if w := tn.do(who, "POST", path, `{}`); w.Code != want {
				t.Errorf("POST %s: %d, want %d", path, w.Code, want)
			}
		}
	}
	// The one case left out above, last: alice may delete her own key.
	tn.call(tn.alice, "DELETE", aliceKey, "", 204)
	tn.call(tn.alice, "GET", "/v1/models", "", 401)
}

func TestModelsListOnlyWhatTheRoleReaches(t *testing.T) {
	tn := newTenancy(t, `[{"model":"chat","type":"rpm","value":null}]`)
	var list ModelList
	json.Unmarshal(tn.call(tn.alice, "GET", "/v1/models", "", 200), &list)
	if len(list.Data) != 1 || list.Data[0].ID != "chat" {
		t.Fatalf("alice sees %+v, want only chat", list.Data)
	}
	json.Unmarshal(tn.call(tn.admin, "GET", "/v1/models", "", 200), &list)
	if len(list.Data) != 2 {
		t.Fatalf("admin (limits on *) sees %d models, want 2", len(list.Data))
	}
}

func TestForbiddenModelIs403(t *testing.T) {
	tn := newTenancy(t, `[{"model":"chat","type":"rpm","value":0}]`)
	w := tn.do(tn.alice, "POST", "/v1/chat/completions", chatBody)
	if w.Code != 403 || !strings.Contains(w.Body.String(), `model \"chat\"`) {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
}

func TestRequestLimitSays429WithHeaders(t *testing.T) {
	tn := newTenancy(t, `[{"model":"chat","type":"rpm","value":3},{"model":"chat","type":"tpm","value":1000}]`)
	for i := 0; i < 3; i++ {
		w := tn.do(tn.alice, "POST", "/v1/chat/completions", chatBody)
		if w.Code != 200 {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
		if got := w.Header().Get("X-RateLimit-Remaining-Requests"); got != fmt.Sprint(2-i) {
			t.Errorf("request %d: remaining requests %q, want %d", i, got, 2-i)
		}
		if w.Header().Get("X-RateLimit-Limit-Tokens") != "1000" || w.Header().Get("X-RateLimit-Remaining-Tokens") == "" {
			t.Errorf("token headers: %v", w.Header())
		}
	}
	w := tn.do(tn.alice, "POST", "/v1/chat/completions", chatBody)
	if w.Code != 429 {
		t.Fatalf("4th request: %d %s", w.Code, w.Body)
	}
	ra := w.Header().Get("Retry-After")
	if ra == "" || ra == "0" || w.Header().Get("X-RateLimit-Remaining-Requests") != "0" {
		t.Errorf("429 headers: %v", w.Header())
	}
	if msg := w.Body.String(); !strings.Contains(msg, "3 requests per minute") || !strings.Contains(msg, `model \"chat\"`) {
		t.Errorf("429 message does not say which limit and model: %s", msg)
	}
	// Limits are per user: bob is untouched.
	tn.call(tn.bob, "POST", "/v1/chat/completions", chatBody, 200)
}

func TestTokenLimitCountsInput(t *testing.T) {
	tn := newTenancy(t, `[{"model":"chat","type":"tpm","value":50}]`)
	long := `{"model":"chat","messages":[{"role":"user","content":"` + strings.Repeat("word ", 100) + `"}]}`
	w := tn.do(tn.alice, "POST", "/v1/chat/completions", long)
	if w.Code != 429 || !strings.Contains(w.Body.String(), "shorten it") {
		t.Fatalf("a request over the whole token limit: %d %s", w.Code, w.Body)
	}
	tn.call(tn.alice, "POST", "/v1/chat/completions", chatBody, 200)
}

func TestBudgetRefusesWith402AndIsSpent(t *testing.T) {
	tn := newTenancy(t, `[{"model":"chat","type":"rpm","value":null}]`)
	// chat costs 1000 per million prompt tokens, 2000 per million
	// completion tokens: a request of ~10 prompt + 8 completion tokens
	// costs about 0.026; max_tokens 8 reserves about the same.
	tn.call(key, "PATCH", fmt.Sprintf("/v1/admin/users/%d", tn.aliceID), `{"budget":0.05}`, 200)
	tn.call(tn.alice, "POST", "/v1/chat/completions", chatBody, 200)
	var info UserInfo
	json.Unmarshal(tn.call(tn.alice, "GET", "/v1/me/info", "", 200), &info)
	if info.Budget == nil || *info.Budget >= 0.05 || *info.Budget <= 0 {
		t.Fatalf("budget after one request: %v, want between 0 and 0.05", info.Budget)
	}
	spent := 0.05 - *info.Budget
	n := 1
	for ; n < 10; n++ {
		w := tn.do(tn.alice, "POST", "/v1/chat/completions", chatBody)
		if w.Code == 402 {
			if !strings.Contains(w.Body.String(), "budget") {
				t.Errorf("402 message: %s", w.Body)
			}
			break
		}
		if w.Code != 200 {
			t.Fatalf("status %d %s", w.Code, w.Body)
		}
	}
	if n == 10 {
		t.Fatal("the budget never ran out")
	}
	json.Unmarshal(tn.call(tn.alice, "GET", "/v1/me/info", "", 200), &info)
	if *info.Budget < 0 || *info.Budget > spent {
		t.Fatalf("left %v after %d requests of %v each: the last one should not fit", *info.Budget, n, spent)
	}
	// Topping up works at once.
	tn.call(key, "PATCH", fmt.Sprintf("/v1/admin/users/%d", tn.aliceID), `{"budget":1}`, 200)
	tn.call(tn.alice, "POST", "/v1/chat/completions", chatBody, 200)
}

func TestUsersSeeOnlyTheirOwnKeys(t *testing.T) {
	tn := newTenancy(t, `[{"model":"chat","type":"rpm","value":null}]`)
	var created CreatedToken
	json.Unmarshal(tn.call(tn.alice, "POST", "/v1/me/keys", `{"name":"laptop"}`, 201), &created)
	if !strings.HasPrefix(created.Token, "sk-") {
		t.Fatalf("created key %q", created.Token)
	}
	tn.call(created.Token, "GET", "/v1/me/info", "", 200)
	var keys List[Key]
	json.Unmarshal(tn.call(tn.bob, "GET", "/v1/me/keys", "", 200), &keys)
	for _, k := range keys.Data {
		if k.ID == created.ID || k.ID == tn.aliceKeyID {
			t.Fatalf("bob lists alice's key %d", k.ID)
		}
		if len(k.Token) > 15 {
			t.Fatalf("a list shows more than the key's prefix: %q", k.Token)
		}
	}
	tn.call(tn.bob, "DELETE", fmt.Sprintf("/v1/me/keys/%d", created.ID), "", 404)
	tn.call(created.Token, "GET", "/v1/me/info", "", 200) // still valid
}

func TestAdminValidation(t *testing.T) {
	tn := newTenancy(t, `[]`)
	for _, c := range []struct{ path, body, want string }{
		{"/v1/admin/roles", `{"name":"x","limits":[{"model":"nope","type":"rpm","value":1}]}`, `no model is named \"nope\"`},
		{"/v1/admin/roles", `{"name":"x","limits":[{"model":"chat","type":"rph","value":1}]}`, "rpm, rpd, tpm, tpd or concurrent"},
		{"/v1/admin/roles", `{"name":"x","permissions":["root"]}`, "is not a permission"},
		{"/v1/admin/roles", `{"name":"x","colour":"red"}`, `unknown field \"colour\"`},
		{"/v1/admin/users", `{"email":"nobody","role":1}`, "email must be an address"},
		{"/v1/admin/users", `{"email":"a@b.c","role":999}`, "no role has id 999"},
		{"/v1/admin/users", `{"email":"a@b.c","role":1,"expires":1}`, "must be in the future"},
		{"/v1/admin/users", `{"email":"alice@example.org","role":1}`, "conflict"},
		{"/v1/admin/organizations", `{"name":""}`, "1 to 255 characters"},
		{"/v1/admin/organizations", `{"name":"o","budget":-1}`, "budget must be null"},
	} {
		w := tn.do(key, "POST", c.path, c.body)
		if w.Code < 400 || w.Code >= 500 || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("POST %s %s: %d %s; want a 4xx saying %s", c.path, c.body, w.Code, w.Body, c.want)
		}
	}
	var tok Token
	json.Unmarshal(tn.call(key, "PATCH", fmt.Sprintf("/v1/admin/tokens/%d", tn.bobKeyID), `{"name":"ci","expires":"2999-01-01T00:00:00Z"}`, 200), &tok)
	if tok.Name != "ci" || tok.Expires == nil || tok.User != tn.bobID {
		t.Errorf("patched token: %+v", tok)
	}
	tn.call(key, "PATCH", fmt.Sprintf("/v1/admin/tokens/%d", tn.bobKeyID), `{"expires":1}`, 422)
	tn.call(tn.bob, "GET", "/v1/me/info", "", 200) // the key still works
	if w := tn.do(key, "GET", "/v1/admin/users?limit=1000", ""); w.Code != 422 {
		t.Errorf("limit=1000: %d", w.Code)
	}
	if w := tn.do(key, "DELETE", fmt.Sprintf("/v1/admin/roles/%d", tn.userRole), ""); w.Code != 409 {
		t.Errorf("deleting a role in use: %d %s", w.Code, w.Body)
	}
	var users List[User]
	json.Unmarshal(tn.call(key, "GET", fmt.Sprintf("/v1/admin/users?role=%d&order_by=email&order_direction=desc&limit=2", tn.userRole), "", 200), &users)
	if len(users.Data) != 2 || users.Data[0].Email != "old@example.org" || users.Data[1].Email != "gone@example.org" {
		t.Errorf("users of role users by email desc, 2: %+v", users.Data)
	}
}

// countingStore counts the store calls the hot path makes.
type countingStore struct {
	guichet.IdentityStore
	n atomic.Int64
}

func (c *countingStore) KeyByHash(ctx context.Context, h guichet.KeyHash) (*guichet.Key, error) {
	c.n.Add(1)
	return c.IdentityStore.KeyByHash(ctx, h)
}
func (c *countingStore) User(ctx context.Context, id int64) (*guichet.User, error) {
	c.n.Add(1)
	return c.IdentityStore.User(ctx, id)
}
func (c *countingStore) Role(ctx context.Context, id int64) (*guichet.Role, error) {
	c.n.Add(1)
	return c.IdentityStore.Role(ctx, id)
}
func (c *countingStore) Organization(ctx context.Context, id int64) (*guichet.Organization, error) {
	c.n.Add(1)
	return c.IdentityStore.Organization(ctx, id)
}

func TestHotPathQueriesStayFlat(t *testing.T) {
	counter := &countingStore{}
	tn := newTenancyWith(t, `[{"model":"chat","type":"rpm","value":100000},{"model":"chat","type":"tpm","value":null}]`, func(s guichet.IdentityStore) guichet.IdentityStore {
		counter.IdentityStore = s
		return counter
	})
	keys := []string{tn.alice, tn.bob, tn.admin}
	run := func(n int) {
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if w := tn.do(keys[i%len(keys)], "POST", "/v1/chat/completions", chatBody); w.Code != 200 {
					t.Errorf("status %d %s", w.Code, w.Body)
				}
			}(i)
		}
		wg.Wait()
	}
	setup := counter.n.Load()
	run(30) // warm: each key is loaded once
	warm := counter.n.Load() - setup
	if warm == 0 || warm > int64(4*len(keys)) {
		t.Fatalf("warming %d keys took %d store reads, want 1 to %d", len(keys), warm, 4*len(keys))
	}
	run(600)
	if extra := counter.n.Load() - warm - setup; extra != 0 {
		t.Fatalf("600 requests made %d store reads in steady state, want 0", extra)
	}
	// A change invalidates, and the next requests read again, once per
	// key — or twice, when the version poll (every second) sees the same
	// change and invalidates once more during the run.
	tn.call(key, "PATCH", fmt.Sprintf("/v1/admin/roles/%d", tn.userRole), `{"name":"users2"}`, 200)
	before := counter.n.Load()
	run(60)
	if got := counter.n.Load() - before; got == 0 || got > int64(2*4*len(keys)) {
		t.Fatalf("after a change, %d store reads; want 1 to %d", got, 2*4*len(keys))
	}
}

// FuzzAdminAndMeBodies sends arbitrary bodies to every endpoint that
// takes one outside inference: each answer is a success or a 4xx with the
// error envelope, never a 5xx.
func FuzzAdminAndMeBodies(f *testing.F) {
	ops := []struct{ method, path string }{
		{"POST", "/v1/admin/organizations"}, {"PATCH", "/v1/admin/organizations/1"},
		{"POST", "/v1/admin/roles"}, {"PATCH", "/v1/admin/roles/2"},
		{"POST", "/v1/admin/users"}, {"PATCH", "/v1/admin/users/2"},
		{"POST", "/v1/admin/tokens"}, {"PATCH", "/v1/admin/tokens/1"}, {"PATCH", "/v1/me/info"}, {"POST", "/v1/me/keys"},
	}
	f.Add(uint8(0), `{"name":"o","budget":1.5}`)
	f.Add(uint8(2), `{"name":"r","permissions":["admin"],"limits":[{"model":"*","type":"rpm","value":null},{"router":"chat","type":"tpm","value":5}]}`)
	f.Add(uint8(4), `{"email":"x@y.z","role":1,"organization":null,"budget":null,"expires":"2999-01-01T00:00:00Z","priority":3}`)
	f.Add(uint8(5), `{"expires":4102444800,"budget":0}`)
	f.Add(uint8(6), `{"name":"k","user":1,"expires":null}`)
	f.Add(uint8(7), `{"name":"renamed","expires":"2999-01-01T00:00:00Z"}`)
	f.Add(uint8(8), `{"name":"me","email":"ME@EXAMPLE.ORG"}`)
	f.Add(uint8(9), `{"name":"","expires":-1}`)
	f.Add(uint8(3), `{"limits":[{"model":"chat","type":"rpm","value":-1}]}`)
	tn := newTenancy(f, `[{"model":"chat","type":"rpm","value":null}]`)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		op := ops[int(which)%len(ops)]
		caller := key
		if strings.HasPrefix(op.path, "/v1/me/") {
			caller = tn.alice
		}
		w := tn.do(caller, op.method, op.path, body)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q → %d %s", op.method, op.path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.Contains(w.Body.String(), `"error"`) {
			t.Fatalf("error without envelope: %s", w.Body)
		}
	})
}

type fakeHealth struct{ healthy, degraded bool }

func (f fakeHealth) Healthy() bool  { return f.healthy }
func (f fakeHealth) Degraded() bool { return f.degraded }

func TestReadySaysWhenLimitsCannotBeChecked(t *testing.T) {
	s := serverFor(t, `
models:
  - name: chat
    type: text-generation
    providers: [{type: vllm, url: "http://127.0.0.1:1"}]
`)
	for _, c := range []struct {
		h      fakeHealth
		limits string
		code   int
	}{
		{fakeHealth{true, false}, `"limits":"ok"`, 200},
		{fakeHealth{false, true}, `"limits":"per_replica"`, 200},
		{fakeHealth{false, false}, `"limits":"unavailable"`, 503},
	} {
		s.health = c.h
		w := do(s, "GET", "/ready", "", "")
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.limits) {
			t.Errorf("%+v: %d %s", c.h, w.Code, w.Body)
		}
		m := do(s, "GET", "/metrics", "", "")
		up := "guichet_limits_backend_up 1"
		if !c.h.healthy {
			up = "guichet_limits_backend_up 0"
		}
		if !strings.Contains(m.Body.String(), up) {
			t.Errorf("%+v: metrics lack %q", c.h, up)
		}
	}
}

func TestUsageLedgerPerUserAndForAdmins(t *testing.T) {
	tn := newTenancy(t, `[{"model":"chat","type":"rpm","value":null}]`)
	for range 3 {
		tn.call(tn.alice, "POST", "/v1/chat/completions", chatBody, 200)
	}
	tn.call(tn.bob, "POST", "/v1/chat/completions", chatBody, 200)
	var mine MeUsageList
	deadline := time.Now().Add(5 * time.Second)
	for len(mine.Data) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // lines are written in the background
		json.Unmarshal(tn.call(tn.alice, "GET", "/v1/me/usage", "", 200), &mine)
	}
	if len(mine.Data) != 3 {
		t.Fatalf("alice's usage: %d lines, want 3", len(mine.Data))
	}
	for _, l := range mine.Data {
		// chat costs 1000 per million prompt tokens and 2000 per million completion tokens.
		want := float64(l.Usage.PromptTokens)*1000e-6 + float64(l.Usage.CompletionTokens)*2000e-6
		if l.Model != "chat" || l.Status != 200 || l.Usage.CompletionTokens != 8 || l.Usage.Cost < want-1e-9 || l.Usage.Cost > want+1e-9 {
			t.Errorf("line %+v", l)
		}
	}
	json.Unmarshal(tn.call(tn.bob, "GET", "/v1/me/usage?endpoint=/v1/embeddings", "", 200), &mine)
	if len(mine.Data) != 0 {
		t.Errorf("bob's embeddings usage: %d lines, want 0", len(mine.Data))
	}
	tn.call(key, "GET", "/v1/me/usage", "", 400)         // the master key is no user
	tn.call(tn.alice, "GET", "/v1/admin/usage", "", 403) // admins only
	tn.call(tn.alice, "GET", "/v1/me/usage?start_time=x", "", 422)

	var legacy LegacyUsageList
	json.Unmarshal(tn.call(tn.alice, "GET", "/v1/usage?limit=2&order_by=cost&order_direction=asc", "", 200), &legacy)
	if len(legacy.Data) != 2 || legacy.Total != 3 || legacy.TotalPages != 2 || !legacy.HasMore || legacy.TotalTokens != 3*(legacy.Data[0].TotalTokens) || legacy.Data[0].RequestModel != "chat" {
		t.Fatalf("legacy usage: %+v", legacy)
	}
	tn.call(tn.alice, "GET", "/v1/usage?order_by=colour", "", 422)

	var all AdminUsageList
	json.Unmarshal(tn.call(tn.admin, "GET", fmt.Sprintf("/v1/admin/usage?user=%d", tn.aliceID), "", 200), &all)
	if len(all.Data) != 3 || all.Totals.Requests != 3 || all.Totals.CompletionTokens != 24 || all.Data[0].User != tn.aliceID {
		t.Fatalf("admin view of alice: %d lines, totals %+v", len(all.Data), all.Totals)
	}
	var days UsageDayList
	json.Unmarshal(tn.call(tn.alice, "GET", "/v1/me/usage/daily", "", 200), &days)
	if len(days.Data) != 1 || days.Data[0].Requests != 3 || days.Data[0].CompletionTokens != 24 || days.Data[0].Model != "chat" || days.Data[0].User != tn.aliceID {
		t.Fatalf("alice's daily usage: %+v", days.Data)
	}
	json.Unmarshal(tn.call(tn.admin, "GET", "/v1/admin/usage/daily", "", 200), &days)
	if len(days.Data) != 2 {
		t.Fatalf("everyone's daily usage: %+v, want alice's and bob's rows", days.Data)
	}
	tn.call(tn.bob, "GET", "/v1/admin/usage/daily", "", 403)
	w := tn.do(tn.admin, "GET", "/v1/admin/usage?format=csv", "")
	rows := strings.Split(strings.TrimSpace(w.Body.String()), "\n")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") || len(rows) < 5 || !strings.HasPrefix(rows[0], "time,request_id,") {
		t.Fatalf("CSV export: %d %q, %d rows", w.Code, w.Header().Get("Content-Type"), len(rows))
	}
}
