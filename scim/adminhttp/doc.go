// Package adminhttp serves scimd's own administration API under /admin/v1, beside
// the SCIM API: a tenant's audit log, read with a token of the audit (or admin)
// scope of that tenant.
package adminhttp
