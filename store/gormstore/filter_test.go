package gormstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	pgstore "github.com/scimd/scimd/store/postgres"
	"github.com/scimd/scimd/store/sqlite"
)

// notNested is a filter of n nested not (…) around one comparison: n+1 levels for
// the compiler.
func notNested(n int) string {
	return strings.Repeat("not (", n) + `userName eq "ann"` + strings.Repeat(")", n)
}

// TestCompileFilterDepth: the compiler takes a filter of up to 64 nested levels of
// and/or/not/[…] (the bound README's limits table names for either database) and
// refuses one level more as an invalid filter, on both dialects.
func TestCompileFilterDepth(t *testing.T) {
	for _, d := range []gormstore.Dialect{sqlite.Dialect{}, pgstore.Dialect{}} {
		t.Run(d.Name(), func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				filter string
				ok     bool
			}{
				{"64_levels_of_not", notNested(63), true},
				{"65_levels_of_not", notNested(64), false},
				// Alternating and/or nest one level per operator change.
				{"64_levels_of_and_or", alternating(64), true},
				{"65_levels_of_and_or", alternating(65), false},
				// A chain of one operator is one level however long.
				{"long_or_chain", strings.Repeat(`userName eq "a" or `, 200) + `userName eq "b"`, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					e, err := scim.ParseFilter(tc.filter, 1<<20)
					if err != nil {
						t.Fatalf("ParseFilter: %v", err)
					}
					_, _, err = gormstore.CompileFilter(d, store.KindUser, e)
					switch {
					case tc.ok && err != nil:
						t.Fatalf("CompileFilter: %v, want it compiled", err)
					case !tc.ok && !errors.Is(err, store.ErrInvalidFilter):
						t.Fatalf("CompileFilter: %v, want an invalid filter", err)
					}
				})
			}
		})
	}
}

// alternating is a filter whose compiled form nests levels deep: each level is a
// comparison joined to the level below by and, or, and, … in turn.
func alternating(levels int) string {
	f := `userName eq "x0"`
	for i := 1; i < levels; i++ {
		op := " and "
		if i%2 == 0 {
			op = " or "
		}
		f = `userName eq "x` + strings.Repeat("1", i%3) + `"` + op + "(" + f + ")"
	}
	return f
}
