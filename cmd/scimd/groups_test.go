package main

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
)

func memberIDs(b map[string]any) []string {
	var out []string
	ms, _ := b["members"].([]any)
	for _, m := range ms {
		out = append(out, m.(map[string]any)["value"].(string))
	}
	sort.Strings(out)
	return out
}

func sorted(xs ...string) []string {
	out := append([]string{}, xs...)
	sort.Strings(out)
	return out
}

func same(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func group(name string, members ...string) map[string]any {
	ms := []any{}
	for _, m := range members {
		ms = append(ms, map[string]any{"value": m})
	}
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": name, "members": ms}
}

func TestGroups(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var u []string
		for i := range 4 {
			u = append(u, str(e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("member%d@example.com", i), "displayName", fmt.Sprintf("Member %d", i))).want(t, 201).body, "id"))
		}
		sub := e.call("POST", "/scim/v2/Groups", group("Sub")).want(t, 201)
		subID := str(sub.body, "id")
		g := e.call("POST", "/scim/v2/Groups", group("Engineering", u[0], u[1], subID)).want(t, 201)
		gid := str(g.body, "id")
		gpath := "/scim/v2/Groups/" + gid
		t.Run("create", func(t *testing.T) {
			if g.header.Get("Location") != e.srv.URL+gpath {
				t.Errorf("Location %q", g.header.Get("Location"))
			}
			if !same(memberIDs(g.body), sorted(u[0], u[1], subID)) {
				t.Errorf("members %v", g.body["members"])
			}
			for _, m := range g.body["members"].([]any) {
				mm := m.(map[string]any)
				want := "User"
				if mm["value"] == subID {
					want = "Group"
				}
				if mm["type"] != want || mm["$ref"] != e.srv.URL+"/scim/v2/"+want+"s/"+mm["value"].(string) {
					t.Errorf("member %v", mm)
				}
				if mm["value"] == u[0] && mm["display"] != "Member 0" {
					t.Errorf("member display %v", mm)
				}
			}
		})
		t.Run("user_groups_derived", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/Users/"+u[0], nil).want(t, 200)
			gs, _ := r.body["groups"].([]any)
			if len(gs) != 1 || gs[0].(map[string]any)["value"] != gid || gs[0].(map[string]any)["display"] != "Engineering" ||
				gs[0].(map[string]any)["$ref"] != e.srv.URL+gpath {
				t.Errorf("groups %v", r.body["groups"])
			}
			l := e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(`groups.value eq "`+gid+`"`), nil).want(t, 200)
			if !same(sorted(ids(l)...), sorted(u[0], u[1])) {
				t.Errorf("users in group: %v", ids(l))
			}
		})
		t.Run("unknown_member", func(t *testing.T) {
			e.call("POST", "/scim/v2/Groups", group("Bad", u[0], "00000000-0000-0000-0000-000000000000")).wantError(t, 400, "invalidValue")
			l := e.call("GET", "/scim/v2/Groups?filter="+url.QueryEscape(`displayName eq "Bad"`), nil).want(t, 200)
			if l.body["totalResults"] != float64(0) {
				t.Errorf("a refused create left a group: %s", l.raw)
			}
			e.call("PATCH", gpath, patchBody(op("add", "members", []any{map[string]any{"value": "nope"}}))).wantError(t, 400, "invalidValue")
			e.call("PATCH", gpath, patchBody(op("add", "members", []any{map[string]any{"value": gid}}))).wantError(t, 400, "invalidValue")
			e.call("POST", "/scim/v2/Groups", map[string]any{"members": []any{}}).wantError(t, 400, "invalidValue")
		})
		steps := []struct {
			name string
			ops  []map[string]any
			want []string
		}{
			{"add_member", []map[string]any{op("add", "members", []any{map[string]any{"value": u[2]}})}, sorted(u[0], u[1], u[2], subID)},
			{"add_existing_is_noop", []map[string]any{op("add", "members", []any{map[string]any{"value": u[2]}})}, sorted(u[0], u[1], u[2], subID)},
			{"remove_by_filter", []map[string]any{op("remove", `members[value eq "`+u[0]+`"]`, nil)}, sorted(u[1], u[2], subID)},
			{"remove_groups_by_type", []map[string]any{op("remove", `members[type eq "Group"]`, nil)}, sorted(u[1], u[2])},
			{"remove_value_list_removes_only_those", []map[string]any{op("Remove", "members", []any{map[string]any{"value": u[1]}})}, sorted(u[2])},
			{"replace_members", []map[string]any{op("replace", "members", []any{map[string]any{"value": u[3]}, map[string]any{"value": u[0]}})}, sorted(u[0], u[3])},
			{"ordered_steps", []map[string]any{
				op("add", "members", []any{map[string]any{"value": u[1]}}),
				op("remove", `members[value eq "`+u[1]+`"]`, nil),
				op("add", "", map[string]any{"members": []any{map[string]any{"value": u[2]}}}),
			}, sorted(u[0], u[2], u[3])},
			{"rename_keeps_members", []map[string]any{op("replace", "", map[string]any{"id": gid, "displayName": "Eng"})}, sorted(u[0], u[2], u[3])},
			{"remove_all", []map[string]any{op("remove", "members", nil)}, nil},
		}
		version := 1
		for _, s := range steps {
			t.Run("patch/"+s.name, func(t *testing.T) {
				r := e.call("PATCH", gpath, patchBody(s.ops...)).want(t, http.StatusOK)
				if s.name != "add_existing_is_noop" { // RFC 7644 §3.5.2.1: no change, no new version
					version++
				}
				if !same(memberIDs(r.body), s.want) {
					t.Errorf("members %v, want %v", memberIDs(r.body), s.want)
				}
				if r.header.Get("ETag") != `W/"`+itoa(version)+`"` {
					t.Errorf("ETag %s, want version %d", r.header.Get("ETag"), version)
				}
			})
		}
		t.Run("patch_member_sub_attribute_is_immutable", func(t *testing.T) {
			e.call("PATCH", gpath, patchBody(op("replace", `members[value eq "x"].display`, "y"))).wantError(t, 400, "mutability")
			e.call("PATCH", gpath, patchBody(op("remove", `members[value gt 5]`, nil))).wantError(t, 400, "invalidPath")
			e.call("PATCH", gpath, patchBody(op("remove", `members[shoe eq "x"]`, nil))).wantError(t, 400, "invalidPath")
		})
		t.Run("put_replaces_members", func(t *testing.T) {
			r := e.call("PUT", gpath, group("Eng", u[1])).want(t, 200)
			if !same(memberIDs(r.body), sorted(u[1])) || r.body["displayName"] != "Eng" {
				t.Errorf("PUT: %s", r.raw)
			}
		})
		t.Run("deleting_a_user_removes_its_memberships", func(t *testing.T) {
			before := e.call("GET", gpath, nil).want(t, 200).header.Get("ETag")
			e.call("DELETE", "/scim/v2/Users/"+u[1], nil).want(t, 204)
			r := e.call("GET", gpath, nil).want(t, 200)
			if len(memberIDs(r.body)) != 0 {
				t.Errorf("members left: %v", r.body["members"])
			}
			if r.header.Get("ETag") == before {
				t.Error("the group's version did not change when it lost a member")
			}
		})
		t.Run("filter_groups", func(t *testing.T) {
			l := e.call("GET", "/scim/v2/Groups?filter="+url.QueryEscape(`displayName eq "eng"`), nil).want(t, 200)
			if !same(ids(l), []string{gid}) {
				t.Errorf("displayName eq (case-insensitive): %v", ids(l))
			}
			e.call("PATCH", gpath, patchBody(op("add", "members", []any{map[string]any{"value": u[3]}}))).want(t, 200)
			l = e.call("GET", "/scim/v2/Groups?filter="+url.QueryEscape(`members[value eq "`+u[3]+`"]`), nil).want(t, 200)
			if !same(ids(l), []string{gid}) {
				t.Errorf("members value path: %v", ids(l))
			}
		})
		t.Run("delete_group", func(t *testing.T) {
			e.call("DELETE", gpath, nil).want(t, 204)
			r := e.call("GET", "/scim/v2/Users/"+u[3], nil).want(t, 200)
			if r.body["groups"] != nil {
				t.Errorf("groups after group delete: %v", r.body["groups"])
			}
		})
	})
}

// TestConcurrentMembership sends many membership PATCHes to one group at once; every
// change must survive (no lost update), on every backend.
func TestConcurrentMembership(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		gid := str(e.call("POST", "/scim/v2/Groups", group("Busy")).want(t, 201).body, "id")
		const n = 24
		var users []string
		for i := range n {
			users = append(users, str(e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("c%d@example.com", i))).want(t, 201).body, "id"))
		}
		var wg sync.WaitGroup
		errs := make(chan string, n)
		for _, id := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.call("PATCH", "/scim/v2/Groups/"+gid, patchBody(op("add", "members", []any{map[string]any{"value": id}})))
				if r.status != 200 {
					errs <- fmt.Sprintf("%d %s", r.status, r.raw)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		r := e.call("GET", "/scim/v2/Groups/"+gid, nil).want(t, 200)
		if !same(memberIDs(r.body), sorted(users...)) {
			t.Errorf("%d members after %d concurrent adds", len(memberIDs(r.body)), n)
		}
		if r.header.Get("ETag") != `W/"`+itoa(n+1)+`"` {
			t.Errorf("ETag %s after %d updates", r.header.Get("ETag"), n)
		}
	})
}

// TestConcurrentMembershipMixed sends adds and removes to one group at once, the way
// a provisioning service fans out membership changes; the final member set is exactly
// the starting set plus the adds minus the removes.
func TestConcurrentMembershipMixed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const n = 16
		var initial, added []string
		for i := range n {
			initial = append(initial, str(e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("m%d@example.com", i))).want(t, 201).body, "id"))
			added = append(added, str(e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("a%d@example.com", i))).want(t, 201).body, "id"))
		}
		gid := str(e.call("POST", "/scim/v2/Groups", group("Mixed", initial...)).want(t, 201).body, "id")
		var wg sync.WaitGroup
		errs := make(chan string, 2*n)
		for i := range n {
			wg.Add(2)
			go func() {
				defer wg.Done()
				// Entra's shape: capitalised op, a value list.
				r := e.call("PATCH", "/scim/v2/Groups/"+gid, patchBody(op("Add", "members", []any{map[string]any{"value": added[i]}})))
				if r.status != 200 {
					errs <- r.raw
				}
			}()
			go func() {
				defer wg.Done()
				if i%2 == 1 {
					return
				}
				r := e.call("PATCH", "/scim/v2/Groups/"+gid, patchBody(op("Remove", "members", []any{map[string]any{"value": initial[i]}})))
				if r.status != 200 {
					errs <- r.raw
				}
			}()
		}
		wg.Wait()
		close(errs)
		for msg := range errs {
			t.Error(msg)
		}
		want := append([]string{}, added...)
		for i, id := range initial {
			if i%2 == 1 {
				want = append(want, id)
			}
		}
		got := memberIDs(e.call("GET", "/scim/v2/Groups/"+gid, nil).want(t, 200).body)
		if !same(got, sorted(want...)) {
			t.Errorf("%d members, want %d: lost or stray changes", len(got), len(want))
		}
	})
}

// TestGroupsUnknownMemberNamed: members naming no user or group of the tenant refuse
// the whole write with 400 invalidValue whose detail names the first unknown id in
// the order the client sent them, so the client can fix the request; the detail stays
// short however many ids are unknown. POST, PUT, PATCH add and Bulk agree.
func TestGroupsUnknownMemberNamed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		u := str(e.call("POST", "/scim/v2/Users", user("known@example.com")).want(t, 201).body, "id")
		gid := str(e.call("POST", "/scim/v2/Groups", group("Team", u)).want(t, 201).body, "id")
		first := "ffffffff-0000-4000-8000-000000000001"
		ids := []string{u, first}
		for i := range 300 {
			ids = append(ids, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
		}
		members := func() []any {
			ms := []any{}
			for _, id := range ids {
				ms = append(ms, map[string]any{"value": id})
			}
			return ms
		}
		check := func(t *testing.T, status any, scimType any, detail string) {
			t.Helper()
			if status != "400" || scimType != "invalidValue" {
				t.Errorf("status %v scimType %v, want 400 invalidValue", status, scimType)
			}
			if !strings.Contains(detail, first) {
				t.Errorf("detail %q does not name the first unknown id %s", detail, first)
			}
			if len(detail) > 512 {
				t.Errorf("detail of %d bytes echoes every unknown id", len(detail))
			}
		}
		for _, c := range []struct {
			name, method, path string
			body               any
		}{
			{"post", "POST", "/scim/v2/Groups", group("Bad", ids...)},
			{"put", "PUT", "/scim/v2/Groups/" + gid, group("Team", ids...)},
			{"patch_add", "PATCH", "/scim/v2/Groups/" + gid, patchBody(op("add", "members", members()))},
			{"patch_add_no_path", "PATCH", "/scim/v2/Groups/" + gid, patchBody(op("add", "", map[string]any{"members": members()}))},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := e.call(c.method, c.path, c.body)
				r.wantError(t, 400, "invalidValue")
				d, _ := r.body["detail"].(string)
				check(t, r.body["status"], r.body["scimType"], d)
			})
		}
		t.Run("bulk", func(t *testing.T) {
			res := bulkResults(t, e.call("POST", "/scim/v2/Bulk", bulkReq(0, bulkOp("POST", "/Groups", "g1", group("Bulk Bad", ids...), ""))))
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			body, _ := res[0]["response"].(map[string]any)
			d, _ := body["detail"].(string)
			check(t, res[0]["status"], body["scimType"], d)
		})
		r := e.call("GET", "/scim/v2/Groups/"+gid, nil).want(t, 200)
		if !same(memberIDs(r.body), []string{u}) {
			t.Errorf("a refused write changed the members: %v", r.body["members"])
		}
		l := e.call("GET", "/scim/v2/Groups?filter="+url.QueryEscape(`displayName sw "B"`), nil).want(t, 200)
		if l.body["totalResults"] != float64(0) {
			t.Errorf("a refused create left a group: %s", l.raw)
		}
	})
}
