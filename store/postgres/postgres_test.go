package postgres_test

import (
	"testing"

	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/storetest"
)

// TestStore runs the store conformance suite on a fresh schema per case of the
// database at SCIMD_TEST_POSTGRES_URL. Without it the test is skipped, except under
// CI=true, where storetest.Backends fails it.
func TestStore(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		if b.Name == "postgres" {
			storetest.Run(t, func(t testing.TB) store.Store { return b.Open(t) })
			return
		}
	}
	t.Skipf("PostgreSQL conformance suite skipped: %s is not set", storetest.PostgresEnv)
}
