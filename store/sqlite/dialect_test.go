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

	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/sqlite"
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
