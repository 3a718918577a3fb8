package gormstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/storetest"
)

// TestTaskNumberBackfill: tasks stored before task numbers existed get numbers
// when the database is migrated, per tenant in creation order, and the next task a
// tenant creates continues after its last one.
func TestTaskNumberBackfill(t *testing.T) {
	for _, be := range storetest.Backends(t) {
		t.Run("db="+be.Name, func(t *testing.T) {
			st := be.Open(t)
			ctx := context.Background()
			exec := func(q string, args ...any) {
				t.Helper()
				if err := st.DB().Exec(q, args...).Error; err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			// Back to the schema before task numbers (migration 14, the last).
			exec(`DROP TABLE task_numbers`)
			exec(`DROP INDEX tasks_tenant_number`)
			exec(`ALTER TABLE tasks DROP COLUMN number`)
			exec(`DELETE FROM schema_migrations WHERE version = 14`)
			a, err := st.CreateTenant(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			b, err := st.CreateTenant(ctx, "b")
			if err != nil {
				t.Fatal(err)
			}
			base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			old := []struct {
				tenant string
				at     time.Duration
			}{{a.ID, 3 * time.Hour}, {b.ID, 2 * time.Hour}, {a.ID, time.Hour}, {a.ID, 2 * time.Hour}, {b.ID, time.Hour}}
			ids := make([]string, len(old))
			for i, o := range old {
				ids[i] = uuid.NewString()
				exec(`INSERT INTO tasks (id, tenant_id, type, total, created) VALUES (?, ?, 'bulk_user_import', 0, ?)`, ids[i], o.tenant, base.Add(o.at))
			}
			if err := st.Migrate(ctx); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			want := []int64{3, 2, 1, 2, 1} // by creation time within each tenant
			for i, o := range old {
				got, err := st.Task(ctx, o.tenant, ids[i])
				if err != nil || got.Number != want[i] {
					t.Errorf("old task %d: number %d, %v; want %d", i, got.Number, err, want[i])
				}
			}
			for _, c := range []struct {
				tenant string
				want   int64
			}{{a.ID, 4}, {b.ID, 3}} {
				tk := store.Task{TenantID: c.tenant, Type: "bulk_user_import"}
				if err := st.CreateTask(ctx, &tk, nil, nil); err != nil {
					t.Fatal(err)
				}
				if tk.Number != c.want {
					t.Errorf("new task number %d, want %d", tk.Number, c.want)
				}
			}
		})
	}
}
