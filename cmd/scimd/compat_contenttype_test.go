package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// contentTypeFamily is one compatibility family as TestCompatContentType drives it:
// a request that succeeds with a JSON body, and the family's error shape.
type contentTypeFamily struct {
	name, method, path string
	// headers are the credentials of the family's style (tok is the tenant's token).
	headers func(tok string) map[string]string
	// body is a valid JSON body; n makes its email unique.
	body func(tok string, n int) any
	ok   int
	// missingOK: a body without Content-Type is read as JSON (the vendor's own
	// examples leave the header out).
	missingOK bool
	// errorShape checks a 415 in the family's shape.
	errorShape func(t *testing.T, header http.Header, body map[string]any)
}

// codeShape checks {codeKey: "unsupported_media_type", msgKey: text} and nothing else.
func codeShape(codeKey, msgKey string) func(t *testing.T, header http.Header, body map[string]any) {
	return func(t *testing.T, header http.Header, body map[string]any) {
		t.Helper()
		if ct := header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		if body[codeKey] != "unsupported_media_type" {
			t.Errorf("%s %v, want unsupported_media_type; body %v", codeKey, body[codeKey], body)
		}
		if m, _ := body[msgKey].(string); m == "" {
			t.Errorf("no %s: %v", msgKey, body)
		}
		if len(body) != 2 {
			t.Errorf("keys besides %s and %s: %v", codeKey, msgKey, body)
		}
	}
}

var contentTypeFamilies = []contentTypeFamily{
	{
		name: "partner", method: "POST", path: partnerPath, ok: http.StatusCreated,
		headers: func(tok string) map[string]string { return map[string]string{"Authorization": "Token " + tok} },
		body: func(_ string, n int) any {
			return partnerProvisionBody(fmt.Sprintf("partner%d@example.com", n), "https://chat.example.com")
		},
		errorShape: codeShape("error", "message"),
	},
	{
		name: "admin", method: "POST", path: "/users", ok: http.StatusCreated, missingOK: true,
		headers: func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} },
		body: func(_ string, n int) any {
			return map[string]any{"email": fmt.Sprintf("admin%d@example.com", n), "credits": 10}
		},
		errorShape: codeShape("error", "message"),
	},
	{
		name: "platform", method: "POST", path: "/scim/provision-user", ok: http.StatusCreated,
		headers: func(tok string) map[string]string {
			return map[string]string{"Authorization": "Bearer " + tok, "X-App-Token": tok}
		},
		body: func(_ string, n int) any {
			return platformSample(fmt.Sprintf("platform.user%d", n), fmt.Sprintf("platform%d@example.com", n))
		},
		errorShape: func(t *testing.T, header http.Header, body map[string]any) {
			t.Helper()
			if ct := header.Get("Content-Type"); ct != "application/scim+json" {
				t.Errorf("Content-Type %q, want application/scim+json", ct)
			}
			if s, _ := body["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
				t.Errorf("not a SCIM error: %v", body)
			}
			if body["status"] != "415" {
				t.Errorf("status field %v, want \"415\" (RFC 7644 §3.12)", body["status"])
			}
			if d, _ := body["detail"].(string); d == "" {
				t.Errorf("no detail: %v", body)
			}
		},
	},
	{
		name: "superuser", method: "POST", path: "/api/v1/create_user", ok: http.StatusCreated,
		headers: func(string) map[string]string { return nil },
		body: func(tok string, n int) any {
			return map[string]any{"key": tok, "email": fmt.Sprintf("superuser%d@example.com", n), "first_name": "Ann",
				"last_name": "Lee", "password": "correct horse", "email_confirmed": true}
		},
		errorShape: codeShape("error", "msg"),
	},
	{
		name: "onboarding", method: "POST", path: "/onboarding/provision/standalone/users", ok: http.StatusOK, missingOK: true,
		headers: func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} },
		body: func(_ string, n int) any {
			return []any{map[string]any{"email": fmt.Sprintf("onboarding%d@example.com", n), "firstName": "New",
				"lastName": "User", "roles": []any{"Scheduler"}}}
		},
		errorShape: codeShape("errorType", "message"),
	},
}

// TestCompatContentType: a compatibility route reads a body as JSON only when its
// Content-Type can be JSON (application/json or a +json type, in UTF-8, RFC 8259
// §8.1); text/plain, a form encoding or UTF-16 is 415 in the family's own error
// shape, and nothing is written. A body without Content-Type is read where the
// vendor's document shows its requests without the header (admin, onboarding) and
// refused where the vendor's examples send it (partner, platform, superuser).
func TestCompatContentType(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		n := 0
		for _, f := range contentTypeFamilies {
			t.Run(f.name, func(t *testing.T) {
				send := func(contentType string, body string) (int, http.Header, map[string]any, string) {
					t.Helper()
					hdr := []string{}
					for k, v := range f.headers(e.token) {
						hdr = append(hdr, k, v)
					}
					req := e.newRequest(t, f.method, f.path, body, contentType, "", hdr...)
					if contentType == "" {
						req.Header.Del("Content-Type")
					}
					status, header, raw := roundTrip(t, req)
					var m map[string]any
					_ = json.Unmarshal(raw, &m)
					return status, header, m, string(raw)
				}
				jsonBody := func() string {
					n++
					b, err := json.Marshal(f.body(e.token, n))
					if err != nil {
						t.Fatal(err)
					}
					return string(b)
				}
				refused := []string{"text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
					"multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/xml", "json"}
				if !f.missingOK {
					refused = append(refused, "")
				}
				for _, ct := range refused {
					status, header, body, raw := send(ct, jsonBody())
					if status != http.StatusUnsupportedMediaType {
						t.Errorf("Content-Type %q: status %d, want 415; body %s", ct, status, raw)
						continue
					}
					f.errorShape(t, header, body)
				}
				// A form-encoded body as a form client sends it.
				if status, header, body, raw := send("application/x-www-form-urlencoded", "email=ann%40example.com"); status != http.StatusUnsupportedMediaType {
					t.Errorf("form body: status %d, want 415; body %s", status, raw)
				} else {
					f.errorShape(t, header, body)
				}
				accepted := []string{"application/json", "application/json; charset=utf-8", "Application/JSON; charset=\"UTF-8\"", "application/scim+json"}
				if f.missingOK {
					accepted = append(accepted, "")
				}
				for _, ct := range accepted {
					if status, _, _, raw := send(ct, jsonBody()); status != f.ok {
						t.Errorf("Content-Type %q: status %d, want %d; body %s", ct, status, f.ok, raw)
					}
				}
			})
		}
		// Only the accepted requests made users.
		var want float64
		for _, f := range contentTypeFamilies {
			want += 4
			if f.missingOK {
				want++
			}
		}
		if got := adminCount(t, e); got != want {
			t.Errorf("%v users, want %v: a refused body wrote a user", got, want)
		}
	})
}
