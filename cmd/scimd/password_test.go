package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// TestPasswordPolicy: every route that takes a password applies the same policy
// (scim.CheckPassword): at least --password-min-length characters (8 by default,
// counted as code points, not bytes) and at most 72 bytes, the most bcrypt reads.
// A refusal is the route family's own 400 (the set-password page: its form error,
// 422) and stores nothing; a password within the policy is accepted.
func TestPasswordPolicy(t *testing.T) {
	passwords := []struct {
		name   string
		pw     string
		accept bool
	}{
		{"seven_chars", "seven77", false},
		{"seven_chars_fourteen_bytes", "äöüäöüä", false},
		{"eight_chars", "eight888", true},
		{"eight_chars_sixteen_bytes", "äöüäöüäö", true},
		{"72_bytes", strings.Repeat("p", 72), true},
		{"73_bytes", strings.Repeat("p", 73), false},
		{"74_bytes_37_chars", strings.Repeat("ä", 37), false},
	}
	forEachBackend(t, func(t *testing.T, e *env) {
		sk := startSink(t, "")
		me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{})
		keys := platformSetup(t, e)
		su := superuserNewTenant(t, e, "su")
		n := 0
		fresh := func() string { n++; return fmt.Sprintf("pw%03d@example.com", n) }
		// newUser creates a user without a password through SCIM and returns its id.
		newUser := func(t *testing.T, name string) string {
			t.Helper()
			return str(e.call("POST", "/scim/v2/Users", user(name)).want(t, http.StatusCreated).body, "id")
		}
		scimRefused := func(t *testing.T, r resp) { r.wantError(t, http.StatusBadRequest, "invalidValue") }
		routes := []struct {
			name string
			// send tries pw and returns the status, and whether the answer is the
			// family's refusal (checked only when refused).
			send    func(t *testing.T, pw string) (int, func(t *testing.T))
			created int
		}{
			{"scim_post", func(t *testing.T, pw string) (int, func(*testing.T)) {
				r := e.call("POST", "/scim/v2/Users", user(fresh(), "password", pw))
				return r.status, func(t *testing.T) { scimRefused(t, r) }
			}, http.StatusCreated},
			{"scim_put", func(t *testing.T, pw string) (int, func(*testing.T)) {
				name := fresh()
				r := e.call("PUT", "/scim/v2/Users/"+newUser(t, name), user(name, "password", pw))
				return r.status, func(t *testing.T) { scimRefused(t, r) }
			}, http.StatusOK},
			{"scim_patch_path", func(t *testing.T, pw string) (int, func(*testing.T)) {
				r := e.call("PATCH", "/scim/v2/Users/"+newUser(t, fresh()), patchBody(op("replace", "password", pw)))
				return r.status, func(t *testing.T) { scimRefused(t, r) }
			}, http.StatusOK},
			{"scim_patch_no_path", func(t *testing.T, pw string) (int, func(*testing.T)) {
				r := e.call("PATCH", "/scim/v2/Users/"+newUser(t, fresh()), patchBody(op("add", "", map[string]any{"password": pw})))
				return r.status, func(t *testing.T) { scimRefused(t, r) }
			}, http.StatusOK},
			{"scim_bulk", func(t *testing.T, pw string) (int, func(*testing.T)) {
				r := e.call("POST", "/scim/v2/Bulk", map[string]any{
					"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"},
					"Operations": []any{map[string]any{"method": "POST", "path": "/Users", "bulkId": "u",
						"data": user(fresh(), "password", pw)}},
				}).want(t, http.StatusOK)
				ops, _ := r.body["Operations"].([]any)
				if len(ops) != 1 {
					t.Fatalf("bulk answer %s", r.raw)
				}
				o := ops[0].(map[string]any)
				var status int
				fmt.Sscan(fmt.Sprint(o["status"]), &status)
				return status, func(t *testing.T) {
					if typ := str(o, "response.scimType"); typ != "invalidValue" {
						t.Errorf("bulk operation scimType %q, want invalidValue: %s", typ, r.raw)
					}
				}
			}, http.StatusCreated},
			{"platform_provision", func(t *testing.T, pw string) (int, func(*testing.T)) {
				email := fresh()
				body := platformSample(strings.TrimSuffix(email, "@example.com"), email)
				body["password"] = pw
				r := e.platform(keys, "POST", "/scim/provision-user", body)
				return r.status, func(t *testing.T) { scimRefused(t, r) }
			}, http.StatusCreated},
			{"platform_update", func(t *testing.T, pw string) (int, func(*testing.T)) {
				email := fresh()
				e.platform(keys, "POST", "/scim/provision-user", platformSample(strings.TrimSuffix(email, "@example.com"), email)).want(t, http.StatusCreated)
				r := e.platform(keys, "PUT", "/scim/update-user/"+email, map[string]any{"password": pw})
				return r.status, func(t *testing.T) { scimRefused(t, r) }
			}, http.StatusOK},
			{"superuser_create_user", func(t *testing.T, pw string) (int, func(*testing.T)) {
				r := superuserPost(t, e, "/api/v1/create_user", map[string]any{"key": su.key, "email": fresh(),
					"first_name": "A", "last_name": "B", "password": pw, "email_confirmed": true})
				return r.status, func(t *testing.T) { r.wantError(t, http.StatusBadRequest, "invalid_password") }
			}, http.StatusCreated},
			{"set_password_page", func(t *testing.T, pw string) (int, func(*testing.T)) {
				partnerCall(t, e, e.token, "POST", partnerPath, map[string]any{"email": fresh(), "result_url": "https://partner.example/"}).want(t, http.StatusCreated)
				me.step(t)
				msgs := sk.messages()
				b := newBrowser(t)
				form := b.get(linkOf(t, msgs[len(msgs)-1])).want(t, http.StatusOK, "Set your password").form(t)
				p := b.post(e.srv.URL+scim.SetPasswordPath, url.Values{"token": form["token"], "csrf": form["csrf"], "password": {pw}, "confirm": {pw}})
				status := p.status
				if status == http.StatusUnprocessableEntity {
					status = http.StatusBadRequest // the page's form error is its 400
				}
				return status, func(t *testing.T) { p.want(t, http.StatusUnprocessableEntity, `id="password-error"`) }
			}, http.StatusSeeOther},
		}
		for _, rt := range routes {
			t.Run(rt.name, func(t *testing.T) {
				for _, p := range passwords {
					t.Run(p.name, func(t *testing.T) {
						status, refusal := rt.send(t, p.pw)
						switch {
						case p.accept && status != rt.created:
							t.Errorf("status %d, want %d (accepted)", status, rt.created)
						case !p.accept && status != http.StatusBadRequest:
							t.Errorf("status %d, want 400 (refused)", status)
						case !p.accept:
							refusal(t)
						}
					})
				}
			})
		}
	})
}

// TestPasswordMinLengthConfigured: a minimum set by the operator
// (--password-min-length, here 12) holds on the SCIM API, the compatibility routes
// and the set-password page alike.
func TestPasswordMinLengthConfigured(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			e := newEnv(t, b, scimhttp.Options{MaxBodyBytes: 64 << 10}, func(l *scim.Limits) { l.PasswordMinLength = 12 })
			sk := startSink(t, "")
			me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{})
			su := superuserNewTenant(t, e, "su")
			e.call("POST", "/scim/v2/Users", user("a@example.com", "password", "elevenchars")).wantError(t, http.StatusBadRequest, "invalidValue")
			e.call("POST", "/scim/v2/Users", user("b@example.com", "password", "twelve chars")).want(t, http.StatusCreated)
			superuserPost(t, e, "/api/v1/create_user", map[string]any{"key": su.key, "email": "c@example.com",
				"password": "elevenchars", "email_confirmed": true}).wantError(t, http.StatusBadRequest, "invalid_password")
			partnerCall(t, e, e.token, "POST", partnerPath, map[string]any{"email": "d@example.com", "result_url": "https://partner.example/"}).want(t, http.StatusCreated)
			me.step(t)
			br := newBrowser(t)
			form := br.get(linkOf(t, sk.messages()[0])).want(t, http.StatusOK, `minlength="12"`).form(t)
			br.post(e.srv.URL+scim.SetPasswordPath, url.Values{"token": form["token"], "csrf": form["csrf"],
				"password": {"elevenchars"}, "confirm": {"elevenchars"}}).want(t, http.StatusUnprocessableEntity, "at least 12 characters")
		})
	}
}
