package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zaptest"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/scimd/scimd/store/gormstore"
	pgstore "github.com/scimd/scimd/store/postgres"
	"github.com/scimd/scimd/store/sqlite"
)

// PostgresEnv names the environment variable with the PostgreSQL URL tests use.
const PostgresEnv = "SCIMD_TEST_POSTGRES_URL"

// Backend is a database the tests run against.
type Backend struct {
	Name string
	// Open returns a fresh, migrated, empty store that is closed when t ends.
	Open func(t testing.TB) *gormstore.Store
}

// Backends returns SQLite always and PostgreSQL when SCIMD_TEST_POSTGRES_URL is set.
// Under CI=true a missing URL fails the test instead of skipping PostgreSQL.
func Backends(t testing.TB) []Backend {
	out := []Backend{{Name: "sqlite", Open: OpenSQLite}}
	if os.Getenv(PostgresEnv) != "" {
		out = append(out, Backend{Name: "postgres", Open: OpenPostgres})
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s is not set: the PostgreSQL tests must run in CI", PostgresEnv)
	} else {
		t.Logf("PostgreSQL tests skipped: set %s (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) to run them", PostgresEnv)
	}
	return out
}

// OpenSQLite returns a migrated store on a new SQLite file in t's temp dir.
func OpenSQLite(t testing.TB) *gormstore.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "scimd.db"), zaptest.NewLogger(t))
	return migrated(t, st, err)
}

// OpenPostgres returns a migrated store in a new schema of the database at
// SCIMD_TEST_POSTGRES_URL; the schema is dropped when t ends. It fails (never skips)
// when the database cannot be reached.
func OpenPostgres(t testing.TB) *gormstore.Store {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Fatalf("%s is not set", PostgresEnv)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "scimd_test_" + hex.EncodeToString(b)
	admin, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatalf("connect to %s: %v", PostgresEnv, err)
	}
	adminDB, _ := admin.DB()
	if err := admin.Exec(`CREATE SCHEMA ` + schema).Error; err != nil {
		t.Fatalf("create schema on %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		adminDB.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	// The store's connections name themselves after the schema, so that a test
	// can find them (and only them) in pg_stat_activity.
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	st, err := pgstore.Open(u.String(), zaptest.NewLogger(t))
	return migrated(t, st, err)
}

// migrated fails t if opening failed, closes st when t ends, and migrates it.
func migrated(t testing.TB, st *gormstore.Store, err error) *gormstore.Store {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}
