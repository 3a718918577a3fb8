package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// The hostile-input corpus: requests an attacker or a broken client sends (trailing
// data, duplicate keys, NUL, invalid UTF-8, …) to the SCIM API and every
// compatibility family, each answered with the same 4xx on every database. The
// format is described in testdata/README.md; each file of testdata/hostile is one
// subtest, run on a fresh server.

// hostileCase is one file of testdata/hostile.
type hostileCase struct {
	Description string        `json:"description"`
	Steps       []hostileStep `json:"steps"`
}

type hostileStep struct {
	// Note says why the step is there; it is not checked.
	Note     string          `json:"note,omitempty"`
	Request  hostileRequest  `json:"request"`
	Response hostileResponse `json:"response"`
	// Capture maps a variable name to a dotted path in the response body.
	Capture map[string]string `json:"capture,omitempty"`
}

type hostileRequest struct {
	Method string `json:"method"`
	// Path is sent as written (with {{name}} expanded): percent-encode it yourself,
	// so that %00 and %ff reach the server as bytes.
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is a JSON string, sent as is (with {{name}} expanded), so that invalid
	// JSON can be written; any other JSON value is sent encoded.
	Body json.RawMessage `json:"body,omitempty"`
	// BodyBase64 is a body of arbitrary bytes (invalid UTF-8), sent as is.
	BodyBase64 string `json:"bodyBase64,omitempty"`
}

type hostileResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the expected subset of the JSON answer, by matchJSON's rules.
	Body json.RawMessage `json:"body,omitempty"`
}

// loadHostile reads a case strictly: an unknown field is a typo, not a comment.
func loadHostile(path string) (hostileCase, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return hostileCase{}, err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var c hostileCase
	if err := d.Decode(&c); err != nil {
		return hostileCase{}, fmt.Errorf("%s: %w", path, err)
	}
	var problems []string
	if c.Description == "" {
		problems = append(problems, "description is empty")
	}
	if len(c.Steps) == 0 {
		problems = append(problems, "no steps")
	}
	for i, s := range c.Steps {
		if s.Request.Method == "" || !strings.HasPrefix(s.Request.Path, "/") {
			problems = append(problems, fmt.Sprintf("step %d: request needs a method and a path starting with /", i+1))
		}
		if s.Response.Status == 0 {
			problems = append(problems, fmt.Sprintf("step %d: response needs a status", i+1))
		}
		if len(s.Request.Body) > 0 && s.Request.BodyBase64 != "" {
			problems = append(problems, fmt.Sprintf("step %d: give body or bodyBase64, not both", i+1))
		}
	}
	if len(problems) > 0 {
		return hostileCase{}, fmt.Errorf("%s: %s", path, strings.Join(problems, "; "))
	}
	return c, nil
}

func TestHostileCorpus(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "hostile", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases in testdata/hostile: %v", err)
	}
	sort.Strings(paths)
	cases := make([]hostileCase, len(paths))
	for i, p := range paths {
		if cases[i], err = loadHostile(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			for i, p := range paths {
				t.Run(strings.TrimSuffix(filepath.Base(p), ".json"), func(t *testing.T) {
					runHostile(t, newEnv(t, b, scimhttp.Options{MaxBodyBytes: 64 << 10}), cases[i])
				})
			}
		})
	}
}

// runHostile sends each step's request in turn and checks its answer; a step whose
// status differs ends the case, since later steps depend on it.
func runHostile(t *testing.T, e *env, c hostileCase) {
	t.Helper()
	key, err := e.tokens.Issue(context.Background(), scim.DefaultTenant, scim.TokenOptions{Scopes: []string{scim.ScopeAdmin}, Key32: true})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"token": e.token, "key": key, "baseUrl": e.srv.URL}
	for i, s := range c.Steps {
		path, err := expandString(s.Request.Path, vars)
		if err != nil {
			t.Fatalf("step %d: path: %v", i+1, err)
		}
		where := fmt.Sprintf("step %d %s %s", i+1, s.Request.Method, path)
		var body []byte
		switch {
		case s.Request.BodyBase64 != "":
			if body, err = base64.StdEncoding.DecodeString(s.Request.BodyBase64); err != nil {
				t.Fatalf("%s: bodyBase64: %v", where, err)
			}
		case len(s.Request.Body) > 0 && s.Request.Body[0] == '"':
			var str string
			if err := json.Unmarshal(s.Request.Body, &str); err != nil {
				t.Fatalf("%s: body: %v", where, err)
			}
			if str, err = expandString(str, vars); err != nil {
				t.Fatalf("%s: body: %v", where, err)
			}
			body = []byte(str)
		case len(s.Request.Body) > 0:
			v, err := expandJSON(s.Request.Body, vars)
			if err != nil {
				t.Fatalf("%s: body: %v", where, err)
			}
			body, _ = json.Marshal(v)
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(s.Request.Method, e.srv.URL+path, rd)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+e.token)
		for k, v := range s.Request.Headers {
			v, err := expandString(v, vars)
			if err != nil {
				t.Fatalf("%s: header %s: %v", where, k, err)
			}
			if v == "" {
				req.Header.Del(k)
			} else {
				req.Header.Set(k, v)
			}
		}
		status, header, raw := roundTrip(t, req)
		var got any
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &got); err != nil {
				got = nil
			}
		}
		var diffs []string
		for _, name := range sortedKeys(s.Capture) {
			m, _ := got.(map[string]any)
			v, ok := lookup(m, s.Capture[name])
			if !ok {
				diffs = append(diffs, fmt.Sprintf("capture %s: the response body has nothing at %q", name, s.Capture[name]))
				continue
			}
			vars[name] = fmt.Sprint(v)
		}
		if status != s.Response.Status {
			diffs = append(diffs, fmt.Sprintf("status: want %d, got %d", s.Response.Status, status))
		}
		for _, k := range sortedKeys(s.Response.Headers) {
			w, err := expandString(s.Response.Headers[k], vars)
			if err != nil {
				t.Fatalf("%s: expected header %s: %v", where, k, err)
			}
			if g := header.Get(k); g == "" || w != "*" && g != w {
				diffs = append(diffs, fmt.Sprintf("header %s: want %q, got %q", k, w, g))
			}
		}
		if len(s.Response.Body) > 0 {
			w, err := expandJSON(s.Response.Body, vars)
			if err != nil {
				t.Fatalf("%s: expected body: %v", where, err)
			}
			if got == nil {
				diffs = append(diffs, "body: want JSON, got "+truncate(string(raw), 200))
			} else {
				diffs = append(diffs, matchJSON("$", w, got)...)
			}
		}
		if len(diffs) > 0 {
			diffs = append(diffs, fmt.Sprintf("response: HTTP %d %s", status, truncate(string(raw), 1000)))
			if status != s.Response.Status || slices.ContainsFunc(diffs, func(d string) bool { return strings.HasPrefix(d, "capture ") }) {
				t.Fatalf("%s:\n  %s", where, strings.Join(diffs, "\n  "))
			}
			t.Errorf("%s:\n  %s", where, strings.Join(diffs, "\n  "))
		}
	}
}
