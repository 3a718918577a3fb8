package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
	pgstore "github.com/scimd/scimd/store/postgres"
	"github.com/scimd/scimd/store/sqlite"
	"github.com/scimd/scimd/store/storetest"
)

// The onboarding family (compat/CONTRACT.md, onboarding.*): golden cases from testdata/compat/onboarding,
// the read-back through SCIM, the body limit, and the background worker over large
// batches, on every database.

const (
	onboardingUsers = "/onboarding/provision/standalone/users"
	onboardingTasks = "/onboarding/provision/tasks/"
)

// onboardingCase is one golden file: a tenant set up by given, requests in order
// with their expected status, headers and body subset (see matchJSON), values
// captured for later steps ({{name}}), and what SCIM and the outbox hold afterwards.
type onboardingCase struct {
	Description string `json:"description"`
	// Rules are the ids of the compat/CONTRACT.md rules the case checks (required).
	Rules []string `json:"rules"`
	Given struct {
		Users []struct {
			Email     string   `json:"email"`
			FirstName string   `json:"firstName"`
			LastName  string   `json:"lastName"`
			Roles     []string `json:"roles"`
			RegionID  string   `json:"regionId"`
		} `json:"users"`
		// Settings are `scimd tenant set` pairs for the default tenant.
		Settings []string `json:"settings"`
	} `json:"given"`
	Steps []struct {
		Request struct {
			Method string `json:"method"`
			Path   string `json:"path"`
			// As names the credentials: default (all scopes, the default), scim_only,
			// sandbox, other (another tenant), wrong (an unknown token) or none.
			As      string            `json:"as"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
			RawBody *string           `json:"rawBody"`
		} `json:"request"`
		Response struct {
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"response"`
		Capture map[string]string `json:"capture"`
	} `json:"steps"`
	Then struct {
		// Users maps an email to the expected subset of its SCIM User, or null when
		// no such user may exist.
		Users map[string]json.RawMessage `json:"users"`
		// Outbox is the expected list of the default tenant's messages, each
		// {kind, recipient, payload}.
		Outbox json.RawMessage `json:"outbox"`
	} `json:"then"`
}

func TestOnboardingGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "compat", "onboarding", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			for _, f := range files {
				t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
					raw, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					var c onboardingCase
					d := json.NewDecoder(bytes.NewReader(raw))
					d.DisallowUnknownFields()
					if err := d.Decode(&c); err != nil {
						t.Fatalf("%s: %v", f, err)
					}
					if err := checkContractRules(c.Rules); err != nil {
						t.Fatalf("%s: %v", f, err)
					}
					onboardingRunCase(t, newEnv(t, b, scimhttp.Options{MaxBodyBytes: 64 << 10}), c)
				})
			}
		})
	}
}

func onboardingRunCase(t *testing.T, e *env, c onboardingCase) {
	ctx := context.Background()
	for _, u := range c.Given.Users {
		onboardingGivenUser(t, e, u.Email, u.FirstName, u.LastName, u.RegionID, u.Roles...)
	}
	if len(c.Given.Settings) > 0 {
		if _, err := e.tokens.SetTenant(ctx, scim.DefaultTenant, c.Given.Settings); err != nil {
			t.Fatal(err)
		}
	}
	vars := onboardingCredentialSet(t, e)
	for i, s := range c.Steps {
		path, err := expandString(s.Request.Path, vars)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		as := s.Request.As
		if as == "" {
			as = "default"
		}
		token, ok := vars[as]
		if !ok && as != "none" {
			t.Fatalf("step %d: unknown credentials %q", i, as)
		}
		var body []byte
		switch {
		case s.Request.RawBody != nil:
			body = []byte(*s.Request.RawBody)
		case len(s.Request.Body) > 0:
			body = s.Request.Body
		}
		hdr := map[string]string{}
		for k, v := range s.Request.Headers {
			if hdr[k], err = expandString(v, vars); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		r := onboardingDo(t, e, token, s.Request.Method, path, body, hdr)
		if r.status != s.Response.Status {
			t.Fatalf("step %d: %s %s: status %d, want %d; body %s", i, s.Request.Method, path, r.status, s.Response.Status, r.raw)
		}
		for k, v := range s.Response.Headers {
			if got := r.header.Get(k); got != v {
				t.Errorf("step %d: header %s = %q, want %q", i, k, got, v)
			}
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("step %d: Content-Type %q, want application/json", i, ct)
		}
		if len(s.Response.Body) > 0 {
			want, err := expandJSON(s.Response.Body, vars)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			for _, d := range matchJSON("body", want, r.body) {
				t.Errorf("step %d: %s", i, d)
			}
		}
		for name, p := range s.Capture {
			m, _ := r.body.(map[string]any)
			v, ok := lookup(m, p)
			if !ok {
				t.Fatalf("step %d: nothing at %s to capture as %s: %s", i, p, name, r.raw)
			}
			vars[name] = fmt.Sprint(v)
		}
	}
	for email, want := range c.Then.Users {
		got := onboardingSCIMUser(t, e, email)
		if string(want) == "null" {
			if got != nil {
				t.Errorf("then: user %s exists, want none", email)
			}
			continue
		}
		if got == nil {
			t.Errorf("then: no user %s", email)
			continue
		}
		var w any
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		for _, d := range matchJSON(email, w, got) {
			t.Errorf("then: %s", d)
		}
	}
	if len(c.Then.Outbox) > 0 {
		var w any
		if err := json.Unmarshal(c.Then.Outbox, &w); err != nil {
			t.Fatal(err)
		}
		for _, d := range matchJSON("outbox", w, onboardingOutbox(t, e, scim.DefaultTenant)) {
			t.Errorf("then: %s", d)
		}
	}
}

// onboardingCredentialSet issues the credentials golden cases name; the map also
// serves as their {{placeholders}}.
func onboardingCredentialSet(t *testing.T, e *env) map[string]string {
	t.Helper()
	ctx := context.Background()
	scimOnly, err := e.tokens.IssueToken(ctx, scim.DefaultTenant, []string{scim.ScopeSCIM}, "")
	if err != nil {
		t.Fatal(err)
	}
	sandbox, err := e.tokens.Issue(ctx, scim.DefaultTenant, scim.TokenOptions{Scopes: []string{scim.ScopeCompat}, Sandbox: true})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"default":   e.token,
		"scim_only": scimOnly,
		"sandbox":   sandbox,
		"other":     e.newTenant("other", scim.ScopeCompat),
		"wrong":     "scimd_no-such-token-at-all-anywhere",
	}
}

// onboardingGivenUser creates a user through the SCIM service.
func onboardingGivenUser(t *testing.T, e *env, email, first, last, region string, roles ...string) {
	t.Helper()
	body := map[string]any{"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": email,
		"emails": []any{map[string]any{"value": email, "type": "work", "primary": true}}, "active": true}
	if first != "" || last != "" {
		body["name"] = map[string]any{"givenName": first, "familyName": last}
	}
	if len(roles) > 0 {
		var rs []any
		for _, r := range roles {
			rs = append(rs, map[string]any{"value": r})
		}
		body["roles"] = rs
	}
	if region != "" {
		body["schemas"] = []any{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}
		body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = map[string]any{"division": region}
	}
	tn, err := e.st.TenantByName(context.Background(), scim.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(context.Background(), tn.ID, scim.UserKind, body, scim.Projection{}); err != nil {
		t.Fatalf("given user %s: %v", email, err)
	}
}

// onboardingResp is a decoded answer of the family (application/json).
type onboardingResp struct {
	status int
	header http.Header
	body   any
	raw    string
}

// result returns the "result" object of a batch answer.
func (r onboardingResp) result(t *testing.T) map[string]any {
	t.Helper()
	m, _ := r.body.(map[string]any)
	res, ok := m["result"].(map[string]any)
	if !ok {
		t.Fatalf("no result object: %s", truncate(r.raw, 400))
	}
	return res
}

func onboardingDo(t *testing.T, e *env, token, method, path string, body []byte, hdr map[string]string) onboardingResp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := onboardingResp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, truncate(string(raw), 400))
		}
	}
	return r
}

// onboardingSend sends v as JSON with the default tenant's token.
func onboardingSend(t *testing.T, e *env, method, path string, v any) onboardingResp {
	t.Helper()
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	return onboardingDo(t, e, e.token, method, path, body, nil)
}

// onboardingSCIMUser reads the user with this userName through /scim/v2, or nil.
func onboardingSCIMUser(t *testing.T, e *env, email string) map[string]any {
	t.Helper()
	r := e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "`+email+`"`), nil).want(t, http.StatusOK)
	list, _ := r.body["Resources"].([]any)
	if len(list) == 0 {
		return nil
	}
	if len(list) > 1 {
		t.Fatalf("%d users named %s", len(list), email)
	}
	return list[0].(map[string]any)
}

// onboardingOutbox returns a tenant's messages as JSON values.
func onboardingOutbox(t *testing.T, e *env, tenant string) []any {
	t.Helper()
	ctx := context.Background()
	tn, err := e.st.TenantByName(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := e.st.Outbox(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	out := []any{}
	for _, m := range msgs {
		var p any
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatalf("message payload %s: %v", m.Payload, err)
		}
		out = append(out, map[string]any{"kind": m.Kind, "recipient": m.Recipient, "payload": p, "user_id": m.UserID})
	}
	return out
}

// TestOnboardingReadBack checks that a provisioned user is, through /scim/v2, what
// the vendor call meant, and that its invitation is queued for it.
func TestOnboardingReadBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		r := onboardingSend(t, e, "POST", onboardingUsers, []any{
			map[string]any{"email": "  Field.Worker@Example.COM ", "firstName": " Field ", "lastName": "Worker", "roles": []any{"Resource", "Scheduler"},
				"sendInvitation": true, "resource": map[string]any{"regionId": "0003Q000000AbCdE", "isActive": false}},
		})
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if res := r.result(t); res["inserted"] != 1.0 || res["total"] != 1.0 {
			t.Fatalf("result %v", res)
		}
		u := onboardingSCIMUser(t, e, "field.worker@example.com")
		if u == nil {
			t.Fatal("the user is not found through SCIM by its normalized email")
		}
		want := map[string]any{
			"userName": "field.worker@example.com",
			"active":   true,
			"name":     map[string]any{"givenName": "Field", "familyName": "Worker"},
			"emails":   []any{map[string]any{"value": "field.worker@example.com", "type": "work", "primary": true}},
			"roles":    []any{map[string]any{"value": "Resource"}, map[string]any{"value": "Scheduler"}},
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"division": "0003Q000000AbCdE"},
			"meta": map[string]any{"resourceType": "User"},
		}
		for _, d := range matchJSON("user", want, u) {
			t.Error(d)
		}
		// The resource's region is filterable like any enterprise attribute.
		f := e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division eq "0003Q000000AbCdE"`), nil).want(t, http.StatusOK)
		if f.body["totalResults"] != 1.0 {
			t.Errorf("filter on division: %v", f.body["totalResults"])
		}
		box := onboardingOutbox(t, e, scim.DefaultTenant)
		wantBox := []any{map[string]any{"kind": "invitation", "recipient": "field.worker@example.com", "user_id": u["id"],
			"payload": map[string]any{"first_name": "Field", "last_name": "Worker", "set_password": true}}}
		for _, d := range matchJSON("outbox", wantBox, box) {
			t.Error(d)
		}
		// A change through SCIM is what PATCH then works on.
		e.call("PATCH", "/scim/v2/Users/"+u["id"].(string), patchBody(op("replace", "name.givenName", "Fieldy"))).want(t, http.StatusOK)
		p := onboardingSend(t, e, "PATCH", onboardingUsers, []any{map[string]any{"email": "FIELD.WORKER@example.com", "lastName": "Walker"}})
		if p.status != http.StatusOK || p.result(t)["updated"] != 1.0 {
			t.Fatalf("PATCH: %d %s", p.status, p.raw)
		}
		u = onboardingSCIMUser(t, e, "field.worker@example.com")
		for _, d := range matchJSON("user", map[string]any{"name": map[string]any{"givenName": "Fieldy", "familyName": "Walker"},
			"meta": map[string]any{"version": `W/"3"`}}, u) {
			t.Error(d)
		}
	})
}

// onboardingBatch returns n entries with emails user00000@example.com… (from
// first), each with an invitation when invite says so.
func onboardingBatch(first, n int, invite func(i int) bool) []any {
	out := make([]any, n)
	for i := range n {
		out[i] = onboardingEntry(first+i, invite != nil && invite(first+i))
	}
	return out
}

func onboardingEmail(i int) string { return fmt.Sprintf("user%05d@example.com", i) }

func onboardingEntry(i int, invite bool) map[string]any {
	return map[string]any{"email": onboardingEmail(i), "firstName": "User", "lastName": strconv.Itoa(i), "roles": []any{"Scheduler"}, "sendInvitation": invite}
}

// TestOnboardingBodyLimit: the family has its own body limit (8 MiB), above the
// server's general one, and refuses batches over 10,000 users.
func TestOnboardingBodyLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		// 1,000 users is more than the 64 KiB the test server allows elsewhere.
		batch := onboardingBatch(0, 1000, nil)
		raw, _ := json.Marshal(batch)
		if len(raw) <= 64<<10 {
			t.Fatalf("the batch is only %d bytes", len(raw))
		}
		r := onboardingSend(t, e, "POST", onboardingUsers, batch)
		if r.status != http.StatusOK || r.result(t)["inserted"] != 1000.0 {
			t.Fatalf("1,000 users: %d %s", r.status, truncate(r.raw, 300))
		}
		big := bytes.Repeat([]byte(" "), 8<<20)
		big = append(append([]byte("["), big...), ']')
		if r := onboardingDo(t, e, e.token, "POST", onboardingUsers, big, nil); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("a body over 8 MiB: %d %s", r.status, r.raw)
		} else if m, _ := r.body.(map[string]any); m["errorType"] != "request_too_large" {
			t.Errorf("413 body %s", r.raw)
		}
		many := make([]any, 10001)
		for i := range many {
			many[i] = map[string]any{"email": "x@example.com"}
		}
		if r := onboardingSend(t, e, "POST", onboardingUsers, many); r.status != http.StatusBadRequest || !strings.Contains(r.raw, "too_many_users") {
			t.Errorf("10,001 users: %d %s", r.status, r.raw)
		}
		if u := onboardingSCIMUser(t, e, "x@example.com"); u != nil {
			t.Error("a refused batch wrote a user")
		}
	})
}

// onboardingReopen opens a second store on the database e runs on, as a restarted
// process (or another replica) would.
func onboardingReopen(t *testing.T, e *env) *gormstore.Store {
	t.Helper()
	db := e.st.DB()
	var st *gormstore.Store
	var err error
	switch db.Dialector.Name() {
	case "sqlite":
		var files []struct {
			Seq        int
			Name, File string
		}
		if err := db.Raw(`PRAGMA database_list`).Scan(&files).Error; err != nil || len(files) == 0 {
			t.Fatalf("database_list: %v", err)
		}
		st, err = sqlite.Open(files[0].File, zaptest.NewLogger(t))
	case "postgres":
		var schema string
		if err := db.Raw(`SELECT current_schema()`).Scan(&schema).Error; err != nil {
			t.Fatal(err)
		}
		u, perr := url.Parse(os.Getenv(storetest.PostgresEnv))
		if perr != nil {
			t.Fatal(perr)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		st, err = pgstore.Open(u.String(), zaptest.NewLogger(t))
	default:
		t.Fatalf("unknown database %s", db.Dialector.Name())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// onboardingWorker returns a task worker over its own store and service on e's
// database.
func onboardingWorker(t *testing.T, e *env, o scim.TaskOptions) (*scim.Tasks, *gormstore.Store) {
	t.Helper()
	st := onboardingReopen(t, e)
	limits := scim.DefaultLimits()
	limits.BcryptCost = 4
	svc := scim.NewService(st, zaptest.NewLogger(t), scim.WithLimits(limits))
	return scim.NewTasks(st, svc, zaptest.NewLogger(t), o), st
}

// onboardingTaskStatus reads a task through the route.
func onboardingTaskStatus(t *testing.T, e *env, id string) (task map[string]any, users []any) {
	t.Helper()
	r := onboardingDo(t, e, e.token, "GET", onboardingTasks+id, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("task %s: %d %s", id, r.status, r.raw)
	}
	res := r.result(t)
	task, _ = res["task"].(map[string]any)
	users, _ = res["users"].([]any)
	return task, users
}

func onboardingTenantID(t *testing.T, e *env) string {
	t.Helper()
	tn, err := e.st.TenantByName(context.Background(), scim.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

// onboardingUserCount is the tenant's number of users, through SCIM.
func onboardingUserCount(t *testing.T, e *env) int {
	t.Helper()
	r := e.call("GET", "/scim/v2/Users?count=0", nil).want(t, http.StatusOK)
	n, _ := r.body["totalResults"].(float64)
	return int(n)
}

// TestOnboardingLargeBatchRestart sends 5,000 users (with duplicates inside the
// batch and against existing users) and processes them with a worker that is
// stopped part-way, a worker that dies holding claimed entries (some of whose users
// it had already created), and a new worker on a reopened database that finishes the
// job. Every entry is accounted for exactly once and no user is created twice.
func TestOnboardingLargeBatchRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const unique, dups, total = 4800, 200, 5000
		existing := func(i int) bool { return i%48 == 0 } // 100 users exist beforehand
		invite := func(i int) bool { return i%10 == 0 }   // 480 entries ask for an invitation
		for i := range unique {
			if existing(i) {
				onboardingGivenUser(t, e, onboardingEmail(i), "Old", "User", "")
			}
		}
		batch := onboardingBatch(0, unique, invite)
		for j := range dups { // later entries repeat earlier emails, in upper case
			m := onboardingEntry((j*7)%unique, false)
			m["email"] = strings.ToUpper(m["email"].(string))
			batch = append(batch, m)
		}
		r := onboardingSend(t, e, "POST", onboardingUsers, batch)
		if r.status != http.StatusAccepted {
			t.Fatalf("5,000 users: %d %s", r.status, truncate(r.raw, 300))
		}
		res := r.result(t)
		num, _ := res["taskId"].(float64)
		id := strconv.FormatFloat(num, 'f', -1, 64)
		if num < 1 || res["total"] != float64(total) || res["inserted"] != 0.0 {
			t.Fatalf("202 result %v", res)
		}
		task, users := onboardingTaskStatus(t, e, id)
		if task["completedAt"] != nil || task["success"] != false || len(users) != total {
			t.Fatalf("a queued task: %v with %d users", task, len(users))
		}

		// A first worker runs three steps, then stops.
		w1, _ := onboardingWorker(t, e, scim.TaskOptions{Batch: 500, Lease: time.Second})
		for range 3 {
			if n, err := w1.Step(ctx); err != nil || n != 500 {
				t.Fatalf("step: %d, %v", n, err)
			}
		}
		if task, _ := onboardingTaskStatus(t, e, id); task["completedAt"] != nil || task["lastCheckedInAt"] == nil {
			t.Fatalf("part-way: %v", task)
		}
		// A worker dies holding 200 entries after creating the users of 50 of them.
		dead, err := e.st.ClaimTaskEntries(ctx, "", 200, store.Claim{Token: "dead-worker", Lease: time.Second})
		if err != nil || len(dead) != 200 {
			t.Fatalf("claim: %d, %v", len(dead), err)
		}
		tenantID := onboardingTenantID(t, e)
		deadInvites := 0
		for _, d := range dead[:50] {
			err := e.st.Create(ctx, &store.Resource{TenantID: tenantID, Kind: store.KindUser, ID: d.ResourceID, UserName: d.Key,
				Doc: []byte(`{"userName":` + strconv.Quote(d.Key) + `}`)})
			if errors.Is(err, store.ErrConflict) {
				continue // a user that exists already: the dead worker failed it
			}
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(d.Key, "user"), "@example.com")); invite(n) {
				deadInvites++ // its invitation would have been queued with it
			}
		}

		// After a restart, a new worker on a reopened database finishes the task,
		// taking the dead worker's entries over once their lease has run out.
		w2, st2 := onboardingWorker(t, e, scim.TaskOptions{Batch: 500, Lease: time.Second})
		deadline := time.Now().Add(2 * time.Minute)
		for {
			n, err := w2.Step(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tk, err := st2.TaskByNumber(ctx, tenantID, int64(num))
			if err != nil {
				t.Fatal(err)
			}
			if tk.Completed != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the task did not complete: %+v", tk)
			}
			if n == 0 {
				time.Sleep(100 * time.Millisecond)
			}
		}

		const failed = 100 + dups // existing users, and every repeated email
		task, users = onboardingTaskStatus(t, e, id)
		if task["completedAt"] == nil || task["success"] != false || task["errorMsg"] != fmt.Sprintf("%d of %d users failed", failed, total) ||
			task["type"] != "bulk_user_import" {
			t.Errorf("completed task %v", task)
		}
		ok, bad := 0, 0
		for i, it := range users {
			u := it.(map[string]any)
			if want := strings.ToLower(batch[i].(map[string]any)["email"].(string)); u["email"] != want {
				t.Fatalf("users[%d] is %v, want %s: users are in the batch's order", i, u["email"], want)
			}
			switch u["success"] {
			case true:
				ok++
			default:
				bad++
				// A repeated email is refused before it runs (duplicate_email);
				// an existing user's when its create meets the user.
				if (i < unique && u["errorMsg"] != "A user with that email already exists") || (i >= unique && u["errorMsg"] == nil) {
					t.Errorf("users[%d]: %v", i, u)
				}
			}
		}
		if ok != total-failed || bad != failed || ok+bad != total {
			t.Errorf("%d succeeded and %d failed, want %d and %d", ok, bad, total-failed, failed)
		}
		if n := onboardingUserCount(t, e); n != unique {
			t.Errorf("%d users, want %d: one per email", n, unique)
		}
		tk, err := e.st.TaskByNumber(ctx, tenantID, int64(num))
		if err != nil {
			t.Fatal(err)
		}
		entries, err := e.st.TaskEntries(ctx, tenantID, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		heldByDead := map[int]bool{}
		for _, d := range dead {
			heldByDead[d.Seq] = true
		}
		for _, en := range entries {
			want := 1
			switch {
			case en.Seq >= unique:
				want = 0 // a repeated email is refused when queued, never claimed
			case heldByDead[en.Seq]:
				want = 2
			}
			if en.Attempts != want {
				t.Errorf("entry %d was claimed %d times, want %d", en.Seq, en.Attempts, want)
			}
		}
		box := onboardingOutbox(t, e, scim.DefaultTenant)
		seen := map[string]bool{}
		for _, m := range box {
			rcpt := m.(map[string]any)["recipient"].(string)
			if seen[rcpt] {
				t.Errorf("two invitations for %s", rcpt)
			}
			seen[rcpt] = true
		}
		// Invitations of inserted entries: 480 asked, minus the 20 of existing
		// users, minus those whose users the dead worker created without them.
		if want := 480 - 20 - deadInvites; len(box) != want {
			t.Errorf("%d invitations queued, want %d", len(box), want)
		}
	})
}

// TestOnboardingWorkersRace has two workers, each on its own connection pool like
// two replicas, race over one task: every entry is claimed and run exactly once.
func TestOnboardingWorkersRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const total = 1500
		batch := onboardingBatch(0, total-100, nil)
		batch = append(batch, onboardingBatch(0, 100, nil)...) // the last 100 repeat the first
		r := onboardingSend(t, e, "POST", onboardingUsers, batch)
		if r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, truncate(r.raw, 300))
		}
		num := int64(r.result(t)["taskId"].(float64))
		tenantID := onboardingTenantID(t, e)
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for range 2 {
			w, st := onboardingWorker(t, e, scim.TaskOptions{Batch: 20, Lease: time.Minute})
			wg.Go(func() {
				for range 1000 { // bounded: a step claims at least one entry or the task is done
					n, err := w.Step(ctx)
					if err != nil {
						errs <- err
						return
					}
					if n > 0 {
						continue
					}
					tk, err := st.TaskByNumber(ctx, tenantID, num)
					if err != nil || tk.Completed != nil {
						errs <- err
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
				errs <- errors.New("the workers did not finish")
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		tk, err := e.st.TaskByNumber(ctx, tenantID, num)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := e.st.TaskEntries(ctx, tenantID, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		done, failed := 0, 0
		for _, en := range entries {
			want := 1
			if en.Seq >= total-100 {
				want = 0 // a repeated email is refused when queued, never claimed
			}
			if en.Attempts != want {
				t.Errorf("entry %d was claimed %d times, want %d", en.Seq, en.Attempts, want)
			}
			switch en.Status {
			case store.TaskDone:
				done++
			case store.TaskFailed:
				failed++
			}
		}
		if done != total-100 || failed != 100 {
			t.Errorf("%d done and %d failed, want %d and 100", done, failed, total-100)
		}
		if n := onboardingUserCount(t, e); n != total-100 {
			t.Errorf("%d users, want %d", n, total-100)
		}
	})
}

// TestOnboardingServeWorker runs the worker as serve does and sends a large PATCH
// batch through it; stopping the worker returns promptly.
func TestOnboardingServeWorker(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		if r := onboardingSend(t, e, "POST", onboardingUsers, onboardingBatch(0, 1000, nil)); r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, truncate(r.raw, 300))
		}
		tasks, _ := onboardingWorker(t, e, scim.TaskOptions{Poll: 50 * time.Millisecond})
		stop := startWorker(context.Background(), "task", tasks.Work, zaptest.NewLogger(t))
		defer stop()
		var patch []any
		for i := range 1000 {
			patch = append(patch, map[string]any{"email": onboardingEmail(i), "lastName": "Renamed", "roles": []any{"Administrator"}})
		}
		patch = append(patch, map[string]any{"email": "nobody@example.com", "firstName": "No"})
		r := onboardingSend(t, e, "PATCH", onboardingUsers, patch)
		if r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, truncate(r.raw, 300))
		}
		id := strconv.FormatFloat(r.result(t)["taskId"].(float64), 'f', -1, 64)
		deadline := time.Now().Add(2 * time.Minute)
		var task map[string]any
		var users []any
		for {
			if task, users = onboardingTaskStatus(t, e, id); task["completedAt"] != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the worker did not complete the task: %v", task)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if task["type"] != "bulk_user_update" || task["errorMsg"] != "1 of 1001 users failed" {
			t.Errorf("task %v", task)
		}
		if last := users[1000].(map[string]any); last["success"] != false || last["errorMsg"] != "No user with that email exists" {
			t.Errorf("the unknown email: %v", last)
		}
		u := onboardingSCIMUser(t, e, onboardingEmail(999))
		for _, d := range matchJSON("user", map[string]any{"name": map[string]any{"givenName": "User", "familyName": "Renamed"},
			"roles": []any{map[string]any{"value": "Administrator"}}}, u) {
			t.Error(d)
		}
		start := time.Now()
		stop()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("stopping the worker took %v", d)
		}
	})
}

// TestOnboardingInternalErrorHidden: an unexpected error is a 500 naming only an
// error id, and the id is logged.
func TestOnboardingInternalErrorHidden(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		// Drop the tasks table under the server: the next batch cannot be stored.
		if err := e.st.DB().Exec(`DROP TABLE task_entries`).Error; err != nil {
			t.Fatal(err)
		}
		r := onboardingSend(t, e, "POST", onboardingUsers, onboardingBatch(0, 1, nil))
		m, _ := r.body.(map[string]any)
		msg, _ := m["message"].(string)
		if r.status != http.StatusInternalServerError || m["errorType"] != "internal_error" || !strings.HasPrefix(msg, "internal error (error id ") {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if strings.Contains(strings.ToLower(r.raw), "task_entries") || strings.Contains(strings.ToLower(r.raw), "sql") {
			t.Errorf("the answer leaks the cause: %s", r.raw)
		}
		errID := strings.TrimSuffix(strings.TrimPrefix(msg, "internal error (error id "), ")")
		found := false
		for _, l := range e.logs.All() {
			if l.ContextMap()["error_id"] == errID {
				found = true
			}
		}
		if !found {
			t.Errorf("error id %s not logged", errID)
		}
	})
}
