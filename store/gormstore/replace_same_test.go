package gormstore_test

import (
	"context"
	"testing"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/storetest"
)

// TestReplaceWithSameMembersWritesNothing: an unchanged group whose membership
// step replaces its members with the ones it has (whatever the step also removes,
// since Replace runs first) changes no membership, so the store writes nothing: no
// new version (store.Updater; RFC 7644 §3.5.2.1).
func TestReplaceWithSameMembersWritesNothing(t *testing.T) {
	for _, be := range storetest.Backends(t) {
		t.Run("db="+be.Name, func(t *testing.T) {
			ctx := context.Background()
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
			for _, mc := range []store.MemberChange{
				{Replace: true, Add: []store.Member{{Value: u.ID, Type: store.KindUser}}},
				{Replace: true, Add: []store.Member{{Value: u.ID, Type: store.KindUser}}, Remove: []string{u.ID}},
			} {
				got, err := st.Update(ctx, tn.ID, store.KindGroup, g.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
					return []store.MemberChange{mc}, store.ErrUnchanged
				})
				if err != nil {
					t.Fatal(err)
				}
				if got.Version != g.Version {
					t.Errorf("%+v: version %d, want %d (nothing changed)", mc, got.Version, g.Version)
				}
			}
			var members []string
			if err := st.EachMember(ctx, tn.ID, g.ID, func(m store.Member) error { members = append(members, m.Value); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(members) != 1 || members[0] != u.ID {
				t.Errorf("members %v, want [%s]", members, u.ID)
			}
		})
	}
}
