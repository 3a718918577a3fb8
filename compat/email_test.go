package compat

import (
	"errors"
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

// TestKindStatus: every service error kind has its status and generic code in the
// vendor-shaped families. A precondition failure (a concurrent change) is 409 in
// these APIs, which know no ETags, never 500.
func TestKindStatus(t *testing.T) {
	type want struct {
		status int
		code   string
	}
	table := map[scim.ErrorKind]want{
		scim.KindInternal:        {http.StatusInternalServerError, "internal"},
		scim.KindInvalidValue:    {http.StatusBadRequest, "invalid_request"},
		scim.KindInvalidSyntax:   {http.StatusBadRequest, "invalid_request"},
		scim.KindInvalidFilter:   {http.StatusBadRequest, "invalid_request"},
		scim.KindInvalidPath:     {http.StatusBadRequest, "invalid_request"},
		scim.KindNoTarget:        {http.StatusBadRequest, "invalid_request"},
		scim.KindMutability:      {http.StatusBadRequest, "invalid_request"},
		scim.KindTooMany:         {http.StatusBadRequest, "invalid_request"},
		scim.KindInvalidCursor:   {http.StatusBadRequest, "invalid_request"},
		scim.KindExpiredCursor:   {http.StatusBadRequest, "invalid_request"},
		scim.KindUniqueness:      {http.StatusConflict, "conflict"},
		scim.KindPrecondition:    {http.StatusConflict, "conflict"},
		scim.KindNotFound:        {http.StatusNotFound, "not_found"},
		scim.KindUnauthorized:    {http.StatusUnauthorized, "unauthorized"},
		scim.KindForbidden:       {http.StatusForbidden, "forbidden"},
		scim.KindUnavailable:     {http.StatusServiceUnavailable, "unavailable"},
		scim.KindTooManyRequests: {http.StatusTooManyRequests, "too_many_requests"},
	}
	for _, k := range scim.ErrorKinds() {
		w, ok := table[k]
		if !ok {
			t.Errorf("error kind %d has no row in this table: decide its status and code", k)
			continue
		}
		const detail = "what went wrong"
		st, code, msg := kindStatus(&scim.Error{Kind: k, Detail: detail, Err: errors.New("secret cause")})
		if st != w.status || code != w.code {
			t.Errorf("kindStatus(%d) = %d %q, want %d %q", k, st, code, w.status, w.code)
		}
		// A 500 names no detail (it may carry internals); every refusal names its detail.
		if internal := st == http.StatusInternalServerError; internal == (msg == detail) {
			t.Errorf("kindStatus(%d) message %q", k, msg)
		}
	}
}
