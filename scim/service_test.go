package scim_test

import (
	"context"
	"strconv"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/storetest"
)

// newService returns a Service over st and the id of a fresh tenant in it.
func newService(t *testing.T, st *gormstore.Store) (*scim.Service, string) {
	t.Helper()
	tn, err := scim.NewTokens(st).CreateTenant(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	l := scim.DefaultLimits()
	l.BcryptCost = 4
	return scim.NewService(st, zaptest.NewLogger(t), scim.WithLimits(l)), tn.ID
}

func createUser(t *testing.T, svc *scim.Service, tenant string, body map[string]any) *scim.Resource {
	t.Helper()
	if body["schemas"] == nil {
		body["schemas"] = []any{schemas.UserURN}
	}
	r, err := svc.Create(context.Background(), tenant, scim.UserKind, body, scim.Projection{})
	if err != nil {
		t.Fatalf("create %v: %v", body, err)
	}
	return r
}

// TestCursorLastPage is RFC 9865 §2: the last page of a cursor-paged list has no
// nextCursor (the client stops there), and it has a previousCursor back.
func TestCursorLastPage(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("backend="+b.Name, func(t *testing.T) {
			ctx := context.Background()
			svc, tenant := newService(t, b.Open(t))
			for i := range 3 {
				createUser(t, svc, tenant, map[string]any{"userName": "u" + strconv.Itoa(i)})
			}
			two, first := 2, ""
			p1, err := svc.List(ctx, tenant, scim.UserKind, scim.ListQuery{Count: &two, Cursor: &first})
			if err != nil {
				t.Fatal(err)
			}
			if len(p1.Resources) != 2 || p1.NextCursor == "" || p1.PreviousCursor != "" {
				t.Fatalf("first page: %d resources, next %q, previous %q; want 2, a next cursor and no previous", len(p1.Resources), p1.NextCursor, p1.PreviousCursor)
			}
			p2, err := svc.List(ctx, tenant, scim.UserKind, scim.ListQuery{Count: &two, Cursor: &p1.NextCursor})
			if err != nil {
				t.Fatal(err)
			}
			if len(p2.Resources) != 1 || p2.NextCursor != "" || p2.PreviousCursor == "" {
				t.Fatalf("last page: %d resources, next %q, previous %q; want 1, no next cursor and a previous one", len(p2.Resources), p2.NextCursor, p2.PreviousCursor)
			}
		})
	}
}

// TestFilterIntegers is RFC 7644 §3.4.2.2 on an integer attribute (scimd's User
// extension's credits): eq, gt, ge, lt and le compare numbers, in the store's SQL
// (Service.List) and in Resource.Matches alike.
func TestFilterIntegers(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("backend="+b.Name, func(t *testing.T) {
			ctx := context.Background()
			svc, tenant := newService(t, b.Open(t))
			r := createUser(t, svc, tenant, map[string]any{
				"schemas":            []any{schemas.UserURN, schemas.ScimdUserURN},
				"userName":           "ann",
				schemas.ScimdUserURN: map[string]any{"credits": 5},
			})
			for _, tc := range []struct {
				op   string
				v    int
				want bool
			}{
				{"eq", 5, true}, {"eq", 4, false}, {"eq", 6, false}, {"ne", 5, false}, {"ne", 4, true},
				{"gt", 4, true}, {"gt", 5, false}, {"ge", 5, true}, {"ge", 6, false},
				{"lt", 6, true}, {"lt", 5, false}, {"le", 5, true}, {"le", 4, false},
			} {
				f := schemas.ScimdUserURN + ":credits " + tc.op + " " + strconv.Itoa(tc.v)
				e, err := scim.ParseFilter(f, 0)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				if got, err := r.Matches(e); err != nil || got != tc.want {
					t.Errorf("Matches(%s) = %v, %v; want %v", f, got, err, tc.want)
				}
				page, err := svc.List(ctx, tenant, scim.UserKind, scim.ListQuery{Filter: f})
				if err != nil {
					t.Fatalf("List %s: %v", f, err)
				}
				if got := page.TotalResults == 1; got != tc.want {
					t.Errorf("List %s: %d results; want a match %v", f, page.TotalResults, tc.want)
				}
			}
		})
	}
}

// TestNULInResourceIDs is an id holding a NUL character, anywhere in it: it names no
// resource (scimd assigns ids, RFC 7643 §3.1), so reading the resource or a
// group's members is 404 on every database, never a database error.
func TestNULInResourceIDs(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("backend="+b.Name, func(t *testing.T) {
			ctx := context.Background()
			svc, tenant := newService(t, b.Open(t))
			u := createUser(t, svc, tenant, map[string]any{"userName": "ann"})
			g, err := svc.Create(ctx, tenant, scim.GroupKind, map[string]any{
				"schemas": []any{schemas.GroupURN}, "displayName": "staff",
				"members": []any{map[string]any{"value": u.ID}},
			}, scim.Projection{})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"\x00" + u.ID, u.ID + "\x00", "\x00"} {
				_, err := svc.Get(ctx, tenant, scim.UserKind, id, scim.Projection{})
				if k, _ := errKind(err); k != scim.KindNotFound {
					t.Errorf("Get user %q: %v, want 404", id, err)
				}
			}
			for _, id := range []string{"\x00" + g.ID, g.ID + "\x00", "\x00"} {
				n := 0
				err := svc.EachMember(ctx, tenant, id, "https://scim.example.com/scim/v2", func(map[string]any) error { n++; return nil })
				if k, _ := errKind(err); k != scim.KindNotFound || n != 0 {
					t.Errorf("EachMember of group %q: %d members, %v; want 404", id, n, err)
				}
			}
		})
	}
}

// closingAtFinish is a real store whose database goes away once a worker has run
// its entries, before it records them.
type closingAtFinish struct {
	*gormstore.Store
}

func (c closingAtFinish) FinishTaskEntries(ctx context.Context, token string, entries []store.TaskEntry) (int, error) {
	_ = c.Store.Close()
	return c.Store.FinishTaskEntries(ctx, token, entries)
}

// TestTaskStepRecordFails is a background worker step whose results cannot be
// recorded: the step reports the failure (the worker logs it and waits before its
// next step; the entries stay claimed and run again when the lease ends), never
// success.
func TestTaskStepRecordFails(t *testing.T) {
	ctx := context.Background()
	st := storetest.OpenSQLite(t)
	svc, tenant := newService(t, st)
	tasks := scim.NewTasks(closingAtFinish{st}, svc, zaptest.NewLogger(t), scim.TaskOptions{})
	if _, err := tasks.Submit(ctx, tenant, "provision", []scim.UserWrite{{
		UserName: "ann", Create: map[string]any{"schemas": []any{schemas.UserURN}, "userName": "ann"},
	}}); err != nil {
		t.Fatal(err)
	}
	n, err := tasks.Step(ctx)
	if n != 1 || err == nil {
		t.Fatalf("Step = %d, %v; want 1 entry claimed and the failure to record it", n, err)
	}
}
