package scimhttp_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim/scimhttp"
)

// TestGetIfNoneMatch: a GET with If-None-Match answers 304 Not Modified, with the
// ETag and no body, when the list names the current version under weak comparison
// or is "*" (any current representation: RFC 7232 §3.2, RFC 7644 §3.14), and the
// resource otherwise.
func TestGetIfNoneMatch(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		id, etag := s.user("ann")
		if etag != `W/"1"` {
			t.Fatalf("ETag %q after create, want W/\"1\"", etag)
		}
		for _, tc := range []struct {
			name, header string
			status       int
		}{
			{"star", "*", http.StatusNotModified},
			{"current_weak", `W/"1"`, http.StatusNotModified},
			{"current_strong", `"1"`, http.StatusNotModified},
			{"current_in_list", `W/"7", W/"1"`, http.StatusNotModified},
			{"other_version", `W/"2"`, http.StatusOK},
			{"older_version", `W/"0"`, http.StatusOK},
			{"none", "", http.StatusOK},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do("GET", "/Users/"+id, nil, "If-None-Match", tc.header)
				r.want(t, "GET If-None-Match: "+tc.header, tc.status, "")
				if got := r.header.Get("ETag"); got != etag {
					t.Errorf("ETag %q, want %q", got, etag)
				}
				if tc.status == http.StatusNotModified && len(r.raw) != 0 {
					t.Errorf("304 with a body: %s", r.raw)
				}
				if tc.status == http.StatusOK && r.body["id"] != id {
					t.Errorf("200 without the resource: %s", r.raw)
				}
			})
		}
		// "*" matches a current representation only: a missing resource is 404.
		s.do("GET", "/Users/2819c223-7f76-453a-919d-413861904646", nil, "If-None-Match", "*").
			want(t, "GET a missing user with If-None-Match: *", http.StatusNotFound, "")
		// After a change the old tag no longer matches.
		s.do("PATCH", "/Users/"+id, map[string]any{"schemas": []string{schemas.PatchOpURN},
			"Operations": []any{map[string]any{"op": "replace", "path": "nickName", "value": "annie"}}}).
			want(t, "PATCH", http.StatusOK, "")
		r := s.do("GET", "/Users/"+id, nil, "If-None-Match", etag)
		r.want(t, "GET with the old ETag", http.StatusOK, "")
		if got := r.header.Get("ETag"); got != `W/"2"` {
			t.Errorf("ETag %q after a change, want W/\"2\"", got)
		}
	})
}

// TestIfMatch: PUT, PATCH and DELETE with an If-Match that names another version
// are 412 Precondition Failed and change nothing; the current version or "*"
// lets them through (RFC 7232 §3.1, RFC 7644 §3.14).
func TestIfMatch(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		id, _ := s.user("ann")
		put := func(nick string) map[string]any {
			return map[string]any{"schemas": []string{schemas.UserURN}, "userName": "ann", "nickName": nick}
		}
		patch := func(nick string) map[string]any {
			return map[string]any{"schemas": []string{schemas.PatchOpURN},
				"Operations": []any{map[string]any{"op": "replace", "path": "nickName", "value": nick}}}
		}
		nick := func() any {
			t.Helper()
			r := s.do("GET", "/Users/"+id, nil)
			r.want(t, "GET", http.StatusOK, "")
			return r.body["nickName"]
		}
		for _, stale := range []string{`W/"0"`, `W/"2"`, `"9"`, `W/"3", W/"4"`} {
			s.do("PUT", "/Users/"+id, put("put"), "If-Match", stale).want(t, "PUT If-Match: "+stale, http.StatusPreconditionFailed, "")
			s.do("PATCH", "/Users/"+id, patch("patch"), "If-Match", stale).want(t, "PATCH If-Match: "+stale, http.StatusPreconditionFailed, "")
			s.do("DELETE", "/Users/"+id, nil, "If-Match", stale).want(t, "DELETE If-Match: "+stale, http.StatusPreconditionFailed, "")
		}
		if got := nick(); got != nil {
			t.Fatalf("after refused writes nickName is %v, want none", got)
		}
		r := s.do("PUT", "/Users/"+id, put("one"), "If-Match", `W/"1"`)
		r.want(t, "PUT at the current version", http.StatusOK, "")
		if got := r.header.Get("ETag"); got != `W/"2"` {
			t.Errorf("ETag after PUT %q, want W/\"2\"", got)
		}
		s.do("PATCH", "/Users/"+id, patch("two"), "If-Match", `W/"1", "2"`).want(t, "PATCH at a listed current version", http.StatusOK, "")
		s.do("PATCH", "/Users/"+id, patch("three"), "If-Match", "*").want(t, "PATCH If-Match: *", http.StatusOK, "")
		if got := nick(); got != "three" {
			t.Errorf("nickName %v, want three", got)
		}
		s.do("DELETE", "/Users/"+id, nil, "If-Match", `W/"4"`).want(t, "DELETE at the current version", http.StatusNoContent, "")
		s.do("GET", "/Users/"+id, nil).want(t, "GET after DELETE", http.StatusNotFound, "")
	})
}

// TestMethodNotAllowed: a method a route does not serve is 405 with an Allow header
// listing the methods it does (RFC 9110 §15.5.6).
func TestMethodNotAllowed(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		id, _ := s.user("ann")
		for _, tc := range []struct {
			method, path, allow string
		}{
			{"DELETE", "/Users", "GET, POST"},
			{"PUT", "/Groups", "GET, POST"},
			{"POST", "/Users/" + id, "DELETE, GET, PATCH, PUT"},
			{"GET", "/Users/.search", "POST"},
			{"GET", "/.search", "POST"},
			{"GET", "/Bulk", "POST"},
			{"POST", "/ServiceProviderConfig", "GET"},
			{"DELETE", "/Schemas", "GET"},
			{"PATCH", "/ResourceTypes/User", "GET"},
		} {
			r := s.do(tc.method, tc.path, nil)
			r.want(t, tc.method+" "+tc.path, http.StatusMethodNotAllowed, "")
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	})
}

// TestUnsupportedMediaType: a body sent as anything but application/scim+json or
// application/json is 415 (RFC 7644 §3.1, §3.8), and nothing is written.
func TestUnsupportedMediaType(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		id, _ := s.user("ann")
		body := `{"schemas":["` + schemas.UserURN + `"],"userName":"bob"}`
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=x", "not a media type"} {
			s.do("POST", "/Users", body, "Content-Type", ct).want(t, "POST as "+ct, http.StatusUnsupportedMediaType, "")
			s.do("PUT", "/Users/"+id, body, "Content-Type", ct).want(t, "PUT as "+ct, http.StatusUnsupportedMediaType, "")
		}
		for _, ct := range []string{"application/json", "application/scim+json; charset=utf-8"} {
			s.do("POST", "/Users", strings.Replace(body, "bob", "bob-"+strings.Fields(ct)[0], 1), "Content-Type", ct).
				want(t, "POST as "+ct, http.StatusCreated, "")
		}
		r := s.do("GET", "/Users?filter="+`userName+sw+"bob"`, nil)
		r.want(t, "list", http.StatusOK, "")
		if n := r.body["totalResults"]; n != float64(2) {
			t.Errorf("%v users named bob…, want the 2 sent as JSON", n)
		}
	})
}

// TestBodyTooLarge: a body over the server's limit is 413 (RFC 9110 §15.5.14), and
// one at the limit is read.
func TestBodyTooLarge(t *testing.T) {
	const limit = 4 << 10
	forEachBackend(t, scimhttp.Options{MaxBodyBytes: limit}, func(t *testing.T, s *server) {
		body := func(n int) string {
			head := `{"schemas":["` + schemas.UserURN + `"],"userName":"ann","nickName":"`
			tail := `"}`
			return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
		}
		s.do("POST", "/Users", body(limit+1), "").want(t, "a body one byte over", http.StatusRequestEntityTooLarge, "")
		s.do("POST", "/Users", body(limit), "").want(t, "a body at the limit", http.StatusCreated, "")
	})
}

// TestBulkIDs: RFC 7644 §3.7 sets no length for a bulkId. One of 64 bytes and one
// longer are both accepted and echoed whole in the BulkResponse; an error detail
// that names a bulkId (a duplicate is 400 invalidValue, §3.7.3) shows up to 64
// bytes of it whole and cuts a longer one there, never inside a character.
func TestBulkIDs(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		id64 := strings.Repeat("b", 64)
		id65 := strings.Repeat("c", 65)
		post := func(bulkID, userName string) map[string]any {
			return map[string]any{"method": "POST", "path": "/Users", "bulkId": bulkID,
				"data": map[string]any{"schemas": []string{schemas.UserURN}, "userName": userName}}
		}
		bulk := func(ops ...any) map[string]any {
			return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"}, "Operations": ops}
		}
		r := s.do("POST", "/Bulk", bulk(post(id64, "ann"), post(id65, "bob")))
		r.want(t, "bulk", http.StatusOK, "")
		ops, _ := r.body["Operations"].([]any)
		if len(ops) != 2 {
			t.Fatalf("BulkResponse %s, want 2 operations", r.raw)
		}
		for i, want := range []string{id64, id65} {
			op, _ := ops[i].(map[string]any)
			if op["bulkId"] != want || op["status"] != "201" {
				t.Errorf("operation %d: bulkId %v, status %v; want %q and 201", i, op["bulkId"], op["status"], want)
			}
		}
		for _, tc := range []struct {
			name, bulkID, shown string
		}{
			{"64_bytes", id64, `"` + id64 + `"`},
			{"65_bytes", id65, `"` + id65[:64] + `…"`},
			// "é" is two bytes; the 64th byte falls inside one: the detail stops before it.
			{"cut_inside_a_character", strings.Repeat("x", 63) + "éé", `"` + strings.Repeat("x", 63) + `…"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := s.do("POST", "/Bulk", bulk(post(tc.bulkID, "carol"), post(tc.bulkID, "dave")))
				r.want(t, "duplicate bulkIds", http.StatusBadRequest, "invalidValue")
				if d, _ := r.body["detail"].(string); !strings.Contains(d, tc.shown) {
					t.Errorf("detail %q does not name the bulkId as %s", d, tc.shown)
				}
			})
		}
	})
}

// TestFilterDepth: a filter nested as deep as the documented limit (16 levels of
// parentheses, not (…) and […]) is served; one level more is 400 invalidFilter.
func TestFilterDepth(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		s.user("ann")
		nested := func(levels int) string {
			return strings.Repeat("(", levels) + `userName eq "ann"` + strings.Repeat(")", levels)
		}
		r := s.do("POST", "/Users/.search", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}, "filter": nested(16)})
		r.want(t, "16 levels", http.StatusOK, "")
		if r.body["totalResults"] != float64(1) {
			t.Errorf("16 levels: %s, want ann", r.raw)
		}
		s.do("POST", "/Users/.search", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}, "filter": nested(17)}).
			want(t, "17 levels", http.StatusBadRequest, "invalidFilter")
		// An escaped quote (RFC 7159 §7) does not end a string: the levels after it count.
		s.do("POST", "/Users/.search", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}, "filter": `userName eq "a\"b" or ` + nested(17)}).
			want(t, "17 levels after an escaped quote", http.StatusBadRequest, "invalidFilter")
	})
}
