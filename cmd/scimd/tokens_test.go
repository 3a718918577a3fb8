package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
)

// testClock is a settable clock safe for the server's goroutines.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Now().UTC().Truncate(time.Second)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// serveTokens serves e's database again with tokens, which e then issues with; the
// last-use writes in flight are waited for after the server closes.
func serveTokens(t *testing.T, e *env, tokens *scim.Tokens) {
	t.Helper()
	t.Cleanup(tokens.Flush)
	var draining atomic.Bool
	srv := httptest.NewServer(newHandler(e.svc, tokens, e.st, zaptest.NewLogger(t), &draining, false, scimhttp.Options{MaxBodyBytes: 64 << 10}))
	t.Cleanup(srv.Close)
	e.srv, e.tokens = srv, tokens
}

// jsonBody decodes a compatibility family's JSON error body.
func jsonBody(t *testing.T, r resp) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(r.raw), &m); err != nil {
		t.Fatalf("body %q is not a JSON object of strings: %v", r.raw, err)
	}
	return m
}

// TestTokenExpiry: a token issued with an expiry works until then and is 401 from
// that moment on, saying it expired, in the error shape of each route family; a
// token without expiry is unaffected and an expiry in the past is refused.
func TestTokenExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		clk := newTestClock()
		serveTokens(t, e, scim.NewTokens(e.st, scim.WithClock(clk.now)))
		ctx := context.Background()
		expiry := clk.now().Add(time.Hour)
		secret, err := e.tokens.Issue(ctx, scim.DefaultTenant, scim.TokenOptions{Scopes: scim.AllScopes, ExpiresAt: expiry})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.tokens.Issue(ctx, scim.DefaultTenant, scim.TokenOptions{Scopes: scim.AllScopes, ExpiresAt: clk.now()}); scim.AsError(err).Kind != scim.KindInvalidValue || !strings.Contains(err.Error(), "not in the future") {
			t.Errorf("an expiry of now: %v, want invalidValue saying it is not in the future", err)
		}
		platform := func(token string) resp {
			return e.callAs(token, "DELETE", "/scim/de-provision-user/nobody@example.com", nil, "X-App-Token", token)
		}
		e.callAs(secret, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
		e.callAs(secret, "GET", "/users", nil).want(t, http.StatusOK)
		platform(secret).want(t, http.StatusNotFound) // authenticated: the user is unknown

		clk.advance(time.Hour - time.Second)
		e.callAs(secret, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
		clk.advance(time.Second) // the expiry itself: no longer valid

		r := e.callAs(secret, "GET", "/scim/v2/Users", nil)
		r.wantError(t, http.StatusUnauthorized, "")
		if d := str(r.body, "detail"); !strings.Contains(d, "expired at "+expiry.Format(time.RFC3339)) {
			t.Errorf("SCIM detail %q, want it to say when the token expired", d)
		}
		if r.header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
		r = e.callAs(secret, "GET", "/users", nil).want(t, http.StatusUnauthorized)
		if b := jsonBody(t, r); b["error"] != "unauthorized" || !strings.Contains(b["message"], "expired") {
			t.Errorf("admin family body %s, want {error: unauthorized, message: …expired…}", r.raw)
		}
		r = e.callAs("", "GET", "/api/v1/user/count?key="+secret, nil).want(t, http.StatusUnauthorized)
		if b := jsonBody(t, r); b["msg"] != "the key has expired" {
			t.Errorf("superuser family body %s, want msg \"the key has expired\"", r.raw)
		}
		r = platform(secret)
		r.wantError(t, http.StatusUnauthorized, "")
		if d := str(r.body, "detail"); d != "the Authorization token has expired" {
			t.Errorf("platform detail %q", d)
		}
		// A token without expiry, of the same tenant, still works.
		e.call("GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
	})
}

// TestTokenLastUse: a request records the token's last use, and further requests
// within LastUseInterval write nothing, from this process or from a replica; a
// request after the interval records the new time.
func TestTokenLastUse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		clk := newTestClock()
		ctx := context.Background()
		tokens := scim.NewTokens(e.st, scim.WithClock(clk.now), scim.WithLogger(zaptest.NewLogger(t)))
		serveTokens(t, e, tokens)
		secret := e.newTenant("lastuse", scim.ScopeSCIM)
		tn, err := e.st.TenantByName(ctx, "lastuse")
		if err != nil {
			t.Fatal(err)
		}
		stored := func() (id string, last *time.Time) {
			t.Helper()
			tokens.Flush()
			toks, err := e.st.ListTokens(ctx, tn.ID)
			if err != nil || len(toks) != 1 {
				t.Fatalf("ListTokens = %+v, %v; want the tenant's one token", toks, err)
			}
			return toks[0].ID, toks[0].LastUsedAt
		}
		wantLast := func(what string, want time.Time) {
			t.Helper()
			if _, got := stored(); got == nil || !got.Equal(want) {
				t.Errorf("%s: last used %v, want %v", what, got, want)
			}
		}
		id, last := stored()
		if last != nil {
			t.Fatalf("a new token was last used at %v", last)
		}
		t0 := clk.now()
		e.callAs(secret, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
		wantLast("first request", t0)

		// Within the interval this process writes nothing: a value put back by hand
		// stays, which a conditional UPDATE on every request would overwrite.
		old := t0.Add(-time.Hour)
		if err := e.st.DB().Exec(`UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, old, id).Error; err != nil {
			t.Fatal(err)
		}
		for range 5 {
			clk.advance(10 * time.Second)
			e.callAs(secret, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
		}
		wantLast("five requests within the interval", old)

		clk.advance(10 * time.Second) // 60 s after the first write
		t1 := clk.now()
		e.callAs(secret, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
		wantLast("a request an interval later", t1)

		// A replica (another process, nothing in memory) reads the recent value with
		// the token and does not write it again within the interval.
		replica := scim.NewTokens(e.st, scim.WithClock(clk.now))
		clk.advance(30 * time.Second)
		if _, err := replica.Authenticate(ctx, secret); err != nil {
			t.Fatal(err)
		}
		replica.Flush()
		wantLast("a replica within the interval", t1)
		clk.advance(30 * time.Second)
		if _, err := replica.Authenticate(ctx, secret); err != nil {
			t.Fatal(err)
		}
		replica.Flush()
		wantLast("a replica an interval later", t1.Add(time.Minute))
	})
}

// loopbackClient returns a client whose connections come from ip, another
// loopback address than the default 127.0.0.1, or skips when the system cannot
// bind it (only Linux routes all of 127.0.0.0/8 to the loopback interface).
func loopbackClient(t *testing.T, ip string) *http.Client {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot use loopback address %s here (%v); TestRateLimiterAddresses covers addresses apart", ip, err)
	}
	ln.Close()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// TestAuthFailThrottle checks the default throttle of failed authentications per
// client address: the first --auth-fail-burst bad tokens from an address are 401,
// then the address gets 429 with Retry-After in each family's shape, and a token
// this process has not accepted yet is refused without being looked up, while a
// token already in use keeps working and other addresses are unaffected.
func TestAuthFailThrottle(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	serveFlags(fs, &c)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if c.AuthFailLimit != 1 || c.AuthFailBurst != 20 {
		t.Fatalf("defaults --auth-fail-limit %g --auth-fail-burst %d, want the documented 1 and 20 (is SCIMD_AUTH_FAIL_* set?)", c.AuthFailLimit, c.AuthFailBurst)
	}
	burst := c.AuthFailBurst
	bad := func(i int) string { return "scimd_not-a-token-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) }
	forEachBackend(t, func(t *testing.T, e *env) {
		t.Run("as_served", func(t *testing.T) {
			// The tokens serve builds, on the real clock: the burst passes to 401s,
			// and 429 follows within a few more attempts.
			serveTokens(t, e, newTokens(&c, e.st, zaptest.NewLogger(t)))
			for i := range burst + 10 {
				r := e.callAs(bad(i), "GET", "/scim/v2/Users", nil)
				if r.status == http.StatusTooManyRequests {
					if i < burst {
						t.Fatalf("bad token %d of a burst of %d was throttled", i+1, burst)
					}
					if r.header.Get("Retry-After") == "" {
						t.Error("429 without Retry-After")
					}
					return
				}
				r.wantError(t, http.StatusUnauthorized, "")
			}
			t.Fatalf("%d bad tokens in a row were never throttled", burst+10)
		})
		t.Run("semantics", func(t *testing.T) {
			// The same limits on a stopped clock, so no refill blurs the counts.
			clk := newTestClock()
			serveTokens(t, e, scim.NewTokens(e.st,
				scim.WithAuthFailLimiter(scim.NewRateLimiter(c.AuthFailLimit, c.AuthFailBurst, 0, clk.now))))
			inUse := e.newTenant("throttle", scim.AllScopes...)
			e.callAs(inUse, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
			unused, err := e.tokens.IssueToken(context.Background(), "throttle", scim.AllScopes, "")
			if err != nil {
				t.Fatal(err)
			}
			for i := range burst {
				e.callAs(bad(i), "GET", "/scim/v2/Users", nil).wantError(t, http.StatusUnauthorized, "")
			}
			r := e.callAs(bad(burst), "GET", "/scim/v2/Users", nil)
			r.wantError(t, http.StatusTooManyRequests, "")
			if got := r.header.Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After %q, want 1 (one attempt a second)", got)
			}
			if d := str(r.body, "detail"); !strings.Contains(d, "failed authentications from this address") {
				t.Errorf("detail %q", d)
			}
			r = e.callAs(bad(0), "GET", "/users", nil).want(t, http.StatusTooManyRequests)
			if b := jsonBody(t, r); b["error"] != "too_many_requests" || b["message"] == "" || r.header.Get("Retry-After") == "" {
				t.Errorf("admin family: %s, Retry-After %q; want {error: too_many_requests, message} and Retry-After", r.raw, r.header.Get("Retry-After"))
			}
			// A valid token this process has not accepted yet is not even looked
			// up: to a guesser every secret looks alike.
			e.callAs(unused, "GET", "/scim/v2/Users", nil).wantError(t, http.StatusTooManyRequests, "")
			// A token in use keeps working from the same address.
			e.callAs(inUse, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
			e.callAs(inUse, "GET", "/users", nil).want(t, http.StatusOK)
			// No credentials at all is not a guess: still 401, saying what to send.
			e.callAs("", "GET", "/scim/v2/Users", nil).wantError(t, http.StatusUnauthorized, "")

			t.Run("other_address", func(t *testing.T) {
				other := loopbackClient(t, "127.0.0.2")
				do := func(token string) int {
					req := e.newRequest(t, "GET", "/scim/v2/Users", nil, "", "Bearer "+token)
					res, err := other.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer res.Body.Close()
					_, _ = io.Copy(io.Discard, res.Body)
					return res.StatusCode
				}
				if got := do(bad(1)); got != http.StatusUnauthorized {
					t.Errorf("a bad token from 127.0.0.2: %d, want 401 (only 127.0.0.1 is throttled)", got)
				}
				if got := do(unused); got != http.StatusOK {
					t.Errorf("an unused valid token from 127.0.0.2: %d, want 200", got)
				}
			})

			// A second later one more attempt from 127.0.0.1 is checked.
			clk.advance(time.Second)
			unused2, err := e.tokens.IssueToken(context.Background(), "throttle", scim.AllScopes, "")
			if err != nil {
				t.Fatal(err)
			}
			e.callAs(unused2, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
			e.callAs(bad(2), "GET", "/scim/v2/Users", nil).wantError(t, http.StatusUnauthorized, "")
			e.callAs(bad(3), "GET", "/scim/v2/Users", nil).wantError(t, http.StatusTooManyRequests, "")
		})
	})
}

// TestTenantRateLimit sets per-tenant rate limits with tenant settings (what
// `scimd tenant set` changes): a tenant's own rate and burst replace the server's
// for its tokens, "unlimited" exempts them, and a change applies to the next
// request; with no server-wide limit a tenant may still have one.
func TestTenantRateLimit(t *testing.T) {
	ctx := context.Background()
	// passes counts the requests token makes before its first 429 (at most max).
	passes := func(t *testing.T, e *env, token string, max int) int {
		t.Helper()
		for i := range max {
			r := e.callAs(token, "GET", "/scim/v2/Users", nil)
			if r.status == http.StatusTooManyRequests {
				r.wantError(t, http.StatusTooManyRequests, "")
				if r.header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				return i
			}
			r.want(t, http.StatusOK)
		}
		return max
	}
	set := func(t *testing.T, e *env, tenant string, pairs ...string) {
		t.Helper()
		if _, err := e.tokens.SetTenant(ctx, tenant, pairs); err != nil {
			t.Fatal(err)
		}
	}
	forEachBackend(t, func(t *testing.T, e *env) {
		t.Run("server_limit_on", func(t *testing.T) {
			clk := newTestClock() // stopped: buckets do not refill
			serveTokens(t, e, scim.NewTokens(e.st, scim.WithRateLimiter(scim.NewRateLimiter(0.5, 2, 0, clk.now))))
			own, unlimited, dflt, burstOnly := e.newTenant("own", scim.ScopeSCIM), e.newTenant("unlimited", scim.ScopeSCIM),
				e.newTenant("dflt", scim.ScopeSCIM), e.newTenant("burstonly", scim.ScopeSCIM)
			set(t, e, "own", "rate_limit=1", "rate_burst=4")
			set(t, e, "unlimited", "rate_limit=unlimited")
			set(t, e, "burstonly", "rate_burst=3")
			for _, tc := range []struct {
				name  string
				token string
				want  int
			}{{"own", own, 4}, {"unlimited", unlimited, 12}, {"default", dflt, 2}, {"burst_only", burstOnly, 3}} {
				if got := passes(t, e, tc.token, 12); got != tc.want {
					t.Errorf("tenant %s: %d requests passed, want %d", tc.name, got, tc.want)
				}
			}
			// Settings are read with the token on every request: a change applies at once.
			set(t, e, "own", "rate_limit=unlimited")
			e.callAs(own, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
			set(t, e, "unlimited", "rate_limit=default")
			if got := passes(t, e, unlimited, 5); got != 2 {
				t.Errorf("back to the server's limit: %d passed, want its burst of 2", got)
			}
		})
		t.Run("server_limit_off", func(t *testing.T) {
			serveTokens(t, e, scim.NewTokens(e.st))
			slow, free := e.newTenant("slow", scim.ScopeSCIM), e.newTenant("free", scim.ScopeSCIM)
			set(t, e, "slow", "rate_limit=0.1", "rate_burst=2") // one request every 10 s after the burst
			if got := passes(t, e, slow, 6); got != 2 {
				t.Errorf("tenant with its own limit: %d passed, want 2", got)
			}
			if got := passes(t, e, free, 10); got != 10 {
				t.Errorf("tenant without: %d of 10 passed", got)
			}
		})
	})
}

// TestTokenCLI: token create --expires-in/--expires-at, token list, and the rate
// settings of tenant set.
func TestTokenCLI(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "tokens.db")
	if _, _, err := runCLI(t, "tenant", "create", "acme", "--scope", "scim,compat", "--database", db); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	out, _, err := runCLI(t, "token", "create", "--tenant", "acme", "--scope", "admin", "--expires-in", "90d", "--database", db)
	if err != nil || !regexp.MustCompile(`^scimd_[A-Za-z0-9_-]{43}\n$`).MatchString(out) {
		t.Fatalf("token create --expires-in must print the token alone: %q %v", out, err)
	}
	secret := strings.TrimSpace(out)
	if _, _, err := runCLI(t, "token", "create", "--tenant", "acme", "--expires-at", "2099-12-31T23:00:00+01:00", "--database", db); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"zero days", []string{"--expires-in", "0d"}, "whole days"},
		{"negative", []string{"--expires-in", "-5m"}, "positive duration"},
		{"junk", []string{"--expires-in", "soon"}, "positive duration"},
		{"both", []string{"--expires-in", "1d", "--expires-at", "2099-01-01T00:00:00Z"}, "not both"},
		{"not RFC 3339", []string{"--expires-at", "2099-01-01"}, "RFC 3339"},
		{"past", []string{"--expires-at", "2001-01-01T00:00:00Z"}, "not in the future"},
	} {
		args := append([]string{"token", "create", "--tenant", "acme", "--database", db}, tc.args...)
		if _, _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}

	out, _, err = runCLI(t, "token", "list", "--tenant", "acme", "--database", db)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "LAST USED") {
		t.Fatalf("token list: want a header and the three tokens:\n%s", out)
	}
	if strings.Contains(out, secret) || strings.Contains(out, "scimd_") {
		t.Fatalf("token list shows a secret:\n%s", out)
	}
	f := strings.Fields(lines[2]) // ID TENANT SCOPES PROFILE USER CREATED EXPIRES LAST-USED REVOKED
	if len(f) != 9 || f[1] != "acme" || f[2] != "admin" || f[4] != "-" || f[7] != "-" || f[8] != "-" {
		t.Fatalf("second token listed as %q", lines[2])
	}
	exp, err := time.Parse(time.RFC3339, f[6])
	if want := before.Add(90 * 24 * time.Hour); err != nil || exp.Before(want.Add(-time.Second)) || exp.After(want.Add(time.Minute)) {
		t.Errorf("--expires-in 90d expires %q (%v), want about %s", f[6], err, want.UTC().Format(time.RFC3339))
	}
	if f := strings.Fields(lines[3]); len(f) != 9 || f[6] != "2099-12-31T22:00:00Z" {
		t.Errorf("--expires-at token listed as %q, want expiry 2099-12-31T22:00:00Z", lines[3])
	}
	if _, _, err := runCLI(t, "token", "list", "--tenant", "nope", "--database", db); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("token list of an unknown tenant: %v", err)
	}

	// token revoke: by the id token list prints, before or after the flags.
	id := f[0]
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no tenant", []string{id}, "usage"},
		{"no id", []string{"--tenant", "acme"}, "usage"},
		{"unknown tenant", []string{"--tenant", "nope", id}, `tenant "nope" does not exist`},
		{"unknown id", []string{"--tenant", "acme", "no-such-id"}, `has no token "no-such-id"`},
	} {
		args := append([]string{"token", "revoke", "--database", db}, tc.args...)
		if _, _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("token revoke, %s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	out, _, err = runCLI(t, "token", "revoke", id, "--tenant", "acme", "--database", db)
	if err != nil || !strings.Contains(out, "revoked token "+id) {
		t.Fatalf("token revoke: %q %v", out, err)
	}
	if _, _, err := runCLI(t, "token", "revoke", "--tenant", "acme", "--database", db, id); err != nil {
		t.Errorf("revoking a revoked token again: %v, want no error", err)
	}
	out, _, err = runCLI(t, "token", "list", "--tenant", "acme", "--database", db)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		if revoked := f[8] != "-"; revoked != (f[0] == id) {
			t.Errorf("after revoking %s, token list shows %q", id, line)
		}
	}
	st, err := openStore(db, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := scim.NewTokens(st).Authenticate(context.Background(), secret); scim.AsError(err).Kind != scim.KindUnauthorized {
		t.Errorf("the revoked token authenticates: %v", err)
	}

	out, _, err = runCLI(t, "tenant", "set", "acme", "rate_limit=2.5", "rate_burst=10", "--database", db)
	if err != nil || !strings.Contains(out, `"rate_limit":2.5`) || !strings.Contains(out, `"rate_burst":10`) {
		t.Errorf("tenant set rate_limit: %q %v", out, err)
	}
	out, _, err = runCLI(t, "tenant", "set", "acme", "rate_limit=unlimited", "--database", db)
	if err != nil || !strings.Contains(out, `"no_rate_limit":true`) || strings.Contains(out, `"rate_limit"`) {
		t.Errorf("tenant set rate_limit=unlimited: %q %v", out, err)
	}
	for _, pair := range []string{"rate_limit=fast", "rate_limit=-1", "rate_limit=NaN", "rate_burst=1.5", "rate_burst=-2"} {
		key, _, _ := strings.Cut(pair, "=")
		if _, _, err := runCLI(t, "tenant", "set", "acme", pair, "--database", db); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("tenant set %s: %v, want an error naming %s", pair, err, key)
		}
	}
}

// TestAuthFailConfig: bad throttle values, from flags or the environment, are
// refused at start with the others.
func TestAuthFailConfig(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "c.db")
	_, _, err := runCLI(t, "serve", "--database", db, "--addr", "127.0.0.1:0", "--auth-fail-limit", "-1", "--auth-fail-burst", "-3", "--rate-burst", "-1")
	for _, w := range []string{"--auth-fail-limit must be", "--auth-fail-burst must be", "--rate-burst must be"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not say %q", err, w)
		}
	}
	t.Setenv("SCIMD_AUTH_FAIL_LIMIT", "often")
	if _, _, err := runCLI(t, "serve", "--database", db, "--addr", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "--auth-fail-limit must be") {
		t.Errorf("SCIMD_AUTH_FAIL_LIMIT=often: %v", err)
	}
}
