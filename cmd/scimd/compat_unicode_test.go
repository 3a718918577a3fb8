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

// The two spellings of one name: "é" precomposed (U+00E9) and "e" followed by a
// combining acute accent (U+0301). They differ byte for byte and are one name to a
// reader (Unicode canonical equivalence, UAX #15).
const (
	cafeNFC = "caf\u00e9"
	cafeNFD = "cafe\u0301"
)

// TestUserNameLookAlikes: userName is unique per tenant (RFC 7643 §4.1.1), and two
// spellings of one name must not make two users. scimd compares userName in Unicode
// NFC (and case-insensitively): the decomposed spelling of a taken name is 409
// uniqueness on every write (POST, PUT, PATCH, Bulk), and a filter written with it
// finds the stored user.
func TestUserNameLookAlikes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		r := e.call("POST", "/scim/v2/Users", user(cafeNFC)).want(t, http.StatusCreated)
		cafeID := str(r.body, "id")
		if got := str(r.body, "userName"); got != cafeNFC {
			t.Errorf("userName %q, want %q", got, cafeNFC)
		}

		t.Run("post", func(t *testing.T) {
			e.call("POST", "/scim/v2/Users", user(cafeNFD)).wantError(t, http.StatusConflict, "uniqueness")
			e.call("POST", "/scim/v2/Users", user(strings.ToUpper(cafeNFD))).wantError(t, http.StatusConflict, "uniqueness")
		})

		t.Run("filter", func(t *testing.T) {
			for _, f := range []string{`userName eq "` + cafeNFD + `"`, `userName eq "CAFE` + "\u0301" + `"`,
				`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "` + cafeNFD + `"`, `userName sw "cafe` + "\u0301" + `"`} {
				r := e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(f), nil).want(t, http.StatusOK)
				if got := ids(r); len(got) != 1 || got[0] != cafeID {
					t.Errorf("%s: ids %v, want [%s]", f, got, cafeID)
				}
			}
		})

		// Renames and Bulk on a name of their own, so that nothing above decides them.
		const zoeNFC, zoeNFD = "zo\u00eb", "zoe\u0308"
		e.call("POST", "/scim/v2/Users", user(zoeNFC)).want(t, http.StatusCreated)
		other := str(e.call("POST", "/scim/v2/Users", user("other")).want(t, http.StatusCreated).body, "id")
		t.Run("patch", func(t *testing.T) {
			e.call("PATCH", "/scim/v2/Users/"+other, patchBody(op("replace", "userName", zoeNFD))).wantError(t, http.StatusConflict, "uniqueness")
		})
		t.Run("put", func(t *testing.T) {
			e.call("PUT", "/scim/v2/Users/"+other, user(zoeNFD)).wantError(t, http.StatusConflict, "uniqueness")
		})
		t.Run("bulk", func(t *testing.T) {
			e.call("POST", "/scim/v2/Users", user("ren\u00e9e")).want(t, http.StatusCreated)
			res := bulkResults(t, e.call("POST", "/scim/v2/Bulk", bulkReq(0, bulkOp("POST", "/Users", "a", user("rene\u0301e"), ""))))
			wantOps(t, res, http.StatusConflict)
		})
		t.Run("stored_once", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName co "caf"`), nil).want(t, http.StatusOK)
			if got := ids(r); len(got) != 1 {
				t.Errorf("users named like café: %v", got)
			}
		})
		t.Run("decomposed_first", func(t *testing.T) {
			// A name sent decomposed is stored composed, and the composed spelling collides.
			r := e.call("POST", "/scim/v2/Users", user("jose\u0301")).want(t, http.StatusCreated)
			if got := str(r.body, "userName"); got != "jos\u00e9" {
				t.Errorf("userName %q, want the NFC form %q", got, "jos\u00e9")
			}
			e.call("POST", "/scim/v2/Users", user("jos\u00e9")).wantError(t, http.StatusConflict, "uniqueness")
		})
	})
}

// TestCompatEmailLookAlikes: the compatibility routes name users by email, and two
// spellings of one address are one user: the email is normalised to NFC like
// userName, so the decomposed spelling of a taken address is 409 in the family's
// shape and finds the stored user.
func TestCompatEmailLookAlikes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		nfc, nfd := cafeNFC+"@example.com", cafeNFD+"@example.com"

		t.Run("admin", func(t *testing.T) {
			r := adminDo(t, e, e.token, "POST", "/users", map[string]any{"email": nfc}).want(t, http.StatusCreated)
			if r.body["email"] != nfc {
				t.Errorf("email %v, want %q", r.body["email"], nfc)
			}
			adminDo(t, e, e.token, "POST", "/users", map[string]any{"email": nfd}).wantErr(t, http.StatusConflict, "user_exists")
			g := adminDo(t, e, e.token, "GET", "/users/"+url.PathEscape(nfd), nil).want(t, http.StatusOK)
			if g.body["email"] != nfc {
				t.Errorf("GET by the decomposed address: email %v, want %q", g.body["email"], nfc)
			}
		})

		t.Run("superuser", func(t *testing.T) {
			addr, addrNFD := "jos\u00e9@example.com", "jose\u0301@example.com"
			superuserPost(t, e, "/api/v1/create_user", map[string]any{"key": e.token, "email": addrNFD,
				"first_name": "Jose", "last_name": "Doe", "password": "correct horse", "email_confirmed": true}).want(t, http.StatusCreated)
			superuserPost(t, e, "/api/v1/create_user", map[string]any{"key": e.token, "email": addr,
				"first_name": "Jose", "last_name": "Doe", "password": "correct horse", "email_confirmed": true}).wantError(t, http.StatusConflict, "user_exists")
			r := e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "`+addr+`"`), nil).want(t, http.StatusOK)
			list, _ := r.body["Resources"].([]any)
			if len(list) != 1 {
				t.Fatalf("users %s", r.raw)
			}
			u := list[0].(map[string]any)
			emails, _ := u["emails"].([]any)
			if u["userName"] != addr || len(emails) != 1 || emails[0].(map[string]any)["value"] != addr {
				t.Errorf("userName %v emails %v, want both %q (NFC)", u["userName"], u["emails"], addr)
			}
		})
	})
}
