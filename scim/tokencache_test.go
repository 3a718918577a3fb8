package scim_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/sqlite"
)

// countingStore is a real store that counts token reads and can be made to fail
// reading the token epoch, as an unreachable database would.
type countingStore struct {
	*gormstore.Store
	byHash    atomic.Int64
	epochDown atomic.Bool
}

func (c *countingStore) TokenByHash(ctx context.Context, h []byte) (store.Token, error) {
	c.byHash.Add(1)
	return c.Store.TokenByHash(ctx, h)
}

func (c *countingStore) TokenEpoch(ctx context.Context) (int64, error) {
	if c.epochDown.Load() {
		return 0, errors.New("connection refused")
	}
	return c.Store.TokenEpoch(ctx)
}

// openShared opens two stores on one SQLite file: two processes (or replicas)
// sharing a database.
func openShared(t *testing.T) (*gormstore.Store, *gormstore.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scimd.db")
	var out [2]*gormstore.Store
	for i := range out {
		st, err := sqlite.Open(path, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		if err := st.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		out[i] = st
	}
	return out[0], out[1]
}

// cachedTokens returns Tokens over st with the token cache kept current every
// refresh until the test ends, and waits for its first poll.
func cachedTokens(t *testing.T, st scim.Accounts, refresh time.Duration, opts ...scim.TokensOption) *scim.Tokens {
	t.Helper()
	tokens := scim.NewTokens(st, append(opts, scim.WithTokenCache(refresh))...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tokens.WatchTokens(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	time.Sleep(refresh / 2) // the first poll runs at once
	return tokens
}

func mustAuth(t *testing.T, tokens *scim.Tokens, secret string) scim.Principal {
	t.Helper()
	p, err := tokens.Authenticate(context.Background(), secret)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return p
}

// TestTokenCacheServesKnownTokens: with the cache current, a token accepted once is
// not read again.
func TestTokenCacheServesKnownTokens(t *testing.T) {
	a, _ := openShared(t)
	st := &countingStore{Store: a}
	tokens := cachedTokens(t, st, 20*time.Millisecond)
	secret, err := tokens.Bootstrap(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		mustAuth(t, tokens, secret)
	}
	if n := st.byHash.Load(); n != 1 {
		t.Fatalf("50 requests with one token read it %d times, want once", n)
	}
}

// TestTokenCacheSeesOtherProcesses: a revocation and a tenant change made by
// another process (a replica, the CLI) reach this process's cache within three
// refresh intervals; a refused or changed token is read again.
func TestTokenCacheSeesOtherProcesses(t *testing.T) {
	a, b := openShared(t)
	const refresh = 20 * time.Millisecond
	tokens := cachedTokens(t, a, refresh)
	other := scim.NewTokens(b)
	ctx := context.Background()
	secret, err := tokens.Bootstrap(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if p := mustAuth(t, tokens, secret); p.Tenant.Settings.RateLimit != 0 {
		t.Fatalf("fresh tenant has rate limit %v", p.Tenant.Settings.RateLimit)
	}
	if _, err := other.SetTenant(ctx, scim.DefaultTenant, []string{"rate_limit=1000"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*refresh, "the other process's tenant setting", func() bool {
		return mustAuth(t, tokens, secret).Tenant.Settings.RateLimit == 1000
	})
	list, err := other.ListTokens(ctx, scim.DefaultTenant)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListTokens = %v, %v", list, err)
	}
	if err := other.Revoke(ctx, scim.DefaultTenant, list[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*refresh, "the other process's revocation", func() bool {
		_, err := tokens.Authenticate(ctx, secret)
		return scim.AsError(err).Kind == scim.KindUnauthorized
	})
}

// waitFor polls cond until it holds, failing the test when it does not within a
// generous bound; it logs how long it took against want, the designed bound (a
// loaded machine may exceed it, the generous bound guards against never).
func waitFor(t *testing.T, want time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("%s not seen after %s (designed bound %s)", what, time.Since(start), want)
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("%s seen after %s (designed bound %s)", what, time.Since(start).Round(time.Millisecond), want)
}

// TestTokenCacheOwnChangesAtOnce: a change made through this process's Tokens is
// seen by its very next request, without waiting for a poll.
func TestTokenCacheOwnChangesAtOnce(t *testing.T) {
	a, _ := openShared(t)
	tokens := cachedTokens(t, a, time.Second) // no poll during the test
	ctx := context.Background()
	secret, err := tokens.Bootstrap(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	p := mustAuth(t, tokens, secret)
	if _, err := tokens.SetTenant(ctx, scim.DefaultTenant, []string{"rate_limit=1000"}); err != nil {
		t.Fatal(err)
	}
	if got := mustAuth(t, tokens, secret).Tenant.Settings.RateLimit; got != 1000 {
		t.Fatalf("after SetTenant the next request sees rate limit %v, want 1000", got)
	}
	u := &store.Resource{TenantID: p.TenantID, Kind: store.KindUser, UserName: "ann", Doc: []byte(`{"userName":"ann"}`)}
	if err := a.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	user, err := tokens.IssueForUser(ctx, p.TenantID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	mustAuth(t, tokens, user)
	if err := tokens.RevokeUser(ctx, p.TenantID, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Authenticate(ctx, user); scim.AsError(err).Kind != scim.KindUnauthorized {
		t.Fatalf("after RevokeUser the next request got %v, want 401", err)
	}
	if err := tokens.Revoke(ctx, scim.DefaultTenant, p.TokenID); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Authenticate(ctx, secret); scim.AsError(err).Kind != scim.KindUnauthorized {
		t.Fatalf("after Revoke the next request got %v, want 401", err)
	}
}

// TestTokenCacheOffWithoutEpoch: when the epoch cannot be read the cache is not
// trusted: every request reads its token until a poll succeeds again.
func TestTokenCacheOffWithoutEpoch(t *testing.T) {
	a, _ := openShared(t)
	st := &countingStore{Store: a}
	const refresh = 20 * time.Millisecond
	tokens := cachedTokens(t, st, refresh)
	secret, err := tokens.Bootstrap(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	mustAuth(t, tokens, secret)
	mustAuth(t, tokens, secret)
	if n := st.byHash.Load(); n != 1 {
		t.Fatalf("token read %d times with the cache current, want 1", n)
	}
	st.epochDown.Store(true)
	time.Sleep(4 * refresh)
	before := st.byHash.Load()
	for range 5 {
		mustAuth(t, tokens, secret)
	}
	if n := st.byHash.Load() - before; n != 5 {
		t.Fatalf("with the epoch unreadable 5 requests read the token %d times, want 5", n)
	}
	st.epochDown.Store(false)
	time.Sleep(4 * refresh)
	mustAuth(t, tokens, secret)
	before = st.byHash.Load()
	mustAuth(t, tokens, secret)
	if n := st.byHash.Load() - before; n != 0 {
		t.Fatalf("with the epoch readable again a known token was read %d times, want 0", n)
	}
}

// TestTokenCacheExpiry: a cached token stops working at its expiry like any other.
func TestTokenCacheExpiry(t *testing.T) {
	a, _ := openShared(t)
	c := &clock{t: time.Now()}
	tokens := cachedTokens(t, a, time.Second, scim.WithClock(c.now))
	ctx := context.Background()
	if _, err := tokens.Bootstrap(ctx, ""); err != nil {
		t.Fatal(err)
	}
	secret, err := tokens.Issue(ctx, scim.DefaultTenant, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}, ExpiresAt: c.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	mustAuth(t, tokens, secret)
	c.advance(2 * time.Hour)
	if _, err := tokens.Authenticate(ctx, secret); !errors.Is(err, scim.ErrTokenExpired) {
		t.Fatalf("a cached token past its expiry: %v, want expired", err)
	}
}
