package compat

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"strings"
	"testing"

	"github.com/scimd/scimd/scim"
)

// address returns an email of exactly n characters (code points), its domain
// padded with letter, which may take more than one byte.
func address(n int, letter string) string {
	const local, tld = "ann@", ".example.com"
	return local + strings.Repeat(letter, n-len(local)-len(tld)) + tld
}

// TestNormalizeEmailLength: the contract's identity key is at most 255 characters,
// counted as characters (code points), not bytes; one more is refused.
func TestNormalizeEmailLength(t *testing.T) {
	for _, tc := range []struct {
		name   string
		email  string
		accept bool
	}{
		{"255_ascii", address(255, "a"), true},
		{"256_ascii", address(256, "a"), false},
		// 255 characters of which most take two bytes: over 255 bytes, within 255 characters.
		{"255_two_byte_letters", address(255, "é"), true},
		{"256_two_byte_letters", address(256, "é"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeEmail(tc.email)
			switch {
			case tc.accept && err != nil:
				t.Fatalf("NormalizeEmail(%d characters, %d bytes): %v, want it accepted", len([]rune(tc.email)), len(tc.email), err)
			case tc.accept && got != tc.email:
				t.Errorf("NormalizeEmail = %q, want %q", got, tc.email)
			case !tc.accept && !errors.Is(err, errBadEmail):
				t.Errorf("NormalizeEmail(%d characters) = %q, %v; want errBadEmail", len([]rune(tc.email)), got, err)
			}
		})
	}
}

// TestNormalizeEmailShape: an email "must look like an address": local@domain with a
// dotted domain, no display name; it is trimmed and lower-cased.
func TestNormalizeEmailShape(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" when refused
	}{
		{"ann@example.com", "ann@example.com"},
		{"  Ann@Example.COM\t", "ann@example.com"},
		{"ann.lee+tag@mail.example.co.uk", "ann.lee+tag@mail.example.co.uk"},
		{"a@localhost", ""},
		{"ann@example", ""},
		{"ann", ""},
		{"@example.com", ""},
		{"ann@", ""},
		{"Ann <ann@example.com>", ""},
		{"ann@example.com, bob@example.com", ""},
		{"", ""},
		{"   ", ""},
	} {
		got, err := NormalizeEmail(tc.in)
		if tc.want == "" {
			if !errors.Is(err, errBadEmail) {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want errBadEmail", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// errorKinds lists every scim.ErrorKind constant by name, read from the package's
// source, so that a kind added there without a row here fails the test.
func errorKinds(t *testing.T) map[string]scim.ErrorKind {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../scim/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]scim.ErrorKind{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST || len(g.Specs) == 0 {
			continue
		}
		first := g.Specs[0].(*ast.ValueSpec)
		if id, ok := first.Type.(*ast.Ident); !ok || id.Name != "ErrorKind" {
			continue
		}
		for i, s := range g.Specs { // one iota block: the i-th name is ErrorKind(i)
			for _, n := range s.(*ast.ValueSpec).Names {
				kinds[n.Name] = scim.ErrorKind(i)
			}
		}
	}
	if len(kinds) == 0 {
		t.Fatal("no ErrorKind constants found in scim/errors.go")
	}
	return kinds
}

// TestKindStatus: every service error kind has its status and generic code in the
// vendor-shaped families. A precondition failure (a concurrent change) is 409 in
// these APIs, which know no ETags, never 500.
func TestKindStatus(t *testing.T) {
	type want struct {
		status int
		code   string
	}
	table := map[string]want{
		"KindInternal":        {http.StatusInternalServerError, "internal"},
		"KindInvalidValue":    {http.StatusBadRequest, "invalid_request"},
		"KindInvalidSyntax":   {http.StatusBadRequest, "invalid_request"},
		"KindInvalidFilter":   {http.StatusBadRequest, "invalid_request"},
		"KindInvalidPath":     {http.StatusBadRequest, "invalid_request"},
		"KindNoTarget":        {http.StatusBadRequest, "invalid_request"},
		"KindMutability":      {http.StatusBadRequest, "invalid_request"},
		"KindTooMany":         {http.StatusBadRequest, "invalid_request"},
		"KindInvalidCursor":   {http.StatusBadRequest, "invalid_request"},
		"KindExpiredCursor":   {http.StatusBadRequest, "invalid_request"},
		"KindUniqueness":      {http.StatusConflict, "conflict"},
		"KindPrecondition":    {http.StatusConflict, "conflict"},
		"KindNotFound":        {http.StatusNotFound, "not_found"},
		"KindUnauthorized":    {http.StatusUnauthorized, "unauthorized"},
		"KindForbidden":       {http.StatusForbidden, "forbidden"},
		"KindUnavailable":     {http.StatusServiceUnavailable, "unavailable"},
		"KindTooManyRequests": {http.StatusTooManyRequests, "too_many_requests"},
	}
	kinds := errorKinds(t)
	for name, k := range kinds {
		w, ok := table[name]
		if !ok {
			t.Errorf("scim.%s has no row in this table: decide its status and code", name)
			continue
		}
		const detail = "what went wrong"
		st, code, msg := kindStatus(&scim.Error{Kind: k, Detail: detail, Err: errors.New("secret cause")})
		if st != w.status || code != w.code {
			t.Errorf("kindStatus(%s) = %d %q, want %d %q", name, st, code, w.status, w.code)
		}
		// A 500 names no detail (it may carry internals); every refusal names its detail.
		if internal := st == http.StatusInternalServerError; internal == (msg == detail) {
			t.Errorf("kindStatus(%s) message %q", name, msg)
		}
	}
	for name := range table {
		if _, ok := kinds[name]; !ok {
			t.Errorf("table row %s names no scim.ErrorKind", name)
		}
	}
}
