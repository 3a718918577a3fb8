package compat

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/scimd/scimd/scim"
)

// Partner provisioning (CONTRACT.md partner.*): the body's translation without HTTP,
// then the handler over a real database.

func TestPartnerParse(t *testing.T) {
	long := "https://chat.example.com/" + strings.Repeat("a", partnerMaxResultURL-len("https://chat.example.com/"))
	for _, tc := range []struct {
		name   string
		body   string
		hosts  []string
		action string // want, when code is ""
		email  string
		url    string
		code   string // the partnerError code wanted, "" for success
	}{
		// partner.action
		{name: "action_default", body: `{"email":"Ann@Example.com","result_url":"https://chat.example.com"}`, action: "provision", email: "ann@example.com", url: "https://chat.example.com"},
		{name: "action_null", body: `{"action":null,"email":"a@example.com","result_url":"http://x.example.com"}`, action: "provision", email: "a@example.com", url: "http://x.example.com"},
		{name: "action_empty", body: `{"action":"","email":"a@example.com","result_url":"https://x.example.com"}`, action: "provision", email: "a@example.com", url: "https://x.example.com"},
		{name: "action_case_and_space", body: `{"action":" DeProvision ","email":"a@example.com"}`, action: "deprovision", email: "a@example.com"},
		{name: "action_provision", body: `{"action":"provision","email":"a@example.com","result_url":"https://x.example.com"}`, action: "provision", email: "a@example.com", url: "https://x.example.com"},
		{name: "action_unknown", body: `{"action":"suspend","email":"a@example.com"}`, code: "unknown_action"},
		{name: "action_not_string", body: `{"action":1,"email":"a@example.com"}`, code: "invalid_request"},
		// partner.email
		{name: "email_missing", body: `{"result_url":"https://x.example.com"}`, code: "invalid_email"},
		{name: "email_not_string", body: `{"email":["a@example.com"],"result_url":"https://x.example.com"}`, code: "invalid_request"},
		{name: "email_not_address", body: `{"email":"not-an-email","result_url":"https://x.example.com"}`, code: "invalid_email"},
		{name: "deprovision_email_missing", body: `{"action":"deprovision"}`, code: "invalid_email"},
		// partner.result-url
		{name: "deprovision_ignores_result_url", body: `{"action":"deprovision","email":"a@example.com","result_url":"ftp://x"}`, action: "deprovision", email: "a@example.com"},
		{name: "result_url_missing", body: `{"email":"a@example.com"}`, code: "invalid_result_url"},
		{name: "result_url_blank", body: `{"email":"a@example.com","result_url":"  "}`, code: "invalid_result_url"},
		{name: "result_url_not_string", body: `{"email":"a@example.com","result_url":true}`, code: "invalid_request"},
		{name: "result_url_ftp", body: `{"email":"a@example.com","result_url":"ftp://x.example.com"}`, code: "invalid_result_url"},
		{name: "result_url_javascript", body: `{"email":"a@example.com","result_url":"javascript:alert(1)"}`, code: "invalid_result_url"},
		{name: "result_url_relative", body: `{"email":"a@example.com","result_url":"/welcome"}`, code: "invalid_result_url"},
		{name: "result_url_no_host", body: `{"email":"a@example.com","result_url":"https:///path"}`, code: "invalid_result_url"},
		{name: "result_url_opaque", body: `{"email":"a@example.com","result_url":"https:x.example.com"}`, code: "invalid_result_url"},
		{name: "result_url_user_info", body: `{"email":"a@example.com","result_url":"https://good.example.com@evil.example.com/"}`, code: "invalid_result_url"},
		{name: "result_url_at_limit", body: `{"email":"a@example.com","result_url":"` + long + `"}`, action: "provision", email: "a@example.com", url: long},
		{name: "result_url_over_limit", body: `{"email":"a@example.com","result_url":"` + long + `a"}`, code: "invalid_result_url"},
		{name: "result_url_trimmed", body: `{"email":"a@example.com","result_url":" https://x.example.com "}`, action: "provision", email: "a@example.com", url: "https://x.example.com"},
		{name: "hosts_listed", body: `{"email":"a@example.com","result_url":"https://Chat.Example.com/x"}`, hosts: []string{"other.example.com", "chat.example.com"}, action: "provision", email: "a@example.com", url: "https://Chat.Example.com/x"},
		{name: "hosts_trailing_dot", body: `{"email":"a@example.com","result_url":"https://chat.example.com./x"}`, hosts: []string{"chat.example.com"}, action: "provision", email: "a@example.com", url: "https://chat.example.com./x"},
		{name: "hosts_not_listed", body: `{"email":"a@example.com","result_url":"https://evil.example.com"}`, hosts: []string{"chat.example.com"}, code: "invalid_result_url"},
		{name: "hosts_subdomain_not_listed", body: `{"email":"a@example.com","result_url":"https://x.chat.example.com"}`, hosts: []string{"chat.example.com"}, code: "invalid_result_url"},
		{name: "hosts_port_listed", body: `{"email":"a@example.com","result_url":"https://chat.example.com:8443/"}`, hosts: []string{"chat.example.com:8443"}, action: "provision", email: "a@example.com", url: "https://chat.example.com:8443/"},
		{name: "hosts_other_port", body: `{"email":"a@example.com","result_url":"https://chat.example.com:9000/"}`, hosts: []string{"chat.example.com:8443"}, code: "invalid_result_url"},
		{name: "hosts_name_allows_any_port", body: `{"email":"a@example.com","result_url":"https://chat.example.com:9000/"}`, hosts: []string{"chat.example.com"}, action: "provision", email: "a@example.com", url: "https://chat.example.com:9000/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := partnerParse(decodeObject(t, tc.body), scim.TenantSettings{ResultURLHosts: tc.hosts})
			if tc.code != "" {
				var pe *partnerError
				if !errors.As(err, &pe) || pe.status != http.StatusBadRequest || pe.code != tc.code {
					t.Fatalf("partnerParse = %+v, %v; want 400 %s", req, err, tc.code)
				}
				if pe.message == "" {
					t.Error("refusal without message")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.action != tc.action || req.email != tc.email || req.resultURL != tc.url {
				t.Errorf("partnerParse = %+v, want action %q email %q result_url %q", req, tc.action, tc.email, tc.url)
			}
		})
	}
}

// TestPartnerCheckTenant: free access on, or no sign-in, disables the endpoint
// (partner.tenant); the defaults allow it.
func TestPartnerCheckTenant(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  scim.TenantSettings
		code string
	}{
		{"defaults", scim.TenantSettings{}, ""},
		{"free_access", scim.TenantSettings{FreeAccess: true}, "free_access_enabled"},
		{"no_sign_in", scim.TenantSettings{NoSignIn: true}, "sign_in_not_configured"},
		{"both", scim.TenantSettings{FreeAccess: true, NoSignIn: true}, "free_access_enabled"},
		{"other_settings", scim.TenantSettings{NoOnboardingUser: true, DisabledFamilies: []string{FamilyAdmin}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := partnerCheckTenant(tc.set)
			var pe *partnerError
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.code != "" && (!errors.As(err, &pe) || pe.code != tc.code || pe.status != http.StatusBadRequest):
				t.Fatalf("err %v, want 400 %s", err, tc.code)
			}
		})
	}
}

// TestPartnerCredentials: only "Authorization: Token <token>" is read
// (partner.auth).
func TestPartnerCredentials(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"Token abc", "abc"},
		{"token abc", "abc"},
		{"TOKEN  abc ", "abc"},
		{"Bearer abc", ""},
		{"Basic YTpi", ""},
		{"abc", ""},
		{"", ""},
	} {
		r, _ := http.NewRequest("POST", "/", nil)
		r.Header.Set("Authorization", tc.header)
		if got := partnerCredentials(r); got != tc.want {
			t.Errorf("partnerCredentials(%q) = %q, want %q", tc.header, got, tc.want)
		}
	}
}

// TestPartnerNewUser: a provision creates the identity-key user and queues a
// set_password message carrying the result_url (partner.provision, shared.email).
func TestPartnerNewUser(t *testing.T) {
	body, msg, err := partnerNewUser(partnerRequest{action: partnerActionProvision, email: "ann@example.com", resultURL: "https://chat.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if body["userName"] != "ann@example.com" || body["active"] != true {
		t.Errorf("user %v", body)
	}
	emails, _ := body["emails"].([]any)
	if len(emails) != 1 || emails[0].(map[string]any)["value"] != "ann@example.com" || emails[0].(map[string]any)["primary"] != true || emails[0].(map[string]any)["type"] != "work" {
		t.Errorf("emails %v", body["emails"])
	}
	if msg.Kind != "set_password" || msg.Recipient != "ann@example.com" {
		t.Errorf("message %+v", msg)
	}
	var p map[string]any
	if err := json.Unmarshal(msg.Payload, &p); err != nil || p["result_url"] != "https://chat.example.com" {
		t.Errorf("payload %s: %v", msg.Payload, err)
	}
	ops := partnerReactivateOps()
	if len(ops) != 1 || ops[0].Op != "replace" || ops[0].Path != "active" || ops[0].Value != true {
		t.Errorf("reactivation %+v", ops)
	}
}

// TestPartnerFromSCIM: each service error kind becomes the family's status and code
// (partner.errors).
func TestPartnerFromSCIM(t *testing.T) {
	for _, tc := range []struct {
		kind   scim.ErrorKind
		status int
		code   string
	}{
		{scim.KindInvalidSyntax, 400, "invalid_json"},
		{scim.KindInvalidValue, 400, "invalid_request"},
		{scim.KindUnauthorized, 401, "unauthorized"},
		{scim.KindForbidden, 403, "forbidden"},
		{scim.KindNotFound, 404, "not_found"},
		{scim.KindUniqueness, 409, "conflict"},
		{scim.KindPrecondition, 409, "conflict"},
		{scim.KindUnavailable, 503, "unavailable"},
		{scim.KindTooManyRequests, 429, "too_many_requests"},
		{scim.KindInternal, 500, "internal"},
	} {
		pe := partnerFromSCIM(&scim.Error{Kind: tc.kind, Detail: "secret detail"})
		if pe.status != tc.status || pe.code != tc.code {
			t.Errorf("kind %d: %d %s, want %d %s", tc.kind, pe.status, pe.code, tc.status, tc.code)
		}
		if tc.status == 500 && strings.Contains(pe.message, "secret") {
			t.Errorf("a 500 carries the error's detail: %q", pe.message)
		}
	}
}

// TestPartnerHandler runs POST /v1/pine/partner/provision-user over a real database:
// every refusal in the order the contract gives, then the actions.
func TestPartnerHandler(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		tok := f.token(scopes(scim.ScopeCompat))
		auth := "Token " + tok
		ct := "application/json"
		provision := `{"action":"provision","email":"Ann@Example.com","result_url":"https://chat.example.com"}`

		refusals := []struct {
			name, method, body string
			hdr                []string
			status             int
			code               string
		}{
			{"method", "GET", "", []string{"Authorization", auth}, 405, "method_not_allowed"},
			{"no_credentials", "POST", provision, []string{"Content-Type", ct}, 401, "unauthorized"},
			{"bearer_scheme", "POST", provision, []string{"Authorization", "Bearer " + tok, "Content-Type", ct}, 401, "unauthorized"},
			{"unknown_token", "POST", provision, []string{"Authorization", "Token nope", "Content-Type", ct}, 401, "unauthorized"},
			{"scope", "POST", provision, []string{"Authorization", "Token " + f.token(scopes(scim.ScopeSCIM, scim.ScopeAdmin)), "Content-Type", ct}, 403, "forbidden"},
			{"sandbox", "POST", provision, []string{"Authorization", "Token " + f.token(sandbox(scim.ScopeCompat)), "Content-Type", ct}, 403, "sandbox_token"},
			{"sandbox_deprovision", "POST", `{"action":"deprovision","email":"x@example.com"}`, []string{"Authorization", "Token " + f.token(sandbox(scim.ScopeCompat)), "Content-Type", ct}, 403, "sandbox_token"},
			{"no_content_type", "POST", provision, []string{"Authorization", auth}, 415, "unsupported_media_type"},
			{"text_plain", "POST", provision, []string{"Authorization", auth, "Content-Type", "text/plain"}, 415, "unsupported_media_type"},
			{"malformed", "POST", `{"email":`, []string{"Authorization", auth, "Content-Type", ct}, 400, "invalid_json"},
			{"trailing_data", "POST", provision + `{}`, []string{"Authorization", auth, "Content-Type", ct}, 400, "invalid_json"},
			{"nul", "POST", `{"email":"a\u0000@example.com","result_url":"https://x.example.com"}`, []string{"Authorization", auth, "Content-Type", ct}, 400, "invalid_request"},
			{"too_large", "POST", `{"email":"a@example.com","pad":"` + strings.Repeat("x", 65<<10) + `"}`, []string{"Authorization", auth, "Content-Type", ct}, 413, "body_too_large"},
			{"unknown_action", "POST", `{"action":"suspend","email":"a@example.com"}`, []string{"Authorization", auth, "Content-Type", ct}, 400, "unknown_action"},
		}
		for _, tc := range refusals {
			t.Run(tc.name, func(t *testing.T) {
				r := f.do(tc.method, partnerPath, tc.body, tc.hdr...)
				r.want(t, tc.status, "error", tc.code)
				if m, _ := r.body["message"].(string); m == "" || len(r.body) != 2 {
					t.Errorf("error body %s, want {error, message}", r.raw)
				}
				if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Token") {
					t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
				if tc.status == 405 && r.header.Get("Allow") != "POST" {
					t.Errorf("Allow %q", r.header.Get("Allow"))
				}
			})
		}
		if u := f.lookup("ann@example.com"); u != nil || len(f.outbox()) != 0 {
			t.Fatalf("a refused call wrote: user %v, outbox %v", u, f.outbox())
		}

		t.Run("provision_created", func(t *testing.T) {
			r := f.do("POST", partnerAlias, provision, "Authorization", auth, "Content-Type", ct)
			r.want(t, 201, "status", "created")
			u := f.lookup("ann@example.com")
			if u == nil || r.body["id"] != u.ID || r.body["email"] != "ann@example.com" || r.body["action"] != "provision" {
				t.Fatalf("answer %s, user %v", r.raw, u)
			}
			if u.Attrs["active"] != true {
				t.Errorf("active %v", u.Attrs["active"])
			}
			if got := f.outbox(); len(got) != 1 || got[0] != PartnerMessageKind {
				t.Errorf("outbox %v", got)
			}
		})
		t.Run("provision_existing_reactivates", func(t *testing.T) {
			u := f.lookup("ann@example.com")
			if _, err := f.svc.Patch(t.Context(), f.tenantID, scim.UserKind, u.ID, []scim.PatchOp{{Op: "replace", Path: "active", Value: false}}, "", scim.Projection{}); err != nil {
				t.Fatal(err)
			}
			r := f.do("POST", partnerPath, provision, "Authorization", auth, "Content-Type", ct)
			r.want(t, 200, "status", "existing")
			if r.body["id"] != u.ID {
				t.Errorf("id %v, want %s", r.body["id"], u.ID)
			}
			if got := f.lookup("ann@example.com"); got.Attrs["active"] != true {
				t.Errorf("not reactivated: %v", got.Attrs["active"])
			}
			if got := f.outbox(); len(got) != 2 {
				t.Errorf("outbox %v, want a fresh message", got)
			}
		})
		t.Run("tenant_settings_before_body", func(t *testing.T) {
			f.set("free_access=true")
			f.do("POST", partnerPath, "not json", "Authorization", auth, "Content-Type", ct).want(t, 400, "error", "free_access_enabled")
			f.set("free_access=false", "sign_in=none")
			f.do("POST", partnerPath, `{"action":"deprovision","email":"ann@example.com"}`, "Authorization", auth, "Content-Type", ct).want(t, 400, "error", "sign_in_not_configured")
			f.set("sign_in=configured", "result_url_hosts=chat.example.com")
			f.do("POST", partnerPath, `{"email":"b@example.com","result_url":"https://evil.example.com"}`, "Authorization", auth, "Content-Type", ct).want(t, 400, "error", "invalid_result_url")
			f.set("result_url_hosts=", "family.partner=disabled")
			f.do("POST", partnerPath, provision, "Authorization", auth, "Content-Type", ct).want(t, 404, "error", "not_configured")
			f.set("family.partner=enabled")
		})
		t.Run("deprovision_then_unknown", func(t *testing.T) {
			body := `{"action":"deprovision","email":" ANN@example.com"}`
			r := f.do("POST", partnerPath, body, "Authorization", auth, "Content-Type", ct)
			r.want(t, 200, "status", "deleted")
			if r.body["email"] != "ann@example.com" || r.body["action"] != "deprovision" {
				t.Errorf("answer %s", r.raw)
			}
			if f.lookup("ann@example.com") != nil {
				t.Error("user still there")
			}
			f.do("POST", partnerPath, body, "Authorization", auth, "Content-Type", ct).want(t, 404, "error", "user_not_found")
		})
		t.Run("other_tenant_user_unknown", func(t *testing.T) {
			other := f.otherTenant("other")
			if _, err := f.svc.Create(t.Context(), other, scim.UserKind, userBody("zed@example.com"), scim.Projection{}); err != nil {
				t.Fatal(err)
			}
			f.do("POST", partnerPath, `{"action":"deprovision","email":"zed@example.com"}`, "Authorization", auth, "Content-Type", ct).want(t, 404, "error", "user_not_found")
		})
	})
}
