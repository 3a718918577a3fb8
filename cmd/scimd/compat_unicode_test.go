package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// unicodeEmail is an address of n characters whose local part is made of the
// two-byte letter é (U+00E9): n characters, nearly 2n bytes.
func unicodeEmail(n int) string {
	const domain = "@example.com"
	return strings.Repeat("\u00e9", n-len(domain)) + domain
}

// TestCompatEmailLengthInCharacters: the administration document allows an email
// "up to 255 characters, regardless of character encoding", so the limit counts
// characters, not UTF-8 bytes: 255 accented characters (498 bytes) are accepted, 256
// are refused, on every route that takes an email.
func TestCompatEmailLengthInCharacters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ok, long := unicodeEmail(255), unicodeEmail(256)
		if utf8.RuneCountInString(ok) != 255 || len(ok) <= 255 {
			t.Fatalf("test address has %d characters, %d bytes", utf8.RuneCountInString(ok), len(ok))
		}

		t.Run("admin", func(t *testing.T) {
			r := adminDo(t, e, e.token, "POST", "/users", map[string]any{"email": ok}).want(t, http.StatusCreated)
			if r.body["email"] != ok {
				t.Errorf("email %v, want the address as sent", r.body["email"])
			}
			adminDo(t, e, e.token, "GET", "/users/"+url.PathEscape(ok), nil).want(t, http.StatusOK)
			adminDo(t, e, e.token, "POST", "/users", map[string]any{"email": long}).wantErr(t, http.StatusBadRequest, "invalid_email")
		})

		t.Run("partner", func(t *testing.T) {
			p := strings.Replace(ok, "\u00e9", "p", 1)
			partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody(p, "https://chat.example.com")).want(t, http.StatusCreated)
			r := partnerCall(t, e, e.token, "POST", partnerPath, partnerProvisionBody(long, "https://chat.example.com"))
			partnerWantError(t, r, http.StatusBadRequest, "invalid_email")
		})
	})
}
