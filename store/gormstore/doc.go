// Package gormstore is the store.Store shared by the SQL backends: the schema and its
// versioned migrations, tenants and tokens, resources with their memberships, and the
// compiler from SCIM filters (RFC 7644 §3.4.2.2) to parameterised SQL. What differs
// between databases (JSON access, case folding, locking, error codes) sits behind the
// small Dialect interface that store/sqlite and store/postgres implement.
package gormstore
