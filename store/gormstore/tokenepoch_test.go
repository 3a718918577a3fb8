package gormstore_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/storetest"
)

// TestTokenEpochTriggers: a change made to a token or a tenant outside scimd's own
// code (an operator's SQL) moves the epoch too, for every column a principal is
// made of, and a last-use write does not.
func TestTokenEpochTriggers(t *testing.T) {
	for _, be := range storetest.Backends(t) {
		t.Run("db="+be.Name, func(t *testing.T) {
			st := be.Open(t)
			ctx := context.Background()
			tn, err := st.CreateTenant(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			tok, err := st.CreateToken(ctx, store.Token{TenantID: tn.ID, Hash: bytes.Repeat([]byte{7}, 32), Scopes: []string{"scim"}})
			if err != nil {
				t.Fatal(err)
			}
			epoch := func() int64 {
				t.Helper()
				n, err := st.TokenEpoch(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			exec := func(q string, args ...any) {
				t.Helper()
				if err := st.DB().Exec(q, args...).Error; err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			before := epoch()
			exec(`UPDATE api_tokens SET last_used_at = created WHERE id = ?`, tok.ID)
			if e := epoch(); e != before {
				t.Fatalf("a last-use write moved the epoch %d → %d", before, e)
			}
			for _, q := range []string{
				`UPDATE api_tokens SET tenant_id = tenant_id WHERE id = ?`,
				`UPDATE api_tokens SET hash = hash WHERE id = ?`,
				`UPDATE api_tokens SET scopes = 'scim,admin' WHERE id = ?`,
				`UPDATE api_tokens SET revoked_at = created WHERE id = ?`,
				`UPDATE api_tokens SET user_id = 'u-1' WHERE id = ?`,
				`UPDATE api_tokens SET profile = 'okta' WHERE id = ?`,
				`UPDATE api_tokens SET sandbox = sandbox WHERE id = ?`,
				`UPDATE api_tokens SET expires_at = created WHERE id = ?`,
				`DELETE FROM api_tokens WHERE id = ?`,
				`UPDATE tenants SET settings = '{}' WHERE id = ?`,
				`UPDATE tenants SET name = 'acme2' WHERE id = ?`,
			} {
				id := tok.ID
				if bytes.Contains([]byte(q), []byte("tenants")) {
					id = tn.ID
				}
				exec(q, id)
				if e := epoch(); e == before {
					t.Fatalf("%s left the epoch at %d; it must move", q, e)
				} else {
					before = e
				}
			}
			exec(`DELETE FROM tenants WHERE id = ?`, tn.ID)
			if e := epoch(); e == before {
				t.Fatalf("deleting a tenant left the epoch at %d; it must move", e)
			}
		})
	}
}
