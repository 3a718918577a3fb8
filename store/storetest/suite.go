package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/scim2/filter-parser/v2"
	"gorm.io/gorm"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/store"
)

// Run runs the store conformance suite against the backend open returns. Subtests are
// named contract=<area>/<case>; every case opens its own fresh store with open(t), so
// no case sees another's rows.
func Run(t *testing.T, open func(t testing.TB) store.Store) {
	for _, c := range contracts {
		t.Run("contract="+c.area, func(t *testing.T) {
			for _, tc := range c.cases {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(&fixture{t: t, ctx: t.Context(), st: open(t)})
				})
			}
		})
	}
}

type contractCase struct {
	name string
	run  func(f *fixture)
}

var contracts = []struct {
	area  string
	cases []contractCase
}{
	{"store", []contractCase{
		{"ping", storePing},
		{"migrate_again", storeMigrateAgain},
	}},
	{"tenants", []contractCase{
		{"create", tenantCreate},
		{"create_conflict", tenantCreateConflict},
		{"by_name", tenantByName},
		{"by_id", tenantByID},
		{"not_found", tenantNotFound},
		{"list_ordered_by_name", tenantListOrdered},
		{"settings", tenantSettings},
		{"settings_undecodable_is_an_error", tenantSettingsUndecodable},
	}},
	{"outbox", []contractCase{
		{"with_create_and_update", outboxWithWrites},
		{"not_without_its_user", outboxRollsBack},
	}},
	{"tokens", []contractCase{
		{"create_by_hash", tokenByHash},
		{"unknown_hash", tokenUnknownHash},
		{"count", tokenCount},
		{"expiry_round_trip", tokenExpiry},
		{"by_hash_with_tenant_settings", tokenTenantSettings},
		{"touch_once_per_interval", tokenTouch},
		{"list_per_tenant", tokenList},
		{"revoke_one", tokenRevoke},
		{"epoch_moves_with_principals", tokenEpoch},
	}},
	{"users", []contractCase{
		{"create_fills_server_values", userCreateFills},
		{"create_keeps_given_id", userCreateKeepsID},
		{"get_round_trip", userGetRoundTrip},
		{"create_conflict", userCreateConflict},
		{"same_user_name_other_tenant", userSameNameOtherTenant},
		{"get_not_found", userGetNotFound},
		{"tenant_isolation", userTenantIsolation},
		{"update", userUpdate},
		{"update_case_only_rename", userUpdateCaseOnlyRename},
		{"update_updater_error", userUpdateUpdaterError},
		{"update_rename_conflict", userUpdateRenameConflict},
		{"update_not_found", userUpdateNotFound},
		{"delete", userDelete},
		{"delete_drops_memberships", userDeleteDropsMemberships},
		{"delete_if_version", userDeleteIfVersion},
		{"delete_not_found", userDeleteNotFound},
	}},
	{"groups", []contractCase{
		{"create_with_members", groupCreateWithMembers},
		{"create_duplicate_members", groupCreateDuplicateMembers},
		{"create_unknown_member", groupCreateUnknownMember},
		{"create_member_of_other_tenant", groupCreateMemberOtherTenant},
		{"create_self_member", groupCreateSelfMember},
		{"get_members_display", groupGetMembersDisplay},
		{"user_groups", groupUserGroups},
		{"delete_nested_group", groupDeleteNested},
	}},
	{"members", []contractCase{
		{"add", membersAdd},
		{"add_idempotent", membersAddIdempotent},
		{"add_unknown", membersAddUnknown},
		{"add_self", membersAddSelf},
		{"remove", membersRemove},
		{"remove_where_value", membersRemoveWhereValue},
		{"remove_where_type", membersRemoveWhereType},
		{"remove_where_invalid_filter", membersRemoveWhereInvalid},
		{"replace", membersReplace},
		{"replace_with_add", membersReplaceWithAdd},
		{"order_within_step", membersOrderWithinStep},
		{"steps_in_order", membersStepsInOrder},
		{"each_member_like_get", membersEachLikeGet},
	}},
	{"list", []contractCase{
		{"paging", listPaging},
		{"order_by_creation", listOrderByCreation},
		{"read_options", listReadOptions},
		{"filter_users", listFilterUsers},
		{"filter_groups", listFilterGroups},
		{"filter_invalid", listFilterInvalid},
		{"filter_booleans", listFilterBooleans},
		{"filter_present_not_empty", listFilterPresentEmpty},
		{"filter_too_deep", listFilterTooDeep},
		{"total_without_filter_follows_creates_and_deletes", listTotalKept},
		{"known_total_spares_the_count", listKnownTotal},
		{"total_under_concurrent_creates_and_deletes", listTotalConcurrent},
	}},
	{"concurrency", []contractCase{
		{"update_no_lost_update", concurrentUpdates},
		{"create_same_user_name", concurrentCreates},
		{"delete_vs_add_member", concurrentDeleteVsMembers(false)},
		{"delete_vs_replace_members", concurrentDeleteVsMembers(true)},
	}},
	{"tasks", []contractCase{
		{"create_and_read", taskCreateAndRead},
		{"empty_is_completed", taskEmptyIsCompleted},
		{"claim_and_finish", taskClaimAndFinish},
		{"claim_one_task", taskClaimOneTask},
		{"created_claimed", taskCreatedClaimed},
		{"lease_expiry_fences_old_claim", taskLeaseExpiry},
		{"release", taskRelease},
		{"concurrent_claims_disjoint", taskConcurrentClaims},
		{"numbers_per_tenant", taskNumbersPerTenant},
		{"numbers_concurrent_distinct", taskNumbersConcurrent},
	}},
	{"audit", auditCases},
	{"writes", writeCases},
	{"delivery", []contractCase{
		{"claim_with_lease", deliveryClaimWithLease},
		{"concurrent_claims_exclusive", deliveryConcurrentClaims},
		{"finish_once_by_holder", deliveryFinishOnceByHolder},
		{"pending_outcome_waits", deliveryPendingOutcome},
		{"retry", deliveryRetry},
		{"links_single_use", deliveryLinksSingleUse},
		{"links_one_usable_per_user_and_purpose", deliveryLinksRevoked},
	}},
}

// ---- fixture

type fixture struct {
	t   *testing.T
	ctx context.Context
	st  store.Store
}

// exactlyOne checks that exactly one of errs, the results of racing calls, is nil
// and that every other is loser.
func (f *fixture) exactlyOne(errs []error, loser error, what string) {
	f.t.Helper()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, loser):
			f.t.Errorf("%s: %v, want nil or %v", what, err, loser)
		}
	}
	if ok != 1 {
		f.t.Errorf("%d of %d %s succeeded, want exactly 1", ok, len(errs), what)
	}
}

func (f *fixture) tenant(name string) store.Tenant {
	f.t.Helper()
	tn, err := f.st.CreateTenant(f.ctx, name)
	if err != nil {
		f.t.Fatalf("CreateTenant(%q): %v", name, err)
	}
	return tn
}

// newUser returns an unsaved user whose document holds its userName.
func newUser(tenantID, userName string) *store.Resource {
	return &store.Resource{
		TenantID: tenantID, Kind: store.KindUser, UserName: userName,
		Doc: mustJSON(map[string]any{"userName": userName}),
	}
}

// newGroup returns an unsaved group with the given display name and member ids.
func newGroup(tenantID, displayName string, memberIDs ...string) *store.Resource {
	g := &store.Resource{
		TenantID: tenantID, Kind: store.KindGroup, DisplayName: ptr(displayName),
		Doc: mustJSON(map[string]any{"displayName": displayName}),
	}
	for _, id := range memberIDs {
		g.Members = append(g.Members, store.Member{Value: id})
	}
	return g
}

func (f *fixture) create(r *store.Resource) *store.Resource {
	f.t.Helper()
	if err := f.st.Create(f.ctx, r); err != nil {
		f.t.Fatalf("Create(%s %q): %v", r.Kind, r.UserName+deref(r.DisplayName), err)
	}
	return r
}

func (f *fixture) user(tenantID, userName string) *store.Resource {
	f.t.Helper()
	return f.create(newUser(tenantID, userName))
}

func (f *fixture) group(tenantID, displayName string, memberIDs ...string) *store.Resource {
	f.t.Helper()
	return f.create(newGroup(tenantID, displayName, memberIDs...))
}

func (f *fixture) get(tenantID string, kind store.Kind, id string) *store.Resource {
	f.t.Helper()
	r, err := f.st.Get(f.ctx, tenantID, kind, id, store.ReadOptions{Members: true, Groups: true})
	if err != nil {
		f.t.Fatalf("Get(%s %s): %v", kind, id, err)
	}
	return r
}

func (f *fixture) gone(tenantID string, kind store.Kind, id string) {
	f.t.Helper()
	_, err := f.st.Get(f.ctx, tenantID, kind, id, store.ReadOptions{})
	wantErr(f.t, err, store.ErrNotFound)
}

func (f *fixture) update(tenantID string, kind store.Kind, id string, fn store.Updater) *store.Resource {
	f.t.Helper()
	r, err := f.st.Update(f.ctx, tenantID, kind, id, fn)
	if err != nil {
		f.t.Fatalf("Update(%s %s): %v", kind, id, err)
	}
	return r
}

// changeMembers runs an Update of group id that returns changes and checks that the
// group's version went up by exactly one.
func (f *fixture) changeMembers(tenantID, id string, changes ...store.MemberChange) {
	f.t.Helper()
	before := f.get(tenantID, store.KindGroup, id)
	r := f.update(tenantID, store.KindGroup, id, func(*store.Resource) ([]store.MemberChange, error) {
		return changes, nil
	})
	if r.Version != before.Version+1 {
		f.t.Errorf("Update returned version %d, want %d", r.Version, before.Version+1)
	}
	if got := f.get(tenantID, store.KindGroup, id).Version; got != before.Version+1 {
		f.t.Errorf("stored version = %d after one Update, want %d", got, before.Version+1)
	}
}

func (f *fixture) list(tenantID string, kind store.Kind, opts store.ListOptions) store.ListResult {
	f.t.Helper()
	res, err := f.st.List(f.ctx, tenantID, kind, opts)
	if err != nil {
		f.t.Fatalf("List(%s): %v", kind, err)
	}
	return res
}

// memberIDs returns the sorted member ids of a group.
func (f *fixture) memberIDs(tenantID, groupID string) []string {
	f.t.Helper()
	return memberValues(f.get(tenantID, store.KindGroup, groupID).Members)
}

// in returns f reporting to t, a subtest of f's test, on the same store.
func (f *fixture) in(t *testing.T) *fixture {
	c := *f
	c.t = t
	return &c
}

// unchanged checks that the resource still reads back exactly as before.
func (f *fixture) unchanged(before *store.Resource) {
	f.t.Helper()
	sameResource(f.t, f.get(before.TenantID, before.Kind, before.ID), before)
}

// ---- helpers

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func parse(t testing.TB, expr string) filter.Expression {
	t.Helper()
	e, err := filter.ParseFilter([]byte(expr))
	if err != nil {
		t.Fatalf("parse filter %q: %v", expr, err)
	}
	return e
}

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want errors.Is(err, %v)", err, want)
	}
}

// jsonEqual compares two JSON documents semantically (key order and spacing aside).
func jsonEqual(t testing.TB, what string, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: %v in %s", what, err, got)
		return
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: want: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

// memberValues returns the sorted values of ms, never nil.
func memberValues(ms []store.Member) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Value)
	}
	slices.Sort(out)
	return out
}

// sortedIDs returns vals sorted, never nil.
func sortedIDs(vals ...string) []string {
	out := append([]string{}, vals...)
	slices.Sort(out)
	return out
}

// ids returns the ids of rs in order.
func ids(rs []*store.Resource) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// sortMembers returns ms ordered by value, nil when empty.
func sortMembers(ms []store.Member) []store.Member {
	if len(ms) == 0 {
		return nil
	}
	out := slices.Clone(ms)
	slices.SortFunc(out, func(a, b store.Member) int { return strings.Compare(a.Value, b.Value) })
	return out
}

// sortGroups returns gs ordered by value, nil when empty.
func sortGroups(gs []store.GroupRef) []store.GroupRef {
	if len(gs) == 0 {
		return nil
	}
	out := slices.Clone(gs)
	slices.SortFunc(out, func(a, b store.GroupRef) int { return strings.Compare(a.Value, b.Value) })
	return out
}

// sameResource compares every stored field of two resources: columns, server values,
// the document (semantically) and, order aside, members and groups.
func sameResource(t testing.TB, got, want *store.Resource) {
	t.Helper()
	type cols struct {
		TenantID, ID, UserName, PasswordHash string
		Kind                                 store.Kind
		ExternalID, DisplayName              *string
		Active                               *bool
		Version                              int64
	}
	g := cols{got.TenantID, got.ID, got.UserName, got.PasswordHash, got.Kind, got.ExternalID, got.DisplayName, got.Active, got.Version}
	w := cols{want.TenantID, want.ID, want.UserName, want.PasswordHash, want.Kind, want.ExternalID, want.DisplayName, want.Active, want.Version}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("columns = %s, want %s", show(g), show(w))
	}
	if !got.Created.Equal(want.Created) {
		t.Errorf("Created = %v, want %v", got.Created, want.Created)
	}
	if !got.LastModified.Equal(want.LastModified) {
		t.Errorf("LastModified = %v, want %v", got.LastModified, want.LastModified)
	}
	jsonEqual(t, "Doc", got.Doc, want.Doc)
	if gm, wm := sortMembers(got.Members), sortMembers(want.Members); !reflect.DeepEqual(gm, wm) {
		t.Errorf("Members = %+v, want %+v", gm, wm)
	}
	if gg, wg := sortGroups(got.Groups), sortGroups(want.Groups); !reflect.DeepEqual(gg, wg) {
		t.Errorf("Groups = %+v, want %+v", gg, wg)
	}
}

// show prints a struct with its pointers followed, or a slice of them.
func show(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = show(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	var b strings.Builder
	b.WriteString("{")
	for i := range rv.NumField() {
		if i > 0 {
			b.WriteString(" ")
		}
		fv := rv.Field(i)
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				fmt.Fprintf(&b, "%s:nil", rv.Type().Field(i).Name)
				continue
			}
			fv = fv.Elem()
		}
		fmt.Fprintf(&b, "%s:%v", rv.Type().Field(i).Name, fv.Interface())
	}
	b.WriteString("}")
	return b.String()
}

var errRefused = errors.New("updater refused")

// ---- store

func storePing(f *fixture) {
	if err := f.st.Ping(f.ctx); err != nil {
		f.t.Errorf("Ping: %v", err)
	}
}

func storeMigrateAgain(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	if err := f.st.Migrate(f.ctx); err != nil {
		f.t.Fatalf("second Migrate: %v", err)
	}
	f.unchanged(u)
}

// ---- tenants

func tenantCreate(f *fixture) {
	tn := f.tenant("acme")
	if tn.ID == "" || tn.Name != "acme" || tn.Created.IsZero() {
		f.t.Errorf("CreateTenant = %+v, want an id, name acme and a creation time", tn)
	}
}

func tenantCreateConflict(f *fixture) {
	first := f.tenant("acme")
	_, err := f.st.CreateTenant(f.ctx, "acme")
	wantErr(f.t, err, store.ErrConflict)
	ts, err := f.st.ListTenants(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].ID != first.ID {
		f.t.Errorf("ListTenants = %+v, want only %+v", ts, first)
	}
}

func sameTenant(t testing.TB, got, want store.Tenant) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || !got.Created.Equal(want.Created) {
		t.Errorf("tenant = %+v, want %+v", got, want)
	}
}

func tenantByName(f *fixture) {
	want := f.tenant("acme")
	f.tenant("globex")
	got, err := f.st.TenantByName(f.ctx, "acme")
	if err != nil {
		f.t.Fatal(err)
	}
	sameTenant(f.t, got, want)
}

func tenantByID(f *fixture) {
	f.tenant("acme")
	want := f.tenant("globex")
	got, err := f.st.TenantByID(f.ctx, want.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	sameTenant(f.t, got, want)
}

func tenantNotFound(f *fixture) {
	f.tenant("acme")
	for _, tc := range []struct {
		name string
		call func() (store.Tenant, error)
	}{
		{"by_name", func() (store.Tenant, error) { return f.st.TenantByName(f.ctx, "initech") }},
		{"by_id", func() (store.Tenant, error) { return f.st.TenantByID(f.ctx, uuid.NewString()) }},
	} {
		f.t.Run(tc.name, func(t *testing.T) {
			_, err := tc.call()
			wantErr(t, err, store.ErrNotFound)
		})
	}
}

func tenantListOrdered(f *fixture) {
	for _, n := range []string{"charlie", "alpha", "bravo"} {
		f.tenant(n)
	}
	ts, err := f.st.ListTenants(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var names []string
	for _, tn := range ts {
		names = append(names, tn.Name)
	}
	if want := []string{"alpha", "bravo", "charlie"}; !slices.Equal(names, want) {
		f.t.Errorf("ListTenants names = %q, want %q", names, want)
	}
}

// ---- tokens

func tokenByHash(f *fixture) {
	f.tenant("other")
	tn := f.tenant("acme")
	hash := bytes.Repeat([]byte{0xab, 0x01}, 16)
	created, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: hash, Scopes: []string{"scim", "admin"}})
	if err != nil {
		f.t.Fatal(err)
	}
	if created.ID == "" || created.Created.IsZero() {
		f.t.Errorf("CreateToken = %+v, want an id and a creation time", created)
	}
	got, err := f.st.TokenByHash(f.ctx, hash)
	if err != nil {
		f.t.Fatal(err)
	}
	if got.ID != created.ID || got.TenantID != tn.ID || !bytes.Equal(got.Hash, hash) ||
		!slices.Equal(got.Scopes, []string{"scim", "admin"}) || got.RevokedAt != nil || !got.Created.Equal(created.Created) {
		f.t.Errorf("TokenByHash = %+v, want %+v", got, created)
	}
	if got.UserID != "" {
		f.t.Errorf("a token bound to no user has UserID %q", got.UserID)
	}
	bound := bytes.Repeat([]byte{0xcd, 0x02}, 16)
	if _, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: bound, Scopes: []string{"scim"}, UserID: "u-1"}); err != nil {
		f.t.Fatal(err)
	}
	if got, err := f.st.TokenByHash(f.ctx, bound); err != nil || got.UserID != "u-1" {
		f.t.Errorf("bound token: UserID %q, %v", got.UserID, err)
	}
}

func tokenUnknownHash(f *fixture) {
	tn := f.tenant("acme")
	if _, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: bytes.Repeat([]byte{1}, 32), Scopes: []string{"scim"}}); err != nil {
		f.t.Fatal(err)
	}
	_, err := f.st.TokenByHash(f.ctx, bytes.Repeat([]byte{2}, 32))
	wantErr(f.t, err, store.ErrNotFound)
}

func tokenCount(f *fixture) {
	a, b, c := f.tenant("a"), f.tenant("b"), f.tenant("c")
	for i, tn := range []store.Tenant{a, a, b} {
		if _, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: bytes.Repeat([]byte{byte(i + 1)}, 32), Scopes: []string{"scim"}}); err != nil {
			f.t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		tenant store.Tenant
		want   int
	}{{a, 2}, {b, 1}, {c, 0}} {
		n, err := f.st.CountTokens(f.ctx, tc.tenant.ID)
		if err != nil {
			f.t.Fatal(err)
		}
		if n != tc.want {
			f.t.Errorf("CountTokens(%s) = %d, want %d", tc.tenant.Name, n, tc.want)
		}
	}
}

func tokenExpiry(f *fixture) {
	tn := f.tenant("acme")
	at := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	exp := bytes.Repeat([]byte{3}, 32)
	created, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: exp, Scopes: []string{"scim"}, ExpiresAt: &at})
	if err != nil {
		f.t.Fatal(err)
	}
	want := at.Truncate(time.Microsecond) // what both databases keep
	if created.ExpiresAt == nil || !created.ExpiresAt.Equal(want) {
		f.t.Errorf("CreateToken ExpiresAt = %v, want %v", created.ExpiresAt, want)
	}
	got, err := f.st.TokenByHash(f.ctx, exp)
	if err != nil {
		f.t.Fatal(err)
	}
	if got.ExpiresAt == nil || !got.ExpiresAt.Equal(want) {
		f.t.Errorf("TokenByHash ExpiresAt = %v, want %v", got.ExpiresAt, want)
	}
	if got.LastUsedAt != nil {
		f.t.Errorf("a new token has LastUsedAt %v, want none", got.LastUsedAt)
	}
	never := bytes.Repeat([]byte{4}, 32)
	if _, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: never, Scopes: []string{"scim"}}); err != nil {
		f.t.Fatal(err)
	}
	if got, err := f.st.TokenByHash(f.ctx, never); err != nil || got.ExpiresAt != nil {
		f.t.Errorf("a token without expiry: ExpiresAt %v, %v; want none", got.ExpiresAt, err)
	}
}

func tokenTenantSettings(f *fixture) {
	tn, other := f.tenant("acme"), f.tenant("other")
	want := store.TenantSettings{RateLimit: 2.5, RateBurst: 7, DisabledFamilies: []string{"admin"}}
	if err := f.st.SetTenantSettings(f.ctx, tn.ID, want); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.SetTenantSettings(f.ctx, other.ID, store.TenantSettings{NoRateLimit: true}); err != nil {
		f.t.Fatal(err)
	}
	for _, tc := range []struct {
		tenant store.Tenant
		hash   []byte
		want   store.TenantSettings
	}{
		{tn, bytes.Repeat([]byte{5}, 32), want},
		{other, bytes.Repeat([]byte{6}, 32), store.TenantSettings{NoRateLimit: true}},
	} {
		if _, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tc.tenant.ID, Hash: tc.hash, Scopes: []string{"scim"}}); err != nil {
			f.t.Fatal(err)
		}
		got, err := f.st.TokenByHash(f.ctx, tc.hash)
		if err != nil || got.TenantID != tc.tenant.ID || got.TenantName != tc.tenant.Name || !reflect.DeepEqual(got.TenantSettings, tc.want) {
			f.t.Errorf("TokenByHash of a %s token: tenant %s %q settings %+v, %v; want %+v", tc.tenant.Name, got.TenantID, got.TenantName, got.TenantSettings, err, tc.want)
		}
	}
}

func tokenTouch(f *fixture) {
	tn, other := f.tenant("acme"), f.tenant("other")
	hash := bytes.Repeat([]byte{7}, 32)
	tok, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: hash, Scopes: []string{"scim"}})
	if err != nil {
		f.t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	lastUsed := func() *time.Time {
		f.t.Helper()
		got, err := f.st.TokenByHash(f.ctx, hash)
		if err != nil {
			f.t.Fatal(err)
		}
		return got.LastUsedAt
	}
	for _, tc := range []struct {
		name     string
		tenantID string
		at       time.Time
		wrote    bool
		want     time.Time
	}{
		{"first use", tn.ID, t0, true, t0},
		{"within the interval", tn.ID, t0.Add(59 * time.Second), false, t0},
		{"another tenant's id", other.ID, t0.Add(time.Hour), false, t0},
		{"an interval later", tn.ID, t0.Add(time.Minute), true, t0.Add(time.Minute)},
		{"earlier than recorded", tn.ID, t0, false, t0.Add(time.Minute)},
	} {
		wrote, err := f.st.TouchToken(f.ctx, tc.tenantID, tok.ID, tc.at, time.Minute)
		if err != nil || wrote != tc.wrote {
			f.t.Errorf("%s: TouchToken = %v, %v; want %v", tc.name, wrote, err, tc.wrote)
		}
		if got := lastUsed(); got == nil || !got.Equal(tc.want) {
			f.t.Errorf("%s: LastUsedAt = %v, want %v", tc.name, got, tc.want)
		}
	}
	if wrote, err := f.st.TouchToken(f.ctx, tn.ID, "00000000-0000-4000-8000-000000000000", t0, time.Minute); err != nil || wrote {
		f.t.Errorf("TouchToken of an unknown token = %v, %v; want false, nil", wrote, err)
	}
}

func tokenList(f *fixture) {
	tn, other := f.tenant("acme"), f.tenant("other")
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for i, t := range []store.Token{
		{TenantID: tn.ID, Hash: bytes.Repeat([]byte{8}, 32), Scopes: []string{"scim", "admin"}, Profile: "okta"},
		{TenantID: other.ID, Hash: bytes.Repeat([]byte{9}, 32), Scopes: []string{"scim"}},
		{TenantID: tn.ID, Hash: bytes.Repeat([]byte{10}, 32), Scopes: []string{"compat"}, UserID: "u-1", ExpiresAt: &at, Sandbox: true},
	} {
		created, err := f.st.CreateToken(f.ctx, t)
		if err != nil {
			f.t.Fatal(err)
		}
		if i != 1 {
			want = append(want, created.ID)
		}
	}
	if err := f.st.RevokeUserTokens(f.ctx, tn.ID, "u-1"); err != nil {
		f.t.Fatal(err)
	}
	got, err := f.st.ListTokens(f.ctx, tn.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	var gotIDs []string
	for _, t := range got {
		gotIDs = append(gotIDs, t.ID)
		if len(t.Hash) != 0 || t.TenantID != tn.ID {
			f.t.Errorf("listed token %+v: want tenant %s and no hash", t, tn.ID)
		}
	}
	if !slices.Equal(gotIDs, want) {
		f.t.Fatalf("ListTokens = %q, want the tenant's two tokens oldest first %q", gotIDs, want)
	}
	if a := got[0]; !slices.Equal(a.Scopes, []string{"scim", "admin"}) || a.Profile != "okta" || a.ExpiresAt != nil || a.RevokedAt != nil {
		f.t.Errorf("first token listed as %+v", a)
	}
	if b := got[1]; b.UserID != "u-1" || !b.Sandbox || b.ExpiresAt == nil || !b.ExpiresAt.Equal(at) || b.RevokedAt == nil {
		f.t.Errorf("revoked token listed as %+v, want user u-1, sandbox, its expiry and its revocation", b)
	}
}

// ---- users

func userCreateFills(f *fixture) {
	tn := f.tenant("acme")
	u := newUser(tn.ID, "alice")
	if err := f.st.Create(f.ctx, u); err != nil {
		f.t.Fatal(err)
	}
	if u.ID == "" {
		f.t.Error("Create left ID empty")
	}
	if u.Version != 1 {
		f.t.Errorf("Version = %d, want 1", u.Version)
	}
	if u.Created.IsZero() || !u.Created.Equal(u.LastModified) {
		f.t.Errorf("Created = %v, LastModified = %v, want the same non-zero time", u.Created, u.LastModified)
	}
	other := f.user(tn.ID, "bob")
	if other.ID == u.ID {
		f.t.Errorf("two users got the same id %s", u.ID)
	}
}

func userCreateKeepsID(f *fixture) {
	tn := f.tenant("acme")
	id := uuid.NewString()
	u := newUser(tn.ID, "alice")
	u.ID = id
	f.create(u)
	if u.ID != id {
		f.t.Errorf("ID = %s, want the given %s", u.ID, id)
	}
	f.get(tn.ID, store.KindUser, id)
}

func userGetRoundTrip(f *fixture) {
	tn := f.tenant("acme")
	for _, tc := range []struct {
		name string
		user *store.Resource
	}{
		{"every_column", &store.Resource{
			UserName: "Alice", ExternalID: ptr("ext-1"), DisplayName: ptr("Alice Liddell"), Active: ptr(true),
			PasswordHash: "$2a$10$abcdefghijklmnopqrstuv",
			Doc: []byte(`{"userName":"Alice","displayName":"Alice Liddell","active":true,"externalId":"ext-1",
				"name":{"givenName":"Alice","familyName":"Liddell"},
				"emails":[{"value":"alice@example.com","type":"work","primary":true}],
				"` + schemas.EnterpriseUserURN + `":{"employeeNumber":"42","manager":{"value":"m-1"}}}`),
		}},
		{"inactive", &store.Resource{UserName: "bob", Active: ptr(false), Doc: []byte(`{"userName":"bob","active":false}`)}},
		{"nulls", &store.Resource{UserName: "carol", Doc: []byte(`{"userName":"carol"}`)}},
		{"unicode", &store.Resource{UserName: "Zoë", DisplayName: ptr("Zoë Ğ 日本"), Doc: []byte(`{"userName":"Zoë","nickName":"\u65e5\u672c \"q\""}`)}},
	} {
		f.t.Run(tc.name, func(t *testing.T) {
			f := f.in(t)
			u := tc.user
			u.TenantID, u.Kind = tn.ID, store.KindUser
			f.create(u)
			got, err := f.st.Get(f.ctx, tn.ID, store.KindUser, u.ID, store.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sameResource(t, got, u)
		})
	}
}

func userCreateConflict(f *fixture) {
	tn := f.tenant("acme")
	first := f.user(tn.ID, "Alice")
	for _, name := range []string{"Alice", "alice", "ALICE"} {
		f.t.Run(name, func(t *testing.T) {
			f := f.in(t)
			err := f.st.Create(f.ctx, newUser(tn.ID, name))
			wantErr(t, err, store.ErrConflict)
		})
	}
	res := f.list(tn.ID, store.KindUser, store.ListOptions{Count: 10})
	if !slices.Equal(ids(res.Resources), []string{first.ID}) || res.Total != 1 {
		f.t.Errorf("List = %d %v, want only %s", res.Total, ids(res.Resources), first.ID)
	}
	f.unchanged(first)
}

func userSameNameOtherTenant(f *fixture) {
	a, b := f.tenant("a"), f.tenant("b")
	ua := f.user(a.ID, "alice")
	ub := f.user(b.ID, "Alice")
	if ua.ID == ub.ID {
		f.t.Fatalf("both tenants' users got id %s", ua.ID)
	}
	f.get(a.ID, store.KindUser, ua.ID)
	f.get(b.ID, store.KindUser, ub.ID)
}

func userGetNotFound(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	for _, tc := range []struct {
		name string
		kind store.Kind
		id   string
	}{
		{"unknown_id", store.KindUser, uuid.NewString()},
		{"user_id_as_group", store.KindGroup, u.ID},
	} {
		f.t.Run(tc.name, func(t *testing.T) {
			f := f.in(t)
			_, err := f.st.Get(f.ctx, tn.ID, tc.kind, tc.id, store.ReadOptions{})
			wantErr(t, err, store.ErrNotFound)
		})
	}
}

func userTenantIsolation(f *fixture) {
	a, b := f.tenant("a"), f.tenant("b")
	ua := f.user(a.ID, "alice")
	ga := f.group(a.ID, "admins", ua.ID)
	f.user(b.ID, "bob")
	ua = f.get(a.ID, store.KindUser, ua.ID)
	ga = f.get(a.ID, store.KindGroup, ga.ID)
	for _, r := range []*store.Resource{ua, ga} {
		f.t.Run(string(r.Kind), func(t *testing.T) {
			f := f.in(t)
			_, err := f.st.Get(f.ctx, b.ID, r.Kind, r.ID, store.ReadOptions{})
			wantErr(t, err, store.ErrNotFound)
			called := false
			_, err = f.st.Update(f.ctx, b.ID, r.Kind, r.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
				called = true
				cur.Doc = []byte(`{}`)
				return nil, nil
			})
			wantErr(t, err, store.ErrNotFound)
			if called {
				t.Error("Update ran the updater on another tenant's resource")
			}
			wantErr(t, f.st.Delete(f.ctx, b.ID, r.Kind, r.ID, 0), store.ErrNotFound)
			f.unchanged(r)
		})
	}
	users := f.list(b.ID, store.KindUser, store.ListOptions{Count: 10, Filter: parse(f.t, `userName eq "alice"`)})
	groups := f.list(b.ID, store.KindGroup, store.ListOptions{Count: 10})
	if users.Total != 0 || len(users.Resources) != 0 || groups.Total != 0 || len(groups.Resources) != 0 {
		f.t.Errorf("tenant b lists users %v and groups %v, want none of tenant a's", ids(users.Resources), ids(groups.Resources))
	}
	all := f.list(b.ID, store.KindUser, store.ListOptions{Count: 10})
	if all.Total != 1 || len(all.Resources) != 1 || all.Resources[0].UserName != "bob" {
		f.t.Errorf("tenant b lists %d users, want only its own bob", all.Total)
	}
}

func userUpdate(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	var seen *store.Resource
	got := f.update(tn.ID, store.KindUser, u.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
		c := *cur
		seen = &c
		cur.UserName = "alice2"
		cur.ExternalID = ptr("ext-2")
		cur.DisplayName = ptr("Alice Two")
		cur.Active = ptr(false)
		cur.PasswordHash = "hash-2"
		cur.Doc = []byte(`{"userName":"alice2","nickName":"al"}`)
		return nil, nil
	})
	if seen == nil || seen.Version != 1 || seen.UserName != "alice" {
		f.t.Fatalf("the updater saw %+v, want the stored user at version 1", seen)
	}
	if got.Version != 2 {
		f.t.Errorf("Version = %d, want 2", got.Version)
	}
	if !got.LastModified.After(u.LastModified) {
		f.t.Errorf("LastModified = %v, want after %v", got.LastModified, u.LastModified)
	}
	if !got.Created.Equal(u.Created) {
		f.t.Errorf("Created = %v, want it kept at %v", got.Created, u.Created)
	}
	want := &store.Resource{
		TenantID: tn.ID, Kind: store.KindUser, ID: u.ID, UserName: "alice2", ExternalID: ptr("ext-2"),
		DisplayName: ptr("Alice Two"), Active: ptr(false), PasswordHash: "hash-2",
		Doc: []byte(`{"userName":"alice2","nickName":"al"}`), Version: 2, Created: u.Created, LastModified: got.LastModified,
	}
	sameResource(f.t, f.get(tn.ID, store.KindUser, u.ID), want)
	// The old name is free again; the new one is taken.
	f.user(tn.ID, "Alice")
	wantErr(f.t, f.st.Create(f.ctx, newUser(tn.ID, "ALICE2")), store.ErrConflict)
}

func userUpdateCaseOnlyRename(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	got := f.update(tn.ID, store.KindUser, u.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
		cur.UserName = "Alice"
		return nil, nil
	})
	if got.UserName != "Alice" || f.get(tn.ID, store.KindUser, u.ID).UserName != "Alice" {
		f.t.Errorf("userName = %q, want Alice", got.UserName)
	}
}

func userUpdateUpdaterError(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	g := f.group(tn.ID, "admins", u.ID)
	for _, r := range []*store.Resource{f.get(tn.ID, store.KindUser, u.ID), f.get(tn.ID, store.KindGroup, g.ID)} {
		f.t.Run(string(r.Kind), func(t *testing.T) {
			f := f.in(t)
			_, err := f.st.Update(f.ctx, tn.ID, r.Kind, r.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
				cur.UserName = "changed"
				cur.DisplayName = ptr("changed")
				cur.Doc = []byte(`{"changed":true}`)
				return []store.MemberChange{{Replace: true}}, fmt.Errorf("check: %w", errRefused)
			})
			wantErr(t, err, errRefused)
			f.unchanged(r)
		})
	}
}

func userUpdateRenameConflict(f *fixture) {
	tn := f.tenant("acme")
	alice := f.user(tn.ID, "alice")
	bob := f.user(tn.ID, "bob")
	for _, name := range []string{"alice", "ALICE"} {
		f.t.Run(name, func(t *testing.T) {
			f := f.in(t)
			_, err := f.st.Update(f.ctx, tn.ID, store.KindUser, bob.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
				cur.UserName = name
				cur.Doc = []byte(`{"userName":"` + name + `"}`)
				return nil, nil
			})
			wantErr(t, err, store.ErrConflict)
			f.unchanged(alice)
			f.unchanged(bob)
		})
	}
}

func userUpdateNotFound(f *fixture) {
	tn := f.tenant("acme")
	f.user(tn.ID, "alice")
	called := false
	_, err := f.st.Update(f.ctx, tn.ID, store.KindUser, uuid.NewString(), func(*store.Resource) ([]store.MemberChange, error) {
		called = true
		return nil, nil
	})
	wantErr(f.t, err, store.ErrNotFound)
	if called {
		f.t.Error("Update ran the updater for an unknown id")
	}
}

func userDelete(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	keep := f.user(tn.ID, "bob")
	if err := f.st.Delete(f.ctx, tn.ID, store.KindUser, u.ID, 0); err != nil {
		f.t.Fatal(err)
	}
	f.gone(tn.ID, store.KindUser, u.ID)
	res := f.list(tn.ID, store.KindUser, store.ListOptions{Count: 10})
	if !slices.Equal(ids(res.Resources), []string{keep.ID}) {
		f.t.Errorf("List after Delete = %v, want only %s", ids(res.Resources), keep.ID)
	}
	// The name is free again.
	f.user(tn.ID, "Alice")
}

func userDeleteDropsMemberships(f *fixture) {
	tn := f.tenant("acme")
	alice, bob := f.user(tn.ID, "alice"), f.user(tn.ID, "bob")
	g1 := f.group(tn.ID, "g1", alice.ID, bob.ID)
	g2 := f.group(tn.ID, "g2", alice.ID)
	g3 := f.group(tn.ID, "g3", bob.ID)
	before := map[string]*store.Resource{}
	for _, g := range []*store.Resource{g1, g2, g3} {
		before[g.ID] = f.get(tn.ID, store.KindGroup, g.ID)
	}
	if err := f.st.Delete(f.ctx, tn.ID, store.KindUser, alice.ID, 0); err != nil {
		f.t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		group   *store.Resource
		members []string
		bump    int64
	}{
		{"g1", g1, []string{bob.ID}, 1},
		{"g2", g2, []string{}, 1},
		{"g3", g3, []string{bob.ID}, 0},
	} {
		f.t.Run(tc.name, func(t *testing.T) {
			f := f.in(t)
			got := f.get(tn.ID, store.KindGroup, tc.group.ID)
			if m := memberValues(got.Members); !slices.Equal(m, sortedIDs(tc.members...)) {
				t.Errorf("members = %v, want %v", m, tc.members)
			}
			if want := before[tc.group.ID].Version + tc.bump; got.Version != want {
				t.Errorf("Version = %d, want %d", got.Version, want)
			}
		})
	}
	if res := f.list(tn.ID, store.KindGroup, store.ListOptions{Count: 10, Filter: parse(f.t, `members.value eq "`+alice.ID+`"`)}); res.Total != 0 {
		f.t.Errorf("%d groups still list the deleted user", res.Total)
	}
}

func userDeleteIfVersion(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	u = f.update(tn.ID, store.KindUser, u.ID, func(*store.Resource) ([]store.MemberChange, error) { return nil, nil })
	g := f.group(tn.ID, "admins", u.ID)
	gBefore := f.get(tn.ID, store.KindGroup, g.ID)
	uBefore := f.get(tn.ID, store.KindUser, u.ID)
	for _, v := range []int64{1, 3} {
		f.t.Run("mismatch_"+strconv.FormatInt(v, 10), func(t *testing.T) {
			f := f.in(t)
			wantErr(t, f.st.Delete(f.ctx, tn.ID, store.KindUser, u.ID, v), store.ErrPrecondition)
			f.unchanged(uBefore)
			f.unchanged(gBefore)
		})
	}
	f.t.Run("match", func(t *testing.T) {
		f := f.in(t)
		if err := f.st.Delete(f.ctx, tn.ID, store.KindUser, u.ID, 2); err != nil {
			t.Fatal(err)
		}
		f.gone(tn.ID, store.KindUser, u.ID)
	})
}

func userDeleteNotFound(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	for _, tc := range []struct {
		name string
		kind store.Kind
		id   string
	}{
		{"unknown_id", store.KindUser, uuid.NewString()},
		{"user_id_as_group", store.KindGroup, u.ID},
	} {
		f.t.Run(tc.name, func(t *testing.T) {
			f := f.in(t)
			wantErr(t, f.st.Delete(f.ctx, tn.ID, tc.kind, tc.id, 0), store.ErrNotFound)
		})
	}
	f.unchanged(f.get(tn.ID, store.KindUser, u.ID))
}

// ---- groups

func groupCreateWithMembers(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	inner := f.group(tn.ID, "inner")
	g := newGroup(tn.ID, "outer", u.ID, inner.ID)
	g.Members[1].Type = store.KindUser // the store decides the type from the member's row
	f.create(g)
	if g.Version != 1 || g.ID == "" {
		f.t.Errorf("group ID %q version %d, want an id and version 1", g.ID, g.Version)
	}
	want := []store.Member{{Value: u.ID, Type: store.KindUser}, {Value: inner.ID, Type: store.KindGroup}}
	if got := sortMembers(g.Members); !reflect.DeepEqual(got, sortMembers(want)) {
		f.t.Errorf("Create set Members = %+v, want %+v", got, want)
	}
	got := f.get(tn.ID, store.KindGroup, g.ID)
	for _, m := range got.Members {
		m.Display = ""
		if !slices.Contains(want, m) {
			f.t.Errorf("stored member %+v, want one of %+v", m, want)
		}
	}
	if len(got.Members) != 2 {
		f.t.Errorf("Get returned %d members, want 2", len(got.Members))
	}
	plain, err := f.st.Get(f.ctx, tn.ID, store.KindGroup, g.ID, store.ReadOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	if plain.Members != nil {
		f.t.Errorf("Get without ReadOptions.Members returned members %+v", plain.Members)
	}
	jsonEqual(f.t, "Doc", got.Doc, []byte(`{"displayName":"outer"}`))
	if deref(got.DisplayName) != "outer" {
		f.t.Errorf("DisplayName = %q, want outer", deref(got.DisplayName))
	}
}

func groupCreateDuplicateMembers(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	g := f.group(tn.ID, "admins", u.ID, u.ID)
	if m := f.memberIDs(tn.ID, g.ID); !slices.Equal(m, []string{u.ID}) {
		f.t.Errorf("members = %v, want one membership of %s", m, u.ID)
	}
}

func groupCreateUnknownMember(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	missing1, missing2 := uuid.NewString(), uuid.NewString()
	g := newGroup(tn.ID, "admins", missing1, u.ID, missing2)
	g.ID = uuid.NewString()
	err := f.st.Create(f.ctx, g)
	var me *store.MemberError
	if !errors.As(err, &me) {
		f.t.Fatalf("err = %v, want a *store.MemberError", err)
	}
	wantErr(f.t, err, store.ErrInvalidMember)
	if me.Self || !slices.Equal(me.Missing, []string{missing1, missing2}) { // in the order given
		f.t.Errorf("MemberError = %+v, want Missing %v", me, []string{missing1, missing2})
	}
	f.gone(tn.ID, store.KindGroup, g.ID)
	if res := f.list(tn.ID, store.KindGroup, store.ListOptions{Count: 10}); res.Total != 0 {
		f.t.Errorf("%d groups exist after a refused Create", res.Total)
	}
	if ug := f.get(tn.ID, store.KindUser, u.ID).Groups; len(ug) != 0 {
		f.t.Errorf("user belongs to %+v after a refused Create", ug)
	}
	// Nothing half-written blocks the same group from being created correctly.
	g.Members = []store.Member{{Value: u.ID}}
	f.create(g)
}

func groupCreateMemberOtherTenant(f *fixture) {
	a, b := f.tenant("a"), f.tenant("b")
	ub := f.user(b.ID, "bob")
	gb := f.group(b.ID, "b-group")
	for _, id := range []string{ub.ID, gb.ID} {
		err := f.st.Create(f.ctx, newGroup(a.ID, "admins", id))
		var me *store.MemberError
		if !errors.As(err, &me) || !slices.Equal(me.Missing, []string{id}) {
			f.t.Errorf("err = %v, want a MemberError missing %s", err, id)
		}
	}
	if res := f.list(a.ID, store.KindGroup, store.ListOptions{Count: 10}); res.Total != 0 {
		f.t.Errorf("%d groups exist after refused Creates", res.Total)
	}
}

func groupCreateSelfMember(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	id := uuid.NewString()
	g := newGroup(tn.ID, "loop", u.ID, id)
	g.ID = id
	err := f.st.Create(f.ctx, g)
	var me *store.MemberError
	if !errors.As(err, &me) || !me.Self {
		f.t.Fatalf("err = %v, want a MemberError with Self", err)
	}
	wantErr(f.t, err, store.ErrInvalidMember)
	f.gone(tn.ID, store.KindGroup, id)
}

func groupGetMembersDisplay(f *fixture) {
	tn := f.tenant("acme")
	named := newUser(tn.ID, "alice")
	named.DisplayName = ptr("Alice Liddell")
	f.create(named)
	plain := f.user(tn.ID, "bob")
	inner := f.group(tn.ID, "Inner Circle")
	g := f.group(tn.ID, "outer", named.ID, plain.ID, inner.ID)
	got := f.get(tn.ID, store.KindGroup, g.ID)
	want := []store.Member{
		{Value: named.ID, Type: store.KindUser, Display: "Alice Liddell"},
		{Value: plain.ID, Type: store.KindUser, Display: "bob"},
		{Value: inner.ID, Type: store.KindGroup, Display: "Inner Circle"},
	}
	if gm, wm := sortMembers(got.Members), sortMembers(want); !reflect.DeepEqual(gm, wm) {
		f.t.Errorf("Members = %+v, want %+v", gm, wm)
	}
}

func groupUserGroups(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	other := f.user(tn.ID, "bob")
	g1 := f.group(tn.ID, "Admins", u.ID)
	g2 := f.group(tn.ID, "Staff", u.ID, other.ID)
	f.group(tn.ID, "Others", other.ID)
	got, err := f.st.Get(f.ctx, tn.ID, store.KindUser, u.ID, store.ReadOptions{Groups: true})
	if err != nil {
		f.t.Fatal(err)
	}
	want := []store.GroupRef{{Value: g1.ID, Display: "Admins"}, {Value: g2.ID, Display: "Staff"}}
	if gg, wg := sortGroups(got.Groups), sortGroups(want); !reflect.DeepEqual(gg, wg) {
		f.t.Errorf("Groups = %+v, want %+v", gg, wg)
	}
	plain, err := f.st.Get(f.ctx, tn.ID, store.KindUser, u.ID, store.ReadOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	if plain.Groups != nil {
		f.t.Errorf("Get without ReadOptions.Groups returned groups %+v", plain.Groups)
	}
}

func groupDeleteNested(f *fixture) {
	tn := f.tenant("acme")
	u := f.user(tn.ID, "alice")
	inner := f.group(tn.ID, "inner", u.ID)
	outer := f.group(tn.ID, "outer", inner.ID, u.ID)
	if err := f.st.Delete(f.ctx, tn.ID, store.KindGroup, inner.ID, 0); err != nil {
		f.t.Fatal(err)
	}
	f.gone(tn.ID, store.KindGroup, inner.ID)
	got := f.get(tn.ID, store.KindGroup, outer.ID)
	if m := memberValues(got.Members); !slices.Equal(m, []string{u.ID}) {
		f.t.Errorf("outer members = %v, want only %s", m, u.ID)
	}
	if got.Version != 2 {
		f.t.Errorf("outer Version = %d, want 2", got.Version)
	}
	if ug := f.get(tn.ID, store.KindUser, u.ID).Groups; len(ug) != 1 || ug[0].Value != outer.ID {
		f.t.Errorf("user groups = %+v, want only outer", ug)
	}
}

// ---- member changes

// memberFixture is a group with no members and a pool of users and groups to add.
type memberFixture struct {
	*fixture
	tenant string
	group  string
	u      [3]string
	g      [2]string
}

func newMemberFixture(f *fixture) *memberFixture {
	tn := f.tenant("acme")
	m := &memberFixture{fixture: f, tenant: tn.ID}
	for i := range m.u {
		m.u[i] = f.user(tn.ID, "user"+strconv.Itoa(i)).ID
	}
	for i := range m.g {
		m.g[i] = f.group(tn.ID, "sub"+strconv.Itoa(i)).ID
	}
	m.group = f.group(tn.ID, "target").ID
	return m
}

// in returns m reporting to t, a subtest of m's test.
func (m *memberFixture) in(t *testing.T) *memberFixture {
	c := *m
	c.fixture = m.fixture.in(t)
	return &c
}

func (m *memberFixture) members(ids ...string) []store.Member {
	out := make([]store.Member, len(ids))
	for i, id := range ids {
		out[i] = store.Member{Value: id}
	}
	return out
}

// seed sets the group's members with a first Update.
func (m *memberFixture) seed(ids ...string) {
	m.t.Helper()
	m.changeMembers(m.tenant, m.group, store.MemberChange{Add: m.members(ids...)})
}

func (m *memberFixture) want(ids ...string) {
	m.t.Helper()
	if got := m.memberIDs(m.tenant, m.group); !slices.Equal(got, sortedIDs(ids...)) {
		m.t.Errorf("members = %v, want %v", got, sortedIDs(ids...))
	}
}

func membersAdd(f *fixture) {
	m := newMemberFixture(f)
	m.changeMembers(m.tenant, m.group, store.MemberChange{Add: m.members(m.u[0], m.g[0])})
	m.want(m.u[0], m.g[0])
	got := m.get(m.tenant, store.KindGroup, m.group)
	for _, mem := range got.Members {
		if want := map[string]store.Kind{m.u[0]: store.KindUser, m.g[0]: store.KindGroup}[mem.Value]; mem.Type != want {
			m.t.Errorf("member %s type %q, want %q", mem.Value, mem.Type, want)
		}
	}
	m.changeMembers(m.tenant, m.group, store.MemberChange{Add: m.members(m.u[1])})
	m.want(m.u[0], m.g[0], m.u[1])
}

func membersAddIdempotent(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0])
	m.changeMembers(m.tenant, m.group, store.MemberChange{Add: m.members(m.u[0], m.u[1], m.u[1])})
	m.want(m.u[0], m.u[1])
	m.changeMembers(m.tenant, m.group,
		store.MemberChange{Add: m.members(m.u[1])},
		store.MemberChange{Add: m.members(m.u[1], m.u[0])})
	m.want(m.u[0], m.u[1])
}

func membersAddUnknown(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0])
	before := m.get(m.tenant, store.KindGroup, m.group)
	missing := uuid.NewString()
	_, err := m.st.Update(m.ctx, m.tenant, store.KindGroup, m.group, func(cur *store.Resource) ([]store.MemberChange, error) {
		cur.DisplayName = ptr("renamed")
		return []store.MemberChange{{Replace: true}, {Add: m.members(m.u[1], missing)}}, nil
	})
	var me *store.MemberError
	if !errors.As(err, &me) || !slices.Equal(me.Missing, []string{missing}) {
		m.t.Fatalf("err = %v, want a MemberError missing %s", err, missing)
	}
	m.unchanged(before)
}

func membersAddSelf(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0])
	before := m.get(m.tenant, store.KindGroup, m.group)
	_, err := m.st.Update(m.ctx, m.tenant, store.KindGroup, m.group, func(*store.Resource) ([]store.MemberChange, error) {
		return []store.MemberChange{{Add: m.members(m.u[1], m.group)}}, nil
	})
	var me *store.MemberError
	if !errors.As(err, &me) || !me.Self {
		m.t.Fatalf("err = %v, want a MemberError with Self", err)
	}
	m.unchanged(before)
}

func membersRemove(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0], m.u[1], m.g[0])
	m.changeMembers(m.tenant, m.group, store.MemberChange{Remove: []string{m.u[1], m.g[0]}})
	m.want(m.u[0])
	// Removing a member the group does not have changes no membership.
	m.changeMembers(m.tenant, m.group, store.MemberChange{Remove: []string{m.u[2], uuid.NewString()}})
	m.want(m.u[0])
	// The removed resources themselves are untouched.
	m.get(m.tenant, store.KindUser, m.u[1])
	m.get(m.tenant, store.KindGroup, m.g[0])
}

func membersRemoveWhereValue(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0], m.u[1], m.g[0])
	m.changeMembers(m.tenant, m.group, store.MemberChange{RemoveWhere: parse(m.t, `value eq "`+m.u[1]+`"`)})
	m.want(m.u[0], m.g[0])
	m.changeMembers(m.tenant, m.group, store.MemberChange{RemoveWhere: parse(m.t, `value eq "`+m.u[0]+`" or value eq "`+m.g[0]+`"`)})
	m.want()
}

func membersRemoveWhereType(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0], m.u[1], m.g[0], m.g[1])
	m.changeMembers(m.tenant, m.group, store.MemberChange{RemoveWhere: parse(m.t, `type eq "Group"`)})
	m.want(m.u[0], m.u[1])
	m.changeMembers(m.tenant, m.group, store.MemberChange{RemoveWhere: parse(m.t, `type eq "User" and value ne "`+m.u[1]+`"`)})
	m.want(m.u[1])
}

func membersRemoveWhereInvalid(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0])
	before := m.get(m.tenant, store.KindGroup, m.group)
	for _, tc := range []struct{ name, filter string }{
		{"unknown_sub_attribute", `nope eq "x"`},
		{"display", `display eq "user0"`},
		{"nested_value_path", `members[value eq "x"]`},
	} {
		m.t.Run(tc.name, func(t *testing.T) {
			m := m.in(t)
			_, err := m.st.Update(m.ctx, m.tenant, store.KindGroup, m.group, func(*store.Resource) ([]store.MemberChange, error) {
				return []store.MemberChange{{Replace: true}, {RemoveWhere: parse(t, tc.filter)}}, nil
			})
			var fe *store.FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *store.FilterError", err)
			}
			wantErr(t, err, store.ErrInvalidFilter)
			m.unchanged(before)
		})
	}
}

func membersReplace(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0], m.g[0])
	m.changeMembers(m.tenant, m.group, store.MemberChange{Replace: true})
	m.want()
}

func membersReplaceWithAdd(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0], m.u[1])
	m.changeMembers(m.tenant, m.group, store.MemberChange{Replace: true, Add: m.members(m.u[1], m.g[1])})
	m.want(m.u[1], m.g[1])
}

func membersOrderWithinStep(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0], m.u[1])
	// Replace, then Remove, then RemoveWhere, then Add.
	m.changeMembers(m.tenant, m.group, store.MemberChange{
		Replace:     true,
		Remove:      []string{m.u[2]},
		RemoveWhere: parse(m.t, `value eq "`+m.g[0]+`"`),
		Add:         m.members(m.u[2], m.g[0]),
	})
	m.want(m.u[2], m.g[0])
}

func membersStepsInOrder(f *fixture) {
	m := newMemberFixture(f)
	m.seed(m.u[0])
	m.changeMembers(m.tenant, m.group,
		store.MemberChange{Add: m.members(m.u[1], m.g[0])},
		store.MemberChange{Remove: []string{m.u[0]}},
		store.MemberChange{RemoveWhere: parse(m.t, `type eq "Group"`)},
		store.MemberChange{Add: m.members(m.u[0], m.g[1])},
		store.MemberChange{},
		store.MemberChange{Replace: true, Add: m.members(m.u[2])},
		store.MemberChange{Add: m.members(m.u[1])},
		store.MemberChange{Remove: []string{m.u[2]}},
	)
	m.want(m.u[1])
}

// ---- list

func listPaging(f *fixture) {
	tn := f.tenant("acme")
	var all []string
	for i := range 5 {
		all = append(all, f.user(tn.ID, "user"+strconv.Itoa(i)).ID)
	}
	for _, tc := range []struct {
		name         string
		start, count int
		want         []string
	}{
		{"first_page", 1, 2, all[0:2]},
		{"second_page", 3, 2, all[2:4]},
		{"last_partial_page", 5, 2, all[4:5]},
		{"count_beyond_total", 1, 100, all},
		{"start_below_one_is_one", 0, 2, all[0:2]}, // RFC 7644 §3.4.2.4
		{"count_zero", 1, 0, nil},
		{"start_past_end", 6, 10, nil},
		{"start_far_past_end", 1000, 10, nil},
	} {
		f.t.Run(tc.name, func(t *testing.T) {
			f := f.in(t)
			res := f.list(tn.ID, store.KindUser, store.ListOptions{StartIndex: tc.start, Count: tc.count})
			if res.Total != 5 {
				t.Errorf("Total = %d, want 5", res.Total)
			}
			if got := ids(res.Resources); !slices.Equal(got, tc.want) {
				t.Errorf("page = %v, want %v", got, tc.want)
			}
		})
	}
	f.t.Run("filtered_total", func(t *testing.T) {
		f := f.in(t)
		res := f.list(tn.ID, store.KindUser, store.ListOptions{StartIndex: 2, Count: 1, Filter: parse(t, `userName ne "user2"`)})
		if res.Total != 4 || !slices.Equal(ids(res.Resources), []string{all[1]}) {
			t.Errorf("List = %d %v, want 4 [%s]", res.Total, ids(res.Resources), all[1])
		}
	})
}

func listOrderByCreation(f *fixture) {
	tn := f.tenant("acme")
	// Names sort differently from creation order, and so (most likely) do the ids.
	var want []string
	for _, n := range []string{"mallory", "zed", "alice", "bob", "Carol", "dave", "eve"} {
		want = append(want, f.user(tn.ID, n).ID)
	}
	// Updating a user does not move it.
	f.update(tn.ID, store.KindUser, want[0], func(cur *store.Resource) ([]store.MemberChange, error) {
		cur.UserName = "aaron"
		return nil, nil
	})
	for range 2 {
		if got := ids(f.list(tn.ID, store.KindUser, store.ListOptions{Count: 100}).Resources); !slices.Equal(got, want) {
			f.t.Fatalf("List = %v, want creation order %v", got, want)
		}
	}
	var paged []string
	for start := 1; start <= len(want); start += 3 {
		paged = append(paged, ids(f.list(tn.ID, store.KindUser, store.ListOptions{StartIndex: start, Count: 3}).Resources)...)
	}
	if !slices.Equal(paged, want) {
		f.t.Errorf("pages of 3 = %v, want %v", paged, want)
	}
}

func listReadOptions(f *fixture) {
	tn := f.tenant("acme")
	alice, bob, carol := f.user(tn.ID, "alice"), f.user(tn.ID, "bob"), f.user(tn.ID, "carol")
	g1 := f.group(tn.ID, "g1", alice.ID, bob.ID)
	g2 := f.group(tn.ID, "g2", bob.ID, g1.ID)
	g3 := f.group(tn.ID, "g3")
	f.t.Run("groups_with_members", func(t *testing.T) {
		f := f.in(t)
		res := f.list(tn.ID, store.KindGroup, store.ListOptions{Count: 10, ReadOptions: store.ReadOptions{Members: true}})
		want := map[string][]string{g1.ID: sortedIDs(alice.ID, bob.ID), g2.ID: sortedIDs(bob.ID, g1.ID), g3.ID: {}}
		if len(res.Resources) != 3 {
			t.Fatalf("List returned %d groups, want 3", len(res.Resources))
		}
		for _, g := range res.Resources {
			if got := memberValues(g.Members); !slices.Equal(got, want[g.ID]) {
				t.Errorf("group %s members = %v, want %v", deref(g.DisplayName), got, want[g.ID])
			}
			for _, m := range g.Members {
				if m.Type == "" || m.Display == "" {
					t.Errorf("group %s member %+v lacks type or display", deref(g.DisplayName), m)
				}
			}
		}
	})
	f.t.Run("groups_second_page", func(t *testing.T) {
		f := f.in(t)
		res := f.list(tn.ID, store.KindGroup, store.ListOptions{StartIndex: 2, Count: 1, ReadOptions: store.ReadOptions{Members: true}})
		if len(res.Resources) != 1 || !slices.Equal(memberValues(res.Resources[0].Members), sortedIDs(bob.ID, g1.ID)) {
			t.Errorf("page 2 = %+v, want g2 with its members", res.Resources)
		}
	})
	f.t.Run("users_with_groups", func(t *testing.T) {
		f := f.in(t)
		res := f.list(tn.ID, store.KindUser, store.ListOptions{Count: 10, ReadOptions: store.ReadOptions{Groups: true}})
		want := map[string][]store.GroupRef{
			alice.ID: {{Value: g1.ID, Display: "g1"}},
			bob.ID:   sortGroups([]store.GroupRef{{Value: g1.ID, Display: "g1"}, {Value: g2.ID, Display: "g2"}}),
			carol.ID: {},
		}
		if len(res.Resources) != 3 {
			t.Fatalf("List returned %d users, want 3", len(res.Resources))
		}
		for _, u := range res.Resources {
			if got := sortGroups(u.Groups); !reflect.DeepEqual(got, sortGroups(want[u.ID])) {
				t.Errorf("user %s groups = %+v, want %+v", u.UserName, got, want[u.ID])
			}
		}
	})
	f.t.Run("without_read_options", func(t *testing.T) {
		f := f.in(t)
		for _, r := range append(f.list(tn.ID, store.KindGroup, store.ListOptions{Count: 10}).Resources,
			f.list(tn.ID, store.KindUser, store.ListOptions{Count: 10}).Resources...) {
			if r.Members != nil || r.Groups != nil {
				t.Errorf("%s %s has members %+v and groups %+v without ReadOptions", r.Kind, r.ID, r.Members, r.Groups)
			}
		}
	})
}

// filterData is the data set the filter cases run on: three users and two groups in
// tenant a, and look-alikes in tenant b that no filter of tenant a may return.
type filterData struct {
	tenant            string
	alice, bob, carol string
	admins, staff     string
	otherAlice        string
	// cutoff is the last write before bob's update.
	cutoff time.Time
	expand *strings.Replacer
}

func newFilterData(f *fixture) *filterData {
	a, b := f.tenant("a"), f.tenant("b")
	ent := schemas.EnterpriseUserURN
	mk := func(tenantID, userName string, ext, display *string, active *bool, doc string) string {
		u := &store.Resource{TenantID: tenantID, Kind: store.KindUser, UserName: userName, ExternalID: ext,
			DisplayName: display, Active: active, Doc: []byte(doc)}
		return f.create(u).ID
	}
	d := &filterData{tenant: a.ID}
	aliceDoc := `{"userName":"Alice","displayName":"Alice Liddell","active":true,"externalId":"ext-A",
		"emails":[{"value":"alice@example.com","type":"work"},{"value":"alice@home.org","type":"home"}],
		"` + ent + `":{"employeeNumber":"42"}}`
	d.alice = mk(a.ID, "Alice", ptr("ext-A"), ptr("Alice Liddell"), ptr(true), aliceDoc)
	d.bob = mk(a.ID, "bob", ptr("ext-b"), nil, ptr(false), `{"userName":"bob","active":false,"externalId":"ext-b",
		"emails":[{"value":"bob@example.com","type":"home"},{"value":"bob@work.net","type":"work"}],
		"`+ent+`":{"employeeNumber":"7"}}`)
	d.carol = mk(a.ID, "carol", nil, nil, nil, `{"userName":"carol","emails":[{"value":"Carol@EXAMPLE.com","type":"work"}]}`)
	d.admins = f.group(a.ID, "Admins", d.alice, d.carol).ID
	d.staff = f.group(a.ID, "Staff", d.bob, d.admins).ID
	d.otherAlice = mk(b.ID, "alice", ptr("ext-A"), ptr("Alice Liddell"), ptr(true), aliceDoc)
	f.group(b.ID, "Admins", d.otherAlice)
	// Everything so far was written at or before cutoff; bob is modified after it.
	for _, id := range []string{d.alice, d.bob, d.carol} {
		if lm := f.get(a.ID, store.KindUser, id).LastModified; lm.After(d.cutoff) {
			d.cutoff = lm
		}
	}
	for time.Now().UTC().Truncate(time.Microsecond).Equal(d.cutoff) {
		time.Sleep(time.Microsecond)
	}
	f.update(a.ID, store.KindUser, d.bob, func(cur *store.Resource) ([]store.MemberChange, error) {
		cur.Doc = []byte(strings.Replace(string(cur.Doc), `"userName"`, `"nickName":"bobby","userName"`, 1))
		return nil, nil
	})
	d.expand = strings.NewReplacer("{alice}", d.alice, "{bob}", d.bob, "{carol}", d.carol,
		"{admins}", d.admins, "{staff}", d.staff, "{cutoff}", d.cutoff.Format(time.RFC3339Nano),
		"{otherAlice}", d.otherAlice)
	return d
}

type filterCase struct {
	name   string
	filter string
	want   []string // placeholders such as "{alice}", in creation order
}

func runFilterCases(f *fixture, d *filterData, kind store.Kind, cases []filterCase) {
	for _, tc := range cases {
		f.t.Run(tc.name, func(t *testing.T) {
			f := f.in(t)
			expr := d.expand.Replace(tc.filter)
			res, err := f.st.List(f.ctx, d.tenant, kind, store.ListOptions{Count: 100, Filter: parse(t, expr)})
			if err != nil {
				t.Fatalf("List(%s): %v", expr, err)
			}
			want := make([]string, 0, len(tc.want))
			for _, w := range tc.want {
				want = append(want, d.expand.Replace(w))
			}
			if got := ids(res.Resources); !slices.Equal(got, want) || res.Total != len(want) {
				t.Errorf("List(%s) = %d %v, want %d %v", expr, res.Total, got, len(want), want)
			}
		})
	}
}

func listFilterUsers(f *fixture) {
	d := newFilterData(f)
	ent := schemas.EnterpriseUserURN
	runFilterCases(f, d, store.KindUser, []filterCase{
		{"userName_eq_lower", `userName eq "alice"`, []string{"{alice}"}},
		{"userName_eq_upper", `userName eq "BOB"`, []string{"{bob}"}},
		{"userName_eq_none", `userName eq "dave"`, nil},
		{"userName_sw", `userName sw "C"`, []string{"{carol}"}},
		{"externalId_eq", `externalId eq "ext-A"`, []string{"{alice}"}},
		{"externalId_case_exact", `externalId eq "EXT-A"`, nil},
		{"externalId_case_exact_lower", `externalId eq "ext-a"`, nil},
		{"id_eq", `id eq "{bob}"`, []string{"{bob}"}},
		{"id_of_other_tenant", `id eq "{otherAlice}"`, nil},
		{"active_true", `active eq true`, []string{"{alice}"}},
		{"active_false", `active eq false`, []string{"{bob}"}},
		{"active_pr", `active pr`, []string{"{alice}", "{bob}"}},
		{"lastModified_gt", `meta.lastModified gt "{cutoff}"`, []string{"{bob}"}},
		{"lastModified_le", `meta.lastModified le "{cutoff}"`, []string{"{alice}", "{carol}"}},
		{"lastModified_eq", `meta.lastModified eq "{cutoff}"`, []string{"{carol}"}},
		{"created_lt", `meta.created lt "{cutoff}"`, []string{"{alice}", "{bob}"}},
		{"emails_value_co", `emails.value co "example.com"`, []string{"{alice}", "{bob}", "{carol}"}},
		{"emails_value_co_one", `emails.value co "WORK.net"`, []string{"{bob}"}},
		{"emails_value_path", `emails[type eq "work" and value ew "@example.com"]`, []string{"{alice}", "{carol}"}},
		{"emails_type_and_active", `emails.type eq "work" and active eq true`, []string{"{alice}"}},
		{"enterprise_employeeNumber", ent + `:employeeNumber eq "42"`, []string{"{alice}"}},
		{"enterprise_employeeNumber_pr", ent + `:employeeNumber pr`, []string{"{alice}", "{bob}"}},
		{"doc_attribute", `nickName eq "bobby"`, []string{"{bob}"}},
		{"groups_value", `groups.value eq "{admins}"`, []string{"{alice}", "{carol}"}},
		{"groups_value_direct_only", `groups.value eq "{staff}"`, []string{"{bob}"}},
		{"or", `userName eq "alice" or active eq false`, []string{"{alice}", "{bob}"}},
		{"not", `not (active eq true)`, []string{"{bob}", "{carol}"}},
	})
}

func listFilterGroups(f *fixture) {
	d := newFilterData(f)
	runFilterCases(f, d, store.KindGroup, []filterCase{
		{"members_value", `members.value eq "{alice}"`, []string{"{admins}"}},
		{"members_value_group", `members.value eq "{admins}"`, []string{"{staff}"}},
		{"members_value_other_tenant", `members.value eq "{otherAlice}"`, nil},
		{"members_type", `members.type eq "Group"`, []string{"{staff}"}},
		{"members_value_path", `members[value eq "{bob}" and type eq "User"]`, []string{"{staff}"}},
		{"displayName_eq", `displayName eq "admins"`, []string{"{admins}"}},
		{"id_eq", `id eq "{staff}"`, []string{"{staff}"}},
	})
}

func listFilterInvalid(f *fixture) {
	tn := f.tenant("acme")
	f.user(tn.ID, "alice")
	f.group(tn.ID, "admins")
	for _, tc := range []struct {
		name   string
		kind   store.Kind
		filter string
	}{
		{"unknown_attribute", store.KindUser, `nickname2 eq "x"`},
		{"unknown_sub_attribute", store.KindUser, `emails.nope eq "x"`},
		{"unknown_extension", store.KindUser, `urn:example:params:scim:schemas:extension:acme:2.0:User:badge eq "x"`},
		{"boolean_gt", store.KindUser, `active gt true`},
		{"boolean_with_string", store.KindUser, `active eq "yes"`},
		{"string_with_number", store.KindUser, `userName eq 1`},
		{"bad_time", store.KindUser, `meta.lastModified gt "yesterday"`},
		{"user_attribute_on_group", store.KindGroup, `userName eq "alice"`},
		{"members_display", store.KindGroup, `members.display eq "alice"`},
	} {
		f.t.Run(tc.name, func(t *testing.T) {
			f := f.in(t)
			_, err := f.st.List(f.ctx, tn.ID, tc.kind, store.ListOptions{Count: 10, Filter: parse(t, tc.filter)})
			var fe *store.FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *store.FilterError", err)
			}
			wantErr(t, err, store.ErrInvalidFilter)
		})
	}
}

// ---- concurrency

func concurrentUpdates(f *fixture) {
	const workers, rounds = 16, 10
	tn := f.tenant("acme")
	u := newUser(tn.ID, "counter")
	u.Doc = []byte(`{"userName":"counter","nickName":"0"}`)
	f.create(u)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range rounds {
				_, err := f.st.Update(f.ctx, tn.ID, store.KindUser, u.ID, increment)
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Errorf("concurrent Update: %v", err)
	}
	got := f.get(tn.ID, store.KindUser, u.ID)
	jsonEqual(f.t, "Doc", got.Doc, []byte(`{"userName":"counter","nickName":"160"}`))
	if got.Version != workers*rounds+1 {
		f.t.Errorf("Version = %d, want %d", got.Version, workers*rounds+1)
	}
}

func concurrentCreates(f *fixture) {
	const workers = 8
	tn := f.tenant("acme")
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i := range workers {
		wg.Go(func() {
			errs[i] = f.st.Create(f.ctx, newUser(tn.ID, []string{"Racer", "racer", "RACER"}[i%3]))
		})
	}
	wg.Wait()
	f.exactlyOne(errs, store.ErrConflict, "concurrent creates of one userName")
	if res := f.list(tn.ID, store.KindUser, store.ListOptions{Count: 10}); res.Total != 1 {
		f.t.Errorf("%d users stored, want 1", res.Total)
	}
}

// concurrentDeleteVsMembers races the deletion of a user against an update adding it
// to a group, round after round. Whichever commits first, no membership may name the
// deleted user afterwards: either the update sees the user gone (a MemberError) or
// the delete sees the new membership and drops it. With already set, the group holds
// the user before each round and the update replaces its members (as a PUT does).
func concurrentDeleteVsMembers(already bool) func(f *fixture) {
	return func(f *fixture) {
		const rounds = 30
		tn := f.tenant("acme")
		g := f.group(tn.ID, "target")
		change := store.MemberChange{}
		if already {
			change.Replace = true
		}
		dangling := 0
		for i := range rounds {
			u := f.user(tn.ID, "user"+strconv.Itoa(i))
			if already {
				f.changeMembers(tn.ID, g.ID, store.MemberChange{Add: []store.Member{{Value: u.ID}}})
			}
			var addErr, delErr error
			var wg sync.WaitGroup
			start := make(chan struct{})
			wg.Go(func() {
				<-start
				_, addErr = f.st.Update(f.ctx, tn.ID, store.KindGroup, g.ID, func(*store.Resource) ([]store.MemberChange, error) {
					c := change
					c.Add = []store.Member{{Value: u.ID}}
					return []store.MemberChange{c}, nil
				})
			})
			wg.Go(func() {
				<-start
				delErr = f.st.Delete(f.ctx, tn.ID, store.KindUser, u.ID, 0)
			})
			close(start)
			wg.Wait()
			if delErr != nil {
				f.t.Fatalf("round %d: Delete: %v", i, delErr)
			}
			if addErr != nil && !errors.Is(addErr, store.ErrInvalidMember) {
				f.t.Fatalf("round %d: Update: %v, want nil or ErrInvalidMember", i, addErr)
			}
			if slices.Contains(f.memberIDs(tn.ID, g.ID), u.ID) {
				dangling++
			}
		}
		if dangling > 0 {
			f.t.Errorf("%d of %d rounds left the group listing a deleted user", dangling, rounds)
		}
	}
}

// ---- tenant settings and the outbox

func tenantSettings(f *fixture) {
	tn := f.tenant("acme")
	if got, _ := f.st.TenantByName(f.ctx, "acme"); !reflect.DeepEqual(got.Settings, store.TenantSettings{}) {
		f.t.Errorf("a new tenant has settings %+v, want the defaults", got.Settings)
	}
	want := store.TenantSettings{FreeAccess: true, DisabledFamilies: []string{"partner"}, ResultURLHosts: []string{"chat.example.com"}}
	if err := f.st.SetTenantSettings(f.ctx, tn.ID, want); err != nil {
		f.t.Fatal(err)
	}
	for _, get := range []func() (store.Tenant, error){
		func() (store.Tenant, error) { return f.st.TenantByName(f.ctx, "acme") },
		func() (store.Tenant, error) { return f.st.TenantByID(f.ctx, tn.ID) },
	} {
		got, err := get()
		if err != nil || !reflect.DeepEqual(got.Settings, want) {
			f.t.Errorf("settings %+v, %v; want %+v", got.Settings, err, want)
		}
	}
	wantErr(f.t, f.st.SetTenantSettings(f.ctx, "no-such-tenant", want), store.ErrNotFound)
}

// tenantSettingsUndecodable: a settings row that cannot be decoded is an error
// naming the tenant from every read that returns the settings, never the
// defaults (which would drop a disabled family, a host list or free access).
// Another tenant reads as before.
func tenantSettingsUndecodable(f *fixture) {
	raw, ok := f.st.(interface{ DB() *gorm.DB })
	if !ok {
		f.t.Skip("the store gives no database handle to write a broken row with")
	}
	tn, other := f.tenant("acme"), f.tenant("other")
	if err := f.st.SetTenantSettings(f.ctx, tn.ID, store.TenantSettings{DisabledFamilies: []string{"partner"}}); err != nil {
		f.t.Fatal(err)
	}
	hash := bytes.Repeat([]byte{21}, 32)
	if _, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: hash, Scopes: []string{"scim"}}); err != nil {
		f.t.Fatal(err)
	}
	if err := raw.DB().WithContext(f.ctx).Exec(`UPDATE tenants SET settings = ? WHERE id = ?`, `{"disabled_families":"partner"`, tn.ID).Error; err != nil {
		f.t.Fatal(err)
	}
	reads := []struct {
		name string
		read func() (any, error)
	}{
		{"TenantByName", func() (any, error) { return f.st.TenantByName(f.ctx, "acme") }},
		{"TenantByID", func() (any, error) { return f.st.TenantByID(f.ctx, tn.ID) }},
		{"ListTenants", func() (any, error) { return f.st.ListTenants(f.ctx) }},
		{"TokenByHash", func() (any, error) { return f.st.TokenByHash(f.ctx, hash) }},
	}
	for _, r := range reads {
		got, err := r.read()
		if !errors.Is(err, store.ErrBadSettings) {
			f.t.Errorf("%s of a tenant with undecodable settings = %+v, %v; want an error wrapping ErrBadSettings", r.name, got, err)
			continue
		}
		if !strings.Contains(err.Error(), tn.ID) || !strings.Contains(err.Error(), "acme") {
			f.t.Errorf("%s: error %q does not name the tenant (%s, acme)", r.name, err, tn.ID)
		}
	}
	if got, err := f.st.TenantByID(f.ctx, other.ID); err != nil || got.Name != "other" {
		f.t.Errorf("another tenant reads %+v, %v", got, err)
	}
}

func outboxWithWrites(f *fixture) {
	tn, other := f.tenant("acme"), f.tenant("other")
	u := newUser(tn.ID, "ann@example.com")
	u.Outbox = []store.Message{{Kind: "set_password", Recipient: "ann@example.com", Payload: []byte(`{"result_url":"https://x"}`)}}
	f.create(u)
	if _, err := f.st.Update(f.ctx, tn.ID, store.KindUser, u.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
		cur.Outbox = append(cur.Outbox, store.Message{Kind: "invitation", Recipient: "ann@example.com"})
		return nil, nil
	}); err != nil {
		f.t.Fatal(err)
	}
	msgs, err := f.st.Outbox(f.ctx, tn.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Kind != "set_password" || msgs[1].Kind != "invitation" {
		f.t.Fatalf("outbox %+v", msgs)
	}
	for _, m := range msgs {
		if m.UserID != u.ID || m.Status != "pending" || m.ID == "" || m.Recipient != "ann@example.com" || m.Created.IsZero() {
			f.t.Errorf("message %+v", m)
		}
	}
	var payload map[string]any
	if err := json.Unmarshal(msgs[0].Payload, &payload); err != nil || payload["result_url"] != "https://x" {
		f.t.Errorf("payload %s", msgs[0].Payload)
	}
	if none, _ := f.st.Outbox(f.ctx, other.ID); len(none) != 0 {
		f.t.Errorf("another tenant sees %d messages", len(none))
	}
}

func outboxRollsBack(f *fixture) {
	tn := f.tenant("acme")
	f.user(tn.ID, "ann@example.com")
	dup := newUser(tn.ID, "ANN@example.com")
	dup.Outbox = []store.Message{{Kind: "set_password", Recipient: "ann@example.com"}}
	wantErr(f.t, f.st.Create(f.ctx, dup), store.ErrConflict)
	u := f.user(tn.ID, "bob@example.com")
	_, err := f.st.Update(f.ctx, tn.ID, store.KindUser, u.ID, func(cur *store.Resource) ([]store.MemberChange, error) {
		cur.Outbox = append(cur.Outbox, store.Message{Kind: "invitation", Recipient: "bob@example.com"})
		return nil, errors.New("refused")
	})
	if err == nil {
		f.t.Fatal("the updater's error was lost")
	}
	if msgs, _ := f.st.Outbox(f.ctx, tn.ID); len(msgs) != 0 {
		f.t.Errorf("messages of failed writes were queued: %+v", msgs)
	}
}

// ---- tasks

// queueTask stores a task of n pending entries (keys user0…) and returns it.
func (f *fixture) queueTask(tenantID string, n int, claim *store.Claim) (store.Task, []store.TaskEntry) {
	f.t.Helper()
	entries := make([]store.TaskEntry, n)
	for i := range entries {
		entries[i] = store.TaskEntry{Key: "user" + strconv.Itoa(i), ResourceID: uuid.NewString(), Op: "create", Payload: []byte(`{"n":` + strconv.Itoa(i) + `}`)}
	}
	t := store.Task{TenantID: tenantID, Type: "bulk_user_import"}
	if err := f.st.CreateTask(f.ctx, &t, entries, claim); err != nil {
		f.t.Fatalf("CreateTask: %v", err)
	}
	return t, entries
}

func (f *fixture) claim(taskID string, limit int, c store.Claim) []store.TaskEntry {
	f.t.Helper()
	got, err := f.st.ClaimTaskEntries(f.ctx, taskID, limit, c)
	if err != nil {
		f.t.Fatalf("ClaimTaskEntries: %v", err)
	}
	return got
}

func (f *fixture) finish(token string, entries []store.TaskEntry, want int) {
	f.t.Helper()
	n, err := f.st.FinishTaskEntries(f.ctx, token, entries)
	if err != nil || n != want {
		f.t.Fatalf("FinishTaskEntries recorded %d, %v; want %d", n, err, want)
	}
}

func (f *fixture) task(tenantID, id string) store.Task {
	f.t.Helper()
	t, err := f.st.Task(f.ctx, tenantID, id)
	if err != nil {
		f.t.Fatalf("Task: %v", err)
	}
	return t
}

func seqs(es []store.TaskEntry) []int {
	out := make([]int, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func withStatus(es []store.TaskEntry, status string) []store.TaskEntry {
	out := slices.Clone(es)
	for i := range out {
		out[i].Status = status
	}
	return out
}

func taskCreateAndRead(f *fixture) {
	tn, other := f.tenant("acme"), f.tenant("other")
	entries := []store.TaskEntry{
		{Key: "ann@example.com", GivenName: "Ann", FamilyName: "Smith", ResourceID: uuid.NewString(), Op: "create", Payload: []byte(`{"a":1}`)},
		{Key: "bad@example.com", ResourceID: uuid.NewString(), Op: "create", Status: store.TaskFailed, ErrorCode: "invalidValue", ErrorMsg: "no name"},
		{Key: "bob@example.com", GivenName: "Bob", ResourceID: uuid.NewString(), Op: "patch", Payload: []byte(`[{"op":"replace"}]`)},
	}
	want := slices.Clone(entries)
	task := store.Task{TenantID: tn.ID, Type: "bulk_user_import"}
	if err := f.st.CreateTask(f.ctx, &task, entries, nil); err != nil {
		f.t.Fatal(err)
	}
	if task.ID == "" || task.Total != 3 || task.Created.IsZero() || task.Completed != nil {
		f.t.Fatalf("CreateTask filled %+v", task)
	}
	got := f.task(tn.ID, task.ID)
	if got.Type != "bulk_user_import" || got.Total != 3 || got.Done != 0 || got.Failed != 1 || got.Completed != nil ||
		got.LastCheckedIn != nil || !got.Created.Equal(task.Created) || got.TenantID != tn.ID {
		f.t.Errorf("Task = %+v", got)
	}
	_, err := f.st.Task(f.ctx, other.ID, task.ID)
	wantErr(f.t, err, store.ErrNotFound)
	_, err = f.st.Task(f.ctx, tn.ID, uuid.NewString())
	wantErr(f.t, err, store.ErrNotFound)
	list, err := f.st.TaskEntries(f.ctx, tn.ID, task.ID)
	if err != nil || len(list) != 3 {
		f.t.Fatalf("TaskEntries: %d, %v", len(list), err)
	}
	for i, e := range list {
		w := want[i]
		status := store.TaskPending
		if w.Status == store.TaskFailed {
			status = store.TaskFailed
		}
		if e.TaskID != task.ID || e.TenantID != tn.ID || e.Seq != i || e.Key != w.Key || e.GivenName != w.GivenName ||
			e.FamilyName != w.FamilyName || e.ResourceID != w.ResourceID || e.Op != w.Op || e.Status != status ||
			e.ErrorCode != w.ErrorCode || e.ErrorMsg != w.ErrorMsg || e.Attempts != 0 {
			f.t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
		if len(w.Payload) > 0 {
			jsonEqual(f.t, "Payload", e.Payload, w.Payload)
		}
	}
	if none, err := f.st.TaskEntries(f.ctx, other.ID, task.ID); err != nil || len(none) != 0 {
		f.t.Errorf("another tenant reads %d entries, %v", len(none), err)
	}
	// The failed entry is never claimed.
	if got := f.claim(task.ID, 10, store.Claim{Token: "c1", Lease: time.Minute}); !slices.Equal(seqs(got), []int{0, 2}) {
		f.t.Errorf("claimed %v, want [0 2]", seqs(got))
	}
}

func taskEmptyIsCompleted(f *fixture) {
	tn := f.tenant("acme")
	t, _ := f.queueTask(tn.ID, 0, nil)
	if got := f.task(tn.ID, t.ID); got.Completed == nil || got.Total != 0 {
		f.t.Errorf("an empty task is %+v, want completed", got)
	}
}

func taskClaimAndFinish(f *fixture) {
	tn := f.tenant("acme")
	t, _ := f.queueTask(tn.ID, 3, nil)
	c1 := store.Claim{Token: "c1", Lease: time.Minute}
	first := f.claim("", 2, c1)
	if !slices.Equal(seqs(first), []int{0, 1}) {
		f.t.Fatalf("claimed %v, want [0 1]", seqs(first))
	}
	for _, e := range first {
		if e.Attempts != 1 || e.TaskID != t.ID || e.TenantID != tn.ID || e.Op != "create" || e.ResourceID == "" {
			f.t.Errorf("claimed entry %+v", e)
		}
	}
	c2 := store.Claim{Token: "c2", Lease: time.Minute}
	second := f.claim("", 5, c2)
	if !slices.Equal(seqs(second), []int{2}) {
		f.t.Fatalf("second claim got %v, want [2]: a live claim's entries are not claimed again", seqs(second))
	}
	if got := f.claim("", 5, store.Claim{Token: "c3", Lease: time.Minute}); len(got) != 0 {
		f.t.Errorf("claimed %v with every entry held", seqs(got))
	}
	// Another token cannot finish c1's entries.
	f.finish("c2", withStatus(first, store.TaskDone), 0)
	done := withStatus(first[:1], store.TaskDone)
	failed := withStatus(first[1:], store.TaskFailed)
	failed[0].ErrorCode, failed[0].ErrorMsg = "uniqueness", "taken"
	f.finish("c1", append(done, failed...), 2)
	got := f.task(tn.ID, t.ID)
	if got.Done != 1 || got.Failed != 1 || got.Completed != nil || got.LastCheckedIn == nil {
		f.t.Errorf("after the first finish: %+v", got)
	}
	f.finish("c2", withStatus(second, store.TaskDone), 1)
	got = f.task(tn.ID, t.ID)
	if got.Done != 2 || got.Failed != 1 || got.Completed == nil || got.Completed.Before(got.Created) {
		f.t.Errorf("after the last finish: %+v, want completed", got)
	}
	list, _ := f.st.TaskEntries(f.ctx, tn.ID, t.ID)
	if list[1].Status != store.TaskFailed || list[1].ErrorCode != "uniqueness" || list[1].ErrorMsg != "taken" ||
		list[0].Status != store.TaskDone || list[2].Status != store.TaskDone {
		f.t.Errorf("entries %+v", list)
	}
	// Finished entries are final.
	f.finish("c1", withStatus(first, store.TaskFailed), 0)
	if got := f.claim("", 5, store.Claim{Token: "c4", Lease: time.Minute}); len(got) != 0 {
		f.t.Errorf("finished entries claimed again: %v", seqs(got))
	}
}

func taskClaimOneTask(f *fixture) {
	tn := f.tenant("acme")
	older, _ := f.queueTask(tn.ID, 2, nil)
	newer, _ := f.queueTask(tn.ID, 2, nil)
	got := f.claim(newer.ID, 10, store.Claim{Token: "c1", Lease: time.Minute})
	if len(got) != 2 || got[0].TaskID != newer.ID || got[1].TaskID != newer.ID {
		f.t.Errorf("claim of one task got %+v", got)
	}
	got = f.claim("", 1, store.Claim{Token: "c2", Lease: time.Minute})
	if len(got) != 1 || got[0].TaskID != older.ID || got[0].Seq != 0 {
		f.t.Errorf("claim of any task got %+v, want the older task's first entry", got)
	}
}

func taskCreatedClaimed(f *fixture) {
	tn := f.tenant("acme")
	c := store.Claim{Token: "request", Lease: time.Minute}
	t, entries := f.queueTask(tn.ID, 3, &c)
	if got := f.claim("", 10, store.Claim{Token: "worker", Lease: time.Minute}); len(got) != 0 {
		f.t.Errorf("a worker claimed %v of entries created claimed", seqs(got))
	}
	f.finish("request", withStatus(entries, store.TaskDone), 3)
	if got := f.task(tn.ID, t.ID); got.Done != 3 || got.Completed == nil {
		f.t.Errorf("task %+v", got)
	}
}

func taskLeaseExpiry(f *fixture) {
	tn := f.tenant("acme")
	t, _ := f.queueTask(tn.ID, 2, nil)
	// A lease of zero has run out at once: the claim's holder is presumed dead.
	dead := f.claim("", 10, store.Claim{Token: "dead", Lease: 0})
	if len(dead) != 2 {
		f.t.Fatalf("claimed %d", len(dead))
	}
	taken := f.claim("", 10, store.Claim{Token: "live", Lease: time.Minute})
	if len(taken) != 2 || taken[0].Attempts != 2 {
		f.t.Fatalf("entries of an expired claim: %+v, want both, on their second attempt", taken)
	}
	f.finish("dead", withStatus(dead, store.TaskDone), 0)
	if got := f.task(tn.ID, t.ID); got.Done != 0 || got.Completed != nil {
		f.t.Errorf("the expired claim finished entries: %+v", got)
	}
	f.finish("live", withStatus(taken, store.TaskDone), 2)
	if got := f.task(tn.ID, t.ID); got.Done != 2 || got.Completed == nil {
		f.t.Errorf("task %+v", got)
	}
}

func taskRelease(f *fixture) {
	tn := f.tenant("acme")
	f.queueTask(tn.ID, 3, nil)
	got := f.claim("", 10, store.Claim{Token: "stopping", Lease: time.Hour})
	f.finish("stopping", withStatus(got[:1], store.TaskDone), 1)
	f.finish("stopping", withStatus(got[1:], store.TaskPending), 0)
	again := f.claim("", 10, store.Claim{Token: "next", Lease: time.Hour})
	if !slices.Equal(seqs(again), []int{1, 2}) {
		f.t.Errorf("released entries: claimed %v, want [1 2] at once", seqs(again))
	}
}

// taskConcurrentClaims has several claimers race over one task until nothing is
// left: every entry must be claimed exactly once.
func taskConcurrentClaims(f *fixture) {
	const entries, workers, batch = 300, 6, 7
	tn := f.tenant("acme")
	t, _ := f.queueTask(tn.ID, entries, nil)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			token := "w" + strconv.Itoa(w)
			for range entries { // bounded: each round claims at least one entry or stops
				got, err := f.st.ClaimTaskEntries(f.ctx, "", batch, store.Claim{Token: token, Lease: time.Hour})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				if _, err := f.st.FinishTaskEntries(f.ctx, token, withStatus(got, store.TaskDone)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Errorf("concurrent claim: %v", err)
	}
	list, _ := f.st.TaskEntries(f.ctx, tn.ID, t.ID)
	for _, e := range list {
		if e.Attempts != 1 || e.Status != store.TaskDone {
			f.t.Errorf("entry %d: %d claims, status %s; want exactly one claim, done", e.Seq, e.Attempts, e.Status)
		}
	}
	if got := f.task(tn.ID, t.ID); got.Done != entries || got.Completed == nil {
		f.t.Errorf("task %+v", got)
	}
}

// taskNumbersPerTenant: each tenant numbers its tasks 1, 2, 3 … in creation order,
// independently of other tenants, and a task is found by its number only in its own
// tenant.
func taskNumbersPerTenant(f *fixture) {
	a, b := f.tenant("a"), f.tenant("b")
	var got []int64
	var aTasks []store.Task
	for i, tn := range []store.Tenant{a, b, a, a, b} {
		t, _ := f.queueTask(tn.ID, i%2, nil)
		got = append(got, t.Number)
		if tn.ID == a.ID {
			aTasks = append(aTasks, t)
		}
	}
	if want := []int64{1, 1, 2, 3, 2}; !slices.Equal(got, want) {
		f.t.Fatalf("numbers %v, want %v", got, want)
	}
	for _, t := range aTasks {
		byNumber, err := f.st.TaskByNumber(f.ctx, a.ID, t.Number)
		if err != nil || byNumber.ID != t.ID || byNumber.Number != t.Number || byNumber.Total != t.Total {
			f.t.Errorf("TaskByNumber(a, %d) = %+v, %v; want task %s", t.Number, byNumber, err, t.ID)
		}
		if byID := f.task(a.ID, t.ID); byID.Number != t.Number {
			f.t.Errorf("Task(a, %s).Number = %d, want %d", t.ID, byID.Number, t.Number)
		}
	}
	_, err := f.st.TaskByNumber(f.ctx, b.ID, 3) // a has a task 3, b does not
	wantErr(f.t, err, store.ErrNotFound)
	_, err = f.st.TaskByNumber(f.ctx, a.ID, 0)
	wantErr(f.t, err, store.ErrNotFound)
}

// taskNumbersConcurrent: tasks created at once in one tenant (as by several
// replicas sharing one database) never share a number, and the numbers leave no gap.
func taskNumbersConcurrent(f *fixture) {
	const n = 16
	tn := f.tenant("acme")
	numbers := make(chan int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			t := store.Task{TenantID: tn.ID, Type: "bulk_user_import"}
			e := []store.TaskEntry{{Key: "user" + strconv.Itoa(i), ResourceID: uuid.NewString(), Op: "create"}}
			if err := f.st.CreateTask(f.ctx, &t, e, nil); err != nil {
				f.t.Errorf("CreateTask: %v", err)
				return
			}
			numbers <- t.Number
		})
	}
	wg.Wait()
	close(numbers)
	var got []int64
	for x := range numbers {
		got = append(got, x)
	}
	slices.Sort(got)
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if !slices.Equal(got, want) {
		f.t.Errorf("concurrent numbers %v, want %v", got, want)
	}
}

// ---- delivery: the outbox worker's claims and the links its messages carry

// outbox returns the store's delivery methods, skipping a backend without them.
func (f *fixture) outbox() store.OutboxStore {
	f.t.Helper()
	ob, ok := f.st.(store.OutboxStore)
	if !ok {
		f.t.Skip("the backend does not implement store.OutboxStore")
	}
	return ob
}

// queueMessages creates n users of the tenant with one set_password message each
// and returns the messages, oldest first.
func (f *fixture) queueMessages(tenantID string, n int) []store.Message {
	f.t.Helper()
	for i := range n {
		u := newUser(tenantID, fmt.Sprintf("u%03d@example.com", i))
		u.Outbox = []store.Message{{Kind: "set_password", Recipient: u.UserName}}
		f.create(u)
	}
	msgs, err := f.st.Outbox(f.ctx, tenantID)
	if err != nil || len(msgs) != n {
		f.t.Fatalf("outbox: %d messages, %v", len(msgs), err)
	}
	return msgs
}

func (f *fixture) claimMessages(limit int, c store.Claim) []store.Message {
	f.t.Helper()
	got, err := f.outbox().ClaimMessages(f.ctx, limit, c)
	if err != nil {
		f.t.Fatalf("ClaimMessages: %v", err)
	}
	return got
}

func (f *fixture) message(tenantID, id string) store.Message {
	f.t.Helper()
	m, err := f.outbox().Message(f.ctx, tenantID, id)
	if err != nil {
		f.t.Fatalf("Message(%s): %v", id, err)
	}
	return m
}

func messageIDs(ms []store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func deliveryClaimWithLease(f *fixture) {
	tn := f.tenant("acme")
	msgs := f.queueMessages(tn.ID, 2)
	before := time.Now()
	first := f.claimMessages(1, store.Claim{Token: "a", Lease: time.Hour})
	if len(first) != 1 || first[0].ID != msgs[0].ID || first[0].Attempts != 1 {
		f.t.Fatalf("first claim %+v, want the oldest message on its first attempt", first)
	}
	if lease := first[0].NextAttempt; lease.Before(before.Add(59*time.Minute)) || lease.After(time.Now().Add(61*time.Minute)) {
		f.t.Errorf("claimed message next due at %v, want the end of the one-hour lease", lease)
	}
	if got := f.claimMessages(10, store.Claim{Token: "b", Lease: time.Hour}); !slices.Equal(messageIDs(got), []string{msgs[1].ID}) {
		f.t.Fatalf("second claim %v, want only the unclaimed message %s", messageIDs(got), msgs[1].ID)
	}
	if got := f.claimMessages(10, store.Claim{Token: "c", Lease: time.Hour}); len(got) != 0 {
		f.t.Fatalf("messages under a live lease were claimed again: %v", messageIDs(got))
	}
	if got := f.claimMessages(0, store.Claim{Token: "c", Lease: time.Hour}); len(got) != 0 {
		f.t.Errorf("a claim of at most 0 returned %d", len(got))
	}

	// A lease of zero has run out at once: its holder is presumed dead and
	// another claim takes the message over on a second attempt.
	other := f.tenant("other")
	dead := f.queueMessages(other.ID, 1)[0]
	if got := f.claimMessages(10, store.Claim{Token: "dead", Lease: 0}); !slices.Equal(messageIDs(got), []string{dead.ID}) {
		f.t.Fatalf("claim %v, want %s", messageIDs(got), dead.ID)
	}
	got := f.claimMessages(10, store.Claim{Token: "live", Lease: time.Hour})
	if len(got) != 1 || got[0].ID != dead.ID || got[0].Attempts != 2 {
		f.t.Fatalf("message of an expired claim: %+v, want it on its second attempt", got)
	}
	if ok, _ := f.outbox().FinishMessage(f.ctx, "dead", store.MessageOutcome{ID: dead.ID, Status: store.MessageSent}); ok {
		f.t.Error("the expired claim finished a message another claim holds")
	}
}

// deliveryConcurrentClaims has several workers race over the queue until it is
// empty: every message is claimed, and sent, exactly once.
func deliveryConcurrentClaims(f *fixture) {
	const messages, workers, batch = 60, 5, 4
	tn := f.tenant("acme")
	f.queueMessages(tn.ID, messages)
	ob := f.outbox()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			token := "w" + strconv.Itoa(w)
			for range messages { // bounded: each round claims at least one message or stops
				got, err := ob.ClaimMessages(f.ctx, batch, store.Claim{Token: token, Lease: time.Hour})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				for _, m := range got {
					mu.Lock()
					seen[m.ID]++
					mu.Unlock()
					if ok, err := ob.FinishMessage(f.ctx, token, store.MessageOutcome{ID: m.ID, Status: store.MessageSent, MessageID: "<" + m.ID + "@scimd>"}); err != nil || !ok {
						errs <- fmt.Errorf("finish %s: %v %v", m.ID, ok, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Errorf("concurrent claim: %v", err)
	}
	msgs, _ := f.st.Outbox(f.ctx, tn.ID)
	for _, m := range msgs {
		if seen[m.ID] != 1 || m.Attempts != 1 || m.Status != store.MessageSent {
			f.t.Errorf("message %s: claimed %d times, %d attempts, status %s; want exactly once, sent", m.ID, seen[m.ID], m.Attempts, m.Status)
		}
	}
}

func deliveryFinishOnceByHolder(f *fixture) {
	tn := f.tenant("acme")
	msgs := f.queueMessages(tn.ID, 2)
	ob := f.outbox()
	f.claimMessages(10, store.Claim{Token: "holder", Lease: time.Hour})
	sent := store.MessageOutcome{ID: msgs[0].ID, Status: store.MessageSent, MessageID: "<" + msgs[0].ID + "@scimd>"}
	for _, token := range []string{"", "stranger"} {
		if ok, err := ob.FinishMessage(f.ctx, token, sent); ok || err != nil {
			f.t.Errorf("FinishMessage by %q: %v %v, want not recorded", token, ok, err)
		}
	}
	if m := f.message(tn.ID, msgs[0].ID); m.Status != store.MessagePending || m.SentAt != nil {
		f.t.Fatalf("a stranger's outcome was recorded: %+v", m)
	}
	if ok, err := ob.FinishMessage(f.ctx, "holder", sent); !ok || err != nil {
		f.t.Fatalf("FinishMessage by the holder: %v %v", ok, err)
	}
	m := f.message(tn.ID, msgs[0].ID)
	if m.Status != store.MessageSent || m.SentAt == nil || m.MessageID != sent.MessageID || m.LastError != "" {
		f.t.Errorf("sent message %+v", m)
	}
	if ok, _ := ob.FinishMessage(f.ctx, "holder", store.MessageOutcome{ID: msgs[0].ID, Status: store.MessageFailed, LastError: "late"}); ok {
		f.t.Error("a finished message was finished again")
	}
	if m := f.message(tn.ID, msgs[0].ID); m.Status != store.MessageSent {
		f.t.Errorf("status %s after a second outcome", m.Status)
	}
	if ok, err := ob.FinishMessage(f.ctx, "holder", store.MessageOutcome{ID: msgs[1].ID, Status: store.MessageFailed, LastError: "550 no such user"}); !ok || err != nil {
		f.t.Fatalf("fail: %v %v", ok, err)
	}
	if m := f.message(tn.ID, msgs[1].ID); m.Status != store.MessageFailed || m.LastError != "550 no such user" || m.SentAt != nil {
		f.t.Errorf("failed message %+v", m)
	}
	if got := f.claimMessages(10, store.Claim{Token: "next", Lease: time.Hour}); len(got) != 0 {
		f.t.Errorf("finished messages were claimed again: %v", messageIDs(got))
	}
	if _, err := ob.Message(f.ctx, f.tenant("other").ID, msgs[0].ID); !errors.Is(err, store.ErrNotFound) {
		f.t.Errorf("another tenant's message: %v, want ErrNotFound", err)
	}
	if m, err := ob.MessageByID(f.ctx, msgs[0].ID); err != nil || m.TenantID != tn.ID {
		f.t.Errorf("MessageByID: %+v %v", m, err)
	}
}

func deliveryPendingOutcome(f *fixture) {
	tn := f.tenant("acme")
	msgs := f.queueMessages(tn.ID, 2)
	ob := f.outbox()
	f.claimMessages(10, store.Claim{Token: "a", Lease: time.Hour})
	later := store.MessageOutcome{ID: msgs[0].ID, Status: store.MessagePending, NextAttempt: time.Now().Add(time.Hour), LastError: "connection refused"}
	again := store.MessageOutcome{ID: msgs[1].ID, Status: store.MessagePending, Uncounted: true}
	for _, o := range []store.MessageOutcome{later, again} {
		if ok, err := ob.FinishMessage(f.ctx, "a", o); !ok || err != nil {
			f.t.Fatalf("FinishMessage %s: %v %v", o.ID, ok, err)
		}
	}
	if m := f.message(tn.ID, msgs[0].ID); m.Status != store.MessagePending || m.Attempts != 1 || m.LastError != "connection refused" {
		f.t.Errorf("message retried later: %+v", m)
	}
	got := f.claimMessages(10, store.Claim{Token: "b", Lease: time.Hour})
	if len(got) != 1 || got[0].ID != msgs[1].ID || got[0].Attempts != 1 {
		f.t.Fatalf("claim %+v, want only the released message, its attempt given back", got)
	}
}

func deliveryRetry(f *fixture) {
	tn := f.tenant("acme")
	msgs := f.queueMessages(tn.ID, 2)
	ob := f.outbox()
	f.claimMessages(10, store.Claim{Token: "a", Lease: time.Hour})
	ob.FinishMessage(f.ctx, "a", store.MessageOutcome{ID: msgs[0].ID, Status: store.MessageFailed, LastError: "refused"})
	ob.FinishMessage(f.ctx, "a", store.MessageOutcome{ID: msgs[1].ID, Status: store.MessageSent})
	if err := ob.RetryMessage(f.ctx, msgs[0].ID); err != nil {
		f.t.Fatalf("RetryMessage of a failed message: %v", err)
	}
	if m := f.message(tn.ID, msgs[0].ID); m.Status != store.MessagePending || m.Attempts != 0 {
		f.t.Errorf("retried message %+v, want pending with no attempts", m)
	}
	got := f.claimMessages(10, store.Claim{Token: "b", Lease: time.Hour})
	if !slices.Equal(messageIDs(got), []string{msgs[0].ID}) {
		f.t.Fatalf("claim after retry %v, want %s at once", messageIDs(got), msgs[0].ID)
	}
	// A retry takes a message from a live claim; the old holder cannot finish it.
	if err := ob.RetryMessage(f.ctx, msgs[0].ID); err != nil {
		f.t.Fatalf("RetryMessage of a claimed message: %v", err)
	}
	if ok, _ := ob.FinishMessage(f.ctx, "b", store.MessageOutcome{ID: msgs[0].ID, Status: store.MessageSent}); ok {
		f.t.Error("the claim a retry took the message from finished it")
	}
	wantErr(f.t, ob.RetryMessage(f.ctx, msgs[1].ID), store.ErrNotFound)
	wantErr(f.t, ob.RetryMessage(f.ctx, uuid.NewString()), store.ErrNotFound)
}

func deliveryLinksSingleUse(f *fixture) {
	tn := f.tenant("acme")
	msgs := f.queueMessages(tn.ID, 2)
	ob := f.outbox()
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	hash := func(s string) []byte { return bytes.Repeat([]byte(s), 32)[:32] }
	links := []store.Link{
		{Hash: hash("a"), TenantID: tn.ID, UserID: msgs[0].UserID, Message: msgs[0].ID, Kind: "set_password", Created: t0, Expires: t0.Add(time.Hour)},
		{Hash: hash("b"), TenantID: tn.ID, UserID: msgs[0].UserID, Message: msgs[0].ID, Kind: "set_password", Created: t0, Expires: t0.Add(time.Hour)},
		{Hash: hash("c"), TenantID: tn.ID, UserID: msgs[1].UserID, Message: msgs[1].ID, Kind: "verify_email", Created: t0, Expires: t0.Add(time.Hour)},
		{Hash: hash("d"), TenantID: tn.ID, UserID: msgs[1].UserID, Message: msgs[1].ID, Kind: "set_password", Created: t0.Add(-2 * time.Hour), Expires: t0.Add(-time.Hour)},
	}
	for _, l := range links {
		if err := ob.CreateLink(f.ctx, l); err != nil {
			f.t.Fatalf("CreateLink: %v", err)
		}
	}
	got, err := ob.Link(f.ctx, hash("a"))
	if err != nil || !bytes.Equal(got.Hash, hash("a")) || got.Message != msgs[0].ID || got.UserID != msgs[0].UserID ||
		got.Kind != "set_password" || !got.Expires.Equal(t0.Add(time.Hour)) || got.UsedAt != nil {
		f.t.Fatalf("Link: %+v %v", got, err)
	}
	_, err = ob.Link(f.ctx, hash("z"))
	wantErr(f.t, err, store.ErrNotFound)

	at := time.Now()
	used, err := ob.UseLink(f.ctx, hash("a"), at)
	if err != nil || used.Message != msgs[0].ID || used.UsedAt == nil {
		f.t.Fatalf("UseLink: %+v %v", used, err)
	}
	_, err = ob.UseLink(f.ctx, hash("a"), time.Now())
	wantErr(f.t, err, store.ErrNotFound) // used
	_, err = ob.UseLink(f.ctx, hash("b"), time.Now())
	wantErr(f.t, err, store.ErrNotFound) // used with its message's other link
	_, err = ob.UseLink(f.ctx, hash("d"), time.Now())
	wantErr(f.t, err, store.ErrNotFound) // expired
	_, err = ob.UseLink(f.ctx, hash("z"), time.Now())
	wantErr(f.t, err, store.ErrNotFound) // unknown
	if l, _ := ob.Link(f.ctx, hash("b")); l.UsedAt == nil {
		f.t.Error("the other link of a used message reads as unused")
	}
	if l, _ := ob.Link(f.ctx, hash("c")); l.UsedAt != nil {
		f.t.Error("another message's link was used up")
	}

	// Released after a failed use, the links work again, once.
	if err := ob.ReleaseLink(f.ctx, used); err != nil {
		f.t.Fatalf("ReleaseLink: %v", err)
	}
	if _, err := ob.UseLink(f.ctx, hash("b"), time.Now()); err != nil {
		f.t.Fatalf("UseLink after release: %v", err)
	}
	_, err = ob.UseLink(f.ctx, hash("a"), time.Now())
	wantErr(f.t, err, store.ErrNotFound)

	// Two uses at once: exactly one wins.
	var wg sync.WaitGroup
	var wins, losses int
	var mu sync.Mutex
	for range 4 {
		wg.Go(func() {
			_, err := ob.UseLink(f.ctx, hash("c"), time.Now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrNotFound):
				losses++
			default:
				f.t.Errorf("concurrent UseLink: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || losses != 3 {
		f.t.Errorf("concurrent uses: %d won, %d lost; want 1 and 3", wins, losses)
	}
}

// deliveryLinksRevoked: issuing a link revokes its user's earlier unused links of
// the same purpose carried by other messages; using one revokes the rest (what two
// issues racing each other leave); releasing a use restores them. Links of another
// purpose or another user are left alone.
func deliveryLinksRevoked(f *fixture) {
	tn := f.tenant("acme")
	ob := f.outbox()
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	hash := func(s string) []byte { return bytes.Repeat([]byte(s), 32)[:32] }
	link := func(h, user, msg, kind, purpose string, created time.Time) store.Link {
		return store.Link{Hash: hash(h), TenantID: tn.ID, UserID: user, Message: msg, Kind: kind, Purpose: purpose, Created: created, Expires: created.Add(time.Hour)}
	}
	create := func(l store.Link) {
		f.t.Helper()
		if err := ob.CreateLink(f.ctx, l); err != nil {
			f.t.Fatalf("CreateLink: %v", err)
		}
	}
	state := func(h string) string {
		f.t.Helper()
		l, err := ob.Link(f.ctx, hash(h))
		if err != nil {
			f.t.Fatalf("Link %s: %v", h, err)
		}
		switch {
		case l.UsedAt != nil:
			return "used"
		case l.RevokedAt != nil:
			return "revoked"
		}
		return "usable"
	}
	wantStates := func(step string, want map[string]string) {
		f.t.Helper()
		for h, w := range want {
			if got := state(h); got != w {
				f.t.Errorf("%s: link %s is %s, want %s", step, h, got, w)
			}
		}
	}
	create(link("a", "u-1", "m-1", "set_password", "set_password", t0))
	create(link("v", "u-1", "m-v", "verify_email", "verify_email", t0))
	create(link("o", "u-2", "m-o", "set_password", "set_password", t0))
	create(link("b", "u-1", "m-2", "invitation", "set_password", t0.Add(time.Second)))
	create(link("c", "u-1", "m-2", "invitation", "set_password", t0.Add(2*time.Second))) // a resend of m-2
	wantStates("after issuing m-2", map[string]string{"a": "revoked", "b": "usable", "c": "usable", "v": "usable", "o": "usable"})
	if l, _ := ob.Link(f.ctx, hash("b")); l.Purpose != "set_password" || l.RevokedAt != nil {
		f.t.Errorf("Link b = %+v", l)
	}
	_, err := ob.UseLink(f.ctx, hash("a"), time.Now())
	wantErr(f.t, err, store.ErrNotFound) // revoked

	// Two issues that raced each other leave two usable links; using one revokes
	// the other.
	create(link("d", "u-3", "m-3", "set_password", "set_password", t0))
	create(link("e", "u-3", "m-4", "set_password", "set_password", t0))
	raw, ok := f.st.(interface{ DB() *gorm.DB })
	if !ok {
		f.t.Skip("the store gives no database handle to stage a race with")
	}
	if err := raw.DB().WithContext(f.ctx).Exec(`UPDATE account_links SET revoked_at = NULL WHERE user_id = 'u-3'`).Error; err != nil {
		f.t.Fatal(err)
	}
	used, err := ob.UseLink(f.ctx, hash("e"), time.Now())
	if err != nil {
		f.t.Fatalf("UseLink e: %v", err)
	}
	wantStates("after using e", map[string]string{"d": "revoked", "e": "used", "b": "usable"})
	if err := ob.ReleaseLink(f.ctx, used); err != nil {
		f.t.Fatalf("ReleaseLink: %v", err)
	}
	wantStates("after releasing e", map[string]string{"d": "usable", "e": "usable"})
}

func tokenRevoke(f *fixture) {
	tn, other := f.tenant("acme"), f.tenant("other")
	tok, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: bytes.Repeat([]byte{11}, 32), Scopes: []string{"scim"}})
	if err != nil {
		f.t.Fatal(err)
	}
	wantErr(f.t, f.st.RevokeToken(f.ctx, other.ID, tok.ID), store.ErrNotFound)
	wantErr(f.t, f.st.RevokeToken(f.ctx, tn.ID, "no-such-token"), store.ErrNotFound)
	if got, err := f.st.TokenByHash(f.ctx, tok.Hash); err != nil || got.RevokedAt != nil {
		f.t.Fatalf("after refused revocations the token reads %+v, %v; want it unrevoked", got, err)
	}
	revokes := func() int {
		f.t.Helper()
		events, err := f.st.AuditEvents(f.ctx, tn.ID, store.AuditQuery{Limit: 100})
		if err != nil {
			f.t.Fatal(err)
		}
		n := 0
		for _, e := range events {
			if e.Operation == store.OpTokenRevoke && e.ResourceID == tok.ID {
				n++
			}
		}
		return n
	}
	for i := range 2 { // the revocation records one event; the second changes nothing
		if err := f.st.RevokeToken(f.ctx, tn.ID, tok.ID); err != nil {
			f.t.Fatal(err)
		}
		if n := revokes(); n != 1 {
			f.t.Fatalf("after revocation %d: %d token.revoke events for the token, want 1", i+1, n)
		}
	}
	got, err := f.st.TokenByHash(f.ctx, tok.Hash)
	if err != nil || got.RevokedAt == nil {
		f.t.Fatalf("revoked token reads %+v, %v; want revoked_at set", got, err)
	}
}

// tokenEpoch: the epoch moves with every change a cached principal would show,
// and not with last-use writes.
func tokenEpoch(f *fixture) {
	tn := f.tenant("acme")
	epoch := func() int64 {
		f.t.Helper()
		n, err := f.st.TokenEpoch(f.ctx)
		if err != nil {
			f.t.Fatal(err)
		}
		return n
	}
	a, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: bytes.Repeat([]byte{12}, 32), Scopes: []string{"scim"}})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.CreateToken(f.ctx, store.Token{TenantID: tn.ID, Hash: bytes.Repeat([]byte{13}, 32), Scopes: []string{"scim"}, UserID: "u-1"}); err != nil {
		f.t.Fatal(err)
	}
	before := epoch()
	if _, err := f.st.TouchToken(f.ctx, tn.ID, a.ID, time.Now(), time.Minute); err != nil {
		f.t.Fatal(err)
	}
	if e := epoch(); e != before {
		f.t.Fatalf("recording a last use moved the epoch %d → %d; it must not (it would empty every cache once a minute)", before, e)
	}
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"RevokeToken", func() error { return f.st.RevokeToken(f.ctx, tn.ID, a.ID) }},
		{"RevokeUserTokens", func() error { return f.st.RevokeUserTokens(f.ctx, tn.ID, "u-1") }},
		{"SetTenantSettings", func() error { return f.st.SetTenantSettings(f.ctx, tn.ID, store.TenantSettings{RateLimit: 5}) }},
	} {
		if err := step.do(); err != nil {
			f.t.Fatalf("%s: %v", step.name, err)
		}
		if e := epoch(); e == before {
			f.t.Fatalf("%s left the epoch at %d; it must move", step.name, e)
		} else {
			before = e
		}
	}
}
