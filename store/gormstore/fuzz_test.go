package gormstore_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	pgstore "github.com/scimd/scimd/store/postgres"
	"github.com/scimd/scimd/store/sqlite"
	"github.com/scimd/scimd/store/storetest"
)

// fuzzMaxFilter is the filter length the fuzz targets accept (the server's default
// limit is of the same order), so that one input cannot take the loop's time.
const fuzzMaxFilter = 4096

// FuzzCompileFilter: for any string, parsing and compiling never panic, and a
// filter that compiles yields SQL built only from the compiler's own vocabulary
// (keywords, columns, registry names inside JSON paths) with one placeholder per
// bound parameter, so no byte of a compare value can reach the SQL text.
func FuzzCompileFilter(f *testing.F) {
	dialects := []gormstore.Dialect{sqlite.Dialect{}, pgstore.Dialect{}}
	names := registryNames()
	f.Fuzz(func(t *testing.T, raw string) {
		e, err := scim.ParseFilter(raw, fuzzMaxFilter)
		if err != nil {
			if se := scim.AsError(err); se.Kind != scim.KindInvalidFilter {
				t.Fatalf("ParseFilter(%q): error of kind %d, want invalidFilter: %v", raw, se.Kind, err)
			}
			return
		}
		for _, d := range dialects {
			for _, kind := range []store.Kind{store.KindUser, store.KindGroup} {
				sql, args, err := gormstore.CompileFilter(d, kind, e)
				if err != nil {
					if !errors.Is(err, store.ErrInvalidFilter) {
						t.Fatalf("%s %s: compiling %q: %v is not an invalid-filter error", d.Name(), kind, raw, err)
					}
					continue
				}
				if msg := checkSQL(sql, len(args), names); msg != "" {
					t.Fatalf("%s %s: filter %q compiles to SQL that %s:\n%s\nargs %#v", d.Name(), kind, raw, msg, sql, args)
				}
			}
		}
	})
}

// sqlWords is every word the compiler and the dialects write: keywords, functions,
// table aliases and columns. A word outside it came from somewhere else.
var sqlWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`AND OR NOT COALESCE FALSE TRUE IS NULL EXISTS SELECT FROM WHERE AS JOIN ON
		LIKE GLOB ESCAPE COLLATE WITH ORDINALITY numeric
		json_extract json_each jsonb_array_elements scimd_lower lower
		t m g e v n id group_members tenant_id group_id member_id member_type data external_id created last_modified active
		user_name_lower display_name_lower value key`) {
		sqlWords[w] = true
	}
}

// sqlToken splits SQL into quoted literals, quoted identifiers, words, numbers,
// placeholders and operators; anything else is one unexpected byte.
var sqlToken = regexp.MustCompile(`^(?:'(?:[^']|'')*'|"[^"]*"|[A-Za-z_][A-Za-z0-9_]*|[0-9]+|\?|<>|<=|>=|#>>|#>|::|[=<>(),.]|\s+)`)

// checkSQL returns why sql is not made of the compiler's vocabulary, or "".
func checkSQL(sql string, nargs int, names map[string]bool) string {
	placeholders := 0
	for rest := sql; rest != ""; {
		tok := sqlToken.FindString(rest)
		if tok == "" {
			return fmt.Sprintf("holds the unexpected byte %q at %q", rest[0], rest)
		}
		rest = rest[len(tok):]
		switch {
		case tok == "?":
			placeholders++
		case tok[0] == '\'':
			if !allowedLiteral(tok, names) {
				return "holds the literal " + tok + ", which is no registry path"
			}
		case tok[0] == '"':
			if tok != `"groups"` && tok != `"C"` {
				return "holds the quoted identifier " + tok
			}
		case tok[0] >= '0' && tok[0] <= '9':
			if tok != "1" {
				return "holds the number " + tok
			}
		case isWord(tok[0]):
			if !sqlWords[tok] {
				return "holds the word " + tok
			}
		}
	}
	if placeholders != nargs {
		return fmt.Sprintf("has %d placeholders for %d parameters", placeholders, nargs)
	}
	return ""
}

func isWord(b byte) bool { return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

var (
	sqlitePath   = regexp.MustCompile(`^'\$(?:\."[^"]*")+'$`)
	postgresPath = regexp.MustCompile(`^'\{"[^"]*"(?:,"[^"]*")*\}'$`)
	pathKey      = regexp.MustCompile(`"([^"]*)"`)
)

// allowedLiteral reports whether a quoted SQL literal is one the compiler writes:
// a resource type, the LIKE escape, or a JSON path of registry names.
func allowedLiteral(lit string, names map[string]bool) bool {
	switch lit {
	case "''", "'User'", "'Group'", `'\'`:
		return true
	}
	if !sqlitePath.MatchString(lit) && !postgresPath.MatchString(lit) {
		return false
	}
	for _, m := range pathKey.FindAllStringSubmatch(lit, -1) {
		if !names[m[1]] {
			return false
		}
	}
	return true
}

// registryNames is every schema URN, attribute and sub-attribute name of the
// registry, as the registry spells them.
func registryNames() map[string]bool {
	names := map[string]bool{}
	var walk func(attrs []*schemas.Attribute)
	walk = func(attrs []*schemas.Attribute) {
		for _, a := range attrs {
			names[a.Name] = true
			walk(a.SubAttributes)
		}
	}
	for _, rt := range []*schemas.ResourceType{schemas.User(), schemas.Group()} {
		names[rt.Schema.ID] = true
		walk(rt.Attributes)
		for _, e := range rt.Extensions {
			names[e.Schema.ID] = true
			walk(e.Attributes)
		}
	}
	return names
}

// agreeData is the small fixed data set FuzzFilterAgrees compares on: created once
// per fuzzing process.
type agreeData struct {
	svc    *scim.Service
	tenant string
	all    map[scim.ResourceKind][]*scim.Resource
}

var (
	agreeOnce sync.Once
	agree     *agreeData
	agreeErr  error
)

// FuzzFilterAgrees: on a few fixed Users and Groups, the SQLite store and the
// in-memory reference (the filter parser and scim.Resource.Matches) agree on every
// filter: what the reference refuses, the store refuses too, as 400 invalidFilter
// (RFC 7644 §3.4.2.2, §3.12); what the store accepts selects exactly the resources
// the reference selects; and what the store refuses is invalidFilter, never an
// internal error. The store may refuse a filter the reference evaluates without
// error: the reference looks at the values a resource has, so a bad comparison on an
// attribute no resource here has a value for goes unnoticed by it, where the compiler
// refuses it for every resource.
func FuzzFilterAgrees(f *testing.F) {
	agreeOnce.Do(func() { agree, agreeErr = newAgreeData(f) })
	if agreeErr != nil {
		f.Fatal(agreeErr)
	}
	d := agree
	ctx := context.Background()
	count := 100
	f.Fuzz(func(t *testing.T, raw string) {
		if raw == "" {
			return // no filter at all: a list of everything
		}
		// The reference reads the filter as a list does (the client form with a
		// sub-attribute after [...] included; a nil ledger accepts it).
		e, perr := scim.ParseClientFilter(raw, fuzzMaxFilter, nil)
		for _, kind := range []scim.ResourceKind{scim.UserKind, scim.GroupKind} {
			page, err := d.svc.List(ctx, d.tenant, kind, scim.ListQuery{Filter: raw, Count: &count})
			var refErr error
			var want []string
			if refErr = perr; refErr == nil {
				for _, r := range d.all[kind] {
					ok, err := r.Matches(e)
					if err != nil {
						refErr = err
						break
					}
					if ok {
						want = append(want, r.ID)
					}
				}
			}
			if refErr != nil {
				if rk := scim.AsError(refErr).Kind; rk != scim.KindInvalidFilter {
					t.Fatalf("%s filter %q: the reference refuses it with kind %d, want invalidFilter: %v", kind, raw, rk, refErr)
				}
				if err == nil {
					t.Fatalf("%s filter %q: the reference refuses it (%v) but the store selects %d resources", kind, raw, refErr, len(page.Resources))
				}
			}
			if err != nil {
				if se := scim.AsError(err); se.Kind != scim.KindInvalidFilter {
					t.Fatalf("%s filter %q: the store answers %v (kind %d), want 400 invalidFilter", kind, raw, err, se.Kind)
				}
				continue
			}
			var got []string
			for _, r := range page.Resources {
				got = append(got, r.ID)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(want, got) {
				t.Fatalf("%s filter %q: SQL selects %v, Resource.Matches %v", kind, raw, got, want)
			}
		}
	})
}

func newAgreeData(f *testing.F) (*agreeData, error) {
	ctx := context.Background()
	st := storetest.OpenSQLite(f)
	tn, err := scim.NewTokens(st).CreateTenant(ctx, "fuzz")
	if err != nil {
		return nil, err
	}
	l := scim.DefaultLimits()
	l.BcryptCost = 4
	svc := scim.NewService(st, zap.NewNop(), scim.WithLimits(l))
	d := &agreeData{svc: svc, tenant: tn.ID, all: map[scim.ResourceKind][]*scim.Resource{}}
	ent := schemas.EnterpriseUserURN
	users := []map[string]any{
		{"userName": "bjensen", "name": map[string]any{"givenName": "Barbara", "familyName": "Jensen"}, "active": true,
			"title": "Engineer", "emails": []any{map[string]any{"value": "bjensen@example.com", "type": "work", "primary": true}},
			ent: map[string]any{"department": "Sales", "employeeNumber": "701984"}},
		{"userName": "Ärger_100%", "displayName": `Say "Hi"`, "active": false, "externalId": `back\slash`,
			"emails": []any{map[string]any{"value": "a%b@Example.ORG", "type": "home"}, map[string]any{"value": "x_y@ex.io", "type": "work"}}},
		{"userName": "straße*?[x]", "name": map[string]any{"givenName": "İlkay", "familyName": ""}, "title": "",
			"phoneNumbers": []any{map[string]any{"value": "+1 555 0100", "type": "mobile"}}},
		{"userName": "o'brien", "nickName": "Zoë", "userType": "Contractor", ent: map[string]any{"manager": map[string]any{"value": "x"}}},
	}
	for _, body := range users {
		body["schemas"] = []any{schemas.UserURN, ent}
		if _, err := svc.Create(ctx, tn.ID, scim.UserKind, body, scim.Projection{}); err != nil {
			return nil, fmt.Errorf("create user %v: %w", body, err)
		}
	}
	for _, body := range []map[string]any{
		{"displayName": "Admins", "externalId": "G-1"},
		{"displayName": "100% [Club]"},
	} {
		body["schemas"] = []any{schemas.GroupURN}
		if _, err := svc.Create(ctx, tn.ID, scim.GroupKind, body, scim.Projection{}); err != nil {
			return nil, fmt.Errorf("create group %v: %w", body, err)
		}
	}
	count := 100
	for _, kind := range []scim.ResourceKind{scim.UserKind, scim.GroupKind} {
		page, err := svc.List(ctx, tn.ID, kind, scim.ListQuery{Count: &count})
		if err != nil {
			return nil, err
		}
		d.all[kind] = page.Resources
	}
	// Members: the first user in the first group, the first group in the second.
	u, g := d.all[scim.UserKind][0], d.all[scim.GroupKind]
	for i, member := range []string{u.ID, g[0].ID} {
		ops, err := scim.ParsePatch(map[string]any{"schemas": []any{schemas.PatchOpURN},
			"Operations": []any{map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": member}}}}}, 0, nil)
		if err != nil {
			return nil, err
		}
		if _, err := svc.Patch(ctx, tn.ID, scim.GroupKind, g[i].ID, ops, "", scim.Projection{}); err != nil {
			return nil, err
		}
	}
	for _, kind := range []scim.ResourceKind{scim.UserKind, scim.GroupKind} {
		page, err := svc.List(ctx, tn.ID, kind, scim.ListQuery{Count: &count})
		if err != nil {
			return nil, err
		}
		d.all[kind] = page.Resources
	}
	return d, nil
}
