package sqlite_test

import (
	"testing"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/storetest"
)

// TestStore runs the store conformance suite on a fresh SQLite file per case.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t testing.TB) store.Store { return storetest.OpenSQLite(t) })
}
