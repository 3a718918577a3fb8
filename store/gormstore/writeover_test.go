package gormstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/storetest"
)

// TestWriteOverStaleVersion: Update's write after its locked read is conditional
// on the version it read. Two writers that both read version 1: the first writes
// version 2; the second, writing over version 1, is refused with ErrPrecondition
// (a 412, or 409 in the compatibility APIs) and the first writer's change is
// kept, for users and groups, on every database. Without the condition the second
// write would match no row, yet be reported as stored: a lost write.
func TestWriteOverStaleVersion(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			st := b.Open(t)
			ctx := context.Background()
			tn, err := st.CreateTenant(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			for _, kind := range []store.Kind{store.KindUser, store.KindGroup} {
				t.Run(string(kind), func(t *testing.T) {
					r := &store.Resource{TenantID: tn.ID, Kind: kind, Doc: []byte(`{"nickName":"first"}`)}
					if kind == store.KindUser {
						r.UserName = "ann"
					} else {
						r.DisplayName = ptr("team")
					}
					if err := st.Create(ctx, r); err != nil {
						t.Fatal(err)
					}
					read := func() *store.Resource {
						t.Helper()
						got, err := st.Get(ctx, tn.ID, kind, r.ID, store.ReadOptions{})
						if err != nil {
							t.Fatal(err)
						}
						return got
					}
					first, second := read(), read()
					if first.Version != 1 || second.Version != 1 {
						t.Fatalf("versions %d and %d after create, want 1", first.Version, second.Version)
					}
					first.Doc = []byte(`{"nickName":"winner"}`)
					if err := st.WriteOver(ctx, first, 1); err != nil {
						t.Fatalf("the first write over version 1: %v", err)
					}
					second.Doc = []byte(`{"nickName":"loser"}`)
					if err := st.WriteOver(ctx, second, 1); !errors.Is(err, store.ErrPrecondition) {
						t.Fatalf("the second write over version 1: %v, want ErrPrecondition", err)
					}
					got := read()
					var doc map[string]any
					_ = json.Unmarshal(got.Doc, &doc)
					if got.Version != 2 || doc["nickName"] != "winner" {
						t.Errorf("stored version %d, nickName %v; want 2, the first writer's winner", got.Version, doc["nickName"])
					}
					// The second writer, having read again, writes over version 2.
					again := read()
					again.Doc = []byte(`{"nickName":"after"}`)
					if err := st.WriteOver(ctx, again, 2); err != nil || read().Version != 3 {
						t.Errorf("a write over the current version 2: %v, version %d; want it stored as 3", err, read().Version)
					}
				})
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
