package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestIndexPagingWalk: a sequential walk by startIndex (which scimd continues by
// keyset after the first page) returns every user once, in creation order, with the
// same pages a jump straight to each startIndex gives; after users before the walk's
// position are deleted, the walk continues after the last user it saw.
func TestIndexPagingWalk(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var all []string
		for i := range 23 {
			r := e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("walk%02d@example.com", i))).want(t, 201)
			all = append(all, str(r.body, "id"))
		}
		walk := func(filter string) []string {
			var seen []string
			for start := 1; start <= len(all); start += 5 {
				q := fmt.Sprintf("/scim/v2/Users?startIndex=%d&count=5%s", start, filter)
				r := e.call("GET", q, nil).want(t, 200)
				if r.body["totalResults"] != float64(len(all)) || r.body["startIndex"] != float64(start) {
					t.Fatalf("%s: totalResults %v startIndex %v", q, r.body["totalResults"], r.body["startIndex"])
				}
				if _, ok := r.body["nextCursor"]; ok {
					t.Fatalf("%s: an index page carries a cursor: %s", q, r.raw)
				}
				seen = append(seen, ids(r)...)
			}
			return seen
		}
		for _, filter := range []string{"", "&filter=userName%20sw%20%22walk%22"} {
			if got := walk(filter); !same(got, all) {
				t.Fatalf("walk (filter %q) saw %v, want %v", filter, got, all)
			}
			// Twice: the second walk starts again at 1 and must not be confused by the first.
			if got := walk(filter); !same(got, all) {
				t.Fatalf("second walk (filter %q) saw %v", filter, got)
			}
		}
		// Jumps (no walk before them) read the same pages.
		for start := 1; start <= len(all); start += 5 {
			r := e.call("GET", fmt.Sprintf("/scim/v2/Users?startIndex=%d&count=5", start), nil).want(t, 200)
			if !same(ids(r), all[start-1:min(start+4, len(all))]) {
				t.Fatalf("jump to %d: %v", start, ids(r))
			}
		}
		// A walk interrupted by deletes before its position goes on after the last
		// user it saw: nothing repeated, nothing after it skipped.
		r := e.call("GET", "/scim/v2/Users?startIndex=1&count=5", nil).want(t, 200)
		first := ids(r)
		for _, id := range all[:3] {
			e.call("DELETE", "/scim/v2/Users/"+id, nil).want(t, 204)
		}
		r = e.call("GET", "/scim/v2/Users?startIndex=6&count=5", nil).want(t, 200)
		if !same(first, all[:5]) || !same(ids(r), all[5:10]) {
			t.Fatalf("after deletes the walk read %v, want %v", ids(r), all[5:10])
		}
		if r.body["totalResults"] != float64(len(all)-3) {
			t.Fatalf("totalResults after 3 deletes: %v", r.body["totalResults"])
		}
	})
}

// TestLongOrFilter: a client asking for many ids in one filter (id eq … or id eq …,
// 80 terms, within the filter length limit) gets exactly the users that exist; a
// chain of one operator is not refused as deep nesting.
func TestLongOrFilter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var want []string
		var terms []string
		for i := range 80 {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			if i%4 == 0 {
				r := e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("or%02d@example.com", i))).want(t, 201)
				id = str(r.body, "id")
				want = append(want, id)
			}
			terms = append(terms, fmt.Sprintf("id eq %q", id))
		}
		f := strings.Join(terms, " or ")
		r := e.call("GET", "/scim/v2/Users?count=100&filter="+url.QueryEscape(f), nil).want(t, 200)
		if !same(ids(r), want) {
			t.Fatalf("%d-term or filter: %v, want %v", len(terms), ids(r), want)
		}
		// The same chain under not (…) and combined with and still agrees.
		f = `userName sw "or" and not (` + strings.Join(terms[:40], " or ") + `)`
		r = e.call("GET", "/scim/v2/Users?count=100&filter="+url.QueryEscape(f), nil).want(t, 200)
		if !same(ids(r), want[10:]) {
			t.Fatalf("not (or chain): %v, want %v", ids(r), want[10:])
		}
	})
}

// TestFilteredWalkTotal: a walk through a filtered list counts its matches on its
// first page only. Later pages carry that total (an index walk in this process's
// hint, a cursor walk in the cursor), the last page of an index walk gives the total
// as it is then, and a page reaching past the walk's total counts again.
func TestFilteredWalkTotal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		add := func(from, to int) {
			for i := from; i < to; i++ {
				e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("fw%03d@example.com", i))).want(t, 201)
			}
		}
		e.call("POST", "/scim/v2/Users", user("other@example.com")).want(t, 201)
		add(0, 25)
		page := func(q string, wantTotal, wantFrom, wantN int) map[string]any {
			t.Helper()
			r := e.call("GET", "/scim/v2/Users?"+q+"&filter=userName%20sw%20%22fw%22", nil).want(t, 200)
			if r.body["totalResults"] != float64(wantTotal) {
				t.Fatalf("%s: totalResults %v, want %d", q, r.body["totalResults"], wantTotal)
			}
			var names []string
			for _, res := range r.body["Resources"].([]any) {
				names = append(names, res.(map[string]any)["userName"].(string))
			}
			var want []string
			for i := wantFrom; i < wantFrom+wantN; i++ {
				want = append(want, fmt.Sprintf("fw%03d@example.com", i))
			}
			if !same(names, want) {
				t.Fatalf("%s: %v, want %v", q, names, want)
			}
			return r.body
		}
		// Index walk: 3 users added after its first page are not counted until its
		// last page, which ends the list.
		page("startIndex=1&count=10", 25, 0, 10)
		add(25, 28)
		page("startIndex=11&count=10", 25, 10, 10)
		page("startIndex=21&count=10", 28, 20, 8)
		// A page that reaches past the walk's total counts again.
		page("startIndex=1&count=10", 28, 0, 10)
		add(28, 40)
		page("startIndex=11&count=10", 28, 10, 10)
		page("startIndex=21&count=10", 40, 20, 10)
		page("startIndex=31&count=10", 40, 30, 10)
		// Cursor walk: the total of its first page rides in the cursor.
		next := page("cursor=&count=10", 40, 0, 10)["nextCursor"].(string)
		add(40, 45)
		page("cursor="+next+"&count=10", 40, 10, 10)
		page("cursor=&count=10", 45, 0, 10)
	})
}
