package scimhttp_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// TestStatus: every error kind has its HTTP status and scimType, as RFC 7644 §3.12
// (Table 9), RFC 9865 (cursors) and RFC 6585 §4 (429) give them.
func TestStatus(t *testing.T) {
	type want struct {
		status   int
		scimType string
	}
	table := map[scim.ErrorKind]want{
		scim.KindInternal:        {http.StatusInternalServerError, ""},
		scim.KindInvalidValue:    {http.StatusBadRequest, "invalidValue"},
		scim.KindInvalidSyntax:   {http.StatusBadRequest, "invalidSyntax"},
		scim.KindInvalidFilter:   {http.StatusBadRequest, "invalidFilter"},
		scim.KindInvalidPath:     {http.StatusBadRequest, "invalidPath"},
		scim.KindNoTarget:        {http.StatusBadRequest, "noTarget"},
		scim.KindMutability:      {http.StatusBadRequest, "mutability"},
		scim.KindTooMany:         {http.StatusBadRequest, "tooMany"},
		scim.KindUniqueness:      {http.StatusConflict, "uniqueness"},
		scim.KindNotFound:        {http.StatusNotFound, ""},
		scim.KindPrecondition:    {http.StatusPreconditionFailed, ""},
		scim.KindUnauthorized:    {http.StatusUnauthorized, ""},
		scim.KindForbidden:       {http.StatusForbidden, ""},
		scim.KindUnavailable:     {http.StatusServiceUnavailable, ""},
		scim.KindInvalidCursor:   {http.StatusBadRequest, "invalidCursor"},
		scim.KindExpiredCursor:   {http.StatusBadRequest, "expiredCursor"},
		scim.KindTooManyRequests: {http.StatusTooManyRequests, ""},
	}
	for _, k := range scim.ErrorKinds() {
		w, ok := table[k]
		if !ok {
			t.Errorf("error kind %d has no row in this table: decide its status and scimType", k)
			continue
		}
		if st, typ := scimhttp.Status(k); st != w.status || string(typ) != w.scimType {
			t.Errorf("Status(%d) = %d %q, want %d %q", k, st, typ, w.status, w.scimType)
		}
	}
}

// TestErrorsOnTheWire: the service's refusals reach the client as RFC 7644 §3.12
// error bodies with the status and scimType of their kind.
func TestErrorsOnTheWire(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		id, _ := s.user("ann")
		user := func(kv ...any) map[string]any {
			m := map[string]any{"schemas": []string{schemas.UserURN}}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		}
		patch := func(ops ...any) map[string]any {
			return map[string]any{"schemas": []string{schemas.PatchOpURN}, "Operations": ops}
		}
		for _, tc := range []struct {
			name, method, path string
			body               any
			status             int
			scimType           string
		}{
			{"uniqueness", "POST", "/Users", user("userName", "ANN"), http.StatusConflict, "uniqueness"},
			{"invalid_value", "POST", "/Users", user("userName", 7), http.StatusBadRequest, "invalidValue"},
			{"missing_required", "POST", "/Users", user("nickName", "x"), http.StatusBadRequest, "invalidValue"},
			{"invalid_syntax", "POST", "/Users", `{"userName":`, http.StatusBadRequest, "invalidSyntax"},
			{"invalid_filter", "GET", "/Users?filter=userName+zz+%22a%22", nil, http.StatusBadRequest, "invalidFilter"},
			{"unknown_filter_attribute", "GET", "/Users?filter=nope+eq+%22a%22", nil, http.StatusBadRequest, "invalidFilter"},
			{"invalid_path", "PATCH", "/Users/" + id, patch(map[string]any{"op": "replace", "path": "nope.nope", "value": "x"}), http.StatusBadRequest, "invalidPath"},
			{"no_target", "PATCH", "/Users/" + id, patch(map[string]any{"op": "remove"}), http.StatusBadRequest, "noTarget"},
			{"mutability", "PATCH", "/Users/" + id, patch(map[string]any{"op": "replace", "path": "id", "value": "x"}), http.StatusBadRequest, "mutability"},
			{"not_found", "GET", "/Users/2819c223-7f76-453a-919d-413861904646", nil, http.StatusNotFound, ""},
			{"unknown_endpoint", "GET", "/Nope", nil, http.StatusNotFound, ""},
			{"precondition", "DELETE", "/Users/" + id, nil, http.StatusPreconditionFailed, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var headers []string
				if tc.name == "precondition" {
					headers = []string{"If-Match", `W/"9"`}
				}
				r := s.do(tc.method, tc.path, tc.body, headers...)
				r.want(t, tc.method+" "+tc.path, tc.status, tc.scimType)
				if d, _ := r.body["detail"].(string); strings.TrimSpace(d) == "" {
					t.Errorf("no detail: %s", r.raw)
				}
				if sc, _ := r.body["schemas"].([]any); len(sc) != 1 || sc[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
					t.Errorf("schemas %v, want the Error message schema", r.body["schemas"])
				}
			})
		}
		// A request without a valid token is 401 in the same format.
		s.do("GET", "/Users", nil, "Authorization", "Bearer nope").want(t, "a wrong token", http.StatusUnauthorized, "")
	})
}

// TestTooManyRequests: past its token's rate a request is 429 with Retry-After
// (RFC 6585 §4) in the SCIM error format, and nothing it asked for is done.
func TestTooManyRequests(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			s := newServer(t, b, scimhttp.Options{}, scim.WithRateLimiter(scim.NewRateLimiter(0.01, 2, 0, nil)))
			s.user("ann")
			s.do("GET", "/Users", nil).want(t, "the second request", http.StatusOK, "")
			r := s.do("POST", "/Users", map[string]any{"schemas": []string{schemas.UserURN}, "userName": "bob"})
			r.want(t, "the third request", http.StatusTooManyRequests, "")
			if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 {
				t.Errorf("Retry-After %q, want a number of seconds", r.header.Get("Retry-After"))
			}
			other := s.issue(scim.DefaultTenant, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}})
			r = s.do("GET", "/Users?filter=userName+eq+%22bob%22", nil, "Authorization", "Bearer "+other)
			r.want(t, "another token's list", http.StatusOK, "")
			if r.body["totalResults"] != float64(0) {
				t.Errorf("the refused POST created bob: %s", r.raw)
			}
		})
	}
}
