package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	scimmail "github.com/scimd/scimd/scim/mail"
)

// renderFor writes a set_password letter for the named tenant of the database at
// db, with the templates in force for it.
func renderFor(t *testing.T, db, tenant, firstName string) scimmail.Rendered {
	t.Helper()
	st, err := openStore(db, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tn, err := st.TenantByName(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	r, err := scimmail.Render(scim.Letter{
		Message: scim.Message{Kind: scim.MessageSetPassword, Recipient: "ann@example.com", Payload: []byte(`{"first_name":"` + firstName + `"}`)},
		Tenant:  tn, Link: "https://id.example.com/account/set-password?token=abc", Expires: time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestTenantTemplate overrides a tenant's set_password templates with `scimd tenant
// template`: the override applies to that tenant only, its HTML is escaped, invalid
// templates are refused with the reason, and --reset restores the built-in ones.
func TestTenantTemplate(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "tpl.db")
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tn := range []string{"acme", "other"} {
		if _, _, err := runCLI(t, "tenant", "create", tn, "--database", db); err != nil {
			t.Fatal(err)
		}
	}
	text := file("text.txt", "Hi {{.FirstName}}, welcome to {{.Tenant}}: {{.Link}} (until {{.Expires}})\n")
	html := file("body.html", `<p>Hi {{.FirstName}}, <a href="{{.Link}}">join {{.Tenant}}</a></p>`)
	out, _, err := runCLI(t, "tenant", "template", "acme", "set_password", "--subject", "Welcome to {{.Tenant}}",
		"--text", text, "--html", html, "--database", db)
	if err != nil || !strings.Contains(out, `"subject":"Welcome to {{.Tenant}}"`) {
		t.Fatalf("template: %q %v", out, err)
	}

	r := renderFor(t, db, "acme", "<b>Ann</b>")
	if r.Subject != "Welcome to acme" {
		t.Errorf("subject %q", r.Subject)
	}
	if want := "Hi <b>Ann</b>, welcome to acme: https://id.example.com/account/set-password?token=abc (until 2 January 2030 at 03:04 UTC)\n"; r.Text != want {
		t.Errorf("text %q, want %q", r.Text, want)
	}
	if want := `<p>Hi &lt;b&gt;Ann&lt;/b&gt;, <a href="https://id.example.com/account/set-password?token=abc">join acme</a></p>`; r.HTML != want {
		t.Errorf("html %q, want %q", r.HTML, want)
	}
	if r := renderFor(t, db, "other", "Ann"); r.Subject != "Set your password for other" || strings.Contains(r.Text, "welcome to") {
		t.Errorf("another tenant got the override: %+v", r)
	}

	// Changing one part keeps the others.
	if out, _, err := runCLI(t, "tenant", "template", "acme", "set_password", "--subject", "Hello from {{.Tenant}}", "--database", db); err != nil || !strings.Contains(out, `"text":"Hi {{.FirstName}}`) {
		t.Fatalf("subject only: %q %v", out, err)
	}
	if r := renderFor(t, db, "acme", "Ann"); r.Subject != "Hello from acme" || !strings.HasPrefix(r.Text, "Hi Ann, welcome") {
		t.Errorf("after changing the subject: %+v", r)
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"text_does_not_parse", []string{"--text", file("bad.txt", "Hi {{.FirstName")}, "text:"},
		{"unknown_field", []string{"--text", file("field.txt", "Your password is {{.Password}}")}, "can't evaluate field Password"},
		{"html_does_not_parse", []string{"--html", file("bad.html", "<p>{{if .Link}}</p>")}, "html:"},
		{"html_unsafe_context", []string{"--html", file("ctx.html", `<a href="{{.Link}}`)}, "non-text context"},
		{"subject_does_not_parse", []string{"--subject", "{{.Tenant"}, "subject:"},
		{"unknown_kind", []string{}, "message kind"},
		{"missing_file", []string{"--text", filepath.Join(dir, "nope.txt")}, "--text"},
	} {
		t.Run(c.name, func(t *testing.T) {
			kind := "set_password"
			if c.name == "unknown_kind" {
				kind = "newsletter"
			}
			_, _, err := runCLI(t, append([]string{"tenant", "template", "acme", kind, "--database", db}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
			if r := renderFor(t, db, "acme", "Ann"); r.Subject != "Hello from acme" {
				t.Errorf("a refused template changed the override: %+v", r)
			}
		})
	}
	if _, _, err := runCLI(t, "tenant", "template", "nope", "set_password", "--reset", "--database", db); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("unknown tenant: %v", err)
	}

	out, _, err = runCLI(t, "tenant", "template", "acme", "set_password", "--reset", "--database", db)
	if err != nil || strings.TrimSpace(out) != "{}" {
		t.Fatalf("reset: %q %v", out, err)
	}
	if r := renderFor(t, db, "acme", "Ann"); r.Subject != "Set your password for acme" || !strings.Contains(r.HTML, "Choose your password") {
		t.Errorf("after --reset: %+v", r)
	}
}

// TestDeliveryTemplateOverride sends a message with the tenant's override over
// SMTP, while another tenant's override does not touch it.
func TestDeliveryTemplateOverride(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		sk := startSink(t, "")
		me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{})
		ctx := context.Background()
		e.newTenant("other", scim.ScopeSCIM)
		subj, text := "Other {{.Tenant}}", "Other text {{.Link}}"
		if _, err := e.tokens.EditTemplate(ctx, "other", scim.MessageSetPassword, scim.TemplateEdit{Subject: &subj, Text: &text}, scimmail.CheckTemplate); err != nil {
			t.Fatal(err)
		}
		provisionPartner(t, e, "hal@example.com", "https://partner.example/")
		me.step(t)
		subj, text = "Welcome aboard {{.Tenant}}", "Dear {{.Recipient}}, start here: {{.Link}}\n"
		if _, err := e.tokens.EditTemplate(ctx, "default", scim.MessageSetPassword, scim.TemplateEdit{Subject: &subj, Text: &text}, scimmail.CheckTemplate); err != nil {
			t.Fatal(err)
		}
		provisionPartner(t, e, "ida@example.com", "https://partner.example/")
		me.step(t)
		got := sk.messages()
		if len(got) != 2 {
			t.Fatalf("received %d messages, want 2", len(got))
		}
		if s := got[0].msg.Header.Get("Subject"); s != "Set your password for default" {
			t.Errorf("before the override: subject %q", s)
		}
		if s := got[1].msg.Header.Get("Subject"); s != "Welcome aboard default" {
			t.Errorf("with the override: subject %q", s)
		}
		if !strings.HasPrefix(got[1].text, "Dear ida@example.com, start here: "+e.srv.URL+"/account/set-password?token=") {
			t.Errorf("text %q", got[1].text)
		}
		linkOf(t, got[1])
	})
}
