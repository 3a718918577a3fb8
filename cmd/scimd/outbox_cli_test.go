package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/store"
)

// TestOutboxCLI lists a tenant's messages with `scimd outbox list`, only the failed
// ones with --failed, and makes a failed message pending again with `scimd outbox
// retry`.
func TestOutboxCLI(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "outbox.db")
	ctx := context.Background()
	if _, _, err := runCLI(t, "tenant", "create", "acme", "--database", db); err != nil {
		t.Fatal(err)
	}
	// Two users with a message each; the first message fails.
	st, err := openStore(db, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	tn, err := st.TenantByName(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ann@example.com", "bob@example.com"} {
		u := &store.Resource{TenantID: tn.ID, Kind: store.KindUser, UserName: name, Doc: []byte(`{"userName":"` + name + `"}`),
			Outbox: []store.Message{{Kind: "set_password", Recipient: name}}}
		if err := st.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct creation times: the list is oldest first
	}
	msgs, err := st.Outbox(ctx, tn.ID)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("outbox %+v %v", msgs, err)
	}
	failedID, pendingID := msgs[0].ID, msgs[1].ID
	claimed, err := st.ClaimMessages(ctx, 10, store.Claim{Token: "cli-test", Lease: time.Minute})
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim: %d %v", len(claimed), err)
	}
	if ok, err := st.FinishMessage(ctx, "cli-test", store.MessageOutcome{ID: failedID, Status: store.MessageFailed, LastError: "smtp RCPT TO refused: 550 no such user"}); !ok || err != nil {
		t.Fatalf("finish: %v %v", ok, err)
	}
	if ok, err := st.FinishMessage(ctx, "cli-test", store.MessageOutcome{ID: pendingID, Status: store.MessagePending, Uncounted: true}); !ok || err != nil {
		t.Fatalf("finish: %v %v", ok, err)
	}
	st.Close()

	header := regexp.MustCompile(`^ID\s+KIND\s+STATUS\s+ATTEMPTS\s+CREATED\s+RECIPIENT\s+LAST ERROR\n`)
	row := func(id, status, attempts, recipient, lastError string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^` + id + `\s+set_password\s+` + status + `\s+` + attempts +
			`\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+` + regexp.QuoteMeta(recipient) + `\s*` + regexp.QuoteMeta(lastError) + `$`)
	}
	t.Run("list", func(t *testing.T) {
		out, _, err := runCLI(t, "outbox", "list", "--tenant", "acme", "--database", db)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if !header.MatchString(out) || len(lines) != 3 {
			t.Fatalf("list:\n%s", out)
		}
		if !row(failedID, "failed", "1", "ann@example.com", "smtp RCPT TO refused: 550 no such user").MatchString(lines[1]) ||
			!row(pendingID, "pending", "0", "bob@example.com", "").MatchString(lines[2]) {
			t.Fatalf("rows, oldest first:\n%s", out)
		}
	})
	t.Run("list_failed", func(t *testing.T) {
		out, _, err := runCLI(t, "outbox", "list", "--failed", "--tenant", "acme", "--database", db)
		if err != nil {
			t.Fatal(err)
		}
		if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], failedID+" ") {
			t.Fatalf("--failed:\n%s", out)
		}
	})
	t.Run("retry_failed", func(t *testing.T) {
		out, _, err := runCLI(t, "outbox", "retry", strings.ToUpper(failedID), "--database", db)
		if err != nil || out != "message "+strings.ToUpper(failedID)+" is pending again\n" {
			t.Fatalf("retry: %q %v", out, err)
		}
		out, _, _ = runCLI(t, "outbox", "list", "--tenant", "acme", "--database", db)
		if !row(failedID, "pending", "0", "ann@example.com", "smtp RCPT TO refused: 550 no such user").MatchString(out) {
			t.Fatalf("after retry:\n%s", out)
		}
		if out, _, _ := runCLI(t, "outbox", "list", "--failed", "--tenant", "acme", "--database", db); !header.MatchString(out) || strings.Count(out, "\n") != 1 {
			t.Fatalf("--failed after retry lists:\n%s", out)
		}
	})
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"retry_unknown_id", []string{"retry", "00000000-0000-4000-8000-000000000000"}, "no unsent message with id"},
		{"retry_without_id", []string{"retry"}, "usage: scimd outbox"},
		{"list_unknown_tenant", []string{"list", "--tenant", "nope"}, `tenant "nope" does not exist`},
		{"list_without_tenant", []string{"list"}, "usage: scimd outbox"},
		{"unknown_subcommand", []string{"purge"}, "usage: scimd outbox"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"outbox"}, c.args...)
			if c.name != "unknown_subcommand" {
				args = append(args, "--database", db)
			}
			if _, _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

// TestSMTPFlagsReportedTogether reports every problem of the delivery flags at once.
func TestSMTPFlagsReportedTogether(t *testing.T) {
	t.Setenv("SCIMD_SMTP_PASSWORD", "")
	db := "sqlite://" + filepath.Join(t.TempDir(), "flags.db")
	_, _, err := runCLI(t, "serve", "--database", db, "--smtp-addr", "smtp.example.com", "--smtp-tls", "ssl",
		"--smtp-username", "scimd", "--mail-from", "not an address", "--password-min-length", "0", "--smtp-ca-file", filepath.Join(t.TempDir(), "none.pem"))
	if err == nil {
		t.Fatal("bad delivery flags accepted")
	}
	for _, want := range []string{"--smtp-addr", "--smtp-tls", "--mail-from", "--base-url", "SCIMD_SMTP_PASSWORD", "--password-min-length", "--smtp-ca-file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	// Without --smtp-addr, the server settings are not required.
	if err := (&Config{SMTPTLS: "starttls", PasswordMinLength: 8}).validateMail(); len(err) != 0 {
		t.Errorf("no SMTP server: %v", err)
	}
}
