package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
)

// TestClientProfiles: each quirk is read for profiles that accept it, counted and
// logged, and refused with a precise 400 by the strict profile.
func TestClientProfiles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		token := func(profile string) string {
			s, err := e.tokens.Issue(ctx, "default", scim.TokenOptions{Scopes: []string{"scim"}, Profile: profile})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		// The default profile, issued by its former name "lenient" as well.
		strict, tolerant, entra, okta := token("strict"), token("lenient"), token("entra"), token("okta")
		if _, err := e.tokens.Issue(ctx, "default", scim.TokenOptions{Scopes: []string{"scim"}, Profile: "azure"}); err == nil {
			t.Error("an unknown profile was accepted")
		}
		uid := str(e.call("POST", "/scim/v2/Users", user("quirky@example.com",
			"emails", []any{map[string]any{"value": "q@home", "type": "home"}})).want(t, 201).body, "id")
		gid := str(e.call("POST", "/scim/v2/Groups", group("Quirky", uid)).want(t, 201).body, "id")
		other := str(e.call("POST", "/scim/v2/Users", user("other@example.com")).want(t, 201).body, "id")
		cases := []struct {
			quirk        scim.Quirk
			method, path string
			body         any
			entra, okta  bool // accepted by that profile
			strictType   string
			// refusedByDefault: the quirk changes the result of a request RFC 7644
			// defines, so the default profile (rfc-tolerant) answers as strict does.
			refusedByDefault bool
		}{
			{scim.QuirkOpCase, "PATCH", "/scim/v2/Users/" + uid, patchBody(op("Replace", "active", true)), true, false, "invalidSyntax", false},
			{scim.QuirkStringBoolean, "PATCH", "/scim/v2/Users/" + uid, patchBody(op("replace", "active", "False")), true, false, "invalidValue", false},
			{scim.QuirkDottedKey, "PATCH", "/scim/v2/Users/" + uid, patchBody(op("replace", "", map[string]any{"name.givenName": "Q"})), true, false, "invalidPath", false},
			{scim.QuirkURNKey, "PATCH", "/scim/v2/Users/" + uid, patchBody(op("replace", "", map[string]any{enterprise + ":department": "D"})), true, false, "invalidPath", false},
			{scim.QuirkValuePathUpsert, "PATCH", "/scim/v2/Users/" + uid, patchBody(op("replace", `emails[type eq "work"].value`, "q@work")), true, false, "noTarget", true},
			{scim.QuirkBareReference, "PATCH", "/scim/v2/Users/" + uid, patchBody(op("replace", enterprise+":manager", other)), true, false, "invalidValue", false},
			{scim.QuirkRemoveWithValue, "PATCH", "/scim/v2/Groups/" + gid, patchBody(op("remove", "members", []any{map[string]any{"value": other}})), true, false, "invalidValue", false},
			{scim.QuirkStringNumber, "PATCH", "/scim/v2/Users/" + uid, patchBody(op("replace", schemas.ScimdUserURN+":credits", "5")), true, false, "invalidValue", false},
			{scim.QuirkSingleValue, "PATCH", "/scim/v2/Users/" + uid, patchBody(op("add", "phoneNumbers", map[string]any{"value": "+1"})), true, true, "invalidValue", false},
			{scim.QuirkBareMember, "PATCH", "/scim/v2/Groups/" + gid, patchBody(op("add", "members", []any{other})), false, false, "invalidValue", false},
			{scim.QuirkMissingSchemas, "POST", "/scim/v2/Users", map[string]any{"userName": "noschemas@example.com"}, false, false, "invalidSyntax", false},
			{scim.QuirkUnknownSchema, "POST", "/scim/v2/Groups", map[string]any{"displayName": "G",
				"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"}}, true, false, "invalidValue", true},
			{scim.QuirkFilterSubAttribute, "GET", "/scim/v2/Users?filter=" + url.QueryEscape(`emails[type eq "home"].value eq "q@home"`), nil, true, false, "invalidFilter", false},
		}
		for _, c := range cases {
			t.Run(string(c.quirk), func(t *testing.T) {
				// A PATCH of the same resource run before each try, so every profile
				// meets the same state.
				resets := map[scim.Quirk]map[string]any{
					scim.QuirkValuePathUpsert: patchBody(op("remove", `emails[type eq "work"]`, nil)),
				}
				reset := func() {
					if body, ok := resets[c.quirk]; ok {
						e.call("PATCH", c.path, body).want(t, 200)
					}
				}
				reset()
				r := e.callAs(strict, c.method, c.path, c.body)
				r.wantError(t, 400, c.strictType)
				if d := str(r.body, "detail"); !strings.Contains(d, string(c.quirk)) || !strings.Contains(d, `"strict"`) {
					t.Errorf("strict detail should name the quirk and the profile: %q", d)
				}
				for _, p := range []struct {
					name, token string
					accepts     bool
				}{{"entra", entra, c.entra}, {"okta", okta, c.okta}} {
					reset()
					r := e.callAs(p.token, c.method, c.path, c.body)
					if p.accepts && r.status >= 300 || !p.accepts && r.status != 400 {
						t.Errorf("profile %s: status %d: %s", p.name, r.status, r.raw)
					}
				}
				if c.quirk == scim.QuirkMissingSchemas {
					c.body.(map[string]any)["userName"] = "noschemas2@example.com"
				}
				reset()
				r = e.callAs(tolerant, c.method, c.path, c.body)
				if c.refusedByDefault {
					r.wantError(t, 400, c.strictType)
					if d := str(r.body, "detail"); !strings.Contains(d, string(c.quirk)) || !strings.Contains(d, `"rfc-tolerant"`) {
						t.Errorf("rfc-tolerant detail should name the quirk and the profile: %q", d)
					}
					return
				}
				if r.status >= 300 {
					t.Fatalf("rfc-tolerant: %d %s", r.status, r.raw)
				}
				logged := false
				for _, l := range e.logs.FilterMessage("client quirks applied").All() {
					f := l.ContextMap()
					if f["request_id"] == r.header.Get("X-Request-Id") && strings.Contains(strings.Join(toStrings(f["quirks"]), ","), string(c.quirk)) {
						logged = true
					}
				}
				if !logged {
					t.Errorf("no log line with the request id names quirk %s", c.quirk)
				}
				// Recording the quirks succeeded: nothing for an operator's alerts.
				for _, l := range e.logs.All() {
					if l.Level >= zapcore.WarnLevel && l.ContextMap()["request_id"] == r.header.Get("X-Request-Id") {
						t.Errorf("logged %s %q for a request that succeeded", l.Level, l.Message)
					}
				}
			})
		}
		t.Run("report", func(t *testing.T) {
			var out strings.Builder
			if err := tenantReport(ctx, e.svc, "default", &out); err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				if !strings.Contains(out.String(), string(c.quirk)) {
					t.Errorf("report lacks %s:\n%s", c.quirk, out.String())
				}
			}
			if !strings.Contains(out.String(), "rfc-tolerant") || !strings.Contains(out.String(), "entra") {
				t.Errorf("report lacks profiles:\n%s", out.String())
			}
		})
		t.Run("rfc_requests_record_nothing", func(t *testing.T) {
			before := len(e.logs.FilterMessage("client quirks applied").All())
			e.callAs(strict, "PATCH", "/scim/v2/Users/"+uid, patchBody(op("replace", "active", true))).want(t, http.StatusOK)
			if after := len(e.logs.FilterMessage("client quirks applied").All()); after != before {
				t.Errorf("an RFC request logged quirks")
			}
		})
	})
}

func toStrings(v any) []string {
	switch t := v.(type) {
	case []string:
		return t
	case []any:
		var out []string
		for _, x := range t {
			out = append(out, x.(string))
		}
		return out
	}
	return nil
}
