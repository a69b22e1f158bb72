// Package storetest holds the conformance suites guichet's stores pass,
// whatever database they keep their data in.
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guichet/guichet"
)

// Identity runs the IdentityStore conformance suite. open must return a
// new, empty store on each call (subtests run in parallel); the suite
// closes it.
func Identity(t *testing.T, open func(t *testing.T) guichet.IdentityStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, s guichet.IdentityStore)
	}{
		{"Organizations", testOrganizations},
		{"Roles", testRoles},
		{"Users", testUsers},
		{"UserFilter", testUserFilter},
		{"Keys", testKeys},
		{"OrganizationPages", testOrganizationPages},
		{"RolePages", testRolePages},
		{"UserPages", testUserPages},
		{"KeyPages", testKeyPages},
		{"Ties", testTies},
		{"DeleteInUse", testDeleteInUse},
		{"IDsNotReused", testIDsNotReused},
		{"Spend", testSpend},
		{"SpendConcurrent", testSpendConcurrent},
		{"Version", testVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.run(t, s)
		})
	}
}

// missingID is an id no test creates.
const missingID = 987_654_321

func testOrganizations(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	before := time.Now()
	o := &guichet.Organization{Name: "Société Générale ☃", Budget: amount(5 * guichet.AmountPerUnit)}
	must(t, s.CreateOrganization(ctx, o))
	checkCreated(t, "organization", o.ID, o.Created, o.Updated, before)
	got, err := s.Organization(ctx, o.ID)
	must(t, err)
	same(t, "Organization after create", got, o)

	// A nil budget (unlimited) and a zero one (exhausted) differ.
	free := &guichet.Organization{Name: "free"}
	broke := &guichet.Organization{Name: "broke", Budget: amount(0)}
	must(t, s.CreateOrganization(ctx, free))
	must(t, s.CreateOrganization(ctx, broke))
	for _, want := range []*guichet.Organization{free, broke} {
		got, err := s.Organization(ctx, want.ID)
		must(t, err)
		same(t, "Organization "+want.Name, got, want)
	}
	list, err := s.Organizations(ctx, guichet.Page{})
	must(t, err)
	same(t, "Organizations", list, []*guichet.Organization{o, free, broke})

	isConflict(t, "CreateOrganization with a taken name", s.CreateOrganization(ctx, &guichet.Organization{Name: "free"}))

	created := o.Created
	time.Sleep(2 * time.Millisecond) // so Updated moves past Created
	o.Name, o.Budget = "SG", nil
	must(t, s.UpdateOrganization(ctx, o))
	if !o.Updated.After(created) {
		t.Errorf("UpdateOrganization set Updated %v, not after Created %v", o.Updated, created)
	}
	got, err = s.Organization(ctx, o.ID)
	must(t, err)
	same(t, "Organization after update", got, o)
	if !got.Created.Equal(created) {
		t.Errorf("UpdateOrganization changed Created from %v to %v", created, got.Created)
	}

	taken := *free
	taken.Name = "SG"
	isConflict(t, "UpdateOrganization to a taken name", s.UpdateOrganization(ctx, &taken))
	got, err = s.Organization(ctx, free.ID)
	must(t, err)
	same(t, "Organization after a failed update", got, free)

	_, err = s.Organization(ctx, missingID)
	isNotFound(t, "Organization(missing)", err)
	isNotFound(t, "UpdateOrganization(missing)", s.UpdateOrganization(ctx, &guichet.Organization{ID: missingID, Name: "x"}))
	isNotFound(t, "DeleteOrganization(missing)", s.DeleteOrganization(ctx, missingID))

	must(t, s.DeleteOrganization(ctx, o.ID))
	_, err = s.Organization(ctx, o.ID)
	isNotFound(t, "Organization after delete", err)
	isNotFound(t, "DeleteOrganization twice", s.DeleteOrganization(ctx, o.ID))
}

func testRoles(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	before := time.Now()
	// Limits in no particular order, with unlimited (nil), forbidden (0)
	// and large values: they must read back exactly, in this order.
	r := &guichet.Role{
		Name:        "user",
		Permissions: []guichet.Permission{guichet.PermReadMetric, guichet.PermAdmin},
		Limits: []guichet.Limit{
			{Model: "llama", Type: guichet.RequestsPerMinute, Value: int64p(10)},
			{Model: "llama", Type: guichet.TokensPerDay, Value: nil},
			{Model: guichet.AllModels, Type: guichet.RequestsPerMinute, Value: int64p(0)},
			{Model: "bge", Type: guichet.Concurrent, Value: int64p(2)},
			{Model: "bge", Type: guichet.RequestsPerMinute, Value: int64p(1 << 50)},
		},
	}
	must(t, s.CreateRole(ctx, r))
	checkCreated(t, "role", r.ID, r.Created, r.Updated, before)
	got, err := s.Role(ctx, r.ID)
	must(t, err)
	sameRole(t, "Role after create", got, r)
	for _, l := range got.Limits {
		if l.Model == "llama" && l.Type == guichet.TokensPerDay && l.Value != nil ||
			l.Model == guichet.AllModels && l.Type == guichet.RequestsPerMinute && (l.Value == nil || *l.Value != 0) {
			t.Errorf("limit %s: unlimited (nil) and forbidden (0) not kept apart", dump(l))
		}
	}
	got, err = s.RoleByName(ctx, "user")
	must(t, err)
	sameRole(t, "RoleByName", got, r)

	empty := &guichet.Role{Name: "empty"}
	must(t, s.CreateRole(ctx, empty))
	got, err = s.Role(ctx, empty.ID)
	must(t, err)
	sameRole(t, "Role without permissions or limits", got, empty)

	roles, err := s.Roles(ctx, guichet.Page{})
	must(t, err)
	if len(roles) != 2 {
		t.Fatalf("Roles: got %d roles, want 2", len(roles))
	}
	sameRole(t, "Roles[0]", roles[0], r)
	sameRole(t, "Roles[1]", roles[1], empty)

	isConflict(t, "CreateRole with a taken name", s.CreateRole(ctx, &guichet.Role{Name: "user"}))
	dupLimit := &guichet.Role{Name: "dup", Limits: []guichet.Limit{
		{Model: "llama", Type: guichet.RequestsPerMinute, Value: int64p(1)},
		{Model: "llama", Type: guichet.RequestsPerMinute, Value: int64p(2)},
	}}
	isConflict(t, "CreateRole with two limits of one model and type", s.CreateRole(ctx, dupLimit))
	_, err = s.RoleByName(ctx, "dup")
	isNotFound(t, "RoleByName of a role whose creation failed", err)
	dupPerm := &guichet.Role{Name: "dup", Permissions: []guichet.Permission{guichet.PermAdmin, guichet.PermAdmin}}
	isConflict(t, "CreateRole with a permission twice", s.CreateRole(ctx, dupPerm))

	// UpdateRole replaces permissions and limits.
	time.Sleep(2 * time.Millisecond)
	r.Name = "member"
	r.Permissions = []guichet.Permission{guichet.PermProvideModels}
	r.Limits = []guichet.Limit{{Model: guichet.AllModels, Type: guichet.Concurrent, Value: int64p(1)}}
	must(t, s.UpdateRole(ctx, r))
	if !r.Updated.After(r.Created) {
		t.Errorf("UpdateRole set Updated %v, not after Created %v", r.Updated, r.Created)
	}
	got, err = s.Role(ctx, r.ID)
	must(t, err)
	sameRole(t, "Role after update", got, r)
	_, err = s.RoleByName(ctx, "user")
	isNotFound(t, "RoleByName(old name)", err)

	bad := *r
	bad.Limits = []guichet.Limit{
		{Model: "x", Type: guichet.TokensPerMinute},
		{Model: "x", Type: guichet.TokensPerMinute},
	}
	isConflict(t, "UpdateRole with two limits of one model and type", s.UpdateRole(ctx, &bad))
	bad = *r
	bad.Name = "empty"
	isConflict(t, "UpdateRole to a taken name", s.UpdateRole(ctx, &bad))
	got, err = s.Role(ctx, r.ID)
	must(t, err)
	sameRole(t, "Role after failed updates", got, r)

	r.Permissions, r.Limits = nil, nil
	must(t, s.UpdateRole(ctx, r))
	got, err = s.Role(ctx, r.ID)
	must(t, err)
	sameRole(t, "Role after removing permissions and limits", got, r)

	_, err = s.Role(ctx, missingID)
	isNotFound(t, "Role(missing)", err)
	_, err = s.RoleByName(ctx, "nobody")
	isNotFound(t, "RoleByName(missing)", err)
	isNotFound(t, "UpdateRole(missing)", s.UpdateRole(ctx, &guichet.Role{ID: missingID, Name: "x"}))
	isNotFound(t, "DeleteRole(missing)", s.DeleteRole(ctx, missingID))

	must(t, s.DeleteRole(ctx, r.ID))
	_, err = s.Role(ctx, r.ID)
	isNotFound(t, "Role after delete", err)
	_, err = s.RoleByName(ctx, "member")
	isNotFound(t, "RoleByName after delete", err)
}

func testUsers(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	role := mkRole(t, s, "user")
	role2 := mkRole(t, s, "admin")
	org := mkOrg(t, s, "acme")
	org2 := mkOrg(t, s, "globex")

	before := time.Now()
	expires := time.Date(2031, 5, 6, 7, 8, 9, 123456000, time.UTC)
	u := &guichet.User{
		Email: "Alice@Example.COM", Name: "Alice", RoleID: role.ID, OrganizationID: org.ID,
		Budget: amount(42), Expires: &expires, Priority: 7,
	}
	must(t, s.CreateUser(ctx, u))
	checkCreated(t, "user", u.ID, u.Created, u.Updated, before)
	if u.Email != "alice@example.com" {
		t.Errorf("CreateUser: Email is %q, want it lower-cased", u.Email)
	}
	got, err := s.User(ctx, u.ID)
	must(t, err)
	same(t, "User after create", got, u)
	for _, email := range []string{"alice@example.com", "ALICE@example.com", "Alice@Example.COM"} {
		got, err := s.UserByEmail(ctx, email)
		must(t, err)
		same(t, "UserByEmail("+email+")", got, u)
	}

	// Zero values: no organization, unlimited, never expires.
	bob := &guichet.User{Email: "bob@example.com", RoleID: role.ID, Priority: -3}
	must(t, s.CreateUser(ctx, bob))
	got, err = s.User(ctx, bob.ID)
	must(t, err)
	same(t, "User without organization, budget or expiry", got, bob)

	// Expiry keeps the instant, to the microsecond, and reads back in UTC.
	paris := time.FixedZone("Paris", 2*3600)
	carolExpires := time.Date(2030, 1, 2, 3, 4, 5, 987654321, paris)
	carol := &guichet.User{Email: "carol@example.com", RoleID: role.ID, Expires: &carolExpires, Budget: amount(0)}
	must(t, s.CreateUser(ctx, carol))
	got, err = s.User(ctx, carol.ID)
	must(t, err)
	if got.Expires == nil || !got.Expires.Equal(carolExpires.Truncate(time.Microsecond)) || got.Expires.Location() != time.UTC {
		t.Errorf("Expires: got %v, want %v in UTC", got.Expires, carolExpires.Truncate(time.Microsecond).UTC())
	}
	if got.Budget == nil || *got.Budget != 0 {
		t.Errorf("Budget: got %v, want 0 (not nil)", dump(got.Budget))
	}

	isConflict(t, "CreateUser with a taken email in other case", s.CreateUser(ctx, &guichet.User{Email: "BOB@example.com", RoleID: role.ID}))
	isNotFound(t, "CreateUser with a missing role", s.CreateUser(ctx, &guichet.User{Email: "x@example.com", RoleID: missingID}))
	isNotFound(t, "CreateUser with a missing organization",
		s.CreateUser(ctx, &guichet.User{Email: "y@example.com", RoleID: role.ID, OrganizationID: missingID}))
	_, err = s.UserByEmail(ctx, "x@example.com")
	isNotFound(t, "UserByEmail of a user whose creation failed", err)

	// UpdateUser changes every field.
	time.Sleep(2 * time.Millisecond)
	newExpires := time.Date(2032, 1, 1, 0, 0, 0, 1000, time.UTC)
	u.Email, u.Name, u.RoleID, u.OrganizationID = "Alice.Smith@Example.com", "Alice Smith", role2.ID, org2.ID
	u.Budget, u.Expires, u.Priority = amount(1_000_000_000_000), &newExpires, -1
	must(t, s.UpdateUser(ctx, u))
	if u.Email != "alice.smith@example.com" {
		t.Errorf("UpdateUser: Email is %q, want it lower-cased", u.Email)
	}
	if !u.Updated.After(u.Created) {
		t.Errorf("UpdateUser set Updated %v, not after Created %v", u.Updated, u.Created)
	}
	got, err = s.User(ctx, u.ID)
	must(t, err)
	same(t, "User after update", got, u)
	u.OrganizationID, u.Budget, u.Expires = 0, nil, nil
	must(t, s.UpdateUser(ctx, u))
	got, err = s.User(ctx, u.ID)
	must(t, err)
	same(t, "User after clearing organization, budget and expiry", got, u)
	_, err = s.UserByEmail(ctx, "alice@example.com")
	isNotFound(t, "UserByEmail(old email)", err)

	bad := *u
	bad.Email = "Bob@Example.com"
	isConflict(t, "UpdateUser to a taken email", s.UpdateUser(ctx, &bad))
	bad = *u
	bad.RoleID = missingID
	isNotFound(t, "UpdateUser with a missing role", s.UpdateUser(ctx, &bad))
	bad = *u
	bad.OrganizationID = missingID
	isNotFound(t, "UpdateUser with a missing organization", s.UpdateUser(ctx, &bad))
	got, err = s.User(ctx, u.ID)
	must(t, err)
	same(t, "User after failed updates", got, u)

	_, err = s.User(ctx, missingID)
	isNotFound(t, "User(missing)", err)
	_, err = s.UserByEmail(ctx, "nobody@example.com")
	isNotFound(t, "UserByEmail(missing)", err)
	isNotFound(t, "UpdateUser(missing)", s.UpdateUser(ctx, &guichet.User{ID: missingID, Email: "z@example.com", RoleID: role.ID}))
	isNotFound(t, "DeleteUser(missing)", s.DeleteUser(ctx, missingID))

	// DeleteUser deletes the user's keys, and only them.
	k1, k2 := mkKey(t, s, u.ID, "a"), mkKey(t, s, u.ID, "b")
	bobKey := mkKey(t, s, bob.ID, "c")
	must(t, s.DeleteUser(ctx, u.ID))
	_, err = s.User(ctx, u.ID)
	isNotFound(t, "User after delete", err)
	for _, k := range []*guichet.Key{k1, k2} {
		_, err = s.Key(ctx, k.ID)
		isNotFound(t, "Key of a deleted user", err)
		_, err = s.KeyByHash(ctx, k.Hash)
		isNotFound(t, "KeyByHash of a deleted user", err)
	}
	keys, err := s.Keys(ctx, 0, guichet.Page{})
	must(t, err)
	same(t, "Keys after deleting a user", keys, []*guichet.Key{bobKey})
}

func testUserFilter(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	r1, r2 := mkRole(t, s, "r1"), mkRole(t, s, "r2")
	o1, o2 := mkOrg(t, s, "o1"), mkOrg(t, s, "o2")
	a := mkUser(t, s, "a@example.com", r1.ID, o1.ID)
	b := mkUser(t, s, "B@example.com", r1.ID, o2.ID)
	c := mkUser(t, s, "c@example.com", r2.ID, o1.ID)
	d := mkUser(t, s, "d@example.com", r2.ID, 0)
	e := mkUser(t, s, "e@example.com", r1.ID, 0)

	for _, tc := range []struct {
		filter guichet.UserFilter
		want   []*guichet.User
	}{
		{guichet.UserFilter{}, []*guichet.User{a, b, c, d, e}},
		{guichet.UserFilter{RoleID: r1.ID}, []*guichet.User{a, b, e}},
		{guichet.UserFilter{RoleID: r2.ID}, []*guichet.User{c, d}},
		{guichet.UserFilter{OrganizationID: o1.ID}, []*guichet.User{a, c}},
		{guichet.UserFilter{OrganizationID: o2.ID}, []*guichet.User{b}},
		{guichet.UserFilter{RoleID: r2.ID, OrganizationID: o1.ID}, []*guichet.User{c}},
		{guichet.UserFilter{Email: "b@EXAMPLE.com"}, []*guichet.User{b}},
		{guichet.UserFilter{Email: "b@example.com", RoleID: r2.ID}, nil},
		{guichet.UserFilter{Email: "example.com"}, nil}, // exact, not a substring
		{guichet.UserFilter{RoleID: missingID}, nil},
		{guichet.UserFilter{OrganizationID: missingID}, nil},
	} {
		name := fmt.Sprintf("filter %+v", tc.filter)
		got, err := s.Users(ctx, tc.filter, guichet.Page{Limit: 100})
		must(t, err)
		if tc.want == nil {
			tc.want = []*guichet.User{}
		}
		same(t, "Users, "+name, nonNil(got), tc.want)
		n, err := s.CountUsers(ctx, tc.filter)
		must(t, err)
		if n != int64(len(tc.want)) {
			t.Errorf("CountUsers, %s: got %d, want %d", name, n, len(tc.want))
		}
	}
	// Filter and page combine.
	got, err := s.Users(ctx, guichet.UserFilter{RoleID: r1.ID}, guichet.Page{Offset: 1, Limit: 1, Desc: true})
	must(t, err)
	same(t, "Users, role r1, second from the end", got, []*guichet.User{b})
}

func testKeys(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	role := mkRole(t, s, "user")
	u := mkUser(t, s, "u@example.com", role.ID, 0)
	v := mkUser(t, s, "v@example.com", role.ID, 0)

	before := time.Now()
	expires := time.Date(2030, 12, 31, 23, 59, 59, 999999000, time.UTC)
	var h guichet.KeyHash // NUL and 0xff bytes both survive
	for i := range h {
		h[i] = byte(i * 17)
	}
	h[31] = 0xff
	k := &guichet.Key{UserID: u.ID, Name: "laptop", Prefix: "sk-abc", Hash: h, Expires: &expires}
	must(t, s.CreateKey(ctx, k))
	if k.ID <= 0 {
		t.Errorf("CreateKey: ID %d, want > 0", k.ID)
	}
	checkTime(t, "Key.Created", k.Created, before)
	got, err := s.Key(ctx, k.ID)
	must(t, err)
	same(t, "Key after create", got, k)
	got, err = s.KeyByHash(ctx, h)
	must(t, err)
	same(t, "KeyByHash", got, k)

	sameName := &guichet.Key{UserID: u.ID, Name: "laptop", Prefix: "sk-def", Hash: randomHash()}
	must(t, s.CreateKey(ctx, sameName)) // names need not be unique
	got, err = s.KeyByHash(ctx, sameName.Hash)
	must(t, err)
	same(t, "Key without expiry", got, sameName)
	vKey := mkKey(t, s, v.ID, "ci")

	isConflict(t, "CreateKey with a taken hash", s.CreateKey(ctx, &guichet.Key{UserID: v.ID, Name: "x", Hash: h}))
	isNotFound(t, "CreateKey for a missing user", s.CreateKey(ctx, &guichet.Key{UserID: missingID, Name: "x", Hash: randomHash()}))

	keys, err := s.Keys(ctx, u.ID, guichet.Page{})
	must(t, err)
	same(t, "Keys(u)", keys, []*guichet.Key{k, sameName})
	keys, err = s.Keys(ctx, v.ID, guichet.Page{})
	must(t, err)
	same(t, "Keys(v)", keys, []*guichet.Key{vKey})
	keys, err = s.Keys(ctx, 0, guichet.Page{})
	must(t, err)
	same(t, "Keys(0)", keys, []*guichet.Key{k, sameName, vKey})
	keys, err = s.Keys(ctx, missingID, guichet.Page{})
	must(t, err)
	if len(keys) != 0 {
		t.Errorf("Keys(missing user): got %d keys, want none", len(keys))
	}

	_, err = s.Key(ctx, missingID)
	isNotFound(t, "Key(missing)", err)
	_, err = s.KeyByHash(ctx, randomHash())
	isNotFound(t, "KeyByHash(unknown)", err)
	isNotFound(t, "DeleteKey(missing)", s.DeleteKey(ctx, missingID))
	isNotFound(t, "UpdateKey(missing)", s.UpdateKey(ctx, &guichet.Key{ID: missingID, Name: "x"}))

	// UpdateKey changes the name and expiry, and nothing else.
	renamed := *k
	renamed.Name = "renamed"
	later := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Microsecond)
	renamed.Expires = &later
	renamed.Prefix, renamed.UserID = "sk-changed", v.ID // must not be written
	must(t, s.UpdateKey(ctx, &renamed))
	updated, err := s.Key(ctx, k.ID)
	must(t, err)
	want := *k
	want.Name, want.Expires = "renamed", &later
	same(t, "Key after UpdateKey", updated, &want)
	renamed.Expires = nil
	must(t, s.UpdateKey(ctx, &renamed))
	updated, err = s.KeyByHash(ctx, h)
	must(t, err)
	if updated.Expires != nil {
		t.Errorf("UpdateKey with no expiry kept %v", updated.Expires)
	}

	must(t, s.DeleteKey(ctx, k.ID))
	_, err = s.Key(ctx, k.ID)
	isNotFound(t, "Key after delete", err)
	_, err = s.KeyByHash(ctx, h)
	isNotFound(t, "KeyByHash after delete", err)
	isNotFound(t, "DeleteKey twice", s.DeleteKey(ctx, k.ID))
	keys, err = s.Keys(ctx, u.ID, guichet.Page{})
	must(t, err)
	same(t, "Keys(u) after delete", keys, []*guichet.Key{sameName})
}

// lister is one of the store's lists, reduced to what paging tests need.
type lister struct {
	name   string
	email  bool // may also be ordered by email
	create func(name, email string) int64
	touch  func(id int64) // updates the item; nil if items never change
	list   func(p guichet.Page) ([]int64, error)
}

func testOrganizationPages(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	testPaging(t, lister{
		name:   "Organizations",
		create: func(name, _ string) int64 { return mkOrg(t, s, name).ID },
		touch: func(id int64) {
			o, err := s.Organization(ctx, id)
			must(t, err)
			must(t, s.UpdateOrganization(ctx, o))
		},
		list: func(p guichet.Page) ([]int64, error) { return ids(s.Organizations(ctx, p)) },
	})
}

func testRolePages(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	testPaging(t, lister{
		name:   "Roles",
		create: func(name, _ string) int64 { return mkRole(t, s, name).ID },
		touch: func(id int64) {
			r, err := s.Role(ctx, id)
			must(t, err)
			must(t, s.UpdateRole(ctx, r))
		},
		list: func(p guichet.Page) ([]int64, error) { return ids(s.Roles(ctx, p)) },
	})
}

func testUserPages(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	role := mkRole(t, s, "user")
	testPaging(t, lister{
		name:  "Users",
		email: true,
		create: func(name, email string) int64 {
			u := &guichet.User{Email: email, Name: name, RoleID: role.ID}
			must(t, s.CreateUser(ctx, u))
			return u.ID
		},
		touch: func(id int64) {
			u, err := s.User(ctx, id)
			must(t, err)
			must(t, s.UpdateUser(ctx, u))
		},
		list: func(p guichet.Page) ([]int64, error) { return ids(s.Users(ctx, guichet.UserFilter{}, p)) },
	})
}

func testKeyPages(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	owner := mkUser(t, s, "owner@example.com", mkRole(t, s, "user").ID, 0)
	testPaging(t, lister{
		name: "Keys",
		create: func(name, _ string) int64 {
			k := &guichet.Key{UserID: owner.ID, Name: name, Hash: randomHash()}
			must(t, s.CreateKey(ctx, k))
			return k.ID
		},
		list: func(p guichet.Page) ([]int64, error) { return ids(s.Keys(ctx, owner.ID, p)) },
	})
}

// testPaging creates 101 items (one more than a page can hold) and reads
// them in pages and orders.
func testPaging(t *testing.T, l lister) {
	const n = 101
	type item struct {
		id          int64
		name, email string
	}
	// Names and emails in orders of their own, upper and lower case
	// mixed: ordering is bytewise ("B" < "a").
	rnd := rand.New(rand.NewPCG(1, 2))
	names, emails := rnd.Perm(n), rnd.Perm(n)
	items := make([]item, n)
	for i := range items {
		name := fmt.Sprintf("item %03d", names[i])
		if names[i]%3 == 0 {
			name = strings.ToUpper(name)
		}
		items[i].name, items[i].email = name, fmt.Sprintf("e%03d@example.com", emails[i])
		items[i].id = l.create(items[i].name, items[i].email)
	}

	idsOf := func(items []item) []int64 {
		var out []int64
		for _, it := range items {
			out = append(out, it.id)
		}
		return out
	}
	byID := idsOf(items) // also creation order
	reversed := slices.Clone(byID)
	slices.Reverse(reversed)
	sortedBy := func(key func(item) string) []int64 {
		s := slices.Clone(items)
		slices.SortStableFunc(s, func(a, b item) int { return strings.Compare(key(a), key(b)) })
		return idsOf(s)
	}

	check := func(p guichet.Page, want []int64) {
		t.Helper()
		got, err := l.list(p)
		if err != nil {
			t.Errorf("%s(%+v): %v", l.name, p, err)
			return
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s(%+v):\n got %v\nwant %v", l.name, p, got, want)
		}
	}
	check(guichet.Page{}, byID[:10]) // default limit 10
	check(guichet.Page{OrderBy: "id"}, byID[:10])
	check(guichet.Page{Offset: 10}, byID[10:20])
	check(guichet.Page{Offset: 2, Limit: 3}, byID[2:5])
	check(guichet.Page{Offset: 99, Limit: 5}, byID[99:])
	check(guichet.Page{Offset: n}, nil)
	check(guichet.Page{Limit: 1000}, byID[:100]) // capped at 100
	check(guichet.Page{Limit: 100, Offset: 1}, byID[1:])
	check(guichet.Page{Desc: true, Limit: 5}, reversed[:5])
	check(guichet.Page{OrderBy: "created", Limit: 100}, byID[:100])
	check(guichet.Page{OrderBy: "created", Desc: true, Limit: 100}, reversed[:100])

	byName := sortedBy(func(it item) string { return it.name })
	check(guichet.Page{OrderBy: "name", Limit: 100}, byName[:100])
	check(guichet.Page{OrderBy: "name", Offset: 100, Limit: 100}, byName[100:])
	slices.Reverse(byName)
	check(guichet.Page{OrderBy: "name", Desc: true, Limit: 7, Offset: 3}, byName[3:10])
	if l.email {
		byEmail := sortedBy(func(it item) string { return it.email })
		check(guichet.Page{OrderBy: "email", Limit: 100}, byEmail[:100])
	}

	if l.touch == nil {
		// Items that never change were last updated when created.
		check(guichet.Page{OrderBy: "updated", Limit: 100}, byID[:100])
	} else {
		time.Sleep(2 * time.Millisecond) // past every item's creation
		l.touch(byID[0])
		check(guichet.Page{OrderBy: "updated", Limit: 100}, byID[1:])
		check(guichet.Page{OrderBy: "updated", Offset: 100}, byID[:1])
		check(guichet.Page{OrderBy: "updated", Desc: true, Limit: 2}, []int64{byID[0], byID[n-1]})
	}

	for _, p := range []guichet.Page{
		{OrderBy: "nope"},
		{OrderBy: "id; DROP TABLE users"},
		{OrderBy: "name, id"},
		{Offset: -1},
		{Limit: -1},
	} {
		if _, err := l.list(p); err == nil {
			t.Errorf("%s(%+v): no error", l.name, p)
		}
	}
	check(guichet.Page{}, byID[:10]) // still there
}

// testTies checks that items equal in the order asked for come by id.
func testTies(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	role := mkRole(t, s, "r")
	var users, keys []int64
	owner := mkUser(t, s, "owner@example.com", mkRole(t, s, "owner").ID, 0)
	for i := range 5 {
		u := &guichet.User{Email: fmt.Sprintf("u%d@example.com", i), Name: "same", RoleID: role.ID}
		must(t, s.CreateUser(ctx, u))
		users = append(users, u.ID)
		keys = append(keys, mkKey(t, s, owner.ID, "same").ID)
	}
	got, err := ids(s.Users(ctx, guichet.UserFilter{RoleID: role.ID}, guichet.Page{OrderBy: "name", Limit: 5}))
	must(t, err)
	same(t, "Users by name, ties", got, users)
	got, err = ids(s.Keys(ctx, owner.ID, guichet.Page{OrderBy: "name"}))
	must(t, err)
	same(t, "Keys by name, ties", got, keys)
	slices.Reverse(keys)
	got, err = ids(s.Keys(ctx, owner.ID, guichet.Page{OrderBy: "name", Desc: true}))
	must(t, err)
	same(t, "Keys by name descending, ties", got, keys)
}

func testDeleteInUse(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	org := mkOrg(t, s, "acme")
	role := mkRole(t, s, "user")
	u := mkUser(t, s, "u@example.com", role.ID, org.ID)
	mkKey(t, s, u.ID, "k")

	isConflict(t, "DeleteOrganization with a user", s.DeleteOrganization(ctx, org.ID))
	isConflict(t, "DeleteRole with a user", s.DeleteRole(ctx, role.ID))
	_, err := s.Organization(ctx, org.ID)
	must(t, err)
	_, err = s.Role(ctx, role.ID)
	must(t, err)

	u.OrganizationID = 0
	must(t, s.UpdateUser(ctx, u))
	must(t, s.DeleteOrganization(ctx, org.ID))
	must(t, s.DeleteUser(ctx, u.ID)) // its key goes with it
	must(t, s.DeleteRole(ctx, role.ID))
}

func testIDsNotReused(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	a := mkOrg(t, s, "a")
	must(t, s.DeleteOrganization(ctx, a.ID))
	if b := mkOrg(t, s, "b"); b.ID <= a.ID {
		t.Errorf("organization id %d reused or lowered after deleting %d", b.ID, a.ID)
	}
	r := mkRole(t, s, "r")
	u := mkUser(t, s, "u@example.com", r.ID, 0)
	k := mkKey(t, s, u.ID, "k")
	must(t, s.DeleteUser(ctx, u.ID))
	u2 := mkUser(t, s, "u@example.com", r.ID, 0)
	if u2.ID <= u.ID {
		t.Errorf("user id %d reused or lowered after deleting %d", u2.ID, u.ID)
	}
	if k2 := mkKey(t, s, u2.ID, "k"); k2.ID <= k.ID {
		t.Errorf("key id %d reused or lowered after deleting %d", k2.ID, k.ID)
	}
}

func testSpend(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	role := mkRole(t, s, "user")
	org := &guichet.Organization{Name: "acme", Budget: amount(100)}
	must(t, s.CreateOrganization(ctx, org))
	u := &guichet.User{Email: "u@example.com", RoleID: role.ID, OrganizationID: org.ID, Budget: amount(60)}
	must(t, s.CreateUser(ctx, u))

	budgets := func(what string, user, organization int64) {
		t.Helper()
		same(t, "user budget "+what, userBudget(t, s, u.ID), amount(user))
		same(t, "organization budget "+what, orgBudget(t, s, org.ID), amount(organization))
	}
	must(t, s.Spend(ctx, u.ID, org.ID, 25))
	budgets("after spending 25", 35, 75)
	must(t, s.Spend(ctx, u.ID, org.ID, 0))
	budgets("after spending 0", 35, 75)
	must(t, s.Spend(ctx, u.ID, org.ID, 50))
	budgets("after spending 50 more", 0, 25) // never below zero
	must(t, s.Spend(ctx, u.ID, org.ID, 30))
	budgets("after spending 30 more", 0, 0)

	// Only budgets that exist move: the organization given, not the user's.
	unlimited := &guichet.User{Email: "rich@example.com", RoleID: role.ID}
	must(t, s.CreateUser(ctx, unlimited))
	limited := &guichet.Organization{Name: "limited", Budget: amount(10)}
	must(t, s.CreateOrganization(ctx, limited))
	open := &guichet.Organization{Name: "open"}
	must(t, s.CreateOrganization(ctx, open))
	capped := &guichet.User{Email: "capped@example.com", RoleID: role.ID, OrganizationID: open.ID, Budget: amount(10)}
	must(t, s.CreateUser(ctx, capped))
	v1 := version(t, s)
	must(t, s.Spend(ctx, unlimited.ID, limited.ID, 4))
	must(t, s.Spend(ctx, capped.ID, open.ID, 3))
	must(t, s.Spend(ctx, capped.ID, 0, 2))
	var unlimitedBudget *guichet.Amount
	same(t, "budget of an unlimited user", userBudget(t, s, unlimited.ID), unlimitedBudget)
	same(t, "budget of a limited organization", orgBudget(t, s, limited.ID), amount(6))
	same(t, "budget of an unlimited organization", orgBudget(t, s, open.ID), unlimitedBudget)
	same(t, "budget of a limited user", userBudget(t, s, capped.ID), amount(5))

	// Spending for someone gone (deleted while a request ran) is no error.
	must(t, s.Spend(ctx, missingID, missingID, 1))

	if v := version(t, s); v != v1 {
		t.Errorf("Spend advanced Version from %d to %d", v1, v)
	}
}

func testSpendConcurrent(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	role := mkRole(t, s, "user")
	org := &guichet.Organization{Name: "acme", Budget: amount(100)}
	must(t, s.CreateOrganization(ctx, org))
	var users [2]*guichet.User
	for i := range users {
		users[i] = &guichet.User{Email: fmt.Sprintf("u%d@example.com", i), RoleID: role.ID, OrganizationID: org.ID, Budget: amount(100)}
		must(t, s.CreateUser(ctx, users[i]))
	}
	// 50 spends of 1, half by each user, all on the organization.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			if err := s.Spend(ctx, users[i%2].ID, org.ID, 1); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Spend: %v", err)
	}
	same(t, "organization budget after 50 concurrent spends of 1 from 100", orgBudget(t, s, org.ID), amount(50))
	for _, u := range users {
		same(t, "user budget after 25 concurrent spends of 1 from 100", userBudget(t, s, u.ID), amount(75))
	}
}

func testVersion(t *testing.T, s guichet.IdentityStore) {
	ctx := t.Context()
	changes := func(what string, change func() error) {
		t.Helper()
		before := version(t, s)
		if err := change(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if after := version(t, s); after <= before {
			t.Errorf("%s did not advance Version (%d, then %d)", what, before, after)
		}
	}
	leaves := func(what string, op func() error) {
		t.Helper()
		before := version(t, s)
		op() // errors expected for some
		if after := version(t, s); after != before {
			t.Errorf("%s changed Version from %d to %d", what, before, after)
		}
	}

	org := &guichet.Organization{Name: "acme", Budget: amount(10)}
	role := &guichet.Role{Name: "user", Limits: []guichet.Limit{{Model: "*", Type: guichet.Concurrent}}}
	u := &guichet.User{Email: "u@example.com", Budget: amount(10)}
	k := &guichet.Key{Name: "k", Hash: randomHash()}
	changes("CreateOrganization", func() error { return s.CreateOrganization(ctx, org) })
	changes("UpdateOrganization", func() error { org.Budget = amount(20); return s.UpdateOrganization(ctx, org) })
	changes("CreateRole", func() error { return s.CreateRole(ctx, role) })
	changes("UpdateRole", func() error {
		role.Permissions = []guichet.Permission{guichet.PermAdmin}
		return s.UpdateRole(ctx, role)
	})
	changes("CreateUser", func() error {
		u.RoleID, u.OrganizationID = role.ID, org.ID
		return s.CreateUser(ctx, u)
	})
	changes("UpdateUser", func() error { u.Priority = 3; return s.UpdateUser(ctx, u) })
	changes("CreateKey", func() error { k.UserID = u.ID; return s.CreateKey(ctx, k) })

	p := guichet.Page{}
	leaves("reads", func() error {
		s.Organization(ctx, org.ID)
		s.Organizations(ctx, p)
		s.Role(ctx, role.ID)
		s.RoleByName(ctx, role.Name)
		s.Roles(ctx, p)
		s.User(ctx, u.ID)
		s.UserByEmail(ctx, u.Email)
		s.Users(ctx, guichet.UserFilter{}, p)
		s.CountUsers(ctx, guichet.UserFilter{})
		s.Key(ctx, k.ID)
		s.KeyByHash(ctx, k.Hash)
		s.Keys(ctx, 0, p)
		return nil
	})
	leaves("Spend", func() error { return s.Spend(ctx, u.ID, org.ID, 1) })
	leaves("CreateOrganization with a taken name", func() error { return s.CreateOrganization(ctx, &guichet.Organization{Name: "acme"}) })
	leaves("UpdateOrganization(missing)", func() error {
		return s.UpdateOrganization(ctx, &guichet.Organization{ID: missingID, Name: "x"})
	})
	leaves("CreateRole with duplicate limits", func() error {
		l := guichet.Limit{Model: "m", Type: guichet.RequestsPerDay}
		return s.CreateRole(ctx, &guichet.Role{Name: "dup", Limits: []guichet.Limit{l, l}})
	})
	leaves("CreateUser with a missing role", func() error {
		return s.CreateUser(ctx, &guichet.User{Email: "x@example.com", RoleID: missingID})
	})
	leaves("DeleteRole in use", func() error { return s.DeleteRole(ctx, role.ID) })
	leaves("DeleteOrganization in use", func() error { return s.DeleteOrganization(ctx, org.ID) })
	leaves("DeleteKey(missing)", func() error { return s.DeleteKey(ctx, missingID) })
	leaves("DeleteUser(missing)", func() error { return s.DeleteUser(ctx, missingID) })

	leaves("UpdateKey(missing)", func() error { return s.UpdateKey(ctx, &guichet.Key{ID: missingID, Name: "x"}) })
	changes("UpdateKey", func() error { return s.UpdateKey(ctx, &guichet.Key{ID: k.ID, Name: "renamed"}) })
	changes("DeleteKey", func() error { return s.DeleteKey(ctx, k.ID) })
	changes("DeleteUser", func() error { return s.DeleteUser(ctx, u.ID) })
	changes("DeleteRole", func() error { return s.DeleteRole(ctx, role.ID) })
	changes("DeleteOrganization", func() error { return s.DeleteOrganization(ctx, org.ID) })
}

// Helpers

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func isNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, guichet.ErrNotFound) {
		t.Errorf("%s: got error %v, want ErrNotFound", what, err)
	}
}

func isConflict(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, guichet.ErrConflict) {
		t.Errorf("%s: got error %v, want ErrConflict", what, err)
	}
}

// same compares values deeply; stores return times in UTC, which
// compare deeply when their instants are equal.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, dump(got), dump(want))
	}
}

// sameRole compares roles, an empty list of permissions or limits
// being the same as none.
func sameRole(t *testing.T, what string, got, want *guichet.Role) {
	t.Helper()
	norm := func(r *guichet.Role) *guichet.Role {
		if r == nil {
			return nil
		}
		c := *r
		if len(c.Permissions) == 0 {
			c.Permissions = nil
		}
		if len(c.Limits) == 0 {
			c.Limits = nil
		}
		return &c
	}
	same(t, what, norm(got), norm(want))
}

func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// checkCreated checks what a Create method sets.
func checkCreated(t *testing.T, what string, id int64, created, updated, before time.Time) {
	t.Helper()
	if id <= 0 {
		t.Errorf("create %s: ID %d, want > 0", what, id)
	}
	checkTime(t, what+" Created", created, before)
	if !updated.Equal(created) {
		t.Errorf("create %s: Updated %v, want Created %v", what, updated, created)
	}
}

// clockSkew is how far a store's clock (maybe the database server's) may
// be from the test's.
const clockSkew = time.Minute

// checkTime checks a time the store set from its clock since before: in
// UTC, to the microsecond.
func checkTime(t *testing.T, what string, got, before time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("%s: %v not in UTC", what, got)
	}
	if got.Nanosecond()%1000 != 0 {
		t.Errorf("%s: %v finer than a microsecond (not what the database keeps)", what, got)
	}
	if got.Before(before.Add(-clockSkew)) || got.After(time.Now().Add(clockSkew)) {
		t.Errorf("%s: %v not between %v and now", what, got, before)
	}
}

func version(t *testing.T, s guichet.IdentityStore) int64 {
	t.Helper()
	v, err := s.Version(t.Context())
	must(t, err)
	return v
}

func mkOrg(t *testing.T, s guichet.IdentityStore, name string) *guichet.Organization {
	t.Helper()
	o := &guichet.Organization{Name: name}
	must(t, s.CreateOrganization(t.Context(), o))
	return o
}

func mkRole(t *testing.T, s guichet.IdentityStore, name string) *guichet.Role {
	t.Helper()
	r := &guichet.Role{Name: name}
	must(t, s.CreateRole(t.Context(), r))
	return r
}

func mkUser(t *testing.T, s guichet.IdentityStore, email string, roleID, orgID int64) *guichet.User {
	t.Helper()
	u := &guichet.User{Email: email, Name: email, RoleID: roleID, OrganizationID: orgID}
	must(t, s.CreateUser(t.Context(), u))
	return u
}

func mkKey(t *testing.T, s guichet.IdentityStore, userID int64, name string) *guichet.Key {
	t.Helper()
	k := &guichet.Key{UserID: userID, Name: name, Prefix: "sk-" + name, Hash: randomHash()}
	must(t, s.CreateKey(t.Context(), k))
	return k
}

func randomHash() guichet.KeyHash {
	var h guichet.KeyHash
	for i := range h {
		h[i] = byte(rand.Uint32())
	}
	return h
}

func amount(a int64) *guichet.Amount { v := guichet.Amount(a); return &v }

func int64p(v int64) *int64 { return &v }

func userBudget(t *testing.T, s guichet.IdentityStore, id int64) *guichet.Amount {
	t.Helper()
	u, err := s.User(t.Context(), id)
	must(t, err)
	return u.Budget
}

func orgBudget(t *testing.T, s guichet.IdentityStore, id int64) *guichet.Amount {
	t.Helper()
	o, err := s.Organization(t.Context(), id)
	must(t, err)
	return o.Budget
}

// ids returns the ids of a list.
func ids[T any](list []T, err error) ([]int64, error) {
	if err != nil {
		return nil, err
	}
	out := []int64{}
	for _, v := range list {
		out = append(out, reflect.ValueOf(v).Elem().FieldByName("ID").Int())
	}
	return out, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
