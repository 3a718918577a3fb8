package sqlite

import (
	"database/sql"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"gorm.io/gorm/migrator"
	"gorm.io/gorm/schema"
)

// dialector is gorm's view of SQLite for scimd. gormstore sends gorm only SQL of
// its own (Raw, Exec, Rows, Scan, Transaction) and creates its schema with its own
// migrations, so this provides what those paths reach: the connection pool, the
// default callbacks that run raw statements, ? placeholders, identifier quoting and
// the text of a statement for logs. gorm's model-building API (Create, Save,
// AutoMigrate, nested transactions through savepoints) is not used by scimd and is
// not adapted to SQLite here: a nested Transaction fails with
// gorm.ErrUnsupportedDriver rather than running without a savepoint.
type dialector struct {
	pool *sql.DB
}

var _ gorm.Dialector = dialector{}

// Name implements gorm.Dialector.
func (dialector) Name() string { return "sqlite" }

// Initialize implements gorm.Dialector: it hands gorm the pool and the callbacks
// that execute statements.
func (d dialector) Initialize(db *gorm.DB) error {
	db.ConnPool = d.pool
	callbacks.RegisterDefaultCallbacks(db, &callbacks.Config{})
	return nil
}

// Migrator implements gorm.Dialector with gorm's generic migrator. scimd never
// calls it: gormstore's migrations write the schema in SQL of their own.
func (d dialector) Migrator(db *gorm.DB) gorm.Migrator {
	return migrator.Migrator{Config: migrator.Config{DB: db, Dialector: d}}
}

// DataTypeOf implements gorm.Dialector with the column types gormstore's
// migrations use.
func (dialector) DataTypeOf(f *schema.Field) string {
	switch f.DataType {
	case schema.Bool:
		return "BOOLEAN"
	case schema.Int, schema.Uint:
		return "INTEGER"
	case schema.Float:
		return "REAL"
	case schema.String:
		return "TEXT"
	case schema.Time:
		return "DATETIME"
	case schema.Bytes:
		return "BLOB"
	}
	return string(f.DataType)
}

// DefaultValueOf implements gorm.Dialector: NULL makes an INTEGER PRIMARY KEY take
// the next rowid; SQLite has no DEFAULT inside VALUES, so any other column's
// default is refused by the database rather than replaced by NULL.
func (dialector) DefaultValueOf(f *schema.Field) clause.Expression {
	if f.AutoIncrement {
		return clause.Expr{SQL: "NULL"}
	}
	return clause.Expr{SQL: "DEFAULT"}
}

// BindVarTo implements gorm.Dialector: SQLite numbers ? placeholders itself.
func (dialector) BindVarTo(w clause.Writer, _ *gorm.Statement, _ any) {
	w.WriteByte('?')
}

// QuoteTo implements gorm.Dialector: each dot-separated part of a qualified name
// is quoted as an SQL identifier, with embedded double quotes doubled.
func (dialector) QuoteTo(w clause.Writer, name string) {
	for i, part := range strings.Split(name, ".") {
		if i > 0 {
			w.WriteByte('.')
		}
		w.WriteByte('"')
		w.WriteString(strings.ReplaceAll(part, `"`, `""`))
		w.WriteByte('"')
	}
}

// Explain implements gorm.Dialector: the statement with its parameters inlined as
// SQLite literals, for logs.
func (dialector) Explain(sql string, vars ...any) string {
	return logger.ExplainSQL(sql, nil, `'`, vars...)
}
