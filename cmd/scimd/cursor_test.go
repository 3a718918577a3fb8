package main

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// walk follows nextCursor from the first page and returns every id seen, in order;
// between pages it calls between (which may write).
func walk(t *testing.T, e *env, query string, between func(page int)) []string {
	t.Helper()
	var all []string
	cursor := ""
	for page := 0; page < 100; page++ {
		r := e.call("GET", "/scim/v2/Users?count=2&"+query+"&cursor="+url.QueryEscape(cursor), nil).want(t, 200)
		if _, ok := r.body["startIndex"]; ok {
			t.Errorf("a cursor page has no startIndex: %s", r.raw)
		}
		all = append(all, ids(r)...)
		next, _ := r.body["nextCursor"].(string)
		if next == "" {
			return all
		}
		cursor = next
		if between != nil {
			between(page)
		}
	}
	t.Fatal("more than 100 pages")
	return nil
}

func TestCursorPaging(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var created []string
		families := []string{"d", "", "b", "a", "", "c", "b"}
		for i, f := range families {
			body := user(fmt.Sprintf("cur%d@example.com", i))
			if f != "" {
				body["name"] = map[string]any{"familyName": f}
			}
			created = append(created, str(e.call("POST", "/scim/v2/Users", body).want(t, 201).body, "id"))
		}
		t.Run("walk_in_creation_order", func(t *testing.T) {
			if got := walk(t, e, "", nil); fmt.Sprint(got) != fmt.Sprint(created) {
				t.Errorf("got %v\nwant %v", got, created)
			}
		})
		t.Run("sorted_with_unassigned_values", func(t *testing.T) {
			// familyName a, b, b (by id), c, d, then the two without one (by id).
			want := []string{created[3]}
			want = append(want, sorted(created[2], created[6])...)
			want = append(want, created[5], created[0])
			want = append(want, sorted(created[1], created[4])...)
			if got := walk(t, e, "sortBy=name.familyName", nil); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("ascending: got %v\nwant %v", got, want)
			}
			slices.Reverse(want)
			if got := walk(t, e, "sortBy=name.familyName&sortOrder=descending", nil); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("descending: got %v\nwant %v", got, want)
			}
		})
		t.Run("concurrent_inserts_skip_and_repeat_nothing", func(t *testing.T) {
			n := 0
			got := walk(t, e, "", func(page int) {
				if page >= 3 {
					return
				}
				for range 2 {
					e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("late%d@example.com", n))).want(t, 201)
					n++
				}
			})
			seen := map[string]bool{}
			for _, id := range got {
				if seen[id] {
					t.Errorf("%s repeated", id)
				}
				seen[id] = true
			}
			for _, id := range created {
				if !seen[id] {
					t.Errorf("%s skipped", id)
				}
			}
		})
		t.Run("previous_cursor", func(t *testing.T) {
			p1 := e.call("GET", "/scim/v2/Users?count=3&cursor=", nil).want(t, 200)
			if p1.body["previousCursor"] != nil {
				t.Errorf("the first page has no previous page: %s", p1.raw)
			}
			p2 := e.call("GET", "/scim/v2/Users?count=3&cursor="+url.QueryEscape(p1.body["nextCursor"].(string)), nil).want(t, 200)
			back := e.call("GET", "/scim/v2/Users?count=3&cursor="+url.QueryEscape(p2.body["previousCursor"].(string)), nil).want(t, 200)
			if fmt.Sprint(ids(back)) != fmt.Sprint(ids(p1)) {
				t.Errorf("previous of page 2 is %v, page 1 was %v", ids(back), ids(p1))
			}
			fwd := e.call("GET", "/scim/v2/Users?count=3&cursor="+url.QueryEscape(back.body["nextCursor"].(string)), nil).want(t, 200)
			if fmt.Sprint(ids(fwd)) != fmt.Sprint(ids(p2)) {
				t.Errorf("next of that is %v, page 2 was %v", ids(fwd), ids(p2))
			}
		})
		t.Run("search_body", func(t *testing.T) {
			r := e.call("POST", "/scim/v2/Users/.search", map[string]any{
				"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}, "cursor": "", "count": 2,
				"filter": `userName sw "cur"`}).want(t, 200)
			if len(ids(r)) != 2 || r.body["nextCursor"] == nil || r.body["totalResults"] != float64(len(created)) {
				t.Errorf("%s", r.raw)
			}
		})
		t.Run("refused", func(t *testing.T) {
			first := e.call("GET", "/scim/v2/Users?count=2&cursor=", nil).want(t, 200)
			next := first.body["nextCursor"].(string)
			tampered := strings.Replace(next, next[5:6], map[bool]string{true: "A", false: "B"}[next[5:6] != "A"], 1)
			e.call("GET", "/scim/v2/Users?count=2&cursor="+url.QueryEscape(tampered), nil).wantError(t, 400, "invalidCursor")
			e.call("GET", "/scim/v2/Users?count=2&cursor=garbage", nil).wantError(t, 400, "invalidCursor")
			e.call("GET", "/scim/v2/Users?count=2&filter="+url.QueryEscape(`userName pr`)+"&cursor="+url.QueryEscape(next), nil).wantError(t, 400, "invalidCursor")
			e.call("GET", "/scim/v2/Groups?count=2&cursor="+url.QueryEscape(next), nil).wantError(t, 400, "invalidCursor")
			other := e.newTenant("other", "scim")
			e.callAs(other, "GET", "/scim/v2/Users?count=2&cursor="+url.QueryEscape(next), nil).wantError(t, 400, "invalidCursor")
			e.call("GET", "/scim/v2/Users?cursor=&startIndex=3", nil).wantError(t, 400, "invalidValue")
			e.call("GET", "/scim/v2/Users?cursor=&sortBy=active", nil).wantError(t, 400, "invalidValue")
			e.call("GET", "/scim/v2/?cursor=", nil).wantError(t, 400, "invalidValue")
		})
		t.Run("advertised", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/ServiceProviderConfig", nil).want(t, 200)
			p, _ := r.body["pagination"].(map[string]any)
			if p["cursor"] != true || p["index"] != true || p["cursorTimeout"] != float64(3600) || p["maxPageSize"] != float64(1000) {
				t.Errorf("pagination %v", p)
			}
		})
	})
}

func TestCursorExpiry(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			e := newEnv(t, b, scimhttp.Options{}, func(l *scim.Limits) { l.CursorTimeout = time.Second })
			for i := range 3 {
				e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("exp%d@example.com", i))).want(t, 201)
			}
			next := e.call("GET", "/scim/v2/Users?count=1&cursor=", nil).want(t, 200).body["nextCursor"].(string)
			time.Sleep(2100 * time.Millisecond)
			e.call("GET", "/scim/v2/Users?count=1&cursor="+url.QueryEscape(next), nil).wantError(t, 400, "expiredCursor")
		})
	}
}
