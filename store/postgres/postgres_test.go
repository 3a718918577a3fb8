package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/scim2/filter-parser/v2"
	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	pgstore "github.com/scimd/scimd/store/postgres"
	"github.com/scimd/scimd/store/storetest"
)

// TestStore runs the store conformance suite on a fresh schema per case of the
// database at SCIMD_TEST_POSTGRES_URL. Without it the test is skipped, except under
// CI=true, where storetest.Backends fails it.
func TestStore(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		if b.Name == "postgres" {
			storetest.Run(t, func(t testing.TB) store.Store { return b.Open(t) })
			return
		}
	}
	t.Skipf("PostgreSQL conformance suite skipped: %s is not set", storetest.PostgresEnv)
}

// TestUnreachableServer stops answering under an open store, as a database host
// that dropped off the network does: connections are cut and new ones are accepted
// but never answered. A store call must then fail with store.ErrUnavailable (a 503
// with Retry-After at the API) after DefaultConnectTimeout, not hang for the
// operating system's connect timeout.
func TestUnreachableServer(t *testing.T) {
	base := os.Getenv(storetest.PostgresEnv)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s is not set", storetest.PostgresEnv)
		}
		t.Skipf("needs PostgreSQL: set %s", storetest.PostgresEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		stalled bool
		conns   []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			if stalled { // held open, never answered
				mu.Unlock()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				mu.Unlock()
				c.Close()
				continue
			}
			conns = append(conns, up)
			mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	u.Host = ln.Addr().String()
	st, err := pgstore.Open(u.String(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sqlDB, err := st.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxIdleConns(0) // the next call dials anew
	mu.Lock()
	stalled = true
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	mu.Unlock()

	// The context only bounds the test should the connect timeout be missing.
	ctx, cancel := context.WithTimeout(context.Background(), pgstore.DefaultConnectTimeout+10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = st.TenantByName(ctx, "acme")
	took := time.Since(start)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("unanswered connection: %v, want store.ErrUnavailable", err)
	}
	if took < pgstore.DefaultConnectTimeout-time.Second || took > pgstore.DefaultConnectTimeout+3*time.Second {
		t.Errorf("failed after %v, want about DefaultConnectTimeout (%v)", took, pgstore.DefaultConnectTimeout)
	}
}

// TestReadAfterServerDroppedConnections: the server ends every connection the
// store keeps idle (as a restart or an administrator's pg_terminate_backend
// does); the store's next reads, through the direct read path and through gorm,
// find the connections gone and succeed on new ones.
func TestReadAfterServerDroppedConnections(t *testing.T) {
	var open func(testing.TB) *gormstore.Store
	for _, b := range storetest.Backends(t) {
		if b.Name == "postgres" {
			open = func(t testing.TB) *gormstore.Store { return storetest.OpenPostgres(t) }
		}
	}
	if open == nil {
		t.Skipf("needs PostgreSQL: set %s", storetest.PostgresEnv)
	}
	st := open(t)
	ctx := t.Context()
	tn, err := st.CreateTenant(ctx, "dropped")
	if err != nil {
		t.Fatal(err)
	}
	u := &store.Resource{TenantID: tn.ID, Kind: store.KindUser, UserName: "kept", Doc: []byte(`{"userName":"kept"}`)}
	if err := st.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	// Several connections idle in the pool, each with the read prepared.
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := st.Get(ctx, tn.ID, store.KindUser, u.ID, store.ReadOptions{Groups: true}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	admin, err := sql.Open("pgx", os.Getenv(storetest.PostgresEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var name string
	if err := st.DB().WithContext(ctx).Raw(`SELECT current_setting('application_name')`).Scan(&name).Error; err != nil || name == "" {
		t.Fatalf("the store's application_name: %q, %v", name, err)
	}
	var dropped int
	if err := admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND state = 'idle'`, name).Scan(&dropped); err != nil {
		t.Fatal(err)
	}
	if dropped == 0 {
		t.Fatal("no idle connection of the store was found to end")
	}
	time.Sleep(100 * time.Millisecond) // the backends exit
	for i := range 8 {
		got, err := st.Get(ctx, tn.ID, store.KindUser, u.ID, store.ReadOptions{Groups: true})
		if err != nil {
			t.Fatalf("read %d after %d connections were ended: %v", i, dropped, err)
		}
		if got.UserName != "kept" {
			t.Fatalf("read %d: %q", i, got.UserName)
		}
		res, err := st.List(ctx, tn.ID, store.KindUser, store.ListOptions{Count: 10})
		if err != nil || len(res.Resources) != 1 {
			t.Fatalf("list %d after the connections were ended: %v (%d resources)", i, err, len(res.Resources))
		}
	}
}

// TestHotStatementsPlannedOnce: PostgreSQL plans a prepared statement anew on
// every execution when it judges a generic plan worse than the custom ones, as
// it does for a parameter in OFFSET; for a userName lookup that planning cost
// three times the read. Every statement the common requests run (create, GET,
// lookup, first page, keyset page, PATCH, token check, DELETE), run again and
// again on one connection, must settle on a generic plan.
func TestHotStatementsPlannedOnce(t *testing.T) {
	var st *gormstore.Store
	for _, b := range storetest.Backends(t) {
		if b.Name == "postgres" {
			st = storetest.OpenPostgres(t)
		}
	}
	if st == nil {
		t.Skipf("needs PostgreSQL: set %s", storetest.PostgresEnv)
	}
	sqlDB, err := st.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1) // every statement on the one connection pg_prepared_statements shows
	ctx := t.Context()
	tn, err := st.CreateTenant(ctx, "plans")
	if err != nil {
		t.Fatal(err)
	}
	lookup, err := filter.ParseFilter([]byte(`userName eq "u3"`))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 12 {
		name := fmt.Sprintf("u%d", i)
		u := &store.Resource{TenantID: tn.ID, Kind: store.KindUser, UserName: name, Doc: []byte(`{"userName":"` + name + `"}`)}
		if err := st.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	for i := range 12 {
		if _, err := st.Get(ctx, tn.ID, store.KindUser, ids[i], store.ReadOptions{Groups: true}); err != nil {
			t.Fatal(err)
		}
		if res, err := st.List(ctx, tn.ID, store.KindUser, store.ListOptions{Filter: lookup, Count: 100, ReadOptions: store.ReadOptions{Groups: true}}); err != nil || len(res.Resources) != 1 {
			t.Fatalf("lookup: %v (%d)", err, len(res.Resources))
		}
		if _, err := st.List(ctx, tn.ID, store.KindUser, store.ListOptions{StartIndex: 1, Count: 5}); err != nil {
			t.Fatal(err)
		}
		after := store.Position{ID: ids[0]}
		if got, err := st.Get(ctx, tn.ID, store.KindUser, ids[0], store.ReadOptions{}); err == nil {
			after.Created = got.Created
		}
		if _, err := st.List(ctx, tn.ID, store.KindUser, store.ListOptions{Count: 5, Seek: &store.Seek{After: &after}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Update(ctx, tn.ID, store.KindUser, ids[i], func(cur *store.Resource) ([]store.MemberChange, error) {
			cur.Active = new(i%2 == 0)
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.TokenByHash(ctx, []byte(fmt.Sprintf("%032d", i))); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token: %v", err)
		}
	}
	for _, id := range ids[:8] {
		if err := st.Delete(ctx, tn.ID, store.KindUser, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := sqlDB.QueryContext(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	checked := 0
	for rows.Next() {
		var q string
		var generic, custom int
		if err := rows.Scan(&q, &generic, &custom); err != nil {
			t.Fatal(err)
		}
		if generic+custom < 8 {
			continue // run too few times to have chosen
		}
		checked++
		if generic == 0 {
			t.Errorf("planned anew on each of %d executions:\n%s", custom, q)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d statements checked", checked)
	if checked < 6 {
		t.Fatalf("only %d statements ran often enough to check; the test no longer exercises the hot statements", checked)
	}
}
