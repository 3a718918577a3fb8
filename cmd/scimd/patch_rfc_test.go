package main

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"github.com/scimd/scimd/scim"
)

const scimdExtension = "urn:scimd:schemas:extension:2.0:User"

// TestPatchWholeExtensionPath: a PATCH path that is an extension's URN names the
// whole extension (scimd's reading of RFC 7644 §3.5.2), on every profile: add merges
// the value into the extension, replace replaces it, remove drops it and its URN from
// "schemas"; a value that is not an object is 400 invalidValue.
func TestPatchWholeExtensionPath(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, profile := range []string{"strict", "okta", "entra", ""} {
			t.Run("profile="+profile, func(t *testing.T) {
				tok := e.token
				if profile != "" {
					tok = e.profileToken(profile)
				}
				created := e.callAs(tok, "POST", "/scim/v2/Users", user("ext-"+profile+"@example.com",
					enterprise, map[string]any{"employeeNumber": "701984", "department": "Tours", "manager": map[string]any{"value": "m-1"}},
					scimdExtension, map[string]any{"credits": 3},
				)).want(t, http.StatusCreated)
				path := "/scim/v2/Users/" + str(created.body, "id")
				patch := func(ops ...map[string]any) resp {
					t.Helper()
					r := e.callAs(tok, "PATCH", path, patchBody(ops...))
					if r.status == http.StatusNoContent {
						r = e.callAs(tok, "GET", path, nil)
					}
					return r.want(t, http.StatusOK)
				}
				r := patch(op("add", enterprise, map[string]any{"department": "X", "manager": map[string]any{"value": "m-2"}}))
				if want := map[string]any{"employeeNumber": "701984", "department": "X", "manager": map[string]any{"value": "m-2"}}; !reflect.DeepEqual(ext(r.body), want) {
					t.Errorf("add: %v, want %v", ext(r.body), want)
				}
				r = patch(op("replace", enterprise, map[string]any{"department": "Y"}))
				if want := map[string]any{"department": "Y"}; !reflect.DeepEqual(ext(r.body), want) {
					t.Errorf("replace: %v, want %v", ext(r.body), want)
				}
				r = patch(op("replace", scimdExtension, map[string]any{"emailVerified": true}))
				if want := map[string]any{"emailVerified": true}; !reflect.DeepEqual(r.body[scimdExtension], want) {
					t.Errorf("replace %s: %v, want %v", scimdExtension, r.body[scimdExtension], want)
				}
				r = patch(op("remove", enterprise, nil))
				if r.body[enterprise] != nil || contains(toStrings(r.body["schemas"]), enterprise) {
					t.Errorf("remove: %v, schemas %v", r.body[enterprise], r.body["schemas"])
				}
				if !contains(toStrings(r.body["schemas"]), scimdExtension) {
					t.Errorf("schemas %v lost %s", r.body["schemas"], scimdExtension)
				}
				before := e.callAs(tok, "GET", path, nil).want(t, http.StatusOK)
				e.callAs(tok, "PATCH", path, patchBody(op("replace", enterprise, "X"))).wantError(t, 400, "invalidValue")
				e.callAs(tok, "PATCH", path, patchBody(op("add", scimdExtension, []any{"X"}))).wantError(t, 400, "invalidValue")
				e.callAs(tok, "PATCH", path, patchBody(op("add", enterprise, map[string]any{"department": 7}))).wantError(t, 400, "invalidValue")
				e.callAs(tok, "PATCH", path, patchBody(op("add", enterprise, map[string]any{"manager.displayName": "Boss"}))).wantError(t, 400, "mutability")
				after := e.callAs(tok, "GET", path, nil).want(t, http.StatusOK)
				if !reflect.DeepEqual(before.body, after.body) {
					t.Errorf("a refused PATCH changed the user:\n%v\n%v", before.body, after.body)
				}
			})
		}
	})
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// profileToken issues a SCIM token of the default tenant read with profile.
func (e *env) profileToken(profile string) string {
	e.t.Helper()
	s, err := e.tokens.Issue(context.Background(), "default", scim.TokenOptions{Scopes: []string{"scim"}, Profile: profile})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// TestDuplicateMultiValuesDropped: RFC 7643 §2.4, the same type and value SHOULD NOT
// appear twice in a multi-valued attribute: POST, PUT and PATCH store one, and keep
// primary when a dropped duplicate had it.
func TestDuplicateMultiValuesDropped(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		dup := []any{
			map[string]any{"type": "work", "value": "a@x.example"},
			map[string]any{"type": "work", "value": "A@X.example", "primary": true},
		}
		wantEmails := []any{map[string]any{"type": "work", "value": "a@x.example", "primary": true}}
		phones := []any{map[string]any{"type": "work", "value": "+1"}, map[string]any{"type": "work", "value": "+1"}}
		check := func(t *testing.T, what string, b map[string]any) {
			t.Helper()
			if !reflect.DeepEqual(b["emails"], wantEmails) {
				t.Errorf("%s: emails %v, want %v", what, b["emails"], wantEmails)
			}
			if ph, _ := b["phoneNumbers"].([]any); len(ph) != 1 {
				t.Errorf("%s: phoneNumbers %v", what, b["phoneNumbers"])
			}
		}
		r := e.call("POST", "/scim/v2/Users", user("dups@example.com", "emails", dup, "phoneNumbers", phones)).want(t, http.StatusCreated)
		check(t, "POST", r.body)
		path := "/scim/v2/Users/" + str(r.body, "id")
		check(t, "GET", e.call("GET", path, nil).want(t, http.StatusOK).body)
		r = e.call("PUT", path, user("dups@example.com", "emails", dup, "phoneNumbers", phones)).want(t, http.StatusOK)
		check(t, "PUT", r.body)
		e.call("PATCH", path, patchBody(op("remove", "emails", nil), op("remove", "phoneNumbers", nil))).want(t, http.StatusOK)
		r = e.call("PATCH", path, patchBody(op("add", "emails", dup), op("replace", "phoneNumbers", phones))).want(t, http.StatusOK)
		check(t, "PATCH", r.body)
		check(t, "GET after PATCH", e.call("GET", path, nil).want(t, http.StatusOK).body)
	})
}
