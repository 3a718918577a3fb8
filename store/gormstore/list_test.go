package gormstore_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/scim2/filter-parser/v2"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/storetest"
)

// people is a small tenant whose users differ in every attribute the filter and
// sort tests compare: strings in columns and in the document (case-insensitive and
// caseExact), integers in an extension, booleans, multi-valued emails with and
// without a primary value, and absent values.
type people struct {
	st     *gormstore.Store
	tenant string
	// ann, bob, cal, dee in creation order.
	ann, bob, cal, dee string
	names              map[string]string // id → name, for messages
}

func newPeople(t *testing.T, st *gormstore.Store) *people {
	t.Helper()
	ctx := context.Background()
	tn, err := st.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// Another tenant's look-alike, which no list of acme may return.
	other, err := st.CreateTenant(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	p := &people{st: st, tenant: tn.ID, names: map[string]string{}}
	mk := func(tenantID, userName string, ext, display *string, active *bool, doc string) string {
		t.Helper()
		r := &store.Resource{TenantID: tenantID, Kind: store.KindUser, UserName: userName, ExternalID: ext,
			DisplayName: display, Active: active, Doc: []byte(doc)}
		if err := st.Create(ctx, r); err != nil {
			t.Fatalf("create %s: %v", userName, err)
		}
		p.names[r.ID] = userName
		return r.ID
	}
	scimd, ent := schemas.ScimdUserURN, schemas.EnterpriseUserURN
	annDoc := `{"userName":"Ann","displayName":"zed","nickName":"Annie","title":"Chief Engineer","externalId":"EXT-1",
		"emails":[{"value":"b@x.com","type":"work","primary":false},{"value":"a@x.com","type":"home","primary":true}],
		"` + scimd + `":{"credits":5,"emailVerified":true},"` + ent + `":{"employeeNumber":"10"}}`
	p.ann = mk(tn.ID, "Ann", ptr("EXT-1"), ptr("zed"), ptr(true), annDoc)
	p.bob = mk(tn.ID, "bob", ptr("ext-2"), ptr("Alpha"), ptr(false), `{"userName":"bob","displayName":"Alpha","nickName":"bobby","title":"engineer",
		"externalId":"ext-2","emails":[{"value":"c@x.com","type":"work"}],
		"`+scimd+`":{"credits":12,"emailVerified":false},"`+ent+`":{"employeeNumber":"9"}}`)
	p.cal = mk(tn.ID, "cal", nil, nil, nil, `{"userName":"cal"}`)
	p.dee = mk(tn.ID, "Dee", nil, ptr("beta"), ptr(true), `{"userName":"Dee","displayName":"beta","title":"Manager",
		"emails":[{"value":"A@y.org","type":"work"}],"`+scimd+`":{"credits":5.5}}`)
	mk(other.ID, "ann", ptr("EXT-1"), ptr("zed"), ptr(true), annDoc)
	return p
}

func (p *people) list(t *testing.T, opts store.ListOptions) ([]string, int, error) {
	t.Helper()
	if opts.Count == 0 {
		opts.Count = 100
	}
	res, err := p.st.List(context.Background(), p.tenant, store.KindUser, opts)
	if err != nil {
		return nil, 0, err
	}
	ids := make([]string, 0, len(res.Resources))
	for _, r := range res.Resources {
		ids = append(ids, r.ID)
	}
	return ids, res.Total, nil
}

func (p *people) show(ids []string) string {
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		names = append(names, p.names[id])
	}
	return "[" + strings.Join(names, " ") + "]"
}

// TestFilterOperators: every comparison operator of RFC 7644 §3.4.2.2 on each
// attribute type, where the value is a column or in the document, selects the
// same users on every database; a comparison the type does not have is an invalid
// filter.
func TestFilterOperators(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			p := newPeople(t, b.Open(t))
			ann, bob, cal, dee := p.ann, p.bob, p.cal, p.dee
			credits := schemas.ScimdUserURN + ":credits"
			for _, tc := range []struct {
				filter string
				want   []string
			}{
				// A case-insensitive string in a column (userName).
				{`userName eq "ANN"`, []string{ann}},
				{`userName ne "ann"`, []string{bob, cal, dee}},
				{`userName co "E"`, []string{dee}},
				{`userName sw "b"`, []string{bob}},
				{`userName ew "N"`, []string{ann}},
				{`userName gt "bob"`, []string{cal, dee}},
				{`userName ge "bob"`, []string{bob, cal, dee}},
				{`userName lt "BOB"`, []string{ann}},
				{`userName le "BOB"`, []string{ann, bob}},
				{`userName pr`, []string{ann, bob, cal, dee}},
				// A caseExact string in a column (externalId).
				{`externalId eq "EXT-1"`, []string{ann}},
				{`externalId eq "ext-1"`, nil},
				{`externalId co "xt"`, []string{bob}},
				{`externalId sw "E"`, []string{ann}},
				{`externalId gt "E"`, []string{ann, bob}},
				{`externalId gt "EXT-1"`, []string{bob}},
				{`externalId pr`, []string{ann, bob}},
				{`externalId ne "ext-2"`, []string{ann, cal, dee}},
				// A nullable column (displayName).
				{`displayName eq "ALPHA"`, []string{bob}},
				{`displayName lt "c"`, []string{bob, dee}},
				{`displayName pr`, []string{ann, bob, dee}},
				{`not (displayName pr)`, []string{cal}},
				// Strings in the document.
				{`nickName eq "annie"`, []string{ann}},
				{`title co "ENGINEER"`, []string{ann, bob}},
				{`title sw "man"`, []string{dee}},
				{`title ew "eer"`, []string{ann, bob}},
				{`title gt "d"`, []string{bob, dee}},
				{`title pr`, []string{ann, bob, dee}},
				{`title ne "manager"`, []string{ann, bob, cal}},
				{schemas.EnterpriseUserURN + `:employeeNumber eq "9"`, []string{bob}},
				// Numbers in an extension: compared as numbers, not as text ("12" < "5").
				{credits + ` eq 5`, []string{ann}},
				{credits + ` ne 5`, []string{bob, cal, dee}},
				{credits + ` gt 5`, []string{bob, dee}},
				{credits + ` ge 5`, []string{ann, bob, dee}},
				{credits + ` lt 12`, []string{ann, dee}},
				{credits + ` le 5.5`, []string{ann, dee}},
				{credits + ` gt 5.25`, []string{bob, dee}},
				{credits + ` pr`, []string{ann, bob, dee}},
				// Multi-valued: any value matches.
				{`emails.value eq "A@X.COM"`, []string{ann}},
				{`emails.value co "@x."`, []string{ann, bob}},
				{`emails.value sw "a@"`, []string{ann, dee}},
				{`emails.value ew ".org"`, []string{dee}},
				{`emails.value gt "b"`, []string{ann, bob}},
				{`emails.type eq "home"`, []string{ann}},
				{`emails pr`, []string{ann, bob, dee}},
				{`emails[type eq "work" and value co "x"]`, []string{ann, bob}},
				{`emails[type eq "home" or value ew ".org"]`, []string{ann, dee}},
				{`emails[not (type eq "work")]`, []string{ann}},
				// Logical operators and grouping.
				{`userName eq "ann" or userName eq "cal"`, []string{ann, cal}},
				{`title pr and not (active eq false)`, []string{ann, dee}},
				{`(userName sw "a" or userName sw "b") and active eq true`, []string{ann}},
				{`not (userName sw "a" or userName sw "b")`, []string{cal, dee}},
				{`id eq "` + cal + `"`, []string{cal}},
			} {
				ids, total, err := p.list(t, store.ListOptions{Filter: mustParse(t, tc.filter)})
				if err != nil {
					t.Errorf("%s: %v", tc.filter, err)
					continue
				}
				if !slices.Equal(ids, tc.want) || total != len(tc.want) {
					t.Errorf("%s = %d %s, want %d %s", tc.filter, total, p.show(ids), len(tc.want), p.show(tc.want))
				}
			}
			for _, f := range []string{
				credits + ` co 5`, credits + ` sw 5`, credits + ` eq "5"`,
				`active co true`, `active lt true`, `active eq 1`,
				`userName eq 5`, `userName gt true`,
				`meta.created co "2020"`, `meta.created eq 5`,
				`name pr and name.nope eq "x"`, `emails[nope eq "x"]`, `emails.value[type eq "work"]`,
			} {
				e, err := filter.ParseFilter([]byte(f))
				if err != nil {
					continue // not a filter at all: the parser's business
				}
				if _, _, err := p.list(t, store.ListOptions{Filter: e}); !errors.Is(err, store.ErrInvalidFilter) {
					t.Errorf("%s: %v, want an invalid filter", f, err)
				}
			}
		})
	}
}

func mustParse(t *testing.T, s string) filter.Expression {
	t.Helper()
	e, err := filter.ParseFilter([]byte(s))
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return e
}

// TestSortBy: sortBy (RFC 7644 §3.4.2.3) orders strings that are not caseExact
// case-insensitively, numbers as numbers, a multi-valued attribute by its primary
// value (else its first), puts resources without a value last ascending and first
// descending, and breaks ties by id; what cannot order is a sort error.
func TestSortBy(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			p := newPeople(t, b.Open(t))
			ann, bob, cal, dee := p.ann, p.bob, p.cal, p.dee
			// Ties (and resources without a value) are ordered by id.
			byID := func(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }
			activeAsc := append(append([]string{bob}, byID(ann, dee)...), cal) // false < true, absent last
			for _, tc := range []struct {
				sortBy string
				desc   bool
				want   []string
			}{
				{"userName", false, []string{ann, bob, cal, dee}},
				{"userName", true, []string{dee, cal, bob, ann}},
				{"displayName", false, []string{bob, dee, ann, cal}},
				{"displayName", true, []string{cal, ann, dee, bob}},
				{"externalId", false, append([]string{ann, bob}, byID(cal, dee)...)}, // caseExact: "EXT-1" < "ext-2"
				{"title", false, []string{ann, bob, dee, cal}},
				{schemas.ScimdUserURN + ":credits", false, []string{ann, dee, bob, cal}},
				{schemas.ScimdUserURN + ":credits", true, []string{cal, bob, dee, ann}},
				{"emails", false, []string{ann, dee, bob, cal}},
				{"emails.value", false, []string{ann, dee, bob, cal}},
				{"emails.type", false, append(append([]string{ann}, byID(bob, dee)...), cal)}, // ann's primary is home
				{"meta.created", false, []string{ann, bob, cal, dee}},
				{"meta.created", true, []string{dee, cal, bob, ann}},
				{"active", false, activeAsc},
			} {
				path, err := filter.ParseAttrPath([]byte(tc.sortBy))
				if err != nil {
					t.Fatalf("%s: %v", tc.sortBy, err)
				}
				ids, _, err := p.list(t, store.ListOptions{SortBy: &path, Descending: tc.desc})
				if err != nil {
					t.Errorf("sortBy %s: %v", tc.sortBy, err)
					continue
				}
				if !slices.Equal(ids, tc.want) {
					t.Errorf("sortBy %s desc=%v = %s, want %s", tc.sortBy, tc.desc, p.show(ids), p.show(tc.want))
				}
			}
			for _, s := range []string{"name", "nope", "groups", "groups.value", "meta.resourceType", "emails.nope"} {
				path, err := filter.ParseAttrPath([]byte(s))
				if err != nil {
					t.Fatalf("%s: %v", s, err)
				}
				var se *store.SortError
				if _, _, err := p.list(t, store.ListOptions{SortBy: &path}); !errors.As(err, &se) {
					t.Errorf("sortBy %s: %v, want a *store.SortError", s, err)
				}
			}
			// Paging over a sorted list walks it in order, each page of the same total.
			path, _ := filter.ParseAttrPath([]byte("userName"))
			var walked []string
			for start := 1; start <= 4; start += 3 {
				ids, total, err := p.list(t, store.ListOptions{SortBy: &path, Descending: true, StartIndex: start, Count: 3})
				if err != nil || total != 4 {
					t.Fatalf("page at %d: total %d, %v", start, total, err)
				}
				walked = append(walked, ids...)
			}
			if want := []string{dee, cal, bob, ann}; !slices.Equal(walked, want) {
				t.Errorf("pages of userName descending = %s, want %s", p.show(walked), p.show(want))
			}
		})
	}
}
