package scimhttp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/storetest"
)

// closingStore is a real store whose database is closed, once armed, just before
// the walk over a group's members: the group's row has been read, its members cannot
// be.
type closingStore struct {
	*gormstore.Store
	armed atomic.Bool
}

func (c *closingStore) EachMember(ctx context.Context, tenantID, groupID string, fn func(store.Member) error) error {
	if c.armed.Load() {
		_ = c.Store.Close()
	}
	return c.Store.EachMember(ctx, tenantID, groupID, fn)
}

// TestGroupStreamFailsBeforeStart: a group's answer whose member walk fails before
// the first member is written is an ordinary SCIM error (RFC 7644 §3.12), here 503
// with Retry-After for a database that cannot be reached, not a cut connection.
func TestGroupStreamFailsBeforeStart(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			st := &closingStore{Store: b.Open(t)}
			log := zaptest.NewLogger(t)
			limits := scim.DefaultLimits()
			limits.BcryptCost = 4
			svc := scim.NewService(st, log, scim.WithLimits(limits))
			tokens := scim.NewTokens(st.Store)
			secret, err := tokens.Bootstrap(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(scimhttp.New(svc, tokens, log, scimhttp.Options{}))
			t.Cleanup(srv.Close)
			s := &server{t: t, url: srv.URL + scimhttp.Prefix, token: secret, tokens: tokens}

			u := s.do("POST", "/Users", map[string]any{"schemas": []string{schemas.UserURN}, "userName": "ann"})
			u.want(t, "create user", http.StatusCreated, "")
			g := s.do("POST", "/Groups", map[string]any{"schemas": []string{schemas.GroupURN}, "displayName": "team",
				"members": []any{map[string]any{"value": u.body["id"]}}})
			g.want(t, "create group", http.StatusCreated, "")
			id, _ := g.body["id"].(string)

			st.armed.Store(true)
			// A new connection: a client retries a GET that fails on a reused
			// connection before any answer, which would hide a cut connection.
			req, err := http.NewRequest("GET", s.url+"/Groups/"+id, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+s.token)
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			res, err := client.Do(req)
			if err != nil {
				t.Fatalf("the connection was cut: %v", err)
			}
			defer res.Body.Close()
			raw, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatalf("the answer was cut: %v", err)
			}
			r := reply{status: res.StatusCode, header: res.Header, raw: raw}
			if err := json.Unmarshal(raw, &r.body); err != nil {
				t.Fatalf("%d %q is not a JSON object: %v", r.status, raw, err)
			}
			r.want(t, "group read", http.StatusServiceUnavailable, "")
			if r.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After: %v", r.header)
			}
			if r.body["members"] != nil || r.body["displayName"] != nil {
				t.Errorf("answer %d %s, want a SCIM error and no group", r.status, r.raw)
			}
		})
	}
}
