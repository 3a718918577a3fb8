// Package compat will hold the vendor-style provisioning routes of the compatibility
// contract: one file per vendor API, each decoding the vendor's body, translating it
// purely into SCIM resources and PATCH operations, calling the same scim.Service a
// SCIM client would, and answering in the vendor's shape through one error writer.
// Nothing here may touch the store directly. The routes are not implemented yet.
package compat
