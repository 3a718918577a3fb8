package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestCLI(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "cli.db")
	t.Run("tenant_and_token", func(t *testing.T) {
		out, _, err := runCLI(t, "tenant", "create", "acme", "--database", db)
		if err != nil || !regexp.MustCompile(`^scimd_[A-Za-z0-9_-]{43}\n$`).MatchString(out) {
			t.Fatalf("tenant create must print the first token alone: %q %v", out, err)
		}
		if _, _, err := runCLI(t, "tenant", "create", "acme", "--database", db); err == nil || !strings.Contains(err.Error(), "exists") {
			t.Errorf("duplicate tenant: %v", err)
		}
		if _, _, err := runCLI(t, "tenant", "create", "Bad Name!", "--database", db); err == nil {
			t.Error("bad tenant name accepted")
		}
		out, _, err = runCLI(t, "token", "create", "--tenant", "acme", "--scope", "scim,admin", "--database", db)
		if err != nil || !regexp.MustCompile(`^scimd_[A-Za-z0-9_-]{43}\n$`).MatchString(out) {
			t.Fatalf("token create must print the token alone: %q %v", out, err)
		}
		if _, _, err := runCLI(t, "token", "create", "--tenant", "nope", "--database", db); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("token for unknown tenant: %v", err)
		}
		if _, _, err := runCLI(t, "token", "create", "--tenant", "acme", "--scope", "root", "--database", db); err == nil || !strings.Contains(err.Error(), "unknown scope") {
			t.Errorf("unknown scope: %v", err)
		}
		out, _, err = runCLI(t, "tenant", "list", "--database", db)
		if err != nil || !strings.HasPrefix(out, "acme\t") {
			t.Errorf("tenant list: %q %v", out, err)
		}
	})
	t.Run("token_bound_to_user", func(t *testing.T) {
		st, err := openStore(db, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ctx := context.Background()
		tn, err := st.TenantByName(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		u := &store.Resource{TenantID: tn.ID, Kind: store.KindUser, UserName: "me@example.com", Doc: []byte(`{"userName":"me@example.com"}`)}
		if err := st.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		out, _, err := runCLI(t, "token", "create", "--tenant", "acme", "--user", u.ID, "--database", db)
		if err != nil || !regexp.MustCompile(`^scimd_[A-Za-z0-9_-]{43}\n$`).MatchString(out) {
			t.Fatalf("token create --user must print the token alone: %q %v", out, err)
		}
		if p, err := scim.NewTokens(st).Authenticate(ctx, strings.TrimSpace(out)); err != nil || p.UserID != u.ID {
			t.Errorf("token bound to %q, want %q (%v)", p.UserID, u.ID, err)
		}
		if _, _, err := runCLI(t, "token", "create", "--tenant", "acme", "--user", "00000000-0000-4000-8000-000000000000", "--database", db); err == nil || !strings.Contains(err.Error(), "no user with id") {
			t.Errorf("token for a missing user: %v", err)
		}
	})
	t.Run("key32_and_sandbox", func(t *testing.T) {
		out, _, err := runCLI(t, "token", "create", "--tenant", "acme", "--scope", "admin", "--format", "key32", "--sandbox", "--database", db)
		if err != nil || !regexp.MustCompile(`^[A-Za-z0-9]{32}\n$`).MatchString(out) {
			t.Fatalf("key32: %q %v", out, err)
		}
		if _, _, err := runCLI(t, "token", "create", "--tenant", "acme", "--format", "hex", "--database", db); err == nil {
			t.Error("unknown format accepted")
		}
	})
	t.Run("tenant_set", func(t *testing.T) {
		out, _, err := runCLI(t, "tenant", "set", "acme", "free_access=true", "family.partner=disabled", "result_url_hosts=Chat.Example.com, b.example.com", "--database", db)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"free_access":true`, `"disabled_families":["partner"]`, `"result_url_hosts":["chat.example.com","b.example.com"]`} {
			if !strings.Contains(out, want) {
				t.Errorf("tenant set printed %s, want %s", out, want)
			}
		}
		out, _, err = runCLI(t, "tenant", "set", "acme", "family.partner=enabled", "free_access=false", "result_url_hosts=", "--database", db)
		if err != nil || strings.TrimSpace(out) != "{}" {
			t.Errorf("back to defaults: %q %v", out, err)
		}
		for _, bad := range []string{"free_access=maybe", "family.nope=disabled", "colour=blue", "sign_in"} {
			if _, _, err := runCLI(t, "tenant", "set", "acme", bad, "--database", db); err == nil {
				t.Errorf("%s accepted", bad)
			}
		}
	})
	t.Run("config_errors_reported_together", func(t *testing.T) {
		_, _, err := runCLI(t, "serve", "--database", "mysql://x", "--addr", "nope", "--log-level", "loud")
		if err == nil {
			t.Fatal("bad configuration accepted")
		}
		for _, want := range []string{"--database", "--addr", "--log-level"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not mention %s: %v", want, err)
			}
		}
	})
	t.Run("version", func(t *testing.T) {
		out, _, err := runCLI(t, "version")
		if err != nil || !strings.HasPrefix(out, "scimd ") {
			t.Errorf("%q %v", out, err)
		}
	})
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveUntil runs scimd serve until the returned stop is called; stop returns what
// serve returned and what it printed on stdout.
func serveUntil(t *testing.T, args ...string) (addr string, stop func() (string, error)) {
	t.Helper()
	return serveUntilWith(t, http.DefaultClient, "http", args...)
}

// serveUntilWith is serveUntil probing readiness with client at scheme://addr.
func serveUntilWith(t *testing.T, client *http.Client, scheme string, args ...string) (addr string, stop func() (string, error)) {
	t.Helper()
	addr = freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		var errb bytes.Buffer
		done <- run(ctx, append([]string{"serve", "--addr", addr}, args...), &out, &errb)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := client.Get(scheme + "://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not become ready: %v", <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, func() (string, error) {
		cancel()
		select {
		case err := <-done:
			return out.String(), err
		case <-time.After(35 * time.Second):
			t.Fatal("serve did not stop")
			return "", nil
		}
	}
}

func TestServeFirstStart(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "first.db")
	addr, stop := serveUntil(t, "--database", db)
	out, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`curl -s -H 'Authorization: Bearer (scimd_[A-Za-z0-9_-]+)' (http://\S+)/scim/v2/Users`).FindStringSubmatch(out)
	if m == nil || m[2] != "http://"+addr {
		t.Fatalf("first start must print a ready-to-paste curl line; printed:\n%s", out)
	}
	// Second start: the token printed before still works and nothing new is printed.
	addr, stop = serveUntil(t, "--database", db)
	req, _ := http.NewRequest("GET", "http://"+addr+"/scim/v2/Users", nil)
	req.Header.Set("Authorization", "Bearer "+m[1])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("printed token: status %d", res.StatusCode)
	}
	out, err = stop()
	if err != nil || strings.Contains(out, "scimd_") {
		t.Errorf("second start printed a token or failed: %q %v", out, err)
	}
}

func TestServeBootstrapToken(t *testing.T) {
	const secret = "bootstrap-secret-0123456789"
	t.Setenv("SCIMD_BOOTSTRAP_TOKEN", secret)
	db := "sqlite://" + filepath.Join(t.TempDir(), "boot.db")
	addr, stop := serveUntil(t, "--database", db)
	defer stop()
	req, _ := http.NewRequest("GET", "http://"+addr+"/scim/v2/ServiceProviderConfig", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("bootstrap token: status %d", res.StatusCode)
	}
	t.Setenv("SCIMD_BOOTSTRAP_TOKEN", "short")
	if _, _, err := runCLI(t, "serve", "--database", db); err == nil || !strings.Contains(err.Error(), "SCIMD_BOOTSTRAP_TOKEN") {
		t.Errorf("short bootstrap token: %v", err)
	}
}

// TestServeGracefulShutdown stops the server while a request is still sending its
// body: the request completes, and readiness fails once shutdown has begun.
func TestServeGracefulShutdown(t *testing.T) {
	const secret = "graceful-secret-0123456789"
	t.Setenv("SCIMD_BOOTSTRAP_TOKEN", secret)
	addr, stop := serveUntil(t, "--database", "sqlite://"+filepath.Join(t.TempDir(), "g.db"))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/scim/v2/Users", pr)
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/scim+json")
	got := make(chan int, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- -1
			return
		}
		res.Body.Close()
		got <- res.StatusCode
	}()
	if _, err := pw.Write([]byte(`{"userName":`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the request is in flight
	stopped := make(chan error, 1)
	go func() { _, err := stop(); stopped <- err }()
	time.Sleep(200 * time.Millisecond) // shutdown has begun
	if _, err := pw.Write([]byte(`"inflight@example.com"}`)); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-got; code != http.StatusCreated {
		t.Errorf("in-flight request: status %d, want 201", code)
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve: %v", err)
	}
}
