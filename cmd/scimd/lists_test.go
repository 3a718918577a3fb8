package main

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestListsAndFilters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var all []string
		for i := range 5 {
			r := e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("User%d@Example.com", i),
				"externalId", fmt.Sprintf("EXT-%d", i),
				"active", i%2 == 0,
				"emails", []any{map[string]any{"value": fmt.Sprintf("u%d@%s.example.com", i, []string{"work", "home"}[i%2]), "type": []string{"work", "home"}[i%2]}},
				enterprise, map[string]any{"department": fmt.Sprintf("dept-%d", i%3)},
				"urn:scimd:schemas:extension:2.0:User", map[string]any{"credits": i * 10, "emailVerified": i%2 == 0},
			)).want(t, 201)
			all = append(all, str(r.body, "id"))
		}
		t.Run("paging", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/Users?startIndex=2&count=2", nil).want(t, 200)
			if r.body["totalResults"] != float64(5) || r.body["itemsPerPage"] != float64(2) || r.body["startIndex"] != float64(2) {
				t.Errorf("page: total %v items %v start %v", r.body["totalResults"], r.body["itemsPerPage"], r.body["startIndex"])
			}
			if !same(ids(r), all[1:3]) {
				t.Errorf("ids %v, want %v (creation order)", ids(r), all[1:3])
			}
			r = e.call("GET", "/scim/v2/Users?startIndex=5&count=10", nil).want(t, 200)
			if !same(ids(r), all[4:]) || r.body["itemsPerPage"] != float64(1) {
				t.Errorf("last page %v", ids(r))
			}
			r = e.call("GET", "/scim/v2/Users?count=0", nil).want(t, 200)
			if r.body["totalResults"] != float64(5) || r.body["itemsPerPage"] != float64(0) {
				t.Errorf("count=0: %s", r.raw)
			}
			if res, ok := r.body["Resources"].([]any); !ok || len(res) != 0 {
				t.Errorf("Resources must be an empty array, got %v", r.body["Resources"])
			}
			r = e.call("GET", "/scim/v2/Users?startIndex=0&count=-3", nil).want(t, 200)
			if r.body["startIndex"] != float64(1) || r.body["itemsPerPage"] != float64(0) {
				t.Errorf("startIndex<1 is 1 and count<0 is 0 (RFC 7644 §3.4.2.4): %s", r.raw)
			}
		})
		cases := []struct {
			filter string
			want   []string
		}{
			{`userName eq "user3@example.com"`, all[3:4]},
			{`externalId eq "EXT-2"`, all[2:3]},
			{`externalId eq "ext-2"`, nil}, // externalId is caseExact
			{`id eq "` + all[1] + `"`, all[1:2]},
			{`active eq true`, []string{all[0], all[2], all[4]}},
			{`active eq false and userName sw "user1"`, all[1:2]},
			{`emails.value co "@HOME."`, []string{all[1], all[3]}},
			{`emails[type eq "work" and value ew ".example.com"]`, []string{all[0], all[2], all[4]}},
			{`emails pr`, all},
			{`name pr`, nil},
			{`not (emails[type eq "work"])`, []string{all[1], all[3]}},
			{`(userName eq "user0@example.com" or userName eq "user4@example.com") and active eq true`, []string{all[0], all[4]}},
			{enterprise + `:department eq "dept-1"`, []string{all[1], all[4]}},
			{`userName eq "user0@example.com" or ` + enterprise + `:department eq "dept-2"`, []string{all[0], all[2]}},
			{`meta.created ge "2000-01-01T00:00:00Z"`, all},
			{`meta.lastModified gt "` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"`, nil},
			{`meta.resourceType eq "User"`, all},
			{`userName gt "user2@example.com"`, []string{all[3], all[4]}},
			{`externalId ne "EXT-0"`, all[1:]},
			{`USERNAME Eq "USER1@EXAMPLE.COM"`, all[1:2]},
			{`urn:scimd:schemas:extension:2.0:User:credits ge 20`, all[2:]},
			{`urn:scimd:schemas:extension:2.0:User:credits lt 15.5 and urn:scimd:schemas:extension:2.0:User:emailVerified eq false`, all[1:2]},
			{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "user1@example.com"`, all[1:2]},
		}
		for _, c := range cases {
			t.Run("filter/"+c.filter, func(t *testing.T) {
				r := e.call("GET", "/scim/v2/Users?count=100&filter="+url.QueryEscape(c.filter), nil).want(t, 200)
				if !same(sorted(ids(r)...), sorted(c.want...)) {
					t.Errorf("got %v, want %v", ids(r), c.want)
				}
				if r.body["totalResults"] != float64(len(c.want)) {
					t.Errorf("totalResults %v, want %d", r.body["totalResults"], len(c.want))
				}
			})
		}
		t.Run("connection_test_lookup", func(t *testing.T) {
			// The provisioning connection test asks for a user that does not exist.
			r := e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "0b9e3f4c-not-there"`), nil).want(t, 200)
			if r.body["totalResults"] != float64(0) {
				t.Errorf("%s", r.raw)
			}
		})
	})
}

// TestTenantIsolation: a token of one tenant never sees or touches another tenant's
// resources; they answer 404 as if they did not exist.
func TestTenantIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		uid := str(e.call("POST", "/scim/v2/Users", user("shared-name@example.com")).want(t, 201).body, "id")
		gid := str(e.call("POST", "/scim/v2/Groups", group("Team A", uid)).want(t, 201).body, "id")
		other := e.newTenant("tenant-b", "scim")
		for _, c := range []struct{ method, path string }{
			{"GET", "/scim/v2/Users/" + uid}, {"GET", "/scim/v2/Groups/" + gid},
			{"PUT", "/scim/v2/Users/" + uid}, {"PUT", "/scim/v2/Groups/" + gid},
			{"PATCH", "/scim/v2/Users/" + uid}, {"PATCH", "/scim/v2/Groups/" + gid},
			{"DELETE", "/scim/v2/Users/" + uid}, {"DELETE", "/scim/v2/Groups/" + gid},
		} {
			t.Run(c.method+" "+c.path[9:15], func(t *testing.T) {
				var body any
				switch c.method {
				case "PUT":
					body = user("x@example.com")
					if c.path[9] == 'G' {
						body = group("x")
					}
				case "PATCH":
					body = patchBody(op("replace", "displayName", "stolen"))
				}
				e.callAs(other, c.method, c.path, body).wantError(t, http.StatusNotFound, "")
			})
		}
		t.Run("lists", func(t *testing.T) {
			for _, p := range []string{"/scim/v2/Users", "/scim/v2/Groups",
				"/scim/v2/Users?filter=" + url.QueryEscape(`id eq "`+uid+`"`),
				"/scim/v2/Groups?filter=" + url.QueryEscape(`members.value eq "`+uid+`"`)} {
				r := e.callAs(other, "GET", p, nil).want(t, 200)
				if r.body["totalResults"] != float64(0) {
					t.Errorf("%s: %s", p, r.raw)
				}
			}
		})
		t.Run("no_cross_tenant_members", func(t *testing.T) {
			e.callAs(other, "POST", "/scim/v2/Groups", group("B", uid)).wantError(t, 400, "invalidValue")
		})
		t.Run("same_username_other_tenant", func(t *testing.T) {
			e.callAs(other, "POST", "/scim/v2/Users", user("shared-name@example.com")).want(t, 201)
		})
		t.Run("untouched", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/Groups/"+gid, nil).want(t, 200)
			if r.body["displayName"] != "Team A" || r.header.Get("ETag") != `W/"1"` || len(memberIDs(r.body)) != 1 {
				t.Errorf("tenant A's group changed: %s", r.raw)
			}
		})
	})
}
