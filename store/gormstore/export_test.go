package gormstore

import "github.com/scimd/scimd/store"

// CompileFilter exposes compileFilter to the external tests of this package, which
// need the SQLite and PostgreSQL dialects (packages that import this one).
var CompileFilter = compileFilter

// SelectCols exposes the columns a read of kind selects, for the query plan tests.
func (s *Store) SelectCols(kind store.Kind, withGroups bool) string {
	return s.selectCols(kind, withGroups)
}
