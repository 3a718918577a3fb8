package main

import (
	"context"
	"net/http"
	"reflect"
	"strings"
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

// TestDefaultProfileKeepsRFCResults: the default profile (rfc-tolerant) reads forms
// RFC 7644 does not define but never changes the result of a request it defines. A
// replace on a value filter that matches nothing is 400 noTarget (§3.5.2.3) and a
// schema URN the resource type lacks is 400 invalidValue naming it, for a new default
// token and for one stored under the profile's former name, "lenient"; an entra token
// gets the upsert and the ignored URN, counted in the quirk ledger.
func TestDefaultProfileKeepsRFCResults(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const adscim = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
		stored := e.profileToken("strict")
		// A token stored before the rename: its row says "lenient".
		if err := e.st.DB().Exec(`UPDATE api_tokens SET profile = 'lenient' WHERE profile = 'strict'`).Error; err != nil {
			t.Fatal(err)
		}
		entra := e.profileToken("entra")
		for name, tok := range map[string]string{"bootstrap": e.token, "new_default": e.profileToken(""), "stored_lenient": stored} {
			t.Run(name, func(t *testing.T) {
				id := str(e.callAs(tok, "POST", "/scim/v2/Users", user("rfc-"+name+"@example.com",
					"emails", []any{map[string]any{"type": "home", "value": "h@x"}})).want(t, http.StatusCreated).body, "id")
				r := e.callAs(tok, "PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", `emails[type eq "work"].value`, "w@x")))
				r.wantError(t, 400, "noTarget")
				if g := e.callAs(tok, "GET", "/scim/v2/Users/"+id, nil).want(t, 200); len(g.body["emails"].([]any)) != 1 {
					t.Errorf("the refused replace added an email: %v", g.body["emails"])
				}
				r = e.callAs(tok, "POST", "/scim/v2/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group", adscim},
					"displayName": "G-" + name})
				r.wantError(t, 400, "invalidValue")
				if !strings.Contains(str(r.body, "detail"), adscim) {
					t.Errorf("the error does not name the URN: %s", r.raw)
				}
			})
		}
		t.Run("entra", func(t *testing.T) {
			id := str(e.callAs(entra, "POST", "/scim/v2/Users", user("rfc-entra@example.com")).want(t, http.StatusCreated).body, "id")
			r := e.callAs(entra, "PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", `emails[type eq "work"].value`, "w@x")))
			if r.status != 200 && r.status != 204 {
				t.Fatalf("entra upsert: %d %s", r.status, r.raw)
			}
			if g := e.callAs(entra, "GET", "/scim/v2/Users/"+id, nil).want(t, 200); str(g.body["emails"].([]any)[0].(map[string]any), "value") != "w@x" {
				t.Errorf("emails %v", g.body["emails"])
			}
			e.callAs(entra, "POST", "/scim/v2/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group", adscim},
				"displayName": "G-entra"}).want(t, http.StatusCreated)
			// Attributes under the foreign URN have no schema to be stored in: refused, not dropped.
			r = e.callAs(entra, "POST", "/scim/v2/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group", adscim},
				"displayName": "G-entra-2", adscim: map[string]any{"objectId": "x"}})
			r.wantError(t, 400, "invalidValue")
			counts, err := e.svc.QuirkReport(context.Background(), "default")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, c := range counts {
				if c.Profile == "entra" {
					got[c.Quirk] += c.Count
				}
			}
			if got["valuepath_upsert"] != 1 || got["unknown_schema"] != 2 {
				t.Errorf("entra ledger %v, want valuepath_upsert 1 and unknown_schema 2", got)
			}
		})
	})
}
