// Package sqlite opens scimd's embedded default backend: a single SQLite file through
// modernc.org/sqlite, a pure-Go driver (no cgo) that keeps each prepared statement's
// compiled form, in WAL mode, with writers serialised by immediate transactions and a
// busy timeout.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"go.uber.org/zap"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/scimd/scimd/store/gormstore"
)

// scimdDriver is the driver every store opens its connections with: a driver of
// scimd's own rather than the one registered as "sqlite", so that scimd_lower is
// registered on it before its first connection opens (the driver requires that)
// and reaches no connection but scimd's.
var scimdDriver = sync.OnceValue(func() *msqlite.Driver {
	d := &msqlite.Driver{}
	d.MustRegisterDeterministicScalarFunction("scimd_lower", 1, lower)
	return d
})

// lower is scimd_lower, which folds case exactly as Go's strings.ToLower, so that
// case-insensitive filters agree with the folded columns written from Go for every
// script, not only ASCII.
func lower(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
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
}

// connector opens connections to one database file through scimdDriver.
type connector struct {
	d   *msqlite.Driver
	dsn string
}

// Connect implements driver.Connector.
func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.d.Open(c.dsn)
}

// Driver implements driver.Connector.
func (c connector) Driver() driver.Driver { return c.d }

// dsn is the connection string for the database file at path. Every connection
// runs the pragmas; _txlock makes each transaction BEGIN IMMEDIATE, so a writer
// takes the database's write lock before it reads rather than failing to upgrade
// a read lock later. _time_format=sqlite writes time.Time parameters as
// "2006-01-02 15:04:05.999999999-07:00", the layout scimd's files have always
// held; scimd passes only UTC times, and in UTC that layout sorts as text in time
// order. DATETIME columns are read back from it (and from the driver's other
// layouts) as time.Time.
func dsn(path string) string {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_time_format", "sqlite")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the SQLite database file at path.
func Open(path string, log *zap.Logger) (*gormstore.Store, error) {
	pool := sql.OpenDB(connector{d: scimdDriver(), dsn: dsn(path)})
	// Keep connections open: each new one re-runs the pragmas, registers
	// scimd_lower and starts with no prepared statements, which the default of two
	// idle connections made a steady cost under concurrent requests.
	pool.SetMaxOpenConns(16)
	pool.SetMaxIdleConns(16)
	db, err := gorm.Open(dialector{pool: pool}, &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		// gormstore prepares only statements of fixed text; the bound is a safety net.
		PrepareStmtMaxSize: 512,
	})
	if err != nil {
		_ = pool.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return gormstore.New(db, Dialect{}, log), nil
}

// Dialect is SQLite's gormstore.Dialect (JSON through json1).
type Dialect struct{}

var (
	_ gormstore.Dialect      = Dialect{}
	_ gormstore.SingleWriter = Dialect{}
)

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

// SingleWriter implements gormstore.SingleWriter: SQLite has one write lock.
func (Dialect) SingleWriter() bool { return true }

// ForUpdate implements gormstore.Dialect: immediate transactions lock the database.
func (Dialect) ForUpdate() string { return "" }

// ForKeyShare implements gormstore.Dialect: immediate transactions lock the database.
func (Dialect) ForKeyShare() string { return "" }

// errorCode returns the SQLite result code (extended) of err, when err is or wraps
// the driver's error.
func errorCode(err error) (int, bool) {
	var e *msqlite.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

// IsRetryable implements gormstore.Dialect: the busy timeout ran out (SQLITE_BUSY,
// or one of its extended codes such as a WAL snapshot that went stale). An error
// that carries only the driver's text, formatted into another error, is recognised
// by that text.
func (Dialect) IsRetryable(err error) bool {
	if code, ok := errorCode(err); ok {
		return code&0xff == sqlite3.SQLITE_BUSY
	}
	return strings.Contains(err.Error(), "SQLITE_BUSY") || strings.Contains(err.Error(), "database is locked")
}

// IsUnavailable implements gormstore.Dialect: an embedded database has no server
// to lose.
func (Dialect) IsUnavailable(error) bool { return false }

// IsUniqueViolation implements gormstore.Dialect: a UNIQUE or PRIMARY KEY
// constraint failed (SQLite words both "UNIQUE constraint failed").
func (Dialect) IsUniqueViolation(err error) bool {
	if code, ok := errorCode(err); ok {
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// LockMigrations implements gormstore.Dialect: the immediate transaction is the lock.
func (Dialect) LockMigrations(*gorm.DB) error { return nil }
