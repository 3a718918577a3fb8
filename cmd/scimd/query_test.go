package main

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
)

func TestSorting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		type u struct {
			name, family, email string
			primary             int // index of the primary email, -1 none
			emp                 string
		}
		data := []u{
			{"carol", "Zeta", "c2@x", -1, "3"},
			{"Alice", "", "a@x", 0, "1"},
			{"bob", "alpha", "b@x", -1, ""},
			{"dave", "Beta", "", -1, "2"},
		}
		id := map[string]string{}
		for _, d := range data {
			body := user(d.name)
			if d.family != "" {
				body["name"] = map[string]any{"familyName": d.family}
			}
			if d.email != "" {
				emails := []any{map[string]any{"value": "z-" + d.email, "type": "home"}, map[string]any{"value": d.email, "type": "work"}}
				if d.primary == 0 {
					emails[1].(map[string]any)["primary"] = true
				}
				body["emails"] = emails
			}
			if d.emp != "" {
				body[enterprise] = map[string]any{"employeeNumber": d.emp}
			}
			id[d.name] = str(e.call("POST", "/scim/v2/Users", body).want(t, 201).body, "id")
		}
		names := func(r resp) []string {
			var out []string
			for _, x := range ids(r) {
				for n, i := range id {
					if i == x {
						out = append(out, n)
					}
				}
			}
			return out
		}
		cases := []struct {
			query string
			want  []string
		}{
			{"sortBy=userName", []string{"Alice", "bob", "carol", "dave"}}, // case-insensitive
			{"sortBy=userName&sortOrder=descending", []string{"dave", "carol", "bob", "Alice"}},
			{"sortBy=name.familyName", []string{"bob", "dave", "carol", "Alice"}},                      // absent last
			{"sortBy=name.familyName&sortOrder=descending", []string{"Alice", "carol", "dave", "bob"}}, // absent first
			{"sortBy=emails", []string{"Alice", "bob", "carol", "dave"}},                               // primary, else first value: a@x, z-b@x, z-c2@x
			{"sortBy=emails.value&sortOrder=DESCENDING", []string{"dave", "carol", "bob", "Alice"}},    // no emails first
			{"sortBy=" + url.QueryEscape(enterprise+":employeeNumber"), []string{"Alice", "dave", "carol", "bob"}},
			{"sortBy=meta.created&sortOrder=descending", []string{"dave", "bob", "Alice", "carol"}},
			{"sortBy=userName&startIndex=2&count=2", []string{"bob", "carol"}},
			{"sortBy=userName&filter=" + url.QueryEscape(`userName ne "bob"`), []string{"Alice", "carol", "dave"}},
		}
		for _, c := range cases {
			t.Run(c.query, func(t *testing.T) {
				r := e.call("GET", "/scim/v2/Users?"+c.query, nil).want(t, 200)
				if fmt.Sprint(names(r)) != fmt.Sprint(c.want) {
					t.Errorf("got %v, want %v", names(r), c.want)
				}
			})
		}
		t.Run("errors", func(t *testing.T) {
			e.call("GET", "/scim/v2/Users?sortBy=shoeSize", nil).wantError(t, 400, "invalidValue")
			e.call("GET", "/scim/v2/Users?sortBy=name", nil).wantError(t, 400, "invalidValue")
			e.call("GET", "/scim/v2/Users?sortBy=groups.value", nil).wantError(t, 400, "invalidValue")
			e.call("GET", "/scim/v2/Users?sortBy=userName&sortOrder=up", nil).wantError(t, 400, "invalidValue")
		})
	})
}

func TestProjection(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		uid := str(e.call("POST", "/scim/v2/Users", user("proj@example.com",
			"displayName", "Proj", "name", map[string]any{"givenName": "P", "familyName": "Q"},
			"emails", []any{map[string]any{"value": "p@x", "type": "work"}},
			"password", "secret-password",
			enterprise, map[string]any{"employeeNumber": "7", "department": "D"},
		)).want(t, 201).body, "id")
		gid := str(e.call("POST", "/scim/v2/Groups", group("G", uid)).want(t, 201).body, "id")
		keys := func(m map[string]any) string {
			var out []string
			for k := range m {
				out = append(out, k)
			}
			return fmt.Sprint(sorted(out...))
		}
		cases := []struct {
			name, path, want string
			check            func(t *testing.T, b map[string]any)
		}{
			{"attributes", "/scim/v2/Users/" + uid + "?attributes=userName,name.givenName", "[id name schemas userName]", func(t *testing.T, b map[string]any) {
				if fmt.Sprint(b["name"]) != "map[givenName:P]" {
					t.Errorf("name %v", b["name"])
				}
			}},
			{"attributes_extension_sub", "/scim/v2/Users/" + uid + "?attributes=" + url.QueryEscape(enterprise+":department"), "[id schemas " + enterprise + "]", func(t *testing.T, b map[string]any) {
				if fmt.Sprint(b[enterprise]) != "map[department:D]" {
					t.Errorf("extension %v", b[enterprise])
				}
			}},
			{"attributes_whole_extension", "/scim/v2/Users/" + uid + "?attributes=" + url.QueryEscape(enterprise), "[id schemas " + enterprise + "]", nil},
			{"attributes_case_insensitive", "/scim/v2/Users/" + uid + "?attributes=EMAILS.VALUE,meta", "[emails id meta schemas]", func(t *testing.T, b map[string]any) {
				if fmt.Sprint(b["emails"]) != "[map[value:p@x]]" {
					t.Errorf("emails %v", b["emails"])
				}
			}},
			{"excluded", "/scim/v2/Users/" + uid + "?excludedAttributes=emails,name.familyName,groups,meta,id", "[displayName id name schemas " + enterprise + " userName]", func(t *testing.T, b map[string]any) {
				if fmt.Sprint(b["name"]) != "map[givenName:P]" {
					t.Errorf("name %v", b["name"])
				}
			}},
			{"password_never", "/scim/v2/Users/" + uid + "?attributes=password,userName", "[id schemas userName]", nil},
			{"group_without_members", "/scim/v2/Groups/" + gid + "?excludedAttributes=members", "[displayName id meta schemas]", nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := e.call("GET", c.path, nil).want(t, 200)
				if keys(r.body) != c.want {
					t.Errorf("keys %s, want %s", keys(r.body), c.want)
				}
				if c.check != nil {
					c.check(t, r.body)
				}
			})
		}
		t.Run("list", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/Groups?excludedAttributes=members", nil).want(t, 200)
			for _, it := range r.body["Resources"].([]any) {
				if _, ok := it.(map[string]any)["members"]; ok {
					t.Errorf("members returned: %v", it)
				}
			}
		})
		t.Run("write_responses", func(t *testing.T) {
			r := e.call("PATCH", "/scim/v2/Users/"+uid+"?attributes=displayName", patchBody(op("replace", "displayName", "New"))).want(t, 200)
			if keys(r.body) != "[displayName id schemas]" || r.body["displayName"] != "New" {
				t.Errorf("PATCH projection: %s", r.raw)
			}
			r = e.call("POST", "/scim/v2/Users?attributes=userName", user("second@example.com", "displayName", "S")).want(t, 201)
			if keys(r.body) != "[id schemas userName]" || r.header.Get("Location") == "" {
				t.Errorf("POST projection: %s", r.raw)
			}
			r = e.call("PUT", "/scim/v2/Groups/"+gid+"?excludedAttributes=members", group("G2", uid)).want(t, 200)
			if r.body["members"] != nil || r.body["displayName"] != "G2" {
				t.Errorf("PUT projection: %s", r.raw)
			}
		})
		t.Run("prefer_minimal", func(t *testing.T) {
			r := e.call("PATCH", "/scim/v2/Users/"+uid, patchBody(op("replace", "displayName", "Min")), "Prefer", "return=minimal").want(t, 204)
			if r.header.Get("ETag") == "" || r.raw != "" {
				t.Errorf("204: ETag %q body %q", r.header.Get("ETag"), r.raw)
			}
		})
	})
}

func TestSearch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var users []string
		for i := range 3 {
			users = append(users, str(e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("s%d@example.com", i), "displayName", fmt.Sprintf("Shared %d", i))).want(t, 201).body, "id"))
		}
		gid := str(e.call("POST", "/scim/v2/Groups", group("Shared group", users[0])).want(t, 201).body, "id")
		search := func(path string, body map[string]any) resp {
			body["schemas"] = []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}
			return e.call("POST", path, body)
		}
		t.Run("users", func(t *testing.T) {
			r := search("/scim/v2/Users/.search", map[string]any{"filter": `userName sw "s"`, "sortBy": "userName", "sortOrder": "descending",
				"startIndex": 2, "count": 1, "attributes": []string{"userName"}}).want(t, 200)
			if fmt.Sprint(ids(r)) != fmt.Sprint([]string{users[1]}) || r.body["totalResults"] != float64(3) {
				t.Errorf("%s", r.raw)
			}
			res := r.body["Resources"].([]any)[0].(map[string]any)
			if len(res) != 3 {
				t.Errorf("attributes not applied: %v", res)
			}
		})
		t.Run("groups_excluded_members", func(t *testing.T) {
			r := search("/scim/v2/Groups/.search", map[string]any{"filter": `displayName eq "shared group"`, "excludedAttributes": []string{"members"}}).want(t, 200)
			if fmt.Sprint(ids(r)) != fmt.Sprint([]string{gid}) || r.body["Resources"].([]any)[0].(map[string]any)["members"] != nil {
				t.Errorf("%s", r.raw)
			}
		})
		t.Run("root", func(t *testing.T) {
			r := search("/scim/v2/.search", map[string]any{"filter": `displayName sw "Shared"`}).want(t, 200)
			if r.body["totalResults"] != float64(4) || fmt.Sprint(ids(r)) != fmt.Sprint(append(append([]string{}, users...), gid)) {
				t.Errorf("root search: %s", r.raw)
			}
			types := map[string]int{}
			for _, it := range r.body["Resources"].([]any) {
				types[str(it.(map[string]any), "meta.resourceType")]++
			}
			if types["User"] != 3 || types["Group"] != 1 {
				t.Errorf("resource types %v", types)
			}
			// Paging runs across the types: Users first, then Groups.
			r = e.call("GET", "/scim/v2/?startIndex=3&count=2&filter="+url.QueryEscape(`displayName sw "shared"`), nil).want(t, 200)
			if fmt.Sprint(ids(r)) != fmt.Sprint([]string{users[2], gid}) || r.body["totalResults"] != float64(4) || r.body["itemsPerPage"] != float64(2) {
				t.Errorf("root GET page: %s", r.raw)
			}
			// An attribute only Users have: Groups simply do not match.
			r = e.call("GET", "/scim/v2/?filter="+url.QueryEscape(`userName eq "s1@example.com"`), nil).want(t, 200)
			if fmt.Sprint(ids(r)) != fmt.Sprint([]string{users[1]}) {
				t.Errorf("root userName: %s", r.raw)
			}
			e.call("GET", "/scim/v2/?filter="+url.QueryEscape(`shoeSize eq "9"`), nil).wantError(t, 400, "invalidFilter")
		})
		t.Run("errors", func(t *testing.T) {
			e.call("POST", "/scim/v2/Users/.search", map[string]any{"filter": "x"}).wantError(t, 400, "invalidSyntax")
			search("/scim/v2/Users/.search", map[string]any{"filter": `userName eq`}).wantError(t, 400, "invalidFilter")
			search("/scim/v2/Users/.search", map[string]any{"count": "ten"}).wantError(t, 400, "invalidSyntax")
			e.call("GET", "/scim/v2/Users/.search", nil).wantError(t, http.StatusMethodNotAllowed, "")
		})
	})
}

// TestIfMatchRace: writers racing with the same If-Match; exactly one wins, the rest
// get 412, and the winner's change is what is stored.
func TestIfMatchRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		uid := str(e.call("POST", "/scim/v2/Users", user("race@example.com")).want(t, 201).body, "id")
		const n = 8
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.call("PATCH", "/scim/v2/Users/"+uid, patchBody(op("replace", "displayName", fmt.Sprintf("writer %d", i))), "If-Match", `W/"1"`)
				codes[i] = r.status
			}()
		}
		wg.Wait()
		winner, lost := -1, 0
		for i, c := range codes {
			switch c {
			case 200:
				if winner >= 0 {
					t.Errorf("two writers succeeded: %d and %d", winner, i)
				}
				winner = i
			case 412:
				lost++
			default:
				t.Errorf("writer %d: status %d", i, c)
			}
		}
		if winner < 0 || lost != n-1 {
			t.Fatalf("codes %v", codes)
		}
		r := e.call("GET", "/scim/v2/Users/"+uid, nil).want(t, 200)
		if r.body["displayName"] != fmt.Sprintf("writer %d", winner) || r.header.Get("ETag") != `W/"2"` {
			t.Errorf("stored %v (ETag %s), winner %d", r.body["displayName"], r.header.Get("ETag"), winner)
		}
	})
}
