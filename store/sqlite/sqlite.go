// Package sqlite opens scimd's embedded default backend: a single SQLite file through a
// pure-Go driver (no cgo), in WAL mode, with writers serialised by immediate
// transactions and a busy timeout.
package sqlite

import (
	"database/sql/driver"
	"fmt"
	"net/url"
	"strings"
	"sync"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/glebarez/sqlite"
	"go.uber.org/zap"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/scimd/scimd/store/gormstore"
)

var registerOnce sync.Once

// registerFunctions adds scimd_lower, which folds case exactly as Go's
// strings.ToLower, so that case-insensitive filters agree with the folded columns
// written from Go for every script, not only ASCII. Drivers register functions
// process-wide, hence the Once.
func registerFunctions() {
	registerOnce.Do(func() {
		gosqlite.MustRegisterDeterministicScalarFunction("scimd_lower", 1,
			func(_ *gosqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
				switch v := args[0].(type) {
				case nil:
					return nil, nil
				case string:
					return strings.ToLower(v), nil
				case []byte:
					return strings.ToLower(string(v)), nil
				default:
					return v, nil
				}
			})
	})
}

// Open opens (creating if needed) the SQLite database file at path.
func Open(path string, log *zap.Logger) (*gormstore.Store, error) {
	registerFunctions()
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	// Do not add _time_format: this driver version stops reading parameters after it,
	// silently dropping _txlock. Times are written in its default layout, always in
	// UTC, which sorts as text in time order.
	q.Set("_txlock", "immediate")
	db, err := gorm.Open(sqlite.Open("file:"+path+"?"+q.Encode()), &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		// gormstore prepares only statements of fixed text; the bound is a safety net.
		PrepareStmtMaxSize: 512,
	})
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	// Keep connections open: each new one re-runs the pragmas and re-registers
	// functions, which the default of two idle connections made a steady cost
	// under concurrent requests.
	sqlDB.SetMaxOpenConns(16)
	sqlDB.SetMaxIdleConns(16)
	return gormstore.New(db, Dialect{}, log), nil
}

// Dialect is SQLite's gormstore.Dialect (JSON through json1).
type Dialect struct{}

var _ gormstore.Dialect = Dialect{}

// Name implements gormstore.Dialect.
func (Dialect) Name() string { return "sqlite" }

// Types implements gormstore.Dialect.
func (Dialect) Types() (string, string, string) { return "TEXT", "DATETIME", "BOOLEAN" }

func jsonPath(keys []string) string {
	var b strings.Builder
	b.WriteString("'$")
	for _, k := range keys {
		b.WriteString(`."`)
		b.WriteString(k)
		b.WriteString(`"`)
	}
	b.WriteString("'")
	return b.String()
}

// JSONText implements gormstore.Dialect.
func (Dialect) JSONText(doc string, keys ...string) string {
	return "json_extract(" + doc + ", " + jsonPath(keys) + ")"
}

// JSONElements implements gormstore.Dialect.
func (Dialect) JSONElements(doc, alias string, keys ...string) (string, string) {
	return "json_each(" + doc + ", " + jsonPath(keys) + ") AS " + alias, alias + ".value"
}

// JSONElementsOrdered implements gormstore.Dialect.
func (Dialect) JSONElementsOrdered(doc, alias string, keys ...string) (string, string, string) {
	return "json_each(" + doc + ", " + jsonPath(keys) + ") AS " + alias, alias + ".value", alias + ".key"
}

// JSONBool implements gormstore.Dialect: json_extract yields 1 and 0 for booleans.
func (Dialect) JSONBool(b bool) any {
	if b {
		return 1
	}
	return 0
}

// JSONNumber implements gormstore.Dialect.
func (Dialect) JSONNumber(expr string) string { return expr }

// Lower implements gormstore.Dialect.
func (Dialect) Lower(expr string) string { return "scimd_lower(" + expr + ")" }

// Match implements gormstore.Dialect. SQLite's LIKE ignores ASCII case, so a
// case-exact match uses GLOB.
func (Dialect) Match(expr, op, lit string, caseExact bool) (string, any) {
	if caseExact {
		return expr + " GLOB ?", gormstore.GlobPattern(op, lit)
	}
	return expr + ` LIKE ? ESCAPE '\'`, gormstore.LikePattern(op, lit)
}

// Ordered implements gormstore.Dialect: SQLite compares text by bytes already.
func (Dialect) Ordered(expr string) string { return expr }

// PairsAgg implements gormstore.Dialect: json_group_array keeps the order of an
// ordered subquery.
func (Dialect) PairsAgg(from, a, b string) string {
	return "(SELECT json_group_array(json_array(x." + a + ", x." + b + ")) FROM " + from + ")"
}

// ForUpdate implements gormstore.Dialect: immediate transactions lock the database.
func (Dialect) ForUpdate() string { return "" }

// ForKeyShare implements gormstore.Dialect: immediate transactions lock the database.
func (Dialect) ForKeyShare() string { return "" }

// IsRetryable implements gormstore.Dialect: the busy timeout ran out.
func (Dialect) IsRetryable(err error) bool {
	return strings.Contains(err.Error(), "SQLITE_BUSY") || strings.Contains(err.Error(), "database is locked")
}

// IsUnavailable implements gormstore.Dialect: an embedded database has no server
// to lose.
func (Dialect) IsUnavailable(error) bool { return false }

// IsUniqueViolation implements gormstore.Dialect.
func (Dialect) IsUniqueViolation(err error) bool {
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// LockMigrations implements gormstore.Dialect: the immediate transaction is the lock.
func (Dialect) LockMigrations(*gorm.DB) error { return nil }
