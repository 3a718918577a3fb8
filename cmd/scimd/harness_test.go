package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/storetest"
)

// env is one running scimd over a real database, reached over real HTTP.
type env struct {
	t      *testing.T
	srv    *httptest.Server
	token  string // tenant "default", all scopes
	tokens *scim.Tokens
	svc    *scim.Service
	logs   *observer.ObservedLogs // info and above, for assertions on log lines
	st     *gormstore.Store       // for assertions on what was stored (e.g. the outbox)
}

// forEachBackend runs fn as a subtest per database (SQLite always, PostgreSQL when
// configured), each with its own fresh server.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			fn(t, newEnv(t, b, scimhttp.Options{MaxBodyBytes: 64 << 10}))
		})
	}
}

func newEnv(t *testing.T, b storetest.Backend, o scimhttp.Options, tune ...func(*scim.Limits)) *env {
	t.Helper()
	st := b.Open(t)
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core))
	limits := scim.DefaultLimits()
	limits.BcryptCost = 4 // bcrypt's minimum: hashing is not what these tests measure
	for _, f := range tune {
		f(&limits)
	}
	svc := scim.NewService(st, log, scim.WithLimits(limits))
	// The token cache as serve runs it: changes tests make through the store or
	// another Tokens reach it within three refreshes, as on a replica.
	tokens := scim.NewTokens(st, scim.WithTokenCache(scim.DefaultTokenCacheRefresh))
	t.Cleanup(tokens.Flush) // after the server closes, before the store does
	t.Cleanup(startWorker(context.Background(), "token cache", tokens.WatchTokens, log))
	secret, err := tokens.Bootstrap(context.Background(), "")
	if err != nil || secret == "" {
		t.Fatalf("bootstrap: %q %v", secret, err)
	}
	var draining atomic.Bool
	srv := httptest.NewServer(newHandler(svc, tokens, st, log, &draining, false, o))
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, token: secret, tokens: tokens, svc: svc, logs: logs, st: st}
}

// newTenant creates a tenant and returns a token of it with the given scopes.
func (e *env) newTenant(name string, scopes ...string) string {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.tokens.CreateTenant(ctx, name); err != nil {
		e.t.Fatal(err)
	}
	secret, err := e.tokens.IssueToken(ctx, name, scopes, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// resp is a decoded response.
type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends a request with the default tenant's token; body may be a string (sent
// as is) or any value (sent as JSON).
func (e *env) call(method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	return e.callAs(e.token, method, path, body, hdr...)
}

func (e *env) callAs(token, method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	req := e.newRequest(e.t, method, path, body, "application/scim+json", auth, hdr...)
	status, header, raw := roundTrip(e.t, req)
	r := resp{status: status, header: header, raw: string(raw)}
	if len(raw) > 0 && strings.HasPrefix(header.Get("Content-Type"), "application/scim+json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: response is not a JSON object: %v\n%s", method, path, err, raw)
		}
	}
	return r
}

// newRequest builds a request to the test server. body is nil, a string sent as is,
// or any value sent as JSON, with contentType; auth, when not empty, is the
// Authorization header; hdr are further name/value pairs, applied last.
func (e *env) newRequest(t testing.TB, method, path string, body any, contentType, auth string, hdr ...string) *http.Request {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// roundTrip sends req and returns the answer's status, headers and body.
func roundTrip(t testing.TB, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, raw
}

// want fails the test unless the status is as expected.
func (r resp) want(t *testing.T, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.raw)
	}
	return r
}

// wantError checks a SCIM error response (RFC 7644 §3.12).
func (r resp) wantError(t *testing.T, status int, scimType string) {
	t.Helper()
	r.want(t, status)
	if got := r.header.Get("Content-Type"); got != "application/scim+json" {
		t.Errorf("error Content-Type %q", got)
	}
	if s, _ := r.body["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		t.Errorf("error schemas %v", r.body["schemas"])
	}
	if r.body["status"] != strconv.Itoa(status) {
		t.Errorf("error status field %v, want %q (a string, RFC 7644 §3.12)", r.body["status"], strconv.Itoa(status))
	}
	if got, _ := r.body["scimType"].(string); got != scimType {
		t.Errorf("scimType %q, want %q; body %s", got, scimType, r.raw)
	}
	if d, _ := r.body["detail"].(string); d == "" {
		t.Errorf("error without detail: %s", r.raw)
	}
}

// str reads a string at a dotted path of a decoded body ("meta.location").
func str(m map[string]any, path string) string {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}

// user returns a minimal User body.
func user(name string, extra ...any) map[string]any {
	m := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": name}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

func patchBody(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
}

func op(o, path string, value any) map[string]any {
	m := map[string]any{"op": o}
	if path != "" {
		m["path"] = path
	}
	if value != nil {
		m["value"] = value
	}
	return m
}

func ids(r resp) []string {
	var out []string
	list, _ := r.body["Resources"].([]any)
	for _, it := range list {
		out = append(out, str(it.(map[string]any), "id"))
	}
	return out
}

// subsetDiffs lists how got differs from the expected subset want: an object's keys
// must be present with matching values (others are ignored), {"$absent": true} as a
// value asserts the key is missing, arrays match element by element with the same
// length, "*" matches any non-null value, {"$mentions": [...]} a string containing
// each given string (see matchJSON), anything else must be equal.
func subsetDiffs(path string, want, got any) []string {
	switch w := want.(type) {
	case string:
		if w == "*" {
			if got == nil {
				return []string{path + ": want a value, got none"}
			}
			return nil
		}
	case map[string]any:
		if m, ok := w["$mentions"]; ok && len(w) == 1 {
			return matchMentions(path, m, got)
		}
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %v", path, got)}
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var diffs []string
		for _, k := range keys {
			v, present := g[k]
			if a, ok := w[k].(map[string]any); ok && len(a) == 1 && a["$absent"] == true {
				if present {
					diffs = append(diffs, fmt.Sprintf("%s.%s: want no such key, got %v", path, k, v))
				}
				continue
			}
			if !present {
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			diffs = append(diffs, subsetDiffs(path+"."+k, w[k], v)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d elements, got %v", path, len(w), got)}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, subsetDiffs(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return diffs
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: want %v, got %v", path, want, got)}
	}
	return nil
}
