package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/scimd/scimd/store"
)

// writeIfMatchRacing: an update that requires the version it was asked for (an
// If-Match, RFC 7644 §3.14, checked in its updater) races a write by another
// client that lands while the updater runs. No write is lost: if the other write
// committed first, the checked update is refused with ErrPrecondition (412) and
// the other's change is what is stored; if the store made the other write wait,
// the checked update succeeds on version 1 and the other applies on top of it.
// Either way the version counts every write that succeeded. Users are checked
// with and without a queued message (which take different write paths), and
// groups.
func writeIfMatchRacing(f *fixture) {
	tn := f.tenant("acme")
	for _, tc := range []struct {
		name    string
		kind    store.Kind
		message bool
	}{
		{"user", store.KindUser, false},
		{"user_with_message", store.KindUser, true},
		{"group", store.KindGroup, false},
	} {
		f.t.Run(tc.name, func(t *testing.T) {
			f := f.in(t)
			r := newUser(tn.ID, "counter-"+tc.name)
			if tc.kind == store.KindGroup {
				r = newGroup(tn.ID, "counter-"+tc.name)
			}
			r.Doc = []byte(`{"nickName":"0"}`)
			f.create(r)
			var other error
			otherDone := make(chan struct{})
			otherFirst := false
			calls := 0
			got, err := f.st.Update(f.ctx, tn.ID, tc.kind, r.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
				calls++
				if calls == 1 {
					go func() {
						defer close(otherDone)
						_, other = f.st.Update(f.ctx, tn.ID, tc.kind, r.ID, increment)
					}()
					// A store that locks the row makes the other writer wait for
					// this update; one that does not lets it commit first.
					select {
					case <-otherDone:
						otherFirst = true
					case <-time.After(300 * time.Millisecond):
					}
				}
				if cur.Version != 1 {
					return nil, store.ErrPrecondition
				}
				if tc.message {
					cur.Outbox = append(cur.Outbox, store.Message{Kind: "invitation", Recipient: "ann@example.com"})
				}
				return increment(cur)
			})
			<-otherDone
			if other != nil {
				t.Fatalf("the unconditional write: %v", other)
			}
			final := f.get(tn.ID, tc.kind, r.ID)
			switch {
			case otherFirst:
				// The other write is version 2: the checked update must not
				// overwrite it.
				if !errors.Is(err, store.ErrPrecondition) {
					t.Errorf("the checked update after another write: %v, want ErrPrecondition", err)
				}
				if final.Version != 2 || counter(t, final) != 1 {
					t.Errorf("stored version %d, counter %d; want the other write's 2 and 1", final.Version, counter(t, final))
				}
			case err == nil:
				if got.Version != 2 || counter(t, got) != 1 {
					t.Errorf("the checked update answered version %d, counter %d; want 2 and 1", got.Version, counter(t, got))
				}
				if final.Version != 3 || counter(t, final) != 2 {
					t.Errorf("stored version %d, counter %d after both writes; want 3 and 2", final.Version, counter(t, final))
				}
			case errors.Is(err, store.ErrPrecondition):
				if final.Version != 2 || counter(t, final) != 1 {
					t.Errorf("stored version %d, counter %d; want the other write's 2 and 1", final.Version, counter(t, final))
				}
			default:
				t.Errorf("the checked update: %v, want nil or ErrPrecondition", err)
			}
			if tc.message {
				want := 0
				if err == nil {
					want = 1
				}
				if msgs, _ := f.st.Outbox(f.ctx, tn.ID); len(msgs) != want {
					t.Errorf("%d messages queued, want %d (the checked update's, only if it was stored)", len(msgs), want)
				}
			}
		})
	}
}
