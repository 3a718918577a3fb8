package gormstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/storetest"
)

// TestFailedReadsAreErrors: a read the database refuses (here: its table was renamed
// away under the store) comes back as an error, never as an empty answer a caller
// would take for "nothing there" (no messages, no entries, no members, no such
// tenant, no tokens to revoke), and a failed write leaves nothing half-written.
func TestFailedReadsAreErrors(t *testing.T) {
	for _, be := range storetest.Backends(t) {
		t.Run("db="+be.Name, func(t *testing.T) {
			ctx := context.Background()
			// setup returns a fresh store with a tenant, a user bound to a token,
			// and a group with the user as member.
			setup := func(t *testing.T) (*gormstore.Store, store.Tenant, *store.Resource, *store.Resource, store.Token) {
				st := be.Open(t)
				tn, err := st.CreateTenant(ctx, "acme")
				if err != nil {
					t.Fatal(err)
				}
				u := &store.Resource{TenantID: tn.ID, Kind: store.KindUser, UserName: "ann", Doc: []byte(`{"userName":"ann"}`)}
				if err := st.Create(ctx, u); err != nil {
					t.Fatal(err)
				}
				team := "team"
				g := &store.Resource{TenantID: tn.ID, Kind: store.KindGroup, DisplayName: &team, Doc: []byte(`{"displayName":"team"}`),
					Members: []store.Member{{Value: u.ID, Type: store.KindUser}}}
				if err := st.Create(ctx, g); err != nil {
					t.Fatal(err)
				}
				tok, err := st.CreateToken(ctx, store.Token{TenantID: tn.ID, Hash: bytes.Repeat([]byte{9}, 32), Scopes: []string{"scim"}, UserID: u.ID})
				if err != nil {
					t.Fatal(err)
				}
				return st, tn, u, g, tok
			}
			exec := func(t *testing.T, st *gormstore.Store, q string) {
				t.Helper()
				if err := st.DB().Exec(q).Error; err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			gone := func(t *testing.T, st *gormstore.Store, table string) {
				t.Helper()
				exec(t, st, `ALTER TABLE `+table+` RENAME TO `+table+`_gone`)
			}

			t.Run("outbox", func(t *testing.T) {
				st, tn, _, _, _ := setup(t)
				gone(t, st, "outbox")
				if ms, err := st.Outbox(ctx, tn.ID); err == nil {
					t.Fatalf("Outbox on a failed read = %v, nil; want an error", ms)
				}
			})
			t.Run("task_entries", func(t *testing.T) {
				st, tn, _, _, _ := setup(t)
				gone(t, st, "task_entries")
				if es, err := st.TaskEntries(ctx, tn.ID, "task-1"); err == nil {
					t.Fatalf("TaskEntries on a failed read = %v, nil; want an error", es)
				}
			})
			t.Run("each_member", func(t *testing.T) {
				st, tn, _, g, _ := setup(t)
				gone(t, st, "group_members")
				n := 0
				err := st.EachMember(ctx, tn.ID, g.ID, func(store.Member) error { n++; return nil })
				if err == nil || n != 0 {
					t.Fatalf("EachMember on a failed read passed %d members and returned %v; want none and an error", n, err)
				}
			})
			t.Run("tenant", func(t *testing.T) {
				st, tn, _, _, _ := setup(t)
				gone(t, st, "tenants")
				if _, err := st.TenantByName(ctx, tn.Name); err == nil || errors.Is(err, store.ErrNotFound) {
					t.Fatalf("TenantByName on a failed read: %v; want an error other than ErrNotFound", err)
				}
			})
			t.Run("record_quirks", func(t *testing.T) {
				st, tn, _, _, tok := setup(t)
				gone(t, st, "quirk_counts")
				if err := st.RecordQuirks(ctx, tn.ID, tok.ID, map[string]int{"a": 1, "b": 2}); err == nil {
					t.Fatal("RecordQuirks on a failed write returned nil; want an error")
				}
			})
			t.Run("revoke_user_tokens_read", func(t *testing.T) {
				st, tn, u, _, _ := setup(t)
				gone(t, st, "api_tokens")
				if err := st.RevokeUserTokens(ctx, tn.ID, u.ID); err == nil {
					t.Fatal("RevokeUserTokens on a failed read returned nil; want an error")
				}
			})
			t.Run("revoke_user_tokens_write", func(t *testing.T) {
				st, tn, u, _, tok := setup(t)
				// The read of the user's tokens succeeds; their update is refused.
				if be.Name == "postgres" {
					exec(t, st, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$`)
					exec(t, st, `CREATE TRIGGER refuse_revoke BEFORE UPDATE ON api_tokens FOR EACH ROW EXECUTE FUNCTION refuse()`)
				} else {
					exec(t, st, `CREATE TRIGGER refuse_revoke BEFORE UPDATE ON api_tokens BEGIN SELECT RAISE(ABORT, 'refused'); END`)
				}
				if err := st.RevokeUserTokens(ctx, tn.ID, u.ID); err == nil {
					t.Fatal("RevokeUserTokens on a failed write returned nil; want an error")
				}
				got, err := st.TokenByHash(ctx, tok.Hash)
				if err != nil || got.RevokedAt != nil {
					t.Fatalf("after a failed revocation the token reads %+v, %v; want it unrevoked", got, err)
				}
				events, err := st.AuditEvents(ctx, tn.ID, store.AuditQuery{Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range events {
					if e.Operation == store.OpTokenRevoke {
						t.Fatalf("a failed revocation recorded %+v; want no event", e)
					}
				}
			})
		})
	}
}
