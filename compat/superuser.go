package compat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/auth"
	"github.com/scimd/scimd/scim/middleware"
)

// superuserVerifyEmail is the outbox message kind of an email verification.
const superuserVerifyEmail = "verify_email"

// The schemas of a user create_user makes: the core User and scimd's own extension.
const (
	superuserCoreURN  = "urn:ietf:params:scim:schemas:core:2.0:User"
	superuserScimdURN = "urn:scimd:schemas:extension:2.0:User"
)

// mountSuperuser registers the superuser management family (CONTRACT.md, rules
// superuser.*): a
// deployment's superuser creates and deletes accounts and reads two reports,
// authenticating with a key in the JSON body (POST) or in the key query parameter
// (GET). Every route needs a token with the admin scope; any such token works, not
// only the 32-character keys of `scimd token create --format key32`.
//
// Decisions where the contract is silent:
//   - A POST body is read before its key can be: a body that is not a JSON object is
//     400 even when no key can be read from it (the contract makes malformed JSON 400),
//     and so is a key that is not a string. A well-formed body is then authenticated
//     (401/403) before any other field is checked, so a caller without a valid key
//     learns nothing about the fields. POSTs take the key from the body only, GETs from
//     the query only; the Authorization header is not read.
//   - A sandbox token may read the reports but not create or delete users (403), as
//     sandbox tokens are refused for changes on every compatibility route.
//   - A tenant that disabled the family answers 404 not_found, as if the API were not
//     there.
//   - A POST body must be sent as Content-Type: application/json (or another +json
//     type, charset utf-8 if any), as the vendor's examples send it (requests'
//     json= argument sets it); any other type or charset, or none, is 415
//     unsupported_media_type before the body, and so the key, is read.
//   - Unknown body fields are ignored; null is the same as absent.
//   - A route's path with another method is 405 method_not_allowed with Allow.
func (c *Compat) mountSuperuser(mux middleware.Mux) {
	routes := []struct {
		method, path string
		h            func(http.ResponseWriter, *http.Request) error
	}{
		{http.MethodPost, "/api/v1/create_user", c.superuserCreateUser},
		{http.MethodPost, "/create_user", c.superuserCreateUser},
		{http.MethodPost, "/api/v1/delete_user", c.superuserDeleteUser},
		{http.MethodPost, "/delete_user", c.superuserDeleteUser},
		{http.MethodGet, "/api/v1/user/nonteam", c.superuserNonteam},
		{http.MethodGet, "/api/v1/user/count", c.superuserCount},
	}
	for _, rt := range routes {
		h := c.superuserHandler(rt.h)
		if op := superuserChanges[rt.path]; op != "" {
			h = auditChanges(FamilySuperuser, map[string]string{rt.method: op}, h)
		}
		mux.Handle(rt.method+" "+rt.path, h)
		allow := rt.method
		if allow == http.MethodGet {
			allow = "GET, HEAD"
		}
		mux.Handle(rt.path, c.superuserHandler(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return &superuserError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
				msg: fmt.Sprintf("%s %s is not supported; use %s", r.Method, rt.path, rt.method)}
		}))
	}
}

// superuserChanges names the audit operation of the routes that change users.
var superuserChanges = map[string]string{
	"/api/v1/create_user": scim.OpCreate, "/create_user": scim.OpCreate,
	"/api/v1/delete_user": scim.OpDelete, "/delete_user": scim.OpDelete,
}

// superuserHandler wraps a handler with the family's error writer and panic recovery.
func (c *Compat) superuserHandler(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return middleware.Recover(c.log, c.superuserWriteError)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			c.superuserWriteError(w, r, err)
		}
	}))
}

// superuserError is an error with the family's status, code and message.
type superuserError struct {
	status int
	code   string
	msg    string
}

func (e *superuserError) Error() string { return e.msg }

func superuserBadRequest(code, format string, args ...any) *superuserError {
	return &superuserError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

// superuserStatus maps an error to the family's status, code and message. An
// unexpected error is 500 with a generic message; its text never reaches the wire.
func superuserStatus(err error) (int, string, string) {
	var se *superuserError
	if errors.As(err, &se) {
		return se.status, se.code, se.msg
	}
	var me *mediaTypeError
	if errors.As(err, &me) {
		return http.StatusUnsupportedMediaType, "unsupported_media_type", me.detail
	}
	switch {
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, "payload_too_large", "the request body is too large"
	case errors.Is(err, errFamilyDisabled):
		return http.StatusNotFound, "not_found", errFamilyDisabled.Error()
	case errors.Is(err, errBadEmail):
		return http.StatusBadRequest, "invalid_email", err.Error()
	}
	e := scim.AsError(err)
	st, code, msg := kindStatus(e)
	switch e.Kind {
	case scim.KindUnauthorized:
		msg = "the key is not valid"
		if errors.Is(err, scim.ErrTokenExpired) {
			msg = "the key has expired"
		}
	case scim.KindPrecondition:
		msg = "the user was changed at the same time; retry"
	}
	return st, code, msg
}

// superuserWriteError is the family's one error writer: {"error": code, "msg": text}.
func (c *Compat) superuserWriteError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := superuserStatus(err)
	if id := refused(c.log, r, "superuser request failed", status, code, msg, err); id != "" {
		msg += " (error id " + id + ")"
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	if v, ok := scim.RetryAfter(err); ok {
		w.Header().Set("Retry-After", v)
	}
	writeJSON(w, status, map[string]string{"error": code, "msg": msg})
}

// superuserAuth authenticates a key: scope admin, the family enabled, and for
// changes no sandbox token.
func (c *Compat) superuserAuth(r *http.Request, key, where string, change bool) (scim.Principal, error) {
	if key == "" {
		return scim.Principal{}, &superuserError{status: http.StatusUnauthorized, code: "unauthorized",
			msg: "missing key: send the API key in " + where}
	}
	p, err := c.authenticate(r.Context(), key, scim.ScopeAdmin, FamilySuperuser)
	if err != nil {
		return scim.Principal{}, err
	}
	// Let the access log name the tenant and token.
	middleware.NotePrincipal(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).
		ServeHTTP(nil, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	if change && p.Sandbox {
		return scim.Principal{}, &superuserError{status: http.StatusForbidden, code: "forbidden",
			msg: "a sandbox key cannot create or delete users"}
	}
	return p, nil
}

// superuserBody reads a POST body as a JSON object and authenticates its key. A body
// that is not a JSON object, or whose key is not a string, is 400 before any
// authentication; a missing or unknown key is 401. A body that is not JSON at all is
// invalid_json; well-formed JSON of the wrong shape (not an object, a key that is not
// a string) is invalid_request, the code of every wrong type in this family.
func (c *Compat) superuserBody(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, scim.Principal, error) {
	if err := checkJSONContentType(r, false); err != nil {
		return nil, scim.Principal{}, err
	}
	var raw json.RawMessage
	if err := c.decodeJSON(w, r, &raw); err != nil {
		if se := scim.AsError(err); !errors.Is(err, errTooLarge) && se.Kind == scim.KindInvalidSyntax {
			return nil, scim.Principal{}, superuserBadRequest("invalid_json", "%s", se.Detail)
		}
		return nil, scim.Principal{}, err // too large (413), or a NUL (400 invalid_request)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, scim.Principal{}, superuserBadRequest("invalid_request", "the body must be a JSON object such as {\"key\": \"…\", \"email\": \"…\"}")
	}
	var key string
	if err := superuserField(fields, "key", &key); err != nil {
		return nil, scim.Principal{}, err
	}
	p, err := c.superuserAuth(r, key, "the body's key field", true)
	return fields, p, err
}

// superuserField decodes one optional body field into dst; absent or null leaves dst
// alone, and a value of another type is 400 invalid_request (the vendor document gives
// each field's type, such as email_confirmed "Optional Boolean", and no error codes;
// invalid_json is kept for a body that is not JSON).
func superuserField(fields map[string]json.RawMessage, name string, dst any) error {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		kind := "a string"
		if _, ok := dst.(*bool); ok {
			kind = "true or false"
		}
		return superuserBadRequest("invalid_request", "%s must be %s", name, kind)
	}
	return nil
}

// superuserNewUser is a create_user request.
type superuserNewUser struct {
	Email          string
	FirstName      string
	LastName       string
	Password       string
	EmailConfirmed bool
}

// parseSuperuserNewUser reads the fields of a create_user body (key aside).
func parseSuperuserNewUser(fields map[string]json.RawMessage) (superuserNewUser, error) {
	var in superuserNewUser
	for _, f := range []struct {
		name string
		dst  any
	}{
		{"email", &in.Email}, {"first_name", &in.FirstName}, {"last_name", &in.LastName},
		{"password", &in.Password}, {"email_confirmed", &in.EmailConfirmed},
	} {
		if err := superuserField(fields, f.name, f.dst); err != nil {
			return superuserNewUser{}, err
		}
	}
	return in, nil
}

// superuserUser translates a create_user request into the SCIM User to create and the
// messages to queue with it: userName and a primary work email from the normalized
// email, name.givenName/familyName (left out when empty), the password, and the scimd
// extension's emailVerified. An unconfirmed account gets a verify_email message to
// its address. It checks the email and the password against the server's
// password policy (svc.CheckPassword).
func superuserUser(in superuserNewUser, svc *scim.Service) (map[string]any, []scim.Message, error) {
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return nil, nil, err
	}
	if err := svc.CheckPassword(in.Password); err != nil {
		return nil, nil, superuserBadRequest("invalid_password", "%s", scim.AsError(err).Detail)
	}
	body := userBody(email)
	first, last := strings.TrimSpace(in.FirstName), strings.TrimSpace(in.LastName)
	name := map[string]any{}
	if first != "" {
		name["givenName"] = first
	}
	if last != "" {
		name["familyName"] = last
	}
	if len(name) > 0 {
		body["name"] = name
	}
	body["password"] = in.Password
	body["schemas"] = []any{superuserCoreURN, superuserScimdURN}
	body[superuserScimdURN] = map[string]any{"emailVerified": in.EmailConfirmed}
	if in.EmailConfirmed {
		return body, nil, nil
	}
	payload, err := json.Marshal(map[string]string{"email": email, "first_name": first, "last_name": last})
	if err != nil {
		return nil, nil, err
	}
	return body, []scim.Message{{Kind: superuserVerifyEmail, Recipient: email, Payload: payload}}, nil
}

// superuserCreateUser serves POST /api/v1/create_user (and /create_user):
// {key, email, first_name, last_name, password, email_confirmed?}. It creates an
// active user (see superuserUser) and answers 201 {}. email_confirmed true creates it
// with emailVerified true and sends nothing; otherwise emailVerified is false and a
// verify_email message is queued in the same transaction. A password under 8
// characters or a bad email is 400; an email already taken (as a userName,
// case-insensitively) is 409 user_exists. first_name and last_name may be left out.
func (c *Compat) superuserCreateUser(w http.ResponseWriter, r *http.Request) error {
	fields, p, err := c.superuserBody(w, r)
	if err != nil {
		return err
	}
	in, err := parseSuperuserNewUser(fields)
	if err != nil {
		return err
	}
	body, msgs, err := superuserUser(in, c.svc)
	if err != nil {
		return err
	}
	if _, err := c.svc.CreateQueued(r.Context(), p.TenantID, scim.UserKind, body, scim.Projection{}, msgs); err != nil {
		if scim.AsError(err).Kind == scim.KindUniqueness {
			return &superuserError{status: http.StatusConflict, code: "user_exists", msg: "a user with email " + body["userName"].(string) + " already exists"}
		}
		return err
	}
	writeJSON(w, http.StatusCreated, struct{}{})
	return nil
}

// superuserDeleteUser serves POST /api/v1/delete_user (and /delete_user): {key, email}.
// It deletes the user whose userName is the email (a SCIM DELETE, which also removes
// the user's group memberships) and answers 204 with no body. An unknown email is
// 404 user_not_found, also when it names a user of another tenant.
func (c *Compat) superuserDeleteUser(w http.ResponseWriter, r *http.Request) error {
	fields, p, err := c.superuserBody(w, r)
	if err != nil {
		return err
	}
	var raw string
	if err := superuserField(fields, "email", &raw); err != nil {
		return err
	}
	email, err := NormalizeEmail(raw)
	if err != nil {
		return err
	}
	u, err := c.findByEmail(r.Context(), p.TenantID, email)
	if err == nil {
		err = c.svc.Delete(r.Context(), p.TenantID, scim.UserKind, u.ID, "")
	}
	if err != nil {
		if scim.AsError(err).Kind == scim.KindNotFound {
			return &superuserError{status: http.StatusNotFound, code: "user_not_found", msg: "no user with email " + email}
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// superuserQueryAuth authenticates the key query parameter of a GET.
func (c *Compat) superuserQueryAuth(r *http.Request) (scim.Principal, error) {
	return c.superuserAuth(r, r.URL.Query().Get("key"), "the key query parameter", false)
}

// superuserEntry is one user of the nonteam report.
type superuserEntry struct {
	LoginEmail string `json:"login_email"`
	FirstName  string `json:"first_name"`
	LastName   string `json:"last_name"`
	CreatedAt  string `json:"created_at"`
}

// superuserEntryOf translates a SCIM User into a nonteam entry: login_email is the
// userName (the identity key), the names are name.givenName/familyName ("" when
// absent), and created_at is meta.created in RFC 1123 form in GMT.
func superuserEntryOf(u *scim.Resource) superuserEntry {
	e := superuserEntry{CreatedAt: u.Created.UTC().Format(http.TimeFormat)}
	e.LoginEmail, _ = u.Attrs["userName"].(string)
	if n, ok := u.Attrs["name"].(map[string]any); ok {
		e.FirstName, _ = n["givenName"].(string)
		e.LastName, _ = n["familyName"].(string)
	}
	return e
}

// superuserNoGroup and superuserInGroup select users by Group membership (direct
// membership, as User.groups lists it).
const (
	superuserNoGroup = "not (groups pr)"
	superuserInGroup = "groups pr"
)

// superuserNonteam serves GET /api/v1/user/nonteam?key=: every user of the tenant that
// belongs to no Group, oldest first, as 200 {"users": [...]} (an empty list when there
// are none). The vendor's reply has no paging, so the whole list is returned; it is
// read in cursor pages of the service's largest page size.
func (c *Compat) superuserNonteam(w http.ResponseWriter, r *http.Request) error {
	p, err := c.superuserQueryAuth(r)
	if err != nil {
		return err
	}
	users, err := c.superuserList(r.Context(), p.TenantID, superuserNoGroup)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
	return nil
}

// superuserList reads every user matching filter, page by page.
func (c *Compat) superuserList(ctx context.Context, tenantID, filter string) ([]superuserEntry, error) {
	n, cur := c.svc.Limits().MaxResults, ""
	q := scim.ListQuery{Filter: filter, Count: &n, Cursor: &cur,
		Projection: scim.Projection{Attributes: []string{"userName", "name"}}}
	users := []superuserEntry{}
	for {
		page, err := c.svc.List(ctx, tenantID, scim.UserKind, q)
		if err != nil {
			return nil, err
		}
		for _, u := range page.Resources {
			users = append(users, superuserEntryOf(u))
		}
		if page.NextCursor == "" || len(page.Resources) == 0 {
			return users, nil
		}
		next := page.NextCursor
		q.Cursor = &next
	}
}

// superuserCount serves GET /api/v1/user/count?key=: 200 {"user_count": all users of
// the tenant, "team_user_count": users in at least one Group}, active or not.
func (c *Compat) superuserCount(w http.ResponseWriter, r *http.Request) error {
	p, err := c.superuserQueryAuth(r)
	if err != nil {
		return err
	}
	all, err := c.superuserTotal(r.Context(), p.TenantID, "")
	if err != nil {
		return err
	}
	team, err := c.superuserTotal(r.Context(), p.TenantID, superuserInGroup)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"user_count": all, "team_user_count": team})
	return nil
}

// superuserTotal counts the users matching filter without reading any.
func (c *Compat) superuserTotal(ctx context.Context, tenantID, filter string) (int, error) {
	zero := 0
	page, err := c.svc.List(ctx, tenantID, scim.UserKind, scim.ListQuery{Filter: filter, Count: &zero})
	if err != nil {
		return 0, err
	}
	return page.TotalResults, nil
}
