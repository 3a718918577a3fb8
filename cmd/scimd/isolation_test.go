package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/account"
	"github.com/scimd/scimd/scim/scimhttp"
)

// The tenant isolation matrix: for every route scimd serves, a token of tenant A
// never reads, lists, counts, changes or deletes tenant B's users, groups, tasks or
// queued messages. Naming B's resource answers exactly as naming one that does not
// exist (404, or an empty list); a create by email gives A its own new record. Every
// answer to A is checked to carry nothing of B's that A did not send itself, and
// after every case B's data, read through B's own credentials, must be byte for byte
// what it was. The routes are enumerated from the real handler: a route without a
// case fails the test.

// routeRecorder lists the patterns registered on it.
type routeRecorder struct{ patterns []string }

func (r *routeRecorder) Handle(p string, _ http.Handler) { r.patterns = append(r.patterns, p) }
func (r *routeRecorder) HandleFunc(p string, _ func(http.ResponseWriter, *http.Request)) {
	r.patterns = append(r.patterns, p)
}

// servedRoutes lists every route of the handler serve runs: its own patterns, the
// account pages, and the SCIM API's routes (as "METHOD pattern") in place of its
// prefix.
func servedRoutes(e *env) []string {
	rec := &routeRecorder{}
	var draining atomic.Bool
	pages := account.New(nil, make([]byte, 32), zap.NewNop(), account.Options{})
	addRoutes(rec, e.svc, e.tokens, e.st, zap.NewNop(), &draining, scimhttp.Options{}, pages.Mount)
	var out []string
	for _, p := range rec.patterns {
		if p == scimhttp.Prefix+"/" {
			out = append(out, scimhttp.Routes(e.svc)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// requireEveryRoute fails t unless named (the routes a table's rows name) holds
// every served route and nothing else, so that a route added without a row, or a row
// left behind by a removed route, is noticed; what says what a row is.
func requireEveryRoute(t *testing.T, served, named []string, what string) {
	t.Helper()
	for _, r := range named {
		if !slices.Contains(served, r) {
			t.Errorf("%s names %q, which is not a route", what, r)
		}
	}
	var missing []string
	for _, r := range served {
		if !slices.Contains(named, r) {
			missing = append(missing, r)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("routes without %s: %q", what, missing)
	}
}

// iso is the two tenants of the matrix and what each has.
type iso struct {
	e             *env
	aTok, bTok    string // all scopes
	aMeTok        string // scim, bound to A's user aMe
	aTenant, bID  string // A's name, B's tenant id
	aUser, aMe    string
	aGroup        string
	bUser, bGroup string
	bTask         string // B's task number, as the onboarding routes give it
	bTaskID       string // B's internal task id, which no answer shows
	bUserTok      string // B's per-user token from POST /users
	bCursor       string // a cursor B was given
	bSecrets      []string
	noneID        string // an id no resource has
	noneEmail     string // an email no user has
	noneTask      string
}

func isoSetup(t *testing.T, e *env) *iso {
	t.Helper()
	x := &iso{e: e, aTenant: "iso-a", noneID: "00000000-0000-4000-8000-000000000000",
		noneEmail: "nobody@example.com", noneTask: "999999"}
	x.aTok = e.newTenant("iso-a", scim.AllScopes...)
	x.bTok = e.newTenant("iso-b", scim.AllScopes...)
	tn, err := e.st.TenantByName(context.Background(), "iso-b")
	if err != nil {
		t.Fatal(err)
	}
	x.bID = tn.ID

	// B: a user and a group only B has, users whose emails A will also create,
	// queued messages (partner and superuser), a per-user token and a task.
	b := func(method, path string, body any, want int) resp {
		t.Helper()
		return e.callAs(x.bTok, method, path, body).want(t, want)
	}
	x.bUser = str(b("POST", "/scim/v2/Users", user("b-only@example.com", "externalId", "b-ext", "password", "b-password-1",
		"name", map[string]any{"givenName": "Bea", "familyName": "Only"}), 201).body, "id")
	x.bGroup = str(b("POST", "/scim/v2/Groups", group("B Only Team", x.bUser), 201).body, "id")
	for _, f := range []string{"scim", "bulk", "partner", "alias", "admin", "platform", "superuser", "superuser2", "onboarding"} {
		b("POST", "/scim/v2/Users", user("b-shared-"+f+"@example.com"), 201)
	}
	partnerCall(t, e, x.bTok, "POST", partnerPath, partnerProvisionBody("b-partner@example.com", "https://chat.example.com/b")).want(t, 201)
	r := adminDo(t, e, x.bTok, "POST", "/users", map[string]any{"email": "b-admin@example.com", "credits": 7}).want(t, 201)
	x.bUserTok, _ = r.body["token"].(string)
	superuserPost(t, e, "/api/v1/create_user", map[string]any{"key": x.bTok, "email": "b-super@example.com",
		"first_name": "Bo", "last_name": "Super", "password": "b-password-2"}).want(t, 201)
	ob := onboardingDo(t, e, x.bTok, "POST", onboardingUsers, []byte(`[{"email":"b-onboard@example.com","firstName":"Bo","lastName":"Board","roles":["Scheduler"],"sendInvitation":true}]`), nil)
	if ob.status != 200 {
		t.Fatalf("onboarding for B: %d %s", ob.status, ob.raw)
	}
	if n, ok := ob.result(t)["taskId"].(float64); ok {
		x.bTask = strconv.FormatFloat(n, 'f', -1, 64)
		bt, err := e.st.TaskByNumber(context.Background(), x.bID, int64(n))
		if err != nil {
			t.Fatal(err)
		}
		x.bTaskID = bt.ID
	}
	x.bCursor, _ = b("GET", "/scim/v2/Users?cursor=&count=1", nil, 200).body["nextCursor"].(string)
	if x.bUserTok == "" || x.bTask == "" || x.bCursor == "" {
		t.Fatalf("setup of B: token %q task %q cursor %q", x.bUserTok, x.bTask, x.bCursor)
	}

	// What of B's may never reach A: ids, names and credentials (not the shared
	// emails, which A creates for itself).
	x.bSecrets = []string{x.bTok, x.bUserTok, x.bTaskID, x.bGroup, "B Only Team", "b-ext", "Bea", "b-partner@", "b-admin@", "b-super@", "b-onboard@"}
	for _, id := range ids(b("GET", "/scim/v2/Users?count=1000", nil, 200)) {
		x.bSecrets = append(x.bSecrets, id)
	}
	for _, m := range isoOutbox(t, e, x.bID) {
		x.bSecrets = append(x.bSecrets, m.ID)
	}

	// A: a user, a group, and a user with a token bound to it for /Me.
	a := func(method, path string, body any, want int) resp {
		t.Helper()
		return e.callAs(x.aTok, method, path, body).want(t, want)
	}
	x.aUser = str(a("POST", "/scim/v2/Users", user("a-user@example.com"), 201).body, "id")
	x.aMe = str(a("POST", "/scim/v2/Users", user("a-me@example.com"), 201).body, "id")
	x.aGroup = str(a("POST", "/scim/v2/Groups", group("A Team", x.aUser), 201).body, "id")
	x.aMeTok, err = e.tokens.Issue(context.Background(), x.aTenant, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}, UserID: x.aMe})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func (x *iso) tenantID(t *testing.T, name string) string {
	t.Helper()
	tn, err := x.e.st.TenantByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

func isoOutbox(t *testing.T, e *env, tenantID string) []scim.Message {
	t.Helper()
	ms, err := e.st.Outbox(context.Background(), tenantID)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// snapshot is everything B reads through its own credentials, as raw answers, and
// B's queued messages.
func (x *iso) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	get := func(status int, raw string) {
		fmt.Fprintf(&b, "%d %s\n", status, raw)
	}
	for _, p := range []string{"/scim/v2/Users?count=1000", "/scim/v2/Groups?count=1000", "/scim/v2/Users/" + x.bUser, "/scim/v2/Groups/" + x.bGroup} {
		r := x.e.callAs(x.bTok, "GET", p, nil)
		get(r.status, r.header.Get("ETag")+" "+r.raw)
	}
	r := onboardingDo(t, x.e, x.bTok, "GET", onboardingTasks+x.bTask, nil, nil)
	get(r.status, r.raw)
	ar := adminDo(t, x.e, x.bTok, "GET", "/users?count=1000", nil)
	get(ar.status, ar.raw)
	ar = adminDo(t, x.e, x.bTok, "POST", "/users/verify", map[string]any{"token": x.bUserTok})
	get(ar.status, ar.raw)
	sr := superuserDo(t, x.e, "GET", "/api/v1/user/count?key="+url.QueryEscape(x.bTok), "")
	get(sr.status, sr.raw)
	sr = superuserDo(t, x.e, "GET", "/api/v1/user/nonteam?key="+url.QueryEscape(x.bTok), "")
	get(sr.status, sr.raw)
	au := x.e.callAs(x.bTok, "GET", "/admin/v1/audit?limit=1000", nil)
	get(au.status, au.raw)
	out, _ := json.Marshal(isoOutbox(t, x.e, x.bID))
	b.Write(out)
	return b.String()
}

// do sends a request as A (its credentials are in auth, the headers or the body)
// and checks the answer: no server error, no 403 for A's all-scope credentials, and
// nothing of B's that the request did not itself name.
func (x *iso) do(t *testing.T, method, path string, body any, auth string, hdr ...string) resp {
	t.Helper()
	status, header, raw := roundTrip(t, x.e.newRequest(t, method, path, body, "application/json", auth, hdr...))
	r := resp{status: status, header: header, raw: string(raw)}
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &r.body)
	}
	unescaped, _ := url.QueryUnescape(path)
	sent := path + " " + unescaped + " " + auth + " " + strings.Join(hdr, " ")
	switch v := body.(type) {
	case nil:
	case string:
		sent += v
	default:
		b, _ := json.Marshal(v)
		sent += string(b)
	}
	if status >= 500 && status != http.StatusNotImplemented {
		t.Fatalf("%s %s: status %d: %s", method, path, status, raw)
	}
	if status == http.StatusForbidden && strings.Contains(sent, x.aTok) {
		t.Errorf("%s %s: 403 for a token with every scope: %s", method, path, raw)
	}
	for _, s := range x.bSecrets {
		if strings.Contains(r.raw, s) && !strings.Contains(sent, s) {
			t.Errorf("%s %s: the answer carries B's %q: %s", method, path, s, truncate(r.raw, 600))
		}
	}
	return r
}

func (x *iso) scim(t *testing.T, method, path string, body any, hdr ...string) resp {
	t.Helper()
	return x.do(t, method, path, body, "Bearer "+x.aTok, hdr...)
}

// like checks that an answer about B's thing (named by bVal) is the answer about a
// thing that does not exist (named by noneVal), byte for byte once the names are
// aligned.
func like(t *testing.T, got resp, bVal string, none resp, noneVal string) {
	t.Helper()
	g := strings.ReplaceAll(got.raw, bVal, "NAME")
	n := strings.ReplaceAll(none.raw, noneVal, "NAME")
	if got.status != none.status || g != n {
		t.Errorf("naming B's %q answers differently from naming nothing:\n B's:    %d %s\n nothing: %d %s", bVal, got.status, got.raw, none.status, none.raw)
	}
}

// wantList checks a list answer: the status and totalResults wantTotal, or with
// wantTotal -1 totalResults equal to the resources it returned (all on one page).
func wantList(t *testing.T, r resp, wantTotal int) {
	t.Helper()
	r.want(t, http.StatusOK)
	if got := r.body["totalResults"]; got != float64(wantTotal) && wantTotal >= 0 {
		t.Errorf("totalResults %v, want %d: %s", got, wantTotal, r.raw)
	}
	if n, _ := r.body["Resources"].([]any); wantTotal < 0 && r.body["totalResults"] != float64(len(n)) {
		t.Errorf("totalResults %v but %d resources: %s", r.body["totalResults"], len(n), r.raw)
	}
}

// isoCase is one route's case.
type isoCase struct {
	route string // the pattern as the handler registers it
	name  string
	run   func(t *testing.T, x *iso)
}

func isoBulk(ids map[string]string) map[string]any {
	u, g := ids["user"], ids["group"]
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"}, "Operations": []any{
		map[string]any{"method": "PUT", "path": "/Users/" + u, "data": user("evil@example.com")},
		map[string]any{"method": "PATCH", "path": "/Users/" + u, "data": patchBody(op("replace", "active", false))},
		map[string]any{"method": "PATCH", "path": "/Groups/" + g, "data": patchBody(op("add", "members", []any{map[string]any{"value": ids["aUser"]}}))},
		map[string]any{"method": "DELETE", "path": "/Groups/" + g},
		map[string]any{"method": "DELETE", "path": "/Users/" + u, "version": `W/"1"`},
		map[string]any{"method": "POST", "path": "/Groups", "bulkId": "g1", "data": group("Bulk Team", u)},
		map[string]any{"method": "PATCH", "path": "/Groups/" + ids["aGroup"], "data": patchBody(op("add", "members", []any{map[string]any{"value": u}}))},
	}}
}

func isoCases() []isoCase {
	users, groups := "/scim/v2/Users/", "/scim/v2/Groups/"
	// byID runs the same request about B's resource and about none, and requires
	// the two answers to be alike.
	byID := func(method, base string, kind string, body func(id string) any, hdr ...string) func(t *testing.T, x *iso) {
		return func(t *testing.T, x *iso) {
			b, none := x.bUser, x.noneID
			if kind == "group" {
				b = x.bGroup
			}
			var bb, nb any
			if body != nil {
				bb, nb = body(b), body(none)
			}
			got := x.scim(t, method, base+b, bb, hdr...)
			if got.status != http.StatusNotFound {
				t.Errorf("status %d, want 404", got.status)
			}
			like(t, got, b, x.scim(t, method, base+none, nb, hdr...), none)
		}
	}
	// member runs a request naming B's user as a member of A's group, and the same
	// naming none.
	member := func(method string, path func(x *iso) string, body func(member string) any) func(t *testing.T, x *iso) {
		return func(t *testing.T, x *iso) {
			got := x.scim(t, method, path(x), body(x.bUser))
			if got.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", got.status)
			}
			like(t, got, x.bUser, x.scim(t, method, path(x), body(x.noneID)), x.noneID)
		}
	}
	aGroupURL := func(x *iso) string { return groups + x.aGroup }
	groupsURL := func(*iso) string { return "/scim/v2/Groups" }
	members := func(id string) []any { return []any{map[string]any{"value": id}} }
	// list runs a list or search that would match B's data and wants nothing.
	list := func(method, path string, body any) func(t *testing.T, x *iso) {
		return func(t *testing.T, x *iso) {
			p := strings.NewReplacer("{bUser}", x.bUser, "{bGroup}", x.bGroup).Replace(path)
			b := body
			if s, ok := body.(string); ok {
				b = strings.NewReplacer("{bUser}", x.bUser, "{bGroup}", x.bGroup).Replace(s)
			}
			wantList(t, x.scim(t, method, p, b), 0)
		}
	}
	search := func(f string) string {
		return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":` + jsonString(f) + `}`
	}
	// public answers the same to A as to anyone: it may not carry B's data.
	public := func(method, path string, status int) func(t *testing.T, x *iso) {
		return func(t *testing.T, x *iso) { x.scim(t, method, path, nil).want(t, status) }
	}
	platform := func(x *iso) []string { return []string{"X-App-Token", x.aTok} }
	q := url.QueryEscape

	return []isoCase{
		// The SCIM API. Discovery and health carry no tenant data.
		{"GET /scim/v2/ServiceProviderConfig", "discovery", public("GET", "/scim/v2/ServiceProviderConfig", 200)},
		{"GET /scim/v2/ResourceTypes", "discovery", public("GET", "/scim/v2/ResourceTypes", 200)},
		{"GET /scim/v2/ResourceTypes/{id}", "discovery", public("GET", "/scim/v2/ResourceTypes/User", 200)},
		{"GET /scim/v2/Schemas", "discovery", public("GET", "/scim/v2/Schemas", 200)},
		{"GET /scim/v2/Schemas/{id}", "discovery", public("GET", "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", 200)},
		{"* /scim/v2/", "unknown_path", func(t *testing.T, x *iso) {
			like(t, x.scim(t, "GET", "/scim/v2/Nope/"+x.bUser, nil), x.bUser, x.scim(t, "GET", "/scim/v2/Nope/"+x.noneID, nil), x.noneID)
		}},

		{"GET /scim/v2/Users/{id}", "get_user", byID("GET", users, "user", nil)},
		{"GET /scim/v2/Users/{id}", "get_user_if_none_match", byID("GET", users, "user", nil, "If-None-Match", `W/"1"`)},
		{"GET /scim/v2/Groups/{id}", "get_group", byID("GET", groups, "group", nil)},
		{"GET /scim/v2/Groups/{id}", "get_group_if_none_match", byID("GET", groups, "group", nil, "If-None-Match", `W/"1"`)},
		{"PUT /scim/v2/Users/{id}", "put_user", byID("PUT", users, "user", func(string) any { return user("b-only@example.com", "active", false) })},
		{"PUT /scim/v2/Users/{id}", "put_user_if_match", byID("PUT", users, "user", func(string) any { return user("x@example.com") }, "If-Match", `W/"1"`)},
		{"PUT /scim/v2/Groups/{id}", "put_group", byID("PUT", groups, "group", func(string) any { return group("Taken") })},
		{"PATCH /scim/v2/Users/{id}", "patch_user", byID("PATCH", users, "user", func(string) any { return patchBody(op("replace", "active", false)) })},
		{"PATCH /scim/v2/Users/{id}", "patch_user_if_match", byID("PATCH", users, "user", func(string) any { return patchBody(op("replace", "title", "x")) }, "If-Match", `W/"1"`)},
		{"PATCH /scim/v2/Groups/{id}", "patch_group", byID("PATCH", groups, "group", func(string) any { return patchBody(op("remove", "members", nil)) })},
		{"DELETE /scim/v2/Users/{id}", "delete_user", byID("DELETE", users, "user", nil)},
		{"DELETE /scim/v2/Users/{id}", "delete_user_if_match", byID("DELETE", users, "user", nil, "If-Match", `W/"1"`)},
		{"DELETE /scim/v2/Groups/{id}", "delete_group", byID("DELETE", groups, "group", nil)},
		{"DELETE /scim/v2/Groups/{id}", "delete_group_if_match", byID("DELETE", groups, "group", nil, "If-Match", `W/"9"`)},

		{"PATCH /scim/v2/Groups/{id}", "add_member", member("PATCH", aGroupURL, func(id string) any { return patchBody(op("add", "members", members(id))) })},
		{"PATCH /scim/v2/Groups/{id}", "replace_members", member("PATCH", aGroupURL, func(id string) any { return patchBody(op("replace", "members", members(id))) })},
		{"PATCH /scim/v2/Groups/{id}", "remove_member", func(t *testing.T, x *iso) {
			r := x.scim(t, "PATCH", groups+x.aGroup, patchBody(op("remove", `members[value eq "`+x.bUser+`"]`, nil))).want(t, 200)
			if got := fmt.Sprint(r.body["members"]); !strings.Contains(got, x.aUser) {
				t.Errorf("A's group lost its member: %s", r.raw)
			}
		}},
		{"PUT /scim/v2/Groups/{id}", "put_members", member("PUT", aGroupURL, func(id string) any { return group("A Team", id) })},
		{"POST /scim/v2/Groups", "create_group_with_member", member("POST", groupsURL, func(id string) any { return group("Evil Team", id) })},
		{"POST /scim/v2/Users", "create_same_user_name", func(t *testing.T, x *iso) {
			r := x.scim(t, "POST", "/scim/v2/Users", user("b-shared-scim@example.com")).want(t, 201)
			if str(r.body, "meta.version") != `W/"1"` {
				t.Errorf("A's user is not new: %s", r.raw)
			}
		}},

		{"GET /scim/v2/Users", "list_users", func(t *testing.T, x *iso) { wantList(t, x.scim(t, "GET", "/scim/v2/Users?count=1000", nil), -1) }},
		{"GET /scim/v2/Users", "filter_user_name", list("GET", "/scim/v2/Users?filter="+q(`userName eq "b-only@example.com"`), nil)},
		{"GET /scim/v2/Users", "filter_id", list("GET", "/scim/v2/Users?filter="+q(`id eq "{bUser}"`), nil)},
		{"GET /scim/v2/Users", "filter_external_id", list("GET", "/scim/v2/Users?filter="+q(`externalId eq "b-ext"`), nil)},
		{"GET /scim/v2/Users", "filter_groups", list("GET", "/scim/v2/Users?filter="+q(`groups.value eq "{bGroup}"`), nil)},
		{"GET /scim/v2/Users", "count_only", list("GET", "/scim/v2/Users?count=0&filter="+q(`name.givenName eq "Bea"`), nil)},
		{"GET /scim/v2/Users", "cursor_pages", func(t *testing.T, x *iso) {
			seen := 0
			r := x.scim(t, "GET", "/scim/v2/Users?cursor=&count=2", nil).want(t, 200)
			for range 50 {
				seen += len(ids(r))
				next, _ := r.body["nextCursor"].(string)
				if next == "" {
					break
				}
				r = x.scim(t, "GET", "/scim/v2/Users?count=2&cursor="+q(next), nil).want(t, 200)
			}
			if total := r.body["totalResults"]; total != float64(seen) {
				t.Errorf("cursor pages gave %d users, totalResults %v", seen, total)
			}
		}},
		{"GET /scim/v2/Users", "foreign_cursor", func(t *testing.T, x *iso) {
			x.scim(t, "GET", "/scim/v2/Users?count=1&cursor="+q(x.bCursor), nil).wantError(t, 400, "invalidCursor")
		}},
		{"GET /scim/v2/Groups", "list_groups", func(t *testing.T, x *iso) { wantList(t, x.scim(t, "GET", "/scim/v2/Groups?count=1000", nil), -1) }},
		{"GET /scim/v2/Groups", "filter_display_name", list("GET", "/scim/v2/Groups?filter="+q(`displayName eq "B Only Team"`), nil)},
		{"GET /scim/v2/Groups", "filter_members", list("GET", "/scim/v2/Groups?filter="+q(`members.value eq "{bUser}"`), nil)},
		{"POST /scim/v2/Users/.search", "search_users", list("POST", "/scim/v2/Users/.search", search(`userName eq "b-only@example.com" or id eq "{bUser}"`))},
		{"POST /scim/v2/Groups/.search", "search_groups", list("POST", "/scim/v2/Groups/.search", search(`displayName eq "B Only Team" or id eq "{bGroup}"`))},
		{"POST /scim/v2/.search", "search_root", list("POST", "/scim/v2/.search", search(`id eq "{bUser}" or id eq "{bGroup}" or displayName eq "B Only Team"`))},
		{"GET /scim/v2/{$}", "query_root", list("GET", "/scim/v2/?filter="+q(`id eq "{bUser}" or id eq "{bGroup}" or displayName eq "B Only Team"`), nil)},

		{"POST /scim/v2/Bulk", "bulk", func(t *testing.T, x *iso) {
			got := x.scim(t, "POST", "/scim/v2/Bulk", isoBulk(map[string]string{"user": x.bUser, "group": x.bGroup, "aUser": x.aUser, "aGroup": x.aGroup})).want(t, 200)
			none := x.scim(t, "POST", "/scim/v2/Bulk", isoBulk(map[string]string{"user": x.noneID, "group": x.noneID, "aUser": x.aUser, "aGroup": x.aGroup})).want(t, 200)
			got.raw = strings.ReplaceAll(got.raw, x.bGroup, x.bUser)
			like(t, got, x.bUser, none, x.noneID)
			for _, res := range bulkResults(t, got) {
				if s, _ := res["status"].(string); s != "404" && s != "400" {
					t.Errorf("an operation on B's data answered %v: %v", s, res)
				}
			}
		}},
		{"POST /scim/v2/Bulk", "bulk_create", func(t *testing.T, x *iso) {
			r := x.scim(t, "POST", "/scim/v2/Bulk", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"}, "Operations": []any{
				map[string]any{"method": "POST", "path": "/Users", "bulkId": "u", "data": user("b-shared-bulk@example.com")},
			}}).want(t, 200)
			wantOps(t, bulkResults(t, r), 201)
		}},

		{"GET /scim/v2/Me", "me_get", func(t *testing.T, x *iso) {
			if r := x.do(t, "GET", "/scim/v2/Me", nil, "Bearer "+x.aMeTok).want(t, 200); str(r.body, "id") != x.aMe {
				t.Errorf("/Me is not A's user: %s", r.raw)
			}
			x.scim(t, "GET", "/scim/v2/Me", nil).want(t, http.StatusNotImplemented)
			// A token of A cannot be bound to B's user.
			if _, err := x.e.tokens.Issue(context.Background(), x.aTenant, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}, UserID: x.bUser}); err == nil {
				t.Error("a token of A was bound to B's user")
			}
		}},
		{"PUT /scim/v2/Me", "me_put", func(t *testing.T, x *iso) {
			x.do(t, "PUT", "/scim/v2/Me", user("a-me@example.com", "title", "put"), "Bearer "+x.aMeTok).want(t, 200)
		}},
		{"PATCH /scim/v2/Me", "me_patch", func(t *testing.T, x *iso) {
			x.do(t, "PATCH", "/scim/v2/Me", patchBody(op("replace", "title", "patched")), "Bearer "+x.aMeTok).want(t, 200)
		}},
		{"POST /scim/v2/Me", "me_post", func(t *testing.T, x *iso) {
			x.do(t, "POST", "/scim/v2/Me", user("b-only@example.com"), "Bearer "+x.aMeTok).want(t, http.StatusNotImplemented)
		}},
		{"DELETE /scim/v2/Me", "me_delete", func(t *testing.T, x *iso) {
			x.do(t, "DELETE", "/scim/v2/Me", nil, "Bearer "+x.aMeTok).want(t, 204)
			x.do(t, "GET", "/scim/v2/Me", nil, "Bearer "+x.aMeTok).want(t, 404)
		}},

		// Partner provisioning (Authorization: Token).
		{"/v1/pine/partner/provision-user", "partner_deprovision", func(t *testing.T, x *iso) {
			send := func(email string) resp {
				return x.do(t, "POST", partnerPath, map[string]any{"action": "deprovision", "email": email}, "Token "+x.aTok)
			}
			got := send("b-only@example.com").want(t, 404)
			like(t, got, "b-only@example.com", send(x.noneEmail), x.noneEmail)
		}},
		{"/v1/pine/partner/provision-user", "partner_provision_own", func(t *testing.T, x *iso) {
			x.do(t, "POST", partnerPath, partnerProvisionBody("b-shared-partner@example.com", "https://chat.example.com/a"), "Token "+x.aTok).want(t, 201)
		}},
		{"/provision-user", "partner_alias", func(t *testing.T, x *iso) {
			x.do(t, "POST", partnerAlias, partnerProvisionBody("b-shared-alias@example.com", "https://chat.example.com/a"), "Token "+x.aTok).want(t, 201)
			got := x.do(t, "POST", partnerAlias, map[string]any{"action": "deprovision", "email": "b-only@example.com"}, "Token "+x.aTok)
			like(t, got, "b-only@example.com", x.do(t, "POST", partnerAlias, map[string]any{"action": "deprovision", "email": x.noneEmail}, "Token "+x.aTok), x.noneEmail)
		}},

		// The administration service (Bearer, scope admin).
		{"/users/{email}", "admin_get", func(t *testing.T, x *iso) {
			got := x.do(t, "GET", "/users/b-admin@example.com", nil, "Bearer "+x.aTok).want(t, 404)
			like(t, got, "b-admin@example.com", x.do(t, "GET", "/users/"+x.noneEmail, nil, "Bearer "+x.aTok), x.noneEmail)
		}},
		{"/users", "admin_list", func(t *testing.T, x *iso) {
			r := x.do(t, "GET", "/users?count=1000", nil, "Bearer "+x.aTok).want(t, 200)
			n := x.scim(t, "GET", "/scim/v2/Users?count=0", nil).want(t, 200).body["totalResults"]
			if r.body["totalResults"] != n {
				t.Errorf("GET /users counts %v users, A has %v", r.body["totalResults"], n)
			}
		}},
		{"/users", "admin_patch", func(t *testing.T, x *iso) {
			send := func(email string) resp {
				return x.do(t, "PATCH", "/users", map[string]any{"email": email, "credits": 1000}, "Bearer "+x.aTok)
			}
			like(t, send("b-admin@example.com").want(t, 404), "b-admin@example.com", send(x.noneEmail), x.noneEmail)
		}},
		{"/users", "admin_delete", func(t *testing.T, x *iso) {
			got := x.do(t, "DELETE", "/users?email=b-admin%40example.com", nil, "Bearer "+x.aTok).want(t, 404)
			like(t, got, "b-admin@example.com", x.do(t, "DELETE", "/users?email="+q(x.noneEmail), nil, "Bearer "+x.aTok), x.noneEmail)
			body := func(email string) any { return map[string]any{"email": email} }
			like(t, x.do(t, "DELETE", "/users", body("b-admin@example.com"), "Bearer "+x.aTok), "b-admin@example.com",
				x.do(t, "DELETE", "/users", body(x.noneEmail), "Bearer "+x.aTok), x.noneEmail)
		}},
		{"/users", "admin_create_own", func(t *testing.T, x *iso) {
			x.do(t, "POST", "/users", map[string]any{"email": "b-shared-admin@example.com", "credits": 1}, "Bearer "+x.aTok).want(t, 201)
		}},
		{"/users/verify", "admin_verify_foreign_token", func(t *testing.T, x *iso) {
			got := x.do(t, "POST", "/users/verify", map[string]any{"token": x.bUserTok}, "Bearer "+x.aTok).want(t, 401)
			like(t, got, x.bUserTok, x.do(t, "POST", "/users/verify", map[string]any{"token": "scimd_unknown"}, "Bearer "+x.aTok), "scimd_unknown")
		}},

		// Platform user provisioning (Bearer or Basic, and x-app-token).
		{"/scim/provision-user", "platform_provision_own", func(t *testing.T, x *iso) {
			x.do(t, "POST", "/scim/provision-user", platformSample("b-shared-platform", "b-shared-platform@example.com"), "Bearer "+x.aTok, platform(x)...).want(t, 201)
		}},
		{"/scim/provision-user", "platform_mixed_tenants", func(t *testing.T, x *iso) {
			// Two tokens of two tenants, or Basic naming B with A's token: 401.
			x.do(t, "POST", "/scim/provision-user", platformSample("mixed", "mixed@example.com"), "Bearer "+x.aTok, "X-App-Token", x.bTok).want(t, 401)
			basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("iso-b:"+x.aTok))
			x.do(t, "POST", "/scim/provision-user", platformSample("mixed", "mixed@example.com"), basic, platform(x)...).want(t, 401)
		}},
		{"/scim/update-user/{email}", "platform_update", func(t *testing.T, x *iso) {
			for _, m := range []string{"PUT", "PATCH", "POST"} {
				send := func(email string) resp {
					return x.do(t, m, "/scim/update-user/"+email, map[string]any{"firstName": "Evil"}, "Bearer "+x.aTok, platform(x)...)
				}
				like(t, send("b-only@example.com").want(t, 404), "b-only@example.com", send(x.noneEmail), x.noneEmail)
			}
		}},
		{"/scim/update-user/{$}", "platform_update_no_email", func(t *testing.T, x *iso) {
			x.do(t, "PUT", "/scim/update-user/", map[string]any{"firstName": "Evil"}, "Bearer "+x.aTok, platform(x)...).want(t, 400)
		}},
		{"/scim/de-provision-user/{email}", "platform_deprovision", func(t *testing.T, x *iso) {
			for _, m := range []string{"DELETE", "POST"} {
				send := func(email string) resp {
					return x.do(t, m, "/scim/de-provision-user/"+email, nil, "Bearer "+x.aTok, platform(x)...)
				}
				like(t, send("b-only@example.com").want(t, 404), "b-only@example.com", send(x.noneEmail), x.noneEmail)
			}
		}},
		{"/scim/de-provision-user/{$}", "platform_deprovision_no_email", func(t *testing.T, x *iso) {
			x.do(t, "DELETE", "/scim/de-provision-user/", nil, "Bearer "+x.aTok, platform(x)...).want(t, 400)
		}},

		// Superuser management (the key in the body or the query).
		{"POST /api/v1/create_user", "superuser_create_own", func(t *testing.T, x *iso) {
			x.do(t, "POST", "/api/v1/create_user", map[string]any{"key": x.aTok, "email": "b-shared-superuser@example.com",
				"first_name": "A", "last_name": "A", "password": "a-password-1"}, "").want(t, 201)
		}},
		{"POST /create_user", "superuser_create_own_alias", func(t *testing.T, x *iso) {
			x.do(t, "POST", "/create_user", map[string]any{"key": x.aTok, "email": "b-shared-superuser2@example.com",
				"first_name": "A", "last_name": "A", "password": "a-password-1", "email_confirmed": true}, "").want(t, 201)
		}},
		{"POST /api/v1/delete_user", "superuser_delete", func(t *testing.T, x *iso) {
			send := func(email string) resp {
				return x.do(t, "POST", "/api/v1/delete_user", map[string]any{"key": x.aTok, "email": email}, "")
			}
			like(t, send("b-super@example.com").want(t, 404), "b-super@example.com", send(x.noneEmail), x.noneEmail)
		}},
		{"POST /delete_user", "superuser_delete_alias", func(t *testing.T, x *iso) {
			send := func(email string) resp {
				return x.do(t, "POST", "/delete_user", map[string]any{"key": x.aTok, "email": email}, "")
			}
			like(t, send("b-only@example.com").want(t, 404), "b-only@example.com", send(x.noneEmail), x.noneEmail)
		}},
		{"GET /api/v1/user/nonteam", "superuser_nonteam", func(t *testing.T, x *iso) {
			// A's users in no group; the answer is checked for B's like every other.
			x.do(t, "GET", "/api/v1/user/nonteam?key="+q(x.aTok), nil, "").want(t, 200)
		}},
		{"GET /api/v1/user/count", "superuser_count", func(t *testing.T, x *iso) {
			r := x.do(t, "GET", "/api/v1/user/count?key="+q(x.aTok), nil, "").want(t, 200)
			n := x.scim(t, "GET", "/scim/v2/Users?count=0", nil).want(t, 200).body["totalResults"]
			if r.body["user_count"] != n || r.body["team_user_count"] != float64(1) {
				t.Errorf("count %s, A has %v users, 1 in a group", r.raw, n)
			}
		}},
		{"/api/v1/create_user", "superuser_wrong_method", public("GET", "/api/v1/create_user", 405)},
		{"/create_user", "superuser_wrong_method", public("GET", "/create_user", 405)},
		{"/api/v1/delete_user", "superuser_wrong_method", public("GET", "/api/v1/delete_user", 405)},
		{"/delete_user", "superuser_wrong_method", public("GET", "/delete_user", 405)},
		{"/api/v1/user/nonteam", "superuser_wrong_method", public("POST", "/api/v1/user/nonteam", 405)},
		{"/api/v1/user/count", "superuser_wrong_method", public("POST", "/api/v1/user/count", 405)},

		// Onboarding provisioning (Bearer, scope compat) and its tasks.
		{"POST /onboarding/provision/standalone/users", "onboarding_create_own", func(t *testing.T, x *iso) {
			r := x.do(t, "POST", onboardingUsers, `[{"email":"b-shared-onboarding@example.com","firstName":"A","lastName":"A","roles":["Scheduler"],"sendInvitation":true}]`, "Bearer "+x.aTok).want(t, 200)
			if res, _ := r.body["result"].(map[string]any); res["inserted"] != float64(1) {
				t.Errorf("A's own user was not inserted: %s", r.raw)
			}
		}},
		{"PATCH /onboarding/provision/standalone/users", "onboarding_update", func(t *testing.T, x *iso) {
			send := func(email string) resp {
				return x.do(t, "PATCH", onboardingUsers, `[{"email":"`+email+`","lastName":"Evil"}]`, "Bearer "+x.aTok).want(t, 200)
			}
			got, none := send("b-onboard@example.com"), send(x.noneEmail)
			for _, r := range []resp{got, none} {
				res, _ := r.body["result"].(map[string]any)
				if res["updated"] != float64(0) || !strings.Contains(r.raw, "user_not_found") {
					t.Errorf("update of a user A does not have: %s", r.raw)
				}
			}
		}},
		{"/onboarding/provision/standalone/users", "onboarding_wrong_method", public("GET", onboardingUsers, 405)},
		{"GET /onboarding/provision/tasks/{taskId}", "onboarding_task", func(t *testing.T, x *iso) {
			// Task numbers count per tenant: B's number names A's own task of that
			// number, if A has one, and never B's.
			got := x.do(t, "GET", onboardingTasks+x.bTask, nil, "Bearer "+x.aTok)
			switch got.status {
			case http.StatusOK:
				res, _ := got.body["result"].(map[string]any)
				task, _ := res["task"].(map[string]any)
				if task["tenantId"] != x.tenantID(t, x.aTenant) {
					t.Errorf("A's task %s: %s", x.bTask, got.raw)
				}
			default:
				like(t, got.want(t, 404), x.bTask, x.do(t, "GET", onboardingTasks+x.noneTask, nil, "Bearer "+x.aTok), x.noneTask)
			}
			// B's internal id names nothing either.
			got = x.do(t, "GET", onboardingTasks+x.bTaskID, nil, "Bearer "+x.aTok).want(t, 404)
			none := "00000000-0000-4000-8000-0000000000ff"
			like(t, got, x.bTaskID, x.do(t, "GET", onboardingTasks+none, nil, "Bearer "+x.aTok), none)
		}},
		{"/onboarding/provision/tasks/{taskId}", "onboarding_task_wrong_method", func(t *testing.T, x *iso) {
			x.do(t, "DELETE", onboardingTasks+x.bTask, nil, "Bearer "+x.aTok).want(t, 405)
		}},

		// The administration API: A's audit log holds nothing of B's (checked on
		// every answer), and B's audit cursor gives A nothing of B's.
		{"/admin/v1/", "audit_log", func(t *testing.T, x *iso) {
			// A's log records A's own attempts on the ids it named, all refused;
			// nothing else of B's. (The answer names B's ids A sent earlier, so it
			// is checked here rather than by do.)
			aID, bIDs := x.tenantID(t, x.aTenant), x.bSecrets
			x.bSecrets = nil
			defer func() { x.bSecrets = bIDs }()
			checkEvents := func(r resp) {
				t.Helper()
				events, _ := r.body["events"].([]any)
				for _, ev := range events {
					m, _ := ev.(map[string]any)
					if m["tenantId"] != aID {
						t.Errorf("A's audit log holds another tenant's event: %v", m)
					}
					if rid, _ := m["resourceId"].(string); rid != "" && slices.Contains(bIDs, rid) && m["outcome"] == "ok" {
						t.Errorf("A's audit log records a change of B's resource: %v", m)
					}
				}
			}
			checkEvents(x.scim(t, "GET", "/admin/v1/audit?limit=1000", nil).want(t, 200))
			b := x.e.callAs(x.bTok, "GET", "/admin/v1/audit?limit=1", nil).want(t, 200)
			if c, _ := b.body["nextCursor"].(string); c != "" {
				if r := x.scim(t, "GET", "/admin/v1/audit?limit=1000&cursor="+q(c), nil); r.status == 200 {
					checkEvents(r)
				}
			}
			x.scim(t, "GET", "/admin/v1/nope", nil).want(t, 404)
		}},

		// Health and the account pages take no tenant credentials.
		{"GET /healthz", "health", public("GET", "/healthz", 200)},
		{"GET /readyz", "ready", public("GET", "/readyz", 200)},
		{"GET " + scim.SetPasswordPath, "account_page", public("GET", scim.SetPasswordPath+"?token=unknown", 410)},
		{"POST " + scim.SetPasswordPath, "account_post", func(t *testing.T, x *iso) {
			x.do(t, "POST", scim.SetPasswordPath, "token=unknown&csrf=x&password=p&confirm=p", "", "Content-Type", "application/x-www-form-urlencoded").want(t, 403)
		}},
		{"GET " + scim.VerifyEmailPath, "account_page", public("GET", scim.VerifyEmailPath+"?token=unknown", 410)},
		{"POST " + scim.VerifyEmailPath, "account_post", func(t *testing.T, x *iso) {
			x.do(t, "POST", scim.VerifyEmailPath, "token=unknown&csrf=x", "", "Content-Type", "application/x-www-form-urlencoded").want(t, 403)
		}},
	}
}

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestIsolationMatrix(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		newMailEnv(t, e, "", scim.OutboxOptions{}) // serves the account pages too
		x := isoSetup(t, e)
		cases := isoCases()

		// Every route the handler serves has a case, and every case names a route
		// it serves.
		named := make([]string, len(cases))
		for i, c := range cases {
			named[i] = c.route
		}
		requireEveryRoute(t, servedRoutes(e), named, "an isolation case")

		before := x.snapshot(t)
		for _, c := range cases {
			t.Run(strings.NewReplacer(" ", "_", "/", "_").Replace(c.route)+"/"+c.name, func(t *testing.T) {
				c.run(t, x)
				if after := x.snapshot(t); after != before {
					t.Fatalf("B's data changed:\nbefore: %s\nafter:  %s", before, after)
				}
			})
		}

		t.Run("outbox_store", func(t *testing.T) {
			aID := x.tenantID(t, x.aTenant)
			for _, m := range isoOutbox(t, e, x.bID) {
				if _, err := e.st.Message(context.Background(), aID, m.ID); err == nil {
					t.Errorf("B's message %s is readable as A's", m.ID)
				}
			}
			for _, m := range isoOutbox(t, e, aID) {
				if m.Recipient == "b-only@example.com" || strings.HasPrefix(m.Recipient, "b-partner") {
					t.Errorf("A's outbox holds a message for B's user: %+v", m)
				}
			}
		})
	})
}
