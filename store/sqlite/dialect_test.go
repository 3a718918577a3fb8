package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/sqlite"
	"github.com/scimd/scimd/store/storetest"
)

func openEmpty(t *testing.T) (*gormstore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scimd.db")
	st, err := sqlite.Open(path, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, path
}

// TestPragmas checks the settings every connection runs with.
func TestPragmas(t *testing.T) {
	st, _ := openEmpty(t)
	for _, tc := range []struct{ pragma, want string }{
		{"busy_timeout", "10000"},
		{"journal_mode", "wal"},
		{"synchronous", "1"}, // NORMAL
		{"foreign_keys", "1"},
	} {
		t.Run(tc.pragma, func(t *testing.T) {
			var got string
			if err := st.DB().Raw("PRAGMA " + tc.pragma).Row().Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
			}
		})
	}
	var lowered string
	if err := st.DB().Raw("SELECT scimd_lower(?)", "ÀÉÎ Straße ΣΑΣ").Row().Scan(&lowered); err != nil {
		t.Fatal(err)
	}
	if want := "àéî straße σασ"; lowered != want {
		t.Errorf("scimd_lower = %q, want %q", lowered, want)
	}
}

// TestTransactionsAreImmediate checks that a transaction holds the write lock from
// its BEGIN: a write from another connection waits for it even before it has
// written anything.
func TestTransactionsAreImmediate(t *testing.T) {
	st, _ := openEmpty(t)
	db := st.DB()
	if err := db.Exec("CREATE TABLE t (x INTEGER)").Error; err != nil {
		t.Fatal(err)
	}
	tx := db.Begin()
	if tx.Error != nil {
		t.Fatal(tx.Error)
	}
	defer tx.Rollback()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err := db.WithContext(ctx).Exec("INSERT INTO t VALUES (1)").Error
	if err == nil {
		t.Fatal("a write went through while another transaction was open: transactions do not BEGIN IMMEDIATE")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the write waiting for the lock ended with %v, want the context's deadline", err)
	}
}

// TestTimesSortAsText checks that the layout times are stored in orders as text the
// way the times do, whatever their fraction of a second.
func TestTimesSortAsText(t *testing.T) {
	st, _ := openEmpty(t)
	db := st.DB()
	if err := db.Exec("CREATE TABLE t (at DATETIME)").Error; err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var want []time.Time
	for _, d := range []time.Duration{0, 100 * time.Millisecond, 100*time.Millisecond + time.Microsecond,
		time.Microsecond, 999999 * time.Microsecond, time.Second, 10 * time.Microsecond, 120 * time.Millisecond} {
		at := base.Add(d)
		want = append(want, at)
		if err := db.Exec("INSERT INTO t VALUES (?)", at).Error; err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(want, time.Time.Compare)
	var got []time.Time
	if err := db.Raw("SELECT at FROM t ORDER BY at").Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("ORDER BY at = %v, want %v", got, want)
	}
}

// TestErrors checks how Dialect classifies the driver's errors, whether it returns
// them itself or their text reaches the store formatted into another error.
func TestErrors(t *testing.T) {
	st, path := openEmpty(t)
	db := st.DB()
	if err := db.Exec("CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE)").Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("INSERT INTO t VALUES ('a', 'x')").Error; err != nil {
		t.Fatal(err)
	}
	// A second pool without a busy timeout fails at once on the lock a transaction
	// of the store's holds.
	other, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx := db.Begin()
	if tx.Error != nil {
		t.Fatal(tx.Error)
	}
	_, busy := other.Exec("INSERT INTO t VALUES ('c', 'z')")
	if err := tx.Rollback().Error; err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name              string
		err               error
		retryable, unique bool
	}{
		{"busy", busy, true, false},
		{"unique", db.Exec("INSERT INTO t VALUES ('b', 'x')").Error, false, true},
		{"primary_key", db.Exec("INSERT INTO t VALUES ('a', 'y')").Error, false, true},
		{"not_null", db.Exec("INSERT INTO t VALUES ('b', NULL)").Error, false, false},
		{"syntax", db.Exec("INSERT INTO").Error, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("no error")
			}
			for _, err := range []error{tc.err, fmt.Errorf("wrapped: %w", tc.err), fmt.Errorf("as text: %v", tc.err)} {
				if got := (sqlite.Dialect{}).IsRetryable(err); got != tc.retryable {
					t.Errorf("IsRetryable(%v) = %v", err, got)
				}
				if got := (sqlite.Dialect{}).IsUniqueViolation(err); got != tc.unique {
					t.Errorf("IsUniqueViolation(%v) = %v", err, got)
				}
			}
		})
	}
}

// TestStatementText checks the parts of the gorm dialect that shape statement text:
// ? placeholders, quoted identifiers and the text logged with its parameters.
func TestStatementText(t *testing.T) {
	st, _ := openEmpty(t)
	got := st.DB().ToSQL(func(tx *gorm.DB) *gorm.DB {
		return tx.Raw("SELECT ? FROM ? WHERE a IN ?", "it's", clause.Table{Name: `x."y`}, []int{1, 2})
	})
	if want := `SELECT 'it''s' FROM "x"."""y" WHERE a IN (1,2)`; got != want {
		t.Errorf("ToSQL = %s, want %s", got, want)
	}
}

// TestWritersTakeTurns checks the in-process queue of writing transactions
// (gormstore.SingleWriter): a write that waits for its turn ends with its
// context, and a queued write runs once the transaction before it ends, not
// while it is open.
func TestWritersTakeTurns(t *testing.T) {
	st := storetest.OpenSQLite(t)
	ctx := t.Context()
	tn, err := st.CreateTenant(ctx, "turns")
	if err != nil {
		t.Fatal(err)
	}
	user := func(name string) *store.Resource {
		return &store.Resource{TenantID: tn.ID, Kind: store.KindUser, UserName: name, Doc: []byte(`{"userName":"` + name + `"}`)}
	}
	g := &store.Resource{TenantID: tn.ID, Kind: store.KindGroup, DisplayName: new("g"), Doc: []byte(`{"displayName":"g"}`)}
	if err := st.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	// A group update runs its updater inside the transaction: hold it open there.
	inside, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		_, err := st.Update(ctx, tn.ID, store.KindGroup, g.ID, func(*store.Resource) ([]store.MemberChange, error) {
			close(inside)
			<-release
			return nil, nil
		})
		held <- err
	}()
	<-inside

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = st.Create(short, user("late"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a write waiting behind an open transaction ended with %v, want its context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the waiting write took %v to give up; its deadline was 200ms", d)
	}

	queued := make(chan error, 1)
	go func() { queued <- st.Create(ctx, user("queued")) }()
	select {
	case err := <-queued:
		t.Fatalf("a write finished (%v) while another transaction was open", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatalf("the transaction that held the turn: %v", err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("the queued write, after the turn was released: %v", err)
	}
	res, err := st.List(ctx, tn.ID, store.KindUser, store.ListOptions{Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res.Resources {
		names = append(names, r.UserName)
	}
	if !slices.Equal(names, []string{"queued"}) {
		t.Errorf("users after the turns: %q, want only the queued one", names)
	}
}
