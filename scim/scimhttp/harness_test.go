package scimhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// server is the SCIM API over a real store, as scimd serves it, with a token of
// every scope.
type server struct {
	t      *testing.T
	url    string
	token  string
	tokens *scim.Tokens
}

// forEachBackend runs fn against the SCIM API over SQLite and, when
// SCIMD_TEST_POSTGRES_URL is set, PostgreSQL.
func forEachBackend(t *testing.T, o scimhttp.Options, fn func(t *testing.T, s *server)) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			fn(t, newServer(t, b, o))
		})
	}
}

func newServer(t *testing.T, b storetest.Backend, o scimhttp.Options, topts ...scim.TokensOption) *server {
	t.Helper()
	st := b.Open(t)
	log := zaptest.NewLogger(t)
	limits := scim.DefaultLimits()
	limits.BcryptCost = 4
	svc := scim.NewService(st, log, scim.WithLimits(limits))
	tokens := scim.NewTokens(st, topts...)
	secret, err := tokens.Bootstrap(context.Background(), "")
	if err != nil || secret == "" {
		t.Fatalf("bootstrap: %q %v", secret, err)
	}
	srv := httptest.NewServer(scimhttp.New(svc, tokens, log, o))
	t.Cleanup(srv.Close)
	return &server{t: t, url: srv.URL + scimhttp.Prefix, token: secret, tokens: tokens}
}

// reply is a response with its body decoded (nil when empty).
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// do sends a request with body (a string is sent as is, anything else as JSON)
// and headers given as name, value pairs.
func (s *server) do(method, path string, body any, headers ...string) reply {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	out := reply{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			s.t.Fatalf("%s %s: %d %q is not a JSON object: %v", method, path, res.StatusCode, raw, err)
		}
	}
	return out
}

// want fails the test unless r has status and, for an error, scimType (RFC 7644
// §3.12: the status in the body too, as a string).
func (r reply) want(t *testing.T, what string, status int, scimType string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.raw)
	}
	if status < 400 {
		return
	}
	if got, _ := r.body["scimType"].(string); got != scimType {
		t.Errorf("%s: scimType %q, want %q; body %s", what, got, scimType, r.raw)
	}
	if got, _ := r.body["status"].(string); got != strconv.Itoa(status) {
		t.Errorf("%s: body status %q, want %q", what, got, strconv.Itoa(status))
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
		t.Errorf("%s: Content-Type %q, want application/scim+json", what, ct)
	}
}

// user creates a user and returns its id and ETag.
func (s *server) user(userName string) (id, etag string) {
	s.t.Helper()
	r := s.do("POST", "/Users", map[string]any{"schemas": []string{schemas.UserURN}, "userName": userName})
	r.want(s.t, "create "+userName, http.StatusCreated, "")
	id, _ = r.body["id"].(string)
	return id, r.header.Get("ETag")
}

// issue returns a new token of tenant (created if needed) with options o.
func (s *server) issue(tenant string, o scim.TokenOptions) string {
	s.t.Helper()
	ctx := context.Background()
	if tenant != scim.DefaultTenant {
		if _, err := s.tokens.CreateTenant(ctx, tenant); err != nil {
			s.t.Fatal(err)
		}
	}
	secret, err := s.tokens.Issue(ctx, tenant, o)
	if err != nil {
		s.t.Fatal(err)
	}
	return secret
}
