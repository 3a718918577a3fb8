package compat

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store/storetest"
)

// The administration service (CONTRACT.md admin.*): body parsing and the view of a
// user without HTTP, then the routes over a real database.

// TestAdminCredits: a whole JSON number from 0 to 2^53; anything else is 400
// invalid_credits (admin.credits).
func TestAdminCredits(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        int64
		ok          bool
	}{
		{"zero", `0`, 0, true},
		{"integer", `1000`, 1000, true},
		{"whole_fraction", `1000.0`, 1000, true},
		{"exponent", `1e3`, 1000, true},
		{"max", `9007199254740992`, 1 << 53, true},
		{"max_as_float", `9007199254740992.0`, 1 << 53, true},
		{"over_max", `9007199254740993`, 0, false},
		{"over_max_float", `1e16`, 0, false},
		{"negative", `-1`, 0, false},
		{"negative_float", `-1.0`, 0, false},
		{"negative_zero", `-0`, 0, true},
		{"fraction", `1.5`, 0, false},
		{"small_fraction", `0.0001`, 0, false},
		{"huge", `1e400`, 0, false},
		{"string", `"5"`, 0, false},
		{"bool", `true`, 0, false},
		{"array", `[1]`, 0, false},
		{"object", `{"n":1}`, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := adminCredits(decodeValue(t, tc.value))
			if tc.ok {
				if err != nil || got != tc.want {
					t.Fatalf("adminCredits(%s) = %d, %v; want %d", tc.value, got, err, tc.want)
				}
				return
			}
			var ae *adminErr
			if !errors.As(err, &ae) || ae.status != 400 || ae.code != "invalid_credits" {
				t.Fatalf("adminCredits(%s) = %d, %v; want 400 invalid_credits", tc.value, got, err)
			}
		})
	}
}

// TestAdminParse: the email and credits of POST, PATCH, DELETE and verify bodies
// (admin.create, admin.patch, admin.deactivate, admin.verify).
func TestAdminParse(t *testing.T) {
	code := func(err error) string {
		var ae *adminErr
		if errors.As(err, &ae) {
			if ae.status != 400 {
				return "status " + strconv.Itoa(ae.status)
			}
			return ae.code
		}
		if err != nil {
			return err.Error()
		}
		return ""
	}
	t.Run("create", func(t *testing.T) {
		for _, tc := range []struct {
			body, email string
			credits     int64
			code        string
		}{
			{`{"email":" Ann@Example.COM "}`, "ann@example.com", 0, ""},
			{`{"email":"a@example.com","credits":null}`, "a@example.com", 0, ""},
			{`{"email":"a@example.com","credits":7,"other":1}`, "a@example.com", 7, ""},
			{`{"credits":7}`, "", 0, "invalid_email"},
			{`{"email":null}`, "", 0, "invalid_email"},
			{`{"email":7}`, "", 0, "invalid_email"},
			{`{"email":"a@localhost"}`, "", 0, "invalid_email"},
			{`{"email":"a@example.com","credits":-5}`, "", 0, "invalid_credits"},
		} {
			email, credits, err := adminParseCreate(decodeObject(t, tc.body))
			if code(err) != tc.code || email != tc.email || credits != tc.credits {
				t.Errorf("%s: %q %d %q, want %q %d %q", tc.body, email, credits, code(err), tc.email, tc.credits, tc.code)
			}
		}
	})
	t.Run("patch", func(t *testing.T) {
		for _, tc := range []struct {
			body, email string
			credits     int64
			code        string
		}{
			{`{"email":"a@example.com","credits":250}`, "a@example.com", 250, ""},
			{`{"email":"a@example.com","credits":0}`, "a@example.com", 0, ""},
			{`{"email":"a@example.com"}`, "", 0, "invalid_credits"},
			{`{"email":"a@example.com","credits":null}`, "", 0, "invalid_credits"},
			{`{"credits":1}`, "", 0, "invalid_email"},
			{`{"email":"a@example.com","credits":"1"}`, "", 0, "invalid_credits"},
		} {
			email, credits, err := adminParsePatch(decodeObject(t, tc.body))
			if code(err) != tc.code || email != tc.email || credits != tc.credits {
				t.Errorf("%s: %q %d %q, want %q %d %q", tc.body, email, credits, code(err), tc.email, tc.credits, tc.code)
			}
		}
	})
	t.Run("delete", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			body  map[string]any
			query string
			email string
			code  string
		}{
			{"body", map[string]any{"email": "A@example.com"}, "", "a@example.com", ""},
			{"query", nil, "email=A%40example.com", "a@example.com", ""},
			{"both_same", map[string]any{"email": "a@example.com"}, "email=A%40EXAMPLE.com", "a@example.com", ""},
			{"both_different", map[string]any{"email": "a@example.com"}, "email=b%40example.com", "", "invalid_request"},
			{"neither", nil, "", "", "invalid_email"},
			{"empty_query", nil, "email=", "", "invalid_email"},
			{"bad_query", nil, "email=nope", "", "invalid_email"},
			{"bad_body", map[string]any{"email": 1}, "", "", "invalid_email"},
		} {
			q, _ := url.ParseQuery(tc.query)
			email, err := adminParseDelete(tc.body, q)
			if code(err) != tc.code || email != tc.email {
				t.Errorf("%s: %q %q, want %q %q", tc.name, email, code(err), tc.email, tc.code)
			}
		}
	})
	t.Run("verify", func(t *testing.T) {
		for _, tc := range []struct{ body, token, code string }{
			{`{"token":" abc "}`, "abc", ""},
			{`{"token":""}`, "", "invalid_request"},
			{`{"token":"  "}`, "", "invalid_request"},
			{`{"token":5}`, "", "invalid_request"},
			{`{}`, "", "invalid_request"},
		} {
			tok, err := adminParseVerify(decodeObject(t, tc.body))
			if code(err) != tc.code || tok != tc.token {
				t.Errorf("%s: %q %q, want %q %q", tc.body, tok, code(err), tc.token, tc.code)
			}
		}
	})
}

// TestAdminTranslation: the SCIM body, PATCH operations and view of an account
// (admin.create, admin.deactivate, admin.get, shared.extension).
func TestAdminTranslation(t *testing.T) {
	b := adminUserBody("ann@example.com", 12)
	if b["userName"] != "ann@example.com" || b[adminExtensionURN].(map[string]any)["credits"] != int64(12) {
		t.Errorf("body %v", b)
	}
	if s := b["schemas"].([]any); len(s) != 2 || s[1] != adminExtensionURN {
		t.Errorf("schemas %v", s)
	}
	ops := adminCreditsOps(5)
	if len(ops) != 1 || ops[0].Op != "replace" || ops[0].Path != adminExtensionURN+":credits" || ops[0].Value != int64(5) {
		t.Errorf("credits ops %+v", ops)
	}
	ops = adminDeactivateOps()
	if len(ops) != 2 || ops[0].Path != "active" || ops[0].Value != false || ops[1].Path != adminExtensionURN+":credits" || ops[1].Value != int64(0) {
		t.Errorf("deactivate ops %+v", ops)
	}
	for _, tc := range []struct {
		name  string
		attrs map[string]any
		want  adminUser
	}{
		{"no_active_no_extension", map[string]any{"userName": "a@example.com"}, adminUser{Email: "a@example.com", Active: true}},
		{"inactive", map[string]any{"userName": "a@example.com", "active": false}, adminUser{Email: "a@example.com"}},
		{"int64", map[string]any{"userName": "a", adminExtensionURN: map[string]any{"credits": int64(3)}}, adminUser{Email: "a", Credits: 3, Active: true}},
		{"int", map[string]any{"userName": "a", adminExtensionURN: map[string]any{"credits": 4}}, adminUser{Email: "a", Credits: 4, Active: true}},
		{"float64", map[string]any{"userName": "a", adminExtensionURN: map[string]any{"credits": float64(5)}}, adminUser{Email: "a", Credits: 5, Active: true}},
		{"number", map[string]any{"userName": "a", adminExtensionURN: map[string]any{"credits": json.Number("6")}}, adminUser{Email: "a", Credits: 6, Active: true}},
	} {
		if got := adminView(&scim.Resource{Attrs: tc.attrs}); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestAdminStatus: each error becomes the family's status and code (admin.errors).
func TestAdminStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"own", &adminErr{status: 401, code: "invalid_token", message: "m"}, 401, "invalid_token"},
		{"media_type", &mediaTypeError{detail: "x"}, 415, "unsupported_media_type"},
		{"too_large", errTooLarge, 413, "payload_too_large"},
		{"family_disabled", errFamilyDisabled, 404, "not_found"},
		{"syntax", &scim.Error{Kind: scim.KindInvalidSyntax}, 400, "invalid_request"},
		{"value", &scim.Error{Kind: scim.KindInvalidValue}, 400, "invalid_request"},
		{"unauthorized", &scim.Error{Kind: scim.KindUnauthorized}, 401, "unauthorized"},
		{"forbidden", &scim.Error{Kind: scim.KindForbidden}, 403, "forbidden"},
		{"not_found", &scim.Error{Kind: scim.KindNotFound}, 404, "user_not_found"},
		{"uniqueness", &scim.Error{Kind: scim.KindUniqueness}, 409, "user_exists"},
		{"precondition", &scim.Error{Kind: scim.KindPrecondition}, 409, "conflict"},
		{"unavailable", &scim.Error{Kind: scim.KindUnavailable}, 503, "unavailable"},
		{"internal", errors.New("boom"), 500, "internal_error"},
	} {
		st, code, _ := adminStatus(tc.err)
		if st != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, code, tc.status, tc.code)
		}
	}
}

// TestAdminRoutes runs the administration routes over a real database.
func TestAdminRoutes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		admin := "Bearer " + f.token(scopes(scim.ScopeAdmin))
		sand := "Bearer " + f.token(sandbox(scim.ScopeAdmin))
		ct := "application/json"

		t.Run("auth", func(t *testing.T) {
			for _, tc := range []struct {
				name, method, path, auth string
				status                   int
				code                     string
			}{
				{"no_credentials", "GET", "/users", "", 401, "unauthorized"},
				{"unknown", "GET", "/users", "Bearer nope", 401, "unauthorized"},
				{"scope", "GET", "/users", "Bearer " + f.token(scopes(scim.ScopeSCIM, scim.ScopeCompat)), 403, "forbidden"},
				{"method", "PUT", "/users", admin, 405, "method_not_allowed"},
				{"verify_method", "GET", "/users/verify", admin, 405, "method_not_allowed"},
				{"sandbox_create", "POST", "/users", sand, 403, "sandbox"},
				{"sandbox_patch", "PATCH", "/users", sand, 403, "sandbox"},
				{"sandbox_delete", "DELETE", "/users?email=a%40example.com", sand, 403, "sandbox"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := f.do(tc.method, tc.path, `{"email":"a@example.com","credits":1}`, "Authorization", tc.auth, "Content-Type", ct)
					r.want(t, tc.status, "error", tc.code)
					if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
					}
					if tc.status == 405 && r.header.Get("Allow") == "" {
						t.Error("no Allow")
					}
				})
			}
			if f.lookup("a@example.com") != nil {
				t.Fatal("a refused call created a user")
			}
			// Basic with the token as password is read as well.
			basic := "Basic " + basicAuth("x", strings.TrimPrefix(admin, "Bearer "))
			f.do("GET", "/users", "", "Authorization", basic).want(t, 200, "", "")
			// A sandbox token may read.
			f.do("GET", "/users", "", "Authorization", sand).want(t, 200, "", "")
		})

		var userToken string
		t.Run("create", func(t *testing.T) {
			r := f.do("POST", "/users", `{"email":" Ann@Example.com ","credits":1000}`, "Authorization", admin, "Content-Type", ct)
			r.want(t, 201, "email", "ann@example.com")
			userToken, _ = r.body["token"].(string)
			if userToken == "" || r.body["credits"] != float64(1000) || r.header.Get("Location") != "/users/ann@example.com" {
				t.Fatalf("answer %s, Location %q", r.raw, r.header.Get("Location"))
			}
			f.do("POST", "/users", `{"email":"ANN@example.com"}`, "Authorization", admin, "Content-Type", ct).want(t, 409, "error", "user_exists")
			f.do("POST", "/users", `{"email":"b@example.com"}`, "Authorization", admin).want(t, 201, "email", "b@example.com") // no Content-Type: read as JSON
			f.do("POST", "/users", `{"email":"c@example.com"}`, "Authorization", admin, "Content-Type", "text/plain").want(t, 415, "error", "unsupported_media_type")
			f.do("POST", "/users", `[1]`, "Authorization", admin, "Content-Type", ct).want(t, 400, "error", "invalid_request")
			f.do("POST", "/users", `{"email":`, "Authorization", admin, "Content-Type", ct).want(t, 400, "error", "invalid_request")
			f.do("POST", "/users", `{"email":"d@example.com","credits":1.5}`, "Authorization", admin, "Content-Type", ct).want(t, 400, "error", "invalid_credits")
			if f.lookup("c@example.com") != nil || f.lookup("d@example.com") != nil {
				t.Error("a refused create wrote a user")
			}
			// The user's own token opens no route.
			f.do("GET", "/users", "", "Authorization", "Bearer "+userToken).want(t, 403, "error", "forbidden")
		})
		t.Run("get_and_verify", func(t *testing.T) {
			r := f.do("GET", "/users/ANN@example.com", "", "Authorization", admin)
			r.want(t, 200, "email", "ann@example.com")
			if r.body["credits"] != float64(1000) || r.body["active"] != true || r.body["token"] != nil {
				t.Errorf("answer %s", r.raw)
			}
			f.do("GET", "/users/nobody@example.com", "", "Authorization", admin).want(t, 404, "error", "user_not_found")
			f.do("GET", "/users/not-an-email", "", "Authorization", admin).want(t, 400, "error", "invalid_email")
			r = f.do("POST", "/users/verify", mustJSON(t, map[string]string{"token": userToken}), "Authorization", sand, "Content-Type", ct)
			r.want(t, 200, "email", "ann@example.com")
			f.do("POST", "/users/verify", `{"token":"nope"}`, "Authorization", admin, "Content-Type", ct).want(t, 401, "error", "invalid_token")
			// A tenant's own admin token is bound to no user: not a user token.
			f.do("POST", "/users/verify", mustJSON(t, map[string]string{"token": strings.TrimPrefix(admin, "Bearer ")}), "Authorization", admin, "Content-Type", ct).want(t, 401, "error", "invalid_token")
			// Another tenant's admin cannot verify this tenant's user token.
			f.otherTenant("other")
			otherAdmin := "Bearer " + f.tokenOf("other", scopes(scim.ScopeAdmin))
			f.do("POST", "/users/verify", mustJSON(t, map[string]string{"token": userToken}), "Authorization", otherAdmin, "Content-Type", ct).want(t, 401, "error", "invalid_token")
			f.do("GET", "/users/ann@example.com", "", "Authorization", otherAdmin).want(t, 404, "error", "user_not_found")
		})
		t.Run("patch", func(t *testing.T) {
			r := f.do("PATCH", "/users", `{"email":"ann@example.com","credits":250}`, "Authorization", admin, "Content-Type", ct)
			r.want(t, 200, "email", "ann@example.com")
			if r.body["credits"] != float64(250) {
				t.Errorf("answer %s", r.raw)
			}
			f.do("PATCH", "/users", `{"email":"nobody@example.com","credits":1}`, "Authorization", admin, "Content-Type", ct).want(t, 404, "error", "user_not_found")
			f.do("PATCH", "/users", `{"email":"ann@example.com"}`, "Authorization", admin, "Content-Type", ct).want(t, 400, "error", "invalid_credits")
		})
		t.Run("deactivate_idempotent", func(t *testing.T) {
			for i := range 2 {
				r := f.do("DELETE", "/users?email=Ann%40example.com", "", "Authorization", admin)
				r.want(t, 200, "email", "ann@example.com")
				if r.body["credits"] != float64(0) {
					t.Errorf("call %d: %s", i+1, r.raw)
				}
			}
			u := f.lookup("ann@example.com")
			if u == nil || u.Attrs["active"] != false {
				t.Fatalf("user %v", u)
			}
			f.do("POST", "/users/verify", mustJSON(t, map[string]string{"token": userToken}), "Authorization", admin, "Content-Type", ct).want(t, 401, "error", "invalid_token")
			f.do("DELETE", "/users", `{"email":"nobody@example.com"}`, "Authorization", admin, "Content-Type", ct).want(t, 404, "error", "user_not_found")
			f.do("DELETE", "/users?email=b%40example.com", `{"email":"ann@example.com"}`, "Authorization", admin, "Content-Type", ct).want(t, 400, "error", "invalid_request")
			f.do("DELETE", "/users", "", "Authorization", admin).want(t, 400, "error", "invalid_email")
			// PATCH does not reactivate.
			// (One credit: the smallest balance the deactivation must still zero.)
			f.do("PATCH", "/users", `{"email":"ann@example.com","credits":1}`, "Authorization", admin, "Content-Type", ct).want(t, 200, "", "")
			if r := f.do("GET", "/users/ann@example.com", "", "Authorization", admin); r.body["active"] != false || r.body["credits"] != float64(1) {
				t.Errorf("after PATCH: %s", r.raw)
			}
			// Deactivating again zeroes the credits of the deactivated account.
			if r := f.do("DELETE", "/users?email=ann%40example.com", "", "Authorization", admin); r.status != 200 || r.body["credits"] != float64(0) {
				t.Errorf("second deactivation: %s", r.raw)
			}
			if r := f.do("GET", "/users/ann@example.com", "", "Authorization", admin); r.body["active"] != false || r.body["credits"] != float64(0) {
				t.Errorf("after the second deactivation: %s", r.raw)
			}
		})
		t.Run("family_disabled", func(t *testing.T) {
			f.set("family.admin=disabled")
			f.do("GET", "/users", "", "Authorization", admin).want(t, 404, "error", "not_found")
			f.set("family.admin=enabled")
		})
	})
}

// TestAdminList: GET /users paging bounds (admin.list).
func TestAdminList(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		admin := "Bearer " + f.token(scopes(scim.ScopeAdmin))
		for i := range 3 {
			f.user("u"+strconv.Itoa(i)+"@example.com", true, nil)
		}
		for _, tc := range []struct {
			query      string
			status     int
			startIndex int
			emails     []string
		}{
			{"", 200, 1, []string{"u0@example.com", "u1@example.com", "u2@example.com"}},
			{"?startIndex=2&count=1", 200, 2, []string{"u1@example.com"}},
			{"?startIndex=0&count=2", 200, 1, []string{"u0@example.com", "u1@example.com"}},
			{"?startIndex=-3", 200, 1, []string{"u0@example.com", "u1@example.com", "u2@example.com"}},
			{"?startIndex=3", 200, 3, []string{"u2@example.com"}},
			{"?startIndex=4", 200, 4, []string{}},
			{"?count=0", 200, 1, []string{}},
			{"?count=-1", 200, 1, []string{}},
			{"?count=%201%20", 200, 1, []string{"u0@example.com"}},
			{"?count=100000", 200, 1, []string{"u0@example.com", "u1@example.com", "u2@example.com"}},
			{"?count=x", 400, 0, nil},
			{"?count=1.5", 400, 0, nil},
			{"?startIndex=one", 400, 0, nil},
		} {
			t.Run(tc.query, func(t *testing.T) {
				r := f.do("GET", "/users"+tc.query, "", "Authorization", admin)
				if tc.status != 200 {
					r.want(t, tc.status, "error", "invalid_request")
					return
				}
				r.want(t, 200, "", "")
				if r.body["totalResults"] != float64(3) || r.body["startIndex"] != float64(tc.startIndex) {
					t.Errorf("answer %s", r.raw)
				}
				users, _ := r.body["users"].([]any)
				got := []string{}
				for _, u := range users {
					m := u.(map[string]any)
					got = append(got, m["email"].(string))
					if m["credits"] != float64(0) || m["active"] != true {
						t.Errorf("user %v", m)
					}
				}
				if strings.Join(got, ",") != strings.Join(tc.emails, ",") {
					t.Errorf("users %v, want %v", got, tc.emails)
				}
			})
		}
	})
}

func basicAuth(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// TestAdminListDatabaseDown: a list whose database cannot be reached is 503
// unavailable with Retry-After in the family's shape (admin.errors, shared.errors).
// The tokens are checked against a working database; the users are read from one
// whose connections are closed.
func TestAdminListDatabaseDown(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			down := b.Open(t)
			if err := down.Close(); err != nil {
				t.Fatal(err)
			}
			log := zaptest.NewLogger(t)
			f.mux = http.NewServeMux()
			New(scim.NewService(down, log), f.tokens, log, Options{MaxBodyBytes: 64 << 10}).Mount(f.mux)
			r := f.do("GET", "/users", "", "Authorization", "Bearer "+f.token(scopes(scim.ScopeAdmin)))
			r.want(t, http.StatusServiceUnavailable, "error", "unavailable")
			if r.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After: %v", r.header)
			}
			if _, ok := r.body["users"]; ok {
				t.Errorf("a failed list answered users: %s", r.raw)
			}
		})
	}
}

// TestAdminCreateTokenFails: when the new user's token cannot be issued, POST /users
// fails (5xx, no token handed out) and the user it created is removed; when even
// that removal fails, the user is left without a token, and the operator is told
// which one in an error log line (admin.create).
func TestAdminCreateTokenFails(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			admin := "Bearer " + f.token(scopes(scim.ScopeAdmin))
			core, logs := observer.New(zapcore.ErrorLevel)
			f.mux = http.NewServeMux()
			New(f.svc, f.tokens, zap.New(core), Options{MaxBodyBytes: 64 << 10}).Mount(f.mux)
			exec := func(sql string) {
				t.Helper()
				if err := f.st.DB().Exec(sql).Error; err != nil {
					t.Fatal(err)
				}
			}
			// Real database refusals: no new token row; then no user removed either.
			if b.Name == "postgres" {
				exec(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$`)
				exec(`CREATE TRIGGER refuse_token BEFORE INSERT ON api_tokens FOR EACH ROW EXECUTE FUNCTION refuse()`)
			} else {
				exec(`CREATE TRIGGER refuse_token BEFORE INSERT ON api_tokens BEGIN SELECT RAISE(ABORT, 'refused'); END`)
			}
			r := f.do("POST", "/users", `{"email":"a@example.com","credits":5}`, "Authorization", admin, "Content-Type", "application/json")
			if r.status < 500 || r.body["token"] != nil {
				t.Fatalf("token insert refused: %d %s", r.status, r.raw)
			}
			if u := f.lookup("a@example.com"); u != nil {
				t.Errorf("the user whose token failed was kept: %v", u.ID)
			}
			if b.Name == "postgres" {
				exec(`CREATE TRIGGER refuse_delete BEFORE DELETE ON users FOR EACH ROW EXECUTE FUNCTION refuse()`)
			} else {
				exec(`CREATE TRIGGER refuse_delete BEFORE DELETE ON users BEGIN SELECT RAISE(ABORT, 'refused'); END`)
			}
			logs.TakeAll()
			r = f.do("POST", "/users", `{"email":"b@example.com","credits":5}`, "Authorization", admin, "Content-Type", "application/json")
			if r.status < 500 || r.body["token"] != nil {
				t.Fatalf("token insert and user delete refused: %d %s", r.status, r.raw)
			}
			u := f.lookup("b@example.com")
			if u == nil {
				t.Fatal("the delete was refused, yet the user is gone")
			}
			named := false
			for _, e := range logs.All() {
				if e.ContextMap()["user_id"] == u.ID {
					named = true
				}
			}
			if !named {
				t.Errorf("no error log line names the user %s left without a token: %v", u.ID, logs.All())
			}
		})
	}
}
