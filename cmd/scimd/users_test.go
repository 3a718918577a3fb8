package main

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

const enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

func TestUserLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		created := e.call("POST", "/scim/v2/Users", user("bjensen@example.com",
			"externalId", "ext-1",
			"name", map[string]any{"givenName": "Barbara", "familyName": "Jensen"},
			"emails", []any{map[string]any{"value": "bjensen@example.com", "type": "work", "primary": true}},
			"active", true,
			"password", "t1meMa$heen",
			"phoneNumbers", []any{map[string]any{"value": "+1-555-0100", "type": "work"}},
			"addresses", []any{map[string]any{"streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "type": "work"}},
			"roles", []any{map[string]any{"value": "admin"}},
			enterprise, map[string]any{"employeeNumber": "701984", "manager": map[string]any{"value": "26118915"}},
		)).want(t, http.StatusCreated)
		id := str(created.body, "id")
		loc := e.srv.URL + "/scim/v2/Users/" + id
		t.Run("create_response", func(t *testing.T) {
			if created.header.Get("Location") != loc || str(created.body, "meta.location") != loc {
				t.Errorf("Location %q, meta.location %q, want %q", created.header.Get("Location"), str(created.body, "meta.location"), loc)
			}
			if created.header.Get("ETag") != `W/"1"` || str(created.body, "meta.version") != `W/"1"` {
				t.Errorf("ETag %q version %q", created.header.Get("ETag"), str(created.body, "meta.version"))
			}
			if ct := created.header.Get("Content-Type"); ct != "application/scim+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if _, ok := created.body["password"]; ok || strings.Contains(created.raw, "t1meMa$heen") {
				t.Error("password returned (returned=never, RFC 7643 §4.1.1)")
			}
			if str(created.body, "meta.resourceType") != "User" || str(created.body, "meta.created") == "" {
				t.Errorf("meta: %v", created.body["meta"])
			}
			sch, _ := created.body["schemas"].([]any)
			if len(sch) != 2 || sch[1] != enterprise {
				t.Errorf("schemas %v", sch)
			}
			for _, k := range []string{"externalId", "name", "emails", "active", "phoneNumbers", "addresses", "roles", enterprise} {
				if created.body[k] == nil {
					t.Errorf("%s did not round-trip", k)
				}
			}
			if str(ext(created.body), "manager.value") != "26118915" {
				t.Errorf("manager: %v", created.body[enterprise])
			}
		})
		t.Run("get", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/Users/"+id, nil).want(t, http.StatusOK)
			if r.header.Get("ETag") != `W/"1"` {
				t.Errorf("ETag %q", r.header.Get("ETag"))
			}
			delete(r.body, "meta")
			c := created.body
			delete(c, "meta")
			if !reflect.DeepEqual(r.body, c) {
				t.Errorf("GET differs from POST response:\n%v\n%v", r.body, c)
			}
			e.call("GET", "/scim/v2/Users/"+id, nil, "If-None-Match", `W/"1"`).want(t, http.StatusNotModified)
			e.call("GET", "/scim/v2/Users/"+id, nil, "If-None-Match", `W/"7"`).want(t, http.StatusOK)
			// "*" matches any current representation (RFC 7232 §3.2).
			e.call("GET", "/scim/v2/Users/"+id, nil, "If-None-Match", "*").want(t, http.StatusNotModified)
			e.call("GET", "/scim/v2/Users/"+strings.ToUpper(id), nil).want(t, http.StatusOK)
		})
		t.Run("put_replaces", func(t *testing.T) {
			r := e.call("PUT", "/scim/v2/Users/"+id, user("bjensen@example.com",
				"id", "ignored-readonly", "meta", map[string]any{"version": "bogus"}, "groups", []any{},
				"displayName", "Babs", "active", false)).want(t, http.StatusOK)
			if r.body["name"] != nil || r.body["emails"] != nil || r.body[enterprise] != nil {
				t.Errorf("PUT kept attributes it did not send: %s", r.raw)
			}
			if r.body["displayName"] != "Babs" || r.body["active"] != false || str(r.body, "id") != id {
				t.Errorf("PUT result: %s", r.raw)
			}
			if r.header.Get("ETag") != `W/"2"` {
				t.Errorf("ETag %q", r.header.Get("ETag"))
			}
		})
		t.Run("if_match", func(t *testing.T) {
			e.call("PUT", "/scim/v2/Users/"+id, user("bjensen@example.com"), "If-Match", `W/"1"`).wantError(t, http.StatusPreconditionFailed, "")
			e.call("PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", "active", true)), "If-Match", `W/"1"`).wantError(t, http.StatusPreconditionFailed, "")
			e.call("DELETE", "/scim/v2/Users/"+id, nil, "If-Match", `W/"1"`).wantError(t, http.StatusPreconditionFailed, "")
			r := e.call("PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", "active", true)), "If-Match", `W/"2"`).want(t, http.StatusOK)
			if r.header.Get("ETag") != `W/"3"` || r.body["active"] != true {
				t.Errorf("PATCH with matching If-Match: %s", r.raw)
			}
		})
		t.Run("delete", func(t *testing.T) {
			e.call("DELETE", "/scim/v2/Users/"+id, nil).want(t, http.StatusNoContent)
			e.call("GET", "/scim/v2/Users/"+id, nil).wantError(t, http.StatusNotFound, "")
			e.call("DELETE", "/scim/v2/Users/"+id, nil).wantError(t, http.StatusNotFound, "")
			e.call("PUT", "/scim/v2/Users/"+id, user("x")).wantError(t, http.StatusNotFound, "")
			e.call("PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", "active", true))).wantError(t, http.StatusNotFound, "")
		})
	})
}

func TestUserErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		id := str(e.call("POST", "/scim/v2/Users", user("taken@example.com")).want(t, http.StatusCreated).body, "id")
		big := `{"userName":"` + strings.Repeat("x", 70<<10) + `"}`
		cases := []struct {
			name, method, path string
			body               any
			hdr                []string
			status             int
			scimType           string
		}{
			{"duplicate_username_any_case", "POST", "/scim/v2/Users", user("TAKEN@example.com"), nil, 409, "uniqueness"},
			{"missing_username", "POST", "/scim/v2/Users", map[string]any{"displayName": "x"}, nil, 400, "invalidValue"},
			{"empty_username", "POST", "/scim/v2/Users", user("  "), nil, 400, "invalidValue"},
			{"wrong_type", "POST", "/scim/v2/Users", user("a", "active", 5), nil, 400, "invalidValue"},
			{"emails_not_array", "POST", "/scim/v2/Users", user("a", "emails", "x@y"), nil, 400, "invalidValue"},
			{"malformed_json", "POST", "/scim/v2/Users", `{"userName":`, nil, 400, "invalidSyntax"},
			{"json_array", "POST", "/scim/v2/Users", `[1,2]`, nil, 400, "invalidSyntax"},
			{"trailing_data", "POST", "/scim/v2/Users", `{"userName":"a"} {}`, nil, 400, "invalidSyntax"},
			{"empty_body", "POST", "/scim/v2/Users", ``, nil, 400, "invalidSyntax"},
			{"too_large", "POST", "/scim/v2/Users", big, nil, 413, ""},
			{"wrong_content_type", "POST", "/scim/v2/Users", `userName=a`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, ""},
			{"rename_to_taken", "PUT", "/scim/v2/Users/" + id, user("other@example.com"), nil, 200, ""},
			{"bad_filter", "GET", "/scim/v2/Users?filter=" + url.QueryEscape(`userName eq`), nil, nil, 400, "invalidFilter"},
			{"unknown_filter_attribute", "GET", "/scim/v2/Users?filter=" + url.QueryEscape(`shoeSize eq "9"`), nil, nil, 400, "invalidFilter"},
			{"boolean_ordering", "GET", "/scim/v2/Users?filter=" + url.QueryEscape(`active gt true`), nil, nil, 400, "invalidFilter"},
			{"string_vs_number", "GET", "/scim/v2/Users?filter=" + url.QueryEscape(`userName eq 5`), nil, nil, 400, "invalidFilter"},
			{"filter_too_long", "GET", "/scim/v2/Users?filter=" + url.QueryEscape(`userName eq "`+strings.Repeat("a", 5000)+`"`), nil, nil, 400, "invalidFilter"},
			{"bad_start_index", "GET", "/scim/v2/Users?startIndex=abc", nil, nil, 400, "invalidValue"},
			{"bad_count", "GET", "/scim/v2/Users?count=ten", nil, nil, 400, "invalidValue"},
			{"patch_unknown_path", "PATCH", "/scim/v2/Users/" + id, patchBody(op("replace", "shoeSize", "9")), nil, 400, "invalidPath"},
			{"patch_bad_path", "PATCH", "/scim/v2/Users/" + id, patchBody(op("replace", "emails[type eq", "9")), nil, 400, "invalidPath"},
			{"patch_remove_without_path", "PATCH", "/scim/v2/Users/" + id, patchBody(op("remove", "", nil)), nil, 400, "noTarget"},
			{"patch_readonly", "PATCH", "/scim/v2/Users/" + id, patchBody(op("add", "groups", []any{map[string]any{"value": "g"}})), nil, 400, "mutability"},
			{"patch_remove_required", "PATCH", "/scim/v2/Users/" + id, patchBody(op("remove", "userName", nil)), nil, 400, "invalidValue"},
			{"patch_wrong_value_type", "PATCH", "/scim/v2/Users/" + id, patchBody(op("replace", "active", []any{1})), nil, 400, "invalidValue"},
			{"patch_bad_op", "PATCH", "/scim/v2/Users/" + id, patchBody(op("move", "active", true)), nil, 400, "invalidSyntax"},
			{"patch_no_operations", "PATCH", "/scim/v2/Users/" + id, map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}}, nil, 400, "invalidSyntax"},
			{"patch_wrong_schema", "PATCH", "/scim/v2/Users/" + id, map[string]any{"schemas": []string{"urn:x"}, "Operations": []any{op("replace", "active", true)}}, nil, 400, "invalidSyntax"},
			{"patch_filter_wrong_type", "PATCH", "/scim/v2/Users/" + id, patchBody(op("replace", `emails[primary eq "yes"].value`, "a@b")), nil, 400, "invalidPath"},
			{"patch_filter_no_match", "PATCH", "/scim/v2/Users/" + id, patchBody(op("replace", `emails[type eq "work" or type eq "home"].value`, "a@b")), nil, 400, "noTarget"},
			{"bad_etag", "PUT", "/scim/v2/Users/" + id, user("other@example.com"), []string{"If-Match", `"nope"`}, 412, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := e.call(c.method, c.path, c.body, c.hdr...)
				if c.status < 300 {
					r.want(t, c.status)
					return
				}
				r.wantError(t, c.status, c.scimType)
			})
		}
		// The failed writes above changed nothing.
		r := e.call("GET", "/scim/v2/Users/"+id, nil).want(t, http.StatusOK)
		if r.body["userName"] != "other@example.com" || r.header.Get("ETag") != `W/"2"` {
			t.Errorf("after the refused writes: %s (ETag %s)", r.raw, r.header.Get("ETag"))
		}
		t.Run("rename_conflict", func(t *testing.T) {
			e.call("POST", "/scim/v2/Users", user("third@example.com")).want(t, http.StatusCreated)
			e.call("PUT", "/scim/v2/Users/"+id, user("Third@Example.com")).wantError(t, 409, "uniqueness")
			e.call("PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", "userName", "THIRD@example.com"))).wantError(t, 409, "uniqueness")
		})
	})
}

func TestUserPatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		id := str(e.call("POST", "/scim/v2/Users", user("pat@example.com",
			"active", true,
			"name", map[string]any{"givenName": "Pat", "familyName": "Doe"},
			"emails", []any{
				map[string]any{"value": "pat@work.example", "type": "work", "primary": true},
				map[string]any{"value": "pat@home.example", "type": "home"},
			},
		)).want(t, http.StatusCreated).body, "id")
		path := "/scim/v2/Users/" + id
		cases := []struct {
			name  string
			ops   []map[string]any
			check func(t *testing.T, b map[string]any)
		}{
			{"replace_without_path", []map[string]any{op("replace", "", map[string]any{"active": false})}, func(t *testing.T, b map[string]any) {
				if b["active"] != false {
					t.Errorf("active %v", b["active"])
				}
			}},
			{"capitalised_ops_and_string_booleans", []map[string]any{op("Replace", "active", "True")}, func(t *testing.T, b map[string]any) {
				if b["active"] != true {
					t.Errorf("active %v", b["active"])
				}
			}},
			{"sub_attribute", []map[string]any{op("replace", "name.familyName", "Smith")}, func(t *testing.T, b map[string]any) {
				if str(b, "name.familyName") != "Smith" || str(b, "name.givenName") != "Pat" {
					t.Errorf("name %v", b["name"])
				}
			}},
			{"complex_replace_merges", []map[string]any{op("replace", "name", map[string]any{"middleName": "Q"})}, func(t *testing.T, b map[string]any) {
				if str(b, "name.middleName") != "Q" || str(b, "name.familyName") != "Smith" {
					t.Errorf("name %v", b["name"])
				}
			}},
			{"value_path_sub_attribute", []map[string]any{op("replace", `emails[type eq "work"].value`, "pat@new.example")}, func(t *testing.T, b map[string]any) {
				em := b["emails"].([]any)
				if len(em) != 2 || em[0].(map[string]any)["value"] != "pat@new.example" || em[1].(map[string]any)["value"] != "pat@home.example" {
					t.Errorf("emails %v", em)
				}
			}},
			{"value_path_upsert", []map[string]any{op("add", `emails[type eq "other"].value`, "pat@other.example")}, func(t *testing.T, b map[string]any) {
				em := b["emails"].([]any)
				if len(em) != 3 || em[2].(map[string]any)["type"] != "other" || em[2].(map[string]any)["value"] != "pat@other.example" {
					t.Errorf("emails %v", em)
				}
			}},
			{"add_to_multi_valued_no_duplicates", []map[string]any{
				op("add", "phoneNumbers", []any{map[string]any{"value": "+1", "type": "work"}}),
				op("add", "phoneNumbers", []any{map[string]any{"value": "+1", "type": "work"}}),
			}, func(t *testing.T, b map[string]any) {
				if ph := b["phoneNumbers"].([]any); len(ph) != 1 {
					t.Errorf("phoneNumbers %v", ph)
				}
			}},
			{"one_primary", []map[string]any{op("add", "emails", []any{map[string]any{"value": "p2@x", "type": "home", "primary": true}})}, func(t *testing.T, b map[string]any) {
				n := 0
				for _, em := range b["emails"].([]any) {
					if em.(map[string]any)["primary"] == true {
						n++
						if em.(map[string]any)["value"] != "p2@x" {
							t.Errorf("the newest primary should win: %v", em)
						}
					}
				}
				if n != 1 {
					t.Errorf("%d primary emails", n)
				}
			}},
			{"remove_by_filter", []map[string]any{op("remove", `emails[type eq "home"]`, nil)}, func(t *testing.T, b map[string]any) {
				for _, em := range b["emails"].([]any) {
					if em.(map[string]any)["type"] == "home" {
						t.Errorf("home email left: %v", b["emails"])
					}
				}
			}},
			{"extension_path", []map[string]any{op("add", enterprise+":employeeNumber", "42"), op("replace", enterprise+":manager", "boss-id")}, func(t *testing.T, b map[string]any) {
				if str(ext(b), "employeeNumber") != "42" || str(ext(b), "manager.value") != "boss-id" {
					t.Errorf("extension %v", b[enterprise])
				}
			}},
			{"extension_in_value_without_path", []map[string]any{op("replace", "", map[string]any{
				enterprise:       map[string]any{"department": "R&D"},
				"name.givenName": "Patricia",
			})}, func(t *testing.T, b map[string]any) {
				if str(ext(b), "department") != "R&D" || str(ext(b), "employeeNumber") != "42" || str(b, "name.givenName") != "Patricia" {
					t.Errorf("got %v / %v", b[enterprise], b["name"])
				}
			}},
			{"remove_attribute", []map[string]any{op("remove", "phoneNumbers", nil), op("remove", "name.middleName", nil)}, func(t *testing.T, b map[string]any) {
				if b["phoneNumbers"] != nil || str(b, "name.middleName") != "" {
					t.Errorf("left: %v %v", b["phoneNumbers"], b["name"])
				}
			}},
			{"password_is_write_only", []map[string]any{op("replace", "password", "n3w-Secret!")}, func(t *testing.T, b map[string]any) {
				if b["password"] != nil {
					t.Error("password returned")
				}
			}},
		}
		version := 1
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := e.call("PATCH", path, patchBody(c.ops...)).want(t, http.StatusOK)
				version++
				if r.header.Get("ETag") != `W/"`+itoa(version)+`"` {
					t.Errorf("ETag %s, want version %d", r.header.Get("ETag"), version)
				}
				c.check(t, r.body)
				g := e.call("GET", path, nil).want(t, http.StatusOK)
				delete(g.body, "meta")
				delete(r.body, "meta")
				if !reflect.DeepEqual(g.body, r.body) {
					t.Errorf("PATCH response and GET differ:\n%v\n%v", r.body, g.body)
				}
			})
		}
		t.Run("atomic", func(t *testing.T) {
			before := e.call("GET", path, nil).want(t, http.StatusOK)
			// The second operation fails, so the first must not stick either.
			e.call("PATCH", path, patchBody(op("replace", "displayName", "Changed"), op("replace", "nope", 1))).wantError(t, 400, "invalidPath")
			after := e.call("GET", path, nil).want(t, http.StatusOK)
			if !reflect.DeepEqual(before.body, after.body) {
				t.Errorf("a failed PATCH changed the resource:\n%v\n%v", before.body, after.body)
			}
		})
	})
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// ext returns the enterprise extension object of a User body.
func ext(b map[string]any) map[string]any {
	m, _ := b[enterprise].(map[string]any)
	return m
}

// TestReadOnlySubAttributesIgnored: a readOnly sub-attribute a client gives in a POST
// or PUT body, the enterprise manager's displayName (RFC 7643 §4.3), is ignored as RFC
// 7644 §3.3 and §3.5.1 say, not stored; the writable parts of the same value are.
func TestReadOnlySubAttributesIgnored(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		manager := map[string]any{"value": "m-1", "displayName": "Boss"}
		body := user("ro@example.com", enterprise, map[string]any{"department": "Tours", "manager": manager})
		r := e.call("POST", "/scim/v2/Users", body).want(t, 201)
		id := str(r.body, "id")
		check := func(step string, doc map[string]any) {
			t.Helper()
			ext, _ := doc[enterprise].(map[string]any)
			m, _ := ext["manager"].(map[string]any)
			if m["value"] != "m-1" || ext["department"] != "Tours" {
				t.Errorf("%s: the writable parts were not kept: %v", step, ext)
			}
			if _, ok := m["displayName"]; ok {
				t.Errorf("%s: manager.displayName was stored: %v", step, m)
			}
		}
		check("POST answer", r.body)
		check("GET after POST", e.call("GET", "/scim/v2/Users/"+id, nil).want(t, 200).body)
		body[enterprise].(map[string]any)["manager"] = map[string]any{"value": "m-1", "DisplayName": "Other"}
		check("PUT answer", e.call("PUT", "/scim/v2/Users/"+id, body).want(t, 200).body)
		check("GET after PUT", e.call("GET", "/scim/v2/Users/"+id, nil).want(t, 200).body)
	})
}
