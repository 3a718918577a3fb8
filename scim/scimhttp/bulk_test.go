package scimhttp_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim/scimhttp"
)

// bulkRequest is a BulkRequest (RFC 7644 §3.7) of ops.
func bulkRequest(ops ...any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"}, "Operations": ops}
}

// bulkResults posts a BulkRequest and returns the BulkResponse's operations.
func bulkResults(t *testing.T, s *server, req map[string]any) []map[string]any {
	t.Helper()
	r := s.do("POST", "/Bulk", req)
	r.want(t, "bulk", http.StatusOK, "")
	raw, _ := r.body["Operations"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, it := range raw {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}

func postUser(bulkID, userName string) map[string]any {
	return map[string]any{"method": "POST", "path": "/Users", "bulkId": bulkID,
		"data": map[string]any{"schemas": []string{schemas.UserURN}, "userName": userName}}
}

func postGroup(bulkID, name string, memberRefs ...string) map[string]any {
	members := []any{}
	for _, ref := range memberRefs {
		members = append(members, map[string]any{"value": "bulkId:" + ref})
	}
	return map[string]any{"method": "POST", "path": "/Groups", "bulkId": bulkID,
		"data": map[string]any{"schemas": []string{schemas.GroupURN}, "displayName": name, "members": members}}
}

// TestBulkFailOnErrorsAtLimit: failOnErrors is the number of errors the service
// provider accepts before it stops (RFC 7644 §3.7.3). With failOnErrors equal to
// bulk.maxOperations, a request of that many failing operations runs every one of
// them.
func TestBulkFailOnErrorsAtLimit(t *testing.T) {
	forEachBackend(t, scimhttp.Options{BulkMaxOperations: 3}, func(t *testing.T, s *server) {
		bad := func(bulkID string) map[string]any {
			return map[string]any{"method": "POST", "path": "/Users", "bulkId": bulkID,
				"data": map[string]any{"schemas": []string{schemas.UserURN}}}
		}
		req := bulkRequest(bad("a"), bad("b"), bad("c"))
		req["failOnErrors"] = 3
		ops := bulkResults(t, s, req)
		if len(ops) != 3 {
			t.Fatalf("%d operations answered, want all 3: %v", len(ops), ops)
		}
		for i, op := range ops {
			if op["status"] != "400" {
				t.Errorf("operation %d: status %v, want 400", i, op["status"])
			}
		}
	})
}

// TestBulkReferenceToNonPost: only a POST creates a resource a bulkId reference can
// stand for (RFC 7644 §3.7.2); a reference to the bulkId of a PUT is 409 for the
// operation that makes it, even when the PUT succeeds.
func TestBulkReferenceToNonPost(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		u := s.do("POST", "/Users", map[string]any{"schemas": []string{schemas.UserURN}, "userName": "ann"})
		u.want(t, "create user", http.StatusCreated, "")
		id, _ := u.body["id"].(string)
		put := map[string]any{"method": "PUT", "path": "/Users/" + id, "bulkId": "put1",
			"data": map[string]any{"schemas": []string{schemas.UserURN}, "userName": "ann", "displayName": "Ann"}}
		ops := bulkResults(t, s, bulkRequest(put, postGroup("g1", "team", "put1")))
		if len(ops) != 2 {
			t.Fatalf("%d operations answered, want 2: %v", len(ops), ops)
		}
		if ops[0]["method"] != "PUT" || ops[0]["status"] != "200" {
			t.Errorf("PUT: %v, want 200", ops[0])
		}
		if ops[1]["method"] != "POST" || ops[1]["status"] != "409" {
			t.Errorf("POST referencing the PUT: %v, want 409", ops[1])
		}
		if g := s.do("GET", "/Groups?filter="+strings.ReplaceAll(`displayName eq "team"`, " ", "%20"), nil); g.body["totalResults"] != float64(0) {
			t.Errorf("the group was created: %s", g.raw)
		}
	})
}

// TestBulkCircularReferenceNamed: a circular bulkId reference is 409 for the
// operations in it (RFC 7644 §3.7.1 lets the service provider refuse it); the error
// names the operations that form the cycle, so the client knows which ones to
// split into a POST and a later PATCH, and not an operation the cycle merely
// references that ran.
func TestBulkCircularReferenceNamed(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		ops := bulkResults(t, s, bulkRequest(
			postUser("user-bob", "bob"),
			postGroup("grp-alpha", "alpha", "user-bob", "grp-gamma"),
			postGroup("grp-gamma", "gamma", "grp-alpha"),
		))
		if len(ops) != 3 {
			t.Fatalf("%d operations answered, want 3: %v", len(ops), ops)
		}
		if ops[0]["bulkId"] != "user-bob" || ops[0]["status"] != "201" {
			t.Fatalf("the user: %v, want 201", ops[0])
		}
		for _, op := range ops[1:] {
			if op["status"] != "409" {
				t.Errorf("%v: status %v, want 409", op["bulkId"], op["status"])
			}
			resp, _ := op["response"].(map[string]any)
			d, _ := resp["detail"].(string)
			if !strings.Contains(d, "grp-alpha") || !strings.Contains(d, "grp-gamma") {
				t.Errorf("%v: detail %q does not name the cycle grp-alpha, grp-gamma", op["bulkId"], d)
			}
			if strings.Contains(d, "user-bob") {
				t.Errorf("%v: detail %q names user-bob, which is not in the cycle", op["bulkId"], d)
			}
		}
	})
}

// TestBulkLocationIsCanonical: an operation's location is the resource's own URI,
// its meta.location (RFC 7644 §3.7.3, RFC 7643 §3.1), even when the path names the
// resource's id in other case (scimd ids are case-insensitive).
func TestBulkLocationIsCanonical(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		u := s.do("POST", "/Users", map[string]any{"schemas": []string{schemas.UserURN}, "userName": "ann"})
		u.want(t, "create user", http.StatusCreated, "")
		id, _ := u.body["id"].(string)
		meta, _ := u.body["meta"].(map[string]any)
		loc, _ := meta["location"].(string)
		if id == "" || strings.ToUpper(id) == id || loc == "" {
			t.Fatalf("created %s: want a lower-case id and a meta.location", u.raw)
		}
		put := map[string]any{"method": "PUT", "path": "/Users/" + strings.ToUpper(id),
			"data": map[string]any{"schemas": []string{schemas.UserURN}, "userName": "ann", "displayName": "Ann"}}
		ops := bulkResults(t, s, bulkRequest(put))
		if len(ops) != 1 || ops[0]["status"] != "200" || ops[0]["location"] != loc {
			t.Errorf("PUT by the upper-case id: %v, want status 200 and location %s", ops, loc)
		}
	})
}
