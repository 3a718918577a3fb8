package gormstore

import (
	"context"

	"gorm.io/gorm"

	"github.com/scimd/scimd/store"
)

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

// WriteOver runs writeOver in a transaction of its own: the write Update makes
// after its locked read, here with a version the caller chooses.
func (s *Store) WriteOver(ctx context.Context, r *store.Resource, prev int64) error {
	return s.tx(ctx, func(tx *gorm.DB) error { return s.writeOver(tx, r, prev) })
}
