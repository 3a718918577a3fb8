package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

const bulkRequestURN = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"

// bulkReq returns a BulkRequest body; failOnErrors 0 leaves the field out.
func bulkReq(failOnErrors int, ops ...map[string]any) map[string]any {
	m := map[string]any{"schemas": []string{bulkRequestURN}, "Operations": ops}
	if failOnErrors != 0 {
		m["failOnErrors"] = failOnErrors
	}
	return m
}

// bulkOp returns one operation of a BulkRequest; empty bulkID, version and nil data
// are left out.
func bulkOp(method, path, bulkID string, data any, version string) map[string]any {
	m := map[string]any{"method": method, "path": path}
	if bulkID != "" {
		m["bulkId"] = bulkID
	}
	if data != nil {
		m["data"] = data
	}
	if version != "" {
		m["version"] = version
	}
	return m
}

// bulkResults checks the BulkResponse envelope and returns its operations.
func bulkResults(t *testing.T, r resp) []map[string]any {
	t.Helper()
	r.want(t, http.StatusOK)
	if s, _ := r.body["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:BulkResponse" {
		t.Fatalf("schemas %v", r.body["schemas"])
	}
	list, _ := r.body["Operations"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, it := range list {
		out = append(out, it.(map[string]any))
	}
	return out
}

// wantOps fails unless the results carry these statuses, in this order, each as a
// string (RFC 7644 §3.7.3).
func wantOps(t *testing.T, results []map[string]any, statuses ...int) {
	t.Helper()
	got := make([]string, 0, len(results))
	for _, res := range results {
		got = append(got, fmt.Sprint(res["status"]))
	}
	want := make([]string, 0, len(statuses))
	for _, s := range statuses {
		want = append(want, strconv.Itoa(s))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("statuses %v, want %v; results %v", got, want, results)
	}
}

// wantOpError checks the SCIM error body of a failed operation.
func wantOpError(t *testing.T, res map[string]any, status int, scimType, detailHas string) {
	t.Helper()
	if res["status"] != strconv.Itoa(status) {
		t.Errorf("status %v, want %d: %v", res["status"], status, res)
	}
	body, _ := res["response"].(map[string]any)
	if s, _ := body["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		t.Errorf("response is not a SCIM error: %v", res)
		return
	}
	if body["status"] != strconv.Itoa(status) {
		t.Errorf("response.status %v, want %d", body["status"], status)
	}
	if got, _ := body["scimType"].(string); got != scimType {
		t.Errorf("scimType %q, want %q: %v", got, scimType, body)
	}
	if d, _ := body["detail"].(string); d == "" || !strings.Contains(d, detailHas) {
		t.Errorf("detail %q does not mention %q", d, detailHas)
	}
}

// checkClaims reads back through GET what the results claim: a success names a
// location whose resource has the version of the last operation on it; a delete leaves
// nothing behind.
func checkClaims(t *testing.T, e *env, results []map[string]any) {
	t.Helper()
	last := map[string]int{}
	for i, res := range results {
		st := fmt.Sprint(res["status"])
		if !strings.HasPrefix(st, "2") {
			if res["version"] != nil {
				t.Errorf("a failed operation reports a version: %v", res)
			}
			continue
		}
		loc, _ := res["location"].(string)
		last[loc] = i
	}
	for i, res := range results {
		loc, _ := res["location"].(string)
		st := fmt.Sprint(res["status"])
		if !strings.HasPrefix(st, "2") || last[loc] != i {
			continue
		}
		if !strings.HasPrefix(loc, e.srv.URL+"/scim/v2/") {
			t.Errorf("location %q of %v", loc, res)
			continue
		}
		path := strings.TrimPrefix(loc, e.srv.URL)
		if st == "204" {
			e.call("GET", path, nil).wantError(t, http.StatusNotFound, "")
			continue
		}
		got := e.call("GET", path, nil).want(t, http.StatusOK)
		if got.header.Get("ETag") != res["version"] || str(got.body, "meta.location") != loc {
			t.Errorf("GET %s: ETag %q meta.location %q; the bulk response said %v", path, got.header.Get("ETag"), str(got.body, "meta.location"), res)
		}
	}
}

// optional is s as a decoded JSON value, or nil (an absent member) when s is empty.
func optional(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// idOf returns the resource id at the end of a result's location.
func idOf(res map[string]any) string {
	loc, _ := res["location"].(string)
	return loc[strings.LastIndex(loc, "/")+1:]
}

func countWhere(t *testing.T, e *env, endpoint, filter string) float64 {
	t.Helper()
	r := e.call("GET", "/scim/v2/"+endpoint+"?filter="+url.QueryEscape(filter), nil).want(t, http.StatusOK)
	n, _ := r.body["totalResults"].(float64)
	return n
}

func TestBulk(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		t.Run("service_provider_config", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/ServiceProviderConfig", nil).want(t, http.StatusOK)
			b, _ := r.body["bulk"].(map[string]any)
			if b["supported"] != true || b["maxOperations"] != float64(1000) || b["maxPayloadSize"] != float64(1<<20) {
				t.Errorf("bulk %v, want supported with maxOperations 1000 and maxPayloadSize 1048576", b)
			}
		})

		t.Run("forward_references", func(t *testing.T) {
			// The group comes first and names users created later in the request; the
			// PATCH addresses a user by its bulkId.
			results := bulkResults(t, e.call("POST", "/scim/v2/Bulk", bulkReq(0,
				bulkOp("POST", "/Groups", "g1", group("Bulk Team", "bulkId:u1", "bulkId:u2"), ""),
				bulkOp("POST", "/Users", "u1", user("bulk1@example.com"), ""),
				bulkOp("PATCH", "/Users/bulkId:u2", "", patchBody(op("replace", "displayName", "Second")), ""),
				bulkOp("POST", "/Users", "u2", user("bulk2@example.com"), ""),
			)))
			wantOps(t, results, 201, 201, 201, 200)
			for i, want := range []struct{ method, bulkID string }{{"POST", "u1"}, {"POST", "u2"}, {"POST", "g1"}, {"PATCH", ""}} {
				if results[i]["method"] != want.method || results[i]["bulkId"] != optional(want.bulkID) {
					t.Errorf("result %d: %v, want %s %q (operations in the order they ran)", i, results[i], want.method, want.bulkID)
				}
				if results[i]["response"] != nil {
					t.Errorf("a success carries a response: %v", results[i])
				}
			}
			if results[0]["version"] != `W/"1"` || results[3]["version"] != `W/"2"` {
				t.Errorf("versions: %v", results)
			}
			checkClaims(t, e, results)
			u1, u2, g1 := idOf(results[0]), idOf(results[1]), idOf(results[2])
			if idOf(results[3]) != u2 {
				t.Errorf("PATCH /Users/bulkId:u2 reports %v, want the id of u2 %s", results[3]["location"], u2)
			}
			g := e.call("GET", "/scim/v2/Groups/"+g1, nil).want(t, http.StatusOK)
			if !same(memberIDs(g.body), sorted(u1, u2)) || strings.Contains(g.raw, "bulkId:") {
				t.Errorf("group members %v, want %s and %s", g.body["members"], u1, u2)
			}
			u := e.call("GET", "/scim/v2/Users/"+u2, nil).want(t, http.StatusOK)
			if u.body["displayName"] != "Second" {
				t.Errorf("user u2: %s", u.raw)
			}
			if gs, _ := u.body["groups"].([]any); len(gs) != 1 || gs[0].(map[string]any)["value"] != g1 {
				t.Errorf("u2.groups %v, want the bulk group", u.body["groups"])
			}
		})

		t.Run("versions", func(t *testing.T) {
			uid := str(e.call("POST", "/scim/v2/Users", user("versioned@example.com")).want(t, http.StatusCreated).body, "id")
			gid := str(e.call("POST", "/scim/v2/Groups", group("Versioned")).want(t, http.StatusCreated).body, "id")
			upath, gpath := "/Users/"+uid, "/Groups/"+gid
			for _, c := range []struct {
				name, method, path, version string
				data                        any
				status                      int
				wantVersion                 string
			}{
				{"put_stale", "PUT", upath, `W/"9"`, user("versioned@example.com", "displayName", "Stale"), 412, ""},
				{"put_matching", "PUT", upath, `W/"1"`, user("versioned@example.com", "displayName", "Put"), 200, `W/"2"`},
				{"patch_stale", "PATCH", upath, `W/"1"`, patchBody(op("replace", "displayName", "Stale")), 412, ""},
				{"patch_matching", "PATCH", upath, `W/"2"`, patchBody(op("replace", "displayName", "Patched")), 200, `W/"3"`},
				{"patch_without_version", "PATCH", gpath, "", patchBody(op("replace", "displayName", "Renamed")), 200, `W/"2"`},
				{"put_group_stale", "PUT", gpath, `W/"1"`, group("Stale"), 412, ""},
				{"delete_stale", "DELETE", upath, `W/"2"`, nil, 412, ""},
				{"delete_matching", "DELETE", upath, `W/"3"`, nil, 204, ""},
				{"delete_without_version", "DELETE", gpath, "", nil, 204, ""},
				{"delete_again", "DELETE", gpath, "", nil, 404, ""},
			} {
				t.Run(c.name, func(t *testing.T) {
					results := bulkResults(t, e.call("POST", "/scim/v2/Bulk", bulkReq(0, bulkOp(c.method, c.path, "", c.data, c.version))))
					wantOps(t, results, c.status)
					res := results[0]
					if res["method"] != c.method || res["location"] != e.srv.URL+"/scim/v2"+c.path {
						t.Errorf("method %v location %v", res["method"], res["location"])
					}
					if c.status >= 400 {
						wantOpError(t, res, c.status, "", "")
					} else if res["version"] != optional(c.wantVersion) {
						t.Errorf("version %v, want %q", res["version"], c.wantVersion)
					}
					checkClaims(t, e, results)
				})
			}
			if n := countWhere(t, e, "Users", `displayName eq "Stale"`); n != 0 {
				t.Errorf("a refused write changed a user")
			}
		})

		t.Run("failing_operation", func(t *testing.T) {
			e.call("POST", "/scim/v2/Users", user("taken@example.com")).want(t, http.StatusCreated)
			for _, c := range []struct {
				name         string
				failOnErrors int
				statuses     []int
				laterCreated bool
			}{
				{"runs_on", 0, []int{409, 201, 201}, true},
				{"fail_on_errors_2", 2, []int{409, 201, 201}, true},
				{"fail_on_errors_1", 1, []int{409}, false},
			} {
				t.Run(c.name, func(t *testing.T) {
					later := "later-" + c.name + "@example.com"
					results := bulkResults(t, e.call("POST", "/scim/v2/Bulk", bulkReq(c.failOnErrors,
						bulkOp("POST", "/Users", "dup", user("TAKEN@example.com"), ""),
						bulkOp("POST", "/Users", "later", user(later), ""),
						bulkOp("POST", "/Groups", "grp", group("Later "+c.name, "bulkId:later"), ""),
					)))
					wantOps(t, results, c.statuses...)
					wantOpError(t, results[0], http.StatusConflict, "uniqueness", "")
					if results[0]["bulkId"] != "dup" || results[0]["location"] != nil {
						t.Errorf("failed POST: %v", results[0])
					}
					checkClaims(t, e, results)
					if n := countWhere(t, e, "Users", `userName eq "`+later+`"`); (n == 1) != c.laterCreated {
						t.Errorf("%s: %v users after the failure, want created=%v", later, n, c.laterCreated)
					}
				})
			}
		})

		t.Run("unresolvable_references", func(t *testing.T) {
			results := bulkResults(t, e.call("POST", "/scim/v2/Bulk", bulkReq(0,
				bulkOp("POST", "/Groups", "ghost", group("Ghost Members", "bulkId:nobody"), ""),
				bulkOp("POST", "/Users", "clash", user("taken@example.com"), ""),
				bulkOp("POST", "/Groups", "after-failure", group("After Failure", "bulkId:clash"), ""),
				bulkOp("PATCH", "/Users/bulkId:nobody", "", patchBody(op("replace", "active", false)), ""),
				bulkOp("PATCH", "/Groups/x", "patcher", patchBody(op("replace", "displayName", "P")), ""),
				bulkOp("POST", "/Groups", "refs-patch", group("Refs Patch", "bulkId:patcher"), ""),
			)))
			wantOps(t, results, 409, 409, 409, 409, 404, 409)
			wantOpError(t, results[0], http.StatusConflict, "", "bulkId:nobody")
			wantOpError(t, results[1], http.StatusConflict, "uniqueness", "")
			wantOpError(t, results[2], http.StatusConflict, "", "bulkId:clash")
			wantOpError(t, results[3], http.StatusConflict, "", "bulkId:nobody")
			wantOpError(t, results[5], http.StatusConflict, "", "bulkId:patcher")
			for _, name := range []string{"Ghost Members", "After Failure", "Refs Patch"} {
				if n := countWhere(t, e, "Groups", `displayName eq "`+name+`"`); n != 0 {
					t.Errorf("group %q was created", name)
				}
			}
		})

		t.Run("cycle", func(t *testing.T) {
			results := bulkResults(t, e.call("POST", "/scim/v2/Bulk", bulkReq(0,
				bulkOp("POST", "/Groups", "ga", group("Cycle A", "bulkId:gb"), ""),
				bulkOp("POST", "/Groups", "gb", group("Cycle B", "bulkId:ga"), ""),
				bulkOp("POST", "/Groups", "gc", group("Cycle C", "bulkId:ga"), ""),
				bulkOp("POST", "/Groups", "self", group("Cycle Self", "bulkId:self"), ""),
				bulkOp("POST", "/Users", "free", user("free-of-cycles@example.com"), ""),
			)))
			// The user runs; what waits on a cycle is reported after it, in request order.
			wantOps(t, results, 201, 409, 409, 409, 409)
			wantOpError(t, results[1], http.StatusConflict, "", "bulkId:ga → bulkId:gb → bulkId:ga")
			wantOpError(t, results[2], http.StatusConflict, "", "bulkId:gb → bulkId:ga → bulkId:gb")
			wantOpError(t, results[3], http.StatusConflict, "", "circular")
			wantOpError(t, results[4], http.StatusConflict, "", "bulkId:self → bulkId:self")
			for i, want := range []string{"free", "ga", "gb", "gc", "self"} {
				if results[i]["bulkId"] != want {
					t.Errorf("result %d has bulkId %v, want %s", i, results[i]["bulkId"], want)
				}
			}
			checkClaims(t, e, results)
			if n := countWhere(t, e, "Groups", `displayName sw "Cycle"`); n != 0 {
				t.Errorf("%v groups of the cycle were created", n)
			}
		})

		t.Run("long_cycle", func(t *testing.T) {
			// Each of 30 groups contains the next; the details stay short.
			var ops []map[string]any
			for i := range 30 {
				ops = append(ops, bulkOp("POST", "/Groups", fmt.Sprint("ring", i), group(fmt.Sprint("Ring ", i), fmt.Sprint("bulkId:ring", (i+1)%30)), ""))
			}
			results := bulkResults(t, e.call("POST", "/scim/v2/Bulk", bulkReq(0, ops...)))
			if len(results) != 30 {
				t.Fatalf("%d results, want 30", len(results))
			}
			for _, res := range results {
				wantOpError(t, res, http.StatusConflict, "", "(30 operations in all)")
				if d := str(res["response"].(map[string]any), "detail"); len(d) > 400 {
					t.Errorf("detail of %d bytes: %s", len(d), d)
				}
			}
		})

		t.Run("other_tenant", func(t *testing.T) {
			other := e.newTenant("bulk-other", "scim")
			theirs := str(e.callAs(other, "POST", "/scim/v2/Users", user("theirs@example.com")).want(t, http.StatusCreated).body, "id")
			results := bulkResults(t, e.call("POST", "/scim/v2/Bulk", bulkReq(0,
				bulkOp("PATCH", "/Users/"+theirs, "", patchBody(op("replace", "displayName", "Hijacked")), ""),
				bulkOp("PUT", "/Users/"+theirs, "", user("theirs@example.com", "displayName", "Hijacked"), ""),
				bulkOp("DELETE", "/Users/"+theirs, "", nil, ""),
				bulkOp("POST", "/Groups", "grab", group("Grab", theirs), ""),
			)))
			wantOps(t, results, 404, 404, 404, 400)
			for _, res := range results[:3] {
				wantOpError(t, res, http.StatusNotFound, "", "")
			}
			wantOpError(t, results[3], http.StatusBadRequest, "invalidValue", "")
			got := e.callAs(other, "GET", "/scim/v2/Users/"+theirs, nil).want(t, http.StatusOK)
			if got.body["displayName"] != nil || got.header.Get("ETag") != `W/"1"` {
				t.Errorf("the other tenant's user changed: %s", got.raw)
			}
			// The other tenant's own bulk request sees only its own resources.
			mine := bulkResults(t, e.callAs(other, "POST", "/scim/v2/Bulk", bulkReq(0,
				bulkOp("PATCH", "/Users/"+theirs, "", patchBody(op("replace", "displayName", "Own")), ""))))
			wantOps(t, mine, 200)
		})

		t.Run("bodies", func(t *testing.T) {
			// The bulk body may exceed the normal limit (64 KiB here); each operation's
			// data may not.
			big := strings.Repeat("x", 40<<10)
			var ops []map[string]any
			for i := range 4 {
				ops = append(ops, bulkOp("POST", "/Users", fmt.Sprint("big", i), user(fmt.Sprintf("big%d@example.com", i), "nickName", big), ""))
			}
			ops = append(ops, bulkOp("POST", "/Users", "huge", user("huge@example.com", "nickName", big, "title", big), ""))
			results := bulkResults(t, e.call("POST", "/scim/v2/Bulk", bulkReq(0, ops...)))
			wantOps(t, results, 201, 201, 201, 201, 413)
			wantOpError(t, results[4], http.StatusRequestEntityTooLarge, "", "larger than 65536 bytes")
			checkClaims(t, e, results)
		})

		t.Run("limits", func(t *testing.T) {
			var ops []map[string]any
			for i := range 1001 {
				ops = append(ops, bulkOp("DELETE", fmt.Sprintf("/Users/id-%d", i), "", nil, ""))
			}
			r := e.call("POST", "/scim/v2/Bulk", bulkReq(0, ops...))
			r.wantError(t, http.StatusRequestEntityTooLarge, "")
			if !strings.Contains(str(r.body, "detail"), "1000") {
				t.Errorf("detail does not name the limit: %s", r.raw)
			}
			pad := strings.Repeat("y", 60<<10)
			ops = ops[:0]
			for i := range 20 {
				ops = append(ops, bulkOp("POST", "/Users", fmt.Sprint("pad", i), user(fmt.Sprintf("pad%d@example.com", i), "nickName", pad), ""))
			}
			e.call("POST", "/scim/v2/Bulk", bulkReq(0, ops...)).wantError(t, http.StatusRequestEntityTooLarge, "")
			if n := countWhere(t, e, "Users", `userName sw "pad"`); n != 0 {
				t.Errorf("a refused bulk request created %v users", n)
			}
			e.call("GET", "/scim/v2/Bulk", nil).wantError(t, http.StatusMethodNotAllowed, "")
		})

		t.Run("malformed", func(t *testing.T) {
			ok := bulkOp("POST", "/Users", "fine", user("never-created@example.com"), "")
			for _, c := range []struct {
				name     string
				body     any
				scimType string
				detail   string
			}{
				{"not_json", `{"schemas": [}`, "invalidSyntax", "syntax error"},
				{"not_an_object", `[]`, "invalidSyntax", "object"},
				{"no_schemas", map[string]any{"Operations": []any{ok}}, "invalidSyntax", "schemas"},
				{"wrong_schemas", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": []any{ok}}, "invalidSyntax", "BulkRequest"},
				{"no_operations", bulkReq(0), "invalidSyntax", "Operations"},
				{"operations_not_array", map[string]any{"schemas": []string{bulkRequestURN}, "Operations": "x"}, "invalidSyntax", "Operations"},
				{"operation_not_object", map[string]any{"schemas": []string{bulkRequestURN}, "Operations": []any{ok, 3}}, "invalidSyntax", "Operations[1]"},
				{"no_method", bulkReq(0, ok, map[string]any{"path": "/Users/x"}), "invalidSyntax", "Operations[1].method"},
				{"bad_method", bulkReq(0, ok, bulkOp("GET", "/Users/x", "", nil, "")), "invalidValue", "Operations[1].method"},
				{"post_without_bulk_id", bulkReq(0, ok, bulkOp("POST", "/Users", "", user("a@example.com"), "")), "invalidValue", "bulkId is required"},
				{"empty_bulk_id", bulkReq(0, ok, bulkOp("DELETE", "/Users/x", "", nil, ""), map[string]any{"method": "DELETE", "path": "/Users/y", "bulkId": ""}), "invalidValue", "Operations[2].bulkId"},
				{"no_path", bulkReq(0, ok, map[string]any{"method": "DELETE"}), "invalidSyntax", "Operations[1].path"},
				{"post_to_resource", bulkReq(0, ok, bulkOp("POST", "/Users/x", "p", user("a@example.com"), "")), "invalidValue", "/Users/x"},
				{"put_to_collection", bulkReq(0, ok, bulkOp("PUT", "/Users", "", user("a@example.com"), "")), "invalidValue", "PUT needs one resource"},
				{"path_bulk", bulkReq(0, ok, bulkOp("POST", "/Bulk", "b", bulkReq(0, ok), "")), "invalidValue", "/Bulk"},
				{"path_schemas", bulkReq(0, ok, bulkOp("DELETE", "/Schemas/x", "", nil, "")), "invalidValue", "/Schemas/x"},
				{"path_nested", bulkReq(0, ok, bulkOp("DELETE", "/Users/x/y", "", nil, "")), "invalidValue", "/Users/x/y"},
				{"path_with_prefix", bulkReq(0, ok, bulkOp("DELETE", "/scim/v2/Users/x", "", nil, "")), "invalidValue", "/scim/v2/Users/x"},
				{"no_data", bulkReq(0, ok, bulkOp("PATCH", "/Users/x", "", nil, "")), "invalidSyntax", "Operations[1].data"},
				{"data_not_object", bulkReq(0, ok, bulkOp("PUT", "/Users/x", "", []any{1}, "")), "invalidSyntax", "Operations[1].data"},
				{"version_not_string", bulkReq(0, ok, map[string]any{"method": "DELETE", "path": "/Users/x", "version": 3}), "invalidValue", "Operations[1].version"},
				{"duplicate_bulk_id", bulkReq(0, ok, bulkOp("POST", "/Groups", "fine", group("G"), "")), "invalidValue", `"fine"`},
				{"fail_on_errors_zero", map[string]any{"schemas": []string{bulkRequestURN}, "failOnErrors": 0, "Operations": []any{ok}}, "invalidValue", "failOnErrors"},
				{"fail_on_errors_text", map[string]any{"schemas": []string{bulkRequestURN}, "failOnErrors": "1", "Operations": []any{ok}}, "invalidValue", "failOnErrors"},
				{"fail_on_errors_fraction", map[string]any{"schemas": []string{bulkRequestURN}, "failOnErrors": 1.5, "Operations": []any{ok}}, "invalidValue", "failOnErrors"},
			} {
				t.Run(c.name, func(t *testing.T) {
					r := e.call("POST", "/scim/v2/Bulk", c.body)
					r.wantError(t, http.StatusBadRequest, c.scimType)
					if d := str(r.body, "detail"); !strings.Contains(d, c.detail) {
						t.Errorf("detail %q does not mention %q", d, c.detail)
					}
				})
			}
			if n := countWhere(t, e, "Users", `userName eq "never-created@example.com"`); n != 0 {
				t.Error("a refused bulk request ran an operation")
			}
			e.call("POST", "/scim/v2/Bulk", `{}`, "Content-Type", "text/plain").wantError(t, http.StatusUnsupportedMediaType, "")
		})
	})
}

// TestBulkConfiguredLimits runs a server with small bulk limits: they are advertised
// and enforced.
func TestBulkConfiguredLimits(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			e := newEnv(t, b, scimhttp.Options{MaxBodyBytes: 16 << 10, BulkMaxOperations: 2, BulkMaxPayloadBytes: 32 << 10})
			r := e.call("GET", "/scim/v2/ServiceProviderConfig", nil).want(t, http.StatusOK)
			if bk, _ := r.body["bulk"].(map[string]any); bk["supported"] != true || bk["maxOperations"] != float64(2) || bk["maxPayloadSize"] != float64(32<<10) {
				t.Errorf("bulk %v", bk)
			}
			two := bulkReq(0, bulkOp("POST", "/Users", "a", user("a@example.com"), ""), bulkOp("POST", "/Users", "b", user("b@example.com"), ""))
			wantOps(t, bulkResults(t, e.call("POST", "/scim/v2/Bulk", two)), 201, 201)
			three := bulkReq(0, bulkOp("DELETE", "/Users/x", "", nil, ""), bulkOp("DELETE", "/Users/y", "", nil, ""), bulkOp("DELETE", "/Users/z", "", nil, ""))
			e.call("POST", "/scim/v2/Bulk", three).wantError(t, http.StatusRequestEntityTooLarge, "")
			big := bulkReq(0, bulkOp("POST", "/Users", "c", user("c@example.com", "nickName", strings.Repeat("z", 40<<10)), ""))
			e.call("POST", "/scim/v2/Bulk", big).wantError(t, http.StatusRequestEntityTooLarge, "")
			// The normal limit still holds everywhere else.
			e.call("POST", "/scim/v2/Users", user("d@example.com", "nickName", strings.Repeat("z", 20<<10))).wantError(t, http.StatusRequestEntityTooLarge, "")
		})
	}
}

// TestBulkConfig checks the bulk flags: validated with the rest, and passed to the
// server that serve starts.
func TestBulkConfig(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "bulk.db")
	t.Run("invalid", func(t *testing.T) {
		_, _, err := runCLI(t, "serve", "--database", db, "--bulk-max-operations", "0", "--bulk-max-payload-bytes", "2048")
		if err == nil {
			t.Fatal("bad bulk limits accepted")
		}
		for _, want := range []string{"--bulk-max-operations", "--bulk-max-payload-bytes"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not mention %s: %v", want, err)
			}
		}
		t.Setenv("SCIMD_BULK_MAX_OPERATIONS", "many")
		if _, _, err := runCLI(t, "serve", "--database", db); err == nil || !strings.Contains(err.Error(), "--bulk-max-operations") {
			t.Errorf("SCIMD_BULK_MAX_OPERATIONS=many: %v", err)
		}
	})
	t.Run("served", func(t *testing.T) {
		const secret = "bulk-config-secret-0123456789"
		t.Setenv("SCIMD_BOOTSTRAP_TOKEN", secret)
		t.Setenv("SCIMD_BULK_MAX_PAYLOAD_BYTES", "2097152")
		addr, stop := serveUntil(t, "--database", db, "--bulk-max-operations", "7")
		defer stop()
		req, _ := http.NewRequest("GET", "http://"+addr+"/scim/v2/ServiceProviderConfig", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct {
			Bulk struct {
				Supported      bool  `json:"supported"`
				MaxOperations  int   `json:"maxOperations"`
				MaxPayloadSize int64 `json:"maxPayloadSize"`
			} `json:"bulk"`
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if !body.Bulk.Supported || body.Bulk.MaxOperations != 7 || body.Bulk.MaxPayloadSize != 2097152 {
			t.Errorf("bulk %+v, want supported, 7 operations, 2097152 bytes", body.Bulk)
		}
	})
}
