package compat

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCheckJSONContentType: a body is JSON only as application/json or another
// application/*+json type in UTF-8; a missing Content-Type is accepted where the
// family's vendor document shows bodies without headers, or when there is no body
// (CONTRACT.md shared.content-type).
func TestCheckJSONContentType(t *testing.T) {
	for _, tc := range []struct {
		name, ct  string
		body      string
		missingOK bool
		ok        bool
	}{
		{"json", "application/json", "{}", false, true},
		{"json_utf8", "application/json; charset=utf-8", "{}", false, true},
		{"json_UTF8_upper", "application/json; charset=UTF-8", "{}", false, true},
		{"scim_json", "application/scim+json", "{}", false, true},
		{"json_utf16", "application/json; charset=utf-16", "{}", false, false},
		{"text_plain", "text/plain", "{}", false, false},
		{"form", "application/x-www-form-urlencoded", "{}", false, false},
		{"text_json_suffix", "text/x+json", "{}", false, false},
		{"unparsable", "application/json; charset", "{}", false, false},
		{"missing_refused", "", "{}", false, false},
		{"missing_allowed", "", "{}", true, true},
		{"missing_no_body", "", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
			if tc.body == "" {
				r = httptest.NewRequest("POST", "/", nil)
			}
			if tc.ct != "" {
				r.Header.Set("Content-Type", tc.ct)
			}
			err := checkJSONContentType(r, tc.missingOK)
			if (err == nil) != tc.ok {
				t.Fatalf("checkJSONContentType(%q) = %v, want ok %v", tc.ct, err, tc.ok)
			}
			if err != nil {
				if _, isMT := err.(*mediaTypeError); !isMT {
					t.Errorf("error %T, want *mediaTypeError (each family answers it 415)", err)
				}
			}
		})
	}
}
