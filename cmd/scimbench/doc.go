// Command scimbench is scimd's load driver. It speaks plain SCIM 2.0 (RFC 7644) over
// HTTP to any base URL with a bearer token, runs the scenarios identity providers
// cause (create, userName lookups, GET by id, paging by index and by cursor as in
// RFC 9865, PATCH active, single-member changes of a large group, DELETE), and, when
// given the database scimd runs on, issues the same work directly against that
// database with prepared statements in a tenant of its own, so that every figure is
// reported as a ratio to what the database alone does on the same machine. With the
// database it also runs the naive stack (naive.go: a plain net/http + gorm server
// with no SCIM logic, `scimbench naive-serve`, in a process of its own and a third
// tenant) through the same scenarios, so scimd is compared with it as well.
//
// It can also start a scimd binary on 127.0.0.1 on a fresh SQLite file or a fresh
// PostgreSQL database and stop it afterwards (make bench). Every loop is bounded in
// count and in time; a non-2xx status or a wrong body counts as an error.
package main
