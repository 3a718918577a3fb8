package main

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/scimd/scimd/scim"
)

// bindToken issues a scim token of tenant bound to the user userID.
func (e *env) bindToken(tenant, userID string) (string, error) {
	e.t.Helper()
	return e.tokens.Issue(context.Background(), tenant, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}, UserID: userID})
}

// TestMe: /Me (RFC 7644 §3.11) is the token's user, served exactly as /Users/{id}.
func TestMe(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		id := str(e.call("POST", "/scim/v2/Users", user("alice@example.com", "displayName", "Alice")).want(t, http.StatusCreated).body, "id")
		users := "/scim/v2/Users/" + id
		me, err := e.bindToken(scim.DefaultTenant, id)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("unbound_token", func(t *testing.T) {
			for _, m := range []string{"GET", "PUT", "PATCH", "DELETE", "POST"} {
				var body any
				if m != "GET" && m != "DELETE" {
					body = user("alice@example.com")
				}
				r := e.call(m, "/scim/v2/Me", body)
				r.wantError(t, http.StatusNotImplemented, "")
				if d := str(r.body, "detail"); m != "POST" && !strings.Contains(d, "--user") {
					t.Errorf("%s /Me: detail %q does not say how to bind a user", m, d)
				}
			}
			e.call("GET", users, nil).want(t, http.StatusOK) // untouched
		})
		t.Run("post_not_offered", func(t *testing.T) {
			r := e.callAs(me, "POST", "/scim/v2/Me", user("bob@example.com"))
			r.wantError(t, http.StatusNotImplemented, "")
			if d := str(r.body, "detail"); !strings.Contains(d, "self-registration") {
				t.Errorf("detail %q", d)
			}
		})
		t.Run("get", func(t *testing.T) {
			r := e.callAs(me, "GET", "/scim/v2/Me", nil).want(t, http.StatusOK)
			if got := str(r.body, "meta.location"); got != e.srv.URL+users {
				t.Errorf("meta.location %q, want %q", got, e.srv.URL+users)
			}
			if r.header.Get("ETag") != `W/"1"` || r.header.Get("Content-Type") != "application/scim+json" {
				t.Errorf("ETag %q Content-Type %q", r.header.Get("ETag"), r.header.Get("Content-Type"))
			}
			if want := e.call("GET", users, nil).want(t, http.StatusOK); !reflect.DeepEqual(r.body, want.body) {
				t.Errorf("/Me differs from /Users/{id}:\n%s\n%s", r.raw, want.raw)
			}
			e.callAs(me, "GET", "/scim/v2/Me", nil, "If-None-Match", `W/"1"`).want(t, http.StatusNotModified)
		})
		t.Run("query_kept", func(t *testing.T) {
			const q = "?attributes=displayName"
			r := e.callAs(me, "GET", "/scim/v2/Me"+q, nil).want(t, http.StatusOK)
			if want := e.call("GET", users+q, nil).want(t, http.StatusOK); !reflect.DeepEqual(r.body, want.body) {
				t.Errorf("/Me%s differs from /Users/{id}%s:\n%s\n%s", q, q, r.raw, want.raw)
			}
		})
		t.Run("patch", func(t *testing.T) {
			r := e.callAs(me, "PATCH", "/scim/v2/Me", patchBody(op("replace", "displayName", "Ally"))).want(t, http.StatusOK)
			if r.header.Get("ETag") != `W/"2"` || r.body["displayName"] != "Ally" {
				t.Errorf("ETag %q, body %s", r.header.Get("ETag"), r.raw)
			}
			if got := e.call("GET", users, nil).want(t, http.StatusOK); got.body["displayName"] != "Ally" {
				t.Errorf("PATCH /Me did not change the user: %s", got.raw)
			}
		})
		t.Run("put", func(t *testing.T) {
			e.callAs(me, "PUT", "/scim/v2/Me", user("alice@example.com", "displayName", "Alice L.", "active", false), "If-Match", `W/"2"`).want(t, http.StatusOK)
			got := e.call("GET", users, nil).want(t, http.StatusOK)
			if got.body["displayName"] != "Alice L." || got.body["active"] != false || got.header.Get("ETag") != `W/"3"` {
				t.Errorf("PUT /Me did not replace the user: %s", got.raw)
			}
		})
		t.Run("errors_as_users", func(t *testing.T) {
			stale := []string{"If-Match", `W/"1"`}
			e.callAs(me, "PATCH", "/scim/v2/Me", patchBody(op("replace", "active", true)), stale...).wantError(t, http.StatusPreconditionFailed, "")
			e.callAs(me, "PUT", "/scim/v2/Me", user("alice@example.com"), stale...).wantError(t, http.StatusPreconditionFailed, "")
			e.callAs(me, "DELETE", "/scim/v2/Me", nil, stale...).wantError(t, http.StatusPreconditionFailed, "")
			e.callAs(me, "PATCH", "/scim/v2/Me", patchBody(op("replace", "nope", 1))).wantError(t, http.StatusBadRequest, "invalidPath")
			noUserName := map[string]any{"displayName": "no userName"}
			want := e.call("PUT", users, noUserName).want(t, http.StatusBadRequest)
			e.callAs(me, "PUT", "/scim/v2/Me", noUserName).wantError(t, http.StatusBadRequest, str(want.body, "scimType"))
			e.call("GET", users, nil, "If-None-Match", `W/"3"`).want(t, http.StatusNotModified) // unchanged
		})
		t.Run("delete", func(t *testing.T) {
			e.callAs(me, "DELETE", "/scim/v2/Me", nil, "If-Match", `W/"3"`).want(t, http.StatusNoContent)
			e.call("GET", users, nil).wantError(t, http.StatusNotFound, "")
			for _, m := range []string{"GET", "PATCH", "DELETE"} {
				var body any
				if m == "PATCH" {
					body = patchBody(op("replace", "active", true))
				}
				r := e.callAs(me, m, "/scim/v2/Me", body)
				r.wantError(t, http.StatusNotFound, "")
				if d := str(r.body, "detail"); !strings.Contains(d, "no longer exists") {
					t.Errorf("%s /Me after delete: detail %q", m, d)
				}
			}
		})
	})
}

// TestMeBinding: a token is bound only to a user of its own tenant, and /Me never
// reaches another tenant's users.
func TestMeBinding(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		other := e.newTenant("tenant-b", scim.ScopeSCIM)
		aID := str(e.call("POST", "/scim/v2/Users", user("same@example.com")).want(t, http.StatusCreated).body, "id")
		bID := str(e.callAs(other, "POST", "/scim/v2/Users", user("same@example.com")).want(t, http.StatusCreated).body, "id")
		for _, tc := range []struct {
			name, tenant, userID string
		}{
			{"other_tenants_user", "tenant-b", aID},
			{"missing_user", "tenant-b", "00000000-0000-4000-8000-000000000000"},
			{"group_id", scim.DefaultTenant, str(e.call("POST", "/scim/v2/Groups", map[string]any{"displayName": "g"}).want(t, http.StatusCreated).body, "id")},
		} {
			t.Run("refused/"+tc.name, func(t *testing.T) {
				_, err := e.bindToken(tc.tenant, tc.userID)
				if err == nil || scim.AsError(err).Kind != scim.KindNotFound || !strings.Contains(err.Error(), "no user with id") {
					t.Errorf("binding a token of %s to %s: %v", tc.tenant, tc.userID, err)
				}
			})
		}
		t.Run("isolated", func(t *testing.T) {
			me, err := e.bindToken("tenant-b", strings.ToUpper(bID)) // ids match in any case
			if err != nil {
				t.Fatal(err)
			}
			r := e.callAs(me, "GET", "/scim/v2/Me", nil).want(t, http.StatusOK)
			if str(r.body, "id") != bID {
				t.Errorf("/Me of tenant B's token is %s, want %s", str(r.body, "id"), bID)
			}
			e.callAs(me, "PATCH", "/scim/v2/Me", patchBody(op("replace", "displayName", "B"))).want(t, http.StatusOK)
			e.callAs(me, "GET", "/scim/v2/Users/"+aID, nil).wantError(t, http.StatusNotFound, "")
			if a := e.call("GET", "/scim/v2/Users/"+aID, nil).want(t, http.StatusOK); a.body["displayName"] != nil || a.header.Get("ETag") != `W/"1"` {
				t.Errorf("tenant A's user changed: %s", a.raw)
			}
		})
	})
}
