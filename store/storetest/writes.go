package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scimd/scimd/store"
)

// The contract of writes however a backend runs them (a transaction, or one
// statement): a create or update commits with its count and its audit event or
// not at all, concurrent updates of one resource each apply to the version the
// one before left, and an update answers with the row exactly as it wrote it.
var writeCases = []contractCase{
	{"create_conflict_writes_nothing", writeCreateConflictNothing},
	{"concurrent_creates_count_once", writeConcurrentCreatesCount},
	{"concurrent_updates_each_recorded", writeConcurrentUpdatesRecorded},
	{"concurrent_if_match_one_wins", writeConcurrentIfMatch},
	{"update_racing_another_writer", writeUpdateRacing},
	{"if_match_update_racing_another_writer", writeIfMatchRacing},
	{"group_update_without_member_change", writeGroupUpdateKeepsMembers},
	{"update_unchanged_writes_nothing", writeUpdateUnchanged},
	{"group_update_unchanged_members", writeGroupUpdateUnchanged},
}

// counter is the nickName of a user used as a counter by the concurrency cases.
func counter(t interface{ Fatalf(string, ...any) }, r *store.Resource) int {
	var doc map[string]any
	if err := json.Unmarshal(r.Doc, &doc); err != nil {
		t.Fatalf("doc %s: %v", r.Doc, err)
	}
	n, err := strconv.Atoi(fmt.Sprint(doc["nickName"]))
	if err != nil {
		t.Fatalf("nickName of %s: %v", r.Doc, err)
	}
	return n
}

// increment is an updater adding one to the counter.
func increment(cur *store.Resource) ([]store.MemberChange, error) {
	var doc map[string]any
	if err := json.Unmarshal(cur.Doc, &doc); err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(fmt.Sprint(doc["nickName"]))
	if err != nil {
		return nil, err
	}
	doc["nickName"] = strconv.Itoa(n + 1)
	cur.Doc = mustJSON(doc)
	return nil, nil
}

func (f *fixture) counterUser(tenantID string) *store.Resource {
	f.t.Helper()
	u := newUser(tenantID, "counter")
	u.Doc = []byte(`{"userName":"counter","nickName":"0"}`)
	return f.create(u)
}

// writeCreateConflictNothing: a create refused as a conflict (a taken userName,
// a taken id) writes no row, no audit event and no change of the count.
func writeCreateConflictNothing(f *fixture) {
	tn := f.tenant("acme")
	ctx := store.WithActor(f.ctx, f.actor())
	alice := newUser(tn.ID, "alice")
	if err := f.st.Create(ctx, alice); err != nil {
		f.t.Fatal(err)
	}
	g := newGroup(tn.ID, "team")
	if err := f.st.Create(ctx, g); err != nil {
		f.t.Fatal(err)
	}
	takenID := newUser(tn.ID, "bob")
	takenID.ID = alice.ID
	takenGroupID := newGroup(tn.ID, "other team")
	takenGroupID.ID = g.ID
	for _, tc := range []struct {
		name string
		r    *store.Resource
	}{
		{"user_name", newUser(tn.ID, "ALICE")},
		{"user_id", takenID},
		{"group_id", takenGroupID},
	} {
		wantErr(f.t, f.st.Create(ctx, tc.r), store.ErrConflict)
		if n := f.total(tn.ID, store.KindUser); n != 1 {
			f.t.Errorf("%s: %d users counted after a refused create, want 1", tc.name, n)
		}
		if n := f.total(tn.ID, store.KindGroup); n != 1 {
			f.t.Errorf("%s: %d groups counted after a refused create, want 1", tc.name, n)
		}
		if got := f.events(tn.ID, store.OpCreate); len(got) != 2 || got[0].ResourceID != alice.ID || got[1].ResourceID != g.ID {
			f.t.Errorf("%s: create events %s, want alice's and the group's only", tc.name, show(got))
		}
	}
	f.unchanged(alice)
	f.unchanged(g)
}

// writeConcurrentCreatesCount: of concurrent creates of one userName one wins,
// and the count and the audit log record that one only.
func writeConcurrentCreatesCount(f *fixture) {
	const workers = 8
	tn := f.tenant("acme")
	ctx := store.WithActor(f.ctx, f.actor())
	f.user(tn.ID, "before")
	var wg sync.WaitGroup
	errs := make([]error, workers)
	users := make([]*store.Resource, workers)
	for i := range workers {
		users[i] = newUser(tn.ID, []string{"Racer", "racer", "RACER"}[i%3])
		wg.Go(func() { errs[i] = f.st.Create(ctx, users[i]) })
	}
	wg.Wait()
	var won []string
	for i, err := range errs {
		switch {
		case err == nil:
			won = append(won, users[i].ID)
		case !errors.Is(err, store.ErrConflict):
			f.t.Errorf("concurrent Create: %v, want nil or ErrConflict", err)
		}
	}
	if len(won) != 1 {
		f.t.Fatalf("%d concurrent Creates of one userName succeeded, want exactly 1", len(won))
	}
	if n := f.total(tn.ID, store.KindUser); n != 2 {
		f.t.Errorf("%d users counted, want 2", n)
	}
	var created []string
	for _, e := range f.events(tn.ID, store.OpCreate) {
		if e.TokenID == f.actor().TokenID {
			created = append(created, e.ResourceID)
		}
	}
	if !slices.Equal(created, won) {
		f.t.Errorf("create events for %v, want one for the winner %v", created, won)
	}
}

// writeConcurrentUpdatesRecorded: concurrent updates of one user without a
// version check all succeed, each on the version the one before left: the
// version ends at 1+N with N update events chaining 1→2→…→N+1, and each
// answer is the row as that update wrote it, with the user's groups.
func writeConcurrentUpdatesRecorded(f *fixture) {
	const workers, rounds = 8, 5
	tn := f.tenant("acme")
	ctx := store.WithActor(f.ctx, f.actor())
	u := f.counterUser(tn.ID)
	g := f.group(tn.ID, "team", u.ID)
	var mu sync.Mutex
	var answers []*store.Resource
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range rounds {
				r, err := f.st.Update(ctx, tn.ID, store.KindUser, u.ID, increment)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				answers = append(answers, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Fatalf("concurrent Update: %v", err)
	}
	const n = workers * rounds
	got := f.get(tn.ID, store.KindUser, u.ID)
	if got.Version != n+1 || counter(f.t, got) != n {
		f.t.Errorf("after %d updates: version %d, counter %d; want %d and %d", n, got.Version, counter(f.t, got), n+1, n)
	}
	seen := map[int64]bool{}
	for _, r := range answers {
		if seen[r.Version] {
			f.t.Errorf("two updates answered version %d", r.Version)
		}
		seen[r.Version] = true
		// Each update added one to what the version before held.
		if c := counter(f.t, r); int64(c) != r.Version-1 {
			f.t.Errorf("answer at version %d holds counter %d, want %d", r.Version, c, r.Version-1)
		}
		if !r.Loaded.Groups || len(r.Groups) != 1 || r.Groups[0].Value != g.ID || r.Groups[0].Display != "team" {
			f.t.Errorf("answer at version %d has groups %+v (loaded %v), want the group team", r.Version, r.Groups, r.Loaded.Groups)
		}
		if r.LastModified.Before(u.Created) || !r.Created.Equal(u.Created) {
			f.t.Errorf("answer at version %d: created %v, lastModified %v", r.Version, r.Created, r.LastModified)
		}
	}
	var chain []int64
	for _, e := range f.events(tn.ID, store.OpUpdate) {
		if e.ResourceID != u.ID || e.OldVersion == nil || e.NewVersion == nil || *e.NewVersion != *e.OldVersion+1 ||
			e.TokenID != f.actor().TokenID || e.Status != 200 {
			f.t.Errorf("update event %s", show(e))
			continue
		}
		chain = append(chain, *e.OldVersion)
	}
	slices.Sort(chain)
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if !slices.Equal(chain, want) {
		f.t.Errorf("update events from versions %v, want one from each of 1…%d", chain, n)
	}
}

// writeConcurrentIfMatch: of concurrent updates that each require version 1,
// exactly one succeeds and the others fail with ErrPrecondition, writing nothing.
func writeConcurrentIfMatch(f *fixture) {
	const workers = 8
	tn := f.tenant("acme")
	u := f.counterUser(tn.ID)
	// Readers that do not wait for each other should not wait for connections
	// either: open them first.
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { _, _ = f.st.Get(f.ctx, tn.ID, store.KindUser, u.ID, store.ReadOptions{Groups: true}) })
	}
	wg.Wait()
	start := make(chan struct{})
	// The check stays open until every writer has passed it, or a while for a
	// backend that lets one writer at a time in.
	var passed atomic.Int32
	all := make(chan struct{})
	errs := make([]error, workers)
	for i := range workers {
		wg.Go(func() {
			<-start
			_, errs[i] = f.st.Update(f.ctx, tn.ID, store.KindUser, u.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
				if cur.Version != 1 {
					return nil, store.ErrPrecondition
				}
				if passed.Add(1) == workers {
					close(all)
				}
				select {
				case <-all:
				case <-time.After(300 * time.Millisecond):
				}
				return increment(cur)
			})
		})
	}
	close(start)
	wg.Wait()
	f.exactlyOne(errs, store.ErrPrecondition, "concurrent updates at version 1")
	got := f.get(tn.ID, store.KindUser, u.ID)
	if got.Version != 2 || counter(f.t, got) != 1 {
		f.t.Errorf("version %d, counter %d; want 2 and 1", got.Version, counter(f.t, got))
	}
	if ev := f.events(tn.ID, store.OpUpdate); len(ev) != 1 {
		f.t.Errorf("update events %s, want one", show(ev))
	}
}

// writeUpdateRacing: another writer changes the user while an update's
// updater runs. Whichever writes first, neither change is lost: both succeed,
// and the user ends two versions on with both increments.
func writeUpdateRacing(f *fixture) {
	tn := f.tenant("acme")
	u := f.counterUser(tn.ID)
	var other error
	var otherDone = make(chan struct{})
	calls := 0
	got, err := f.st.Update(f.ctx, tn.ID, store.KindUser, u.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
		calls++
		if calls == 1 {
			go func() {
				defer close(otherDone)
				_, other = f.st.Update(f.ctx, tn.ID, store.KindUser, u.ID, increment)
			}()
			// A backend that locks the row makes the other writer wait for this
			// update; one that does not lets it finish first.
			select {
			case <-otherDone:
			case <-time.After(300 * time.Millisecond):
			}
		}
		return increment(cur)
	})
	<-otherDone
	if err != nil || other != nil {
		f.t.Fatalf("racing updates: %v and %v, want both to succeed", err, other)
	}
	final := f.get(tn.ID, store.KindUser, u.ID)
	if final.Version != 3 || counter(f.t, final) != 2 {
		f.t.Errorf("version %d, counter %d after two updates; want 3 and 2", final.Version, counter(f.t, final))
	}
	if c := counter(f.t, got); int64(c) != got.Version-1 {
		f.t.Errorf("the update answered version %d with counter %d, want %d", got.Version, c, got.Version-1)
	}
	if ev := f.events(tn.ID, store.OpUpdate); len(ev) != 2 {
		f.t.Errorf("update events %s, want two", show(ev))
	}
}

// writeGroupUpdateKeepsMembers: an update of a group's attributes with no
// membership change (none, or only empty ones) keeps its members and records
// one event per update.
func writeGroupUpdateKeepsMembers(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	g := f.group(tn.ID, "team", u.ID)
	for i, mc := range [][]store.MemberChange{nil, {{}}} {
		name := fmt.Sprintf("team %d", i)
		r := f.update(tn.ID, store.KindGroup, g.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
			cur.DisplayName = ptr(name)
			cur.Doc = mustJSON(map[string]any{"displayName": name})
			return mc, nil
		})
		if r.Version != int64(i+2) || deref(r.DisplayName) != name {
			f.t.Errorf("update %d answered version %d, displayName %q", i, r.Version, deref(r.DisplayName))
		}
		got := f.get(tn.ID, store.KindGroup, g.ID)
		if got.Version != int64(i+2) || deref(got.DisplayName) != name || !slices.Equal(memberValues(got.Members), []string{u.ID}) {
			f.t.Errorf("after update %d: version %d, displayName %q, members %v", i, got.Version, deref(got.DisplayName), memberValues(got.Members))
		}
	}
	if ev := f.events(tn.ID, store.OpUpdate); len(ev) != 2 {
		f.t.Errorf("update events %s, want two", show(ev))
	}
	if ug := f.get(tn.ID, store.KindUser, u.ID).Groups; len(ug) != 1 || ug[0].Display != "team 1" {
		f.t.Errorf("the member's groups %+v, want the renamed group", ug)
	}
}

// writeUpdateUnchanged: an updater returning ErrUnchanged writes nothing: Update
// answers the resource as read, and neither its version, its modification time nor
// the audit log moves (RFC 7644 §3.5.2.1).
func writeUpdateUnchanged(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	before := f.get(tn.ID, store.KindUser, u.ID)
	r, err := f.st.Update(f.ctx, tn.ID, store.KindUser, u.ID, func(*store.Resource) ([]store.MemberChange, error) {
		return nil, store.ErrUnchanged
	})
	if err != nil {
		f.t.Fatalf("Update: %v", err)
	}
	if r.Version != before.Version || !r.LastModified.Equal(before.LastModified) || r.ID != u.ID {
		f.t.Errorf("Update answered version %d, lastModified %v; want %d, %v", r.Version, r.LastModified, before.Version, before.LastModified)
	}
	f.unchanged(before)
	if ev := f.events(tn.ID, store.OpUpdate); len(ev) != 0 {
		f.t.Errorf("update events %s, want none", show(ev))
	}
}

// writeGroupUpdateUnchanged: with ErrUnchanged a group's membership changes still
// apply, and the group is written (new version, one event) only when they add or
// drop a membership.
func writeGroupUpdateUnchanged(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0], m.u[1])
	unchanged := func(changes ...store.MemberChange) store.Updater {
		return func(*store.Resource) ([]store.MemberChange, error) { return changes, store.ErrUnchanged }
	}
	for name, fn := range map[string]store.Updater{
		"add_existing":       unchanged(store.MemberChange{Add: m.members(m.u[1])}),
		"remove_absent":      unchanged(store.MemberChange{Remove: []string{m.u[2]}}),
		"replace_same_set":   unchanged(store.MemberChange{Replace: true, Add: m.members(m.u[1], m.u[0], m.u[1])}),
		"no_member_changes":  unchanged(),
		"remove_where_empty": unchanged(store.MemberChange{RemoveWhere: parse(m.t, `value eq "`+m.u[2]+`"`)}),
	} {
		before := m.get(m.tenant, store.KindGroup, m.group)
		events := len(m.events(m.tenant, store.OpUpdate))
		r, err := m.st.Update(m.ctx, m.tenant, store.KindGroup, m.group, fn)
		if err != nil {
			m.t.Fatalf("%s: %v", name, err)
		}
		if r.Version != before.Version {
			m.t.Errorf("%s: version %d, want %d", name, r.Version, before.Version)
		}
		m.unchanged(before)
		if n := len(m.events(m.tenant, store.OpUpdate)); n != events {
			m.t.Errorf("%s: %d update events, want %d", name, n, events)
		}
	}
	before := m.get(m.tenant, store.KindGroup, m.group)
	events := len(m.events(m.tenant, store.OpUpdate))
	r, err := m.st.Update(m.ctx, m.tenant, store.KindGroup, m.group, unchanged(store.MemberChange{Add: m.members(m.u[1], m.u[2])}))
	if err != nil {
		m.t.Fatal(err)
	}
	if r.Version != before.Version+1 {
		m.t.Errorf("a new member: version %d, want %d", r.Version, before.Version+1)
	}
	m.want(m.u[0], m.u[1], m.u[2])
	if n := len(m.events(m.tenant, store.OpUpdate)); n != events+1 {
		m.t.Errorf("a new member: %d update events, want %d", n, events+1)
	}
	r, err = m.st.Update(m.ctx, m.tenant, store.KindGroup, m.group, unchanged(store.MemberChange{Replace: true, Add: m.members(m.u[0])}))
	if err != nil || r.Version != before.Version+2 {
		m.t.Fatalf("replace with fewer: version %v, err %v", r, err)
	}
	m.want(m.u[0])
}
