package sqlite_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/scim2/filter-parser/v2"
	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/sqlite"
)

// The database in testdata/old-driver.db.gz was written by scimd (schema version 10)
// through its earlier SQLite driver, github.com/glebarez/go-sqlite (SQLite 3.41 by
// way of modernc.org/sqlite 1.23): `scimd tenant create acme`, a second token with
// --sandbox --expires-in 90d, then over HTTP two users (one inactive), a group with
// the first as member, and a PATCH of the first user's title.
const (
	oldTenant     = "69bc6b8c-023d-4408-b39b-8baae7a49d17"
	oldUser       = "22744000-261e-43d4-99a2-e8825c5c3adc"
	oldInactive   = "1c90994f-697d-41bf-8359-c0a55e860054"
	oldGroup      = "58aa9f1c-17ed-47cf-8f94-32677f769134"
	oldSecret     = "scimd_ER67iUYrGqXl4zSD3RrRr9VHXfNXaOI8auyIptxa0DA"
	oldSandboxKey = "scimd_kaHwAXkK0TZNvTvMei7_NZ3LVg0M8apw29s7bzhIRCQ"
)

// storedTime matches a time as scimd has always stored it in SQLite.
var storedTime = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})?\+00:00$`)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// openOld copies the old file to a temporary directory and opens and migrates it,
// as `scimd serve` does after an upgrade in place.
func openOld(t *testing.T) *gormstore.Store {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "old-driver.db.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var db bytes.Buffer
	if _, err := io.Copy(&db, zr); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "scimd.db")
	if err := os.WriteFile(path, db.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(path, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return st
}

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("stored document %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("document = %s, want %s", got, want)
	}
}

// TestReadsOldFile checks that a database written through the earlier driver reads
// back the same: times to the microsecond, booleans, JSON documents, memberships.
func TestReadsOldFile(t *testing.T) {
	st := openOld(t)
	ctx := t.Context()

	t.Run("tenant", func(t *testing.T) {
		tn, err := st.TenantByName(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if tn.ID != oldTenant || !tn.Created.Equal(utc("2026-11-22T15:09:56.079138Z")) {
			t.Errorf("tenant = %+v", tn)
		}
	})

	for _, tc := range []struct {
		name, secret      string
		sandbox           bool
		created           time.Time
		expires, lastUsed *time.Time
	}{
		{name: "token", secret: oldSecret, created: utc("2026-11-22T15:09:56.083472Z"),
			lastUsed: ptr(utc("2026-11-22T15:10:02.097337Z"))},
		{name: "sandbox_token", secret: oldSandboxKey, sandbox: true, created: utc("2026-11-22T15:15:33.024767Z"),
			expires: ptr(utc("2027-02-20T15:15:33.023667Z"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sha256.Sum256([]byte(tc.secret))
			tok, err := st.TokenByHash(ctx, h[:])
			if err != nil {
				t.Fatal(err)
			}
			if tok.TenantID != oldTenant || tok.TenantName != "acme" || tok.Sandbox != tc.sandbox || tok.Profile != "lenient" ||
				!tok.Created.Equal(tc.created) || tok.RevokedAt != nil ||
				!timeEqual(tok.ExpiresAt, tc.expires) || !timeEqual(tok.LastUsedAt, tc.lastUsed) {
				t.Errorf("token = %+v", tok)
			}
		})
	}

	t.Run("users", func(t *testing.T) {
		for _, tc := range []struct {
			id               string
			active           bool
			version          int64
			created, lastMod time.Time
			doc              string
			groups           []store.GroupRef
		}{
			{oldUser, true, 2, utc("2026-11-22T15:10:02.100703Z"), utc("2026-11-22T15:10:06.051942Z"),
				`{"active":true,"displayName":"Barbara Jensen","emails":[{"primary":true,"type":"work","value":"bjensen@example.com"}],` +
					`"externalId":"ext-1","name":{"familyName":"Jensen","givenName":"Barbara"},"title":"Tour Guide","userName":"Bjensen@Example.com"}`,
				[]store.GroupRef{{Value: oldGroup, Display: "Admins"}}},
			{oldInactive, false, 1, utc("2026-11-22T15:10:03.519026Z"), utc("2026-11-22T15:10:03.519026Z"),
				`{"active":false,"userName":"inactive.user"}`, nil},
		} {
			u, err := st.Get(ctx, oldTenant, store.KindUser, tc.id, store.ReadOptions{Groups: true})
			if err != nil {
				t.Fatal(err)
			}
			if u.Active == nil || *u.Active != tc.active || u.Version != tc.version ||
				!u.Created.Equal(tc.created) || !u.LastModified.Equal(tc.lastMod) || !reflect.DeepEqual(u.Groups, tc.groups) {
				t.Errorf("user %s = active %v, version %d, created %s, lastModified %s, groups %+v", tc.id,
					deref(u.Active), u.Version, u.Created, u.LastModified, u.Groups)
			}
			jsonEqual(t, u.Doc, tc.doc)
		}
	})

	t.Run("group", func(t *testing.T) {
		g, err := st.Get(ctx, oldTenant, store.KindGroup, oldGroup, store.ReadOptions{Members: true})
		if err != nil {
			t.Fatal(err)
		}
		want := []store.Member{{Value: oldUser, Type: store.KindUser, Display: "Barbara Jensen"}}
		if !g.Created.Equal(utc("2026-11-22T15:10:04.726274Z")) || !g.LastModified.Equal(g.Created) || !reflect.DeepEqual(g.Members, want) {
			t.Errorf("group = created %s, lastModified %s, members %+v", g.Created, g.LastModified, g.Members)
		}
		jsonEqual(t, g.Doc, `{"displayName":"Admins"}`)
	})

	// Filters compare the stored values with parameters the new driver binds.
	for _, tc := range []struct{ name, filter, want string }{
		{"user_name_folded", `userName eq "BJENSEN@example.com"`, oldUser},
		{"active_false", `active eq false`, oldInactive},
		{"last_modified_eq", `meta.lastModified eq "2026-11-22T15:10:06.051942Z"`, oldUser},
		{"created_gt", `meta.created gt "2026-11-22T15:10:02.100703Z"`, oldInactive},
		{"email_co", `emails[value co "JENSEN"]`, oldUser},
	} {
		t.Run("filter="+tc.name, func(t *testing.T) {
			e, err := filter.ParseFilter([]byte(tc.filter))
			if err != nil {
				t.Fatal(err)
			}
			res, err := st.List(ctx, oldTenant, store.KindUser, store.ListOptions{Filter: e, Count: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Resources) != 1 || res.Resources[0].ID != tc.want {
				t.Errorf("%s: %d users, want %s", tc.filter, len(res.Resources), tc.want)
			}
		})
	}
}

// TestWritesOldFileAlike checks that what the new driver writes into an old file
// keeps its layout: new times are stored as the old ones are and order with them,
// in keyset paging too.
func TestWritesOldFileAlike(t *testing.T) {
	st := openOld(t)
	ctx := t.Context()

	u := &store.Resource{TenantID: oldTenant, Kind: store.KindUser, UserName: "new.user", Active: ptr(true),
		Doc: []byte(`{"userName":"new.user","active":true}`)}
	if err := st.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	upd, err := st.Update(ctx, oldTenant, store.KindUser, oldInactive, func(cur *store.Resource) ([]store.MemberChange, error) {
		cur.Active = ptr(true)
		cur.Doc = []byte(`{"active":true,"userName":"inactive.user"}`)
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if upd.Version != 2 || !upd.Created.Equal(utc("2026-11-22T15:10:03.519026Z")) || !upd.LastModified.After(upd.Created) {
		t.Errorf("updated user = version %d, created %s, lastModified %s", upd.Version, upd.Created, upd.LastModified)
	}

	var stored []struct{ ID, Created, LastModified string }
	if err := st.DB().WithContext(ctx).Raw(`SELECT id, CAST(created AS TEXT) AS created, CAST(last_modified AS TEXT) AS last_modified
		FROM users WHERE tenant_id = ? ORDER BY id`, oldTenant).Scan(&stored).Error; err != nil {
		t.Fatal(err)
	}
	if len(stored) != 3 {
		t.Fatalf("%d users stored, want 3", len(stored))
	}
	for _, r := range stored {
		if !storedTime.MatchString(r.Created) || !storedTime.MatchString(r.LastModified) {
			t.Errorf("user %s stored times %q and %q, want the layout 2006-01-02 15:04:05.999999999+00:00", r.ID, r.Created, r.LastModified)
		}
	}

	// The default order is by creation: the two old users, then the new one, page by
	// page through the keyset.
	var got []string
	seek := &store.Seek{}
	for {
		res, err := st.List(ctx, oldTenant, store.KindUser, store.ListOptions{Count: 1, Seek: seek})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Resources {
			got = append(got, r.ID)
		}
		if !res.More || len(got) > 3 {
			break
		}
		seek = &store.Seek{After: &res.Positions[len(res.Positions)-1]}
	}
	if want := []string{oldUser, oldInactive, u.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("users in creation order = %v, want %v", got, want)
	}

	// The update moved the once inactive user past the others' last changes.
	e, err := filter.ParseFilter([]byte(`meta.lastModified gt "2026-11-22T15:10:06.051942Z"`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.List(ctx, oldTenant, store.KindUser, store.ListOptions{Filter: e, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Resources) != 2 {
		t.Errorf("users changed after the old PATCH: %d, want 2 (the new user and the updated one)", len(res.Resources))
	}
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func timeEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
