package storetest

import (
	"errors"
	"fmt"

	"github.com/scimd/scimd/store"
)

// membersEachLikeGet: EachMember yields exactly the members Get lists, in the same
// order and with the same display values; only the tenant's own group; and an
// error from the callback stops the walk.
func membersEachLikeGet(f *fixture) {
	a, b := f.tenant("a"), f.tenant("b")
	var ids []string
	for i := range 7 {
		ids = append(ids, f.user(a.ID, fmt.Sprintf("m%d", i)).ID)
	}
	inner := f.group(a.ID, "inner")
	g := f.group(a.ID, "outer", append(ids, inner.ID)...)
	want := f.get(a.ID, store.KindGroup, g.ID).Members
	var got []store.Member
	if err := f.st.EachMember(f.ctx, a.ID, g.ID, func(m store.Member) error {
		got = append(got, m)
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) || len(got) != 8 {
		f.t.Fatalf("EachMember gave %+v, Get lists %+v", got, want)
	}
	n := 0
	if err := f.st.EachMember(f.ctx, b.ID, g.ID, func(store.Member) error { n++; return nil }); err != nil || n != 0 {
		f.t.Fatalf("another tenant's walk of the group: %d members, %v", n, err)
	}
	stop := errors.New("stop")
	n = 0
	if err := f.st.EachMember(f.ctx, a.ID, g.ID, func(store.Member) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		f.t.Fatalf("a callback error: walked %d, returned %v", n, err)
	}
}
