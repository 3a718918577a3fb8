package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/scimd/scimd/scim"
)

// The scope × route matrix: every route the server serves, under every kind of
// token (each scope alone, all scopes, sandbox tokens, a token with no scope, no
// credentials), answers the expected class — allowed, 401 or 403. Sandbox tokens
// are read-only on every family: SCIM (Bulk and /Me included; searches are reads),
// the compatibility APIs and the admin API. The routes are enumerated from the real
// handler, so a route without a row fails the test.

// mxToken is one kind of credentials.
type mxToken struct {
	name    string
	scopes  []string
	sandbox bool
	missing bool // no credentials at all
}

// mxAuth is how a family presents its token.
type mxAuth int

const (
	mxBearer     mxAuth = iota // Authorization: Bearer
	mxPartner                  // Authorization: Token
	mxPlatform                 // Bearer and x-app-token, both the same token
	mxSuperBody                // {"key": …} in the JSON body
	mxSuperQuery               // ?key=…
	mxPublic                   // no credentials; the answer is the same for everyone
)

// mxRow is one request to one route.
type mxRow struct {
	route  string   // as servedRoutes lists it
	method string   // of the request
	scopes []string // any of these scopes opens the route
	write  bool     // a change: sandbox tokens are refused
	auth   mxAuth
	public int // for mxPublic: the status every caller gets
	// req returns the path and body (nil, a string sent as is, or a value sent as
	// JSON) for one token; key is the token's secret ("" when missing).
	req func(t *testing.T, tok, key string) (string, any)
}

func TestScopeMatrix(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		newMailEnv(t, e, "", scim.OutboxOptions{}) // serves the account pages too
		ctx := context.Background()
		kinds := []mxToken{
			{name: "scim", scopes: []string{scim.ScopeSCIM}},
			{name: "compat", scopes: []string{scim.ScopeCompat}},
			{name: "admin", scopes: []string{scim.ScopeAdmin}},
			{name: "audit", scopes: []string{scim.ScopeAudit}},
			{name: "all", scopes: scim.AllScopes},
			{name: "sandbox_scim", scopes: []string{scim.ScopeSCIM}, sandbox: true},
			{name: "sandbox_compat", scopes: []string{scim.ScopeCompat}, sandbox: true},
			{name: "sandbox_admin", scopes: []string{scim.ScopeAdmin}, sandbox: true},
			{name: "sandbox_all", scopes: scim.AllScopes, sandbox: true},
			{name: "no_scope", scopes: []string{}},
			{name: "no_credentials", missing: true},
		}
		secrets := map[string]string{}
		for _, k := range kinds {
			if k.missing {
				continue
			}
			s, err := e.tokens.Issue(ctx, scim.DefaultTenant, scim.TokenOptions{Scopes: k.scopes, Sandbox: k.sandbox})
			if err != nil {
				t.Fatal(err)
			}
			secrets[k.name] = s
		}
		// fresh makes a resource through the default token and returns its id.
		fresh := func(t *testing.T, path string, body any) string {
			t.Helper()
			return str(e.call("POST", path, body).want(t, http.StatusCreated).body, "id")
		}
		// A user's own token, as POST /users issues it, for the verify route.
		var created struct{ Token string }
		if err := json.Unmarshal([]byte(e.call("POST", "/users", map[string]any{"email": "verified@example.com"}, "Content-Type", "application/json").want(t, http.StatusCreated).raw), &created); err != nil || created.Token == "" {
			t.Fatalf("POST /users: token %q, %v", created.Token, err)
		}
		userToken := created.Token
		n := 0
		uniq := func(tok string) string {
			n++
			return fmt.Sprintf("mx%03d-%s@example.com", n, strings.ReplaceAll(tok, "_", "-"))
		}
		fixed := func(path string, body any) func(*testing.T, string, string) (string, any) {
			return func(*testing.T, string, string) (string, any) { return path, body }
		}
		scimScope, compatScope, adminScope := []string{scim.ScopeSCIM}, []string{scim.ScopeCompat}, []string{scim.ScopeAdmin}
		scimRow := func(route, method string, write bool, req func(*testing.T, string, string) (string, any)) mxRow {
			return mxRow{route: route, method: method, scopes: scimScope, write: write, auth: mxBearer, req: req}
		}
		public := func(route, method, path string, status int) mxRow {
			return mxRow{route: route, method: method, auth: mxPublic, public: status, req: fixed(path, nil)}
		}
		search := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}, "count": 1}
		onboardingEntry := func(email string) string {
			return `[{"email":"` + email + `","firstName":"A","lastName":"B","roles":["Scheduler"]}]`
		}

		rows := []mxRow{
			// SCIM: scope scim; a sandbox token only reads.
			scimRow("GET /scim/v2/ServiceProviderConfig", "GET", false, fixed("/scim/v2/ServiceProviderConfig", nil)),
			scimRow("GET /scim/v2/ResourceTypes", "GET", false, fixed("/scim/v2/ResourceTypes", nil)),
			scimRow("GET /scim/v2/ResourceTypes/{id}", "GET", false, fixed("/scim/v2/ResourceTypes/User", nil)),
			scimRow("GET /scim/v2/Schemas", "GET", false, fixed("/scim/v2/Schemas", nil)),
			scimRow("GET /scim/v2/Schemas/{id}", "GET", false, fixed("/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", nil)),
			scimRow("GET /scim/v2/{$}", "GET", false, fixed("/scim/v2/", nil)),
			scimRow("POST /scim/v2/.search", "POST", false, fixed("/scim/v2/.search", search)),
			scimRow("* /scim/v2/", "GET", false, fixed("/scim/v2/Nope", nil)),
			scimRow("* /scim/v2/", "POST", true, fixed("/scim/v2/Nope", map[string]any{})),
			scimRow("GET /scim/v2/Users", "GET", false, fixed("/scim/v2/Users?count=1", nil)),
			scimRow("POST /scim/v2/Users", "POST", true, func(_ *testing.T, tok, _ string) (string, any) {
				return "/scim/v2/Users", user(uniq(tok))
			}),
			scimRow("POST /scim/v2/Users/.search", "POST", false, fixed("/scim/v2/Users/.search", search)),
			scimRow("GET /scim/v2/Users/{id}", "GET", false, func(t *testing.T, _, _ string) (string, any) {
				return "/scim/v2/Users/" + fresh(t, "/scim/v2/Users", user(uniq("get"))), nil
			}),
			scimRow("PUT /scim/v2/Users/{id}", "PUT", true, func(t *testing.T, _, _ string) (string, any) {
				name := uniq("put")
				return "/scim/v2/Users/" + fresh(t, "/scim/v2/Users", user(name)), user(name, "displayName", "Put")
			}),
			scimRow("PATCH /scim/v2/Users/{id}", "PATCH", true, func(t *testing.T, _, _ string) (string, any) {
				return "/scim/v2/Users/" + fresh(t, "/scim/v2/Users", user(uniq("patch"))), patchBody(op("replace", "displayName", "Patched"))
			}),
			scimRow("DELETE /scim/v2/Users/{id}", "DELETE", true, func(t *testing.T, _, _ string) (string, any) {
				return "/scim/v2/Users/" + fresh(t, "/scim/v2/Users", user(uniq("delete"))), nil
			}),
			scimRow("GET /scim/v2/Groups", "GET", false, fixed("/scim/v2/Groups?count=1", nil)),
			scimRow("POST /scim/v2/Groups", "POST", true, func(_ *testing.T, tok, _ string) (string, any) {
				return "/scim/v2/Groups", map[string]any{"displayName": uniq(tok)}
			}),
			scimRow("POST /scim/v2/Groups/.search", "POST", false, fixed("/scim/v2/Groups/.search", search)),
			scimRow("GET /scim/v2/Groups/{id}", "GET", false, func(t *testing.T, _, _ string) (string, any) {
				return "/scim/v2/Groups/" + fresh(t, "/scim/v2/Groups", map[string]any{"displayName": uniq("g")}), nil
			}),
			scimRow("PUT /scim/v2/Groups/{id}", "PUT", true, func(t *testing.T, _, _ string) (string, any) {
				name := uniq("gput")
				return "/scim/v2/Groups/" + fresh(t, "/scim/v2/Groups", map[string]any{"displayName": name}), map[string]any{"displayName": name + "-2"}
			}),
			scimRow("PATCH /scim/v2/Groups/{id}", "PATCH", true, func(t *testing.T, _, _ string) (string, any) {
				return "/scim/v2/Groups/" + fresh(t, "/scim/v2/Groups", map[string]any{"displayName": uniq("gpatch")}), patchBody(op("replace", "displayName", uniq("gp")))
			}),
			scimRow("DELETE /scim/v2/Groups/{id}", "DELETE", true, func(t *testing.T, _, _ string) (string, any) {
				return "/scim/v2/Groups/" + fresh(t, "/scim/v2/Groups", map[string]any{"displayName": uniq("gdelete")}), nil
			}),
			// /Me answers 501 for a token bound to no user: allowed, not refused.
			scimRow("GET /scim/v2/Me", "GET", false, fixed("/scim/v2/Me", nil)),
			scimRow("PUT /scim/v2/Me", "PUT", true, fixed("/scim/v2/Me", user("me@example.com"))),
			scimRow("PATCH /scim/v2/Me", "PATCH", true, fixed("/scim/v2/Me", patchBody(op("replace", "displayName", "Me")))),
			scimRow("DELETE /scim/v2/Me", "DELETE", true, fixed("/scim/v2/Me", nil)),
			scimRow("POST /scim/v2/Me", "POST", true, fixed("/scim/v2/Me", user("me@example.com"))),
			scimRow("POST /scim/v2/Bulk", "POST", true, func(_ *testing.T, tok, _ string) (string, any) {
				return "/scim/v2/Bulk", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"},
					"Operations": []any{map[string]any{"method": "POST", "path": "/Users", "bulkId": "b", "data": user(uniq(tok))}}}
			}),

			// Partner provisioning: scope compat; both actions change data.
			{route: partnerPath, method: "POST", scopes: compatScope, write: true, auth: mxPartner, req: func(_ *testing.T, tok, _ string) (string, any) {
				return partnerPath, partnerProvisionBody(uniq(tok), "https://partner.example/")
			}},
			{route: partnerPath, method: "POST", scopes: compatScope, write: true, auth: mxPartner,
				req: fixed(partnerPath, map[string]any{"action": "deprovision", "email": "nobody@example.com"})},
			{route: partnerAlias, method: "POST", scopes: compatScope, write: true, auth: mxPartner, req: func(_ *testing.T, tok, _ string) (string, any) {
				return partnerAlias, partnerProvisionBody(uniq(tok), "https://partner.example/")
			}},

			// The administration service: scope admin; verify and reads are reads.
			{route: "/users", method: "GET", scopes: adminScope, auth: mxBearer, req: fixed("/users", nil)},
			{route: "/users", method: "POST", scopes: adminScope, write: true, auth: mxBearer, req: func(_ *testing.T, tok, _ string) (string, any) {
				return "/users", map[string]any{"email": uniq(tok), "credits": 1}
			}},
			{route: "/users", method: "PATCH", scopes: adminScope, write: true, auth: mxBearer, req: fixed("/users", map[string]any{"email": "nobody@example.com", "credits": 1})},
			{route: "/users", method: "DELETE", scopes: adminScope, write: true, auth: mxBearer, req: fixed("/users?email=nobody%40example.com", nil)},
			{route: "/users/{email}", method: "GET", scopes: adminScope, auth: mxBearer, req: fixed("/users/nobody@example.com", nil)},
			{route: "/users/verify", method: "POST", scopes: adminScope, auth: mxBearer, req: fixed("/users/verify", map[string]any{"token": userToken})},

			// Platform provisioning: scope compat on both tokens; every route changes data.
			{route: "/scim/provision-user", method: "POST", scopes: compatScope, write: true, auth: mxPlatform, req: func(_ *testing.T, tok, _ string) (string, any) {
				email := uniq(tok)
				return "/scim/provision-user", platformSample(strings.TrimSuffix(email, "@example.com"), email)
			}},
			{route: "/scim/update-user/{email}", method: "PUT", scopes: compatScope, write: true, auth: mxPlatform,
				req: fixed("/scim/update-user/nobody@example.com", map[string]any{"firstName": "X"})},
			{route: "/scim/update-user/{$}", method: "PUT", scopes: compatScope, write: true, auth: mxPlatform,
				req: fixed("/scim/update-user/", map[string]any{"firstName": "X"})},
			{route: "/scim/de-provision-user/{email}", method: "DELETE", scopes: compatScope, write: true, auth: mxPlatform,
				req: fixed("/scim/de-provision-user/nobody@example.com", nil)},
			{route: "/scim/de-provision-user/{$}", method: "DELETE", scopes: compatScope, write: true, auth: mxPlatform,
				req: fixed("/scim/de-provision-user/", nil)},

			// Superuser management: scope admin, the key in the body or the query;
			// the reports are reads.
			{route: "POST /api/v1/create_user", method: "POST", scopes: adminScope, write: true, auth: mxSuperBody, req: func(_ *testing.T, tok, key string) (string, any) {
				return "/api/v1/create_user", map[string]any{"key": key, "email": uniq(tok), "first_name": "A", "last_name": "B", "password": "a-password-1"}
			}},
			{route: "POST /create_user", method: "POST", scopes: adminScope, write: true, auth: mxSuperBody, req: func(_ *testing.T, tok, key string) (string, any) {
				return "/create_user", map[string]any{"key": key, "email": uniq(tok), "first_name": "A", "last_name": "B", "password": "a-password-1"}
			}},
			{route: "POST /api/v1/delete_user", method: "POST", scopes: adminScope, write: true, auth: mxSuperBody, req: func(_ *testing.T, _, key string) (string, any) {
				return "/api/v1/delete_user", map[string]any{"key": key, "email": "nobody@example.com"}
			}},
			{route: "POST /delete_user", method: "POST", scopes: adminScope, write: true, auth: mxSuperBody, req: func(_ *testing.T, _, key string) (string, any) {
				return "/delete_user", map[string]any{"key": key, "email": "nobody@example.com"}
			}},
			{route: "GET /api/v1/user/nonteam", method: "GET", scopes: adminScope, auth: mxSuperQuery, req: func(_ *testing.T, _, key string) (string, any) {
				return "/api/v1/user/nonteam?key=" + url.QueryEscape(key), nil
			}},
			{route: "GET /api/v1/user/count", method: "GET", scopes: adminScope, auth: mxSuperQuery, req: func(_ *testing.T, _, key string) (string, any) {
				return "/api/v1/user/count?key=" + url.QueryEscape(key), nil
			}},
			public("/api/v1/create_user", "GET", "/api/v1/create_user", 405),
			public("/create_user", "GET", "/create_user", 405),
			public("/api/v1/delete_user", "GET", "/api/v1/delete_user", 405),
			public("/delete_user", "GET", "/delete_user", 405),
			public("/api/v1/user/nonteam", "POST", "/api/v1/user/nonteam", 405),
			public("/api/v1/user/count", "POST", "/api/v1/user/count", 405),

			// Onboarding: scope compat; the task report is a read.
			{route: "POST " + onboardingUsers, method: "POST", scopes: compatScope, write: true, auth: mxBearer, req: func(_ *testing.T, tok, _ string) (string, any) {
				return onboardingUsers, onboardingEntry(uniq(tok))
			}},
			{route: "PATCH " + onboardingUsers, method: "PATCH", scopes: compatScope, write: true, auth: mxBearer, req: fixed(onboardingUsers, onboardingEntry("nobody@example.com"))},
			{route: "GET " + onboardingTasks + "{taskId}", method: "GET", scopes: compatScope, auth: mxBearer, req: fixed(onboardingTasks+"00000000-0000-4000-8000-0000000000ff", nil)},
			public(onboardingUsers, "GET", onboardingUsers, 405),
			public(onboardingTasks+"{taskId}", "DELETE", onboardingTasks+"1", 405),

			// The admin API: the audit log, read with scope audit or admin.
			{route: "/admin/v1/", method: "GET", scopes: []string{scim.ScopeAudit, scim.ScopeAdmin}, auth: mxBearer, req: fixed("/admin/v1/audit?limit=1", nil)},

			// Health and the account pages take no tenant credentials.
			public("GET /healthz", "GET", "/healthz", 200),
			public("GET /readyz", "GET", "/readyz", 200),
			public("GET "+scim.SetPasswordPath, "GET", scim.SetPasswordPath+"?token=unknown", 410),
			public("POST "+scim.SetPasswordPath, "POST", scim.SetPasswordPath, 403),
			public("GET "+scim.VerifyEmailPath, "GET", scim.VerifyEmailPath+"?token=unknown", 410),
			public("POST "+scim.VerifyEmailPath, "POST", scim.VerifyEmailPath, 403),
		}

		// Every route the handler serves has a row, and every row names one.
		named := make([]string, len(rows))
		for i, r := range rows {
			named[i] = r.route
		}
		requireEveryRoute(t, servedRoutes(e), named, "a row of the scope matrix")

		for _, row := range rows {
			t.Run(strings.NewReplacer(" ", "_", "/", "_").Replace(row.route)+"/"+row.method, func(t *testing.T) {
				for i, k := range kinds {
					if row.auth == mxPublic && i > 0 {
						break // no credentials are sent: one call says it (and spares the pages' rate limit)
					}
					t.Run(k.name, func(t *testing.T) {
						key := secrets[k.name]
						path, body := row.req(t, k.name, key)
						var hdr []string
						auth := ""
						switch row.auth {
						case mxBearer:
							if !k.missing {
								auth = "Bearer " + key
							}
						case mxPartner:
							if !k.missing {
								auth = "Token " + key
							}
						case mxPlatform:
							if !k.missing {
								auth = "Bearer " + key
								hdr = append(hdr, "X-App-Token", key)
							}
						}
						ct := "application/json"
						if strings.HasPrefix(path, "/scim/v2/") {
							ct = "application/scim+json"
						}
						if row.auth == mxPublic && row.method == "POST" {
							body, ct = "token=unknown&csrf=x", "application/x-www-form-urlencoded"
						}
						status, _, raw := roundTrip(t, e.newRequest(t, row.method, path, body, ct, auth, hdr...))
						want, sandboxed := "allowed", false
						switch {
						case row.auth == mxPublic:
							if status != row.public {
								t.Fatalf("%s %s: status %d, want %d for every caller; body %s", row.method, path, status, row.public, raw)
							}
							return
						case k.missing:
							want = "401"
						case !slices.ContainsFunc(row.scopes, func(s string) bool { return slices.Contains(k.scopes, s) }):
							want = "403"
						case k.sandbox && row.write:
							want, sandboxed = "403", true
						}
						got := "allowed"
						switch status {
						case http.StatusUnauthorized:
							got = "401"
						case http.StatusForbidden:
							got = "403"
						case http.StatusInternalServerError:
							got = "500"
						}
						if got != want {
							t.Fatalf("%s %s with a %s token: status %d (%s), want %s; body %s", row.method, path, k.name, status, got, want, raw)
						}
						if sandboxed && strings.HasPrefix(path, "/scim/v2") {
							// SCIM's error schema (RFC 7644 §3.12), saying why.
							if !strings.Contains(string(raw), `"status":"403"`) || !strings.Contains(string(raw), "read-only") {
								t.Errorf("sandbox refusal is not a SCIM error saying the token is read-only: %s", raw)
							}
						}
					})
				}
			})
		}
	})
}
