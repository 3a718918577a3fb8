package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// The limits scimd puts on hostile input, over HTTP on every database: for each one a
// request just under it is served and one just over it is refused with a 4xx whose
// message names the limit (RFC 7644 §3.12 scimType on the SCIM routes, each family's
// own error shape on the compatibility routes).

// limitsMaxResource is the resource size limit the tests run with; every other limit
// is the default.
const limitsMaxResource = 200 << 10

// limitsEnv is a server with a 1 MiB body limit, pages of at most three resources
// and resources of at most limitsMaxResource bytes.
func limitsEnv(t *testing.T, b storetest.Backend) *env {
	return newEnv(t, b, scimhttp.Options{MaxBodyBytes: 1 << 20}, func(l *scim.Limits) {
		l.MaxResults = 3
		l.MaxResourceBytes = limitsMaxResource
	})
}

// randomHex is n hexadecimal digits that do not compress (a PostgreSQL index entry
// of repeated characters would be compressed below its size limit).
func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

// nested is a JSON value of depth levels of arrays.
func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// parens wraps f in n levels of parentheses.
func parens(n int, f string) string {
	return strings.Repeat("(", n) + f + strings.Repeat(")", n)
}

func filterQuery(path, f string) string { return path + "?filter=" + url.QueryEscape(f) }

// groupWith is a Group body with further attributes.
func groupWith(name string, extra ...any) map[string]any {
	m := group(name)
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

// emails is n distinct email values.
func emails(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"value": fmt.Sprintf("e%d@example.com", i)}
	}
	return out
}

// memberValues is n member values naming ids no resource has.
func memberValues(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"value": fmt.Sprintf("00000000-0000-4000-8000-%012d", i)}
	}
	return out
}

// wantLimit checks a refusal: status, and a body that names the limit.
func wantLimit(t *testing.T, r resp, status int, scimType, detail string) {
	t.Helper()
	if scimType != "" {
		r.wantError(t, status, scimType)
	} else {
		r.want(t, status)
	}
	if !strings.Contains(r.raw, detail) {
		t.Errorf("the answer does not say %q: %s", detail, r.raw)
	}
}

// TestLimitsSCIM runs each limit of the SCIM API just under and just over its value.
func TestLimitsSCIM(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			e := limitsEnv(t, b)
			userID := str(e.call("POST", "/scim/v2/Users", user("limits@example.com")).want(t, http.StatusCreated).body, "id")
			groupID := str(e.call("POST", "/scim/v2/Groups", group("limits")).want(t, http.StatusCreated).body, "id")
			userURL, groupURL := "/scim/v2/Users/"+userID, "/scim/v2/Groups/"+groupID

			// userBody is a create body of exactly size bytes, padded with an attribute
			// scimd ignores.
			userBody := func(size int) string {
				head := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"` + randomHex(16) + `","x":"`
				return head + strings.Repeat("a", size-len(head)-2) + `"}`
			}
			// eqFilter is `userName eq "…"` of exactly size bytes.
			eqFilter := func(size int) string { return `userName eq "` + strings.Repeat("a", size-14) + `"` }
			// deepUser is a create body nesting depth levels of objects and arrays.
			deepUser := func(depth int) string {
				return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"` + randomHex(16) + `","x":` + nested(depth-1) + `}`
			}
			patchOps := func(n int) map[string]any {
				ops := make([]map[string]any, n)
				for i := range ops {
					ops[i] = op("replace", "title", fmt.Sprintf("t%d", i))
				}
				return patchBody(ops...)
			}
			cert := func(size int) map[string]any {
				return user(randomHex(16), "x509Certificates", []any{map[string]any{"value": strings.Repeat("AAAA", size/4)}})
			}
			password := func(n int) map[string]any { return user(randomHex(16), "password", strings.Repeat("p", n)) }

			cases := []struct {
				name                    string
				method, path            string
				under, over             any // bodies, or for GET the paths
				underStatus, overStatus int
				scimType, detail        string
			}{
				{name: "body_bytes", method: "POST", path: "/scim/v2/Users", under: userBody(1 << 20), over: userBody(1<<20 + 1),
					underStatus: 201, overStatus: 413, detail: "larger than 1048576 bytes"},
				{name: "filter_length", method: "GET", under: filterQuery("/scim/v2/Users", eqFilter(4096)), over: filterQuery("/scim/v2/Users", eqFilter(4097)),
					underStatus: 200, overStatus: 400, scimType: "invalidFilter", detail: "the limit is 4096"},
				{name: "filter_depth", method: "GET", under: filterQuery("/scim/v2/Users", parens(16, `userName eq "a"`)),
					over: filterQuery("/scim/v2/Users", parens(17, `userName eq "a"`)), underStatus: 200, overStatus: 400, scimType: "invalidFilter", detail: "17 levels deep; the limit is 16"},
				{name: "filter_depth_value_path", method: "GET", under: filterQuery("/scim/v2/Users", parens(15, `emails[type eq "work"]`)),
					over: filterQuery("/scim/v2/Users", parens(16, `emails[type eq "work"]`)), underStatus: 200, overStatus: 400, scimType: "invalidFilter", detail: "the limit is 16"},
				{name: "filter_depth_not", method: "GET", under: filterQuery("/scim/v2/Groups", strings.Repeat("not (", 8)+`displayName eq "a"`+strings.Repeat(")", 8)),
					over: filterQuery("/scim/v2/Groups", strings.Repeat("not (", 17)+`displayName eq "a"`+strings.Repeat(")", 17)), underStatus: 200, overStatus: 400, scimType: "invalidFilter", detail: "the limit is 16"},
				{name: "filter_depth_root", method: "GET", under: filterQuery("/scim/v2/", parens(16, `displayName eq "a"`)),
					over: filterQuery("/scim/v2/", parens(17, `displayName eq "a"`)), underStatus: 200, overStatus: 400, scimType: "invalidFilter", detail: "the limit is 16"},
				{name: "filter_depth_search", method: "POST", path: "/scim/v2/Users/.search",
					under:       map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}, "filter": parens(16, `userName eq "a"`)},
					over:        map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}, "filter": parens(17, `userName eq "a"`)},
					underStatus: 200, overStatus: 400, scimType: "invalidFilter", detail: "the limit is 16"},
				{name: "patch_operations", method: "PATCH", path: userURL, under: patchOps(1000), over: patchOps(1001),
					underStatus: 200, overStatus: 400, scimType: "tooMany", detail: "the limit is 1000"},
				{name: "json_depth", method: "POST", path: "/scim/v2/Users", under: deepUser(32), over: deepUser(33),
					underStatus: 201, overStatus: 400, scimType: "invalidSyntax", detail: "the limit of 32 levels"},
				{name: "json_depth_patch", method: "PATCH", path: userURL,
					under:       `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"title","value":"x","x":` + nested(29) + `}]}`,
					over:        `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"title","value":"x","x":` + nested(30) + `}]}`,
					underStatus: 200, overStatus: 400, scimType: "invalidSyntax", detail: "the limit of 32 levels"},
				{name: "json_depth_bulk", method: "POST", path: "/scim/v2/Bulk",
					under:       `{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[{"method":"DELETE","path":"/Users/none","x":` + nested(29) + `}]}`,
					over:        `{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[{"method":"DELETE","path":"/Users/none","x":` + nested(30) + `}]}`,
					underStatus: 200, overStatus: 400, scimType: "invalidSyntax", detail: "the limit of 32 levels"},
				{name: "value_bytes", method: "POST", path: "/scim/v2/Users",
					under: user(randomHex(16), "title", strings.Repeat("t", 64<<10)), over: user(randomHex(16), "title", strings.Repeat("t", 64<<10+1)),
					underStatus: 201, overStatus: 400, scimType: "invalidValue", detail: "title is 65537 bytes long; the limit is 65536 bytes"},
				{name: "value_bytes_patch", method: "PATCH", path: userURL,
					under: patchBody(op("replace", "name.formatted", strings.Repeat("n", 64<<10))), over: patchBody(op("replace", "name.formatted", strings.Repeat("n", 64<<10+1))),
					underStatus: 200, overStatus: 400, scimType: "invalidValue", detail: "the limit is 65536 bytes"},
				{name: "value_bytes_binary", method: "POST", path: "/scim/v2/Users", under: cert(64 << 10), over: cert(64<<10 + 4),
					underStatus: 201, overStatus: 400, scimType: "invalidValue", detail: "x509Certificates[0].value is 65540 bytes long"},
				{name: "indexed_user_name", method: "POST", path: "/scim/v2/Users", under: user(randomHex(1024)), over: user(randomHex(1025)),
					underStatus: 201, overStatus: 400, scimType: "invalidValue", detail: "userName is 1025 bytes long; the limit is 1024 bytes"},
				{name: "indexed_external_id", method: "POST", path: "/scim/v2/Users",
					under: user(randomHex(16), "externalId", randomHex(1024)), over: user(randomHex(16), "externalId", randomHex(1025)),
					underStatus: 201, overStatus: 400, scimType: "invalidValue", detail: "externalId is 1025 bytes long"},
				{name: "indexed_display_name_user", method: "PUT", path: userURL,
					under: user("limits@example.com", "displayName", randomHex(1024)), over: user("limits@example.com", "displayName", randomHex(1025)),
					underStatus: 200, overStatus: 400, scimType: "invalidValue", detail: "displayName is 1025 bytes long"},
				{name: "indexed_display_name_group", method: "PATCH", path: groupURL,
					under: patchBody(op("replace", "displayName", randomHex(1024))), over: patchBody(op("replace", "displayName", randomHex(1025))),
					underStatus: 200, overStatus: 400, scimType: "invalidValue", detail: "displayName is 1025 bytes long"},
				{name: "multi_values", method: "POST", path: "/scim/v2/Users",
					under: user(randomHex(16), "emails", emails(100)), over: user(randomHex(16), "emails", emails(101)),
					underStatus: 201, overStatus: 400, scimType: "invalidValue", detail: "emails has 101 values; the limit is 100"},
				{name: "multi_values_patch", method: "PATCH", path: userURL,
					under: patchBody(op("replace", "emails", emails(100))), over: patchBody(op("replace", "emails", emails(101))),
					underStatus: 200, overStatus: 400, scimType: "invalidValue", detail: "the limit is 100"},
				{name: "password_bytes", method: "POST", path: "/scim/v2/Users", under: password(72), over: password(73),
					underStatus: 201, overStatus: 400, scimType: "invalidValue", detail: "longer than 72 bytes"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					send := func(v any) resp {
						if tc.method == "GET" {
							return e.call("GET", v.(string), nil)
						}
						return e.call(tc.method, tc.path, v)
					}
					send(tc.under).want(t, tc.underStatus)
					before := e.call("GET", userURL, nil).want(t, http.StatusOK).header.Get("ETag")
					wantLimit(t, send(tc.over), tc.overStatus, tc.scimType, tc.detail)
					if after := e.call("GET", userURL, nil).want(t, http.StatusOK).header.Get("ETag"); after != before {
						t.Errorf("a refused request changed the user: ETag %s, then %s", before, after)
					}
				})
			}

			t.Run("multi_values_patch_add", func(t *testing.T) {
				id := str(e.call("POST", "/scim/v2/Users", user(randomHex(16), "emails", emails(99))).want(t, http.StatusCreated).body, "id")
				e.call("PATCH", "/scim/v2/Users/"+id, patchBody(op("add", "emails", []any{map[string]any{"value": "one@example.com"}}))).want(t, http.StatusOK)
				r := e.call("PATCH", "/scim/v2/Users/"+id, patchBody(op("add", "emails", []any{map[string]any{"value": "two@example.com"}})))
				wantLimit(t, r, http.StatusBadRequest, "invalidValue", "the limit of 100")
				// One add bringing more than the limit is refused before any comparison.
				r = e.call("PATCH", "/scim/v2/Users/"+id, patchBody(op("add", "roles", emailsAsRoles(101))))
				wantLimit(t, r, http.StatusBadRequest, "invalidValue", "roles: 101 values; the limit is 100")
				if got := e.call("GET", "/scim/v2/Users/"+id, nil).want(t, http.StatusOK).header.Get("ETag"); got != `W/"2"` {
					t.Errorf("ETag %s after refused PATCHes, want W/\"2\"", got)
				}
			})

			t.Run("members_per_request", func(t *testing.T) {
				// 10,000 members are within the limit: the request fails only because
				// they name no resource.
				r := e.call("POST", "/scim/v2/Groups", groupWith(randomHex(8), "members", memberValues(10000)))
				r.wantError(t, http.StatusBadRequest, "invalidValue")
				if strings.Contains(r.raw, "limit") {
					t.Fatalf("10,000 members were refused for the limit: %.300s", r.raw)
				}
				wantLimit(t, e.call("POST", "/scim/v2/Groups", groupWith(randomHex(8), "members", memberValues(10001))),
					http.StatusBadRequest, "invalidValue", "members has 10001 values; the limit is 10000")
				wantLimit(t, e.call("PUT", groupURL, groupWith("limits", "members", memberValues(10001))),
					http.StatusBadRequest, "invalidValue", "the limit is 10000")
				// In a PATCH the limit counts the member values of all operations.
				half := memberValues(5001)
				wantLimit(t, e.call("PATCH", groupURL, patchBody(op("add", "members", half), op("add", "members", half))),
					http.StatusBadRequest, "invalidValue", "the limit is 10000 per request")
				wantLimit(t, e.call("PATCH", groupURL, patchBody(op("add", "members", memberValues(10001)))),
					http.StatusBadRequest, "invalidValue", "the limit is 10000 per request")
			})

			t.Run("resource_bytes", func(t *testing.T) {
				big := strings.Repeat("b", 60<<10)
				id := str(e.call("POST", "/scim/v2/Users", user(randomHex(16), "title", big, "nickName", big, "profileUrl", "https://example.com/"+big)).
					want(t, http.StatusCreated).body, "id")
				// Each PATCH is small; the document they would grow is not.
				r := e.call("PATCH", "/scim/v2/Users/"+id, patchBody(op("add", "addresses", []any{map[string]any{"formatted": big}})))
				wantLimit(t, r, http.StatusBadRequest, "invalidValue", fmt.Sprintf("the limit is %d", limitsMaxResource))
				if got := e.call("GET", "/scim/v2/Users/"+id, nil).want(t, http.StatusOK).header.Get("ETag"); got != `W/"1"` {
					t.Errorf("ETag %s after a refused PATCH, want W/\"1\"", got)
				}
				e.call("PATCH", "/scim/v2/Users/"+id, patchBody(op("add", "addresses", []any{map[string]any{"formatted": "small"}}))).want(t, http.StatusOK)
			})

			t.Run("page_size", func(t *testing.T) {
				for i := range 4 {
					e.call("POST", "/scim/v2/Groups", group(fmt.Sprintf("page-%d", i))).want(t, http.StatusCreated)
				}
				// RFC 7644 §3.4.2.4: a count over the maximum is answered with at most
				// the maximum.
				for _, count := range []int{3, 4, 1000} {
					r := e.call("GET", fmt.Sprintf("/scim/v2/Groups?count=%d", count), nil).want(t, http.StatusOK)
					if n := len(ids(r)); n != 3 || r.body["itemsPerPage"] != float64(3) {
						t.Errorf("count=%d: %d resources, itemsPerPage %v; want 3", count, n, r.body["itemsPerPage"])
					}
				}
				spc := e.call("GET", "/scim/v2/ServiceProviderConfig", nil).want(t, http.StatusOK)
				if f, _ := spc.body["filter"].(map[string]any); f["maxResults"] != float64(3) {
					t.Errorf("filter.maxResults %v, want 3", spc.body["filter"])
				}
			})

			t.Run("brackets_in_strings_do_not_nest", func(t *testing.T) {
				// Parentheses and brackets inside quoted strings are data, not nesting.
				f := `userName eq "` + strings.Repeat("(", 40) + strings.Repeat("[", 40) + `"`
				e.call("GET", filterQuery("/scim/v2/Users", f), nil).want(t, http.StatusOK)
				e.call("POST", "/scim/v2/Users", user(randomHex(16), "title", strings.Repeat("[{", 40)+`\"`+strings.Repeat("]", 40))).want(t, http.StatusCreated)
			})

			t.Run("filter_too_complex_for_the_database", func(t *testing.T) {
				// A long chain of one operator compiles to one flat SQL list, so
				// even under 12 nested not (…) both databases answer it.
				ors := strings.Repeat(`displayName eq "x" or `, 45) + `displayName eq "a"`
				f := strings.Repeat("not (", 12) + ors + strings.Repeat(")", 12)
				e.call("GET", filterQuery("/scim/v2/Groups", f), nil).want(t, http.StatusOK)
				// Alternating operators at the depth limit nest the SQL as deep as
				// the filter: more than SQLite's SQL parser takes, which is an invalid
				// filter there, not a server error. PostgreSQL answers it.
				f = `displayName eq "a"`
				for i := range 15 {
					f = "not (" + f + []string{` or displayName eq "b"`, ` and displayName eq "c"`}[i%2] + ")"
				}
				r := e.call("GET", filterQuery("/scim/v2/Groups", f), nil)
				if b.Name == "sqlite" && r.status != http.StatusOK {
					wantLimit(t, r, http.StatusBadRequest, "invalidFilter", "too complex for the database")
				} else {
					r.want(t, http.StatusOK)
				}
			})
		})
	}
}

// emailsAsRoles is n distinct role values.
func emailsAsRoles(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"value": fmt.Sprintf("role-%d", i)}
	}
	return out
}

// TestLimitsCompat checks that the compatibility routes, which write through the same
// service, keep the same limits, each answering in its own error shape.
func TestLimitsCompat(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			e := limitsEnv(t, b)
			token := e.newTenant("limits", scim.AllScopes...)
			// deep puts an ignored field nesting depth-1 levels into a JSON object body.
			deep := func(body map[string]any, depth int) string {
				raw, _ := json.Marshal(body)
				return strings.TrimSuffix(string(raw), "}") + `,"x":` + nested(depth-1) + `}`
			}
			type call struct {
				method, path, auth string
				hdr                []string
			}
			bearer := "Bearer " + token
			cases := []struct {
				name        string
				call        call
				under, over any
				underStatus int
				overStatus  int
				detail      string
			}{
				{name: "partner_json_depth", call: call{method: "POST", path: "/v1/pine/partner/provision-user", auth: "Token " + token},
					under:       deep(map[string]any{"email": "p1@example.com", "result_url": "https://chat.example.com"}, 32),
					over:        deep(map[string]any{"email": "p2@example.com", "result_url": "https://chat.example.com"}, 33),
					underStatus: 201, overStatus: 400, detail: "the limit of 32 levels"},
				{name: "admin_json_depth", call: call{method: "POST", path: "/users", auth: bearer},
					under: deep(map[string]any{"email": "a1@example.com"}, 32), over: deep(map[string]any{"email": "a2@example.com"}, 33),
					underStatus: 201, overStatus: 400, detail: "the limit of 32 levels"},
				{name: "platform_json_depth", call: call{method: "POST", path: "/scim/provision-user", auth: bearer, hdr: []string{"X-App-Token", token}},
					under: deep(platformSample("pl1", "pl1@example.com"), 32), over: deep(platformSample("pl2", "pl2@example.com"), 33),
					underStatus: 201, overStatus: 400, detail: "the limit of 32 levels"},
				{name: "superuser_json_depth", call: call{method: "POST", path: "/api/v1/create_user"},
					under:       deep(map[string]any{"key": token, "email": "s1@example.com", "first_name": "S", "last_name": "U", "password": "long enough"}, 32),
					over:        deep(map[string]any{"key": token, "email": "s2@example.com", "first_name": "S", "last_name": "U", "password": "long enough"}, 33),
					underStatus: 201, overStatus: 400, detail: "the limit of 32 levels"},
				{name: "onboarding_json_depth", call: call{method: "POST", path: "/onboarding/provision/standalone/users", auth: bearer},
					under:       `[{"email":"o1@example.com","firstName":"O","lastName":"U","roles":["Scheduler"],"x":` + nested(30) + `}]`,
					over:        `[{"email":"o2@example.com","firstName":"O","lastName":"U","roles":["Scheduler"],"x":` + nested(31) + `}]`,
					underStatus: 200, overStatus: 400, detail: "the limit of 32 levels"},
				{name: "platform_indexed_user_name", call: call{method: "POST", path: "/scim/provision-user", auth: bearer, hdr: []string{"X-App-Token", token}},
					under: platformSample(randomHex(1024), "pl3@example.com"), over: platformSample(randomHex(1025), "pl4@example.com"),
					underStatus: 201, overStatus: 400, detail: "userName is 1025 bytes long; the limit is 1024 bytes"},
				{name: "platform_multi_values", call: call{method: "PUT", path: "/scim/update-user/pl3@example.com", auth: bearer, hdr: []string{"X-App-Token", token}},
					under: map[string]any{"roles": roleNames(100)}, over: map[string]any{"roles": roleNames(101)},
					underStatus: 200, overStatus: 400, detail: "the limit is 100"},
				{name: "platform_value_bytes", call: call{method: "PUT", path: "/scim/update-user/pl3@example.com", auth: bearer, hdr: []string{"X-App-Token", token}},
					under: map[string]any{"firstName": strings.Repeat("f", 64<<10)}, over: map[string]any{"firstName": strings.Repeat("f", 64<<10+1)},
					underStatus: 200, overStatus: 400, detail: "the limit is 65536 bytes"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					send := func(body any) (int, string) {
						status, _, raw := roundTrip(t, e.newRequest(t, tc.call.method, tc.call.path, body, "application/json", tc.call.auth, tc.call.hdr...))
						return status, string(raw)
					}
					if status, raw := send(tc.under); status != tc.underStatus {
						t.Fatalf("just under the limit: status %d, want %d: %.300s", status, tc.underStatus, raw)
					}
					status, raw := send(tc.over)
					if status != tc.overStatus || !strings.Contains(raw, tc.detail) {
						t.Fatalf("just over the limit: status %d, want %d saying %q: %.300s", status, tc.overStatus, tc.detail, raw)
					}
				})
			}
		})
	}
}

// roleNames is n distinct role names.
func roleNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("Role %d", i)
	}
	return out
}
