package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/account"
	scimmail "github.com/scimd/scimd/scim/mail"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// Secrets never logged: every kind of secret a client sends or scimd issues
// (passwords on every route that takes one, API tokens valid, revoked, unknown and
// malformed in each family's own header style, per-user tokens, the secrets of
// set-password and verification links, the bootstrap token) goes through the real
// handler while everything the server logs, at debug level, is captured. No log
// line and no answer may carry a secret, in clear or encoded, except the one answer
// that hands it out (the per-user token's 201, the link's own form page).

// secretRun is a server whose every log line is kept, and the answers it gave.
type secretRun struct {
	e       *env
	logs    *observer.ObservedLogs
	ob      *scim.Outbox
	sink    *sink
	answers []secretAnswer
	secrets []string
}

type secretAnswer struct {
	what   string
	header http.Header
	body   string
	may    []string // secrets this answer hands out
}

// secretEnv serves the API, the compatibility routes and the account pages, with
// an outbox delivering to an SMTP sink, and logs at debug level into an observer.
func secretEnv(t *testing.T, b storetest.Backend) *secretRun {
	t.Helper()
	st := b.Open(t)
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	limits := scim.DefaultLimits()
	limits.BcryptCost = 4
	svc := scim.NewService(st, log, scim.WithLimits(limits))
	tokens := scim.NewTokens(st, scim.WithLogger(log))
	secret, err := tokens.Bootstrap(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	sk := startSink(t, "")
	mailer, err := scimmail.New(scimmail.Config{Addr: sk.addr, TLS: scimmail.TLSNone, From: "Example <no-reply@example.com>", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ob := scim.NewOutbox(st, svc, mailer, log, scim.OutboxOptions{BaseURL: srv.URL, Backoff: time.Millisecond})
	pages := account.New(ob, []byte("0123456789abcdef0123456789abcdef"), log, account.Options{})
	var draining atomic.Bool
	mux.Handle("/", newHandler(svc, tokens, st, log, &draining, false, scimhttp.Options{MaxBodyBytes: 64 << 10}, pages.Mount))
	e := &env{t: t, srv: srv, token: secret, tokens: tokens, svc: svc, logs: logs, st: st}
	return &secretRun{e: e, logs: logs, ob: ob, sink: sk, secrets: []string{secret}}
}

// secret makes a fresh secret of the given kind and remembers it.
func (s *secretRun) secret(kind string) string {
	v := kind + "-" + randomHex(24)
	s.secrets = append(s.secrets, v)
	return v
}

// keep remembers a secret scimd issued.
func (s *secretRun) keep(t *testing.T, v string) string {
	t.Helper()
	if v == "" {
		t.Fatal("no secret to keep")
	}
	s.secrets = append(s.secrets, v)
	return v
}

// send makes a request and keeps its answer; may lists the secrets the answer
// hands out.
func (s *secretRun) send(t *testing.T, may []string, method, path string, body any, auth string, hdr ...string) resp {
	t.Helper()
	status, header, raw := roundTrip(t, s.e.newRequest(t, method, path, body, "application/json", auth, hdr...))
	r := resp{status: status, header: header, raw: string(raw)}
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &r.body)
	}
	if status >= 500 && status != http.StatusNotImplemented {
		t.Fatalf("%s %s: status %d: %s", method, path, status, raw)
	}
	s.answers = append(s.answers, secretAnswer{what: fmt.Sprintf("%s %s → %d", method, path, status), header: header, body: string(raw), may: may})
	return r
}

// page keeps a page the browser b was given.
func (s *secretRun) page(may []string, what string, p page) page {
	s.answers = append(s.answers, secretAnswer{what: what, header: p.header, body: p.body, may: may})
	return p
}

// forms is how a secret may appear in a log line or an answer.
func forms(secret string) []string {
	return []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), base64.RawURLEncoding.EncodeToString([]byte(secret)),
		url.QueryEscape(secret), html.EscapeString(secret)}
}

// check fails for any secret in any log line, or in an answer that does not hand
// it out. A Basic credential is checked in its base64 form too.
func (s *secretRun) check(t *testing.T, basics ...string) {
	t.Helper()
	var lines []string
	for _, l := range s.logs.All() {
		fields, _ := json.Marshal(l.ContextMap())
		lines = append(lines, fmt.Sprintf("%s %s %s %v %s %s", l.Level, l.LoggerName, l.Message, l.ContextMap(), fields, l.Stack))
	}
	if len(lines) < 50 {
		t.Fatalf("only %d log lines were captured; the run did not log at debug level", len(lines))
	}
	var needles []string
	for _, sec := range s.secrets {
		needles = append(needles, forms(sec)...)
	}
	for _, b := range basics {
		needles = append(needles, base64.StdEncoding.EncodeToString([]byte(b)))
	}
	for _, n := range needles {
		for _, line := range lines {
			if strings.Contains(line, n) {
				t.Errorf("a log line carries a secret (%q): %s", truncate(n, 20), truncate(line, 600))
			}
		}
	}
	for _, a := range s.answers {
		var hdr strings.Builder
		for k, vs := range a.header {
			fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(vs, ", "))
		}
		text := hdr.String() + a.body
		for _, sec := range s.secrets {
			for _, n := range forms(sec) {
				if strings.Contains(text, n) && !slicesContains(a.may, sec) {
					t.Errorf("the answer to %s carries a secret (%q): %s", a.what, truncate(n, 20), truncate(text, 600))
				}
			}
		}
	}
}

func slicesContains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// deliver runs the outbox until it has nothing due and returns the links sent, by
// recipient.
func (s *secretRun) deliver(t *testing.T) map[string]string {
	t.Helper()
	for range 10 {
		n, err := s.ob.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	out := map[string]string{}
	for _, m := range s.sink.messages() {
		link := linkOf(t, m)
		out[m.to[0]] = link
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		s.keep(t, u.Query().Get("token"))
	}
	return out
}

func TestSecretsNeverLogged(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			s := secretEnv(t, b)
			e := s.e
			tok := e.token // tenant default, all scopes
			ctx := context.Background()
			bearer := "Bearer " + tok
			app := []string{"X-App-Token", tok}

			// User passwords through SCIM: POST, PUT, PATCH, Bulk, /Me, and refusals
			// of bodies that carry one.
			pw := func() string { return s.secret("pw") }
			id := str(s.send(t, nil, "POST", "/scim/v2/Users", user("ann@example.com", "password", pw()), bearer).want(t, 201).body, "id")
			s.send(t, nil, "PUT", "/scim/v2/Users/"+id, user("ann@example.com", "password", pw()), bearer).want(t, 200)
			s.send(t, nil, "PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", "password", pw())), bearer).want(t, 200)
			s.send(t, nil, "PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", "", map[string]any{"password": pw(), "active": true})), bearer).want(t, 200)
			s.send(t, nil, "PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", "password", pw()), op("replace", "nope", 1)), bearer).wantError(t, 400, "invalidPath")
			s.send(t, nil, "PATCH", "/scim/v2/Users/"+id, patchBody(op("replace", "password", pw())), bearer, "If-Match", `W/"1"`).want(t, 412)
			s.send(t, nil, "POST", "/scim/v2/Users", user("bob@example.com", "password", pw(), "active", "maybe"), bearer).wantError(t, 400, "invalidValue")
			s.send(t, nil, "POST", "/scim/v2/Users", user("ann@example.com", "password", pw()), bearer).wantError(t, 409, "uniqueness")
			s.send(t, nil, "POST", "/scim/v2/Users", user("long@example.com", "password", pw()+strings.Repeat("x", 72)), bearer).wantError(t, 400, "invalidValue")
			s.send(t, nil, "POST", "/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bad@example.com","password":"`+pw()+`",}`, bearer).wantError(t, 400, "invalidSyntax")
			s.send(t, nil, "POST", "/scim/v2/Bulk", map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:BulkRequest"}, "Operations": []any{
				map[string]any{"method": "POST", "path": "/Users", "bulkId": "a", "data": user("bulk@example.com", "password", pw())},
				map[string]any{"method": "POST", "path": "/Users", "bulkId": "b", "data": user("ann@example.com", "password", pw())},
				map[string]any{"method": "PATCH", "path": "/Users/" + id, "data": patchBody(op("replace", "password", pw()))},
			}}, bearer).want(t, 200)
			meTok, err := e.tokens.Issue(ctx, scim.DefaultTenant, scim.TokenOptions{Scopes: []string{scim.ScopeSCIM}, UserID: id})
			if err != nil {
				t.Fatal(err)
			}
			s.keep(t, meTok)
			s.send(t, nil, "PATCH", "/scim/v2/Me", patchBody(op("replace", "password", pw())), "Bearer "+meTok).want(t, 200)
			s.send(t, nil, "PUT", "/scim/v2/Me", user("ann@example.com", "password", pw()), "Bearer "+meTok).want(t, 200)

			// Passwords through the compatibility routes that take one.
			s.send(t, nil, "POST", "/scim/provision-user", map[string]any{"username": "plat", "firstName": "P", "lastName": "U",
				"email": "plat@example.com", "password": pw(), "role": "Agent"}, bearer, app...).want(t, 201)
			s.send(t, nil, "PUT", "/scim/update-user/plat@example.com", map[string]any{"password": pw()}, bearer, app...).want(t, 200)
			s.send(t, nil, "PATCH", "/scim/update-user/plat@example.com", map[string]any{"password": pw(), "roles": "not a list"}, bearer, app...).want(t, 400)
			s.send(t, nil, "POST", "/scim/provision-user", map[string]any{"username": "plat", "email": "plat@example.com", "password": pw()}, bearer, app...).want(t, 409)
			s.send(t, nil, "POST", "/api/v1/create_user", map[string]any{"key": tok, "email": "sup@example.com", "first_name": "S", "last_name": "U", "password": pw()}, "").want(t, 201)
			s.send(t, nil, "POST", "/api/v1/create_user", map[string]any{"key": tok, "email": "sup@example.com", "first_name": "S", "last_name": "U", "password": pw()}, "").want(t, 409)
			// Too short: refused without being repeated. (Letters outside hex and
			// base64url's usual mix, so that no id or token contains them by chance.)
			short := "Zz~" + strings.Map(func(r rune) rune { return 'g' + (r % 20) }, randomHex(4))
			s.secrets = append(s.secrets, short)
			s.send(t, nil, "POST", "/api/v1/create_user", map[string]any{"key": tok, "email": "short@example.com", "first_name": "S", "last_name": "U", "password": short}, "").want(t, 400)
			s.send(t, nil, "POST", "/create_user", map[string]any{"key": tok, "email": "conf@example.com", "first_name": "C", "last_name": "U", "password": pw(), "email_confirmed": true}, "").want(t, 201)

			// API tokens: valid, unknown and malformed ones in every family's style,
			// Basic too.
			unknown := s.secret("scimd_unknown")
			malformed := s.secret("malformed token")
			basicUser := "okta:" + tok
			for _, secret := range []string{tok, unknown, malformed} {
				want := func(ok int) int {
					if secret == tok {
						return ok
					}
					return 401
				}
				s.send(t, nil, "GET", "/scim/v2/Users?count=1", nil, "Bearer "+secret).want(t, want(200))
				s.send(t, nil, "GET", "/scim/v2/Users?count=1", nil, "Basic "+base64.StdEncoding.EncodeToString([]byte("okta:"+secret))).want(t, want(200))
				s.send(t, nil, "GET", "/users?count=1", nil, "Bearer "+secret).want(t, want(200))
				s.send(t, nil, "POST", partnerPath, map[string]any{"action": "deprovision", "email": "none@example.com"}, "Token "+secret).want(t, want(404))
				s.send(t, nil, "DELETE", "/scim/de-provision-user/none@example.com", nil, "Bearer "+tok, "X-App-Token", secret).want(t, want(404))
				s.send(t, nil, "DELETE", "/scim/de-provision-user/none@example.com", nil, "Basic "+base64.StdEncoding.EncodeToString([]byte("default:"+secret)), app...).want(t, want(404))
				s.send(t, nil, "GET", "/api/v1/user/count?key="+url.QueryEscape(secret), nil, "").want(t, want(200))
				s.send(t, nil, "POST", "/api/v1/delete_user", map[string]any{"key": secret, "email": "none@example.com"}, "").want(t, want(404))
				s.send(t, nil, "GET", onboardingTasks+"00000000-0000-4000-8000-000000000000", nil, "Bearer "+secret).want(t, want(404))
				s.send(t, nil, "GET", "/admin/v1/audit?limit=1", nil, "Bearer "+secret).want(t, want(200))
			}
			s.send(t, nil, "GET", "/scim/v2/Users", nil, "Basic !!"+malformed).want(t, 401)
			s.send(t, nil, "GET", "/scim/v2/Users", nil, "Bearer "+tok+" "+malformed).want(t, 401)

			// A per-user token from the administration service: shown once, verified,
			// refused where it has no scope, then revoked and refused everywhere.
			r := s.send(t, nil, "POST", "/users", map[string]any{"email": "api@example.com", "credits": 5}, bearer).want(t, 201)
			userTok := s.keep(t, fmt.Sprint(r.body["token"]))
			s.answers[len(s.answers)-1].may = []string{userTok}
			s.send(t, nil, "POST", "/users/verify", map[string]any{"token": userTok}, bearer).want(t, 200)
			s.send(t, nil, "GET", "/scim/v2/Users", nil, "Bearer "+userTok).want(t, 403)
			s.send(t, nil, "DELETE", "/users?email=api%40example.com", nil, bearer).want(t, 200)
			s.send(t, nil, "POST", "/users/verify", map[string]any{"token": userTok}, bearer).want(t, 401)
			s.send(t, nil, "GET", "/scim/v2/Users", nil, "Bearer "+userTok).want(t, 401)
			s.send(t, nil, "POST", "/v1/pine/partner/provision-user", map[string]any{"email": "x@example.com", "result_url": "https://chat.example.com"}, "Token "+userTok).want(t, 401)

			// Link secrets: a set-password link (partner provisioning), an
			// invitation (onboarding) and an email verification (superuser), each
			// opened and used in a browser.
			s.send(t, nil, "POST", partnerPath, map[string]any{"email": "link@example.com", "result_url": "https://chat.example.com/done"}, "Token "+tok).want(t, 201)
			s.send(t, nil, "POST", onboardingUsers, `[{"email":"invited@example.com","firstName":"I","lastName":"U","roles":["Scheduler"],"sendInvitation":true}]`, bearer).want(t, 200)
			links := s.deliver(t)
			for _, who := range []string{"link@example.com", "invited@example.com", "sup@example.com"} {
				if links[who] == "" {
					t.Fatalf("no link was sent to %s: %v", who, links)
				}
			}
			for _, who := range []string{"link@example.com", "invited@example.com"} {
				link := links[who]
				secret := strings.SplitN(link, "token=", 2)[1]
				br := newBrowser(t)
				action := e.srv.URL + scim.SetPasswordPath
				form := s.page([]string{secret}, "GET "+who+" link", br.get(link)).form(t)
				bad := url.Values{"token": {secret}, "csrf": {form.Get("csrf")}, "password": {pw()}, "confirm": {pw()}}
				if p := s.page([]string{secret}, "mismatched passwords", br.post(action, bad)); p.status != http.StatusUnprocessableEntity {
					t.Fatalf("mismatched passwords: %d", p.status)
				}
				good := pw()
				ok := url.Values{"token": {secret}, "csrf": {form.Get("csrf")}, "password": {good}, "confirm": {good}}
				if p := s.page(nil, "set password", br.post(action, ok)); p.status != http.StatusSeeOther && p.status != http.StatusOK {
					t.Fatalf("set password: %d %s", p.status, p.body)
				}
				if p := s.page(nil, "used link", br.get(link)); p.status != http.StatusGone {
					t.Errorf("a used link answered %d", p.status)
				}
			}
			verify := links["sup@example.com"]
			secret := strings.SplitN(verify, "token=", 2)[1]
			br := newBrowser(t)
			form := s.page([]string{secret}, "GET verify link", br.get(verify)).form(t)
			if p := s.page(nil, "verify", br.post(e.srv.URL+scim.VerifyEmailPath, form)); p.status != http.StatusOK && p.status != http.StatusSeeOther {
				t.Fatalf("verify: %d %s", p.status, p.body)
			}
			s.page(nil, "forged", newBrowser(t).post(e.srv.URL+scim.VerifyEmailPath, url.Values{"token": {secret}, "csrf": {"x"}}))

			s.check(t, basicUser, "okta:"+unknown, "default:"+tok, "default:"+unknown)
		})
	}
}

// secretBuffer is a bytes.Buffer safe for a server's goroutines to write.
type secretBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *secretBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *secretBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecretsNeverLoggedServe runs scimd serve itself at debug level: neither the
// token it prints on a first start nor a SCIMD_BOOTSTRAP_TOKEN appears in its log,
// however the token is used.
func TestSecretsNeverLoggedServe(t *testing.T) {
	for _, bootstrap := range []string{"", "bootstrap-" + randomHex(24)} {
		t.Run(fmt.Sprintf("bootstrap=%t", bootstrap != ""), func(t *testing.T) {
			t.Setenv("SCIMD_BOOTSTRAP_TOKEN", bootstrap)
			addr := freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			var stdout, stderr secretBuffer
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, []string{"serve", "--addr", addr, "--log-level", "debug",
					"--database", "sqlite://" + filepath.Join(t.TempDir(), "secrets.db")}, &stdout, &stderr)
			}()
			stop := func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("serve: %v", err)
					}
				case <-time.After(35 * time.Second):
					t.Fatal("serve did not stop")
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				res, err := http.Get("http://" + addr + "/readyz")
				if err == nil {
					res.Body.Close()
					if res.StatusCode == http.StatusOK {
						break
					}
				}
				if time.Now().After(deadline) {
					stop()
					t.Fatalf("serve did not become ready: %s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			secret := bootstrap
			if secret == "" {
				m := strings.Fields(stdout.String())
				for _, f := range m {
					if strings.HasPrefix(f, "scimd_") {
						secret = f
						break
					}
				}
				if secret == "" {
					stop()
					t.Fatalf("a first start printed no token: %s", stdout.String())
				}
			}
			call := func(method, path, auth string, body string, hdr ...string) int {
				req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				req.Header.Set("Content-Type", "application/json")
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				return res.StatusCode
			}
			for _, c := range []struct {
				method, path, auth, body string
				hdr                      []string
				want                     int
			}{
				{"GET", "/scim/v2/Users", "Bearer " + secret, "", nil, 200},
				{"GET", "/scim/v2/Users", "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+secret)), "", nil, 200},
				{"GET", "/scim/v2/Users", "Bearer " + secret + "x", "", nil, 401},
				{"POST", "/scim/v2/Users", "Bearer " + secret, `{"userName":`, nil, 400},
				{"GET", "/api/v1/user/count?key=" + url.QueryEscape(secret), "", "", nil, 200},
				{"POST", "/api/v1/delete_user", "", `{"key":"` + secret + `x","email":"a@example.com"}`, nil, 401},
				{"POST", partnerPath, "Token " + secret, `{"action":"deprovision","email":"none@example.com"}`, nil, 404},
				{"DELETE", "/scim/de-provision-user/none@example.com", "Bearer " + secret, "", []string{"X-App-Token", secret}, 404},
			} {
				if got := call(c.method, c.path, c.auth, c.body, c.hdr...); got != c.want {
					t.Errorf("%s %s: %d, want %d", c.method, c.path, got, c.want)
				}
			}
			stop()
			logged := stderr.String()
			if !strings.Contains(logged, `"level":"debug"`) || !strings.Contains(logged, `"request"`) {
				t.Fatalf("serve did not log at debug level: %s", truncate(logged, 600))
			}
			for _, n := range append(forms(secret), base64.StdEncoding.EncodeToString([]byte("x:"+secret))) {
				if strings.Contains(logged, n) {
					t.Errorf("serve's log carries the token (%q): %s", truncate(n, 20), truncate(logged, 2000))
				}
			}
			if bootstrap != "" && strings.Contains(stdout.String(), bootstrap) {
				t.Errorf("serve printed SCIMD_BOOTSTRAP_TOKEN: %s", stdout.String())
			}
		})
	}
}
