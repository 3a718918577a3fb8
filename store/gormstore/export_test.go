package gormstore

import "github.com/scimd/scimd/store"

// CompileFilter exposes compileFilter to the external tests of this package, which
// need the SQLite and PostgreSQL dialects (packages that import this one).
var CompileFilter = compileFilter

// SelectCols exposes the columns a read of kind selects, for the query plan tests.
func (s *Store) SelectCols(kind store.Kind, withGroups bool) string {
	return s.selectCols(kind, withGroups)
}

// SetMemberChunk sets how many members EachMember reads at a time until the
// returned function restores it.
func SetMemberChunk(n int) (restore func()) {
	old := memberChunk
	memberChunk = n
	return func() { memberChunk = old }
}
