package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/identity"
)

const adminUsage = `usage: guichet admin [--config FILE] [--data DIR] COMMAND

Works on the configured store directly (SQLite in the data dir, or
PostgreSQL in cluster mode); a running guichet sees changes within a second.

Commands:
  init [--email ADDRESS]
        create the admin role, an admin user and its API key (shown once)
  role create NAME [--permission P]... [--limit MODEL:TYPE=VALUE]...
        TYPE is rpm, rpd, tpm, tpd or concurrent; MODEL a model name or *;
        VALUE a number, 0 (forbidden) or null (unlimited)
  roles
  org create NAME [--budget AMOUNT]
  orgs
  user create EMAIL --role NAME [--name N] [--org NAME] [--budget AMOUNT]
                    [--expires YYYY-MM-DD] [--priority N]
  users
  key create EMAIL [--name NAME] [--expires YYYY-MM-DD]
        create an API key for a user (shown once)
  key revoke ID
  keys [EMAIL]
`

// admin runs the operator's commands against the store, no server needed.
func admin(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, adminUsage) }
	configPath := fs.String("config", "", "configuration file (default: the bundled example)")
	dataDir := fs.String("data", "", "data directory (default ./data, env GUICHET_DATA)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "guichet: configuration %s is not valid:\n%v\n", *configPath, err)
		return 1
	}
	cfg.Server.DataDir = firstSet(*dataDir, os.Getenv("GUICHET_DATA"), cfg.Server.DataDir)
	if err := os.MkdirAll(cfg.Server.DataDir, 0o750); err != nil {
		fmt.Fprintln(os.Stderr, "guichet: data directory:", err)
		return 1
	}
	ctx := context.Background()
	st, err := openState(ctx, cfg, false, nil) // the store is all the CLI needs
	if err != nil {
		fmt.Fprintln(os.Stderr, "guichet:", err)
		return 1
	}
	defer st.Close()
	a := &adminCmd{store: st.store, cfg: cfg, out: out}
	if err := a.run(ctx, fs.Args()); err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(os.Stderr, "guichet admin: %v\n\n%s", err, adminUsage)
			return 2
		}
		fmt.Fprintln(os.Stderr, "guichet admin:", err)
		return 1
	}
	return 0
}

// conflict says what a store conflict means to the operator.
func conflict(err error, format string, args ...any) error {
	if errors.Is(err, guichet.ErrConflict) {
		return fmt.Errorf(format, args...)
	}
	return err
}

type usageError string

func (u usageError) Error() string { return string(u) }

type adminCmd struct {
	store guichet.IdentityStore
	cfg   *config.Config
	out   io.Writer
}

func (a *adminCmd) run(ctx context.Context, args []string) error {
	cmd := strings.Join(args[:min(2, len(args))], " ")
	switch {
	case args[0] == "init":
		return a.init(ctx, args[1:])
	case cmd == "role create":
		return a.createRole(ctx, args[2:])
	case args[0] == "roles":
		return a.listRoles(ctx)
	case cmd == "org create":
		return a.createOrg(ctx, args[2:])
	case args[0] == "orgs":
		return a.listOrgs(ctx)
	case cmd == "user create":
		return a.createUser(ctx, args[2:])
	case args[0] == "users":
		return a.listUsers(ctx)
	case cmd == "key create":
		return a.createKey(ctx, args[2:])
	case cmd == "key revoke":
		return a.revokeKey(ctx, args[2:])
	case args[0] == "keys":
		return a.listKeys(ctx, args[1:])
	}
	return usageError(fmt.Sprintf("unknown command %q", strings.Join(args, " ")))
}

// init makes a fresh deployment usable: an admin role with every
// permission and every model, an admin user, and its key.
func (a *adminCmd) init(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	email := fs.String("email", "admin@localhost", "the admin user's email")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	role, err := a.store.RoleByName(ctx, "admin")
	if errors.Is(err, guichet.ErrNotFound) {
		role = &guichet.Role{Name: "admin", Permissions: guichet.Permissions,
			Limits: []guichet.Limit{{Model: guichet.AllModels, Type: guichet.RequestsPerMinute}}}
		if err = a.store.CreateRole(ctx, role); err == nil {
			fmt.Fprintf(a.out, "created role admin (id %d): every permission, every model, no limit\n", role.ID)
		}
	}
	if err != nil {
		return err
	}
	u, err := a.store.UserByEmail(ctx, *email)
	if errors.Is(err, guichet.ErrNotFound) {
		u = &guichet.User{Email: strings.ToLower(*email), Name: "admin", RoleID: role.ID}
		if err = a.store.CreateUser(ctx, u); err == nil {
			fmt.Fprintf(a.out, "created user %s (id %d)\n", u.Email, u.ID)
		}
	}
	if err != nil {
		return err
	}
	return a.issueKey(ctx, u, "admin (guichet admin init)", nil)
}

func (a *adminCmd) issueKey(ctx context.Context, u *guichet.User, name string, expires *time.Time) error {
	if days := a.cfg.Limits.MaxKeyDays; days > 0 {
		limit := time.Now().Add(time.Duration(days) * 24 * time.Hour)
		if expires == nil || expires.After(limit) {
			expires = &limit
		}
	}
	secret, prefix, hash := identity.NewKey()
	k := &guichet.Key{UserID: u.ID, Name: name, Prefix: prefix, Hash: hash, Expires: expires}
	if err := a.store.CreateKey(ctx, k); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "API key %d for %s (shown once, store it now):\n%s\n", k.ID, u.Email, secret)
	return nil
}

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func (a *adminCmd) createRole(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError("role create needs a NAME")
	}
	fs := flag.NewFlagSet("role create", flag.ContinueOnError)
	var perms, limits repeated
	fs.Var(&perms, "permission", "a permission (repeatable)")
	fs.Var(&limits, "limit", "MODEL:TYPE=VALUE (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError(err.Error())
	}
	role := &guichet.Role{Name: args[0]}
	for _, p := range perms {
		if !guichet.Permission(p).Valid() {
			return usageError(fmt.Sprintf("--permission %q: want admin, create_public_collection, read_metric or provide_models", p))
		}
		role.Permissions = append(role.Permissions, guichet.Permission(p))
	}
	for _, l := range limits {
		lim, err := a.parseLimit(l)
		if err != nil {
			return err
		}
		role.Limits = append(role.Limits, lim)
	}
	if err := a.store.CreateRole(ctx, role); err != nil {
		return conflict(err, "a role named %q already exists, or a model has two limits of one type", role.Name)
	}
	fmt.Fprintf(a.out, "created role %s (id %d)\n", role.Name, role.ID)
	return nil
}

func (a *adminCmd) parseLimit(s string) (guichet.Limit, error) {
	model, rest, ok1 := strings.Cut(s, ":")
	typ, value, ok2 := strings.Cut(rest, "=")
	if !ok1 || !ok2 {
		return guichet.Limit{}, usageError(fmt.Sprintf("--limit %q: want MODEL:TYPE=VALUE, such as '*:rpm=60'", s))
	}
	l := guichet.Limit{Model: model, Type: guichet.LimitType(typ)}
	if model != guichet.AllModels && a.cfg.Model(model) == nil {
		return l, usageError(fmt.Sprintf("--limit %q: no model is named %q in the configuration", s, model))
	}
	if !l.Type.Valid() {
		return l, usageError(fmt.Sprintf("--limit %q: the type must be rpm, rpd, tpm, tpd or concurrent", s))
	}
	if value != "null" {
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < 0 {
			return l, usageError(fmt.Sprintf("--limit %q: the value must be a number ≥ 0 or null", s))
		}
		l.Value = &n
	}
	return l, nil
}

func (a *adminCmd) listRoles(ctx context.Context) error {
	roles, err := a.store.Roles(ctx, guichet.Page{Limit: 100})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tPERMISSIONS\tLIMITS")
	for _, r := range roles {
		var ls []string
		for _, l := range r.Limits {
			v := "null"
			if l.Value != nil {
				v = strconv.FormatInt(*l.Value, 10)
			}
			ls = append(ls, fmt.Sprintf("%s:%s=%s", l.Model, l.Type, v))
		}
		perms := make([]string, len(r.Permissions))
		for i, p := range r.Permissions {
			perms[i] = string(p)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", r.ID, r.Name, strings.Join(perms, ","), strings.Join(ls, " "))
	}
	return w.Flush()
}

func parseBudget(s string) (*guichet.Amount, error) {
	if s == "" || s == "null" || s == "unlimited" {
		return nil, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return nil, usageError(fmt.Sprintf("--budget %q: want an amount ≥ 0, or unlimited", s))
	}
	b := guichet.AmountOf(f)
	return &b, nil
}

func parseDate(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			return nil, usageError(fmt.Sprintf("--expires %q: want YYYY-MM-DD or an RFC 3339 time", s))
		}
	}
	if !t.After(time.Now()) {
		return nil, usageError(fmt.Sprintf("--expires %q is in the past", s))
	}
	return &t, nil
}

func (a *adminCmd) createOrg(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError("org create needs a NAME")
	}
	fs := flag.NewFlagSet("org create", flag.ContinueOnError)
	budget := fs.String("budget", "", "remaining budget (default unlimited)")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError(err.Error())
	}
	b, err := parseBudget(*budget)
	if err != nil {
		return err
	}
	o := &guichet.Organization{Name: args[0], Budget: b}
	if err := a.store.CreateOrganization(ctx, o); err != nil {
		return conflict(err, "an organization named %q already exists", o.Name)
	}
	fmt.Fprintf(a.out, "created organization %s (id %d)\n", o.Name, o.ID)
	return nil
}

func (a *adminCmd) listOrgs(ctx context.Context) error {
	orgs, err := a.store.Organizations(ctx, guichet.Page{Limit: 100})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tBUDGET")
	for _, o := range orgs {
		fmt.Fprintf(w, "%d\t%s\t%s\n", o.ID, o.Name, budgetString(o.Budget))
	}
	return w.Flush()
}

func budgetString(b *guichet.Amount) string {
	if b == nil {
		return "unlimited"
	}
	return b.String()
}

func (a *adminCmd) createUser(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError("user create needs an EMAIL")
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	roleName := fs.String("role", "", "role name (required)")
	name := fs.String("name", "", "display name (default: the email)")
	orgName := fs.String("org", "", "organization name")
	budget := fs.String("budget", "", "remaining budget (default unlimited)")
	expires := fs.String("expires", "", "expiry date, YYYY-MM-DD")
	priority := fs.Int("priority", 0, "scheduling priority, 0 to 100")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError(err.Error())
	}
	if *roleName == "" {
		return usageError("user create needs --role")
	}
	role, err := a.store.RoleByName(ctx, *roleName)
	if err != nil {
		return err
	}
	u := &guichet.User{Email: strings.ToLower(args[0]), Name: firstSet(*name, args[0]), RoleID: role.ID, Priority: *priority}
	if !strings.Contains(u.Email, "@") {
		return usageError(fmt.Sprintf("%q is not an email address", args[0]))
	}
	if *orgName != "" {
		o, err := a.orgByName(ctx, *orgName)
		if err != nil {
			return err
		}
		u.OrganizationID = o.ID
	}
	if u.Budget, err = parseBudget(*budget); err != nil {
		return err
	}
	if u.Expires, err = parseDate(*expires); err != nil {
		return err
	}
	if err := a.store.CreateUser(ctx, u); err != nil {
		return conflict(err, "a user with email %q already exists", u.Email)
	}
	fmt.Fprintf(a.out, "created user %s (id %d)\n", u.Email, u.ID)
	return nil
}

func (a *adminCmd) orgByName(ctx context.Context, name string) (*guichet.Organization, error) {
	for offset := 0; ; offset += 100 {
		orgs, err := a.store.Organizations(ctx, guichet.Page{Offset: offset, Limit: 100})
		if err != nil {
			return nil, err
		}
		for _, o := range orgs {
			if o.Name == name {
				return o, nil
			}
		}
		if len(orgs) < 100 {
			return nil, fmt.Errorf("organization %q: %w", name, guichet.ErrNotFound)
		}
	}
}

func (a *adminCmd) listUsers(ctx context.Context) error {
	w := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tEMAIL\tNAME\tROLE\tORGANIZATION\tBUDGET\tEXPIRES")
	for offset := 0; ; offset += 100 {
		users, err := a.store.Users(ctx, guichet.UserFilter{}, guichet.Page{Offset: offset, Limit: 100})
		if err != nil {
			return err
		}
		for _, u := range users {
			exp := "never"
			if u.Expires != nil {
				exp = u.Expires.Format(time.DateOnly)
			}
			org := "-"
			if u.OrganizationID != 0 {
				org = strconv.FormatInt(u.OrganizationID, 10)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", u.ID, u.Email, u.Name, u.RoleID, org, budgetString(u.Budget), exp)
		}
		if len(users) < 100 {
			return w.Flush()
		}
	}
}

func (a *adminCmd) createKey(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError("key create needs the user's EMAIL")
	}
	fs := flag.NewFlagSet("key create", flag.ContinueOnError)
	name := fs.String("name", "cli", "key name")
	expires := fs.String("expires", "", "expiry date, YYYY-MM-DD")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError(err.Error())
	}
	u, err := a.store.UserByEmail(ctx, args[0])
	if err != nil {
		return err
	}
	exp, err := parseDate(*expires)
	if err != nil {
		return err
	}
	return a.issueKey(ctx, u, *name, exp)
}

func (a *adminCmd) revokeKey(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return usageError("key revoke needs the key's ID (see guichet admin keys)")
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return usageError(fmt.Sprintf("%q is not a key id", args[0]))
	}
	if err := a.store.DeleteKey(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "revoked key %d (running servers stop accepting it within a second)\n", id)
	return nil
}

func (a *adminCmd) listKeys(ctx context.Context, args []string) error {
	var userID int64
	if len(args) > 0 {
		u, err := a.store.UserByEmail(ctx, args[0])
		if err != nil {
			return err
		}
		userID = u.ID
	}
	w := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tUSER\tNAME\tKEY\tEXPIRES")
	for offset := 0; ; offset += 100 {
		keys, err := a.store.Keys(ctx, userID, guichet.Page{Offset: offset, Limit: 100})
		if err != nil {
			return err
		}
		for _, k := range keys {
			exp := "never"
			if k.Expires != nil {
				exp = k.Expires.Format(time.DateOnly)
			}
			fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\n", k.ID, k.UserID, k.Name, identity.Masked(k.Prefix), exp)
		}
		if len(keys) < 100 {
			return w.Flush()
		}
	}
}
