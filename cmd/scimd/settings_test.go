package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scimd/scimd/scim"
)

// TestTenantSettingsUndecodable: a tenant whose stored settings cannot be decoded
// is refused on every route family with 503 (and the failure logged naming the
// tenant), never served under the default settings, which would reopen a family
// the tenant disabled. A principal cached before the row broke is not served
// either. Another tenant is unaffected.
func TestTenantSettingsUndecodable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		all := []string{scim.ScopeSCIM, scim.ScopeCompat, scim.ScopeAdmin, scim.ScopeAudit}
		broken := e.newTenant("broken", all...)
		fine := e.newTenant("fine", all...)
		if _, err := e.tokens.SetTenant(context.Background(), "broken", []string{"family.admin=disabled"}); err != nil {
			t.Fatal(err)
		}
		tn, err := e.tokens.Tenants(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var id string
		for _, x := range tn {
			if x.Name == "broken" {
				id = x.ID
			}
		}
		// Cache the principal first: it must not outlive its settings.
		e.callAs(broken, "GET", "/scim/v2/Users", nil).want(t, 200)
		if err := e.st.DB().Exec(`UPDATE tenants SET settings = ? WHERE id = ?`, `{"disabled_families": ["admin"`, id).Error; err != nil {
			t.Fatal(err)
		}
		calls := []struct {
			name string
			do   func(token string) resp
			ok   int
		}{
			{"scim", func(tok string) resp { return e.callAs(tok, "GET", "/scim/v2/Users", nil) }, 200},
			{"scim_write", func(tok string) resp {
				return e.callAs(tok, "POST", "/scim/v2/Users", user("x"+strings.Repeat("y", len(tok)%3)+"@example.com"))
			}, 201},
			{"compat_admin", func(tok string) resp { return e.callAs(tok, "GET", "/users", nil) }, 200},
			{"compat_partner", func(tok string) resp {
				return partnerCall(t, e, tok, "POST", partnerPath, map[string]any{"action": "deprovision", "email": "nobody@example.com"})
			}, 404},
			{"admin_api", func(tok string) resp { return e.callAs(tok, "GET", "/admin/v1/audit", nil) }, 200},
		}
		// The token cache sees the change within a few refreshes.
		deadline := time.Now().Add(2 * time.Second)
		for e.callAs(broken, "GET", "/scim/v2/Users", nil).status != 503 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		for _, c := range calls {
			t.Run(c.name, func(t *testing.T) {
				if r := c.do(broken); r.status != 503 {
					t.Errorf("broken tenant: status %d, want 503; body %s", r.status, r.raw)
				}
				if r := c.do(fine); r.status != c.ok {
					t.Errorf("other tenant: status %d, want %d; body %s", r.status, c.ok, r.raw)
				}
			})
		}
		logged := 0
		for _, l := range e.logs.All() {
			for _, f := range l.Context {
				if f.Key == "error" && strings.Contains(f.Interface.(error).Error(), id) && strings.Contains(f.Interface.(error).Error(), "broken") {
					logged++
				}
			}
		}
		if logged == 0 {
			t.Errorf("no log line names the tenant (%s, broken) whose settings cannot be decoded", id)
		}
	})
}
