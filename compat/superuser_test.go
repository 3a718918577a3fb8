package compat

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
)

// Superuser management (CONTRACT.md superuser.*): field decoding, the create_user
// translation and the error mapping without HTTP, then the routes over a real
// database.

// TestSuperuserField: absent and null leave the field alone; another type is 400
// invalid_request (superuser.body).
func TestSuperuserField(t *testing.T) {
	fields := map[string]json.RawMessage{"s": json.RawMessage(`"x"`), "n": json.RawMessage(`null`), "i": json.RawMessage(`7`), "b": json.RawMessage(`true`), "bs": json.RawMessage(`"yes"`)}
	for _, tc := range []struct {
		name string
		dst  any
		want any
		ok   bool
	}{
		{"s", new(string), "x", true},
		{"n", ptr("keep"), "keep", true},
		{"absent", ptr("keep"), "keep", true},
		{"i", new(string), "", false},
		{"b", new(bool), true, true},
		{"bs", new(bool), false, false},
		{"s", new(bool), false, false},
	} {
		err := superuserField(fields, tc.name, tc.dst)
		var got any
		switch d := tc.dst.(type) {
		case *string:
			got = *d
		case *bool:
			got = *d
		}
		if tc.ok != (err == nil) || tc.ok && got != tc.want {
			t.Errorf("%s into %T: %v, %v; want %v ok %v", tc.name, tc.dst, got, err, tc.want, tc.ok)
		}
		var se *superuserError
		if err != nil && (!errors.As(err, &se) || se.status != 400 || se.code != "invalid_request") {
			t.Errorf("%s: %v, want 400 invalid_request", tc.name, err)
		}
	}
	in, err := parseSuperuserNewUser(map[string]json.RawMessage{"email": json.RawMessage(`"a@example.com"`), "first_name": json.RawMessage(`"A"`),
		"last_name": json.RawMessage(`null`), "password": json.RawMessage(`"p"`), "email_confirmed": json.RawMessage(`true`), "other": json.RawMessage(`1`)})
	if err != nil || in != (superuserNewUser{Email: "a@example.com", FirstName: "A", Password: "p", EmailConfirmed: true}) {
		t.Errorf("parseSuperuserNewUser = %+v, %v", in, err)
	}
	if _, err := parseSuperuserNewUser(map[string]json.RawMessage{"email_confirmed": json.RawMessage(`"yes"`)}); err == nil {
		t.Error("email_confirmed \"yes\" accepted")
	}
}

func ptr[T any](v T) *T { return &v }

// TestSuperuserUser: create_user's SCIM User and its message (superuser.create,
// shared.passwords, shared.extension).
func TestSuperuserUser(t *testing.T) {
	svc := scim.NewService(nil, zap.NewNop())
	t.Run("unconfirmed", func(t *testing.T) {
		body, msgs, err := superuserUser(superuserNewUser{Email: " Ann@Example.com", FirstName: " Ann ", LastName: "", Password: "correct horse"}, svc)
		if err != nil {
			t.Fatal(err)
		}
		if body["userName"] != "ann@example.com" || body["password"] != "correct horse" {
			t.Errorf("body %v", body)
		}
		if n := body["name"].(map[string]any); n["givenName"] != "Ann" || n["familyName"] != nil {
			t.Errorf("name %v", body["name"])
		}
		if ext := body[superuserScimdURN].(map[string]any); ext["emailVerified"] != false {
			t.Errorf("extension %v", ext)
		}
		if len(msgs) != 1 || msgs[0].Kind != "verify_email" || msgs[0].Recipient != "ann@example.com" {
			t.Errorf("messages %+v", msgs)
		}
	})
	t.Run("confirmed", func(t *testing.T) {
		body, msgs, err := superuserUser(superuserNewUser{Email: "a@example.com", Password: "12345678", EmailConfirmed: true}, svc)
		if err != nil || len(msgs) != 0 || body[superuserScimdURN].(map[string]any)["emailVerified"] != true || body["name"] != nil {
			t.Errorf("body %v, messages %v, %v", body, msgs, err)
		}
	})
	for _, tc := range []struct {
		name string
		in   superuserNewUser
		code string
	}{
		{"password_7", superuserNewUser{Email: "a@example.com", Password: "1234567"}, "invalid_password"},
		{"password_8_code_points", superuserNewUser{Email: "a@example.com", Password: "éééééééé"}, ""},
		{"password_73_bytes", superuserNewUser{Email: "a@example.com", Password: strings.Repeat("a", 73)}, "invalid_password"},
		{"password_72_bytes", superuserNewUser{Email: "a@example.com", Password: strings.Repeat("a", 72)}, ""},
		{"password_missing", superuserNewUser{Email: "a@example.com"}, "invalid_password"},
		{"email_missing", superuserNewUser{Password: "12345678"}, "invalid_email"},
		{"email_bad", superuserNewUser{Email: "nope", Password: "12345678"}, "invalid_email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := superuserUser(tc.in, svc)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if st, code, _ := superuserStatus(err); st != 400 || code != tc.code {
				t.Errorf("%v: %d %s, want 400 %s", err, st, code, tc.code)
			}
		})
	}
}

// TestSuperuserStatus: each error becomes the family's status and code
// (superuser.errors).
func TestSuperuserStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"own", &superuserError{status: 409, code: "user_exists"}, 409, "user_exists"},
		{"media_type", &mediaTypeError{}, 415, "unsupported_media_type"},
		{"too_large", errTooLarge, 413, "payload_too_large"},
		{"family_disabled", errFamilyDisabled, 404, "not_found"},
		{"bad_email", fmt.Errorf("%w: x", errBadEmail), 400, "invalid_email"},
		{"value", &scim.Error{Kind: scim.KindInvalidValue}, 400, "invalid_request"},
		{"unauthorized", &scim.Error{Kind: scim.KindUnauthorized}, 401, "unauthorized"},
		{"expired", &scim.Error{Kind: scim.KindUnauthorized, Err: scim.ErrTokenExpired}, 401, "unauthorized"},
		{"forbidden", &scim.Error{Kind: scim.KindForbidden}, 403, "forbidden"},
		{"not_found", &scim.Error{Kind: scim.KindNotFound}, 404, "not_found"},
		{"precondition", &scim.Error{Kind: scim.KindPrecondition}, 409, "conflict"},
		{"unavailable", &scim.Error{Kind: scim.KindUnavailable}, 503, "unavailable"},
		{"internal", errors.New("secret"), 500, "internal"},
	} {
		st, code, msg := superuserStatus(tc.err)
		if st != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, code, tc.status, tc.code)
		}
		if strings.Contains(msg, "secret") {
			t.Errorf("%s: message %q carries the error's text", tc.name, msg)
		}
	}
}

// TestSuperuserEntryOf: a nonteam entry from a SCIM User (superuser.nonteam).
func TestSuperuserEntryOf(t *testing.T) {
	created := time.Date(2020, 10, 7, 23, 15, 47, 0, time.FixedZone("CEST", 2*3600))
	e := superuserEntryOf(&scim.Resource{Created: created, Attrs: map[string]any{"userName": "a@example.com", "name": map[string]any{"givenName": "A"}}})
	if e != (superuserEntry{LoginEmail: "a@example.com", FirstName: "A", LastName: "", CreatedAt: "Wed, 07 Oct 2020 21:15:47 GMT"}) {
		t.Errorf("entry %+v", e)
	}
}

// TestSuperuserRoutes runs the four routes over a real database.
func TestSuperuserRoutes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		key := f.token(scopes(scim.ScopeAdmin))
		ct := []string{"Content-Type", "application/json"}
		create := func(k, email string, extra string) string {
			return fmt.Sprintf(`{"key":%q,"email":%q,"first_name":"First","last_name":"Last","password":"correct horse"%s}`, k, email, extra)
		}
		t.Run("refusals", func(t *testing.T) {
			for _, tc := range []struct {
				name, method, path, body string
				hdr                      []string
				status                   int
				code                     string
			}{
				{"not_json_before_key", "POST", "/api/v1/create_user", `{"key":`, ct, 400, "invalid_json"},
				{"not_an_object", "POST", "/api/v1/create_user", `["key"]`, ct, 400, "invalid_request"},
				{"null_body", "POST", "/api/v1/create_user", `null`, ct, 400, "invalid_request"},
				{"key_not_string", "POST", "/api/v1/create_user", `{"key":12}`, ct, 400, "invalid_request"},
				{"no_content_type", "POST", "/api/v1/create_user", create(key, "a@example.com", ""), nil, 415, "unsupported_media_type"},
				{"key_missing", "POST", "/api/v1/create_user", `{"email":"a@example.com"}`, ct, 401, "unauthorized"},
				{"key_unknown", "POST", "/create_user", create("nope", "a@example.com", ""), ct, 401, "unauthorized"},
				{"key_in_header_not_read", "POST", "/api/v1/create_user", `{"email":"a@example.com"}`, append([]string{"Authorization", "Bearer " + key}, ct...), 401, "unauthorized"},
				{"scope", "POST", "/api/v1/create_user", create(f.token(scopes(scim.ScopeCompat, scim.ScopeSCIM)), "a@example.com", ""), ct, 403, "forbidden"},
				{"sandbox_create", "POST", "/api/v1/create_user", create(f.token(sandbox(scim.ScopeAdmin)), "a@example.com", ""), ct, 403, "forbidden"},
				{"sandbox_delete", "POST", "/api/v1/delete_user", create(f.token(sandbox(scim.ScopeAdmin)), "a@example.com", ""), ct, 403, "forbidden"},
				{"wrong_type_after_auth", "POST", "/api/v1/create_user", create(key, "a@example.com", `,"email_confirmed":"yes"`), ct, 400, "invalid_request"},
				{"short_password", "POST", "/api/v1/create_user", fmt.Sprintf(`{"key":%q,"email":"a@example.com","password":"1234567"}`, key), ct, 400, "invalid_password"},
				{"bad_email", "POST", "/api/v1/create_user", create(key, "a@localhost", ""), ct, 400, "invalid_email"},
				{"method", "GET", "/api/v1/create_user", "", nil, 405, "method_not_allowed"},
				{"method_count", "POST", "/api/v1/user/count?key=" + key, "", nil, 405, "method_not_allowed"},
				{"count_no_key", "GET", "/api/v1/user/count", "", nil, 401, "unauthorized"},
				{"count_scope", "GET", "/api/v1/user/count?key=" + f.token(scopes(scim.ScopeCompat)), "", nil, 403, "forbidden"},
				{"nonteam_unknown_key", "GET", "/api/v1/user/nonteam?key=nope", "", nil, 401, "unauthorized"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := f.do(tc.method, tc.path, tc.body, tc.hdr...)
					r.want(t, tc.status, "error", tc.code)
					if m, _ := r.body["msg"].(string); m == "" || len(r.body) != 2 {
						t.Errorf("error body %s, want {error, msg}", r.raw)
					}
					if tc.status == 405 && r.header.Get("Allow") == "" {
						t.Error("405 without Allow")
					}
				})
			}
			if f.lookup("a@example.com") != nil || len(f.outbox()) != 0 {
				t.Fatal("a refused call wrote")
			}
		})
		t.Run("create_and_delete", func(t *testing.T) {
			r := f.do("POST", "/api/v1/create_user", create(key, " Ann@Example.com", ""), ct...)
			if r.status != 201 || r.raw != "{}" {
				t.Fatalf("create: %d %s", r.status, r.raw)
			}
			u := f.lookup("ann@example.com")
			if u == nil || u.Attrs[superuserScimdURN].(map[string]any)["emailVerified"] != false {
				t.Fatalf("user %v", u)
			}
			if got := f.outbox(); len(got) != 1 || got[0] != "verify_email" {
				t.Errorf("outbox %v", got)
			}
			f.do("POST", "/create_user", create(key, "ANN@example.com", ""), ct...).want(t, 409, "error", "user_exists")
			r = f.do("POST", "/create_user", create(key, "bob@example.com", `,"email_confirmed":true`), ct...)
			if r.status != 201 || len(f.outbox()) != 1 {
				t.Errorf("confirmed create: %d %s, outbox %v", r.status, r.raw, f.outbox())
			}
			// A sandbox key may read the reports.
			sk := f.token(sandbox(scim.ScopeAdmin))
			r = f.do("GET", "/api/v1/user/count?key="+sk, "")
			if r.status != 200 || r.body["user_count"] != float64(2) || r.body["team_user_count"] != float64(0) {
				t.Errorf("count: %d %s", r.status, r.raw)
			}
			r = f.do("POST", "/delete_user", fmt.Sprintf(`{"key":%q,"email":"ANN@example.com"}`, key), ct...)
			if r.status != 204 || r.raw != "" {
				t.Errorf("delete: %d %q", r.status, r.raw)
			}
			f.do("POST", "/api/v1/delete_user", fmt.Sprintf(`{"key":%q,"email":"ann@example.com"}`, key), ct...).want(t, 404, "error", "user_not_found")
			f.do("POST", "/api/v1/delete_user", fmt.Sprintf(`{"key":%q,"email":"nope"}`, key), ct...).want(t, 400, "error", "invalid_email")
			f.do("POST", "/api/v1/delete_user", fmt.Sprintf(`{"key":%q,"email":5}`, key), ct...).want(t, 400, "error", "invalid_request")
		})
		t.Run("reports", func(t *testing.T) {
			carl := f.user("carl@example.com", false, map[string]any{"name": map[string]any{"givenName": "Carl"}})
			if _, err := f.svc.Create(t.Context(), f.tenantID, scim.GroupKind, map[string]any{
				"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Team",
				"members": []any{map[string]any{"value": carl.ID}},
			}, scim.Projection{}); err != nil {
				t.Fatal(err)
			}
			r := f.do("GET", "/api/v1/user/count?key="+key, "")
			if r.status != 200 || r.body["user_count"] != float64(2) || r.body["team_user_count"] != float64(1) {
				t.Errorf("count: %d %s", r.status, r.raw)
			}
			r = f.do("GET", "/api/v1/user/nonteam?key="+key, "")
			users, _ := r.body["users"].([]any)
			if r.status != 200 || len(users) != 1 || users[0].(map[string]any)["login_email"] != "bob@example.com" {
				t.Fatalf("nonteam: %d %s", r.status, r.raw)
			}
			if _, err := time.Parse(http.TimeFormat, users[0].(map[string]any)["created_at"].(string)); err != nil {
				t.Errorf("created_at: %v", err)
			}
		})
		t.Run("family_disabled", func(t *testing.T) {
			f.set("family.superuser=disabled")
			f.do("GET", "/api/v1/user/count?key="+key, "").want(t, 404, "error", "not_found")
			f.set("family.superuser=enabled")
		})
	})
}
