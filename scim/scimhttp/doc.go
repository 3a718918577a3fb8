// Package scimhttp serves the SCIM 2.0 HTTP API (RFC 7644) at /scim/v2 over
// scim.Service: discovery (§4), resource CRUD and lists (§3.3–§3.6), ETags (§3.14)
// and the SCIM error format (§3.12). The schema definitions and error bodies come from
// github.com/elimity-com/scim; routing, validation and responses are scimd's own, so
// that every status, header and message is the one the RFC asks for.
package scimhttp
