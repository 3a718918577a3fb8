// Package schemas holds the SCIM schema definitions scimd serves (RFC 7643 §4 User and
// Group, §4.3 EnterpriseUser), the URNs of RFC 7643/7644, and an attribute registry that
// resolves attribute paths case-insensitively to their characteristics. The registry is
// the allow-list every filter, PATCH path and validator goes through.
package schemas
