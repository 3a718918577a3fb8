// Package store defines what scimd needs from a database: tenants and API tokens, SCIM
// resources (Users and Groups) with their indexed columns and JSON document, group
// memberships, and the sentinel errors every backend returns. Backends live in
// sub-packages and all pass the same conformance suite in store/storetest.
package store
