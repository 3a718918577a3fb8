package scimhttp_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim/scimhttp"
)

// TestServiceProviderConfig: the configuration (RFC 7643 §5) advertises what the
// server is configured to do: bulk limits as set (the payload never below the body
// limit), and the features it implements.
func TestServiceProviderConfig(t *testing.T) {
	for _, tc := range []struct {
		name        string
		o           scimhttp.Options
		ops         float64
		payloadSize float64
	}{
		{"configured", scimhttp.Options{MaxBodyBytes: 1 << 20, BulkMaxOperations: 7, BulkMaxPayloadBytes: 2 << 20}, 7, 2 << 20},
		{"payload_at_least_the_body_limit", scimhttp.Options{MaxBodyBytes: 3 << 20, BulkMaxPayloadBytes: 1 << 20}, scimhttp.DefaultBulkMaxOperations, 3 << 20},
		{"one_byte_payload_raised_to_the_body_limit", scimhttp.Options{MaxBodyBytes: 1024, BulkMaxPayloadBytes: 1}, scimhttp.DefaultBulkMaxOperations, 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, tc.o, func(t *testing.T, s *server) {
				r := s.do("GET", "/ServiceProviderConfig", nil)
				r.want(t, "GET /ServiceProviderConfig", http.StatusOK, "")
				if sc, _ := r.body["schemas"].([]any); len(sc) != 1 || sc[0] != schemas.ServiceProviderConfigURN {
					t.Errorf("schemas %v", r.body["schemas"])
				}
				bulk, _ := r.body["bulk"].(map[string]any)
				if bulk["supported"] != true || bulk["maxOperations"] != tc.ops || bulk["maxPayloadSize"] != tc.payloadSize {
					t.Errorf("bulk %v, want supported, maxOperations %v, maxPayloadSize %v", bulk, tc.ops, tc.payloadSize)
				}
				for _, f := range []string{"patch", "filter", "sort", "etag", "changePassword"} {
					if m, _ := r.body[f].(map[string]any); m["supported"] != true {
						t.Errorf("%s %v, want supported", f, r.body[f])
					}
				}
				if f, _ := r.body["filter"].(map[string]any); f["maxResults"] == nil {
					t.Errorf("filter %v without maxResults", f)
				}
				// The bearer token is the preferred scheme: the one primary value of the
				// multi-valued attribute (RFC 7643 §2.4, §5; the §8.5 example).
				a, _ := r.body["authenticationSchemes"].([]any)
				var primary []any
				for _, v := range a {
					if m, _ := v.(map[string]any); m["primary"] == true {
						primary = append(primary, m["type"])
					}
				}
				if len(primary) != 1 || primary[0] != "oauthbearertoken" {
					t.Errorf("authenticationSchemes %v: primary %v, want only oauthbearertoken", a, primary)
				}
			})
		})
	}
}

// TestBulkMaxOperations: a bulk request of more operations than advertised is 413
// (RFC 7644 §3.7.4); one of exactly that many runs.
func TestBulkMaxOperations(t *testing.T) {
	forEachBackend(t, scimhttp.Options{BulkMaxOperations: 3}, func(t *testing.T, s *server) {
		bulk := func(n int) map[string]any {
			ops := make([]any, n)
			for i := range ops {
				ops[i] = map[string]any{"method": "POST", "path": "/Users", "bulkId": fmt.Sprint("u", n, i),
					"data": map[string]any{"schemas": []string{schemas.UserURN}, "userName": fmt.Sprint("user", n, "-", i)}}
			}
			return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"}, "Operations": ops}
		}
		s.do("POST", "/Bulk", bulk(4)).want(t, "4 operations", http.StatusRequestEntityTooLarge, "")
		r := s.do("POST", "/Bulk", bulk(3))
		r.want(t, "3 operations", http.StatusOK, "")
		if ops, _ := r.body["Operations"].([]any); len(ops) != 3 {
			t.Errorf("%d results, want 3", len(ops))
		}
	})
}

// TestDiscovery: /ResourceTypes and /Schemas list User and Group with their
// extensions (RFC 7644 §4), serve each by id, answer an unknown id 404 and refuse
// a filter with 403.
func TestDiscovery(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		r := s.do("GET", "/ResourceTypes", nil)
		r.want(t, "GET /ResourceTypes", http.StatusOK, "")
		endpoints := map[string]string{}
		for _, it := range r.body["Resources"].([]any) {
			m := it.(map[string]any)
			endpoints[m["name"].(string)] = m["endpoint"].(string)
		}
		if endpoints["User"] != "/Users" || endpoints["Group"] != "/Groups" || len(endpoints) != 2 {
			t.Errorf("resource types %v, want User at /Users and Group at /Groups", endpoints)
		}
		if r.body["totalResults"] != float64(2) {
			t.Errorf("totalResults %v, want 2", r.body["totalResults"])
		}
		user := s.do("GET", "/ResourceTypes/User", nil)
		user.want(t, "GET /ResourceTypes/User", http.StatusOK, "")
		var exts []string
		for _, e := range user.body["schemaExtensions"].([]any) {
			exts = append(exts, e.(map[string]any)["schema"].(string))
		}
		for _, want := range []string{schemas.EnterpriseUserURN, schemas.ScimdUserURN} {
			if !slices.Contains(exts, want) {
				t.Errorf("User extensions %v lack %s", exts, want)
			}
		}
		if user.body["schema"] != schemas.UserURN {
			t.Errorf("User schema %v", user.body["schema"])
		}
		s.do("GET", "/ResourceTypes/Nope", nil).want(t, "an unknown resource type", http.StatusNotFound, "")

		r = s.do("GET", "/Schemas", nil)
		r.want(t, "GET /Schemas", http.StatusOK, "")
		var ids []string
		for _, it := range r.body["Resources"].([]any) {
			ids = append(ids, it.(map[string]any)["id"].(string))
		}
		for _, want := range []string{schemas.UserURN, schemas.GroupURN, schemas.EnterpriseUserURN, schemas.ScimdUserURN} {
			if !slices.Contains(ids, want) {
				t.Errorf("schemas %v lack %s", ids, want)
			}
			one := s.do("GET", "/Schemas/"+url.PathEscape(want), nil)
			one.want(t, "GET /Schemas/"+want, http.StatusOK, "")
			if one.body["id"] != want || one.body["attributes"] == nil {
				t.Errorf("GET /Schemas/%s: id %v, attributes %v", want, one.body["id"], one.body["attributes"] != nil)
			}
		}
		s.do("GET", "/Schemas/urn:nope", nil).want(t, "an unknown schema", http.StatusNotFound, "")
		for _, p := range []string{"/ResourceTypes", "/Schemas"} {
			s.do("GET", p+"?filter="+url.QueryEscape(`id eq "User"`), nil).want(t, p+" with a filter", http.StatusForbidden, "")
		}
	})
}

// TestListQuery: list parameters (RFC 7644 §3.4.2): a ListResponse with the total,
// the 1-based startIndex and itemsPerPage the number returned; sortBy and
// sortOrder; count capped at maxResults; a startIndex or count that is not an
// integer is 400 invalidValue, and a sortBy that cannot order is 400.
func TestListQuery(t *testing.T) {
	forEachBackend(t, scimhttp.Options{}, func(t *testing.T, s *server) {
		var ids []string
		for _, n := range []string{"cy", "Ab", "bo"} {
			id, _ := s.user(n)
			ids = append(ids, id)
		}
		names := func(r reply) []string {
			var out []string
			for _, it := range r.body["Resources"].([]any) {
				out = append(out, it.(map[string]any)["userName"].(string))
			}
			return out
		}
		r := s.do("GET", "/Users?sortBy=userName&startIndex=2&count=1", nil)
		r.want(t, "page 2 of 1 by userName", http.StatusOK, "")
		if got := names(r); !slices.Equal(got, []string{"bo"}) || r.body["totalResults"] != float64(3) ||
			r.body["startIndex"] != float64(2) || r.body["itemsPerPage"] != float64(1) {
			t.Errorf("page %v: totalResults %v startIndex %v itemsPerPage %v", got, r.body["totalResults"], r.body["startIndex"], r.body["itemsPerPage"])
		}
		r = s.do("GET", "/Users?sortBy=userName&sortOrder=descending", nil)
		r.want(t, "descending", http.StatusOK, "")
		if got := names(r); !slices.Equal(got, []string{"cy", "bo", "Ab"}) {
			t.Errorf("descending %v", got)
		}
		r = s.do("GET", "/Users?count=0", nil)
		r.want(t, "count=0", http.StatusOK, "")
		if r.body["totalResults"] != float64(3) || r.body["itemsPerPage"] != float64(0) {
			t.Errorf("count=0: %s", r.raw)
		}
		r = s.do("GET", "/Users?startIndex=9", nil)
		r.want(t, "past the end", http.StatusOK, "")
		if r.body["totalResults"] != float64(3) || r.body["itemsPerPage"] != float64(0) {
			t.Errorf("past the end: %s", r.raw)
		}
		for _, q := range []string{"startIndex=x", "count=1.5", "count=many"} {
			s.do("GET", "/Users?"+q, nil).want(t, q, http.StatusBadRequest, "invalidValue")
		}
		s.do("GET", "/Users?sortBy=name", nil).want(t, "sortBy a complex attribute", http.StatusBadRequest, "invalidValue")
		// The same through POST /.search (RFC 7644 §3.4.3).
		r = s.do("POST", "/Users/.search", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
			"filter": `userName sw "b" or userName sw "c"`, "sortBy": "userName", "sortOrder": "descending", "attributes": []string{"userName"}})
		r.want(t, "search", http.StatusOK, "")
		if got := names(r); !slices.Equal(got, []string{"cy", "bo"}) {
			t.Errorf("search %v", got)
		}
		for _, it := range r.body["Resources"].([]any) {
			if m := it.(map[string]any); m["meta"] != nil {
				t.Errorf("attributes=userName returned meta: %v", m)
			}
		}
	})
}
