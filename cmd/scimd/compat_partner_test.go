package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/compat"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/gormstore"
	pgstore "github.com/scimd/scimd/store/postgres"
	"github.com/scimd/scimd/store/storetest"
)

// Tests of the partner provisioning family (compat/CONTRACT.md, partner.*): POST
// /v1/pine/partner/provision-user and its alias POST /provision-user.

const (
	partnerPath  = "/v1/pine/partner/provision-user"
	partnerAlias = "/provision-user"
)

// partnerCall sends a request with "Authorization: Token <token>" (none when token
// is ""); body is a string sent as is or a value sent as JSON. JSON answers are
// decoded into resp.body.
func partnerCall(t *testing.T, e *env, token, method, path string, body any, hdr ...string) resp {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Token " + token
	}
	return partnerDo(t, e.newRequest(t, method, path, body, "application/json", auth, hdr...))
}

func partnerDo(t *testing.T, req *http.Request) resp {
	t.Helper()
	status, header, raw := roundTrip(t, req)
	r := resp{status: status, header: header, raw: string(raw)}
	if ct := header.Get("Content-Type"); len(raw) > 0 && strings.HasPrefix(ct, "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: response is not a JSON object: %v\n%s", req.Method, req.URL.Path, err, raw)
		}
	}
	return r
}

// partnerWantError checks the family's error shape: {"error": code, "message": text}.
func partnerWantError(t *testing.T, r resp, status int, code string) {
	t.Helper()
	r.want(t, status)
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("error Content-Type %q, want application/json", got)
	}
	if got, _ := r.body["error"].(string); got != code {
		t.Errorf("error %q, want %q; body %s", got, code, r.raw)
	}
	if m, _ := r.body["message"].(string); m == "" {
		t.Errorf("error without message: %s", r.raw)
	}
	if len(r.body) != 2 {
		t.Errorf("error body has fields beyond error and message: %s", r.raw)
	}
}

// partnerProvisionBody is a provision call's body.
func partnerProvisionBody(email, resultURL string) map[string]any {
	return map[string]any{"action": "provision", "email": email, "result_url": resultURL}
}

// partnerTenantID returns the id of a tenant by name.
func partnerTenantID(t *testing.T, e *env, name string) string {
	t.Helper()
	tn, err := e.st.TenantByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

// partnerIssue makes a token of the named tenant.
func partnerIssue(t *testing.T, e *env, tenant string, o scim.TokenOptions) string {
	t.Helper()
	secret, err := e.tokens.Issue(context.Background(), tenant, o)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// partnerSet applies tenant settings (scimd tenant set).
func partnerSet(t *testing.T, e *env, tenant string, pairs ...string) {
	t.Helper()
	if _, err := e.tokens.SetTenant(context.Background(), tenant, pairs); err != nil {
		t.Fatal(err)
	}
}

// partnerSCIMUser reads the user whose userName is email through /scim/v2 with a
// Bearer token of its tenant; nil when there is none.
func partnerSCIMUser(t *testing.T, e *env, bearer, email string) map[string]any {
	t.Helper()
	r := e.callAs(bearer, "GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "`+email+`"`), nil).want(t, http.StatusOK)
	list, _ := r.body["Resources"].([]any)
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0].(map[string]any)
	}
	t.Fatalf("%d users named %s: %s", len(list), email, r.raw)
	return nil
}

// partnerOutbox returns a tenant's queued messages.
func partnerOutbox(t *testing.T, e *env, tenantID string) []scim.Message {
	t.Helper()
	msgs, err := e.st.Outbox(context.Background(), tenantID)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// partnerCheckMessage checks one queued set_password message.
func partnerCheckMessage(t *testing.T, m scim.Message, userID, email, resultURL string) {
	t.Helper()
	if m.Kind != "set_password" || compat.PartnerMessageKind != "set_password" {
		t.Errorf("message kind %q, want set_password", m.Kind)
	}
	if m.Recipient != email || m.UserID != userID || m.Status != "pending" {
		t.Errorf("message to %q for user %q status %q, want %q for %q pending", m.Recipient, m.UserID, m.Status, email, userID)
	}
	var payload map[string]any
	if err := json.Unmarshal(m.Payload, &payload); err != nil {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	if payload["result_url"] != resultURL {
		t.Errorf("payload %s, want result_url %q", m.Payload, resultURL)
	}
}

// ---- golden cases (testdata/compat/partner)

// partnerCase is one golden file: given state, one request, the expected answer (a
// subset of the body, "*" matching any present value) and, optionally, the state
// after it.
type partnerCase struct {
	Description string `json:"description"`
	// Rules are the ids of the compat/CONTRACT.md rules the case checks (required).
	Rules []string `json:"rules"`
	Given struct {
		// Users are created in the default tenant through the SCIM service.
		Users []struct {
			Email  string `json:"email"`
			Active bool   `json:"active"`
		} `json:"users"`
		// Settings are `scimd tenant set` pairs for the default tenant.
		Settings []string `json:"settings"`
	} `json:"given"`
	Request struct {
		Method string `json:"method"`
		Path   string `json:"path"`
		// Headers may name $TOKEN (compat scope), $SANDBOX_TOKEN (compat, sandbox)
		// and $SCIM_TOKEN (scim scope only), all of the default tenant.
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
		// RawBody is sent as is (for malformed JSON); Body is sent as JSON.
		RawBody *string `json:"rawBody"`
	} `json:"request"`
	Response struct {
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	} `json:"response"`
	Then *struct {
		// Users maps an email to true (an active user), false (an inactive one) or
		// null (no such user), read back through /scim/v2.
		Users map[string]*bool `json:"users"`
		// Outbox is the number of set_password messages queued in the tenant.
		Outbox *int `json:"outbox"`
	} `json:"then"`
}

func partnerLoadCase(t *testing.T, path string) partnerCase {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var c partnerCase
	if err := d.Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if c.Description == "" || c.Request.Method == "" || c.Request.Path == "" || c.Response.Status == 0 {
		t.Fatalf("%s: description, request.method, request.path and response.status are required", path)
	}
	if err := checkContractRules(c.Rules); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func TestPartnerGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "compat", "partner", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, f := range files {
			c := partnerLoadCase(t, f)
			t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
				partnerRunCase(t, e, c)
			})
		}
	})
}

// partnerRunCase runs one golden case in a tenant of its own, so cases do not see
// each other's users, settings or messages.
func partnerRunCase(t *testing.T, e *env, c partnerCase) {
	ctx := context.Background()
	name := "partner-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()[strings.LastIndex(t.Name(), "/")+1:]))
	full := e.newTenant(name, scim.ScopeSCIM, scim.ScopeCompat)
	tenantID := partnerTenantID(t, e, name)
	vars := map[string]string{
		"$SANDBOX_TOKEN": partnerIssue(t, e, name, scim.TokenOptions{Scopes: []string{scim.ScopeCompat}, Sandbox: true}),
		"$SCIM_TOKEN":    partnerIssue(t, e, name, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}}),
		"$TOKEN":         full,
	}
	for _, u := range c.Given.Users {
		body := map[string]any{"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": u.Email,
			"emails": []any{map[string]any{"value": u.Email, "type": "work", "primary": true}}, "active": u.Active}
		if _, err := e.svc.Create(ctx, tenantID, scim.UserKind, body, scim.Projection{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.Given.Settings) > 0 {
		partnerSet(t, e, name, c.Given.Settings...)
	}
	var rd io.Reader
	switch {
	case c.Request.RawBody != nil:
		rd = strings.NewReader(*c.Request.RawBody)
	case len(c.Request.Body) > 0:
		rd = bytes.NewReader(c.Request.Body)
	}
	req, err := http.NewRequest(c.Request.Method, e.srv.URL+c.Request.Path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for h, v := range c.Request.Headers {
		for k, val := range vars {
			v = strings.ReplaceAll(v, k, val)
		}
		req.Header.Set(h, v)
	}
	r := partnerDo(t, req)
	if r.status != c.Response.Status {
		t.Fatalf("%s\nstatus %d, want %d; body %s", c.Description, r.status, c.Response.Status, r.raw)
	}
	if len(c.Response.Body) > 0 {
		var want, got any
		if err := json.Unmarshal(c.Response.Body, &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
			t.Fatalf("response is not JSON: %v\n%s", err, r.raw)
		}
		if diffs := subsetDiffs("$", want, got); len(diffs) > 0 {
			t.Errorf("%s\nbody %s differs:\n  %s", c.Description, r.raw, strings.Join(diffs, "\n  "))
		}
	}
	if c.Then == nil {
		return
	}
	for email, want := range c.Then.Users {
		u := partnerSCIMUser(t, e, full, email)
		switch {
		case want == nil && u != nil:
			t.Errorf("user %s exists, want none: %v", email, u)
		case want != nil && u == nil:
			t.Errorf("no user %s", email)
		case want != nil && u["active"] != *want:
			t.Errorf("user %s active %v, want %v", email, u["active"], *want)
		}
	}
	if c.Then.Outbox != nil {
		msgs := partnerOutbox(t, e, tenantID)
		if len(msgs) != *c.Then.Outbox {
			t.Errorf("%d queued messages, want %d: %+v", len(msgs), *c.Then.Outbox, msgs)
		}
		for _, m := range msgs {
			if m.Kind != "set_password" {
				t.Errorf("queued message of kind %q", m.Kind)
			}
		}
	}
}

func TestPartnerMatch(t *testing.T) {
	parse := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name, want, got string
		ok              bool
	}{
		{"subset", `{"a":1}`, `{"a":1,"b":2}`, true},
		{"missing_key", `{"c":1}`, `{"a":1}`, false},
		{"wildcard", `{"id":"*"}`, `{"id":"x"}`, true},
		{"wildcard_null", `{"id":"*"}`, `{"id":null}`, false},
		{"array_length", `[1]`, `[1,2]`, false},
		{"nested", `{"a":{"b":[{"c":"d"}]}}`, `{"a":{"b":[{"c":"d","e":1}]}}`, true},
		{"value", `{"a":"x"}`, `{"a":"y"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := subsetDiffs("$", parse(tc.want), parse(tc.got)); (len(d) == 0) != tc.ok {
				t.Errorf("match %v, want ok=%v", d, tc.ok)
			}
		})
	}
}

// ---- behaviour

// TestPartnerProvisionReadBack provisions a user and reads it back through /scim/v2
// and the outbox: the SCIM User is what the vendor call meant.
func TestPartnerProvisionReadBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tenantID := partnerTenantID(t, e, "default")
		r := partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("  Ann.Lee@Example.COM ", "https://chat.example.com/welcome?x=1")).want(t, http.StatusCreated)
		if r.body["email"] != "ann.lee@example.com" || r.body["status"] != "created" || r.body["action"] != "provision" {
			t.Fatalf("reply %s", r.raw)
		}
		id := str(r.body, "id")
		got := e.call("GET", "/scim/v2/Users/"+id, nil).want(t, http.StatusOK).body
		if got["userName"] != "ann.lee@example.com" || got["active"] != true {
			t.Errorf("user %v", got)
		}
		emails, _ := got["emails"].([]any)
		if len(emails) != 1 || !reflect.DeepEqual(emails[0], map[string]any{"value": "ann.lee@example.com", "type": "work", "primary": true}) {
			t.Errorf("emails %v", got["emails"])
		}
		for _, absent := range []string{"name", "roles", "password", "externalId"} {
			if v, ok := got[absent]; ok {
				t.Errorf("%s = %v, want none", absent, v)
			}
		}
		if u := partnerSCIMUser(t, e, e.token, "ANN.LEE@example.com"); u == nil || u["id"] != id {
			t.Errorf("filter by userName finds %v", u)
		}
		msgs := partnerOutbox(t, e, tenantID)
		if len(msgs) != 1 {
			t.Fatalf("%d messages, want 1: %+v", len(msgs), msgs)
		}
		partnerCheckMessage(t, msgs[0], id, "ann.lee@example.com", "https://chat.example.com/welcome?x=1")

		// The alias path does the same.
		r = partnerCall(t, e, e.token, "POST", partnerAlias, partnerProvisionBody("bo@example.com", "http://localhost:8080/")).want(t, http.StatusCreated)
		if u := partnerSCIMUser(t, e, e.token, "bo@example.com"); u == nil || u["id"] != str(r.body, "id") || u["active"] != true {
			t.Errorf("alias: user %v for reply %s", u, r.raw)
		}
		if msgs := partnerOutbox(t, e, tenantID); len(msgs) != 2 {
			t.Errorf("%d messages after the alias call, want 2", len(msgs))
		} else {
			partnerCheckMessage(t, msgs[1], str(r.body, "id"), "bo@example.com", "http://localhost:8080/")
		}
	})
}

// TestPartnerProvisionExisting: an existing user (made through SCIM, inactive) is
// reactivated, keeps its attributes and id, and gets a fresh message each time.
func TestPartnerProvisionExisting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tenantID := partnerTenantID(t, e, "default")
		made := e.call("POST", "/scim/v2/Users", user("Cy@Example.com", "active", false, "name", map[string]any{"givenName": "Cy", "familyName": "Ode"},
			"roles", []any{map[string]any{"value": "Scheduler"}})).want(t, http.StatusCreated)
		id := str(made.body, "id")
		for i := 1; i <= 2; i++ {
			r := partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("cy@example.com", fmt.Sprintf("https://app.example.com/%d", i))).want(t, http.StatusOK)
			want := map[string]any{"action": "provision", "email": "cy@example.com", "id": id, "status": "existing"}
			if !reflect.DeepEqual(r.body, want) {
				t.Errorf("reply %s, want %v", r.raw, want)
			}
			got := e.call("GET", "/scim/v2/Users/"+id, nil).want(t, http.StatusOK).body
			if got["active"] != true || str(got, "name.givenName") != "Cy" || got["userName"] != "Cy@Example.com" {
				t.Errorf("user after provision %d: %v", i, got)
			}
			if roles, _ := got["roles"].([]any); len(roles) != 1 {
				t.Errorf("roles %v", got["roles"])
			}
			msgs := partnerOutbox(t, e, tenantID)
			if len(msgs) != i {
				t.Fatalf("%d messages after provision %d", len(msgs), i)
			}
			partnerCheckMessage(t, msgs[i-1], id, "cy@example.com", fmt.Sprintf("https://app.example.com/%d", i))
		}
		if page := e.call("GET", "/scim/v2/Users", nil).want(t, http.StatusOK); page.body["totalResults"] != float64(1) {
			t.Errorf("users %v, want only the one", page.body["totalResults"])
		}
	})
}

// TestPartnerDeprovision deletes through the vendor call; SCIM then finds nothing,
// and a second call is 404.
func TestPartnerDeprovision(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		r := partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("dee@example.com", "https://x.example.com")).want(t, http.StatusCreated)
		id := str(r.body, "id")
		r = partnerCall(t, e, e.token, "POST", partnerPath, map[string]any{"action": "deprovision", "email": "DEE@example.com "}).want(t, http.StatusOK)
		want := map[string]any{"action": "deprovision", "email": "dee@example.com", "status": "deleted"}
		if !reflect.DeepEqual(r.body, want) {
			t.Errorf("reply %s, want %v", r.raw, want)
		}
		e.call("GET", "/scim/v2/Users/"+id, nil).want(t, http.StatusNotFound)
		partnerWantError(t, partnerCall(t, e, e.token, "POST", partnerAlias, map[string]any{"action": "deprovision", "email": "dee@example.com"}), http.StatusNotFound, "user_not_found")
		// result_url is ignored on deprovision, whatever it holds.
		partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("eve@example.com", "https://x.example.com")).want(t, http.StatusCreated)
		partnerCall(t, e, e.token, "POST", partnerPath, map[string]any{"action": "deprovision", "email": "eve@example.com", "result_url": "not a url"}).want(t, http.StatusOK)
	})
}

// TestPartnerBadInput: every malformed body, wrong type and invalid value is a 400
// with its code, and leaves no user and no message behind.
func TestPartnerBadInput(t *testing.T) {
	long := strings.Repeat("a", 250) + "@example.com"
	forEachBackend(t, func(t *testing.T, e *env) {
		tenantID := partnerTenantID(t, e, "default")
		for _, tc := range []struct {
			name string
			body any
			code string
		}{
			{"malformed_json", `{"email": "a@example.com",`, "invalid_json"},
			{"empty_body", ``, "invalid_json"},
			{"array_body", `[{"email": "a@example.com"}]`, "invalid_json"},
			{"string_body", `"a@example.com"`, "invalid_json"},
			{"trailing_data", `{"email": "a@example.com", "result_url": "https://x.example.com"} {}`, "invalid_json"},
			{"null_body", `null`, "invalid_email"},
			{"email_number", map[string]any{"email": 42, "result_url": "https://x.example.com"}, "invalid_request"},
			{"email_array", map[string]any{"email": []any{"a@example.com"}, "result_url": "https://x.example.com"}, "invalid_request"},
			{"action_bool", map[string]any{"action": true, "email": "a@example.com", "result_url": "https://x.example.com"}, "invalid_request"},
			{"result_url_object", map[string]any{"email": "a@example.com", "result_url": map[string]any{"href": "https://x"}}, "invalid_request"},
			{"unknown_action", map[string]any{"action": "suspend", "email": "a@example.com", "result_url": "https://x.example.com"}, "unknown_action"},
			{"missing_email", map[string]any{"result_url": "https://x.example.com"}, "invalid_email"},
			{"empty_email", map[string]any{"email": "  ", "result_url": "https://x.example.com"}, "invalid_email"},
			{"not_an_email", map[string]any{"email": "ann", "result_url": "https://x.example.com"}, "invalid_email"},
			{"display_name_email", map[string]any{"email": "Ann <a@example.com>", "result_url": "https://x.example.com"}, "invalid_email"},
			{"email_too_long", map[string]any{"email": long, "result_url": "https://x.example.com"}, "invalid_email"},
			{"deprovision_without_email", map[string]any{"action": "deprovision"}, "invalid_email"},
			{"missing_result_url", map[string]any{"email": "a@example.com"}, "invalid_result_url"},
			{"null_result_url", map[string]any{"email": "a@example.com", "result_url": nil}, "invalid_result_url"},
			{"relative_result_url", map[string]any{"email": "a@example.com", "result_url": "/welcome"}, "invalid_result_url"},
			{"scheme_relative_result_url", map[string]any{"email": "a@example.com", "result_url": "//x.example.com/"}, "invalid_result_url"},
			{"ftp_result_url", map[string]any{"email": "a@example.com", "result_url": "ftp://x.example.com/"}, "invalid_result_url"},
			{"javascript_result_url", map[string]any{"email": "a@example.com", "result_url": "javascript:alert(1)"}, "invalid_result_url"},
			{"hostless_result_url", map[string]any{"email": "a@example.com", "result_url": "https://"}, "invalid_result_url"},
			{"userinfo_result_url", map[string]any{"email": "a@example.com", "result_url": "https://x.example.com@evil.example.net/"}, "invalid_result_url"},
			{"long_result_url", map[string]any{"email": "a@example.com", "result_url": "https://x.example.com/" + strings.Repeat("p", 2100)}, "invalid_result_url"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				partnerWantError(t, partnerCall(t, e, e.token, "POST", partnerPath, tc.body), http.StatusBadRequest, tc.code)
			})
		}
		partnerWantError(t, partnerCall(t, e, e.token, "POST", partnerPath, `{"email":"`+strings.Repeat("a", 70<<10)+`"}`), http.StatusRequestEntityTooLarge, "body_too_large")
		if page := e.call("GET", "/scim/v2/Users", nil).want(t, http.StatusOK); page.body["totalResults"] != float64(0) {
			t.Errorf("bad input left %v users behind", page.body["totalResults"])
		}
		if msgs := partnerOutbox(t, e, tenantID); len(msgs) != 0 {
			t.Errorf("bad input queued %d messages", len(msgs))
		}
		// Unknown fields are ignored; action is read case-insensitively.
		partnerCall(t, e, e.token, "POST", partnerPath, map[string]any{"action": " Provision ", "email": "a@example.com", "result_url": "HTTPS://X.example.com/", "team": "x"}).want(t, http.StatusCreated)
	})
}

// TestPartnerAuth covers the credentials and the tenant settings the route consults.
func TestPartnerAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		body := partnerProvisionBody("fay@example.com", "https://chat.example.com/")
		t.Run("no_credentials", func(t *testing.T) {
			r := partnerCall(t, e, "", "POST", partnerPath, body)
			partnerWantError(t, r, http.StatusUnauthorized, "unauthorized")
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Token") {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
		t.Run("wrong_token", func(t *testing.T) {
			partnerWantError(t, partnerCall(t, e, "scimd_not-a-token-at-all-000000", "POST", partnerPath, body), http.StatusUnauthorized, "unauthorized")
		})
		t.Run("bearer_scheme", func(t *testing.T) {
			partnerWantError(t, partnerCall(t, e, "", "POST", partnerPath, body, "Authorization", "Bearer "+e.token), http.StatusUnauthorized, "unauthorized")
		})
		t.Run("token_scheme_any_case", func(t *testing.T) {
			partnerCall(t, e, "", "POST", partnerPath, partnerProvisionBody("gus@example.com", "https://chat.example.com/"), "Authorization", "token  "+e.token).want(t, http.StatusCreated)
		})
		t.Run("scope", func(t *testing.T) {
			for _, scopes := range [][]string{{scim.ScopeSCIM}, {scim.ScopeAdmin}} {
				tok := partnerIssue(t, e, "default", scim.TokenOptions{Scopes: scopes})
				partnerWantError(t, partnerCall(t, e, tok, "POST", partnerPath, body), http.StatusForbidden, "forbidden")
			}
		})
		t.Run("sandbox", func(t *testing.T) {
			partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("hal@example.com", "https://chat.example.com/")).want(t, http.StatusCreated)
			tok := partnerIssue(t, e, "default", scim.TokenOptions{Scopes: []string{scim.ScopeCompat}, Sandbox: true})
			partnerWantError(t, partnerCall(t, e, tok, "POST", partnerPath, body), http.StatusForbidden, "sandbox_token")
			partnerWantError(t, partnerCall(t, e, tok, "POST", partnerPath, map[string]any{"action": "deprovision", "email": "hal@example.com"}), http.StatusForbidden, "sandbox_token")
			if partnerSCIMUser(t, e, e.token, "hal@example.com") == nil {
				t.Error("a sandbox deprovision deleted the user")
			}
		})
		t.Run("settings", func(t *testing.T) {
			for _, tc := range []struct {
				setting, reset string
				status         int
				code           string
			}{
				{"free_access=true", "free_access=false", http.StatusBadRequest, "free_access_enabled"},
				{"sign_in=none", "sign_in=configured", http.StatusBadRequest, "sign_in_not_configured"},
				{"family.partner=disabled", "family.partner=enabled", http.StatusNotFound, "not_configured"},
			} {
				partnerSet(t, e, "default", tc.setting)
				partnerWantError(t, partnerCall(t, e, e.token, "POST", partnerPath, body), tc.status, tc.code)
				partnerWantError(t, partnerCall(t, e, e.token, "POST", partnerAlias, map[string]any{"action": "deprovision", "email": "hal@example.com"}), tc.status, tc.code)
				partnerSet(t, e, "default", tc.reset)
			}
			// Another family turned off does not concern this one.
			partnerSet(t, e, "default", "family.admin=disabled")
			partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("ida@example.com", "https://chat.example.com/")).want(t, http.StatusCreated)
			partnerSet(t, e, "default", "family.admin=enabled")
			if partnerSCIMUser(t, e, e.token, "fay@example.com") != nil {
				t.Error("a refused call created fay")
			}
		})
		t.Run("result_url_hosts", func(t *testing.T) {
			partnerSet(t, e, "default", "result_url_hosts=chat.example.com, app.example.com:8443")
			defer partnerSet(t, e, "default", "result_url_hosts=")
			for _, tc := range []struct {
				url    string
				status int
			}{
				{"https://chat.example.com/welcome", http.StatusCreated},
				{"https://CHAT.example.com:444/", http.StatusCreated},
				{"https://app.example.com:8443/x", http.StatusCreated},
				{"https://app.example.com/x", http.StatusBadRequest},
				{"https://evil.example.net/", http.StatusBadRequest},
				{"https://chat.example.com.evil.example.net/", http.StatusBadRequest},
				{"https://evil.example.net/?next=chat.example.com", http.StatusBadRequest},
			} {
				email := fmt.Sprintf("h%d@example.com", tc.status)
				r := partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody(email, tc.url))
				if tc.status == http.StatusBadRequest {
					partnerWantError(t, r, tc.status, "invalid_result_url")
					continue
				}
				if r.status != http.StatusCreated && r.status != http.StatusOK {
					t.Errorf("%s: status %d: %s", tc.url, r.status, r.raw)
				}
			}
		})
		t.Run("method", func(t *testing.T) {
			r := partnerCall(t, e, e.token, "GET", partnerPath, nil)
			partnerWantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
			if r.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", r.header.Get("Allow"))
			}
		})
	})
}

// TestPartnerTenants: a token sees only its own tenant's users.
func TestPartnerTenants(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		other := e.newTenant("other", scim.ScopeSCIM, scim.ScopeCompat)
		otherID := partnerTenantID(t, e, "other")
		theirs := partnerCall(t, e, other, "POST", partnerPath, partnerProvisionBody("jo@example.com", "https://other.example.com/")).want(t, http.StatusCreated)
		// The default tenant cannot delete the other tenant's user...
		partnerWantError(t, partnerCall(t, e, e.token, "POST", partnerPath, map[string]any{"action": "deprovision", "email": "jo@example.com"}), http.StatusNotFound, "user_not_found")
		// ...and provisioning the same email makes a user of its own, not "existing".
		mine := partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("jo@example.com", "https://mine.example.com/")).want(t, http.StatusCreated)
		if str(mine.body, "id") == str(theirs.body, "id") {
			t.Error("both tenants share one user")
		}
		if u := partnerSCIMUser(t, e, other, "jo@example.com"); u == nil || u["id"] != str(theirs.body, "id") {
			t.Errorf("the other tenant's user is %v", u)
		}
		if msgs := partnerOutbox(t, e, otherID); len(msgs) != 1 {
			t.Errorf("the other tenant has %d messages, want 1", len(msgs))
		} else {
			partnerCheckMessage(t, msgs[0], str(theirs.body, "id"), "jo@example.com", "https://other.example.com/")
		}
		// The other tenant's settings do not reach this one.
		partnerSet(t, e, "other", "free_access=true")
		partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("kim@example.com", "https://mine.example.com/")).want(t, http.StatusCreated)
		partnerWantError(t, partnerCall(t, e, other, "POST", partnerPath, partnerProvisionBody("kim@example.com", "https://x.example.com/")), http.StatusBadRequest, "free_access_enabled")
	})
}

// TestPartnerNoHalfWrittenUser: when queuing the message fails inside the write's
// transaction, the user is not created (or not reactivated) either, and the answer
// is a 5xx that names an error id rather than the database's error.
func TestPartnerNoHalfWrittenUser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tenantID := partnerTenantID(t, e, "default")
		made := e.call("POST", "/scim/v2/Users", user("old@example.com", "active", false)).want(t, http.StatusCreated)
		db := e.st.DB()
		var stmts []string
		if db.Dialector.Name() == "postgres" {
			stmts = []string{
				`CREATE FUNCTION partner_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$`,
				`CREATE TRIGGER partner_refuse BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION partner_refuse()`,
			}
		} else {
			stmts = []string{`CREATE TRIGGER partner_refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'refused'); END`}
		}
		for _, s := range stmts {
			if err := db.Exec(s).Error; err != nil {
				t.Fatal(err)
			}
		}
		for _, email := range []string{"new@example.com", "old@example.com"} {
			r := partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody(email, "https://chat.example.com/"))
			if r.status != http.StatusInternalServerError && r.status != http.StatusServiceUnavailable {
				t.Fatalf("%s: status %d, want 500 or 503: %s", email, r.status, r.raw)
			}
			partnerWantError(t, r, r.status, map[int]string{500: "internal", 503: "unavailable"}[r.status])
			if strings.Contains(r.raw, "refused") {
				t.Errorf("the database's error reached the client: %s", r.raw)
			}
		}
		if u := partnerSCIMUser(t, e, e.token, "new@example.com"); u != nil {
			t.Errorf("a user was left behind: %v", u)
		}
		old := e.call("GET", "/scim/v2/Users/"+str(made.body, "id"), nil).want(t, http.StatusOK)
		if old.body["active"] != false || str(old.body, "meta.version") != str(made.body, "meta.version") {
			t.Errorf("the existing user changed: %s", old.raw)
		}
		if msgs := partnerOutbox(t, e, tenantID); len(msgs) != 0 {
			t.Errorf("%d messages queued", len(msgs))
		}
		// The failure was logged once with an id the answer names.
		found := false
		for _, entry := range e.logs.FilterMessage("partner request failed").All() {
			if id, ok := entry.ContextMap()["error_id"].(string); ok && id != "" && entry.ContextMap()["request_id"] != "" {
				found = true
			}
		}
		if !found {
			t.Error("no logged error with error_id and request_id")
		}
		// Once the database accepts messages again, the same call succeeds.
		if db.Dialector.Name() == "postgres" {
			db.Exec(`DROP TRIGGER partner_refuse ON outbox`)
		} else {
			db.Exec(`DROP TRIGGER partner_refuse`)
		}
		partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("new@example.com", "https://chat.example.com/")).want(t, http.StatusCreated)
	})
}

// TestPartnerUnavailable cuts the connection to PostgreSQL under a running server:
// the route answers 503 with Retry-After. SQLite is an embedded file with no
// connection to lose, so only PostgreSQL runs it.
func TestPartnerUnavailable(t *testing.T) {
	base := os.Getenv(storetest.PostgresEnv)
	if base == "" {
		t.Skipf("needs PostgreSQL: set %s", storetest.PostgresEnv)
	}
	direct := storetest.OpenPostgres(t) // creates, migrates and later drops the schema
	var schema string
	if err := direct.DB().Raw(`SELECT current_schema()`).Scan(&schema).Error; err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p := startDBProxy(t, u.Host)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery, u.Host = q.Encode(), p.addr
	e := newEnv(t, storetest.Backend{Name: "postgres", Open: func(t testing.TB) *gormstore.Store {
		st, err := pgstore.Open(u.String(), zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}}, scimhttp.Options{MaxBodyBytes: 64 << 10})
	partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("up@example.com", "https://chat.example.com/")).want(t, http.StatusCreated)
	p.cut()
	r := partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody("down@example.com", "https://chat.example.com/"))
	partnerWantError(t, r, http.StatusServiceUnavailable, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	var n int64
	if err := direct.DB().Raw(`SELECT count(*) FROM users WHERE user_name = 'down@example.com'`).Scan(&n).Error; err != nil || n != 0 {
		t.Errorf("users named down: %d %v", n, err)
	}
}
