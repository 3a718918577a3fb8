package compat

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/auth"
	"github.com/scimd/scimd/scim/middleware"
	"github.com/scimd/scimd/scim/scimhttp"
)

// The platform user provisioning family (CONTRACT.md, rules platform.*): three vendor routes that sit
// under /scim but outside the SCIM API at /scim/v2, answer with the SCIM User
// representation and use the SCIM error schema (RFC 7644 §3.12).
//
// Authentication takes two tokens of one tenant: Authorization (Bearer <token>, or
// Basic base64(<tenant name>:<token>)) and x-app-token. Both must be valid (else 401),
// belong to the same tenant (else 401), and hold scope compat (else 403). Decisions
// where the contract is silent:
//   - the two headers may carry the same token;
//   - the Basic user name is compared with the tenant name case-insensitively (tenant
//     names are lower-case);
//   - a sandbox token in either header is 403: sandbox tokens may not change users
//     through the compatibility routes, and every route of this family does;
//   - a tenant with the platform family disabled answers 404, as if the routes did
//     not exist for it;
//   - a method the route does not serve is 405 with Allow, checked before credentials;
//   - a body must be sent as Content-Type: application/json (or another +json type,
//     charset utf-8 if any), which the vendor's document lists as an input of every
//     call; any other type or charset, or none, is 415 before the body is read (the
//     de-provision call reads no body and checks none); answers are
//     application/scim+json, like the SCIM API's.

// platformSCIMPrefix is where the SCIM API lives; meta.location and Location point
// there.
const platformSCIMPrefix = "/scim/v2"

// platform serves the family's routes.
type platform struct {
	c   *Compat
	log *zap.Logger
}

// platformHandler handles one authenticated request of the family.
type platformHandler func(w http.ResponseWriter, r *http.Request, pr scim.Principal) error

// mountPlatform registers the platform family's routes: exact paths, so that nothing
// under /scim/v2 (the SCIM API) is touched. An empty email segment
// (/scim/update-user/) reaches the handler with an empty email and is a 400.
func (c *Compat) mountPlatform(mux middleware.Mux) {
	p := &platform{c: c, log: c.log.Named("platform")}
	mux.Handle("/scim/provision-user", auditChanges(FamilyPlatform, map[string]string{http.MethodPost: scim.OpCreate},
		p.route(map[string]platformHandler{http.MethodPost: p.provision})))
	update := auditChanges(FamilyPlatform, map[string]string{http.MethodPut: scim.OpUpdate, http.MethodPatch: scim.OpUpdate, http.MethodPost: scim.OpUpdate},
		p.route(map[string]platformHandler{http.MethodPut: p.update, http.MethodPatch: p.update, http.MethodPost: p.update}))
	mux.Handle("/scim/update-user/{email}", update)
	mux.Handle("/scim/update-user/{$}", update)
	deprovision := auditChanges(FamilyPlatform, map[string]string{http.MethodDelete: scim.OpDelete, http.MethodPost: scim.OpDelete},
		p.route(map[string]platformHandler{http.MethodDelete: p.deprovision, http.MethodPost: p.deprovision}))
	mux.Handle("/scim/de-provision-user/{email}", deprovision)
	mux.Handle("/scim/de-provision-user/{$}", deprovision)
}

// route wraps the handlers of one path: method check, panic recovery, the two-token
// authentication, the principal in the context (for the access log), and the one
// error writer.
func (p *platform) route(methods map[string]platformHandler) http.Handler {
	names := make([]string, 0, len(methods))
	for m := range methods {
		names = append(names, m)
	}
	sort.Strings(names)
	allow := strings.Join(names, ", ")
	return middleware.Recover(p.log, p.writeError)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := methods[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			p.writeError(w, r, &platformStatusError{status: http.StatusMethodNotAllowed, detail: r.Method + " is not served at " + r.URL.Path + "; use " + allow})
			return
		}
		pr, err := p.authenticate(r)
		if err != nil {
			p.writeError(w, r, err)
			return
		}
		r = r.WithContext(auth.WithPrincipal(r.Context(), pr))
		middleware.NotePrincipal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r, pr); err != nil {
				p.writeError(w, r, err)
			}
		})).ServeHTTP(w, r)
	}))
}

// platformCredentials is what the Authorization header holds.
type platformCredentials struct {
	secret string
	basic  bool
	user   string // the Basic user name: the tenant's name
}

// parsePlatformAuthorization reads Authorization: Bearer <token> or
// Basic base64(<tenant name>:<token>) (RFC 6750 §2.1, RFC 7617).
func parsePlatformAuthorization(h string) (platformCredentials, error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "":
		return platformCredentials{}, platformUnauthorized("missing credentials: send Authorization: Bearer <token> (or Basic base64(<tenant>:<token>)) and x-app-token: <token>")
	case "bearer":
		if rest == "" {
			return platformCredentials{}, platformUnauthorized("the Bearer token is empty")
		}
		return platformCredentials{secret: rest}, nil
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		user, pass, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok || user == "" || pass == "" {
			return platformCredentials{}, platformUnauthorized("Basic credentials must be base64(<tenant name>:<token>)")
		}
		return platformCredentials{secret: pass, basic: true, user: user}, nil
	}
	return platformCredentials{}, platformUnauthorized("unsupported Authorization scheme " + strconv.Quote(scheme) + ": use Bearer <token> or Basic base64(<tenant name>:<token>)")
}

func platformUnauthorized(detail string) error {
	return &scim.Error{Kind: scim.KindUnauthorized, Detail: detail}
}

// authenticate checks both tokens of a request and returns the Authorization token's
// principal. Wrong or missing credentials come before scope, sandbox and the
// tenant's family switch.
func (p *platform) authenticate(r *http.Request) (scim.Principal, error) {
	ctx := r.Context()
	cred, err := parsePlatformAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return scim.Principal{}, err
	}
	pa, err := p.c.tokens.Authenticate(ctx, cred.secret)
	if err != nil {
		if errors.Is(err, scim.ErrTokenExpired) {
			return scim.Principal{}, platformUnauthorized("the Authorization token has expired")
		}
		if scim.AsError(err).Kind == scim.KindUnauthorized {
			return scim.Principal{}, platformUnauthorized("the Authorization token is not valid")
		}
		return scim.Principal{}, err
	}
	app := strings.TrimSpace(r.Header.Get("X-App-Token"))
	if app == "" {
		return scim.Principal{}, platformUnauthorized("missing x-app-token: send the app token in the x-app-token header as well")
	}
	px, err := p.c.tokens.Authenticate(ctx, app)
	if err != nil {
		if errors.Is(err, scim.ErrTokenExpired) {
			return scim.Principal{}, platformUnauthorized("the x-app-token has expired")
		}
		if scim.AsError(err).Kind == scim.KindUnauthorized {
			return scim.Principal{}, platformUnauthorized("the x-app-token is not valid")
		}
		return scim.Principal{}, err
	}
	if pa.TenantID != px.TenantID {
		return scim.Principal{}, platformUnauthorized("the Authorization token and the x-app-token must belong to the same tenant")
	}
	tn := pa.Tenant
	if cred.basic && !strings.EqualFold(cred.user, tn.Name) {
		return scim.Principal{}, platformUnauthorized("the Basic user name must be the tenant's name")
	}
	if !pa.Has(scim.ScopeCompat) || !px.Has(scim.ScopeCompat) {
		return scim.Principal{}, &scim.Error{Kind: scim.KindForbidden, Detail: "both tokens need the " + scim.ScopeCompat + " scope"}
	}
	if pa.Sandbox || px.Sandbox {
		return scim.Principal{}, &scim.Error{Kind: scim.KindForbidden, Detail: "a sandbox token cannot provision, change or remove users"}
	}
	if slices.Contains(tn.Settings.DisabledFamilies, FamilyPlatform) {
		return scim.Principal{}, errFamilyDisabled
	}
	return pa, nil
}

// provision serves POST /scim/provision-user: it creates the SCIM User that
// PlatformUser describes and answers 201 with its representation, Location and ETag
// (RFC 7644 §3.3). A username or an email (emails.value, case-insensitively) already
// in use is 409 uniqueness. Decisions: username and email are required; firstName,
// lastName, password and role are optional; unknown fields are ignored. userName
// uniqueness is the database's (race-free); the email is checked by a query just
// before the create, so two simultaneous calls with one email and different
// usernames could both succeed.
func (p *platform) provision(w http.ResponseWriter, r *http.Request, pr scim.Principal) error {
	body, err := p.decodeObject(w, r)
	if err != nil {
		return err
	}
	u, email, err := PlatformUser(body)
	if err != nil {
		return err
	}
	switch _, err := p.findByEmail(r.Context(), pr.TenantID, email); {
	case err == nil || scim.AsError(err).Kind == scim.KindUniqueness:
		return &scim.Error{Kind: scim.KindUniqueness, Detail: "a user with email " + email + " exists already (emails are unique for this API)"}
	case scim.AsError(err).Kind != scim.KindNotFound:
		return err
	}
	res, err := p.c.svc.Create(r.Context(), pr.TenantID, scim.UserKind, u, scim.Projection{})
	if err != nil {
		return err
	}
	p.writeUser(w, r, http.StatusCreated, res)
	return nil
}

// update serves PUT, PATCH and POST /scim/update-user/{email}: all three are partial
// updates. The user is the one whose emails.value is the email (case-insensitively);
// the fields present in the body become SCIM PATCH operations (PlatformPatch) applied
// in one transaction (RFC 7644 §3.5.2), and the answer is 200 with the User and its
// ETag. Decisions: a body with nothing to change is 200 with the user as it is; an
// email in the body changes the user's email (409 uniqueness if another user has
// it); an unknown email is 404, and one shared by several users 409.
func (p *platform) update(w http.ResponseWriter, r *http.Request, pr scim.Principal) error {
	email, err := platformPathEmail(r)
	if err != nil {
		return err
	}
	body, err := p.decodeObject(w, r)
	if err != nil {
		return err
	}
	ops, newEmail, err := PlatformPatch(body, email)
	if err != nil {
		return err
	}
	cur, err := p.findByEmail(r.Context(), pr.TenantID, email)
	if err != nil {
		return err
	}
	if newEmail != email {
		switch other, err := p.findByEmail(r.Context(), pr.TenantID, newEmail); {
		case err == nil && other.ID != cur.ID, err != nil && scim.AsError(err).Kind == scim.KindUniqueness:
			return &scim.Error{Kind: scim.KindUniqueness, Detail: "a user with email " + newEmail + " exists already (emails are unique for this API)"}
		case err != nil && scim.AsError(err).Kind != scim.KindNotFound:
			return err
		}
	}
	res := cur
	if len(ops) > 0 {
		if res, err = p.c.svc.Patch(r.Context(), pr.TenantID, scim.UserKind, cur.ID, ops, "", scim.Projection{}); err != nil {
			return err
		}
	}
	p.writeUser(w, r, http.StatusOK, res)
	return nil
}

// deprovision serves DELETE and POST /scim/de-provision-user/{email}: it deletes the
// user whose emails.value is the email (RFC 7644 §3.6) and answers 204. A body, if
// any, is not read. Unknown email: 404.
func (p *platform) deprovision(w http.ResponseWriter, r *http.Request, pr scim.Principal) error {
	email, err := platformPathEmail(r)
	if err != nil {
		return err
	}
	cur, err := p.findByEmail(r.Context(), pr.TenantID, email)
	if err != nil {
		return err
	}
	if err := p.c.svc.Delete(r.Context(), pr.TenantID, scim.UserKind, cur.ID, ""); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// platformPathEmail reads and normalizes the {email} path segment.
func platformPathEmail(r *http.Request) (string, error) {
	e, err := NormalizeEmail(r.PathValue("email"))
	if err != nil {
		return "", &scim.Error{Kind: scim.KindInvalidValue, Detail: "the email in the path: " + err.Error()}
	}
	return e, nil
}

// findByEmail finds the one user whose emails.value is email, case-insensitively
// (emails.value has caseExact false, RFC 7643 §4.1.2). None is KindNotFound; more
// than one is KindUniqueness, since this API names users by email.
func (p *platform) findByEmail(ctx context.Context, tenantID, email string) (*scim.Resource, error) {
	two := 2
	page, err := p.c.svc.List(ctx, tenantID, scim.UserKind, scim.ListQuery{Filter: "emails.value eq " + strconv.Quote(email), Count: &two})
	if err != nil {
		return nil, err
	}
	switch len(page.Resources) {
	case 0:
		return nil, &scim.Error{Kind: scim.KindNotFound, Detail: "no user with email " + email}
	case 1:
		return page.Resources[0], nil
	}
	return nil, &scim.Error{Kind: scim.KindUniqueness, Detail: "more than one user has email " + email + "; give each its own email through /scim/v2"}
}

// decodeObject reads a JSON object body.
func (p *platform) decodeObject(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	if err := checkJSONContentType(r, false); err != nil {
		return nil, err
	}
	var v any
	if err := p.c.decodeJSON(w, r, &v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &scim.Error{Kind: scim.KindInvalidSyntax, Detail: "the body must be a JSON object"}
	}
	return m, nil
}

// base is the absolute URL of the SCIM API for this request.
func (p *platform) base(r *http.Request) string {
	if p.c.opts.BaseURL != "" {
		return strings.TrimRight(p.c.opts.BaseURL, "/") + platformSCIMPrefix
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + platformSCIMPrefix
}

// writeUser answers with the SCIM User representation, its ETag and, on 201, its
// Location, as the SCIM API does (RFC 7644 §3.1, §3.3, §3.14).
func (p *platform) writeUser(w http.ResponseWriter, r *http.Request, status int, res *scim.Resource) {
	base := p.base(r)
	body := res.Render(base, scim.Projection{})
	w.Header().Set("ETag", res.ETag())
	if status == http.StatusCreated {
		w.Header().Set("Location", res.Location(base))
	}
	platformJSON(w, status, body)
}

// ---- translation: vendor body -> SCIM (pure)

// platformInput is a decoded vendor body: nil fields were absent (or null).
type platformInput struct {
	username, firstName, lastName, email, password *string
	roles                                          []string
	hasRoles                                       bool
}

// parsePlatformInput reads the vendor fields with their types. A null is treated as
// absent; unknown fields are ignored. "role" (a string) and "roles" (an array of
// strings) are both read, on either call; given together, the roles are role
// followed by roles, trimmed, without duplicates; an empty role is an error.
func parsePlatformInput(body map[string]any) (platformInput, error) {
	var in platformInput
	str := func(key string) (*string, error) {
		v, ok := body[key]
		if !ok || v == nil {
			return nil, nil
		}
		s, ok := v.(string)
		if !ok {
			return nil, &scim.Error{Kind: scim.KindInvalidValue, Detail: key + " must be a string"}
		}
		return &s, nil
	}
	var err error
	for _, f := range []struct {
		key string
		dst **string
	}{{"username", &in.username}, {"firstName", &in.firstName}, {"lastName", &in.lastName}, {"email", &in.email}, {"password", &in.password}} {
		if *f.dst, err = str(f.key); err != nil {
			return in, err
		}
	}
	add := func(key, r string) error {
		r = strings.TrimSpace(r)
		if r == "" {
			return &scim.Error{Kind: scim.KindInvalidValue, Detail: key + ": a role must not be empty"}
		}
		if !slices.Contains(in.roles, r) {
			in.roles = append(in.roles, r)
		}
		return nil
	}
	role, err := str("role")
	if err != nil {
		return in, err
	}
	if role != nil {
		in.hasRoles = true
		if err := add("role", *role); err != nil {
			return in, err
		}
	}
	if v, ok := body["roles"]; ok && v != nil {
		list, ok := v.([]any)
		if !ok {
			return in, &scim.Error{Kind: scim.KindInvalidValue, Detail: `roles must be an array of strings, such as ["Help Desk Agent"]`}
		}
		in.hasRoles = true
		for i, it := range list {
			s, ok := it.(string)
			if !ok {
				return in, &scim.Error{Kind: scim.KindInvalidValue, Detail: "roles[" + strconv.Itoa(i) + "] must be a string"}
			}
			if err := add("roles["+strconv.Itoa(i)+"]", s); err != nil {
				return in, err
			}
		}
	}
	if in.username != nil && strings.TrimSpace(*in.username) == "" {
		return in, &scim.Error{Kind: scim.KindInvalidValue, Detail: "username must not be empty"}
	}
	if in.password != nil && *in.password == "" {
		return in, &scim.Error{Kind: scim.KindInvalidValue, Detail: "password must not be empty"}
	}
	return in, nil
}

func platformRoles(roles []string) []any {
	out := make([]any, len(roles))
	for i, r := range roles {
		out[i] = map[string]any{"value": r}
	}
	return out
}

func platformEmail(raw string) (string, error) {
	e, err := NormalizeEmail(raw)
	if err != nil {
		return "", &scim.Error{Kind: scim.KindInvalidValue, Detail: err.Error()}
	}
	return e, nil
}

// PlatformUser translates a provision body {username, firstName, lastName, email,
// password, role} into the SCIM User to create (RFC 7643 §4.1): userName = username
// (as given), name.givenName/familyName, emails = the normalized email (work,
// primary), password, roles = [{"value": role}], active. username and email are
// required; empty names are left out. It also returns the normalized email. Errors
// are *scim.Error of kind invalidValue.
func PlatformUser(body map[string]any) (user map[string]any, email string, err error) {
	in, err := parsePlatformInput(body)
	if err != nil {
		return nil, "", err
	}
	if in.username == nil {
		return nil, "", &scim.Error{Kind: scim.KindInvalidValue, Detail: "username is required"}
	}
	if in.email == nil {
		return nil, "", &scim.Error{Kind: scim.KindInvalidValue, Detail: "email is required"}
	}
	if email, err = platformEmail(*in.email); err != nil {
		return nil, "", err
	}
	u := userBody(email)
	u["userName"] = *in.username
	name := map[string]any{}
	if in.firstName != nil && *in.firstName != "" {
		name["givenName"] = *in.firstName
	}
	if in.lastName != nil && *in.lastName != "" {
		name["familyName"] = *in.lastName
	}
	if len(name) > 0 {
		u["name"] = name
	}
	if in.password != nil {
		u["password"] = *in.password
	}
	if len(in.roles) > 0 {
		u["roles"] = platformRoles(in.roles)
	}
	return u, email, nil
}

// PlatformPatch translates an update body into SCIM PATCH operations (RFC 7644
// §3.5.2) on the user whose email is curEmail (normalized): only the fields present
// change. username, password: replace; firstName, lastName: replace
// name.givenName/familyName, or remove it when empty; roles: replace the whole list,
// or remove it when empty; email: replace that email's value (newEmail, normalized;
// curEmail when the body has none or the same).
func PlatformPatch(body map[string]any, curEmail string) (ops []scim.PatchOp, newEmail string, err error) {
	in, err := parsePlatformInput(body)
	if err != nil {
		return nil, "", err
	}
	newEmail = curEmail
	if in.email != nil {
		if newEmail, err = platformEmail(*in.email); err != nil {
			return nil, "", err
		}
	}
	if in.username != nil {
		ops = append(ops, scim.PatchOp{Op: "replace", Path: "userName", Value: *in.username})
	}
	for _, f := range []struct {
		v    *string
		path string
	}{{in.firstName, "name.givenName"}, {in.lastName, "name.familyName"}} {
		switch {
		case f.v == nil:
		case *f.v == "":
			ops = append(ops, scim.PatchOp{Op: "remove", Path: f.path})
		default:
			ops = append(ops, scim.PatchOp{Op: "replace", Path: f.path, Value: *f.v})
		}
	}
	if newEmail != curEmail {
		ops = append(ops, scim.PatchOp{Op: "replace", Path: "emails[value eq " + strconv.Quote(curEmail) + "].value", Value: newEmail})
	}
	if in.password != nil {
		ops = append(ops, scim.PatchOp{Op: "replace", Path: "password", Value: *in.password})
	}
	switch {
	case !in.hasRoles:
	case len(in.roles) == 0:
		ops = append(ops, scim.PatchOp{Op: "remove", Path: "roles"})
	default:
		ops = append(ops, scim.PatchOp{Op: "replace", Path: "roles", Value: platformRoles(in.roles)})
	}
	return ops, newEmail, nil
}

// ---- errors

// platformStatusError is an error with its own HTTP status and no scimType (405).
type platformStatusError struct {
	status int
	detail string
}

func (e *platformStatusError) Error() string { return e.detail }

// writeError is the family's one error writer: the SCIM error schema (RFC 7644
// §3.12) with status as a string, scimType where the RFC defines one, and a detail. A
// 500 carries only an error id, which is logged with the error.
func (p *platform) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var body scimerrors.ScimError
	var se *platformStatusError
	var me *mediaTypeError
	switch {
	case errors.As(err, &se):
		body = scimerrors.ScimError{Status: se.status, Detail: se.detail}
	case errors.As(err, &me):
		body = scimerrors.ScimError{Status: http.StatusUnsupportedMediaType, Detail: me.detail}
	case errors.Is(err, errTooLarge):
		body = scimerrors.ScimError{Status: http.StatusRequestEntityTooLarge, Detail: "the request body is larger than " + strconv.FormatInt(p.c.opts.MaxBodyBytes, 10) + " bytes"}
	case errors.Is(err, errFamilyDisabled):
		body = scimerrors.ScimError{Status: http.StatusNotFound, Detail: "the platform user provisioning API is not enabled for this tenant"}
	default:
		e := scim.AsError(err)
		st, typ := scimhttp.Status(e.Kind)
		body = scimerrors.ScimError{Status: st, ScimType: typ, Detail: e.Detail}
	}
	auditReason := string(body.ScimType)
	if auditReason == "" {
		auditReason = http.StatusText(body.Status)
	}
	if id := refused(p.log, r, "request failed", body.Status, auditReason, body.Detail, err); id != "" {
		body.Detail = "internal error (error id " + id + ")"
	}
	switch body.Status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="scimd", Basic realm="scimd"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	if v, ok := scim.RetryAfter(err); ok {
		w.Header().Set("Retry-After", v)
	}
	platformJSON(w, body.Status, body)
}

// platformJSON answers with application/scim+json (RFC 7644 §3.1).
func platformJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, status = []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"500","detail":"cannot encode the response"}`), http.StatusInternalServerError
	}
	middleware.WriteBody(w, status, "application/scim+json", b)
}
