package gormstore_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/storetest"
)

// TestEachMemberInChunks: EachMember walks a group larger than its chunk in
// member order, each member once, and holds no database connection while the
// caller handles a member (a slow client reading a big group).
func TestEachMemberInChunks(t *testing.T) {
	defer gormstore.SetMemberChunk(7)()
	for _, be := range storetest.Backends(t) {
		t.Run("db="+be.Name, func(t *testing.T) {
			st := be.Open(t)
			ctx := t.Context()
			tn, err := st.CreateTenant(ctx, "chunks")
			if err != nil {
				t.Fatal(err)
			}
			g := &store.Resource{TenantID: tn.ID, Kind: store.KindGroup, DisplayName: new("big"), Doc: []byte(`{"displayName":"big"}`)}
			var want []string
			for i := range 23 { // three full chunks and a part
				name := fmt.Sprintf("m%02d", i)
				u := &store.Resource{TenantID: tn.ID, Kind: store.KindUser, UserName: name, Doc: []byte(`{"userName":"` + name + `"}`)}
				if err := st.Create(ctx, u); err != nil {
					t.Fatal(err)
				}
				g.Members = append(g.Members, store.Member{Value: u.ID})
				want = append(want, u.ID)
			}
			if err := st.Create(ctx, g); err != nil {
				t.Fatal(err)
			}
			slices.Sort(want)
			sqlDB, err := st.DB().DB()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			busiest := 0
			err = st.EachMember(ctx, tn.ID, g.ID, func(m store.Member) error {
				got = append(got, m.Value)
				busiest = max(busiest, sqlDB.Stats().InUse)
				if m.Display == "" || m.Type != store.KindUser {
					t.Errorf("member %s: display %q type %q", m.Value, m.Display, m.Type)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("EachMember gave %d members %v, want %d %v", len(got), got, len(want), want)
			}
			if busiest != 0 {
				t.Errorf("%d database connections in use while a member was handled, want 0", busiest)
			}
		})
	}
}
