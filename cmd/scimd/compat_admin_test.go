package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// The administration service (compat/CONTRACT.md, admin.*) end to end: golden cases from
// testdata/compat/admin, then every route's behaviours and errors, with read-backs
// through /scim/v2, on every database.

// adminResp is a decoded admin response (its body is application/json).
type adminResp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// adminDo sends a request to the admin routes; token "" sends no Authorization.
// body is a string (sent as is) or any value (sent as JSON).
func adminDo(t *testing.T, e *env, token, method, path string, body any, hdr ...string) adminResp {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return adminSend(t, e.newRequest(t, method, path, body, "application/json", auth, hdr...))
}

func adminSend(t *testing.T, req *http.Request) adminResp {
	t.Helper()
	status, header, raw := roundTrip(t, req)
	r := adminResp{status: status, header: header, raw: string(raw)}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, want application/json; body %s", req.Method, req.URL.Path, ct, raw)
	}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: response is not a JSON object: %v\n%s", req.Method, req.URL.Path, err, raw)
	}
	return r
}

// want fails unless the status is as expected.
func (r adminResp) want(t *testing.T, status int) adminResp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.raw)
	}
	return r
}

// wantErr checks an error answer: the status, {"error": code, "message": …} and
// nothing else.
func (r adminResp) wantErr(t *testing.T, status int, code string) {
	t.Helper()
	r.want(t, status)
	if r.body["error"] != code {
		t.Errorf("error %v, want %q; body %s", r.body["error"], code, r.raw)
	}
	if m, _ := r.body["message"].(string); m == "" {
		t.Errorf("error without a message: %s", r.raw)
	}
	if len(r.body) != 2 {
		t.Errorf("error body has keys other than error and message: %s", r.raw)
	}
}

// adminWantBody fails unless the body has exactly these keys and values.
func adminWantBody(t *testing.T, r adminResp, want map[string]any) {
	t.Helper()
	w := map[string]any{}
	b, _ := json.Marshal(want)
	_ = json.Unmarshal(b, &w)
	if !reflect.DeepEqual(r.body, w) {
		t.Errorf("body %s, want %s", r.raw, b)
	}
}

// adminSCIMUser reads the user with this userName through /scim/v2.
func adminSCIMUser(t *testing.T, e *env, userName string) map[string]any {
	t.Helper()
	r := e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "`+userName+`"`), nil).want(t, http.StatusOK)
	list, _ := r.body["Resources"].([]any)
	if len(list) != 1 {
		t.Fatalf("SCIM finds %d users named %q: %s", len(list), userName, r.raw)
	}
	return list[0].(map[string]any)
}

// adminCredits reads the credits of a SCIM user (nil when it has none).
func adminSCIMCredits(u map[string]any) any {
	ext, _ := u[schemas.ScimdUserURN].(map[string]any)
	return ext["credits"]
}

// adminCount is the tenant's number of users, through SCIM.
func adminCount(t *testing.T, e *env) float64 {
	t.Helper()
	n, _ := e.call("GET", "/scim/v2/Users?count=0", nil).want(t, http.StatusOK).body["totalResults"].(float64)
	return n
}

// adminToken issues a token of tenant as o describes.
func adminToken(t *testing.T, e *env, tenant string, o scim.TokenOptions) string {
	t.Helper()
	s, err := e.tokens.Issue(context.Background(), tenant, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// adminBackends runs fn per database with the limits tuned.
func adminBackends(t *testing.T, fn func(t *testing.T, e *env), tune ...func(*scim.Limits)) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			fn(t, newEnv(t, b, scimhttp.Options{MaxBodyBytes: 64 << 10}, tune...))
		})
	}
}

// ---- golden cases

// adminCase is one golden case of testdata/compat/admin: setup calls (made with the
// case tenant's admin token, each expected to succeed), then the request and its
// expected answer. In strings, ${admin} is that admin token, ${scim} a token of the
// same tenant with only the scim scope, and ${name} a value a setup step captured.
type adminCase struct {
	// Rules are the ids of the compat/CONTRACT.md rules the case checks (required).
	Rules       []string       `json:"rules"`
	Description string         `json:"description"`
	Setup       []adminStep    `json:"setup"`
	Request     adminCaseReq   `json:"request"`
	Response    adminCaseReply `json:"response"`
}

type adminStep struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body,omitempty"`
	// Capture maps a variable to a top-level key of the answer.
	Capture map[string]string `json:"capture,omitempty"`
}

type adminCaseReq struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
	// RawBody is sent as is (for malformed JSON).
	RawBody *string `json:"rawBody,omitempty"`
}

type adminCaseReply struct {
	Status int `json:"status"`
	// Headers must be present with these values ("*": any value).
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the expected subset of the answer (see subsetDiffs).
	Body json.RawMessage `json:"body,omitempty"`
}

var adminVar = regexp.MustCompile(`\$\{([a-z_]+)\}`)

func adminExpand(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	return adminVar.ReplaceAllStringFunc(s, func(m string) string {
		v, ok := vars[adminVar.FindStringSubmatch(m)[1]]
		if !ok {
			t.Fatalf("unknown variable %s", m)
		}
		return v
	})
}

func TestAdminMatcher(t *testing.T) {
	var got any
	_ = json.Unmarshal([]byte(`{"a": 1, "b": "x", "c": [1, 2], "d": null}`), &got)
	for _, tc := range []struct {
		name  string
		want  string
		diffs int
	}{
		{"subset", `{"a": 1}`, 0},
		{"wildcard", `{"b": "*"}`, 0},
		{"wildcard_null", `{"d": "*"}`, 1},
		{"absent", `{"z": {"$absent": true}}`, 0},
		{"absent_present", `{"a": {"$absent": true}}`, 1},
		{"missing", `{"z": 1}`, 1},
		{"value", `{"a": 2}`, 1},
		{"array_length", `{"c": [1]}`, 1},
		{"array", `{"c": [1, 2]}`, 0},
		{"mentions", `{"b": {"$mentions": ["x"]}}`, 0},
		{"mentions_missing", `{"b": {"$mentions": ["x", "y"]}}`, 1},
		{"mentions_not_a_string", `{"a": {"$mentions": ["1"]}}`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w any
			if err := json.Unmarshal([]byte(tc.want), &w); err != nil {
				t.Fatal(err)
			}
			if d := subsetDiffs("$", w, got); len(d) != tc.diffs {
				t.Errorf("diffs %q, want %d", d, tc.diffs)
			}
		})
	}
}

// TestAdminGolden runs each golden case in a tenant of its own.
func TestAdminGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "compat", "admin", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden cases in testdata/compat/admin: %v", err)
	}
	sort.Strings(paths)
	forEachBackend(t, func(t *testing.T, e *env) {
		for i, p := range paths {
			name := strings.TrimSuffix(filepath.Base(p), ".json")
			t.Run(name, func(t *testing.T) {
				raw, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				var c adminCase
				d := json.NewDecoder(bytes.NewReader(raw))
				d.DisallowUnknownFields()
				if err := d.Decode(&c); err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				if err := checkContractRules(c.Rules); err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				tenant := fmt.Sprintf("admin-golden-%d", i)
				vars := map[string]string{
					"admin": e.newTenant(tenant, scim.ScopeAdmin),
				}
				vars["scim"] = adminToken(t, e, tenant, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}})
				for j, s := range c.Setup {
					var body any
					if len(s.Body) > 0 {
						body = adminExpand(t, string(s.Body), vars)
					}
					r := adminDo(t, e, vars["admin"], s.Method, adminExpand(t, s.Path, vars), body)
					if r.status/100 != 2 {
						t.Fatalf("setup %d: %s %s: %d %s", j+1, s.Method, s.Path, r.status, r.raw)
					}
					for v, key := range s.Capture {
						vars[v], _ = r.body[key].(string)
					}
				}
				var rd io.Reader
				switch {
				case c.Request.RawBody != nil:
					rd = strings.NewReader(*c.Request.RawBody)
				case len(c.Request.Body) > 0:
					rd = strings.NewReader(adminExpand(t, string(c.Request.Body), vars))
				}
				req, err := http.NewRequest(c.Request.Method, e.srv.URL+adminExpand(t, c.Request.Path, vars), rd)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range c.Request.Headers {
					req.Header.Set(k, adminExpand(t, v, vars))
				}
				r := adminSend(t, req)
				if r.status != c.Response.Status {
					t.Errorf("status %d, want %d; body %s", r.status, c.Response.Status, r.raw)
				}
				for k, v := range c.Response.Headers {
					if got := r.header.Get(k); got == "" || v != "*" && got != v {
						t.Errorf("header %s: %q, want %q", k, got, v)
					}
				}
				if len(c.Response.Body) > 0 {
					var want any
					if err := json.Unmarshal(c.Response.Body, &want); err != nil {
						t.Fatal(err)
					}
					for _, diff := range subsetDiffs("$", want, any(r.body)) {
						t.Error(diff)
					}
				}
			})
		}
	})
}

// ---- behaviours

// TestAdminCreate: POST /users makes an ordinary SCIM user with the credits in
// scimd's extension and a token bound to it, stored hashed.
func TestAdminCreate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		admin := e.newTenant("acme", scim.ScopeAdmin)
		e.token = adminToken(t, e, "acme", scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}})

		r := adminDo(t, e, admin, "POST", "/users", map[string]any{"email": " Ann@Example.com", "credits": 1000}).want(t, http.StatusCreated)
		token, _ := r.body["token"].(string)
		if token == "" {
			t.Fatalf("no token: %s", r.raw)
		}
		adminWantBody(t, r, map[string]any{"email": "ann@example.com", "token": token, "credits": 1000})
		if got := r.header.Get("Location"); got != "/users/ann@example.com" {
			t.Errorf("Location %q", got)
		}

		t.Run("scim_read_back", func(t *testing.T) {
			u := adminSCIMUser(t, e, "ann@example.com")
			if u["userName"] != "ann@example.com" || u["active"] != true {
				t.Errorf("userName %v active %v", u["userName"], u["active"])
			}
			wantEmails := []any{map[string]any{"value": "ann@example.com", "type": "work", "primary": true}}
			if !reflect.DeepEqual(u["emails"], wantEmails) {
				t.Errorf("emails %v", u["emails"])
			}
			if c := adminSCIMCredits(u); c != float64(1000) {
				t.Errorf("credits %v", c)
			}
			if s, _ := u["schemas"].([]any); len(s) != 2 || s[1] != schemas.ScimdUserURN {
				t.Errorf("schemas %v", u["schemas"])
			}
			if _, ok := u["name"]; ok {
				t.Errorf("name set: %v", u["name"])
			}
			// The extension is filterable like any other.
			f := e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(schemas.ScimdUserURN+":credits ge 1000"), nil).want(t, http.StatusOK)
			if f.body["totalResults"] != float64(1) {
				t.Errorf("filter on credits: %s", f.raw)
			}
		})
		t.Run("token_hashed_and_bound", func(t *testing.T) {
			id := str(adminSCIMUser(t, e, "ann@example.com"), "id")
			var rows []struct{ Hash, Scopes string }
			if err := e.st.DB().Raw(`SELECT hash, scopes FROM api_tokens WHERE user_id = ?`, id).Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			h := sha256.Sum256([]byte(token))
			if len(rows) != 1 || rows[0].Hash != fmt.Sprintf("%x", h) || rows[0].Scopes != "" {
				t.Errorf("token rows %+v", rows)
			}
			var n int64
			if err := e.st.DB().Raw(`SELECT count(*) FROM api_tokens WHERE hash = ? OR scopes LIKE ?`, token, "%"+token+"%").Scan(&n).Error; err != nil || n != 0 {
				t.Errorf("the secret is stored in clear: %d %v", n, err)
			}
		})
		t.Run("no_message_queued", func(t *testing.T) {
			tn, err := e.st.TenantByName(context.Background(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := e.st.Outbox(context.Background(), tn.ID)
			if err != nil || len(msgs) != 0 {
				t.Errorf("outbox %v %v", msgs, err)
			}
		})
		t.Run("credits_default_and_forms", func(t *testing.T) {
			for _, tc := range []struct {
				name, body string
				credits    float64
			}{
				{"absent", `{"email": "c1@example.com"}`, 0},
				{"null", `{"email": "c2@example.com", "credits": null}`, 0},
				{"zero", `{"email": "c3@example.com", "credits": 0}`, 0},
				{"decimal_point", `{"email": "c4@example.com", "credits": 1000.0}`, 1000},
				{"exponent", `{"email": "c5@example.com", "credits": 1e3}`, 1000},
				{"max", `{"email": "c6@example.com", "credits": 9007199254740992}`, 9007199254740992},
				{"unknown_keys_ignored", `{"email": "c7@example.com", "credits": 7, "plan": "gold"}`, 7},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := adminDo(t, e, admin, "POST", "/users", tc.body).want(t, http.StatusCreated)
					if r.body["credits"] != tc.credits {
						t.Errorf("credits %v, want %v", r.body["credits"], tc.credits)
					}
					email, _ := r.body["email"].(string)
					if c := adminSCIMCredits(adminSCIMUser(t, e, email)); c != tc.credits {
						t.Errorf("SCIM credits %v, want %v", c, tc.credits)
					}
				})
			}
		})
		t.Run("bad_input", func(t *testing.T) {
			before := adminCount(t, e)
			for _, tc := range []struct{ name, body, code string }{
				{"malformed_json", `{"email": "x@example.com"`, "invalid_request"},
				{"trailing_data", `{"email": "x@example.com"} {}`, "invalid_request"},
				{"array_body", `[{"email": "x@example.com"}]`, "invalid_request"},
				{"null_body", `null`, "invalid_request"},
				{"empty_body", ``, "invalid_request"},
				{"no_email", `{"credits": 5}`, "invalid_email"},
				{"null_email", `{"email": null}`, "invalid_email"},
				{"email_number", `{"email": 5}`, "invalid_email"},
				{"email_object", `{"email": {"value": "x@example.com"}}`, "invalid_email"},
				{"email_not_address", `{"email": "x.example.com"}`, "invalid_email"},
				{"email_display_name", `{"email": "X <x@example.com>"}`, "invalid_email"},
				{"email_too_long", `{"email": "` + strings.Repeat("a", 250) + `@example.com"}`, "invalid_email"},
				{"negative_credits", `{"email": "x@example.com", "credits": -5}`, "invalid_credits"},
				{"fractional_credits", `{"email": "x@example.com", "credits": 0.5}`, "invalid_credits"},
				{"too_many_credits", `{"email": "x@example.com", "credits": 9007199254740993}`, "invalid_credits"},
				{"huge_credits", `{"email": "x@example.com", "credits": 1e300}`, "invalid_credits"},
				{"string_credits", `{"email": "x@example.com", "credits": "5"}`, "invalid_credits"},
				{"bool_credits", `{"email": "x@example.com", "credits": true}`, "invalid_credits"},
				{"array_credits", `{"email": "x@example.com", "credits": [5]}`, "invalid_credits"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					adminDo(t, e, admin, "POST", "/users", tc.body).wantErr(t, http.StatusBadRequest, tc.code)
				})
			}
			if after := adminCount(t, e); after != before {
				t.Errorf("bad requests created users: %v before, %v after", before, after)
			}
		})
		t.Run("too_large", func(t *testing.T) {
			body := `{"email": "big@example.com", "pad": "` + strings.Repeat("x", 70<<10) + `"}`
			adminDo(t, e, admin, "POST", "/users", body).wantErr(t, http.StatusRequestEntityTooLarge, "payload_too_large")
		})
		t.Run("existing_email", func(t *testing.T) {
			r := adminDo(t, e, admin, "POST", "/users", map[string]any{"email": "ANN@example.com", "credits": 1})
			r.wantErr(t, http.StatusConflict, "user_exists")
			if c := adminSCIMCredits(adminSCIMUser(t, e, "ann@example.com")); c != float64(1000) {
				t.Errorf("credits changed by a refused create: %v", c)
			}
			// A user created through SCIM has the email too.
			e.call("POST", "/scim/v2/Users", user("scim@example.com")).want(t, http.StatusCreated)
			adminDo(t, e, admin, "POST", "/users", map[string]any{"email": "Scim@example.com"}).wantErr(t, http.StatusConflict, "user_exists")
		})
	})
}

// TestAdminGetAndList: the reads show email, credits and active, never a token.
func TestAdminGetAndList(t *testing.T) {
	adminBackends(t, func(t *testing.T, e *env) {
		admin := e.newTenant("acme", scim.ScopeAdmin)
		e.token = adminToken(t, e, "acme", scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}})
		for i, em := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"} {
			adminDo(t, e, admin, "POST", "/users", map[string]any{"email": em, "credits": i * 10}).want(t, http.StatusCreated)
		}
		// A user made through SCIM, without the extension, shows 0 credits.
		e.call("POST", "/scim/v2/Users", user("scim@example.com")).want(t, http.StatusCreated)

		t.Run("get", func(t *testing.T) {
			r := adminDo(t, e, admin, "GET", "/users/B@Example.com", nil).want(t, http.StatusOK)
			adminWantBody(t, r, map[string]any{"email": "b@example.com", "credits": 10, "active": true})
			adminWantBody(t, adminDo(t, e, admin, "GET", "/users/scim@example.com", nil).want(t, http.StatusOK),
				map[string]any{"email": "scim@example.com", "credits": 0, "active": true})
		})
		t.Run("get_sees_scim_changes", func(t *testing.T) {
			id := str(adminSCIMUser(t, e, "c@example.com"), "id")
			e.call("PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", schemas.ScimdUserURN+":credits", 77), op("replace", "active", false))).want(t, http.StatusOK)
			adminWantBody(t, adminDo(t, e, admin, "GET", "/users/c@example.com", nil).want(t, http.StatusOK),
				map[string]any{"email": "c@example.com", "credits": 77, "active": false})
		})
		t.Run("get_errors", func(t *testing.T) {
			adminDo(t, e, admin, "GET", "/users/nobody@example.com", nil).wantErr(t, http.StatusNotFound, "user_not_found")
			adminDo(t, e, admin, "GET", "/users/not-an-email", nil).wantErr(t, http.StatusBadRequest, "invalid_email")
			adminDo(t, e, admin, "DELETE", "/users/a@example.com", nil).wantErr(t, http.StatusMethodNotAllowed, "method_not_allowed")
		})
		t.Run("list", func(t *testing.T) {
			r := adminDo(t, e, admin, "GET", "/users", nil).want(t, http.StatusOK)
			// DefaultCount is 2 here.
			adminWantBody(t, r, map[string]any{"totalResults": 5, "startIndex": 1, "users": []any{
				map[string]any{"email": "a@example.com", "credits": 0, "active": true},
				map[string]any{"email": "b@example.com", "credits": 10, "active": true},
			}})
			r = adminDo(t, e, admin, "GET", "/users?startIndex=4&count=2", nil).want(t, http.StatusOK)
			adminWantBody(t, r, map[string]any{"totalResults": 5, "startIndex": 4, "users": []any{
				map[string]any{"email": "d@example.com", "credits": 30, "active": true},
				map[string]any{"email": "scim@example.com", "credits": 0, "active": true},
			}})
			r = adminDo(t, e, admin, "GET", "/users?startIndex=9", nil).want(t, http.StatusOK)
			adminWantBody(t, r, map[string]any{"totalResults": 5, "startIndex": 9, "users": []any{}})
		})
		t.Run("list_bounds", func(t *testing.T) {
			r := adminDo(t, e, admin, "GET", "/users?count=1000", nil).want(t, http.StatusOK)
			if u, _ := r.body["users"].([]any); len(u) != 3 {
				t.Errorf("count above MaxResults (3): %d users", len(u))
			}
			r = adminDo(t, e, admin, "GET", "/users?count=-4&startIndex=0", nil).want(t, http.StatusOK)
			adminWantBody(t, r, map[string]any{"totalResults": 5, "startIndex": 1, "users": []any{}})
			for _, q := range []string{"count=two", "startIndex=1.5", "count=", "startIndex=x"} {
				r := adminDo(t, e, admin, "GET", "/users?"+q, nil)
				if q == "count=" {
					r.want(t, http.StatusOK) // empty is absent
					continue
				}
				r.wantErr(t, http.StatusBadRequest, "invalid_request")
			}
		})
	}, func(l *scim.Limits) { l.DefaultCount, l.MaxResults = 2, 3 })
}

// TestAdminPatch: PATCH /users sets the credits and nothing else.
func TestAdminPatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		admin := e.newTenant("acme", scim.ScopeAdmin)
		e.token = adminToken(t, e, "acme", scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}})
		adminDo(t, e, admin, "POST", "/users", map[string]any{"email": "ann@example.com", "credits": 1000}).want(t, http.StatusCreated)
		before := adminSCIMUser(t, e, "ann@example.com")

		r := adminDo(t, e, admin, "PATCH", "/users", map[string]any{"email": "ANN@example.com", "credits": 5}).want(t, http.StatusOK)
		adminWantBody(t, r, map[string]any{"email": "ann@example.com", "credits": 5})
		after := adminSCIMUser(t, e, "ann@example.com")
		if adminSCIMCredits(after) != float64(5) || after["active"] != true || !reflect.DeepEqual(after["emails"], before["emails"]) {
			t.Errorf("after PATCH: %v", after)
		}
		if str(after, "meta.version") == str(before, "meta.version") {
			t.Errorf("version not bumped: %s", str(after, "meta.version"))
		}
		// A SCIM user without the extension gets one.
		e.call("POST", "/scim/v2/Users", user("scim@example.com")).want(t, http.StatusCreated)
		adminDo(t, e, admin, "PATCH", "/users", map[string]any{"email": "scim@example.com", "credits": 3}).want(t, http.StatusOK)
		if c := adminSCIMCredits(adminSCIMUser(t, e, "scim@example.com")); c != float64(3) {
			t.Errorf("SCIM credits %v", c)
		}

		for _, tc := range []struct{ name, body, code string }{
			{"malformed_json", `{"email": `, "invalid_request"},
			{"no_credits", `{"email": "ann@example.com"}`, "invalid_credits"},
			{"null_credits", `{"email": "ann@example.com", "credits": null}`, "invalid_credits"},
			{"negative", `{"email": "ann@example.com", "credits": -1}`, "invalid_credits"},
			{"fraction", `{"email": "ann@example.com", "credits": 2.5}`, "invalid_credits"},
			{"string", `{"email": "ann@example.com", "credits": "9"}`, "invalid_credits"},
			{"no_email", `{"credits": 9}`, "invalid_email"},
			{"bad_email", `{"email": "ann", "credits": 9}`, "invalid_email"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				adminDo(t, e, admin, "PATCH", "/users", tc.body).wantErr(t, http.StatusBadRequest, tc.code)
			})
		}
		adminDo(t, e, admin, "PATCH", "/users", map[string]any{"email": "nobody@example.com", "credits": 1}).wantErr(t, http.StatusNotFound, "user_not_found")
		if c := adminSCIMCredits(adminSCIMUser(t, e, "ann@example.com")); c != float64(5) {
			t.Errorf("refused PATCHes changed credits: %v", c)
		}
	})
}

// TestAdminDelete: DELETE /users deactivates, zeroes the credits and revokes the
// user's token, idempotently.
func TestAdminDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		admin := e.newTenant("acme", scim.ScopeAdmin)
		e.token = adminToken(t, e, "acme", scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}})
		ut := str(adminDo(t, e, admin, "POST", "/users", map[string]any{"email": "ann@example.com", "credits": 1000}).want(t, http.StatusCreated).body, "token")
		adminDo(t, e, admin, "POST", "/users/verify", map[string]any{"token": ut}).want(t, http.StatusOK)
		id := str(adminSCIMUser(t, e, "ann@example.com"), "id")
		// A second token bound to the user (e.g. scimd token create --user) goes too.
		second := adminToken(t, e, "acme", scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}, UserID: id})
		e.callAs(second, "GET", "/scim/v2/Me", nil).want(t, http.StatusOK)

		r := adminDo(t, e, admin, "DELETE", "/users", map[string]any{"email": "Ann@example.com"}).want(t, http.StatusOK)
		adminWantBody(t, r, map[string]any{"email": "ann@example.com", "credits": 0})

		u := adminSCIMUser(t, e, "ann@example.com")
		if u["active"] != false || adminSCIMCredits(u) != float64(0) || str(u, "id") != id {
			t.Errorf("after DELETE: %v", u)
		}
		version := str(u, "meta.version")
		adminDo(t, e, admin, "POST", "/users/verify", map[string]any{"token": ut}).wantErr(t, http.StatusUnauthorized, "invalid_token")
		e.callAs(second, "GET", "/scim/v2/Me", nil).wantError(t, http.StatusUnauthorized, "")
		e.callAs(ut, "GET", "/scim/v2/Users", nil).wantError(t, http.StatusUnauthorized, "")

		t.Run("idempotent", func(t *testing.T) {
			adminWantBody(t, adminDo(t, e, admin, "DELETE", "/users?email=ann%40example.com", nil).want(t, http.StatusOK),
				map[string]any{"email": "ann@example.com", "credits": 0})
			if v := str(adminSCIMUser(t, e, "ann@example.com"), "meta.version"); v != version {
				t.Errorf("a repeated DELETE rewrote the user: %s -> %s", version, v)
			}
		})
		t.Run("patch_keeps_deactivated", func(t *testing.T) {
			adminDo(t, e, admin, "PATCH", "/users", map[string]any{"email": "ann@example.com", "credits": 9}).want(t, http.StatusOK)
			adminWantBody(t, adminDo(t, e, admin, "GET", "/users/ann@example.com", nil).want(t, http.StatusOK),
				map[string]any{"email": "ann@example.com", "credits": 9, "active": false})
			adminDo(t, e, admin, "DELETE", "/users", map[string]any{"email": "ann@example.com"}).want(t, http.StatusOK)
			if c := adminSCIMCredits(adminSCIMUser(t, e, "ann@example.com")); c != float64(0) {
				t.Errorf("credits after re-deactivation %v", c)
			}
		})
		t.Run("scim_deactivated_user", func(t *testing.T) {
			// A user deactivated through SCIM keeps its token until DELETE /users.
			ut := str(adminDo(t, e, admin, "POST", "/users", map[string]any{"email": "bob@example.com", "credits": 3}).want(t, http.StatusCreated).body, "token")
			bid := str(adminSCIMUser(t, e, "bob@example.com"), "id")
			e.call("PATCH", "/scim/v2/Users/"+bid, patchBody(op("replace", "active", false))).want(t, http.StatusOK)
			adminWantBody(t, adminDo(t, e, admin, "POST", "/users/verify", map[string]any{"token": ut}).want(t, http.StatusOK),
				map[string]any{"email": "bob@example.com", "credits": 3, "active": false})
			adminDo(t, e, admin, "DELETE", "/users", map[string]any{"email": "bob@example.com"}).want(t, http.StatusOK)
			adminDo(t, e, admin, "POST", "/users/verify", map[string]any{"token": ut}).wantErr(t, http.StatusUnauthorized, "invalid_token")
		})
		t.Run("errors", func(t *testing.T) {
			adminDo(t, e, admin, "DELETE", "/users", map[string]any{"email": "nobody@example.com"}).wantErr(t, http.StatusNotFound, "user_not_found")
			adminDo(t, e, admin, "DELETE", "/users?email=nobody%40example.com", nil).wantErr(t, http.StatusNotFound, "user_not_found")
			for _, tc := range []struct{ name, path, body, code string }{
				{"no_email", "/users", "", "invalid_email"},
				{"empty_object", "/users", `{}`, "invalid_email"},
				{"malformed_json", "/users", `{"email"`, "invalid_request"},
				{"email_number", "/users", `{"email": 1}`, "invalid_email"},
				{"bad_query_email", "/users?email=nobody", "", "invalid_email"},
				{"body_and_query_differ", "/users?email=a%40example.com", `{"email": "b@example.com"}`, "invalid_request"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var body any
					if tc.body != "" {
						body = tc.body
					}
					adminDo(t, e, admin, "DELETE", tc.path, body).wantErr(t, http.StatusBadRequest, tc.code)
				})
			}
			// Both forms naming the same address are fine.
			adminDo(t, e, admin, "DELETE", "/users?email=ANN%40example.com", map[string]any{"email": "ann@example.com"}).want(t, http.StatusOK)
		})
	})
}

// TestAdminVerify: POST /users/verify accepts exactly the live user tokens of the
// caller's tenant.
func TestAdminVerify(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		admin := e.newTenant("acme", scim.ScopeAdmin)
		e.token = adminToken(t, e, "acme", scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}})
		ut := str(adminDo(t, e, admin, "POST", "/users", map[string]any{"email": "ann@example.com", "credits": 12}).want(t, http.StatusCreated).body, "token")
		r := adminDo(t, e, admin, "POST", "/users/verify", map[string]any{"token": ut}).want(t, http.StatusOK)
		adminWantBody(t, r, map[string]any{"email": "ann@example.com", "credits": 12, "active": true})

		otherAdmin := e.newTenant("globex", scim.ScopeAdmin)
		otherUser := str(adminDo(t, e, otherAdmin, "POST", "/users", map[string]any{"email": "ann@example.com"}).want(t, http.StatusCreated).body, "token")
		invalid := map[string]string{
			"unknown":          "scimd_not-a-token-of-anyone-at-all",
			"another_tenant":   otherUser,
			"bound_to_no_user": admin,
		}
		// A user deleted through SCIM: its token is bound to nobody any more.
		gone := str(adminDo(t, e, admin, "POST", "/users", map[string]any{"email": "gone@example.com"}).want(t, http.StatusCreated).body, "token")
		e.call("DELETE", "/scim/v2/Users/"+str(adminSCIMUser(t, e, "gone@example.com"), "id"), nil).want(t, http.StatusNoContent)
		invalid["user_deleted"] = gone
		for name, tok := range invalid {
			t.Run(name, func(t *testing.T) {
				r := adminDo(t, e, admin, "POST", "/users/verify", map[string]any{"token": tok})
				r.wantErr(t, http.StatusUnauthorized, "invalid_token")
				if r.header.Get("WWW-Authenticate") != "" {
					t.Errorf("a bad verified token is not a bad caller: WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
			})
		}
		// The other tenant's admin verifies its own user, not ours.
		adminDo(t, e, otherAdmin, "POST", "/users/verify", map[string]any{"token": otherUser}).want(t, http.StatusOK)
		adminDo(t, e, otherAdmin, "POST", "/users/verify", map[string]any{"token": ut}).wantErr(t, http.StatusUnauthorized, "invalid_token")

		for _, tc := range []struct{ name, body string }{
			{"malformed_json", `{"token": "x`},
			{"no_token", `{}`},
			{"empty_token", `{"token": "  "}`},
			{"token_number", `{"token": 42}`},
			{"array_body", `["x"]`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				adminDo(t, e, admin, "POST", "/users/verify", tc.body).wantErr(t, http.StatusBadRequest, "invalid_request")
			})
		}
		adminDo(t, e, admin, "GET", "/users/verify", nil).wantErr(t, http.StatusMethodNotAllowed, "method_not_allowed")
		// The caller itself must be an admin.
		adminDo(t, e, ut, "POST", "/users/verify", map[string]any{"token": ut}).wantErr(t, http.StatusForbidden, "forbidden")
		adminDo(t, e, "", "POST", "/users/verify", map[string]any{"token": ut}).wantErr(t, http.StatusUnauthorized, "unauthorized")
	})
}

// TestAdminAuth: credentials, scopes, sandbox tokens, the family switch and tenancy.
func TestAdminAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		admin := e.newTenant("acme", scim.ScopeAdmin)
		e.token = adminToken(t, e, "acme", scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}})
		ut := str(adminDo(t, e, admin, "POST", "/users", map[string]any{"email": "ann@example.com", "credits": 4}).want(t, http.StatusCreated).body, "token")

		type call struct {
			method, path string
			body         any
		}
		calls := []call{
			{"GET", "/users", nil},
			{"GET", "/users/ann@example.com", nil},
			{"POST", "/users", map[string]any{"email": "new@example.com"}},
			{"PATCH", "/users", map[string]any{"email": "ann@example.com", "credits": 99}},
			{"DELETE", "/users", map[string]any{"email": "ann@example.com"}},
			{"POST", "/users/verify", map[string]any{"token": ut}},
		}
		check := func(t *testing.T, token string, status int, code string, hdr ...string) {
			t.Helper()
			for _, c := range calls {
				r := adminDo(t, e, token, c.method, c.path, c.body, hdr...)
				r.wantErr(t, status, code)
				if status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s: WWW-Authenticate %q", c.method, c.path, r.header.Get("WWW-Authenticate"))
				}
			}
		}
		t.Run("no_credentials", func(t *testing.T) { check(t, "", http.StatusUnauthorized, "unauthorized") })
		t.Run("unknown_token", func(t *testing.T) { check(t, "scimd_unknown-unknown-unknown", http.StatusUnauthorized, "unauthorized") })
		t.Run("other_scheme", func(t *testing.T) {
			check(t, "", http.StatusUnauthorized, "unauthorized", "Authorization", "Token "+admin)
		})
		t.Run("scim_scope_only", func(t *testing.T) { check(t, e.token, http.StatusForbidden, "forbidden") })
		t.Run("compat_scope_only", func(t *testing.T) {
			check(t, adminToken(t, e, "acme", scim.TokenOptions{Scopes: []string{scim.ScopeCompat}}), http.StatusForbidden, "forbidden")
		})
		t.Run("user_token_has_no_scope", func(t *testing.T) {
			check(t, ut, http.StatusForbidden, "forbidden")
			e.callAs(ut, "GET", "/scim/v2/Users", nil).wantError(t, http.StatusForbidden, "")
			e.callAs(ut, "GET", "/scim/v2/Me", nil).wantError(t, http.StatusForbidden, "")
		})
		t.Run("sandbox", func(t *testing.T) {
			sb := adminToken(t, e, "acme", scim.TokenOptions{Scopes: []string{scim.ScopeAdmin}, Sandbox: true})
			for _, c := range calls {
				r := adminDo(t, e, sb, c.method, c.path, c.body)
				if c.method == "GET" || c.path == "/users/verify" {
					r.want(t, http.StatusOK)
					continue
				}
				r.wantErr(t, http.StatusForbidden, "sandbox")
			}
			adminWantBody(t, adminDo(t, e, admin, "GET", "/users/ann@example.com", nil).want(t, http.StatusOK),
				map[string]any{"email": "ann@example.com", "credits": 4, "active": true})
		})
		t.Run("another_tenant", func(t *testing.T) {
			other := e.newTenant("globex", scim.ScopeAdmin)
			adminDo(t, e, other, "GET", "/users/ann@example.com", nil).wantErr(t, http.StatusNotFound, "user_not_found")
			adminDo(t, e, other, "PATCH", "/users", map[string]any{"email": "ann@example.com", "credits": 1}).wantErr(t, http.StatusNotFound, "user_not_found")
			adminDo(t, e, other, "DELETE", "/users", map[string]any{"email": "ann@example.com"}).wantErr(t, http.StatusNotFound, "user_not_found")
			adminWantBody(t, adminDo(t, e, other, "GET", "/users", nil).want(t, http.StatusOK),
				map[string]any{"totalResults": 0, "startIndex": 1, "users": []any{}})
			// The same email is free in another tenant.
			adminDo(t, e, other, "POST", "/users", map[string]any{"email": "ann@example.com"}).want(t, http.StatusCreated)
			adminWantBody(t, adminDo(t, e, admin, "GET", "/users/ann@example.com", nil).want(t, http.StatusOK),
				map[string]any{"email": "ann@example.com", "credits": 4, "active": true})
		})
		t.Run("family_disabled", func(t *testing.T) {
			if _, err := e.tokens.SetTenant(ctx, "acme", []string{"family.admin=disabled"}); err != nil {
				t.Fatal(err)
			}
			check(t, admin, http.StatusNotFound, "not_found")
			if _, err := e.tokens.SetTenant(ctx, "acme", []string{"family.admin=enabled"}); err != nil {
				t.Fatal(err)
			}
			adminDo(t, e, admin, "GET", "/users", nil).want(t, http.StatusOK)
		})
		t.Run("basic_credentials", func(t *testing.T) {
			req, err := http.NewRequest("GET", e.srv.URL+"/users/ann@example.com", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth("acme", admin)
			adminSend(t, req).want(t, http.StatusOK)
		})
	})
}

// TestAdminRace: racing creates of one email make one account and one token.
func TestAdminRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		admin := e.newTenant("acme", scim.ScopeAdmin)
		e.token = adminToken(t, e, "acme", scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}})
		const n = 6
		statuses := make(chan int, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				raw, _ := json.Marshal(map[string]any{"email": "ann@example.com", "credits": 1})
				req, err := http.NewRequest("POST", e.srv.URL+"/users", bytes.NewReader(raw))
				if err != nil {
					statuses <- 0
					return
				}
				req.Header.Set("Authorization", "Bearer "+admin)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					statuses <- 0
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				statuses <- res.StatusCode
			}()
		}
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for s := range statuses {
			count[s]++
		}
		if count[http.StatusCreated] != 1 || count[http.StatusConflict] != n-1 {
			t.Errorf("statuses %v, want one 201 and %d 409", count, n-1)
		}
		id := str(adminSCIMUser(t, e, "ann@example.com"), "id")
		var tokens int64
		if err := e.st.DB().Raw(`SELECT count(*) FROM api_tokens WHERE user_id = ?`, id).Scan(&tokens).Error; err != nil || tokens != 1 {
			t.Errorf("%d tokens bound to the user (%v), want 1", tokens, err)
		}
	})
}

// TestAdminInternalError: an unexpected failure is a 500 with an error id only, and
// the error is logged with that id.
func TestAdminInternalError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		admin := e.newTenant("acme", scim.ScopeAdmin)
		if err := e.st.Close(); err != nil {
			t.Fatal(err)
		}
		r := adminDo(t, e, admin, "GET", "/users", nil)
		if r.status != http.StatusInternalServerError && r.status != http.StatusServiceUnavailable {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		msg, _ := r.body["message"].(string)
		if strings.Contains(strings.ToLower(msg), "sql") || strings.Contains(msg, "closed") {
			t.Errorf("internal detail on the wire: %s", r.raw)
		}
		if r.status == http.StatusInternalServerError {
			m := regexp.MustCompile(`error id ([0-9a-f]{16})`).FindStringSubmatch(msg)
			if r.body["error"] != "internal_error" || m == nil {
				t.Fatalf("body %s", r.raw)
			}
			found := false
			for _, l := range e.logs.FilterMessage("request failed").All() {
				if l.ContextMap()["error_id"] == m[1] && l.ContextMap()["request_id"] == r.header.Get("X-Request-Id") {
					found = true
				}
			}
			if !found {
				t.Errorf("no log line with error_id %s", m[1])
			}
		}
	})
}
