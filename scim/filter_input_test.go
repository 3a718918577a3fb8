package scim

import (
	"errors"
	"testing"
)

// TestParseFilterRefusesNULAndBadUnicode: filter text that no stored value can match
// (and PostgreSQL refuses) is invalidFilter before it is compiled, on every path
// through the parser.
func TestParseFilterRefusesNULAndBadUnicode(t *testing.T) {
	for _, c := range []struct{ name, filter string }{
		{"raw NUL in a string", "userName eq \"a\x00b\""},
		{"raw NUL outside strings", "userName eq \"a\" and\x00 active eq true"},
		{"NUL escape", `externalId eq "a\u0000b"`},
		{"NUL escape in a complex filter", `userName pr and (externalId eq "\u0000" or id eq "x")`},
		{"NUL escape in a value path", `emails[value eq "\u0000"]`},
		{"invalid UTF-8", "externalId eq \"\xff\""},
		{"overlong encoding", "externalId co \"\xc0\x80\""},
		{"invalid UTF-8 in a complex filter", "userName pr or id eq \"\xfe\""},
		{"lone high surrogate escape", `id eq "\uD800"`},
		{"lone low surrogate escape, lower-case hex", `id eq "a\udc00"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFilter(c.filter, 0)
			var se *Error
			if !errors.As(err, &se) || se.Kind != KindInvalidFilter {
				t.Fatalf("ParseFilter(%q): %v, want KindInvalidFilter", c.filter, err)
			}
		})
	}
	if _, err := ParseFilter(`userName eq "caf\u00E9 \uD83D\uDE00"`, 0); err != nil {
		t.Errorf("valid escapes are refused: %v", err)
	}
	if _, err := ParsePath(`emails[type eq "w\u0000"].value`); err == nil || AsError(err).Kind != KindInvalidPath {
		t.Errorf("a NUL escape in a PATCH path's filter: %v, want KindInvalidPath", err)
	}
}
