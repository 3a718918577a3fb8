// Package storetest is the conformance suite every store.Store backend passes
// (storetest.Run, with subtests named contract=<area>/<case>) and the helpers that
// open fresh, migrated SQLite and PostgreSQL stores for tests: SQLite always,
// PostgreSQL when SCIMD_TEST_POSTGRES_URL is set, and a failure instead of a skip
// under CI=true.
package storetest
