package main

import (
	"context"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
)

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
					schemas.ScimdUserURN, map[string]any{"credits": 3},
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
				r = patch(op("replace", schemas.ScimdUserURN, map[string]any{"emailVerified": true}))
				if want := map[string]any{"emailVerified": true}; !reflect.DeepEqual(r.body[schemas.ScimdUserURN], want) {
					t.Errorf("replace %s: %v, want %v", schemas.ScimdUserURN, r.body[schemas.ScimdUserURN], want)
				}
				r = patch(op("remove", enterprise, nil))
				if r.body[enterprise] != nil || contains(toStrings(r.body["schemas"]), enterprise) {
					t.Errorf("remove: %v, schemas %v", r.body[enterprise], r.body["schemas"])
				}
				if !contains(toStrings(r.body["schemas"]), schemas.ScimdUserURN) {
					t.Errorf("schemas %v lost %s", r.body["schemas"], schemas.ScimdUserURN)
				}
				before := e.callAs(tok, "GET", path, nil).want(t, http.StatusOK)
				e.callAs(tok, "PATCH", path, patchBody(op("replace", enterprise, "X"))).wantError(t, 400, "invalidValue")
				e.callAs(tok, "PATCH", path, patchBody(op("add", schemas.ScimdUserURN, []any{"X"}))).wantError(t, 400, "invalidValue")
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

// TestPatchThatChangesNothing: RFC 7644 §3.5.2.1, adding a value that is already
// there SHALL NOT change the modify timestamp. A PATCH (or PUT) that leaves the
// resource as it was answers as usual but keeps meta.lastModified, meta.version and
// the ETag, and records no change in the audit log; If-Match still applies.
func TestPatchThatChangesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		updates := func(id string) int {
			t.Helper()
			var n int
			if err := e.st.DB().Raw(`SELECT count(*) FROM audit_events WHERE operation = 'update' AND resource_id = ?`, id).Scan(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		// same checks that r answers the resource at the version and time of before.
		same := func(t *testing.T, what string, before, r resp) {
			t.Helper()
			if r.header.Get("ETag") != before.header.Get("ETag") {
				t.Errorf("%s: ETag %s, want %s", what, r.header.Get("ETag"), before.header.Get("ETag"))
			}
			if r.body != nil && (str(r.body, "meta.version") != str(before.body, "meta.version") ||
				str(r.body, "meta.lastModified") != str(before.body, "meta.lastModified")) {
				t.Errorf("%s: meta %v, want %v", what, r.body["meta"], before.body["meta"])
			}
		}
		created := e.call("POST", "/scim/v2/Users", user("still@example.com",
			"displayName", "Still", "name", map[string]any{"givenName": "S", "familyName": "Till"},
			"emails", []any{map[string]any{"type": "work", "value": "still@example.com", "primary": true}},
			enterprise, map[string]any{"department": "D", "manager": map[string]any{"value": "m-1"}},
		)).want(t, http.StatusCreated)
		id := str(created.body, "id")
		path := "/scim/v2/Users/" + id
		cases := []struct {
			name string
			ops  []map[string]any
		}{
			{"add_current_displayName", []map[string]any{op("add", "displayName", "Still")}},
			{"replace_equal", []map[string]any{op("replace", "displayName", "Still"), op("replace", "name.givenName", "S")}},
			{"replace_without_path", []map[string]any{op("replace", "", map[string]any{"displayName": "Still", "name": map[string]any{"familyName": "Till"}})}},
			{"remove_absent", []map[string]any{op("remove", "nickName", nil), op("remove", "title", nil), op("remove", `emails[type eq "home"]`, nil)}},
			{"add_existing_email", []map[string]any{op("add", "emails", []any{map[string]any{"type": "work", "value": "still@example.com", "primary": true}})}},
			{"add_existing_extension", []map[string]any{op("add", enterprise, map[string]any{"department": "D", "manager": map[string]any{"value": "m-1"}})}},
			{"change_and_change_back", []map[string]any{op("replace", "displayName", "Other"), op("replace", "displayName", "Still")}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := e.call("GET", path, nil).want(t, http.StatusOK)
				events := updates(id)
				r := e.call("PATCH", path, patchBody(c.ops...)).want(t, http.StatusOK)
				same(t, "PATCH", before, r)
				delete(r.body, "meta")
				delete(before.body, "meta")
				if !reflect.DeepEqual(r.body, before.body) {
					t.Errorf("the resource changed:\n%v\n%v", before.body, r.body)
				}
				same(t, "GET", e.call("GET", path, nil), e.call("GET", path, nil).want(t, http.StatusOK))
				if n := updates(id); n != events {
					t.Errorf("%d update events, want %d", n, events)
				}
			})
		}
		t.Run("if_match", func(t *testing.T) {
			before := e.call("GET", path, nil).want(t, http.StatusOK)
			e.call("PATCH", path, patchBody(op("add", "displayName", "Still")), "If-Match", `W/"999"`).wantError(t, http.StatusPreconditionFailed, "")
			r := e.call("PATCH", path, patchBody(op("add", "displayName", "Still")), "If-Match", before.header.Get("ETag")).want(t, http.StatusOK)
			same(t, "PATCH with If-Match", before, r)
		})
		t.Run("put_identical", func(t *testing.T) {
			before := e.call("GET", path, nil).want(t, http.StatusOK)
			body := map[string]any{}
			for k, v := range before.body {
				body[k] = v
			}
			r := e.call("PUT", path, body).want(t, http.StatusOK)
			same(t, "PUT", before, r)
		})
		t.Run("a_real_change_still_moves", func(t *testing.T) {
			before := e.call("GET", path, nil).want(t, http.StatusOK)
			events := updates(id)
			r := e.call("PATCH", path, patchBody(op("replace", "displayName", "Moved"))).want(t, http.StatusOK)
			if str(r.body, "meta.version") == str(before.body, "meta.version") || updates(id) != events+1 {
				t.Errorf("a change kept version %s (events %d → %d)", str(r.body, "meta.version"), events, updates(id))
			}
		})
		t.Run("groups", func(t *testing.T) {
			other := str(e.call("POST", "/scim/v2/Users", user("absent@example.com")).want(t, http.StatusCreated).body, "id")
			g := e.call("POST", "/scim/v2/Groups", group("Still Group", id)).want(t, http.StatusCreated)
			gpath := "/scim/v2/Groups/" + str(g.body, "id")
			okta := e.profileToken("okta")
			for _, c := range []struct {
				name string
				ops  []map[string]any
			}{
				{"add_existing_member", []map[string]any{op("add", "members", []any{map[string]any{"value": id}})}},
				{"remove_absent_member", []map[string]any{op("remove", `members[value eq "`+other+`"]`, nil)}},
				{"replace_same_members", []map[string]any{op("replace", "members", []any{map[string]any{"value": id}})}},
				{"replace_equal_displayName", []map[string]any{op("replace", "displayName", "Still Group")}},
			} {
				t.Run(c.name, func(t *testing.T) {
					before := e.call("GET", gpath, nil).want(t, http.StatusOK)
					events := updates(str(g.body, "id"))
					r := e.call("PATCH", gpath, patchBody(c.ops...)).want(t, http.StatusOK)
					same(t, "PATCH", before, r)
					// An okta token's group PATCH answers 204, with the same ETag.
					r = e.callAs(okta, "PATCH", gpath, patchBody(c.ops...)).want(t, http.StatusNoContent)
					same(t, "PATCH (204)", before, r)
					if n := updates(str(g.body, "id")); n != events {
						t.Errorf("%d update events, want %d", n, events)
					}
					if ms, _ := e.call("GET", gpath, nil).body["members"].([]any); len(ms) != 1 {
						t.Errorf("members %v", ms)
					}
				})
			}
			t.Run("put_identical", func(t *testing.T) {
				before := e.call("GET", gpath, nil).want(t, http.StatusOK)
				r := e.call("PUT", gpath, group("Still Group", id)).want(t, http.StatusOK)
				same(t, "PUT", before, r)
			})
			r := e.call("PATCH", gpath, patchBody(op("add", "members", []any{map[string]any{"value": other}}))).want(t, http.StatusOK)
			if r.header.Get("ETag") == str(g.body, "meta.version") {
				t.Errorf("a new member kept the ETag %s", r.header.Get("ETag"))
			}
		})
	})
}

// TestTokenCreateProfileAlias: `scimd token create --profile lenient` still works and
// gives the default profile under its new name, as does no --profile at all.
func TestTokenCreateProfileAlias(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "cli.db")
	if _, _, err := runCLI(t, "tenant", "create", "acme", "--database", db); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(db, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, args := range [][]string{{"--profile", "lenient"}, {"--profile", "rfc-tolerant"}, nil} {
		out, _, err := runCLI(t, append([]string{"token", "create", "--tenant", "acme", "--database", db}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		p, err := scim.NewTokens(st).Authenticate(context.Background(), strings.TrimSpace(out))
		if err != nil || p.Profile != scim.ProfileTolerant {
			t.Errorf("%v: profile %q, want %q (%v)", args, p.Profile, scim.ProfileTolerant, err)
		}
	}
	if _, _, err := runCLI(t, "token", "create", "--tenant", "acme", "--profile", "loose", "--database", db); err == nil {
		t.Error("an unknown profile was accepted")
	}
}

// TestPatchRFCRules: what RFC 7644 §3.5.2 and RFC 7643 require of PATCH, over HTTP
// on every backend, for the default profile and the strict one. An add or replace
// without "value" (or with null, RFC 7643 §2.5) is 400 invalidValue; a readOnly
// attribute, named in the path or inside the value (the enterprise
// manager.displayName, RFC 7643 §4.3), is 400 mutability; 1.5 for an integer
// (RFC 7643 §2.3.4) is 400 invalidValue; each refusal leaves the user as it was.
// A replace on a value filter replaces the matched value whole (§3.5.2.3); a new
// primary value takes the flag from the old one, also when it comes first (RFC 7643
// §2.4); member ids in another case name the same user.
func TestPatchRFCRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, profile := range []string{"", "strict"} {
			t.Run("profile="+profile, func(t *testing.T) {
				tok := e.token
				if profile != "" {
					tok = e.profileToken(profile)
				}
				created := e.callAs(tok, "POST", "/scim/v2/Users", user("rules-"+profile+"@example.com",
					"displayName", "Rules",
					"emails", []any{
						map[string]any{"type": "home", "value": "h@example.com"},
						map[string]any{"type": "work", "value": "w@example.com", "display": "W", "primary": true},
					},
					enterprise, map[string]any{"manager": map[string]any{"value": "m-1"}},
				)).want(t, http.StatusCreated)
				id := str(created.body, "id")
				path := "/scim/v2/Users/" + id
				before := e.callAs(tok, "GET", path, nil).want(t, http.StatusOK)
				refusals := []struct {
					name     string
					op       map[string]any
					scimType string
				}{
					{"add without value", map[string]any{"op": "add", "path": "displayName"}, "invalidValue"},
					{"replace without value", map[string]any{"op": "replace", "path": "displayName"}, "invalidValue"},
					{"replace value null", map[string]any{"op": "replace", "path": "displayName", "value": nil}, "invalidValue"},
					{"manager.displayName", op("replace", enterprise+":manager.displayName", "Boss"), "mutability"},
					{"manager with displayName", op("replace", enterprise+":manager", map[string]any{"value": "m-2", "displayName": "Boss"}), "mutability"},
					{"id", op("replace", "id", "other"), "mutability"},
					{"meta", op("add", "meta", map[string]any{"resourceType": "Group"}), "mutability"},
					{"groups", op("add", "groups", []any{map[string]any{"value": id}}), "mutability"},
					{"integer 1.5", op("replace", schemas.ScimdUserURN+":credits", 1.5), "invalidValue"},
				}
				for _, c := range refusals {
					e.callAs(tok, "PATCH", path, patchBody(c.op)).wantError(t, http.StatusBadRequest, c.scimType)
				}
				after := e.callAs(tok, "GET", path, nil).want(t, http.StatusOK)
				if !reflect.DeepEqual(before.body, after.body) {
					t.Errorf("a refused PATCH changed the user:\n%v\n%v", before.body, after.body)
				}
				e.callAs(tok, "POST", "/scim/v2/Users", user("rules-credits-"+profile+"@example.com",
					schemas.ScimdUserURN, map[string]any{"credits": 1.5})).wantError(t, http.StatusBadRequest, "invalidValue")

				get := func(ops ...map[string]any) map[string]any {
					t.Helper()
					if r := e.callAs(tok, "PATCH", path, patchBody(ops...)); r.status != http.StatusOK && r.status != http.StatusNoContent {
						t.Fatalf("PATCH %v: %d %s", ops, r.status, r.raw)
					}
					return e.callAs(tok, "GET", path, nil).want(t, http.StatusOK).body
				}
				b := get(op("replace", `emails[type eq "work"]`, map[string]any{"type": "work", "value": "w2@example.com"}))
				want := []any{map[string]any{"type": "home", "value": "h@example.com"}, map[string]any{"type": "work", "value": "w2@example.com"}}
				if !reflect.DeepEqual(b["emails"], want) {
					t.Errorf("replace on a value filter: emails %v, want %v", b["emails"], want)
				}
				get(op("replace", `emails[type eq "work"].primary`, true))
				b = get(op("replace", `emails[type eq "home"].primary`, true))
				want = []any{map[string]any{"type": "home", "value": "h@example.com", "primary": true}, map[string]any{"type": "work", "value": "w2@example.com"}}
				if !reflect.DeepEqual(b["emails"], want) {
					t.Errorf("new primary first: emails %v, want %v", b["emails"], want)
				}

				g := e.callAs(tok, "POST", "/scim/v2/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
					"displayName": "rules-" + profile}).want(t, http.StatusCreated)
				gpath := "/scim/v2/Groups/" + str(g.body, "id")
				if r := e.callAs(tok, "PATCH", gpath, patchBody(op("add", "members", []any{map[string]any{"value": strings.ToUpper(id)}}))); r.status != http.StatusOK && r.status != http.StatusNoContent {
					t.Fatalf("add member in upper case: %d %s", r.status, r.raw)
				}
				members, _ := e.callAs(tok, "GET", gpath, nil).want(t, http.StatusOK).body["members"].([]any)
				if len(members) != 1 || str(members[0].(map[string]any), "value") != id {
					t.Errorf("members %v, want the one user %s", members, id)
				}
				if r := e.callAs(tok, "PATCH", gpath, patchBody(op("remove", `members[value eq "`+strings.ToUpper(id)+`"]`, nil))); r.status != http.StatusOK && r.status != http.StatusNoContent {
					t.Fatalf("remove member in upper case: %d %s", r.status, r.raw)
				}
				if members := e.callAs(tok, "GET", gpath, nil).want(t, http.StatusOK).body["members"]; members != nil {
					t.Errorf("after remove: members %v", members)
				}
			})
		}
	})
}
