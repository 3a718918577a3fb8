package scim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/storetest"
)

func errKind(err error) (scim.ErrorKind, bool) {
	var se *scim.Error
	if !errors.As(err, &se) {
		return 0, false
	}
	return se.Kind, true
}

// TestTenantRateBurstAlone is `scimd tenant set NAME rate_burst=B` without a
// rate_limit: the tenant's tokens keep the server's rate with a burst of B (README
// "Rate limiting"), even B = 1.
func TestTenantRateBurstAlone(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("backend="+b.Name, func(t *testing.T) {
			ctx := context.Background()
			c := &clock{t: time.Unix(1_700_000_000, 0)}
			tokens := scim.NewTokens(b.Open(t), scim.WithRateLimiter(scim.NewRateLimiter(1, 5, 0, c.now)))
			if _, err := tokens.CreateTenant(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			if _, err := tokens.SetTenant(ctx, "acme", []string{"rate_burst=1"}); err != nil {
				t.Fatal(err)
			}
			secret, err := tokens.IssueToken(ctx, "acme", scim.AllScopes, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tokens.Authenticate(ctx, secret); err != nil {
				t.Fatalf("first request: %v", err)
			}
			if _, err := tokens.Authenticate(ctx, secret); err == nil {
				t.Fatal("second request at once passed: the server's burst of 5 applied, not the tenant's rate_burst=1")
			} else if k, _ := errKind(err); k != scim.KindTooManyRequests {
				t.Fatalf("second request: %v, want 429", err)
			}
			c.advance(time.Second) // the server's rate of 1 a second refills it
			if _, err := tokens.Authenticate(ctx, secret); err != nil {
				t.Fatalf("a second later: %v", err)
			}
		})
	}
}

// TestTenantRateLimitRange is rate_limit's range: 0 to 1,000,000 requests a second,
// both ends included (README "Rate limiting"); above it is 400 invalidValue.
func TestTenantRateLimitRange(t *testing.T) {
	ctx := context.Background()
	tokens := scim.NewTokens(storetest.OpenSQLite(t))
	if _, err := tokens.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		v    string
		want float64
		ok   bool
	}{
		{"0", 0, true},
		{"0.5", 0.5, true},
		{"1000000", 1e6, true},
		{"1e6", 1e6, true},
		{"1000000.5", 0, false},
		{"-1", 0, false},
	} {
		set, err := tokens.SetTenant(ctx, "acme", []string{"rate_limit=" + tc.v})
		if !tc.ok {
			if k, _ := errKind(err); err == nil || k != scim.KindInvalidValue {
				t.Errorf("rate_limit=%s: %v, want invalidValue", tc.v, err)
			}
			continue
		}
		if err != nil || set.RateLimit != tc.want {
			t.Errorf("rate_limit=%s: %v, rate %g, want %g", tc.v, err, set.RateLimit, tc.want)
		}
	}
}

// TestBootstrap is how serve prepares an install (README SCIMD_BOOTSTRAP_TOKEN):
// with a bootstrap token, tenant default gets exactly that token when it has none,
// even when other tenants exist; without one, a random token is made only on an
// install with no tenant at all.
func TestBootstrap(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("backend="+b.Name, func(t *testing.T) {
			ctx := context.Background()
			tokens := scim.NewTokens(b.Open(t))
			if _, err := tokens.CreateTenant(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			if got, err := tokens.Bootstrap(ctx, ""); err != nil || got != "" {
				t.Fatalf("Bootstrap without a token beside tenant acme = %q, %v; want nothing made", got, err)
			}
			if ts, err := tokens.Tenants(ctx); err != nil || len(ts) != 1 {
				t.Fatalf("tenants after Bootstrap without a token: %v, %v; want acme alone", ts, err)
			}
			const secret = "bootstrap-secret-0123456789"
			if got, err := tokens.Bootstrap(ctx, secret); err != nil || got != secret {
				t.Fatalf("Bootstrap(secret) = %q, %v; want the secret issued", got, err)
			}
			p, err := tokens.Authenticate(ctx, secret)
			if err != nil || p.Tenant.Name != scim.DefaultTenant {
				t.Fatalf("the bootstrap token: %+v, %v; want a token of tenant %s", p, err, scim.DefaultTenant)
			}
			if got, err := tokens.Bootstrap(ctx, "another-secret-0123456789"); err != nil || got != "" {
				t.Fatalf("second Bootstrap = %q, %v; want nothing made (default has a token)", got, err)
			}
		})
	}

	t.Run("fresh", func(t *testing.T) {
		ctx := context.Background()
		tokens := scim.NewTokens(storetest.OpenSQLite(t))
		got, err := tokens.Bootstrap(ctx, "")
		if err != nil || got == "" {
			t.Fatalf("Bootstrap on an empty install = %q, %v; want a random token", got, err)
		}
		if _, err := tokens.Authenticate(ctx, got); err != nil {
			t.Fatal(err)
		}
	})
}

// failingTenantLookup is a real store whose tenant lookup by name fails, as a
// database that drops the connection of that one query would.
type failingTenantLookup struct {
	*gormstore.Store
}

func (failingTenantLookup) TenantByName(context.Context, string) (store.Tenant, error) {
	return store.Tenant{}, errors.New("connection reset by peer")
}

// TestTenantLookupFails is an operator command naming a tenant (--tenant) while the
// database fails that lookup: the command fails; it never answers as if the tenant
// had no tokens.
func TestTenantLookupFails(t *testing.T) {
	ctx := context.Background()
	st := storetest.OpenSQLite(t)
	tokens := scim.NewTokens(st)
	if _, err := tokens.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.IssueToken(ctx, "acme", scim.AllScopes, ""); err != nil {
		t.Fatal(err)
	}
	broken := scim.NewTokens(failingTenantLookup{st})
	toks, err := broken.ListTokens(ctx, "acme")
	if err == nil {
		t.Fatalf("ListTokens with the tenant lookup failing = %v, nil; want an error", toks)
	}
	if k, _ := errKind(err); k == scim.KindNotFound {
		t.Fatalf("ListTokens: %v; a failed lookup is no missing tenant", err)
	}
}
