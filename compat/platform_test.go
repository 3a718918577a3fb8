package compat

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
)

// Platform user provisioning (CONTRACT.md platform.*): the Authorization header and
// the vendor body's translation into a SCIM User and PATCH operations without HTTP,
// the error writer, then the routes over a real database.

func TestParsePlatformAuthorization(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		header string
		want   platformCredentials
		ok     bool
	}{
		{"Bearer abc", platformCredentials{secret: "abc"}, true},
		{"bearer  abc ", platformCredentials{secret: "abc"}, true},
		{"Basic " + b64("acme:abc"), platformCredentials{secret: "abc", basic: true, user: "acme"}, true},
		{"BASIC " + b64("acme:a:b"), platformCredentials{secret: "a:b", basic: true, user: "acme"}, true},
		{"", platformCredentials{}, false},
		{"Bearer", platformCredentials{}, false},
		{"Bearer   ", platformCredentials{}, false},
		{"Basic " + b64("acme"), platformCredentials{}, false},
		{"Basic " + b64(":abc"), platformCredentials{}, false},
		{"Basic " + b64("acme:"), platformCredentials{}, false},
		{"Basic not-base64!", platformCredentials{}, false},
		{"Token abc", platformCredentials{}, false},
	} {
		got, err := parsePlatformAuthorization(tc.header)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("parsePlatformAuthorization(%q) = %+v, %v; want %+v ok %v", tc.header, got, err, tc.want, tc.ok)
		}
		if err != nil && scim.AsError(err).Kind != scim.KindUnauthorized {
			t.Errorf("%q: kind %v, want unauthorized (401)", tc.header, scim.AsError(err).Kind)
		}
	}
}

// TestPlatformUser: the provision body becomes the SCIM User (platform.provision,
// shared.email, shared.roles).
func TestPlatformUser(t *testing.T) {
	roles := func(r ...string) []any { return platformRoles(r) }
	for _, tc := range []struct {
		name, body string
		want       map[string]any // the keys checked, "-" for absent
		email      string
		err        bool
	}{
		{"vendor_sample", `{"username":"platform.user","firstName":"Platform","lastName":"User","email":" Platform_User@Company.com","password":"secret-pass","role":"Administrator"}`,
			map[string]any{"userName": "platform.user", "name": map[string]any{"givenName": "Platform", "familyName": "User"}, "password": "secret-pass", "roles": roles("Administrator"), "active": true}, "platform_user@company.com", false},
		{"minimal", `{"username":"u","email":"u@example.com"}`, map[string]any{"userName": "u", "name": "-", "password": "-", "roles": "-"}, "u@example.com", false},
		{"empty_names_left_out", `{"username":"u","email":"u@example.com","firstName":"","lastName":"L"}`, map[string]any{"name": map[string]any{"familyName": "L"}}, "u@example.com", false},
		{"null_is_absent", `{"username":"u","email":"u@example.com","firstName":null,"role":null}`, map[string]any{"name": "-", "roles": "-"}, "u@example.com", false},
		{"role_and_roles", `{"username":"u","email":"u@example.com","role":" A ","roles":["B","A"]}`, map[string]any{"roles": roles("A", "B")}, "u@example.com", false},
		{"username_missing", `{"email":"u@example.com"}`, nil, "", true},
		{"username_blank", `{"username":"  ","email":"u@example.com"}`, nil, "", true},
		{"email_missing", `{"username":"u"}`, nil, "", true},
		{"email_bad", `{"username":"u","email":"nope"}`, nil, "", true},
		{"username_number", `{"username":1,"email":"u@example.com"}`, nil, "", true},
		{"password_empty", `{"username":"u","email":"u@example.com","password":""}`, nil, "", true},
		{"role_empty", `{"username":"u","email":"u@example.com","role":" "}`, nil, "", true},
		{"role_number", `{"username":"u","email":"u@example.com","role":1}`, nil, "", true},
		{"roles_string", `{"username":"u","email":"u@example.com","roles":"A"}`, nil, "", true},
		{"roles_element_number", `{"username":"u","email":"u@example.com","roles":["A",1]}`, nil, "", true},
		{"roles_element_empty", `{"username":"u","email":"u@example.com","roles":[""]}`, nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, email, err := PlatformUser(decodeObject(t, tc.body))
			if tc.err {
				if err == nil || scim.AsError(err).Kind != scim.KindInvalidValue {
					t.Fatalf("PlatformUser = %v, %v; want invalidValue", u, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if email != tc.email {
				t.Errorf("email %q, want %q", email, tc.email)
			}
			emails := []any{map[string]any{"value": tc.email, "type": "work", "primary": true}}
			if !reflect.DeepEqual(u["emails"], emails) {
				t.Errorf("emails %v", u["emails"])
			}
			for k, want := range tc.want {
				got, ok := u[k]
				if want == "-" {
					if ok {
						t.Errorf("%s = %v, want absent", k, got)
					}
					continue
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
		})
	}
}

// TestPlatformPatch: only the fields present become operations (platform.update).
func TestPlatformPatch(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		ops        []scim.PatchOp
		newEmail   string
		err        bool
	}{
		{"empty", `{}`, nil, "cur@example.com", false},
		{"vendor_sample", `{"username":"platform user","firstName":"Platform","lastName":"User","password":"secret-pass","roles":["Help Desk Agent","IT Specialist"]}`, []scim.PatchOp{
			{Op: "replace", Path: "userName", Value: "platform user"},
			{Op: "replace", Path: "name.givenName", Value: "Platform"},
			{Op: "replace", Path: "name.familyName", Value: "User"},
			{Op: "replace", Path: "password", Value: "secret-pass"},
			{Op: "replace", Path: "roles", Value: platformRoles([]string{"Help Desk Agent", "IT Specialist"})},
		}, "cur@example.com", false},
		{"blank_names_removed", `{"firstName":"","lastName":""}`, []scim.PatchOp{{Op: "remove", Path: "name.givenName"}, {Op: "remove", Path: "name.familyName"}}, "cur@example.com", false},
		{"roles_empty_removed", `{"roles":[]}`, []scim.PatchOp{{Op: "remove", Path: "roles"}}, "cur@example.com", false},
		{"role_string", `{"role":"A"}`, []scim.PatchOp{{Op: "replace", Path: "roles", Value: platformRoles([]string{"A"})}}, "cur@example.com", false},
		{"same_email", `{"email":" CUR@example.com"}`, nil, "cur@example.com", false},
		{"new_email", `{"email":"New@example.com"}`, []scim.PatchOp{{Op: "replace", Path: `emails[value eq "cur@example.com"].value`, Value: "new@example.com"}}, "new@example.com", false},
		{"bad_email", `{"email":"nope"}`, nil, "", true},
		{"wrong_type", `{"lastName":false}`, nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, newEmail, err := PlatformPatch(decodeObject(t, tc.body), "cur@example.com")
			if tc.err {
				if err == nil || scim.AsError(err).Kind != scim.KindInvalidValue {
					t.Fatalf("PlatformPatch = %v, %v; want invalidValue", ops, err)
				}
				return
			}
			if err != nil || newEmail != tc.newEmail || !reflect.DeepEqual(ops, tc.ops) {
				t.Errorf("PlatformPatch = %+v, %q, %v; want %+v, %q", ops, newEmail, err, tc.ops, tc.newEmail)
			}
		})
	}
}

// TestPlatformWriteError: the SCIM error schema with the RFC's scimType for each
// error (platform.errors).
func TestPlatformWriteError(t *testing.T) {
	p := &platform{c: New(nil, nil, zap.NewNop(), Options{}), log: zap.NewNop()}
	for _, tc := range []struct {
		name     string
		err      error
		status   string
		scimType string
	}{
		{"method", &platformStatusError{status: 405, detail: "use POST"}, "405", ""},
		{"media_type", &mediaTypeError{detail: "x"}, "415", ""},
		{"too_large", errTooLarge, "413", ""},
		{"family_disabled", errFamilyDisabled, "404", ""},
		{"syntax", &scim.Error{Kind: scim.KindInvalidSyntax}, "400", "invalidSyntax"},
		{"value", &scim.Error{Kind: scim.KindInvalidValue}, "400", "invalidValue"},
		{"unauthorized", &scim.Error{Kind: scim.KindUnauthorized}, "401", ""},
		{"forbidden", &scim.Error{Kind: scim.KindForbidden}, "403", ""},
		{"not_found", &scim.Error{Kind: scim.KindNotFound}, "404", ""},
		{"uniqueness", &scim.Error{Kind: scim.KindUniqueness}, "409", "uniqueness"},
		{"unavailable", &scim.Error{Kind: scim.KindUnavailable}, "503", ""},
		{"internal", errors.New("secret"), "500", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			p.writeError(rec, httptest.NewRequest("POST", "/scim/provision-user", nil), tc.err)
			r := reply{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
			if rec.Header().Get("Content-Type") != "application/scim+json" {
				t.Errorf("Content-Type %q", rec.Header().Get("Content-Type"))
			}
			if !strings.Contains(r.raw, `"urn:ietf:params:scim:api:messages:2.0:Error"`) || !strings.Contains(r.raw, `"status":"`+tc.status+`"`) {
				t.Errorf("body %s, want the SCIM error schema with status %s", r.raw, tc.status)
			}
			if strings.Contains(r.raw, "secret") {
				t.Errorf("a 500 carries the error's text: %s", r.raw)
			}
			if (tc.scimType == "") != !strings.Contains(r.raw, `"scimType"`) || tc.scimType != "" && !strings.Contains(r.raw, `"scimType":"`+tc.scimType+`"`) {
				t.Errorf("body %s, want scimType %q", r.raw, tc.scimType)
			}
			if tc.status == "401" && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// TestPlatformRoutes runs the three routes over a real database.
func TestPlatformRoutes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		tok := f.token(scopes(scim.ScopeCompat))
		hdr := func(auth, app string) []string {
			return []string{"Authorization", auth, "X-App-Token", app, "Content-Type", "application/json"}
		}
		ok := hdr("Bearer "+tok, tok)
		body := `{"username":"platform.user","firstName":"Platform","lastName":"User","email":"Platform_User@Company.com","password":"secret-pass","role":"Administrator"}`
		f.otherTenant("other")
		otherTok := f.tokenOf("other", scopes(scim.ScopeCompat))
		scimTok := f.token(scopes(scim.ScopeSCIM))
		sandTok := f.token(sandbox(scim.ScopeCompat))

		t.Run("refusals", func(t *testing.T) {
			for _, tc := range []struct {
				name, method, path string
				hdr                []string
				status             string
			}{
				{"method", "GET", "/scim/provision-user", ok, "405"},
				{"no_authorization", "POST", "/scim/provision-user", hdr("", tok), "401"},
				{"no_app_token", "POST", "/scim/provision-user", hdr("Bearer "+tok, ""), "401"},
				{"bad_app_token", "POST", "/scim/provision-user", hdr("Bearer "+tok, "nope"), "401"},
				{"bad_bearer", "POST", "/scim/provision-user", hdr("Bearer nope", tok), "401"},
				{"tenants_differ", "POST", "/scim/provision-user", hdr("Bearer "+tok, otherTok), "401"},
				{"basic_wrong_tenant", "POST", "/scim/provision-user", hdr("Basic "+basicAuth("other", tok), tok), "401"},
				{"scope_authorization", "POST", "/scim/provision-user", hdr("Bearer "+scimTok, tok), "403"},
				{"scope_app_token", "POST", "/scim/provision-user", hdr("Bearer "+tok, scimTok), "403"},
				{"sandbox_authorization", "POST", "/scim/provision-user", hdr("Bearer "+sandTok, tok), "403"},
				{"sandbox_app_token", "DELETE", "/scim/de-provision-user/a@example.com", hdr("Bearer "+tok, sandTok), "403"},
				{"text_plain", "POST", "/scim/provision-user", []string{"Authorization", "Bearer " + tok, "X-App-Token", tok, "Content-Type", "text/plain"}, "415"},
				{"no_content_type", "POST", "/scim/provision-user", []string{"Authorization", "Bearer " + tok, "X-App-Token", tok}, "415"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := f.do(tc.method, tc.path, body, tc.hdr...)
					if strings.TrimSpace(r.body["status"].(string)) != tc.status {
						t.Fatalf("status %d %s, want %s", r.status, r.raw, tc.status)
					}
				})
			}
			if f.lookup("platform.user") != nil {
				t.Fatal("a refused call created the user")
			}
		})
		t.Run("provision", func(t *testing.T) {
			r := f.do("POST", "/scim/provision-user", body, ok...)
			if r.status != 201 || r.header.Get("Location") == "" || r.header.Get("ETag") == "" || r.body["userName"] != "platform.user" || r.body["password"] != nil {
				t.Fatalf("answer %d %s (Location %q)", r.status, r.raw, r.header.Get("Location"))
			}
			r = f.do("POST", "/scim/provision-user", `{"username":"PLATFORM.user","email":"new@company.com"}`, ok...)
			if r.status != 409 || r.body["scimType"] != "uniqueness" {
				t.Errorf("existing username: %d %s", r.status, r.raw)
			}
			r = f.do("POST", "/scim/provision-user", `{"username":"another","email":"platform_user@COMPANY.com"}`, ok...)
			if r.status != 409 || r.body["scimType"] != "uniqueness" {
				t.Errorf("existing email: %d %s", r.status, r.raw)
			}
			r = f.do("POST", "/scim/provision-user", `[]`, ok...)
			if r.status != 400 || r.body["scimType"] != "invalidSyntax" {
				t.Errorf("not an object: %d %s", r.status, r.raw)
			}
			r = f.do("POST", "/scim/provision-user", `{"username":"x","email":"x@company.com","password":"short"}`, ok...)
			if r.status != 400 || r.body["scimType"] != "invalidValue" || f.lookup("x") != nil {
				t.Errorf("short password (shared.passwords): %d %s", r.status, r.raw)
			}
		})
		t.Run("update", func(t *testing.T) {
			basic := hdr("Basic "+basicAuth("ACME", tok), tok)
			r := f.do("PATCH", "/scim/update-user/PLATFORM_USER@company.com", `{"roles":["Help Desk Agent"],"lastName":""}`, basic...)
			if r.status != 200 || r.header.Get("ETag") == "" {
				t.Fatalf("update: %d %s", r.status, r.raw)
			}
			u := f.lookup("platform.user")
			if !reflect.DeepEqual(u.Attrs["roles"], []any{map[string]any{"value": "Help Desk Agent"}}) {
				t.Errorf("roles %v", u.Attrs["roles"])
			}
			if n, _ := u.Attrs["name"].(map[string]any); n["familyName"] != nil || n["givenName"] != "Platform" {
				t.Errorf("name %v", u.Attrs["name"])
			}
			before := u.Version
			for _, m := range []string{"PUT", "POST"} {
				if r := f.do(m, "/scim/update-user/platform_user@company.com", `{}`, ok...); r.status != 200 {
					t.Errorf("%s {}: %d %s", m, r.status, r.raw)
				}
			}
			if f.lookup("platform.user").Version != before {
				t.Error("an empty update changed the version")
			}
			if r := f.do("PUT", "/scim/update-user/nobody@company.com", `{"firstName":"X"}`, ok...); r.status != 404 {
				t.Errorf("unknown email: %d %s", r.status, r.raw)
			}
			if r := f.do("PUT", "/scim/update-user/not-an-email", `{}`, ok...); r.status != 400 || r.body["scimType"] != "invalidValue" {
				t.Errorf("bad email in path: %d %s", r.status, r.raw)
			}
			if r := f.do("PUT", "/scim/update-user/", `{}`, ok...); r.status != 400 {
				t.Errorf("empty email in path: %d %s", r.status, r.raw)
			}
			if r := f.do("GET", "/scim/update-user/platform_user@company.com", "", ok...); r.status != 405 || r.header.Get("Allow") != "PATCH, POST, PUT" {
				t.Errorf("GET: %d Allow %q", r.status, r.header.Get("Allow"))
			}
			// Another user with the target email: 409.
			f.do("POST", "/scim/provision-user", `{"username":"second","email":"second@company.com"}`, ok...)
			if r := f.do("PATCH", "/scim/update-user/second@company.com", `{"email":"platform_user@company.com"}`, ok...); r.status != 409 {
				t.Errorf("email taken: %d %s", r.status, r.raw)
			}
			// Another tenant cannot see the user.
			if r := f.do("PATCH", "/scim/update-user/platform_user@company.com", `{}`, hdr("Bearer "+otherTok, otherTok)...); r.status != 404 {
				t.Errorf("other tenant: %d %s", r.status, r.raw)
			}
		})
		t.Run("deprovision", func(t *testing.T) {
			r := f.do("DELETE", "/scim/de-provision-user/Platform_User@company.com", "", "Authorization", "Bearer "+tok, "X-App-Token", tok)
			if r.status != 204 || r.raw != "" {
				t.Fatalf("deprovision: %d %q", r.status, r.raw)
			}
			if f.lookup("platform.user") != nil {
				t.Error("user still there")
			}
			if r := f.do("POST", "/scim/de-provision-user/platform_user@company.com", "", "Authorization", "Bearer "+tok, "X-App-Token", tok); r.status != 404 {
				t.Errorf("second deprovision: %d %s", r.status, r.raw)
			}
		})
		t.Run("family_disabled", func(t *testing.T) {
			f.set("family.platform=disabled")
			if r := f.do("POST", "/scim/provision-user", body, ok...); r.status != 404 {
				t.Errorf("disabled: %d %s", r.status, r.raw)
			}
			f.set("family.platform=enabled")
		})
	})
}

// TestPlatformProvisionInvalid: a provision-user body that PlatformUser refuses is
// 400 invalidValue through the route too (platform.errors), and creates no user,
// whatever users the tenant holds: here one created through SCIM with an empty
// emails.value, which a body without a valid email must not be matched with.
func TestPlatformProvisionInvalid(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		if _, err := f.svc.Create(context.Background(), f.tenantID, scim.UserKind, map[string]any{
			"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "no.email", "emails": []any{map[string]any{"value": ""}},
		}, scim.Projection{}); err != nil {
			t.Fatal(err)
		}
		tok := f.token(scopes(scim.ScopeCompat))
		hdr := []string{"Authorization", "Bearer " + tok, "X-App-Token", tok, "Content-Type", "application/json"}
		for _, body := range []string{
			`{"username":"u1"}`,
			`{"email":"u2@example.com"}`,
			`{"username":"u3","email":"nope"}`,
			`{"username":"u4","email":"u4@example.com","role":1}`,
		} {
			r := f.do("POST", "/scim/provision-user", body, hdr...)
			if r.status != 400 || r.body["scimType"] != "invalidValue" {
				t.Errorf("%s: %d %s, want 400 invalidValue", body, r.status, r.raw)
			}
		}
		for _, name := range []string{"u1", "u3", "u4"} {
			if f.lookup(name) != nil {
				t.Errorf("a refused provision created %s", name)
			}
		}
	})
}
