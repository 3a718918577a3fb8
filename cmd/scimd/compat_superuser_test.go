package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// The superuser management family (compat/CONTRACT.md, superuser.*) over real HTTP and real databases.

// superuserTenant is a tenant with the credentials the tests use.
type superuserTenant struct {
	name, id string
	key      string // admin scope, 32 characters (scimd token create --format key32)
	noAdmin  string // scim and compat, no admin
	sandbox  string // admin, sandbox
	scim     string // scim scope, for read-backs through /scim/v2
}

func superuserNewTenant(t *testing.T, e *env, name string) superuserTenant {
	t.Helper()
	ctx := context.Background()
	tn, err := e.tokens.CreateTenant(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(o scim.TokenOptions) string {
		t.Helper()
		s, err := e.tokens.Issue(ctx, name, o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	st := superuserTenant{name: name, id: tn.ID,
		key:     issue(scim.TokenOptions{Scopes: []string{scim.ScopeAdmin}, Key32: true}),
		noAdmin: issue(scim.TokenOptions{Scopes: []string{scim.ScopeSCIM, scim.ScopeCompat}, Key32: true}),
		sandbox: issue(scim.TokenOptions{Scopes: []string{scim.ScopeAdmin}, Key32: true, Sandbox: true}),
		scim:    issue(scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}}),
	}
	if len(st.key) != 32 {
		t.Fatalf("key32 key %q has %d characters", st.key, len(st.key))
	}
	return st
}

// superuserResp is a compat response: the raw body and its JSON, whatever the
// Content-Type.
type superuserResp struct {
	status int
	header http.Header
	raw    string
	body   any
}

// superuserDo sends body (a string, sent as is) with no Authorization header.
func superuserDo(t *testing.T, e *env, method, path, body string) superuserResp {
	t.Helper()
	var b any
	if body != "" {
		b = body
	}
	status, header, raw := roundTrip(t, e.newRequest(t, method, path, b, "application/json", ""))
	r := superuserResp{status: status, header: header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: the response is not JSON: %v\n%s", method, path, err, raw)
		}
	}
	return r
}

// superuserPost posts v as JSON.
func superuserPost(t *testing.T, e *env, path string, v any) superuserResp {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return superuserDo(t, e, http.MethodPost, path, string(raw))
}

// wantError checks the family's error shape {"error": code, "msg": text}.
func (r superuserResp) wantError(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	m, _ := r.body.(map[string]any)
	if m["error"] != code {
		t.Errorf("error %v, want %q; body %s", m["error"], code, r.raw)
	}
	if msg, _ := m["msg"].(string); msg == "" {
		t.Errorf("error without msg: %s", r.raw)
	}
	if len(m) != 2 {
		t.Errorf("error body has keys besides error and msg: %s", r.raw)
	}
}

func (r superuserResp) want(t *testing.T, status int) superuserResp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	return r
}

// superuserGivenUser is a user a test or golden case starts with.
type superuserGivenUser struct {
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	// Group names a Group the user is a member of (created on first use).
	Group string `json:"group,omitempty"`
}

// superuserGiven creates users (through the SCIM service, as any client could) and
// the groups they belong to; it returns the users' ids by email.
func superuserGiven(t *testing.T, e *env, tenantID string, users []superuserGivenUser) map[string]string {
	t.Helper()
	ctx := context.Background()
	ids := map[string]string{}
	groups := map[string][]any{}
	var order []string
	for _, u := range users {
		r, err := e.svc.Create(ctx, tenantID, scim.UserKind, map[string]any{
			"schemas":  []any{"urn:ietf:params:scim:schemas:core:2.0:User"},
			"userName": u.Email,
			"name":     map[string]any{"givenName": u.FirstName, "familyName": u.LastName},
			"emails":   []any{map[string]any{"value": u.Email, "type": "work", "primary": true}},
		}, scim.Projection{})
		if err != nil {
			t.Fatalf("given user %s: %v", u.Email, err)
		}
		ids[u.Email] = r.ID
		if u.Group != "" {
			if _, ok := groups[u.Group]; !ok {
				order = append(order, u.Group)
			}
			groups[u.Group] = append(groups[u.Group], map[string]any{"value": r.ID})
		}
	}
	for _, g := range order {
		superuserGroup(t, e, tenantID, g, groups[g]...)
	}
	return ids
}

// superuserGroup creates a group with the given members ({"value": id}).
func superuserGroup(t *testing.T, e *env, tenantID, name string, members ...any) string {
	t.Helper()
	r, err := e.svc.Create(context.Background(), tenantID, scim.GroupKind, map[string]any{
		"schemas":     []any{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": name,
		"members":     members,
	}, scim.Projection{})
	if err != nil {
		t.Fatalf("group %s: %v", name, err)
	}
	return r.ID
}

// superuserSCIMUser reads a user back through /scim/v2 by userName; nil when there is
// none.
func superuserSCIMUser(t *testing.T, e *env, token, userName string) map[string]any {
	t.Helper()
	r := e.callAs(token, http.MethodGet, "/scim/v2/Users?filter="+url.QueryEscape("userName eq "+strconv.Quote(userName)), nil).want(t, http.StatusOK)
	list, _ := r.body["Resources"].([]any)
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0].(map[string]any)
	}
	t.Fatalf("%d users named %s", len(list), userName)
	return nil
}

// superuserCase is one golden case in testdata/compat/superuser.
type superuserCase struct {
	Description string `json:"description"`
	// Rules are the ids of the compat/CONTRACT.md rules the case checks (required).
	Rules []string `json:"rules"`
	Given struct {
		Users []superuserGivenUser `json:"users"`
	} `json:"given"`
	Request struct {
		Method string `json:"method"`
		// Path may carry a query; $KEY, $NOADMIN_KEY and $SANDBOX_KEY stand for the
		// tenant's keys, here and in the body.
		Path    string          `json:"path"`
		Body    json.RawMessage `json:"body,omitempty"`
		RawBody *string         `json:"rawBody,omitempty"`
	} `json:"request"`
	Response struct {
		Status int `json:"status"`
		// Body is the expected subset of the reply (see matchJSON), or with ExactBody
		// the whole reply. A 204 must have no body.
		Body      json.RawMessage `json:"body,omitempty"`
		ExactBody bool            `json:"exactBody,omitempty"`
	} `json:"response"`
	// Users are read back through /scim/v2 after the call, by userName: the expected
	// subset of the SCIM User, or null when no such user may exist.
	Users map[string]json.RawMessage `json:"users,omitempty"`
	// Outbox, when present, is every message of the tenant after the call, in order:
	// each an expected subset of {"kind", "recipient", "payload"}.
	Outbox *[]json.RawMessage `json:"outbox,omitempty"`
}

func superuserLoadCase(t *testing.T, path string) superuserCase {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var c superuserCase
	if err := d.Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if c.Description == "" || c.Request.Method == "" || !strings.HasPrefix(c.Request.Path, "/") || c.Response.Status == 0 {
		t.Fatalf("%s: a case needs description, request.method, request.path and response.status", path)
	}
	if err := checkContractRules(c.Rules); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if c.Request.Body != nil && c.Request.RawBody != nil {
		t.Fatalf("%s: give body or rawBody, not both", path)
	}
	return c
}

// superuserJSON decodes raw into a generic value.
func superuserJSON(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return v
}

func TestSuperuserGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "compat", "superuser", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no golden cases in testdata/compat/superuser")
	}
	sort.Strings(paths)
	forEachBackend(t, func(t *testing.T, e *env) {
		for i, p := range paths {
			name := strings.TrimSuffix(filepath.Base(p), ".json")
			t.Run(name, func(t *testing.T) {
				c := superuserLoadCase(t, p)
				tn := superuserNewTenant(t, e, fmt.Sprintf("superuser-golden-%d", i))
				superuserGiven(t, e, tn.id, c.Given.Users)
				subst := strings.NewReplacer("$KEY", tn.key, "$NOADMIN_KEY", tn.noAdmin, "$SANDBOX_KEY", tn.sandbox)
				body := ""
				switch {
				case c.Request.RawBody != nil:
					body = *c.Request.RawBody
				case c.Request.Body != nil:
					body = string(c.Request.Body)
				}
				r := superuserDo(t, e, c.Request.Method, subst.Replace(c.Request.Path), subst.Replace(body))
				if r.status != c.Response.Status {
					t.Errorf("status %d, want %d; body %s", r.status, c.Response.Status, r.raw)
				}
				switch {
				case r.status == http.StatusNoContent:
					if r.raw != "" {
						t.Errorf("a 204 has no body, got %q", r.raw)
					}
				case c.Response.Body != nil:
					if ct := r.header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type %q, want application/json", ct)
					}
					want := superuserJSON(t, c.Response.Body)
					if c.Response.ExactBody {
						if !reflect.DeepEqual(want, r.body) {
							t.Errorf("body %s, want exactly %s", r.raw, c.Response.Body)
						}
					} else {
						for _, d := range matchJSON("$", want, r.body) {
							t.Error(d)
						}
					}
				}
				for _, userName := range sortedKeys(c.Users) {
					got := superuserSCIMUser(t, e, tn.scim, userName)
					want := superuserJSON(t, c.Users[userName])
					switch {
					case want == nil && got != nil:
						t.Errorf("user %s: want none, got %v", userName, got)
					case want != nil && got == nil:
						t.Errorf("user %s: not found through /scim/v2", userName)
					case want != nil:
						for _, d := range matchJSON("user "+userName, want, got) {
							t.Error(d)
						}
					}
				}
				if c.Outbox != nil {
					msgs, err := e.st.Outbox(context.Background(), tn.id)
					if err != nil {
						t.Fatal(err)
					}
					got := make([]any, len(msgs))
					for i, m := range msgs {
						got[i] = map[string]any{"kind": m.Kind, "recipient": m.Recipient, "status": m.Status, "payload": superuserJSON(t, m.Payload)}
					}
					want := make([]any, len(*c.Outbox))
					for i, m := range *c.Outbox {
						want[i] = superuserJSON(t, m)
					}
					for _, d := range matchJSON("outbox", want, got) {
						t.Error(d)
					}
				}
			})
		}
	})
}

// TestSuperuserCreateReadBack proves a create_user call makes the SCIM User the vendor
// call meant, with its password and its verification message.
func TestSuperuserCreateReadBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tn := superuserNewTenant(t, e, "acme")
		for _, tc := range []struct {
			name      string
			confirmed any // nil: field left out
			verified  bool
		}{
			{"unconfirmed_default", nil, false},
			{"unconfirmed_false", false, false},
			{"confirmed", true, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				email := "ann." + tc.name + "@example.com"
				body := map[string]any{"key": tn.key, "email": "  Ann." + strings.ToUpper(tc.name) + "@Example.com", "first_name": "Ann",
					"last_name": "Lee", "password": "pässwörd"} // 8 characters, 10 bytes
				if tc.confirmed != nil {
					body["email_confirmed"] = tc.confirmed
				}
				before, err := e.st.Outbox(ctx, tn.id)
				if err != nil {
					t.Fatal(err)
				}
				r := superuserPost(t, e, "/api/v1/create_user", body).want(t, http.StatusCreated)
				if r.raw != "{}" || r.header.Get("Content-Type") != "application/json" {
					t.Errorf("reply %q (%s), want {} as application/json", r.raw, r.header.Get("Content-Type"))
				}
				u := superuserSCIMUser(t, e, tn.scim, email)
				if u == nil {
					t.Fatal("user not found through /scim/v2")
				}
				want := map[string]any{
					"userName":           email,
					"active":             true,
					"name":               map[string]any{"givenName": "Ann", "familyName": "Lee"},
					"emails":             []any{map[string]any{"value": email, "type": "work", "primary": true}},
					"schemas":            map[string]any{"$contains": []any{"urn:ietf:params:scim:schemas:core:2.0:User", schemas.ScimdUserURN}},
					schemas.ScimdUserURN: map[string]any{"emailVerified": tc.verified},
					"password":           map[string]any{"$absent": true},
				}
				for _, d := range matchJSON("user", want, u) {
					t.Error(d)
				}
				// The extension is filterable like any other attribute.
				f := schemas.ScimdUserURN + ":emailVerified eq " + strconv.FormatBool(tc.verified) + " and userName eq " + strconv.Quote(email)
				lr := e.callAs(tn.scim, http.MethodGet, "/scim/v2/Users?filter="+url.QueryEscape(f), nil).want(t, http.StatusOK)
				if lr.body["totalResults"] != float64(1) {
					t.Errorf("filter %s: %v", f, lr.raw)
				}
				var hash string
				if err := e.st.DB().Raw(`SELECT password_hash FROM users WHERE tenant_id = ? AND id = ?`, tn.id, str(u, "id")).Scan(&hash).Error; err != nil {
					t.Fatal(err)
				}
				if bcrypt.CompareHashAndPassword([]byte(hash), []byte("pässwörd")) != nil {
					t.Errorf("the stored hash %q does not match the password", hash)
				}
				after, err := e.st.Outbox(ctx, tn.id)
				if err != nil {
					t.Fatal(err)
				}
				added := after[len(before):]
				if tc.verified {
					if len(added) != 0 {
						t.Errorf("a confirmed account queued %d messages: %+v", len(added), added)
					}
					return
				}
				if len(added) != 1 {
					t.Fatalf("queued %d messages, want 1 verify_email: %+v", len(added), added)
				}
				m := added[0]
				if m.Kind != "verify_email" || m.Recipient != email || m.UserID != str(u, "id") || m.Status != "pending" {
					t.Errorf("message %+v, want verify_email to %s for user %s, pending", m, email, str(u, "id"))
				}
				var payload map[string]any
				if err := json.Unmarshal(m.Payload, &payload); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(payload, map[string]any{"email": email, "first_name": "Ann", "last_name": "Lee"}) {
					t.Errorf("payload %s", m.Payload)
				}
			})
		}
	})
}

// TestSuperuserAuth covers the key in the body and in the query: 401, 403, sandbox,
// a disabled family, and that no other credential is read.
func TestSuperuserAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tn := superuserNewTenant(t, e, "acme")
		superuserGiven(t, e, tn.id, []superuserGivenUser{{Email: "del@example.com"}})
		create := func(key any) map[string]any {
			m := map[string]any{"email": "new@example.com", "first_name": "N", "last_name": "U", "password": "12345678"}
			if key != nil {
				m["key"] = key
			}
			return m
		}
		revoked := func() string {
			// A key bound to a user, then revoked with the user's tokens.
			ids := superuserGiven(t, e, tn.id, []superuserGivenUser{{Email: "holder@example.com"}})
			k, err := e.tokens.Issue(ctx, tn.name, scim.TokenOptions{Scopes: []string{scim.ScopeAdmin}, UserID: ids["holder@example.com"], Key32: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.tokens.RevokeUser(ctx, tn.id, ids["holder@example.com"]); err != nil {
				t.Fatal(err)
			}
			return k
		}()
		for _, tc := range []struct {
			name         string
			method, path string
			body         any // JSON value, or string sent as is
			status       int
			code         string
		}{
			{"create/no_key", "POST", "/api/v1/create_user", create(nil), 401, "unauthorized"},
			{"create/empty_key", "POST", "/api/v1/create_user", create(""), 401, "unauthorized"},
			{"create/null_key", "POST", "/api/v1/create_user", `{"key": null, "email": "new@example.com", "password": "12345678"}`, 401, "unauthorized"},
			{"create/unknown_key", "POST", "/api/v1/create_user", create("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 401, "unauthorized"},
			{"create/revoked_key", "POST", "/api/v1/create_user", create(revoked), 401, "unauthorized"},
			{"create/key_not_string", "POST", "/api/v1/create_user", create(12345), 400, "invalid_request"},
			{"create/malformed_json_no_key", "POST", "/api/v1/create_user", `{"email": "new@example.com"`, 400, "invalid_json"},
			{"create/no_admin_scope", "POST", "/api/v1/create_user", create(tn.noAdmin), 403, "forbidden"},
			{"create/sandbox", "POST", "/api/v1/create_user", create(tn.sandbox), 403, "forbidden"},
			{"create/unauthenticated_bad_fields", "POST", "/api/v1/create_user", `{"email": 5, "password": "x"}`, 401, "unauthorized"},
			{"delete/no_key", "POST", "/api/v1/delete_user", map[string]any{"email": "del@example.com"}, 401, "unauthorized"},
			{"delete/key_in_query", "POST", "/api/v1/delete_user?key=" + tn.key, map[string]any{"email": "del@example.com"}, 401, "unauthorized"},
			{"delete/no_admin_scope", "POST", "/delete_user", map[string]any{"key": tn.noAdmin, "email": "del@example.com"}, 403, "forbidden"},
			{"delete/sandbox", "POST", "/delete_user", map[string]any{"key": tn.sandbox, "email": "del@example.com"}, 403, "forbidden"},
			{"nonteam/no_key", "GET", "/api/v1/user/nonteam", nil, 401, "unauthorized"},
			{"nonteam/unknown_key", "GET", "/api/v1/user/nonteam?key=nope", nil, 401, "unauthorized"},
			{"nonteam/no_admin_scope", "GET", "/api/v1/user/nonteam?key=" + tn.noAdmin, nil, 403, "forbidden"},
			{"count/key_in_body", "GET", "/api/v1/user/count", map[string]any{"key": tn.key}, 401, "unauthorized"},
			{"count/no_admin_scope", "GET", "/api/v1/user/count?key=" + tn.noAdmin, nil, 403, "forbidden"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var body string
				switch b := tc.body.(type) {
				case nil:
				case string:
					body = b
				default:
					raw, _ := json.Marshal(b)
					body = string(raw)
				}
				superuserDo(t, e, tc.method, tc.path, body).wantError(t, tc.status, tc.code)
			})
		}
		t.Run("bearer_header_is_not_read", func(t *testing.T) {
			r := e.callAs(tn.key, http.MethodGet, "/api/v1/user/count", nil)
			if r.status != http.StatusUnauthorized {
				t.Errorf("status %d, want 401: %s", r.status, r.raw)
			}
		})
		t.Run("sandbox_reads_reports", func(t *testing.T) {
			superuserDo(t, e, "GET", "/api/v1/user/count?key="+tn.sandbox, "").want(t, http.StatusOK)
			superuserDo(t, e, "GET", "/api/v1/user/nonteam?key="+url.QueryEscape(tn.sandbox), "").want(t, http.StatusOK)
		})
		t.Run("refused_calls_changed_nothing", func(t *testing.T) {
			if superuserSCIMUser(t, e, tn.scim, "new@example.com") != nil {
				t.Error("a refused create_user made a user")
			}
			if superuserSCIMUser(t, e, tn.scim, "del@example.com") == nil {
				t.Error("a refused delete_user deleted the user")
			}
		})
		t.Run("family_disabled", func(t *testing.T) {
			if _, err := e.tokens.SetTenant(ctx, tn.name, []string{"family.superuser=disabled"}); err != nil {
				t.Fatal(err)
			}
			superuserDo(t, e, "GET", "/api/v1/user/count?key="+tn.key, "").wantError(t, 404, "not_found")
			superuserPost(t, e, "/create_user", create(tn.key)).wantError(t, 404, "not_found")
			if _, err := e.tokens.SetTenant(ctx, tn.name, []string{"family.superuser=enabled"}); err != nil {
				t.Fatal(err)
			}
			superuserDo(t, e, "GET", "/api/v1/user/count?key="+tn.key, "").want(t, http.StatusOK)
		})
	})
}

// TestSuperuserBadInput: malformed JSON, wrong types and invalid values are 400 (never
// 500), and leave nothing behind.
func TestSuperuserBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tn := superuserNewTenant(t, e, "acme")
		k, _ := json.Marshal(tn.key)
		key := string(k)
		ok := `"email": "ok@example.com", "first_name": "O", "last_name": "K", "password": "12345678"`
		for _, tc := range []struct {
			name, path, body string
			status           int
			code             string
		}{
			{"empty_body", "/api/v1/create_user", "", 400, "invalid_json"},
			{"truncated", "/api/v1/create_user", `{"key": ` + key + `, ` + ok, 400, "invalid_json"},
			{"not_json", "/api/v1/create_user", `key=` + tn.key + `&email=ok@example.com`, 400, "invalid_json"},
			{"array", "/api/v1/create_user", `[{"key": ` + key + `}]`, 400, "invalid_request"},
			{"string", "/api/v1/create_user", `"hello"`, 400, "invalid_request"},
			{"null", "/api/v1/create_user", `null`, 400, "invalid_request"},
			{"trailing_data", "/api/v1/create_user", `{"key": ` + key + `, ` + ok + `} {}`, 400, "invalid_json"},
			{"email_number", "/api/v1/create_user", `{"key": ` + key + `, "email": 42, "password": "12345678"}`, 400, "invalid_request"},
			{"first_name_object", "/api/v1/create_user", `{"key": ` + key + `, "email": "ok@example.com", "first_name": {"a": 1}, "last_name": "K", "password": "12345678"}`, 400, "invalid_request"},
			{"last_name_array", "/api/v1/create_user", `{"key": ` + key + `, "email": "ok@example.com", "first_name": "O", "last_name": ["K"], "password": "12345678"}`, 400, "invalid_request"},
			{"password_number", "/api/v1/create_user", `{"key": ` + key + `, "email": "ok@example.com", "password": 12345678}`, 400, "invalid_request"},
			{"email_confirmed_string", "/api/v1/create_user", `{"key": ` + key + `, ` + ok + `, "email_confirmed": "true"}`, 400, "invalid_request"},
			{"email_confirmed_number", "/api/v1/create_user", `{"key": ` + key + `, ` + ok + `, "email_confirmed": 1}`, 400, "invalid_request"},
			{"missing_email", "/api/v1/create_user", `{"key": ` + key + `, "password": "12345678"}`, 400, "invalid_email"},
			{"bad_email", "/api/v1/create_user", `{"key": ` + key + `, "email": "not an email", "password": "12345678"}`, 400, "invalid_email"},
			{"long_email", "/api/v1/create_user", `{"key": ` + key + `, "email": "` + strings.Repeat("a", 250) + `@example.com", "password": "12345678"}`, 400, "invalid_email"},
			{"missing_password", "/api/v1/create_user", `{"key": ` + key + `, "email": "ok@example.com"}`, 400, "invalid_password"},
			{"short_password", "/api/v1/create_user", `{"key": ` + key + `, "email": "ok@example.com", "password": "seven77"}`, 400, "invalid_password"},
			{"short_unicode_password", "/api/v1/create_user", `{"key": ` + key + `, "email": "ok@example.com", "password": "äöüäöüä"}`, 400, "invalid_password"},
			{"password_over_72_bytes", "/api/v1/create_user", `{"key": ` + key + `, "email": "ok@example.com", "password": "` + strings.Repeat("p", 73) + `"}`, 400, "invalid_password"},
			{"delete/empty_body", "/api/v1/delete_user", "", 400, "invalid_json"},
			{"delete/malformed", "/api/v1/delete_user", `{"key": ` + key + `, "email": `, 400, "invalid_json"},
			{"delete/email_number", "/api/v1/delete_user", `{"key": ` + key + `, "email": 1}`, 400, "invalid_request"},
			{"delete/missing_email", "/api/v1/delete_user", `{"key": ` + key + `}`, 400, "invalid_email"},
			{"delete/bad_email", "/api/v1/delete_user", `{"key": ` + key + `, "email": "@@"}`, 400, "invalid_email"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				superuserDo(t, e, http.MethodPost, tc.path, tc.body).wantError(t, tc.status, tc.code)
			})
		}
		t.Run("too_large", func(t *testing.T) {
			big := `{"key": ` + key + `, ` + ok + `, "padding": "` + strings.Repeat("x", 70<<10) + `"}`
			superuserDo(t, e, http.MethodPost, "/api/v1/create_user", big).wantError(t, http.StatusRequestEntityTooLarge, "payload_too_large")
		})
		t.Run("nothing_left_behind", func(t *testing.T) {
			lr := e.callAs(tn.scim, http.MethodGet, "/scim/v2/Users", nil).want(t, http.StatusOK)
			if lr.body["totalResults"] != float64(0) {
				t.Errorf("refused calls created users: %s", lr.raw)
			}
			msgs, err := e.st.Outbox(ctx, tn.id)
			if err != nil || len(msgs) != 0 {
				t.Errorf("refused calls queued messages: %+v %v", msgs, err)
			}
		})
		t.Run("unknown_fields_and_nulls_are_ignored", func(t *testing.T) {
			superuserDo(t, e, http.MethodPost, "/api/v1/create_user",
				`{"key": `+key+`, `+ok+`, "email_confirmed": null, "team": "x"}`).want(t, http.StatusCreated)
			u := superuserSCIMUser(t, e, tn.scim, "ok@example.com")
			if v, _ := u[schemas.ScimdUserURN].(map[string]any); v["emailVerified"] != false {
				t.Errorf("email_confirmed null: %v", u[schemas.ScimdUserURN])
			}
		})
		t.Run("names_are_optional", func(t *testing.T) {
			superuserDo(t, e, http.MethodPost, "/api/v1/create_user",
				`{"key": `+key+`, "email": "mono@example.com", "first_name": " Cher ", "password": "12345678", "email_confirmed": true}`).want(t, http.StatusCreated)
			u := superuserSCIMUser(t, e, tn.scim, "mono@example.com")
			if !reflect.DeepEqual(u["name"], map[string]any{"givenName": "Cher"}) {
				t.Errorf("name %v", u["name"])
			}
		})
	})
}

// TestSuperuserConflict: an existing email is 409 whatever its case, and the call
// queues nothing.
func TestSuperuserConflict(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tn := superuserNewTenant(t, e, "acme")
		body := map[string]any{"key": tn.key, "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "password": "12345678"}
		superuserPost(t, e, "/api/v1/create_user", body).want(t, http.StatusCreated)
		body["email"] = "ANN@example.com"
		body["first_name"] = "Other"
		superuserPost(t, e, "/create_user", body).wantError(t, http.StatusConflict, "user_exists")
		msgs, err := e.st.Outbox(context.Background(), tn.id)
		if err != nil || len(msgs) != 1 {
			t.Errorf("outbox after a conflict: %+v %v (want only the first message)", msgs, err)
		}
		u := superuserSCIMUser(t, e, tn.scim, "ann@example.com")
		if str(u, "name.givenName") != "Ann" {
			t.Errorf("the conflict changed the user: %v", u["name"])
		}
	})
}

// TestSuperuserDelete: the SCIM user and its memberships are gone; a second delete is
// 404.
func TestSuperuserDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tn := superuserNewTenant(t, e, "acme")
		ids := superuserGiven(t, e, tn.id, []superuserGivenUser{{Email: "ann@example.com", Group: "Team"}, {Email: "bob@example.com", Group: "Team"}})
		r := superuserPost(t, e, "/api/v1/delete_user", map[string]any{"key": tn.key, "email": " ANN@example.com"}).want(t, http.StatusNoContent)
		if r.raw != "" {
			t.Errorf("204 with body %q", r.raw)
		}
		e.callAs(tn.scim, http.MethodGet, "/scim/v2/Users/"+ids["ann@example.com"], nil).want(t, http.StatusNotFound)
		g := e.callAs(tn.scim, http.MethodGet, "/scim/v2/Groups?filter="+url.QueryEscape(`displayName eq "Team"`), nil).want(t, http.StatusOK)
		members, _ := g.body["Resources"].([]any)[0].(map[string]any)["members"].([]any)
		if len(members) != 1 || str(members[0].(map[string]any), "value") != ids["bob@example.com"] {
			t.Errorf("members after the delete: %v", members)
		}
		superuserPost(t, e, "/delete_user", map[string]any{"key": tn.key, "email": "ann@example.com"}).wantError(t, http.StatusNotFound, "user_not_found")
		c := superuserDo(t, e, "GET", "/api/v1/user/count?key="+tn.key, "").want(t, http.StatusOK)
		if !reflect.DeepEqual(c.body, map[string]any{"user_count": float64(1), "team_user_count": float64(1)}) {
			t.Errorf("count after the delete: %s", c.raw)
		}
	})
}

// TestSuperuserTenants: nothing of one tenant is visible to or changeable by another.
func TestSuperuserTenants(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		a := superuserNewTenant(t, e, "acme")
		b := superuserNewTenant(t, e, "bravo")
		superuserGiven(t, e, a.id, []superuserGivenUser{{Email: "ann@example.com", FirstName: "Ann"}, {Email: "team@example.com", Group: "A"}})
		superuserPost(t, e, "/api/v1/delete_user", map[string]any{"key": b.key, "email": "ann@example.com"}).wantError(t, http.StatusNotFound, "user_not_found")
		if superuserSCIMUser(t, e, a.scim, "ann@example.com") == nil {
			t.Fatal("another tenant's key deleted the user")
		}
		// The same email is a different user in another tenant.
		superuserPost(t, e, "/api/v1/create_user", map[string]any{"key": b.key, "email": "ann@example.com", "first_name": "Other", "password": "12345678"}).want(t, http.StatusCreated)
		if n := str(superuserSCIMUser(t, e, a.scim, "ann@example.com"), "name.givenName"); n != "Ann" {
			t.Errorf("tenant a's user changed: givenName %q", n)
		}
		c := superuserDo(t, e, "GET", "/api/v1/user/count?key="+b.key, "").want(t, http.StatusOK)
		if !reflect.DeepEqual(c.body, map[string]any{"user_count": float64(1), "team_user_count": float64(0)}) {
			t.Errorf("tenant b's count: %s", c.raw)
		}
		n := superuserDo(t, e, "GET", "/api/v1/user/nonteam?key="+b.key, "").want(t, http.StatusOK)
		for _, d := range matchJSON("$", map[string]any{"users": []any{map[string]any{"login_email": "ann@example.com", "first_name": "Other", "last_name": ""}}}, n.body) {
			t.Error(d)
		}
	})
}

var superuserRFC1123GMT = regexp.MustCompile(`^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$`)

// TestSuperuserNonteamPaging reads more users than one service page holds, in
// creation order, with created_at in RFC 1123 GMT form equal to meta.created.
func TestSuperuserNonteamPaging(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			e := newEnv(t, b, scimhttp.Options{MaxBodyBytes: 64 << 10}, func(l *scim.Limits) { l.MaxResults = 2 })
			tn := superuserNewTenant(t, e, "acme")
			var given []superuserGivenUser
			var want []string
			for i := range 7 {
				u := superuserGivenUser{Email: fmt.Sprintf("u%d@example.com", i), FirstName: fmt.Sprintf("First%d", i), LastName: fmt.Sprintf("Last%d", i)}
				if i%3 == 1 {
					u.Group = "Team"
				} else {
					want = append(want, u.Email)
				}
				given = append(given, u)
			}
			ids := superuserGiven(t, e, tn.id, given)
			// A user in a group nested in another is still in a group; a group in no
			// group changes nothing.
			superuserGroup(t, e, tn.id, "Outer", map[string]any{"value": superuserGroup(t, e, tn.id, "Inner", map[string]any{"value": ids["u6@example.com"]})})
			want = want[:len(want)-1] // u6
			r := superuserDo(t, e, "GET", "/api/v1/user/nonteam?key="+tn.key, "").want(t, http.StatusOK)
			users, _ := r.body.(map[string]any)["users"].([]any)
			var got []string
			for _, it := range users {
				u := it.(map[string]any)
				got = append(got, u["login_email"].(string))
				i := strings.TrimSuffix(strings.TrimPrefix(u["login_email"].(string), "u"), "@example.com")
				if u["first_name"] != "First"+i || u["last_name"] != "Last"+i {
					t.Errorf("entry %v", u)
				}
				ca, _ := u["created_at"].(string)
				if !superuserRFC1123GMT.MatchString(ca) {
					t.Errorf("created_at %q is not like \"Wed, 07 Oct 2020 21:15:47 GMT\"", ca)
				}
				at, err := http.ParseTime(ca)
				if err != nil {
					t.Fatal(err)
				}
				s := superuserSCIMUser(t, e, tn.scim, u["login_email"].(string))
				created, err := time.Parse(time.RFC3339Nano, str(s, "meta.created"))
				if err != nil {
					t.Fatal(err)
				}
				if !at.Equal(created.Truncate(time.Second)) {
					t.Errorf("created_at %s, meta.created %s", ca, str(s, "meta.created"))
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("nonteam users %v, want %v", got, want)
			}
			c := superuserDo(t, e, "GET", "/api/v1/user/count?key="+tn.key, "").want(t, http.StatusOK)
			if !reflect.DeepEqual(c.body, map[string]any{"user_count": float64(7), "team_user_count": float64(3)}) {
				t.Errorf("count %s", c.raw)
			}
		})
	}
}

// TestSuperuserCount: a user in several groups counts once; inactive users count.
func TestSuperuserCount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tn := superuserNewTenant(t, e, "acme")
		empty := superuserDo(t, e, "GET", "/api/v1/user/count?key="+tn.key, "").want(t, http.StatusOK)
		if empty.raw != `{"team_user_count":0,"user_count":0}` {
			t.Errorf("empty tenant: %s", empty.raw)
		}
		n := superuserDo(t, e, "GET", "/api/v1/user/nonteam?key="+tn.key, "").want(t, http.StatusOK)
		if n.raw != `{"users":[]}` {
			t.Errorf("empty nonteam: %s", n.raw)
		}
		ids := superuserGiven(t, e, tn.id, []superuserGivenUser{{Email: "a@example.com", Group: "G1"}, {Email: "b@example.com"}, {Email: "c@example.com"}})
		superuserGroup(t, e, tn.id, "G2", map[string]any{"value": ids["a@example.com"]})
		e.callAs(tn.scim, http.MethodPatch, "/scim/v2/Users/"+ids["c@example.com"], patchBody(op("replace", "active", false))).want(t, http.StatusOK)
		c := superuserDo(t, e, "GET", "/api/v1/user/count?key="+tn.key, "").want(t, http.StatusOK)
		if !reflect.DeepEqual(c.body, map[string]any{"user_count": float64(3), "team_user_count": float64(1)}) {
			t.Errorf("count %s", c.raw)
		}
	})
}

// TestSuperuserMethodNotAllowed: another method on a route's path is 405 in the
// family's shape with Allow.
func TestSuperuserMethodNotAllowed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, tc := range []struct{ method, path, allow string }{
			{"GET", "/api/v1/create_user", "POST"},
			{"PUT", "/create_user", "POST"},
			{"DELETE", "/api/v1/delete_user", "POST"},
			{"GET", "/delete_user", "POST"},
			{"POST", "/api/v1/user/nonteam", "GET, HEAD"},
			{"DELETE", "/api/v1/user/count", "GET, HEAD"},
		} {
			r := superuserDo(t, e, tc.method, tc.path, "")
			r.wantError(t, http.StatusMethodNotAllowed, "method_not_allowed")
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	})
}

// TestSuperuserInternalError: a failure inside the write is a 500 with a generic
// message and a logged error id, and leaves no half-written user behind (the user and
// its message commit together or not at all).
func TestSuperuserInternalError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tn := superuserNewTenant(t, e, "acme")
		// The outbox disappears: the user's insert succeeds, the message's fails.
		if err := e.st.DB().Exec(`ALTER TABLE outbox RENAME TO outbox_gone`).Error; err != nil {
			t.Fatal(err)
		}
		r := superuserPost(t, e, "/api/v1/create_user", map[string]any{"key": tn.key, "email": "ann@example.com", "password": "12345678"})
		r.wantError(t, http.StatusInternalServerError, "internal")
		msg := r.body.(map[string]any)["msg"].(string)
		m := regexp.MustCompile(`^internal error \(error id ([0-9a-f]{16})\)$`).FindStringSubmatch(msg)
		if m == nil {
			t.Fatalf("msg %q: want a generic message with an error id", msg)
		}
		logged := e.logs.FilterMessage("superuser request failed").FilterField(zap.String("error_id", m[1])).All()
		if len(logged) != 1 || logged[0].ContextMap()["request_id"] != r.header.Get("X-Request-Id") || logged[0].ContextMap()["error"] == "" {
			t.Errorf("want one error line with error_id %s, the request_id and the error; got %+v", m[1], logged)
		}
		if superuserSCIMUser(t, e, tn.scim, "ann@example.com") != nil {
			t.Error("a failed create_user left a user without its message")
		}
		// A confirmed account queues nothing, so it still works.
		superuserPost(t, e, "/api/v1/create_user", map[string]any{"key": tn.key, "email": "ann@example.com", "password": "12345678", "email_confirmed": true}).
			want(t, http.StatusCreated)
	})
}
