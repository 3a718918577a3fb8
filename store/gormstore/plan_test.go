package gormstore_test

import (
	"strings"
	"testing"

	"github.com/scimd/scimd/store"
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
