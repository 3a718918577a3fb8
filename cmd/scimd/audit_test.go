package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store"
)

// auditResp is one answer and the request id it was given (X-Request-Id).
type auditResp struct {
	status int
	reqID  string
	raw    []byte
	body   map[string]any
}

// auditDo sends a request with an Authorization header (when auth is set) and
// further headers, and decodes a JSON object answer.
func (e *env) auditDo(t *testing.T, method, path string, body any, auth string, hdr ...string) auditResp {
	t.Helper()
	status, header, raw := roundTrip(t, e.newRequest(t, method, path, body, "application/json", auth, hdr...))
	r := auditResp{status: status, reqID: header.Get("X-Request-Id"), raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	if r.reqID == "" {
		t.Fatalf("%s %s: no X-Request-Id in the answer", method, path)
	}
	return r
}

func (r auditResp) want(t *testing.T, status int) auditResp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// auditWant is what one event of a request must say; the who (tenant, token,
// client 127.0.0.1, request id) is checked for every event.
type auditWant struct {
	route, op, typ, id string
	old, new           *int64
	outcome            string
	status             int
	detail             string // a part of the detail
}

func ver(n int64) *int64 { return &n }

// tenantID returns the id of the named tenant.
func (e *env) tenantID(t *testing.T, name string) string {
	t.Helper()
	tn, err := e.st.TenantByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

// tokenID returns the id of the token with this secret.
func (e *env) tokenID(t *testing.T, secret string) string {
	t.Helper()
	p, err := e.tokens.Verify(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	return p.TokenID
}

// allEvents returns every audit event of a tenant, oldest first.
func (e *env) allEvents(t *testing.T, tenantID string) []store.AuditEvent {
	t.Helper()
	events, err := e.st.AuditEvents(context.Background(), tenantID, store.AuditQuery{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// wantEvents checks that the tenant's events of request r are exactly want, in
// order, each naming the token and client.
func (e *env) wantEvents(t *testing.T, tenantID, tokenID string, r auditResp, want ...auditWant) {
	t.Helper()
	var got []store.AuditEvent
	for _, ev := range e.allEvents(t, tenantID) {
		if ev.RequestID == r.reqID {
			got = append(got, ev)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("request %s (status %d) has %d events, want %d:\n%s", r.reqID, r.status, len(got), len(want), showEvents(got))
	}
	for i, w := range want {
		g := got[i]
		if w.outcome == "" {
			w.outcome = store.AuditOK
		}
		if g.Route != w.route || g.Operation != w.op || g.ResourceType != w.typ || (w.id != "*" && g.ResourceID != w.id) ||
			!reflect.DeepEqual(g.OldVersion, w.old) || !reflect.DeepEqual(g.NewVersion, w.new) || g.Outcome != w.outcome ||
			g.Status != w.status || !strings.Contains(g.Detail, w.detail) {
			t.Errorf("event %d:\n%s\nwant %+v (old %v new %v)", i, showEvents(got[i:i+1]), w, deref(w.old), deref(w.new))
		}
		if g.TenantID != tenantID || g.TokenID != tokenID || g.ClientAddr != "127.0.0.1" || g.RequestID != r.reqID || g.ID == "" || g.At.IsZero() {
			t.Errorf("event %d does not name tenant %s, token %s, client 127.0.0.1 and request %s:\n%s", i, tenantID, tokenID, r.reqID, showEvents(got[i:i+1]))
		}
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func showEvents(events []store.AuditEvent) string {
	var sb strings.Builder
	for _, e := range events {
		b, _ := json.Marshal(scim.RecordOf(e))
		sb.Write(b)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// TestAuditLog makes changes through every route family, and changes refused for
// every reason, and checks each one's audit events: what was done to which
// resource and version, the outcome and status, and who (tenant, token, client
// address, request id as answered in X-Request-Id).
func TestAuditLog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tn, tok := e.tenantID(t, scim.DefaultTenant), e.tokenID(t, e.token)
		bearer := "Bearer " + e.token
		const password = "S3cret-Passw0rd!"

		var annID string
		t.Run("scim_user_lifecycle", func(t *testing.T) {
			r := e.auditDo(t, "POST", "/scim/v2/Users", user("ann@example.com", "password", password), bearer).want(t, http.StatusCreated)
			annID = r.body["id"].(string)
			e.wantEvents(t, tn, tok, r, auditWant{route: "scim", op: "create", typ: "User", id: annID, new: ver(1), status: 201})
			r = e.auditDo(t, "PUT", "/scim/v2/Users/"+annID, user("ann@example.com", "displayName", "Ann"), bearer).want(t, http.StatusOK)
			e.wantEvents(t, tn, tok, r, auditWant{route: "scim", op: "update", typ: "User", id: annID, old: ver(1), new: ver(2), status: 200})
			r = e.auditDo(t, "PATCH", "/scim/v2/Users/"+annID, patchBody(op("replace", "title", "Boss")), bearer).want(t, http.StatusOK)
			e.wantEvents(t, tn, tok, r, auditWant{route: "scim", op: "update", typ: "User", id: annID, old: ver(2), new: ver(3), status: 200})
			r = e.auditDo(t, "PATCH", "/scim/v2/Users/"+annID, patchBody(op("replace", "title", "Chief")), bearer, "Prefer", "return=minimal").want(t, http.StatusNoContent)
			e.wantEvents(t, tn, tok, r, auditWant{route: "scim", op: "update", typ: "User", id: annID, old: ver(3), new: ver(4), status: 204})
			// Reads are not audited.
			r = e.auditDo(t, "GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "ann@example.com"`), nil, bearer).want(t, http.StatusOK)
			e.wantEvents(t, tn, tok, r)
			r = e.auditDo(t, "POST", "/scim/v2/Users/.search", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}}, bearer).want(t, http.StatusOK)
			e.wantEvents(t, tn, tok, r)
		})

		t.Run("scim_refused", func(t *testing.T) {
			// A create refused on the unique userName leaves no ok event: its
			// transaction, event included, rolled back; the refusal has its own.
			r := e.auditDo(t, "POST", "/scim/v2/Users", user("ANN@example.com"), bearer).want(t, http.StatusConflict)
			e.wantEvents(t, tn, tok, r, auditWant{route: "scim", op: "create", typ: "User", outcome: store.AuditRefused, status: 409, detail: "uniqueness"})
			r = e.auditDo(t, "PUT", "/scim/v2/Users/"+annID, user("ann@example.com"), bearer, "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
			e.wantEvents(t, tn, tok, r, auditWant{route: "scim", op: "update", typ: "User", id: annID, outcome: store.AuditRefused, status: 412})
			missing := "00000000-0000-4000-8000-000000000000"
			r = e.auditDo(t, "DELETE", "/scim/v2/Groups/"+missing, nil, bearer).want(t, http.StatusNotFound)
			e.wantEvents(t, tn, tok, r, auditWant{route: "scim", op: "delete", typ: "Group", id: missing, outcome: store.AuditRefused, status: 404, detail: "Not Found"})
			r = e.auditDo(t, "POST", "/scim/v2/Users", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}}, bearer).want(t, http.StatusBadRequest)
			e.wantEvents(t, tn, tok, r, auditWant{route: "scim", op: "create", typ: "User", outcome: store.AuditRefused, status: 400})
			// A recognised token without the scope: 403, in its tenant.
			compatOnly, err := e.tokens.IssueToken(ctx, scim.DefaultTenant, []string{scim.ScopeCompat}, "")
			if err != nil {
				t.Fatal(err)
			}
			r = e.auditDo(t, "DELETE", "/scim/v2/Users/"+annID, nil, "Bearer "+compatOnly).want(t, http.StatusForbidden)
			e.wantEvents(t, tn, e.tokenID(t, compatOnly), r, auditWant{route: "scim", op: "delete", typ: "User", id: annID, outcome: store.AuditRefused, status: 403})
			// A revoked token is recognised too: 401, in its tenant.
			bound, err := e.tokens.Issue(ctx, scim.DefaultTenant, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}, UserID: annID})
			if err != nil {
				t.Fatal(err)
			}
			boundID := e.tokenID(t, bound)
			if err := e.tokens.RevokeUser(ctx, tn, annID); err != nil {
				t.Fatal(err)
			}
			r = e.auditDo(t, "PATCH", "/scim/v2/Users/"+annID, patchBody(op("replace", "title", "x")), "Bearer "+bound).want(t, http.StatusUnauthorized)
			e.wantEvents(t, tn, boundID, r, auditWant{route: "scim", op: "update", typ: "User", id: annID, outcome: store.AuditRefused, status: 401})
			// An unknown token names no tenant: nothing to record anywhere.
			before := len(e.allEvents(t, tn))
			e.auditDo(t, "POST", "/scim/v2/Users", user("x@example.com"), "Bearer scimd_unknown-token-of-no-tenant-0000000000000").want(t, http.StatusUnauthorized)
			if after := len(e.allEvents(t, tn)); after != before {
				t.Errorf("an unknown token's refusal was recorded: %d events, then %d", before, after)
			}
		})

		t.Run("scim_rate_limited", func(t *testing.T) {
			// A second server whose tokens allow one request: the second write is 429.
			limited := scim.NewTokens(e.st, scim.WithRateLimiter(scim.NewRateLimiter(0.001, 1, 0, nil)))
			var draining atomic.Bool
			srv := httptest.NewServer(newHandler(e.svc, limited, e.st, zap.NewNop(), &draining, false, scimhttp.Options{}))
			defer srv.Close()
			le := *e
			le.srv = srv
			le.auditDo(t, "PATCH", "/scim/v2/Users/"+annID, patchBody(op("replace", "title", "one")), bearer).want(t, http.StatusOK)
			r := le.auditDo(t, "PATCH", "/scim/v2/Users/"+annID, patchBody(op("replace", "title", "two")), bearer).want(t, http.StatusTooManyRequests)
			e.wantEvents(t, tn, tok, r, auditWant{route: "scim", op: "update", typ: "User", id: annID, outcome: store.AuditRefused, status: 429})
		})

		t.Run("scim_groups_bulk_and_me", func(t *testing.T) {
			bob := e.auditDo(t, "POST", "/scim/v2/Users", user("bob@example.com"), bearer).want(t, http.StatusCreated).body["id"].(string)
			g := e.auditDo(t, "POST", "/scim/v2/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
				"displayName": "team", "members": []any{map[string]any{"value": bob}}}, bearer).want(t, http.StatusCreated).body["id"].(string)
			// Deleting a member changes its groups: each gets an event of its own.
			r := e.auditDo(t, "DELETE", "/scim/v2/Users/"+bob, nil, bearer).want(t, http.StatusNoContent)
			e.wantEvents(t, tn, tok, r,
				auditWant{route: "scim", op: "delete", typ: "User", id: bob, old: ver(1), status: 204},
				auditWant{route: "scim", op: "update", typ: "Group", id: g, old: ver(1), new: ver(2), status: 204, detail: "member " + bob + " removed"})
			// Each bulk operation is recorded as its own, refusals included.
			r = e.auditDo(t, "POST", "/scim/v2/Bulk", map[string]any{
				"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"},
				"Operations": []any{
					map[string]any{"method": "POST", "path": "/Users", "bulkId": "c", "data": user("cy@example.com")},
					map[string]any{"method": "POST", "path": "/Users", "bulkId": "d", "data": user("ann@example.com")},
					map[string]any{"method": "PATCH", "path": "/Groups/" + g, "data": patchBody(op("add", "members", []any{map[string]any{"value": "bulkId:c"}}))},
				},
			}, bearer).want(t, http.StatusOK)
			e.wantEvents(t, tn, tok, r,
				auditWant{route: "scim.bulk", op: "create", typ: "User", id: "*", new: ver(1), status: 201, detail: "Operations[0]"},
				auditWant{route: "scim.bulk", op: "create", typ: "User", outcome: store.AuditRefused, status: 409, detail: "Operations[1]: uniqueness"},
				auditWant{route: "scim.bulk", op: "update", typ: "Group", id: g, old: ver(2), new: ver(3), status: 200, detail: "Operations[2]"})
			// A bulk request refused as a whole is one event.
			r = e.auditDo(t, "POST", "/scim/v2/Bulk", map[string]any{"schemas": []string{"urn:x"}}, bearer).want(t, http.StatusBadRequest)
			e.wantEvents(t, tn, tok, r, auditWant{route: "scim.bulk", op: "bulk", outcome: store.AuditRefused, status: 400, detail: "invalidSyntax"})
			// /Me writes are recorded on the token's user.
			me, err := e.tokens.Issue(ctx, scim.DefaultTenant, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}, UserID: annID})
			if err != nil {
				t.Fatal(err)
			}
			r = e.auditDo(t, "PATCH", "/scim/v2/Me", patchBody(op("replace", "nickName", "annie")), "Bearer "+me).want(t, http.StatusOK)
			e.wantEvents(t, tn, e.tokenID(t, me), r, auditWant{route: "scim.me", op: "update", typ: "User", id: annID, old: ver(5), new: ver(6), status: 200})
			r = e.auditDo(t, "PUT", "/scim/v2/Me", user("ann@example.com"), "Bearer "+me, "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
			e.wantEvents(t, tn, e.tokenID(t, me), r, auditWant{route: "scim.me", op: "update", typ: "User", id: annID, outcome: store.AuditRefused, status: 412})
		})

		t.Run("compat_partner", func(t *testing.T) {
			auth := "Token " + e.token
			r := e.auditDo(t, "POST", "/provision-user", map[string]any{"email": "pat@example.com", "result_url": "https://app.example.com/"}, auth).want(t, http.StatusCreated)
			id := r.body["id"].(string)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.partner", op: "create", typ: "User", id: id, new: ver(1), status: 201})
			r = e.auditDo(t, "POST", "/provision-user", map[string]any{"action": "deprovision", "email": "pat@example.com"}, auth).want(t, http.StatusOK)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.partner", op: "delete", typ: "User", id: id, old: ver(1), status: 200})
			r = e.auditDo(t, "POST", "/provision-user", map[string]any{"action": "deprovision", "email": "pat@example.com"}, auth).want(t, http.StatusNotFound)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.partner", op: "deprovision", typ: "User", outcome: store.AuditRefused, status: 404, detail: "user_not_found"})
		})

		t.Run("compat_admin", func(t *testing.T) {
			r := e.auditDo(t, "POST", "/users", map[string]any{"email": "cred@example.com", "credits": 5}, bearer).want(t, http.StatusCreated)
			userToken := r.body["token"].(string)
			uid := e.findUser(t, "cred@example.com")
			e.wantEvents(t, tn, tok, r,
				auditWant{route: "compat.admin", op: "create", typ: "User", id: uid, new: ver(1), status: 201},
				auditWant{route: "compat.admin", op: "token.create", typ: "Token", id: e.tokenID(t, userToken), status: 201, detail: "bound to user " + uid})
			r = e.auditDo(t, "PATCH", "/users", map[string]any{"email": "cred@example.com", "credits": 9}, bearer).want(t, http.StatusOK)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.admin", op: "update", typ: "User", id: uid, old: ver(1), new: ver(2), status: 200})
			r = e.auditDo(t, "DELETE", "/users?email=cred@example.com", nil, bearer).want(t, http.StatusOK)
			e.wantEvents(t, tn, tok, r,
				auditWant{route: "compat.admin", op: "token.revoke", typ: "Token", id: "*", status: 200, detail: "bound to user " + uid},
				auditWant{route: "compat.admin", op: "update", typ: "User", id: uid, old: ver(2), new: ver(3), status: 200})
			r = e.auditDo(t, "POST", "/users", map[string]any{"email": "cred@example.com"}, bearer).want(t, http.StatusConflict)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.admin", op: "create", typ: "User", outcome: store.AuditRefused, status: 409, detail: "user_exists"})
			// Reads and token checks are not changes.
			r = e.auditDo(t, "POST", "/users/verify", map[string]any{"token": userToken}, bearer).want(t, http.StatusUnauthorized)
			e.wantEvents(t, tn, tok, r)
		})

		t.Run("compat_platform", func(t *testing.T) {
			hdr := []string{"X-App-Token", e.token}
			r := e.auditDo(t, "POST", "/scim/provision-user", map[string]any{"username": "plat", "email": "plat@example.com", "firstName": "P",
				"lastName": "L", "password": password}, bearer, hdr...).want(t, http.StatusCreated)
			id := r.body["id"].(string)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.platform", op: "create", typ: "User", id: id, new: ver(1), status: 201})
			r = e.auditDo(t, "PATCH", "/scim/update-user/plat@example.com", map[string]any{"firstName": "Q"}, bearer, hdr...).want(t, http.StatusOK)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.platform", op: "update", typ: "User", id: id, old: ver(1), new: ver(2), status: 200})
			r = e.auditDo(t, "DELETE", "/scim/de-provision-user/plat@example.com", nil, bearer, hdr...).want(t, http.StatusNoContent)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.platform", op: "delete", typ: "User", id: id, old: ver(2), status: 204})
			r = e.auditDo(t, "POST", "/scim/provision-user", map[string]any{"username": "ann@example.com", "email": "new@example.com"}, bearer, hdr...).want(t, http.StatusConflict)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.platform", op: "create", typ: "User", outcome: store.AuditRefused, status: 409, detail: "uniqueness"})
		})

		t.Run("compat_superuser", func(t *testing.T) {
			r := e.auditDo(t, "POST", "/api/v1/create_user", map[string]any{"key": e.token, "email": "su@example.com", "first_name": "S",
				"last_name": "U", "password": password, "email_confirmed": true}, "").want(t, http.StatusCreated)
			id := e.findUser(t, "su@example.com")
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.superuser", op: "create", typ: "User", id: id, new: ver(1), status: 201})
			r = e.auditDo(t, "POST", "/api/v1/delete_user", map[string]any{"key": e.token, "email": "su@example.com"}, "").want(t, http.StatusNoContent)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.superuser", op: "delete", typ: "User", id: id, old: ver(1), status: 204})
			r = e.auditDo(t, "POST", "/api/v1/create_user", map[string]any{"key": e.token, "email": "su2@example.com", "password": "short"}, "").want(t, http.StatusBadRequest)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.superuser", op: "create", typ: "User", outcome: store.AuditRefused, status: 400, detail: "invalid_password"})
		})

		t.Run("compat_onboarding", func(t *testing.T) {
			r := e.auditDo(t, "POST", "/onboarding/provision/standalone/users", []any{
				map[string]any{"email": "on1@example.com", "firstName": "On", "lastName": "One", "roles": []any{"Scheduler"}},
				map[string]any{"email": "ann@example.com", "firstName": "Ann", "lastName": "Again", "roles": []any{"Scheduler"}},
			}, bearer).want(t, http.StatusOK)
			id := e.findUser(t, "on1@example.com")
			e.wantEvents(t, tn, tok, r,
				auditWant{route: "compat.onboarding", op: "create", typ: "User", id: id, new: ver(1), status: 200},
				auditWant{route: "compat.onboarding", op: "create", typ: "User", id: "*", outcome: store.AuditRefused, status: 409, detail: "entry 1: uniqueness"})
			r = e.auditDo(t, "PATCH", "/onboarding/provision/standalone/users", []any{map[string]any{"email": "on1@example.com", "firstName": "Uno"}}, bearer).want(t, http.StatusOK)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.onboarding", op: "update", typ: "User", id: id, old: ver(1), new: ver(2), status: 200})
			r = e.auditDo(t, "POST", "/onboarding/provision/standalone/users", map[string]any{"email": "x@example.com"}, bearer).want(t, http.StatusBadRequest)
			e.wantEvents(t, tn, tok, r, auditWant{route: "compat.onboarding", op: "create", typ: "User", outcome: store.AuditRefused, status: 400, detail: "invalid_request"})
		})

		t.Run("task_worker", func(t *testing.T) {
			// A task queued by a request and run by the background worker records
			// its changes as the queuing request's, with the 202 it was answered.
			tasks := e.svc.Tasks(scim.TaskOptions{})
			queued := store.WithActor(ctx, &store.Actor{TenantID: tn, TokenID: tok, ClientAddr: "127.0.0.1", RequestID: "req-queued-1",
				Route: "compat.onboarding", Status: http.StatusAccepted})
			if _, err := tasks.Submit(queued, tn, scim.TaskImportUsers, []scim.UserWrite{
				{UserName: "worker@example.com", Create: user("worker@example.com")},
				{UserName: "ann@example.com", Create: user("ann@example.com")},
			}); err != nil {
				t.Fatal(err)
			}
			if n, err := tasks.Step(ctx); err != nil || n != 2 {
				t.Fatalf("worker step ran %d entries: %v", n, err)
			}
			e.wantEvents(t, tn, tok, auditResp{reqID: "req-queued-1", status: http.StatusAccepted},
				auditWant{route: "compat.onboarding", op: "create", typ: "User", id: e.findUser(t, "worker@example.com"), new: ver(1), status: 202},
				auditWant{route: "compat.onboarding", op: "create", typ: "User", id: "*", outcome: store.AuditRefused, status: 409, detail: "entry 1: uniqueness"})
		})

		t.Run("no_secrets_in_events", func(t *testing.T) {
			all := showEvents(e.allEvents(t, tn))
			for _, secret := range []string{password, e.token, "short"} {
				if strings.Contains(all, secret) {
					t.Errorf("an audit event holds %q:\n%s", secret, all)
				}
			}
		})

		t.Run("endpoint", func(t *testing.T) {
			all := e.allEvents(t, tn)
			// Pages of 7 through the endpoint walk exactly the stored log.
			var got []string
			cursor := ""
			for range 100 {
				path := "/admin/v1/audit?limit=7"
				if cursor != "" {
					path += "&cursor=" + url.QueryEscape(cursor)
				}
				r := e.auditDo(t, "GET", path, nil, bearer).want(t, http.StatusOK)
				var page struct {
					Events     []scim.AuditRecord `json:"events"`
					NextCursor string             `json:"nextCursor"`
				}
				if err := json.Unmarshal(r.raw, &page); err != nil {
					t.Fatal(err)
				}
				for _, ev := range page.Events {
					got = append(got, ev.ID)
				}
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			if len(got) != len(all) {
				t.Fatalf("the endpoint listed %d events, the log holds %d", len(got), len(all))
			}
			for i := range all {
				if got[i] != all[i].ID {
					t.Fatalf("event %d is %s, want %s", i, got[i], all[i].ID)
				}
			}
			// since and until select a window.
			mid := all[len(all)/2].At
			r := e.auditDo(t, "GET", "/admin/v1/audit?limit=1000&since="+url.QueryEscape(mid.Format(time.RFC3339Nano)), nil, bearer).want(t, http.StatusOK)
			for _, ev := range r.body["events"].([]any) {
				at, _ := time.Parse(time.RFC3339Nano, ev.(map[string]any)["at"].(string))
				if at.Before(mid) {
					t.Errorf("since %s listed an event at %s", mid, at)
				}
			}
			scimOnly := e.newTenantToken(t, scim.DefaultTenant, scim.ScopeSCIM)
			auditOnly := e.newTenantToken(t, scim.DefaultTenant, scim.ScopeAudit)
			e.auditDo(t, "GET", "/admin/v1/audit", nil, "Bearer "+auditOnly).want(t, http.StatusOK)
			for _, c := range []struct {
				name, method, path, auth string
				status                   int
				code                     string
			}{
				{"no_token", "GET", "/admin/v1/audit", "", 401, "unauthorized"},
				{"unknown_token", "GET", "/admin/v1/audit", "Bearer nope-nope-nope-nope-nope", 401, "unauthorized"},
				{"scim_scope_only", "GET", "/admin/v1/audit", "Bearer " + scimOnly, 403, "forbidden"},
				{"bad_since", "GET", "/admin/v1/audit?since=yesterday", bearer, 400, "invalid_request"},
				{"bad_limit", "GET", "/admin/v1/audit?limit=0", bearer, 400, "invalid_request"},
				{"until_before_since", "GET", "/admin/v1/audit?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", bearer, 400, "invalid_request"},
				{"bad_cursor", "GET", "/admin/v1/audit?cursor=%21%21", bearer, 400, "invalid_cursor"},
				{"post", "POST", "/admin/v1/audit", bearer, 405, "method_not_allowed"},
				{"unknown_path", "GET", "/admin/v1/nothing", bearer, 404, "not_found"},
			} {
				t.Run(c.name, func(t *testing.T) {
					r := e.auditDo(t, c.method, c.path, nil, c.auth).want(t, c.status)
					if r.body["error"] != c.code || r.body["message"] == "" {
						t.Errorf("answer %s, want error %q with a message", r.raw, c.code)
					}
				})
			}
		})

		t.Run("tenant_isolation", func(t *testing.T) {
			other := e.newTenant("other", scim.ScopeSCIM, scim.ScopeAudit)
			otherID := e.tenantID(t, "other")
			r := e.auditDo(t, "POST", "/scim/v2/Users", user("ann@example.com"), "Bearer "+other).want(t, http.StatusCreated)
			e.wantEvents(t, otherID, e.tokenID(t, other), r, auditWant{route: "scim", op: "create", typ: "User", id: r.body["id"].(string), new: ver(1), status: 201})
			// A refused change of the other tenant's token is the other tenant's.
			r = e.auditDo(t, "DELETE", "/scim/v2/Users/"+annID, nil, "Bearer "+other).want(t, http.StatusNotFound)
			e.wantEvents(t, otherID, e.tokenID(t, other), r, auditWant{route: "scim", op: "delete", typ: "User", id: annID, outcome: store.AuditRefused, status: 404})
			e.wantEvents(t, tn, tok, r)
			for _, c := range []struct{ token, tenant string }{{e.token, tn}, {other, otherID}} {
				resp := e.auditDo(t, "GET", "/admin/v1/audit?limit=1000", nil, "Bearer "+c.token).want(t, http.StatusOK)
				events := resp.body["events"].([]any)
				if len(events) == 0 {
					t.Fatalf("tenant %s reads no events", c.tenant)
				}
				for _, ev := range events {
					if id := ev.(map[string]any)["tenantId"]; id != c.tenant {
						t.Errorf("a token of tenant %s reads an event of tenant %v", c.tenant, id)
					}
				}
			}
		})
	})
}

// newTenantToken issues a token of the tenant with these scopes.
func (e *env) newTenantToken(t *testing.T, tenant string, scopes ...string) string {
	t.Helper()
	s, err := e.tokens.IssueToken(context.Background(), tenant, scopes, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// findUser returns the id of the default tenant's user with this userName.
func (e *env) findUser(t *testing.T, userName string) string {
	t.Helper()
	r := e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(fmt.Sprintf("userName eq %q", userName)), nil).want(t, http.StatusOK)
	ids := ids(r)
	if len(ids) != 1 {
		t.Fatalf("users named %s: %q", userName, ids)
	}
	return ids[0]
}

// TestAuditRetention deletes the events older than the retention, of every
// tenant, in batches, and keeps the rest; a retention of 0 keeps everything.
func TestAuditRetention(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tn := e.tenantID(t, scim.DefaultTenant)
		other, err := e.tokens.CreateTenant(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		// More old events than one batch deletes, written a few hundred per statement.
		now := time.Now().UTC()
		var rows []string
		var args []any
		flush := func() {
			if len(rows) == 0 {
				return
			}
			if err := e.st.DB().Exec(`INSERT INTO audit_events (id, tenant_id, at, operation, resource_id, outcome) VALUES `+strings.Join(rows, ", "), args...).Error; err != nil {
				t.Fatal(err)
			}
			rows, args = rows[:0], args[:0]
		}
		for i := range scim.AuditPruneBatch + 5 {
			for _, id := range []string{tn, other.ID} {
				rows = append(rows, "(?, ?, ?, ?, ?, ?)")
				args = append(args, uuid.NewString(), id, now.Add(-91*24*time.Hour-time.Duration(i)*time.Second), store.OpUpdate, "old", store.AuditOK)
				if len(rows) == 400 {
					flush()
				}
			}
		}
		flush()
		recent := e.auditDo(t, "POST", "/scim/v2/Users", user("kept@example.com"), "Bearer "+e.token).want(t, http.StatusCreated)
		log := scim.NewAuditLog(e.st, zap.NewNop())
		if n, err := log.Prune(ctx, 0); err != nil || n != 0 {
			t.Fatalf("retention 0 deleted %d events (%v)", n, err)
		}
		// The worker runs batches until none is left, then waits.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() { defer close(done); log.Work(wctx, 90*24*time.Hour, time.Hour) }()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if n := countResource(e.allEvents(t, tn), "old") + countResource(e.allEvents(t, other.ID), "old"); n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the retention worker did not delete every old event within 20 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		<-done
		kept := e.allEvents(t, tn)
		found := false
		for _, ev := range kept {
			found = found || ev.RequestID == recent.reqID
		}
		if !found || len(e.allEvents(t, other.ID)) != 1 { // the other tenant keeps its tenant.create
			t.Errorf("retention deleted recent events:\n%s", showEvents(kept))
		}
	})
}

func countResource(events []store.AuditEvent, id string) int {
	n := 0
	for _, e := range events {
		if e.ResourceID == id {
			n++
		}
	}
	return n
}

// TestAuditCLI prints a tenant's events with scimd audit, as a table and as JSON
// lines, only that tenant's and only within --since and --until; the changes the
// administration commands make are in the log with the route cli.
func TestAuditCLI(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "audit.db")
	for _, name := range []string{"acme", "other"} {
		if _, _, err := runCLI(t, "tenant", "create", name, "--scope", "scim,audit", "--database", db); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := runCLI(t, "tenant", "set", "acme", "free_access=true", "--database", db); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(db, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acme, _ := st.TenantByName(ctx, "acme")
	other, _ := st.TenantByName(ctx, "other")
	a := &store.Actor{TokenID: "tok-acme", ClientAddr: "198.51.100.4", RequestID: "req-acme-1", Route: "scim"}
	u := &store.Resource{TenantID: acme.ID, Kind: store.KindUser, UserName: "ann@example.com", Doc: []byte(`{"userName":"ann@example.com"}`)}
	if err := st.Create(store.WithActor(ctx, a), u); err != nil {
		t.Fatal(err)
	}
	o := &store.Resource{TenantID: other.ID, Kind: store.KindUser, UserName: "zed@example.com", Doc: []byte(`{"userName":"zed@example.com"}`)}
	if err := st.Create(store.WithActor(ctx, &store.Actor{TokenID: "tok-other", RequestID: "req-other-1", Route: "scim"}), o); err != nil {
		t.Fatal(err)
	}
	st.Close()
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)

	t.Run("table", func(t *testing.T) {
		out, _, err := runCLI(t, "audit", "--tenant", "acme", "--since", since, "--database", db)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 5 || !strings.HasPrefix(lines[0], "AT") || !strings.Contains(lines[0], "OPERATION") {
			t.Fatalf("want a header and 4 events (tenant.create, token.create, tenant.settings, create):\n%s", out)
		}
		for i, want := range [][]string{
			{"ok", "-", "tenant.create", "Tenant/" + acme.ID, "cli"},
			{"ok", "-", "token.create", "Token/", "cli", "scopes scim,audit"},
			{"ok", "-", "tenant.settings", "Tenant/" + acme.ID, "cli", "changed free_access"},
			{"ok", "201", "create", "User/" + u.ID, "-→1", "scim", "tok-acme", "198.51.100.4", "req-acme-1"},
		} {
			for _, w := range want {
				if !strings.Contains(lines[i+1], w) {
					t.Errorf("row %d lacks %q:\n%s", i+1, w, lines[i+1])
				}
			}
		}
		if strings.Contains(out, "zed@example.com") || strings.Contains(out, o.ID) || strings.Contains(out, "req-other-1") {
			t.Errorf("tenant acme's log shows tenant other's event:\n%s", out)
		}
	})
	t.Run("json_and_window", func(t *testing.T) {
		out, _, err := runCLI(t, "audit", "--tenant", "other", "--since", since, "--format", "json", "--limit", "2", "--database", db)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("--limit 2 printed %d lines:\n%s", len(lines), out)
		}
		for _, l := range lines {
			var rec scim.AuditRecord
			if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.TenantID != other.ID || rec.ID == "" {
				t.Errorf("line %q: %+v %v", l, rec, err)
			}
		}
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		if out, _, err := runCLI(t, "audit", "--tenant", "acme", "--since", future, "--format", "json", "--database", db); err != nil || out != "" {
			t.Errorf("events after now: %q %v", out, err)
		}
		if out, _, err := runCLI(t, "audit", "--tenant", "acme", "--since", since, "--until", since, "--database", db); err == nil {
			t.Errorf("until equal to since accepted: %q", out)
		}
	})
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no_tenant", []string{"--since", since}, "usage: scimd audit"},
		{"no_since", []string{"--tenant", "acme"}, "usage: scimd audit"},
		{"bad_since", []string{"--tenant", "acme", "--since", "yesterday"}, "--since"},
		{"bad_format", []string{"--tenant", "acme", "--since", since, "--format", "xml"}, "--format"},
		{"bad_limit", []string{"--tenant", "acme", "--since", since, "--limit", "0"}, "--limit"},
		{"unknown_tenant", []string{"--tenant", "nope", "--since", since}, `tenant "nope" does not exist`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := runCLI(t, append(append([]string{"audit"}, c.args...), "--database", db)...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

// TestAuditRetentionFlag reads --audit-retention as days or a duration, 0 as
// forever, and refuses anything else.
func TestAuditRetentionFlag(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90d", 90 * 24 * time.Hour, true},
		{"2160h", 2160 * time.Hour, true},
		{"0", 0, true},
		{"-1d", 0, false},
		{"10m", 0, false},
		{"ninety days", 0, false},
		{"", 0, false},
	} {
		got, err := (&Config{AuditRetention: c.in}).auditRetention()
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: %v %v, want %v (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
	db := "sqlite://" + filepath.Join(t.TempDir(), "flag.db")
	if _, _, err := runCLI(t, "serve", "--database", db, "--audit-retention", "ninety"); err == nil || !strings.Contains(err.Error(), "--audit-retention") {
		t.Errorf("serve with a bad --audit-retention: %v", err)
	}
}
