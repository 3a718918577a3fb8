package gormstore

import (
	"strings"

	"github.com/scimd/scimd/store"
)

// tooComplex turns the database's refusal of an expression nested too deeply for
// its parser into an invalid filter: SQLite's SQL parser gives up at about a hundred
// nested tokens ("parser stack overflow", or "Expression tree is too large"),
// PostgreSQL at its max_stack_depth. The filter compiler nests one level per
// and/or/not/[…] of the client's filter, so this is the client's filter to
// simplify, not a fault of the server. Any other error is returned as it is.
func tooComplex(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "parser stack overflow") || strings.Contains(msg, "Expression tree is too large") ||
		strings.Contains(msg, "stack depth limit exceeded") {
		return &store.FilterError{Msg: "the filter is too complex for the database: use fewer nested not (…), […] and and/or terms"}
	}
	return err
}
