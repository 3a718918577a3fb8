package gormstore

// CompileFilter exposes compileFilter to the external tests of this package, which
// need the SQLite and PostgreSQL dialects (packages that import this one).
var CompileFilter = compileFilter
