package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// The replays: request/response conversations of the Okta and Microsoft Entra ID
// provisioning connectors, typed from the vendors' published documentation, run end to
// end through the real handler on every database, one fresh server per file.
//
// A fixture is testdata/<vendor>/NN-name.json:
//
//	{"source": "https://… the page the requests are typed from",
//	 "description": "what the connector does here",
//	 "profile": "okta" | "entra" | "rfc-tolerant",   // the client profile of the replay's token
//	 "steps": [{"note": "…",
//	            "request": {"method": "POST", "path": "/Users", "headers": {…}, "body": {…}},
//	            "response": {"status": 201 | [200, 204], "headers": {…}, "body": {…expected subset…}},
//	            "capture": {"userId": "id"},
//	            "knownIssue": "…"}]}
//
// Paths are relative to /scim/v2 and their queries are written unencoded. {{name}} in a
// path, a header value or any string or key of a body stands for a value captured by an
// earlier step (or by the same step, for its own expectations); {{baseUrl}} is the
// server's /scim/v2 URL. Response headers compare exactly, "*" meaning present. The body
// rules are matchJSON's. A 204 must have no body.

// replayDirs are the fixture folders, one a vendor.
var replayDirs = []string{"okta", "entra"}

// replayFile is one conversation.
type replayFile struct {
	Source      string       `json:"source"`
	Description string       `json:"description"`
	Profile     string       `json:"profile"`
	Steps       []replayStep `json:"steps"`
}

type replayStep struct {
	// Note says why the step is there; it is not checked.
	Note     string         `json:"note,omitempty"`
	Request  replayRequest  `json:"request"`
	Response replayResponse `json:"response"`
	// Capture maps a variable name to a dotted path in the response body
	// ("id", "Resources.0.id").
	Capture map[string]string `json:"capture,omitempty"`
	// KnownIssue marks a step whose answer the server is known to get wrong: the
	// request is still sent (later steps depend on it), its differences are logged
	// rather than failed, and a step so marked that passes fails, so that the mark is
	// removed once the server is fixed.
	KnownIssue string `json:"knownIssue,omitempty"`
}

type replayRequest struct {
	Method string `json:"method"`
	// Path is relative to /scim/v2. A query is written unencoded
	// (?filter=userName eq "x"); the runner encodes each parameter.
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

type replayResponse struct {
	// Status is one code, or a list of the codes the documents allow.
	Status  statusSet         `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the expected subset of the response body; absent means unchecked.
	// A 204 must have no body at all.
	Body json.RawMessage `json:"body,omitempty"`
}

// statusSet reads a status code or a list of them.
type statusSet []int

func (s *statusSet) UnmarshalJSON(b []byte) error {
	var one int
	if err := json.Unmarshal(b, &one); err == nil {
		*s = statusSet{one}
		return nil
	}
	var many []int
	if err := json.Unmarshal(b, &many); err != nil || len(many) == 0 {
		return fmt.Errorf("status must be a code or a non-empty list of codes, not %s", b)
	}
	*s = many
	return nil
}

func (s statusSet) String() string {
	if len(s) == 1 {
		return strconv.Itoa(s[0])
	}
	parts := make([]string, len(s))
	for i, c := range s {
		parts[i] = strconv.Itoa(c)
	}
	return "one of " + strings.Join(parts, ", ")
}

// loadReplay reads a fixture strictly: an unknown field is a typo, not a comment.
func loadReplay(path string) (replayFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return replayFile{}, err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var f replayFile
	if err := d.Decode(&f); err != nil {
		return replayFile{}, fmt.Errorf("%s: %w", path, err)
	}
	var problems []string
	if !strings.HasPrefix(f.Source, "https://") {
		problems = append(problems, "source must be the https:// URL of the document the conversation is typed from")
	}
	if f.Description == "" {
		problems = append(problems, "description is empty")
	}
	if !slices.Contains([]string{scim.ProfileOkta, scim.ProfileEntra, scim.ProfileTolerant}, f.Profile) {
		problems = append(problems, fmt.Sprintf("profile %q: use okta, entra or rfc-tolerant", f.Profile))
	}
	if len(f.Steps) == 0 {
		problems = append(problems, "no steps")
	}
	for i, s := range f.Steps {
		if s.Request.Method == "" || !strings.HasPrefix(s.Request.Path, "/") {
			problems = append(problems, fmt.Sprintf("step %d: request needs a method and a path starting with /", i+1))
		}
		if len(s.Response.Status) == 0 {
			problems = append(problems, fmt.Sprintf("step %d: response needs a status", i+1))
		}
	}
	if len(problems) > 0 {
		return replayFile{}, fmt.Errorf("%s: %s", path, strings.Join(problems, "; "))
	}
	return f, nil
}

func TestReplay(t *testing.T) {
	fixtures := map[string][]string{} // vendor -> fixture paths, in file order
	for _, v := range replayDirs {
		paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", v, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) == 0 {
			t.Fatalf("no fixtures in testdata/%s", v)
		}
		sort.Strings(paths)
		fixtures[v] = paths
	}
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			for _, v := range replayDirs {
				t.Run(v, func(t *testing.T) {
					for _, path := range fixtures[v] {
						t.Run(strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) {
							f, err := loadReplay(path)
							if err != nil {
								t.Fatal(err)
							}
							e := newEnv(t, b, scimhttp.Options{MaxBodyBytes: 64 << 10})
							token, err := e.tokens.Issue(context.Background(), scim.DefaultTenant, scim.TokenOptions{
								Scopes:  []string{scim.ScopeSCIM},
								Profile: f.Profile,
							})
							if err != nil {
								t.Fatal(err)
							}
							runReplay(t, e, token, f)
						})
					}
				})
			}
		})
	}
}

// runReplay sends each step's request in turn and checks its answer.
func runReplay(t *testing.T, e *env, token string, f replayFile) {
	t.Helper()
	vars := map[string]string{"baseUrl": e.srv.URL + scimhttp.Prefix}
	for i, s := range f.Steps {
		n := i + 1
		path, err := expandString(s.Request.Path, vars)
		if err != nil {
			t.Fatalf("step %d %s %s: %v", n, s.Request.Method, s.Request.Path, err)
		}
		where := fmt.Sprintf("step %d %s %s", n, s.Request.Method, path)
		var body any
		if len(s.Request.Body) > 0 {
			b, err := expandJSON(s.Request.Body, vars)
			if err != nil {
				t.Fatalf("%s: request body: %v", where, err)
			}
			body = b
		}
		var hdr []string
		for k, v := range s.Request.Headers {
			v, err := expandString(v, vars)
			if err != nil {
				t.Fatalf("%s: request header %s: %v", where, k, err)
			}
			hdr = append(hdr, k, v)
		}
		r := e.callAs(token, s.Request.Method, scimhttp.Prefix+encodeQuery(path), body, hdr...)

		// Captures come first: a step's own expectations may use them (Location).
		var diffs []string
		for _, name := range sortedKeys(s.Capture) {
			v, ok := lookup(r.body, s.Capture[name])
			if !ok {
				diffs = append(diffs, fmt.Sprintf("capture %s: the response body has nothing at %q", name, s.Capture[name]))
				continue
			}
			vars[name] = fmt.Sprint(v)
		}
		diffs = append(diffs, checkResponse(s.Response, r, vars)...)
		if len(diffs) > 0 {
			diffs = append(diffs, fmt.Sprintf("response: HTTP %d %s", r.status, truncate(r.raw, 2000)))
		}
		switch {
		case s.KnownIssue != "" && len(diffs) == 0:
			t.Errorf("%s is marked knownIssue (%s) but now answers as expected: remove the mark", where, s.KnownIssue)
		case s.KnownIssue != "":
			t.Logf("%s: check skipped, known issue: %s\n  %s", where, s.KnownIssue, strings.Join(diffs, "\n  "))
		case len(diffs) > 0 && !slices.Contains(s.Response.Status, r.status):
			// A wrong status leaves the conversation in a state later steps do not expect.
			t.Fatalf("%s:\n  %s", where, strings.Join(diffs, "\n  "))
		case len(diffs) > 0:
			t.Errorf("%s:\n  %s", where, strings.Join(diffs, "\n  "))
		}
	}
}

// checkResponse lists every way r differs from want.
func checkResponse(want replayResponse, r resp, vars map[string]string) []string {
	var diffs []string
	if !slices.Contains(want.Status, r.status) {
		diffs = append(diffs, fmt.Sprintf("status: want %s, got %d", want.Status, r.status))
	}
	for _, k := range sortedKeys(want.Headers) {
		w, err := expandString(want.Headers[k], vars)
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("header %s: %v", k, err))
			continue
		}
		got := r.header.Values(k)
		switch {
		case len(got) == 0:
			diffs = append(diffs, fmt.Sprintf("header %s: missing, want %q", k, w))
		case w != "*" && got[0] != w:
			diffs = append(diffs, fmt.Sprintf("header %s: want %q, got %q", k, w, got[0]))
		}
	}
	if r.status == 204 {
		if r.raw != "" {
			diffs = append(diffs, fmt.Sprintf("body: a 204 has no content, got %q", truncate(r.raw, 200)))
		}
		return diffs
	}
	if len(want.Body) == 0 {
		return diffs
	}
	w, err := expandJSON(want.Body, vars)
	if err != nil {
		return append(diffs, "expected body: "+err.Error())
	}
	if r.body == nil {
		return append(diffs, fmt.Sprintf("body: want a JSON object (Content-Type application/scim+json), got Content-Type %q and %q",
			r.header.Get("Content-Type"), truncate(r.raw, 200)))
	}
	return append(diffs, matchJSON("$", w, r.body)...)
}

// matchJSON compares an expected subset with an actual JSON value and returns one line
// per difference, each naming its JSON path. In want: an object's keys must all be
// present with matching values (other keys are ignored); {"$absent": true} as a value
// asserts that the key is missing; an array must have the same length and match
// element by element, unless written {"$contains": [...]}, whose elements must each
// match a different element of the actual array, in any order, or {"$unordered": [...]},
// which also requires the same length; {"$mentions": [...]} matches a string that
// contains each of the given strings (the part of a message a client relies on, such
// as the emails a refusal names, without its wording); the string "*" matches any
// present, non-null value; anything else must be equal.
func matchJSON(path string, want, got any) []string {
	switch w := want.(type) {
	case string:
		if w == "*" {
			if got == nil {
				return []string{fmt.Sprintf("%s: want any value, got null", path)}
			}
			return nil
		}
	case map[string]any:
		if m, ok := w["$mentions"]; ok && len(w) == 1 {
			return matchMentions(path, m, got)
		}
		if c, ok := w["$contains"]; ok && len(w) == 1 {
			return matchContains(path, c, got, false)
		}
		if c, ok := w["$unordered"]; ok && len(w) == 1 {
			return matchContains(path, c, got, true)
		}
		if _, ok := w["$absent"]; ok && len(w) == 1 {
			return []string{fmt.Sprintf("%s: {\"$absent\": true} only applies to an object's key", path)}
		}
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %s", path, show(got))}
		}
		var diffs []string
		for _, k := range sortedKeys(w) {
			p := path + "." + k
			if a, ok := w[k].(map[string]any); ok && len(a) == 1 && a["$absent"] != nil {
				if a["$absent"] != true {
					diffs = append(diffs, fmt.Sprintf("%s: $absent must be true", p))
				} else if v, present := g[k]; present {
					diffs = append(diffs, fmt.Sprintf("%s: want no such key, got %s", p, show(v)))
				}
				continue
			}
			v, present := g[k]
			if !present {
				diffs = append(diffs, fmt.Sprintf("%s: missing, want %s", p, show(w[k])))
				continue
			}
			diffs = append(diffs, matchJSON(p, w[k], v)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an array, got %s", path, show(got))}
		}
		if len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d elements, got %d: %s", path, len(w), len(g), show(got))}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, matchJSON(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return diffs
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: want %s, got %s", path, show(want), show(got))}
	}
	return nil
}

// matchMentions checks that got is a string containing each of the strings in want.
func matchMentions(path string, want, got any) []string {
	parts, ok := want.([]any)
	if !ok || len(parts) == 0 {
		return []string{fmt.Sprintf("%s: $mentions takes a non-empty array of strings", path)}
	}
	g, ok := got.(string)
	if !ok {
		return []string{fmt.Sprintf("%s: want a string, got %s", path, show(got))}
	}
	var diffs []string
	for _, p := range parts {
		s, ok := p.(string)
		if !ok || s == "" {
			return []string{fmt.Sprintf("%s: $mentions takes a non-empty array of strings", path)}
		}
		if !strings.Contains(g, s) {
			diffs = append(diffs, fmt.Sprintf("%s: want a string mentioning %q, got %q", path, s, g))
		}
	}
	return diffs
}

// matchContains checks that every expected element matches a distinct actual one;
// exact also requires as many actual elements as expected ones.
func matchContains(path string, want, got any, exact bool) []string {
	w, ok := want.([]any)
	if !ok {
		return []string{fmt.Sprintf("%s: $contains and $unordered take an array", path)}
	}
	g, ok := got.([]any)
	if !ok {
		return []string{fmt.Sprintf("%s: want an array, got %s", path, show(got))}
	}
	if exact && len(g) != len(w) {
		return []string{fmt.Sprintf("%s: want %d elements in any order, got %d: %s", path, len(w), len(g), show(got))}
	}
	used := make([]bool, len(g))
	var diffs []string
	for i, we := range w {
		found, closest, closestDiffs := false, -1, []string(nil)
		for j, ge := range g {
			if used[j] {
				continue
			}
			d := matchJSON(fmt.Sprintf("%s[%d]", path, j), we, ge)
			if len(d) == 0 {
				used[j], found = true, true
				break
			}
			if closest < 0 || len(d) < len(closestDiffs) {
				closest, closestDiffs = j, d
			}
		}
		if !found {
			msg := fmt.Sprintf("%s: no element matches expected element %d %s", path, i, show(we))
			if closest >= 0 {
				msg += fmt.Sprintf("; the closest, element %d, differs:\n    %s", closest, strings.Join(closestDiffs, "\n    "))
			}
			diffs = append(diffs, msg)
		}
	}
	return diffs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return truncate(string(b), 400)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// lookup follows a dotted path ("Resources.0.id") through a decoded body.
func lookup(body map[string]any, path string) (any, bool) {
	var cur any = body
	for _, k := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[k]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, cur != nil
}

var placeholder = regexp.MustCompile(`\{\{([A-Za-z0-9_]+)\}\}`)

// expandString replaces every {{name}} with its captured value.
func expandString(s string, vars map[string]string) (string, error) {
	var missing []string
	out := placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-2]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("{{%s}} has not been captured by an earlier step", strings.Join(missing, "}}, {{"))
	}
	return out, nil
}

// expandJSON decodes raw and expands placeholders in every string and key.
func expandJSON(raw json.RawMessage, vars map[string]string) (any, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return expandValue(v, vars)
}

func expandValue(v any, vars map[string]string) (any, error) {
	switch x := v.(type) {
	case string:
		return expandString(x, vars)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ev, err := expandValue(e, vars)
			if err != nil {
				return nil, err
			}
			out[i] = ev
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			kk, err := expandString(k, vars)
			if err != nil {
				return nil, err
			}
			ev, err := expandValue(e, vars)
			if err != nil {
				return nil, err
			}
			out[kk] = ev
		}
		return out, nil
	}
	return v, nil
}

// encodeQuery percent-encodes the parameters of a path's query as a client would
// send them; the fixtures keep them readable.
func encodeQuery(path string) string {
	p, q, ok := strings.Cut(path, "?")
	if !ok {
		return path
	}
	var parts []string
	for _, kv := range strings.Split(q, "&") {
		k, v, _ := strings.Cut(kv, "=")
		parts = append(parts, url.QueryEscape(k)+"="+strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
	}
	return p + "?" + strings.Join(parts, "&")
}

// TestReplayMatcher checks the matcher the replays rely on: it must catch every kind
// of difference, and only those.
func TestReplayMatcher(t *testing.T) {
	cases := []struct {
		name      string
		want, got string
		diff      string // "" when they must match; else a substring of the difference
	}{
		{"equal subset", `{"a":1,"b":{"c":"x"}}`, `{"a":1,"b":{"c":"x","d":2},"e":true}`, ""},
		{"wrong value", `{"a":{"b":"x"}}`, `{"a":{"b":"y"}}`, `$.a.b: want "x", got "y"`},
		{"wrong type", `{"a":false}`, `{"a":"False"}`, `$.a: want false, got "False"`},
		{"missing key", `{"a":1,"b":2}`, `{"a":1}`, `$.b: missing, want 2`},
		{"null is not absent", `{"a":"*"}`, `{"a":null}`, `$.a: want any value, got null`},
		{"star matches any value", `{"a":"*","b":"*"}`, `{"a":{"x":1},"b":0}`, ""},
		{"star needs the key", `{"a":"*"}`, `{}`, `$.a: missing`},
		{"array length", `{"a":[1,2]}`, `{"a":[1,2,3]}`, `$.a: want 2 elements, got 3`},
		{"empty array is not missing", `{"Resources":[]}`, `{}`, `$.Resources: missing`},
		{"array elements in order", `{"a":[{"v":1},{"v":2}]}`, `{"a":[{"v":2},{"v":1}]}`, `$.a[0].v: want 1, got 2`},
		{"array element subset", `{"a":[{"v":1}]}`, `{"a":[{"v":1,"w":2}]}`, ""},
		{"contains any order", `{"a":{"$contains":[{"v":2},{"v":1}]}}`, `{"a":[{"v":1},{"v":2},{"v":3}]}`, ""},
		{"contains missing element", `{"a":{"$contains":[{"v":4}]}}`, `{"a":[{"v":1}]}`, `$.a: no element matches expected element 0`},
		{"contains distinct elements", `{"a":{"$contains":[{"v":1},{"v":1}]}}`, `{"a":[{"v":1}]}`, `no element matches expected element 1`},
		{"unordered same set", `{"a":{"$unordered":[{"v":2},{"v":1}]}}`, `{"a":[{"v":1},{"v":2}]}`, ""},
		{"unordered extra element", `{"a":{"$unordered":[{"v":1}]}}`, `{"a":[{"v":1},{"v":2}]}`, `$.a: want 1 elements in any order, got 2`},
		{"absent holds", `{"members":{"$absent":true}}`, `{"id":"x"}`, ""},
		{"unexpected key under absent", `{"members":{"$absent":true}}`, `{"members":[]}`, `$.members: want no such key, got []`},
		{"nested path named", `{"Resources":[{"emails":[{"value":"a"}]}]}`, `{"Resources":[{"emails":[{"value":"b"}]}]}`, `$.Resources[0].emails[0].value`},
		{"number compares by value", `{"n":1}`, `{"n":1.0}`, ""},
		{"object where scalar", `{"a":{"b":1}}`, `{"a":"x"}`, `$.a: want an object, got "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want, got any
			if err := json.Unmarshal([]byte(c.want), &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(c.got), &got); err != nil {
				t.Fatal(err)
			}
			diffs := strings.Join(matchJSON("$", want, got), "\n")
			switch {
			case c.diff == "" && diffs != "":
				t.Errorf("want a match, got differences:\n%s", diffs)
			case c.diff != "" && !strings.Contains(diffs, c.diff):
				t.Errorf("want a difference containing %q, got %q", c.diff, diffs)
			}
		})
	}
	t.Run("placeholders", func(t *testing.T) {
		vars := map[string]string{"id": "42"}
		if s, err := expandString("/Users/{{id}}", vars); err != nil || s != "/Users/42" {
			t.Errorf("expand: %q %v", s, err)
		}
		if _, err := expandString("/Users/{{nope}}", vars); err == nil || !strings.Contains(err.Error(), "{{nope}}") {
			t.Errorf("an unknown placeholder must fail naming it: %v", err)
		}
	})
	t.Run("query encoding", func(t *testing.T) {
		got := encodeQuery(`/Users?filter=userName eq "a+b@x.io"&startIndex=1`)
		want := `/Users?filter=userName%20eq%20%22a%2Bb%40x.io%22&startIndex=1`
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})
	t.Run("status list", func(t *testing.T) {
		var s statusSet
		if err := json.Unmarshal([]byte(`[200,204]`), &s); err != nil || !slices.Equal(s, statusSet{200, 204}) {
			t.Errorf("%v %v", s, err)
		}
		if err := json.Unmarshal([]byte(`"200"`), &s); err == nil {
			t.Error("a string status must be refused")
		}
	})
}
