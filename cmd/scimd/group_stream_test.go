package main

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/scimd/scimd/scim"
)

// TestGroupMembersStreamed: the default answer about a group (GET, PUT and PATCH
// 200), whose members are written row by row from the database, carries the same
// members as the answer built in memory (attributes=members,displayName), and a
// group without members has no members attribute.
func TestGroupMembersStreamed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		var members []any
		for i := range 250 {
			r := e.call("POST", "/scim/v2/Users", user(fmt.Sprintf("stream%03d@example.com", i), "displayName", fmt.Sprintf("Stream \"%d\" <&>", i))).want(t, 201)
			members = append(members, map[string]any{"value": str(r.body, "id")})
		}
		g := e.call("POST", "/scim/v2/Groups", map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "streamed", "members": members[:200],
		}).want(t, 201)
		id := str(g.body, "id")
		membersOf := func(r resp) string {
			t.Helper()
			var body struct {
				Members []map[string]any `json:"members"`
			}
			if err := json.Unmarshal([]byte(r.raw), &body); err != nil {
				t.Fatalf("answer is not JSON: %v\n%.300s", err, r.raw)
			}
			b, _ := json.Marshal(body.Members)
			return string(b)
		}
		streamed := e.call("GET", "/scim/v2/Groups/"+id, nil).want(t, 200)
		built := e.call("GET", "/scim/v2/Groups/"+id+"?attributes=members,displayName", nil).want(t, 200)
		if membersOf(streamed) != membersOf(built) || len(streamed.body["members"].([]any)) != 200 {
			t.Fatalf("streamed members differ from built ones:\n%.400s\n%.400s", membersOf(streamed), membersOf(built))
		}
		if streamed.header.Get("ETag") == "" || streamed.body["displayName"] != "streamed" || str(streamed.body, "id") != id {
			t.Fatalf("streamed group: %v %.300s", streamed.header, streamed.raw)
		}
		// PATCH 200 answer, with the new members.
		p := e.call("PATCH", "/scim/v2/Groups/"+id, map[string]any{
			"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
			"Operations": []any{map[string]any{"op": "add", "path": "members", "value": members[200:]}},
		}).want(t, 200)
		if n := len(p.body["members"].([]any)); n != 250 {
			t.Fatalf("PATCH answer lists %d members, want 250", n)
		}
		// PUT with no members: the answer has no members attribute.
		u := e.call("PUT", "/scim/v2/Groups/"+id, map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "emptied",
		}).want(t, 200)
		if _, ok := u.body["members"]; ok || u.body["displayName"] != "emptied" {
			t.Fatalf("PUT without members answered %.300s", u.raw)
		}
		if r := e.call("GET", "/scim/v2/Groups/"+id, nil).want(t, 200); r.body["members"] != nil {
			t.Fatalf("empty group lists members: %.300s", r.raw)
		}
	})
}

// TestIdPGroupPatchMinimal: a group PATCH from an okta or entra token answers 204
// with the new ETag (both connectors take it and read no member list), any other
// token 200 with the group; the change is made either way.
func TestIdPGroupPatchMinimal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		u := e.call("POST", "/scim/v2/Users", user("idp-member@example.com")).want(t, 201)
		for _, profile := range []string{"okta", "entra", "lenient", "strict"} {
			tok, err := e.tokens.Issue(t.Context(), "default", scim.TokenOptions{Scopes: []string{"scim"}, Profile: profile})
			if err != nil {
				t.Fatal(err)
			}
			g := e.call("POST", "/scim/v2/Groups", map[string]any{
				"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "idp " + profile,
			}).want(t, 201)
			id := str(g.body, "id")
			r := e.callAs(tok, "PATCH", "/scim/v2/Groups/"+id, map[string]any{
				"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
				"Operations": []any{map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": str(u.body, "id")}}}},
			})
			want := 200
			if profile == "okta" || profile == "entra" {
				want = 204
			}
			if r.status != want || r.header.Get("ETag") != `W/"2"` || (want == 204 && r.raw != "") {
				t.Fatalf("%s: %d %v %q, want %d with ETag W/\"2\"", profile, r.status, r.header, r.raw, want)
			}
			if m := e.call("GET", "/scim/v2/Groups/"+id, nil).want(t, 200).body["members"]; m == nil {
				t.Fatalf("%s: the member was not added", profile)
			}
		}
	})
}
