package scimhttp_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim/scimhttp"
)

// TestGroupAnswers: a group is answered with all its members (value, display,
// type) and its ETag, on POST (201 with Location, RFC 7644 §3.3), GET and PATCH;
// attributes and excludedAttributes leave the members out (§3.9); a PATCH with
// Prefer: return=minimal is 204 with the ETag and Preference-Applied (RFC 7240).
func TestGroupAnswers(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		ann, _ := s.user("ann")
		bob, _ := s.user("bob")
		members := func(r reply) []string {
			t.Helper()
			var out []string
			ms, _ := r.body["members"].([]any)
			for _, m := range ms {
				mm := m.(map[string]any)
				if mm["type"] != "User" || mm["display"] == nil {
					t.Errorf("member %v without type User and display", mm)
				}
				out = append(out, mm["value"].(string))
			}
			slices.Sort(out)
			return out
		}
		both := []string{ann, bob}
		slices.Sort(both)
		r := s.do("POST", "/Groups", map[string]any{"schemas": []string{schemas.GroupURN}, "displayName": "team",
			"members": []any{map[string]any{"value": ann}, map[string]any{"value": bob}}})
		r.want(t, "POST /Groups", http.StatusCreated, "")
		id, _ := r.body["id"].(string)
		meta, _ := r.body["meta"].(map[string]any)
		if loc := r.header.Get("Location"); loc == "" || loc != meta["location"] {
			t.Errorf("Location %q, meta.location %v: want the same, set", loc, meta["location"])
		}
		if got := members(r); !slices.Equal(got, both) {
			t.Errorf("POST answered members %v, want %v", got, both)
		}
		r = s.do("GET", "/Groups/"+id, nil)
		r.want(t, "GET", http.StatusOK, "")
		if got := members(r); !slices.Equal(got, both) || r.header.Get("ETag") != `W/"1"` || r.body["displayName"] != "team" {
			t.Errorf("GET: members %v, ETag %s, %s", got, r.header.Get("ETag"), r.raw)
		}
		for _, q := range []string{"?attributes=displayName", "?excludedAttributes=members"} {
			r = s.do("GET", "/Groups/"+id+q, nil)
			r.want(t, "GET "+q, http.StatusOK, "")
			if r.body["members"] != nil || r.body["displayName"] != "team" || r.body["id"] != id {
				t.Errorf("GET %s: %s", q, r.raw)
			}
		}
		remove := map[string]any{"schemas": []string{schemas.PatchOpURN},
			"Operations": []any{map[string]any{"op": "remove", "path": `members[value eq "` + bob + `"]`}}}
		r = s.do("PATCH", "/Groups/"+id, remove)
		r.want(t, "PATCH", http.StatusOK, "")
		if got := members(r); !slices.Equal(got, []string{ann}) || r.header.Get("ETag") != `W/"2"` {
			t.Errorf("PATCH answered members %v, ETag %s", got, r.header.Get("ETag"))
		}
		add := map[string]any{"schemas": []string{schemas.PatchOpURN},
			"Operations": []any{map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": bob}}}}}
		r = s.do("PATCH", "/Groups/"+id, add, "Prefer", "return=minimal")
		r.want(t, "PATCH Prefer: return=minimal", http.StatusNoContent, "")
		if len(r.raw) != 0 || r.header.Get("ETag") != `W/"3"` || r.header.Get("Preference-Applied") != "return=minimal" {
			t.Errorf("204: body %q, ETag %s, Preference-Applied %q", r.raw, r.header.Get("ETag"), r.header.Get("Preference-Applied"))
		}
		if got := members(s.do("GET", "/Groups/"+id, nil)); !slices.Equal(got, both) {
			t.Errorf("after the minimal PATCH members %v, want %v", got, both)
		}
		// A group without members.
		r = s.do("POST", "/Groups", map[string]any{"schemas": []string{schemas.GroupURN}, "displayName": "empty"})
		r.want(t, "POST an empty group", http.StatusCreated, "")
		r = s.do("GET", "/Groups/"+r.body["id"].(string), nil)
		r.want(t, "GET an empty group", http.StatusOK, "")
		if ms, _ := r.body["members"].([]any); len(ms) != 0 || r.body["displayName"] != "empty" {
			t.Errorf("an empty group: %s", r.raw)
		}
		// DELETE is 204 without a body; the group is gone.
		r = s.do("DELETE", "/Groups/"+id, nil)
		r.want(t, "DELETE", http.StatusNoContent, "")
		if len(r.raw) != 0 {
			t.Errorf("DELETE answered a body: %s", r.raw)
		}
		s.do("GET", "/Groups/"+id, nil).want(t, "GET after DELETE", http.StatusNotFound, "")
	})
}

// TestBodyShapes: a body that is not one JSON object is 400 invalidSyntax (RFC
// 7644 §3.12), whatever the route.
func TestBodyShapes(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		id, _ := s.user("ann")
		for _, body := range []string{"", "null", "[]", `"user"`, "7", "true", `{"userName":`, `{"userName":"a"} {}`, `{"userName":"a","userName":"b"}`} {
			for _, c := range []struct{ method, path string }{{"POST", "/Users"}, {"PUT", "/Users/" + id}, {"PATCH", "/Users/" + id}, {"POST", "/Bulk"}} {
				s.do(c.method, c.path, body).want(t, c.method+" "+c.path+" with "+body, http.StatusBadRequest, "invalidSyntax")
			}
		}
	})
}
