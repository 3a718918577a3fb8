package storetest

import (
	"fmt"
	"sync"

	"github.com/scimd/scimd/store"
)

// total lists one resource of kind without a filter and returns totalResults,
// checked against a filtered count of the same resources (which the store counts
// row by row).
func (f *fixture) total(tenantID string, kind store.Kind) int {
	f.t.Helper()
	unfiltered := f.list(tenantID, kind, store.ListOptions{Count: 1})
	all := f.list(tenantID, kind, store.ListOptions{Filter: parse(f.t, "id pr"), Count: 1})
	if unfiltered.Total != all.Total {
		f.t.Fatalf("%s totalResults without a filter is %d, but %d match id pr", kind, unfiltered.Total, all.Total)
	}
	return unfiltered.Total
}

// listTotalKept: an unfiltered list's total follows every create and delete of
// the tenant, and only of the tenant.
func listTotalKept(f *fixture) {
	a, b := f.tenant("a"), f.tenant("b")
	var users []*store.Resource
	for i := range 5 {
		users = append(users, f.user(a.ID, fmt.Sprintf("u%d", i)))
	}
	f.user(b.ID, "other")
	g := f.group(a.ID, "g", users[0].ID)
	if n := f.total(a.ID, store.KindUser); n != 5 {
		f.t.Fatalf("users of a: %d, want 5", n)
	}
	for _, u := range users[:2] {
		if err := f.st.Delete(f.ctx, a.ID, store.KindUser, u.ID, 0); err != nil {
			f.t.Fatal(err)
		}
	}
	// A failed create and a failed delete change nothing.
	if err := f.st.Create(f.ctx, newUser(a.ID, "U2")); err == nil {
		f.t.Fatal("duplicate userName created")
	}
	if err := f.st.Delete(f.ctx, a.ID, store.KindUser, users[0].ID, 0); err == nil {
		f.t.Fatal("deleted a user twice")
	}
	if n := f.total(a.ID, store.KindUser); n != 3 {
		f.t.Fatalf("users of a after deletes: %d, want 3", n)
	}
	if n := f.total(b.ID, store.KindUser); n != 1 {
		f.t.Fatalf("users of b: %d, want 1", n)
	}
	if n := f.total(a.ID, store.KindGroup); n != 1 {
		f.t.Fatalf("groups of a: %d, want 1", n)
	}
	if err := f.st.Delete(f.ctx, a.ID, store.KindGroup, g.ID, 0); err != nil {
		f.t.Fatal(err)
	}
	if n := f.total(a.ID, store.KindGroup); n != 0 {
		f.t.Fatalf("groups of a after delete: %d, want 0", n)
	}
}

// listTotalConcurrent: creates and deletes running at once leave the total equal to
// the users that exist.
func listTotalConcurrent(f *fixture) {
	a := f.tenant("a")
	var pre []*store.Resource
	for i := range 10 {
		pre = append(pre, f.user(a.ID, fmt.Sprintf("pre%d", i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.st.Create(f.ctx, newUser(a.ID, fmt.Sprintf("new%d", i)))
		}()
	}
	for _, u := range pre {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.st.Delete(f.ctx, a.ID, store.KindUser, u.ID, 0)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	if n := f.total(a.ID, store.KindUser); n != 30 {
		f.t.Fatalf("total after 30 creates and 10 deletes of 10: %d, want 30", n)
	}
}

// listKnownTotal: a filtered list given the total an earlier page of its walk
// counted returns that total and the page as usual; an unfiltered list's total
// comes from its counters whatever the caller says.
func listKnownTotal(f *fixture) {
	a := f.tenant("a")
	for i := range 4 {
		f.user(a.ID, fmt.Sprintf("u%d", i))
	}
	known := 99
	filtered := f.list(a.ID, store.KindUser, store.ListOptions{Filter: parse(f.t, `userName sw "u"`), Count: 2, KnownTotal: &known})
	if filtered.Total != 99 || len(filtered.Resources) != 2 {
		f.t.Fatalf("filtered list with a known total: total %d, %d resources; want 99 and 2", filtered.Total, len(filtered.Resources))
	}
	counted := f.list(a.ID, store.KindUser, store.ListOptions{Filter: parse(f.t, `userName sw "u"`), Count: 2})
	if counted.Total != 4 {
		f.t.Fatalf("filtered list without a known total: total %d, want 4", counted.Total)
	}
	unfiltered := f.list(a.ID, store.KindUser, store.ListOptions{Count: 2, KnownTotal: &known})
	if unfiltered.Total != 4 {
		f.t.Fatalf("unfiltered list given a known total: total %d, want the counted 4", unfiltered.Total)
	}
}
