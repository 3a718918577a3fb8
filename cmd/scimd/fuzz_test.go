package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// fuzzRoutes are the routes that read a JSON body, SCIM and compatibility ones.
// {user} and {group} are a User and a Group created once; $KEY in a body is an
// admin key of 32 characters (the superuser family reads its key from the body).
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/scim/v2/Users"},
	{"POST", "/scim/v2/Groups"},
	{"PUT", "/scim/v2/Users/{user}"},
	{"PUT", "/scim/v2/Groups/{group}"},
	{"PATCH", "/scim/v2/Users/{user}"},
	{"PATCH", "/scim/v2/Groups/{group}"},
	{"POST", "/scim/v2/.search"},
	{"POST", "/scim/v2/Users/.search"},
	{"POST", "/scim/v2/Bulk"},
	{"POST", "/users"},
	{"PATCH", "/users"},
	{"POST", "/users/verify"},
	{"POST", "/onboarding/provision/standalone/users"},
	{"PATCH", "/onboarding/provision/standalone/users"},
	{"POST", "/v1/pine/partner/provision-user"},
	{"POST", "/scim/provision-user"},
	{"PUT", "/scim/update-user/bjensen@example.com"},
	{"POST", "/scim/de-provision-user/bjensen@example.com"},
	{"POST", "/api/v1/create_user"},
	{"POST", "/api/v1/delete_user"},
}

// fuzzServer is the real handler over a SQLite store, created once per fuzzing
// process.
type fuzzServer struct {
	h               http.Handler
	token, key      string
	userID, groupID string
}

var (
	fuzzOnce sync.Once
	fuzzSrv  *fuzzServer
	fuzzErr  error
)

// FuzzBodies: every body sent to a route that reads JSON is decoded or refused with
// a 4xx; never a 5xx, never a panic (the recovery middleware would turn one into a
// 500).
func FuzzBodies(f *testing.F) {
	fuzzOnce.Do(func() { fuzzSrv, fuzzErr = newFuzzServer(f) })
	if fuzzErr != nil {
		f.Fatal(fuzzErr)
	}
	s := fuzzSrv
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := strings.NewReplacer("{user}", s.userID, "{group}", s.groupID).Replace(rt.path)
		body = bytes.ReplaceAll(body, []byte("$KEY"), []byte(s.key))
		req := httptest.NewRequest(rt.method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.token)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s with body %q: %d %s", rt.method, path, body, w.Code, w.Body.String())
		}
	})
}

func newFuzzServer(f *testing.F) (*fuzzServer, error) {
	ctx := context.Background()
	st := storetest.OpenSQLite(f)
	log := zap.NewNop()
	limits := scim.DefaultLimits()
	limits.BcryptCost = 4
	svc := scim.NewService(st, log, scim.WithLimits(limits))
	tokens := scim.NewTokens(st)
	token, err := tokens.Bootstrap(ctx, "")
	if err != nil {
		return nil, err
	}
	key, err := tokens.Issue(ctx, "default", scim.TokenOptions{Scopes: []string{scim.ScopeAdmin}, Key32: true})
	if err != nil {
		return nil, err
	}
	var draining atomic.Bool
	h := newHandler(svc, tokens, st, log, &draining, false, scimhttp.Options{MaxBodyBytes: 64 << 10})
	tn, err := st.TenantByName(ctx, "default")
	if err != nil {
		return nil, err
	}
	u, err := svc.Create(ctx, tn.ID, scim.UserKind, map[string]any{"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": "bjensen@example.com", "emails": []any{map[string]any{"value": "bjensen@example.com", "primary": true}}}, scim.Projection{})
	if err != nil {
		return nil, err
	}
	g, err := svc.Create(ctx, tn.ID, scim.GroupKind, map[string]any{"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "Fuzz Fixed", "members": []any{map[string]any{"value": u.ID}}}, scim.Projection{})
	if err != nil {
		return nil, err
	}
	return &fuzzServer{h: h, token: token, key: key, userID: u.ID, groupID: g.ID}, nil
}
