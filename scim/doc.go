// Package scim is scimd's core: the use cases of RFC 7644 (create, read, list,
// replace, patch, delete of Users and Groups) over a store, with schema validation
// (RFC 7643), PATCH application (RFC 7644 §3.5.2), filter parsing, version checks,
// password hashing and token authentication. It knows nothing of HTTP; errors are
// scim.Error values whose Kind follows RFC 7644 §3.12.
package scim
