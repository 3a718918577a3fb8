// Package postgres opens scimd's production backend. Several scimd replicas may share
// one database: writes lock their row, uniqueness is a unique index, and migrations
// take an advisory lock.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/scimd/scimd/store/gormstore"
)

// maxConns is how many connections one scimd process opens at most.
const maxConns = 32

// DefaultConnectTimeout bounds each new connection (TCP, TLS and authentication)
// when the DSN sets no connect_timeout, so a database host that does not answer
// fails a request with store.ErrUnavailable instead of hanging it for the
// operating system's connect timeout, which is minutes.
const DefaultConnectTimeout = 5 * time.Second

// Open connects to the PostgreSQL database at dsn (a postgres:// URL).
func Open(dsn string, log *zap.Logger) (*gormstore.Store, error) {
	db, err := gorm.Open(postgres.Open(withConnectTimeout(dsn)), &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		// gormstore prepares only statements of fixed text; the bound is a safety net.
		PrepareStmtMaxSize: 512,
	})
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(maxConns)
	sqlDB.SetMaxIdleConns(maxConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	return gormstore.New(db, Dialect{}, log), nil
}

// withConnectTimeout adds DefaultConnectTimeout to a URL that names no
// connect_timeout; anything else is left to the driver.
func withConnectTimeout(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Query().Has("connect_timeout") || u.Fragment != "" {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%sconnect_timeout=%d", dsn, sep, int(DefaultConnectTimeout/time.Second))
}

// Dialect is PostgreSQL's gormstore.Dialect (JSON as jsonb).
type Dialect struct{}

var (
	_ gormstore.Dialect       = Dialect{}
	_ gormstore.ChainedWrites = Dialect{}
	_ gormstore.DirectReader  = Dialect{}
)

// Name implements gormstore.Dialect.
func (Dialect) Name() string { return "postgres" }

// Types implements gormstore.Dialect.
func (Dialect) Types() (string, string, string) { return "JSONB", "TIMESTAMPTZ", "BOOLEAN" }

func jsonPath(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = `"` + k + `"`
	}
	return "'{" + strings.Join(q, ",") + "}'"
}

// JSONText implements gormstore.Dialect.
func (Dialect) JSONText(doc string, keys ...string) string {
	return "(" + doc + " #>> " + jsonPath(keys) + ")"
}

// JSONElements implements gormstore.Dialect.
func (Dialect) JSONElements(doc, alias string, keys ...string) (string, string) {
	return "jsonb_array_elements(" + doc + " #> " + jsonPath(keys) + ") AS " + alias + "(v)", alias + ".v"
}

// JSONElementsOrdered implements gormstore.Dialect.
func (Dialect) JSONElementsOrdered(doc, alias string, keys ...string) (string, string, string) {
	return "jsonb_array_elements(" + doc + " #> " + jsonPath(keys) + ") WITH ORDINALITY AS " + alias + "(v, n)", alias + ".v", alias + ".n"
}

// JSONBool implements gormstore.Dialect: #>> yields 'true' and 'false'.
func (Dialect) JSONBool(b bool) any {
	if b {
		return "true"
	}
	return "false"
}

// JSONNumber implements gormstore.Dialect.
func (Dialect) JSONNumber(expr string) string { return "(" + expr + ")::numeric" }

// Lower implements gormstore.Dialect.
func (Dialect) Lower(expr string) string { return "lower(" + expr + ")" }

// Match implements gormstore.Dialect: PostgreSQL's LIKE is case-sensitive.
func (Dialect) Match(expr, op, lit string, _ bool) (string, any) {
	return expr + ` LIKE ? ESCAPE '\'`, gormstore.LikePattern(op, lit)
}

// Ordered implements gormstore.Dialect: compare by code point, not by locale.
func (Dialect) Ordered(expr string) string { return expr + ` COLLATE "C"` }

// PairsAgg implements gormstore.Dialect.
func (Dialect) PairsAgg(from, a, b string) string {
	return "(SELECT COALESCE(json_agg(json_build_array(x." + a + ", x." + b + ") ORDER BY x." + a + "), '[]') FROM " + from + ")"
}

// ChainedWrites implements gormstore.ChainedWrites: PostgreSQL runs INSERT,
// UPDATE and DELETE inside WITH, and a statement outside a transaction commits
// or rolls back as a whole.
func (Dialect) ChainedWrites() bool { return true }

// ForUpdate implements gormstore.Dialect.
func (Dialect) ForUpdate() string { return " FOR UPDATE" }

// ForKeyShare implements gormstore.Dialect.
func (Dialect) ForKeyShare() string { return " FOR KEY SHARE" }

// IsRetryable implements gormstore.Dialect: deadlock_detected and
// serialization_failure.
func (Dialect) IsRetryable(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "40P01" || pg.Code == "40001")
}

// IsUnavailable implements gormstore.Dialect: a connection attempt that failed
// (refused, timed out, or turned away by a server starting up or out of
// connections), an operation that timed out, and the errors of a server that
// ended the session: SQLSTATE class 08 (connection exception), 57P01
// admin_shutdown (a restart, a failover, pg_terminate_backend), 57P02
// crash_shutdown, 57P03 cannot_connect_now, 53300 too_many_connections, and
// 57014 query_canceled and 55P03 lock_not_available, which a statement_timeout or
// lock_timeout set in the DSN raises.
func (Dialect) IsUnavailable(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) {
		return true
	}
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return false
	}
	switch pg.Code {
	case "57P01", "57P02", "57P03", "53300", "57014", "55P03":
		return true
	}
	return strings.HasPrefix(pg.Code, "08")
}

// IsUniqueViolation implements gormstore.Dialect.
func (Dialect) IsUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505"
}

// LockMigrations implements gormstore.Dialect with a transaction-scoped advisory lock.
func (Dialect) LockMigrations(tx *gorm.DB) error {
	return tx.Exec(`SELECT pg_advisory_xact_lock(7262817)`).Error
}

// ReadRows implements gormstore.DirectReader with pgx on the pool's connection:
// pgx prepares each statement text once per connection and scans straight into
// dest, without database/sql's statement and value-conversion layers.
//
// A read that finds its pooled connection ended by the server before it answered
// (a restart, a failover, an administrator's pg_terminate_backend) runs again on
// another: the read did not happen, and reading again is harmless. Every pooled
// connection may be such a one, so it tries once more than the pool holds;
// failing to open a new connection is not retried.
func (Dialect) ReadRows(ctx context.Context, pool *sql.DB, q string, args []any, each func(scan func(dest ...any) error) error) error {
	q = numbered(q)
	var err error
	for range maxConns + 1 {
		var sent, began bool
		err = readRows(ctx, pool, q, args, &sent, func(scan func(dest ...any) error) error {
			began = true
			return each(scan)
		})
		if err == nil || !sent || began || ctx.Err() != nil || !(errors.Is(err, driver.ErrBadConn) || droppedConn(err)) {
			return err
		}
	}
	return err
}

// droppedConn reports whether err says the server ended the connection instead
// of answering: it shut down or restarted, or the connection's backend was
// terminated.
func droppedConn(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "57P01" || pe.Code == "57P02" // admin_shutdown (and terminated backends), crash_shutdown
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// readRows is one try of ReadRows; sent says it got a connection and sent the
// query on it.
func readRows(ctx context.Context, pool *sql.DB, q string, args []any, sent *bool, each func(scan func(dest ...any) error) error) error {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		*sent = true
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("postgres: connection is a %T, not pgx's", dc)
		}
		rows, err := c.Conn().Query(ctx, q, args...)
		if err != nil {
			if pgconn.SafeToRetry(err) && ctx.Err() == nil {
				return driver.ErrBadConn // Raw drops the connection
			}
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := each(rows.Scan); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// numbered turns the ? placeholders of q into PostgreSQL's $1, $2 …. The store's
// statements hold no ? of their own in literals or operators.
func numbered(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
