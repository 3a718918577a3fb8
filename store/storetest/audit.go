package storetest

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/scimd/scimd/store"
)

// The audit log's contract: every write method records its changes in its own
// transaction with the actor of the context, a write that fails records nothing,
// events are only appended (and deleted by age), and each tenant reads its own.
var auditCases = []contractCase{
	{"changes_recorded_with_actor", auditChangesRecorded},
	{"failed_write_records_nothing", auditFailedWriteRecordsNothing},
	{"delete_records_groups_losing_member", auditDeleteRecordsGroups},
	{"tokens_and_settings", auditTokensAndSettings},
	{"append_only", auditAppendOnly},
	{"list_tenant_scoped_and_paged", auditListScopedAndPaged},
	{"delete_before_only_old", auditDeleteBefore},
}

// actor is the actor of a request the audit cases make changes as.
func (f *fixture) actor() *store.Actor {
	return &store.Actor{TokenID: "tok-1", ClientAddr: "192.0.2.7", RequestID: "req-audit-1", Route: "scim"}
}

// events returns every event of the tenant, oldest first, of the given operations
// (all when none are given).
func (f *fixture) events(tenantID string, ops ...string) []store.AuditEvent {
	f.t.Helper()
	all, err := f.st.AuditEvents(f.ctx, tenantID, store.AuditQuery{Limit: 1000})
	if err != nil {
		f.t.Fatalf("AuditEvents: %v", err)
	}
	var out []store.AuditEvent
	for _, e := range all {
		if len(ops) == 0 || slices.Contains(ops, e.Operation) {
			out = append(out, e)
		}
	}
	return out
}

func v(n int64) *int64 { return &n }

// wantEvent checks the what of an event: operation, resource, versions, outcome,
// status.
func wantEvent(f *fixture, got store.AuditEvent, op, typ, id string, old, new *int64, status int) {
	f.t.Helper()
	if got.Operation != op || got.ResourceType != typ || got.ResourceID != id || got.Outcome != store.AuditOK || got.Status != status ||
		!reflect.DeepEqual(got.OldVersion, old) || !reflect.DeepEqual(got.NewVersion, new) {
		f.t.Errorf("event %s", show(got))
		f.t.Errorf("want  %s %s/%s versions %s→%s ok %d", op, typ, id, show(old), show(new), status)
	}
}

func auditChangesRecorded(f *fixture) {
	tn := f.tenant("acme")
	a := f.actor()
	ctx := store.WithActor(f.ctx, a)
	before := time.Now().Add(-time.Second)
	u := newUser(tn.ID, "ann")
	if err := f.st.Create(ctx, u); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.Update(ctx, tn.ID, store.KindUser, u.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
		cur.DisplayName = ptr("Ann")
		return nil, nil
	}); err != nil {
		f.t.Fatal(err)
	}
	a.Status = 299 // a route's own success status replaces the operation's
	if err := f.st.Delete(ctx, tn.ID, store.KindUser, u.ID, 0); err != nil {
		f.t.Fatal(err)
	}
	got := f.events(tn.ID, store.OpCreate, store.OpUpdate, store.OpDelete)
	if len(got) != 3 {
		f.t.Fatalf("events %s, want create, update, delete", show(got))
	}
	wantEvent(f, got[0], store.OpCreate, "User", u.ID, nil, v(1), 201)
	wantEvent(f, got[1], store.OpUpdate, "User", u.ID, v(1), v(2), 200)
	wantEvent(f, got[2], store.OpDelete, "User", u.ID, v(2), nil, 299)
	for _, e := range got {
		if e.TenantID != tn.ID || e.TokenID != a.TokenID || e.ClientAddr != a.ClientAddr || e.RequestID != a.RequestID ||
			e.Route != a.Route || e.At.Before(before) || e.At.After(time.Now().Add(time.Second)) || e.ID == "" {
			f.t.Errorf("event %s does not name the actor %+v", show(e), a)
		}
	}
	// Without an actor (a change made outside a request) the event has no status.
	w := f.user(tn.ID, "bob")
	if got := f.events(tn.ID, store.OpCreate); len(got) != 2 || got[1].ResourceID != w.ID || got[1].Status != 0 || got[1].TokenID != "" {
		f.t.Errorf("change without an actor: %s", show(got))
	}
}

func auditFailedWriteRecordsNothing(f *fixture) {
	tn := f.tenant("acme")
	ctx := store.WithActor(f.ctx, f.actor())
	u := newUser(tn.ID, "ann")
	if err := f.st.Create(ctx, u); err != nil {
		f.t.Fatal(err)
	}
	// A create refused on the unique userName, an updater that fails, a delete with
	// a stale version: each rolls back, and so does its event.
	wantErr(f.t, f.st.Create(ctx, newUser(tn.ID, "ANN")), store.ErrConflict)
	_, err := f.st.Update(ctx, tn.ID, store.KindUser, u.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
		cur.DisplayName = ptr("half-written")
		return nil, errors.New("refused by the updater")
	})
	if err == nil {
		f.t.Fatal("an updater error did not fail the update")
	}
	wantErr(f.t, f.st.Delete(ctx, tn.ID, store.KindUser, u.ID, 7), store.ErrPrecondition)
	g := newGroup(tn.ID, "team", "no-such-member")
	if err := f.st.Create(ctx, g); err == nil {
		f.t.Fatal("a group with an unknown member was created")
	}
	got := f.events(tn.ID, store.OpCreate, store.OpUpdate, store.OpDelete)
	if len(got) != 1 {
		f.t.Fatalf("events %s, want only the create that committed", show(got))
	}
	wantEvent(f, got[0], store.OpCreate, "User", u.ID, nil, v(1), 201)
}

func auditDeleteRecordsGroups(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "ann")
	g1 := f.group(tn.ID, "one", u.ID)
	g2 := f.group(tn.ID, "two", u.ID)
	f.group(tn.ID, "other")
	if err := f.st.Delete(store.WithActor(f.ctx, f.actor()), tn.ID, store.KindUser, u.ID, 0); err != nil {
		f.t.Fatal(err)
	}
	got := f.events(tn.ID, store.OpDelete, store.OpUpdate)
	if len(got) != 3 {
		f.t.Fatalf("events %s, want the delete and an update of each group that held the user", show(got))
	}
	wantEvent(f, got[0], store.OpDelete, "User", u.ID, v(1), nil, 204)
	ids := []string{got[1].ResourceID, got[2].ResourceID}
	slices.Sort(ids)
	if !slices.Equal(ids, sortedIDs(g1.ID, g2.ID)) {
		f.t.Errorf("group events name %q, want %q", ids, sortedIDs(g1.ID, g2.ID))
	}
	for _, e := range got[1:] {
		wantEvent(f, e, store.OpUpdate, "Group", e.ResourceID, v(1), v(2), 204)
		if got := f.get(tn.ID, store.KindGroup, e.ResourceID).Version; got != 2 {
			f.t.Errorf("group %s at version %d, its event says 2", e.ResourceID, got)
		}
	}
}

func auditTokensAndSettings(f *fixture) {
	tn := f.tenant("acme")
	if got := f.events(tn.ID); len(got) != 1 || got[0].Operation != store.OpTenantCreate || got[0].ResourceID != tn.ID {
		f.t.Errorf("events of a new tenant %s, want its tenant.create", show(got))
	}
	ctx := store.WithActor(f.ctx, f.actor())
	hash := bytes.Repeat([]byte{0x5e, 0xc7}, 16)
	tok, err := f.st.CreateToken(ctx, store.Token{TenantID: tn.ID, Hash: hash, Scopes: []string{"scim", "admin"}, UserID: "u-1"})
	if err != nil {
		f.t.Fatal(err)
	}
	other, err := f.st.CreateToken(ctx, store.Token{TenantID: tn.ID, Hash: bytes.Repeat([]byte{0x01}, 32), Scopes: []string{"scim"}})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.RevokeUserTokens(ctx, tn.ID, "u-1"); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.RevokeUserTokens(ctx, tn.ID, "u-1"); err != nil { // nothing left to revoke
		f.t.Fatal(err)
	}
	if err := f.st.SetTenantSettings(ctx, tn.ID, store.TenantSettings{FreeAccess: true, MailFrom: "a@example.com"}); err != nil {
		f.t.Fatal(err)
	}
	got := f.events(tn.ID, store.OpTokenCreate, store.OpTokenRevoke, store.OpTenantSettings)
	if len(got) != 4 {
		f.t.Fatalf("events %s, want two token.create, one token.revoke, one tenant.settings", show(got))
	}
	wantEvent(f, got[0], store.OpTokenCreate, store.AuditToken, tok.ID, nil, nil, 201)
	wantEvent(f, got[1], store.OpTokenCreate, store.AuditToken, other.ID, nil, nil, 201)
	wantEvent(f, got[2], store.OpTokenRevoke, store.AuditToken, tok.ID, nil, nil, 200)
	wantEvent(f, got[3], store.OpTenantSettings, store.AuditTenant, tn.ID, nil, nil, 200)
	if !strings.Contains(got[0].Detail, "scim,admin") || !strings.Contains(got[0].Detail, "u-1") {
		f.t.Errorf("token.create detail %q does not say what the token may do", got[0].Detail)
	}
	if d := got[3].Detail; !strings.Contains(d, "free_access") || !strings.Contains(d, "mail_from") || strings.Contains(d, "a@example.com") {
		f.t.Errorf("tenant.settings detail %q: want the names of the changed settings, not their values", d)
	}
	for _, e := range f.events(tn.ID) {
		if s := show(e); strings.Contains(s, hex.EncodeToString(hash)) || strings.Contains(strings.ToLower(s), "5ec75ec7") {
			f.t.Errorf("an event holds the token hash: %s", s)
		}
	}
}

func auditAppendOnly(f *fixture) {
	tn := f.tenant("acme")
	at := time.Now().UTC().Truncate(time.Second)
	e := store.AuditEvent{ID: "0190aaaa-0000-7000-8000-000000000001", TenantID: tn.ID, At: at, TokenID: "tok-1", Operation: store.OpDelete,
		ResourceType: "User", ResourceID: "u-1", Outcome: store.AuditRefused, Status: 412, Detail: "If-Match"}
	if err := f.st.AppendAudit(f.ctx, e); err != nil {
		f.t.Fatal(err)
	}
	// An event is never replaced: appending its id again is a conflict.
	again := e
	again.Outcome, again.Status, again.Detail = store.AuditOK, 204, "rewritten"
	wantErr(f.t, f.st.AppendAudit(f.ctx, again), store.ErrConflict)
	got := f.events(tn.ID, store.OpDelete)
	if len(got) != 1 || !reflect.DeepEqual(got[0], e) {
		f.t.Errorf("events %s, want exactly %s", show(got), show(e))
	}
	// The store offers no way to change an event: its only audit methods append,
	// read and delete by age.
	st := reflect.TypeOf((*store.Store)(nil)).Elem()
	for i := range st.NumMethod() {
		name := st.Method(i).Name
		if strings.Contains(name, "Audit") && !slices.Contains([]string{"AppendAudit", "AuditEvents", "DeleteAuditBefore"}, name) {
			f.t.Errorf("store.Store has %s: the audit log is append-only", name)
		}
	}
}

func auditListScopedAndPaged(f *fixture) {
	a, b := f.tenant("alpha"), f.tenant("bravo")
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second) // before the tenant.create events
	var want []string
	for i := range 5 {
		for _, tn := range []store.Tenant{a, b} {
			e := store.AuditEvent{TenantID: tn.ID, At: base.Add(time.Duration(i) * time.Minute), Operation: store.OpUpdate,
				ResourceType: "User", ResourceID: tn.Name, Outcome: store.AuditOK, Status: 200}
			if i == 2 {
				e.At = base.Add(time.Minute) // two events of one time: ordered by id
			}
			if err := f.st.AppendAudit(f.ctx, e); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	all, err := f.st.AuditEvents(f.ctx, a.ID, store.AuditQuery{Since: base, Until: base.Add(30 * time.Minute), Limit: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(all) != 5 {
		f.t.Fatalf("tenant alpha reads %d events, want its 5", len(all))
	}
	for i, e := range all {
		if e.TenantID != a.ID || e.ResourceID != "alpha" {
			f.t.Errorf("tenant alpha reads %s", show(e))
		}
		if i > 0 && (e.At.Before(all[i-1].At) || e.At.Equal(all[i-1].At) && e.ID < all[i-1].ID) {
			f.t.Errorf("events out of (at, id) order at %d: %s", i, show(all))
		}
		want = append(want, e.ID)
	}
	// Keyset pages of 2 walk the same list.
	var paged []string
	var after *store.AuditPosition
	for range 10 {
		page, err := f.st.AuditEvents(f.ctx, a.ID, store.AuditQuery{Since: base, Until: base.Add(30 * time.Minute), Limit: 2, After: after})
		if err != nil {
			f.t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			paged = append(paged, e.ID)
		}
		last := page[len(page)-1]
		after = &store.AuditPosition{At: last.At, ID: last.ID}
	}
	if !slices.Equal(paged, want) {
		f.t.Errorf("pages %q, want %q", paged, want)
	}
	// Limit 1 is a page of one event: the first.
	one, err := f.st.AuditEvents(f.ctx, a.ID, store.AuditQuery{Since: base, Until: base.Add(30 * time.Minute), Limit: 1})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(one) != 1 || one[0].ID != want[0] {
		f.t.Errorf("Limit 1 reads %s, want the first event %s only", show(one), want[0])
	}
	// since is inclusive, until exclusive.
	win, err := f.st.AuditEvents(f.ctx, a.ID, store.AuditQuery{Since: base.Add(time.Minute), Until: base.Add(3 * time.Minute), Limit: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(win) != 2 || !win[0].At.Equal(base.Add(time.Minute)) {
		f.t.Errorf("window [base+1m, base+3m) = %s, want the two events at base+1m", show(win))
	}
}

func auditDeleteBefore(f *fixture) {
	a, b := f.tenant("alpha"), f.tenant("bravo")
	now := time.Now().UTC()
	old := now.Add(-100 * 24 * time.Hour)
	for _, tn := range []store.Tenant{a, b} {
		for i, at := range []time.Time{old, old.Add(time.Hour), now.Add(-time.Hour)} {
			if err := f.st.AppendAudit(f.ctx, store.AuditEvent{TenantID: tn.ID, At: at, Operation: store.OpUpdate, ResourceID: tn.Name + string(rune('0'+i)),
				Outcome: store.AuditOK}); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	cutoff := now.Add(-90 * 24 * time.Hour)
	n, err := f.st.DeleteAuditBefore(f.ctx, cutoff, 3) // a batch: 3 of the 4 old events
	if err != nil || n != 3 {
		f.t.Fatalf("DeleteAuditBefore = %d, %v; want 3 (the batch size)", n, err)
	}
	if n, err = f.st.DeleteAuditBefore(f.ctx, cutoff, 3); err != nil || n != 1 {
		f.t.Fatalf("second batch = %d, %v; want the last old event", n, err)
	}
	if n, err = f.st.DeleteAuditBefore(f.ctx, cutoff, 3); err != nil || n != 0 {
		f.t.Fatalf("third batch = %d, %v; want nothing left to delete", n, err)
	}
	for _, tn := range []store.Tenant{a, b} {
		var left []string
		for _, e := range f.events(tn.ID, store.OpUpdate) {
			left = append(left, e.ResourceID)
		}
		if want := []string{tn.Name + "2"}; !slices.Equal(left, want) {
			f.t.Errorf("tenant %s keeps %q, want only the recent %q", tn.Name, left, want)
		}
	}
}
