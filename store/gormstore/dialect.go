package gormstore

import (
	"context"
	"database/sql"

	"gorm.io/gorm"
)

// Dialect is what differs between the SQL databases scimd runs on.
type Dialect interface {
	// Name is "sqlite" or "postgres".
	Name() string
	// Types returns the column types for JSON documents, timestamps and booleans.
	Types() (json, timestamp, boolean string)
	// JSONText returns a SQL expression for the scalar at keys inside the JSON
	// column or element expression doc, as text for strings, or NULL when absent.
	JSONText(doc string, keys ...string) string
	// JSONElements returns a FROM item iterating the array at keys inside doc under
	// alias, and the SQL expression of one element.
	JSONElements(doc, alias string, keys ...string) (from, elem string)
	// JSONElementsOrdered is JSONElements with an expression for each element's
	// position in the array.
	JSONElementsOrdered(doc, alias string, keys ...string) (from, elem, ord string)
	// JSONBool returns the parameter a JSONText expression equals for b.
	JSONBool(b bool) any
	// JSONNumber wraps a JSONText expression so it compares as a number.
	JSONNumber(expr string) string
	// Lower folds a text expression's case the way strings.ToLower does.
	Lower(expr string) string
	// Match returns a condition that text expr contains (op "co"), starts with
	// ("sw") or ends with ("ew") the literal lit, and the one parameter it binds.
	// With caseExact false, expr and lit are already case-folded.
	Match(expr, op, lit string, caseExact bool) (sql string, arg any)
	// Ordered makes a text expression compare by code point for < and >.
	Ordered(expr string) string
	// PairsAgg returns a scalar expression aggregating the rows of the subquery
	// from (aliased x, with text columns a and b) into a JSON array of [a, b]
	// arrays ordered by a; "[]" when there are none.
	PairsAgg(from, a, b string) string
	// ForUpdate is the clause that locks a selected row for the transaction.
	ForUpdate() string
	// ForKeyShare is the clause that keeps a selected row from being deleted until
	// the transaction ends, the lock a foreign key check takes.
	ForKeyShare() string
	// IsRetryable reports whether err is a transient conflict (a deadlock, a
	// serialization failure, a busy database) after which the whole transaction may
	// simply run again.
	IsRetryable(err error) bool
	// IsUnavailable reports whether err means the database cannot serve at the
	// moment in a way only this driver can tell (a connection attempt that failed
	// or timed out, a server shutting down or starting up), beyond the network
	// errors every driver reports alike.
	IsUnavailable(err error) bool
	// IsUniqueViolation reports whether err is a unique-constraint violation.
	IsUniqueViolation(err error) bool
	// LockMigrations serialises concurrent migrations inside tx.
	LockMigrations(tx *gorm.DB) error
}

// SingleWriter is implemented by a Dialect whose database admits one writing
// transaction at a time (SQLite). The store then queues its own transactions in
// process, each waiting for the one before it to end, instead of letting them
// all start and meet the database's lock: SQLite's busy handler retries a locked
// BEGIN after sleeping 1, 2, 5 … up to 100 ms, so with several writers waiting the
// lock sat free while they slept (scimbench: PATCH p99 near 90 ms on 8 clients).
// Writers in other processes on the same file still meet the lock and its busy
// timeout.
type SingleWriter interface {
	SingleWriter() bool
}

// ChainedWrites is implemented by a Dialect whose database runs data-modifying
// statements inside WITH (PostgreSQL), each such statement atomically on its own.
// The store then writes a create, or an update that changes no memberships and
// queues no message, as one statement outside a transaction: the row, its count
// and its audit event in one round trip instead of a transaction of several. A
// Dialect without it (SQLite) keeps every write in a transaction.
type ChainedWrites interface {
	// ChainedWrites reports whether the database takes such statements.
	ChainedWrites() bool
}

// DirectReader is implemented by a Dialect whose driver runs a read on one of the
// pool's connections itself, past database/sql's statement layer and gorm's
// callbacks (PostgreSQL through pgx, which keeps each connection's statements
// prepared on its own). The store uses it for the reads every request makes.
type DirectReader interface {
	// ReadRows runs query q (with ? placeholders) with args on a connection of
	// pool and calls each for every row with a function that scans the row's
	// columns into dest; it returns each's first error.
	ReadRows(ctx context.Context, pool *sql.DB, q string, args []any, each func(scan func(dest ...any) error) error) error
}
