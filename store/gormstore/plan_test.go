package gormstore_test

import (
	"strings"
	"testing"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/sqlite"
	"github.com/scimd/scimd/store/storetest"
)

// TestSQLiteMembershipPlans: every statement that finds a user's memberships
// searches group_members by member, never all of the tenant's memberships. SQLite
// plans without statistics, and once chose the primary key searched by tenant
// alone, which made a user's GET and DELETE read every membership of the tenant
// (migration 12). The statements are the store's own (its column list) or mirror
// Delete's.
func TestSQLiteMembershipPlans(t *testing.T) {
	st := storetest.OpenSQLite(t)
	for _, q := range []string{
		`SELECT ` + st.SelectCols(store.KindUser, true) + ` FROM users AS t WHERE t.tenant_id = 'a' AND t.id = 'b'`,
		`SELECT ` + st.SelectCols(store.KindUser, true) + ` FROM users AS t WHERE t.tenant_id = 'a' ORDER BY t.created, t.id LIMIT 100`,
		`SELECT id, version FROM "groups" WHERE tenant_id = 'a' AND id IN (SELECT group_id FROM group_members WHERE tenant_id = 'a' AND member_id = 'b') ORDER BY id`,
		`UPDATE "groups" SET version = version + 1 WHERE tenant_id = 'a' AND id IN (SELECT group_id FROM group_members WHERE tenant_id = 'a' AND member_id = 'b')`,
		`DELETE FROM group_members WHERE tenant_id = 'a' AND member_id = 'b'`,
		`SELECT m.member_id, m.group_id FROM group_members AS m WHERE m.tenant_id = 'a' AND m.member_id IN ('b', 'c')`,
	} {
		var plan []struct {
			ID, Parent, Notused int
			Detail              string
		}
		if err := st.DB().Raw(`EXPLAIN QUERY PLAN ` + q).Scan(&plan).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var lines []string
		for _, p := range plan {
			lines = append(lines, p.Detail)
		}
		for _, l := range lines {
			if strings.Contains(l, "group_members") && !strings.Contains(l, "member_id=") {
				t.Errorf("%s\nreads group_members without its member:\n  %s", q, strings.Join(lines, "\n  "))
			}
		}
	}
}

// TestSQLiteLookupPlans: a one-attribute lookup by userName or displayName (what a
// client's assignment check sends, README "PostgreSQL") finds its rows by the
// tenant's index on the lower-cased column, not by reading every user or group of
// the tenant. The filters are compiled by the store's own filter compiler.
func TestSQLiteLookupPlans(t *testing.T) {
	st := storetest.OpenSQLite(t)
	for _, tc := range []struct {
		kind   store.Kind
		table  string
		filter string
		column string
	}{
		{store.KindUser, "users", `userName eq "Ann"`, "user_name_lower="},
		{store.KindUser, "users", `displayName eq "Ann"`, "display_name_lower="},
		{store.KindGroup, `"groups"`, `displayName eq "Team"`, "display_name_lower="},
	} {
		e, err := scim.ParseFilter(tc.filter, 1<<20)
		if err != nil {
			t.Fatalf("ParseFilter(%s): %v", tc.filter, err)
		}
		where, args, err := gormstore.CompileFilter(sqlite.Dialect{}, tc.kind, e)
		if err != nil {
			t.Fatalf("CompileFilter(%s): %v", tc.filter, err)
		}
		q := `SELECT t.id FROM ` + tc.table + ` AS t WHERE t.tenant_id = 'a' AND (` + where + `)`
		var plan []struct {
			ID, Parent, Notused int
			Detail              string
		}
		if err := st.DB().Raw(`EXPLAIN QUERY PLAN `+q, args...).Scan(&plan).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var lines []string
		found := false
		for _, p := range plan {
			lines = append(lines, p.Detail)
			found = found || strings.Contains(p.Detail, tc.column)
		}
		if !found {
			t.Errorf("%s (%s)\ndoes not search by %s:\n  %s", tc.filter, q, strings.TrimSuffix(tc.column, "="), strings.Join(lines, "\n  "))
		}
	}
}
