package scimhttp_test

import (
	"net/http"
	"testing"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
)

// TestAuthorization: a request without a valid token is 401 (RFC 7644 §2), a token
// without the scim scope is 403, a sandbox token reads (GET and POST …/.search)
// but every change is 403 and changes nothing, and a token of another tenant sees
// none of this tenant's resources (404).
func TestAuthorization(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		id, _ := s.user("ann")
		compatOnly := s.issue(scim.DefaultTenant, scim.TokenOptions{Scopes: []string{scim.ScopeCompat}})
		sandbox := s.issue(scim.DefaultTenant, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}, Sandbox: true})
		other := s.issue("other", scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}})
		bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

		s.do("GET", "/Users", nil, "Authorization", "").want(t, "no Authorization", http.StatusUnauthorized, "")
		s.do("GET", "/Users", nil, bearer("scimd_not-a-token")...).want(t, "an unknown token", http.StatusUnauthorized, "")
		s.do("GET", "/Users", nil, bearer(compatOnly)...).want(t, "a token without the scim scope", http.StatusForbidden, "")

		s.do("GET", "/Users/"+id, nil, bearer(sandbox)...).want(t, "sandbox GET", http.StatusOK, "")
		s.do("POST", "/Users/.search", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}},
			bearer(sandbox)...).want(t, "sandbox search", http.StatusOK, "")
		patch := map[string]any{"schemas": []string{schemas.PatchOpURN},
			"Operations": []any{map[string]any{"op": "replace", "path": "nickName", "value": "x"}}}
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/Users", map[string]any{"schemas": []string{schemas.UserURN}, "userName": "bob"}},
			{"PUT", "/Users/" + id, map[string]any{"schemas": []string{schemas.UserURN}, "userName": "ann", "nickName": "x"}},
			{"PATCH", "/Users/" + id, patch},
			{"DELETE", "/Users/" + id, nil},
			{"POST", "/Bulk", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"},
				"Operations": []any{map[string]any{"method": "DELETE", "path": "/Users/" + id}}}},
		} {
			s.do(c.method, c.path, c.body, bearer(sandbox)...).want(t, "sandbox "+c.method+" "+c.path, http.StatusForbidden, "")
		}
		r := s.do("GET", "/Users/"+id, nil)
		r.want(t, "GET after the sandbox's attempts", http.StatusOK, "")
		if r.header.Get("ETag") != `W/"1"` || r.body["nickName"] != nil {
			t.Errorf("the sandbox changed the user: ETag %s, %s", r.header.Get("ETag"), r.raw)
		}
		if n := s.do("GET", "/Users", nil).body["totalResults"]; n != float64(1) {
			t.Errorf("%v users after the sandbox's create, want 1", n)
		}

		s.do("GET", "/Users/"+id, nil, bearer(other)...).want(t, "another tenant's GET", http.StatusNotFound, "")
		s.do("DELETE", "/Users/"+id, nil, bearer(other)...).want(t, "another tenant's DELETE", http.StatusNotFound, "")
		r = s.do("GET", "/Users", nil, bearer(other)...)
		r.want(t, "another tenant's list", http.StatusOK, "")
		if r.body["totalResults"] != float64(0) {
			t.Errorf("another tenant lists %v users, want 0", r.body["totalResults"])
		}
	})
}
