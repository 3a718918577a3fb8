package compat

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/storetest"
)

// The package's handler tests run each family's http.Handler, as Mount registers it,
// over a real scim.Service and scim.Tokens on a real database: SQLite always,
// PostgreSQL as well when SCIMD_TEST_POSTGRES_URL is set (storetest.Backends). They
// call the handler in process (httptest.NewRecorder), with no server.

// fixture is the compatibility routes over one fresh database, with one tenant.
type fixture struct {
	t        *testing.T
	st       *gormstore.Store
	svc      *scim.Service
	tokens   *scim.Tokens
	mux      *http.ServeMux
	tenant   string // the tenant's name
	tenantID string
}

// fixtureTenant is the tenant every fixture starts with.
const fixtureTenant = "acme"

// forEachBackend runs fn as a subtest per database, each with its own fixture.
func forEachBackend(t *testing.T, fn func(t *testing.T, f *fixture)) {
	t.Helper()
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			fn(t, newFixture(t, b))
		})
	}
}

func newFixture(t *testing.T, b storetest.Backend) *fixture {
	t.Helper()
	st := b.Open(t)
	log := zaptest.NewLogger(t)
	limits := scim.DefaultLimits()
	limits.BcryptCost = 4 // bcrypt's minimum: hashing is not what these tests measure
	svc := scim.NewService(st, log, scim.WithLimits(limits))
	tokens := scim.NewTokens(st)
	tn, err := tokens.CreateTenant(context.Background(), fixtureTenant)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	New(svc, tokens, log, Options{MaxBodyBytes: 64 << 10}).Mount(mux)
	return &fixture{t: t, st: st, svc: svc, tokens: tokens, mux: mux, tenant: fixtureTenant, tenantID: tn.ID}
}

// token issues a token of the fixture's tenant.
func (f *fixture) token(o scim.TokenOptions) string {
	f.t.Helper()
	return f.tokenOf(f.tenant, o)
}

// tokenOf issues a token of the named tenant.
func (f *fixture) tokenOf(tenant string, o scim.TokenOptions) string {
	f.t.Helper()
	s, err := f.tokens.Issue(context.Background(), tenant, o)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// scopes is TokenOptions with the given scopes.
func scopes(s ...string) scim.TokenOptions { return scim.TokenOptions{Scopes: s} }

// sandbox is TokenOptions of a sandbox token with the given scopes.
func sandbox(s ...string) scim.TokenOptions { return scim.TokenOptions{Scopes: s, Sandbox: true} }

// set applies `scimd tenant set` pairs to the fixture's tenant.
func (f *fixture) set(pairs ...string) {
	f.t.Helper()
	if _, err := f.tokens.SetTenant(context.Background(), f.tenant, pairs); err != nil {
		f.t.Fatal(err)
	}
}

// otherTenant creates a second tenant and returns its id.
func (f *fixture) otherTenant(name string) string {
	f.t.Helper()
	tn, err := f.tokens.CreateTenant(context.Background(), name)
	if err != nil {
		f.t.Fatal(err)
	}
	return tn.ID
}

// user creates a user of the fixture's tenant through SCIM, named by email.
func (f *fixture) user(email string, active bool, extra map[string]any) *scim.Resource {
	f.t.Helper()
	body := userBody(email)
	body["active"] = active
	for k, v := range extra {
		body[k] = v
	}
	u, err := f.svc.Create(context.Background(), f.tenantID, scim.UserKind, body, scim.Projection{})
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// lookup returns the fixture tenant's user whose userName is email, or nil.
func (f *fixture) lookup(email string) *scim.Resource {
	f.t.Helper()
	two := 2 // a second one is a failure
	page, err := f.svc.List(context.Background(), f.tenantID, scim.UserKind, scim.ListQuery{Filter: `userName eq "` + email + `"`, Count: &two})
	if err != nil {
		f.t.Fatal(err)
	}
	switch len(page.Resources) {
	case 0:
		return nil
	case 1:
		return page.Resources[0]
	}
	f.t.Fatalf("%d users named %s", len(page.Resources), email)
	return nil
}

// outbox returns the kinds of the fixture tenant's queued messages, in order.
func (f *fixture) outbox() []string {
	f.t.Helper()
	msgs, err := f.st.Outbox(context.Background(), f.tenantID)
	if err != nil {
		f.t.Fatal(err)
	}
	kinds := make([]string, len(msgs))
	for i, m := range msgs {
		kinds[i] = m.Kind
	}
	return kinds
}

// reply is an answer of a handler.
type reply struct {
	status int
	header http.Header
	raw    string
	body   map[string]any // the JSON object answered, if any
}

// do serves one request with the mux. body is sent as is; hdr are name/value pairs.
func (f *fixture) do(method, path, body string, hdr ...string) reply {
	f.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body == "" {
		req = httptest.NewRequest(method, path, nil)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, req)
	r := reply{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if strings.HasPrefix(strings.TrimSpace(r.raw), "{") {
		if err := json.Unmarshal(rec.Body.Bytes(), &r.body); err != nil {
			f.t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, path, err, r.raw)
		}
	}
	return r
}

// want checks the status and, when field is not "", that the body's field is code.
func (r reply) want(t *testing.T, status int, field, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if field == "" {
		return
	}
	if got, _ := r.body[field].(string); got != code {
		t.Errorf("%s %q, want %q; body %s", field, got, code, r.raw)
	}
}

// mustJSON encodes v.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decodeValue decodes a JSON value with numbers kept as json.Number, as
// scim.DecodeJSON does.
func decodeValue(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// decodeObject is decodeValue for an object.
func decodeObject(t *testing.T, s string) map[string]any {
	t.Helper()
	m, ok := decodeValue(t, s).(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object", s)
	}
	return m
}
