package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/auth"
	"github.com/scimd/scimd/scim/middleware"
)

// The administration service (CONTRACT.md, rules admin.*): a whitelabel reseller provisions API
// accounts by email at /users, each with API credits kept in scimd's own User
// extension and a secret API token of its own, and checks the tokens its customers
// present with POST /users/verify.
//
// Every route takes `Authorization: Bearer <token>` (HTTP Basic with the token as
// password is read too, as on /scim/v2) with the admin scope; the tenant can turn the
// family off (404 then). Errors are {"error": <code>, "message": <text>}.
//
// A body is JSON: Content-Type application/json (or another +json type, charset
// utf-8 if any), or no Content-Type at all, since the vendor's document shows its
// request bodies without headers. Any other type or charset (text/plain, a form
// encoding, UTF-16) is 415 unsupported_media_type, before the body is read.

// adminExtensionURN is scimd's own User extension, which holds the credits.
const adminExtensionURN = "urn:scimd:schemas:extension:2.0:User"

// adminMaxCredits is the largest credit balance: SCIM integers are exact up to 2^53.
const adminMaxCredits = 1 << 53

// adminProjection reads users without their group memberships, which no admin
// response carries.
var adminProjection = scim.Projection{Excluded: []string{"groups"}}

// adminUser is a user as GET /users, GET /users/{email} and POST /users/verify answer
// it. The token is never part of it.
type adminUser struct {
	Email   string `json:"email"`
	Credits int64  `json:"credits"`
	Active  bool   `json:"active"`
}

// adminErr is an error that carries its own status and code: bad input, a refused
// method, a user token that does not verify.
type adminErr struct {
	status  int
	code    string
	message string
}

func (e *adminErr) Error() string { return e.message }

func adminBadRequest(code, format string, args ...any) *adminErr {
	return &adminErr{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

// adminHandler serves one method of one route for an authenticated principal.
type adminHandler func(w http.ResponseWriter, r *http.Request, p scim.Principal) error

// adminMethod is one method of a route; change marks the methods that write, which a
// sandbox token may not call.
type adminMethod struct {
	h      adminHandler
	change bool
}

// mountAdmin registers the administration service's routes. The patterns carry no
// method so that a wrong method gets this family's JSON 405 with an Allow header.
func (c *Compat) mountAdmin(mux middleware.Mux) {
	log := c.log.Named("admin")
	recov := middleware.Recover(log, c.adminError)
	mux.Handle("/users", auditChanges(FamilyAdmin, map[string]string{
		http.MethodPost: scim.OpCreate, http.MethodPatch: scim.OpUpdate, http.MethodDelete: "deactivate",
	}, recov(c.adminRoute(map[string]adminMethod{
		http.MethodGet:    {h: c.adminList},
		http.MethodPost:   {h: c.adminCreate, change: true},
		http.MethodPatch:  {h: c.adminPatch, change: true},
		http.MethodDelete: {h: c.adminDelete, change: true},
	}))))
	mux.Handle("/users/verify", recov(c.adminRoute(map[string]adminMethod{
		http.MethodPost: {h: c.adminVerify},
	})))
	mux.Handle("/users/{email}", recov(c.adminRoute(map[string]adminMethod{
		http.MethodGet: {h: c.adminGet},
	})))
}

// adminRoute checks the method, authenticates the admin token (scope admin, family
// enabled for its tenant, no sandbox token on writes) and runs the method's handler,
// answering its error through adminError.
func (c *Compat) adminRoute(methods map[string]adminMethod) http.Handler {
	allow := make([]string, 0, len(methods))
	for m := range methods {
		allow = append(allow, m)
	}
	sort.Strings(allow)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, ok := methods[r.Method]
		if !ok {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			c.adminError(w, r, &adminErr{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
				message: fmt.Sprintf("%s is not allowed here; use %s", r.Method, strings.Join(allow, " or "))})
			return
		}
		p, err := c.authenticate(r.Context(), auth.Credentials(r), scim.ScopeAdmin, FamilyAdmin)
		if err != nil {
			c.adminError(w, r, err)
			return
		}
		if m.change && p.Sandbox {
			c.adminError(w, r, &adminErr{status: http.StatusForbidden, code: "sandbox",
				message: "a sandbox token cannot change accounts; use a production admin token"})
			return
		}
		// NotePrincipal puts the tenant and token on the access-log line.
		middleware.NotePrincipal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := m.h(w, r, p); err != nil {
				c.adminError(w, r, err)
			}
		})).ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// adminCreate serves POST /users {email, credits?}: it creates the user (userName and
// primary work email = the normalized email, active, credits in scimd's User
// extension), issues the user's own API token (bound to the user, with no scope; shown
// only in this response, stored hashed) and answers 201 {"email", "token",
// "credits"}. An existing email, active or deactivated, is 409: a deactivated account
// is not reopened here. Unknown body keys are ignored. If the token cannot be issued,
// the user is removed again, so a failed call leaves no account without a token.
func (c *Compat) adminCreate(w http.ResponseWriter, r *http.Request, p scim.Principal) error {
	body, err := c.adminDecode(w, r)
	if err != nil {
		return err
	}
	email, credits, err := adminParseCreate(body)
	if err != nil {
		return err
	}
	ctx := r.Context()
	u, err := c.svc.Create(ctx, p.TenantID, scim.UserKind, adminUserBody(email, credits), adminProjection)
	if err != nil {
		if scim.AsError(err).Kind == scim.KindUniqueness {
			return &adminErr{status: http.StatusConflict, code: "user_exists", message: "a user with email " + email + " exists already"}
		}
		return err
	}
	token, err := c.tokens.IssueForUser(ctx, p.TenantID, u.ID)
	if err != nil {
		if derr := c.svc.Delete(context.WithoutCancel(ctx), p.TenantID, scim.UserKind, u.ID, ""); derr != nil {
			c.log.Named("admin").Error("cannot remove a user whose token failed", zap.String("request_id", middleware.RequestID(ctx)),
				zap.String("tenant_id", p.TenantID), zap.String("user_id", u.ID), zap.Error(derr))
		}
		return err
	}
	v := adminView(u)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "/users/"+url.PathEscape(v.Email))
	writeJSON(w, http.StatusCreated, map[string]any{"email": v.Email, "token": token, "credits": v.Credits})
	return nil
}

// adminGet serves GET /users/{email}: 200 {"email", "credits", "active"}, never the
// token; an unknown email (or another tenant's) is 404, a malformed one 400.
func (c *Compat) adminGet(w http.ResponseWriter, r *http.Request, p scim.Principal) error {
	email, err := adminEmail(r.PathValue("email"))
	if err != nil {
		return err
	}
	u, err := c.findByEmail(r.Context(), p.TenantID, email)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, adminView(u))
	return nil
}

// adminList serves GET /users?startIndex&count: every user of the tenant, in creation
// order, as {"totalResults", "startIndex", "users": [{"email", "credits", "active"}]}.
// startIndex is 1-based (values below 1 read as 1); count defaults to the service's
// page size and is capped at its maximum (filter.maxResults), a negative count
// reading as 0. A value that is not an integer is 400. Users created through SCIM are
// listed too: email is their userName (the key GET /users/{email} finds them by),
// credits 0 when they have none.
func (c *Compat) adminList(w http.ResponseWriter, r *http.Request, p scim.Principal) error {
	q := scim.ListQuery{Projection: adminProjection}
	v := r.URL.Query()
	if s := v.Get("startIndex"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return adminBadRequest("invalid_request", "startIndex must be an integer (1 or more), not %q", s)
		}
		q.StartIndex = n
	}
	if s := v.Get("count"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return adminBadRequest("invalid_request", "count must be an integer (0 or more), not %q", s)
		}
		q.Count = &n
	}
	page, err := c.svc.List(r.Context(), p.TenantID, scim.UserKind, q)
	if err != nil {
		return err
	}
	users := make([]adminUser, 0, len(page.Resources))
	for _, u := range page.Resources {
		users = append(users, adminView(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalResults": page.TotalResults, "startIndex": page.StartIndex, "users": users})
	return nil
}

// adminPatch serves PATCH /users {email, credits}: it sets the credits (both fields
// required) and answers 200 {"email", "credits"}; an unknown email is 404. It does
// not change active: credits given to a deactivated account are kept, and the account
// stays deactivated.
func (c *Compat) adminPatch(w http.ResponseWriter, r *http.Request, p scim.Principal) error {
	body, err := c.adminDecode(w, r)
	if err != nil {
		return err
	}
	email, credits, err := adminParsePatch(body)
	if err != nil {
		return err
	}
	ctx := r.Context()
	u, err := c.findByEmail(ctx, p.TenantID, email)
	if err != nil {
		return err
	}
	if u, err = c.svc.Patch(ctx, p.TenantID, scim.UserKind, u.ID, adminCreditsOps(credits), "", adminProjection); err != nil {
		return err
	}
	v := adminView(u)
	writeJSON(w, http.StatusOK, map[string]any{"email": v.Email, "credits": v.Credits})
	return nil
}

// adminDelete serves DELETE /users with {email} in the body or ?email= (both may be
// given if they name the same address): it deactivates the account. The user's
// tokens are revoked first, then the user is set active=false with credits 0 (kept, so
// the account and its history stay readable through SCIM). 200 {"email", "credits":
// 0}. It is idempotent: deactivating a deactivated account is 200 again (its tokens
// are revoked again, the user is not rewritten); an unknown email is 404. Revoking
// before deactivating means a failure in between leaves a user whose token no longer
// works, never a deactivated user with a working token, and a retry completes it.
func (c *Compat) adminDelete(w http.ResponseWriter, r *http.Request, p scim.Principal) error {
	body, err := c.adminDecodeOptional(w, r)
	if err != nil {
		return err
	}
	email, err := adminParseDelete(body, r.URL.Query())
	if err != nil {
		return err
	}
	ctx := r.Context()
	u, err := c.findByEmail(ctx, p.TenantID, email)
	if err != nil {
		return err
	}
	if err := c.tokens.RevokeUser(ctx, p.TenantID, u.ID); err != nil {
		return err
	}
	if v := adminView(u); v.Active || v.Credits != 0 {
		if u, err = c.svc.Patch(ctx, p.TenantID, scim.UserKind, u.ID, adminDeactivateOps(), "", adminProjection); err != nil {
			return err
		}
	}
	v := adminView(u)
	writeJSON(w, http.StatusOK, map[string]any{"email": v.Email, "credits": v.Credits})
	return nil
}

// adminVerify serves POST /users/verify {token}: 200 {"email", "credits", "active"}
// when the token is a user's token of the caller's tenant (issued by POST /users, or
// bound to a user by `scimd token create --user`). A revoked or unknown token,
// another tenant's token, a token bound to no user, or one whose user was deleted
// through SCIM is 401 "invalid_token", all with the same message. A user deactivated
// through SCIM without DELETE /users keeps a working token and is answered with
// "active": false, so the product behind the API must check active as well.
func (c *Compat) adminVerify(w http.ResponseWriter, r *http.Request, p scim.Principal) error {
	body, err := c.adminDecode(w, r)
	if err != nil {
		return err
	}
	token, err := adminParseVerify(body)
	if err != nil {
		return err
	}
	invalid := &adminErr{status: http.StatusUnauthorized, code: "invalid_token", message: "the token is not a valid user token of this tenant"}
	ctx := r.Context()
	up, err := c.tokens.Verify(ctx, token)
	if err != nil {
		if scim.AsError(err).Kind == scim.KindUnauthorized {
			return invalid
		}
		return err
	}
	if up.TenantID != p.TenantID || up.UserID == "" {
		return invalid
	}
	u, err := c.svc.Get(ctx, p.TenantID, scim.UserKind, up.UserID, adminProjection)
	if err != nil {
		if scim.AsError(err).Kind == scim.KindNotFound {
			return invalid
		}
		return err
	}
	writeJSON(w, http.StatusOK, adminView(u))
	return nil
}

// adminDecode reads a JSON object body; anything else is 400.
func (c *Compat) adminDecode(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	if err := checkJSONContentType(r, true); err != nil {
		return nil, err
	}
	var body map[string]any
	if err := c.decodeJSON(w, r, &body); err != nil {
		return nil, err
	}
	if body == nil {
		return nil, adminBadRequest("invalid_request", "the body must be a JSON object")
	}
	return body, nil
}

// adminDecodeOptional is adminDecode for a body that may be absent (nil then).
func (c *Compat) adminDecodeOptional(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errTooLarge
		}
		return nil, &scim.Error{Kind: scim.KindInvalidSyntax, Detail: "cannot read the request body", Err: err}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	return c.adminDecode(w, r)
}

// adminParseCreate reads POST /users: email (required) and credits (optional, 0 by
// default; null is the default too).
func adminParseCreate(body map[string]any) (email string, credits int64, err error) {
	if email, err = adminEmailField(body); err != nil {
		return "", 0, err
	}
	if v, ok := body["credits"]; ok && v != nil {
		if credits, err = adminCredits(v); err != nil {
			return "", 0, err
		}
	}
	return email, credits, nil
}

// adminParsePatch reads PATCH /users: email and credits, both required.
func adminParsePatch(body map[string]any) (email string, credits int64, err error) {
	if email, err = adminEmailField(body); err != nil {
		return "", 0, err
	}
	v, ok := body["credits"]
	if !ok || v == nil {
		return "", 0, adminBadRequest("invalid_credits", "credits is required: the account's new credit balance, an integer of 0 or more")
	}
	if credits, err = adminCredits(v); err != nil {
		return "", 0, err
	}
	return email, credits, nil
}

// adminParseDelete reads the email of DELETE /users from the body or the query.
func adminParseDelete(body map[string]any, q url.Values) (string, error) {
	var fromBody, fromQuery string
	if _, ok := body["email"]; ok {
		e, err := adminEmailField(body)
		if err != nil {
			return "", err
		}
		fromBody = e
	}
	if q.Has("email") {
		e, err := adminEmail(q.Get("email"))
		if err != nil {
			return "", err
		}
		fromQuery = e
	}
	switch {
	case fromBody != "" && fromQuery != "" && fromBody != fromQuery:
		return "", adminBadRequest("invalid_request", "the body names %s and the query names %s; give one email", fromBody, fromQuery)
	case fromBody != "":
		return fromBody, nil
	case fromQuery != "":
		return fromQuery, nil
	}
	return "", adminBadRequest("invalid_email", "email is required, in the body ({\"email\": …}) or as ?email=")
}

// adminParseVerify reads POST /users/verify: the token to check.
func adminParseVerify(body map[string]any) (string, error) {
	s, ok := body["token"].(string)
	if !ok || strings.TrimSpace(s) == "" {
		return "", adminBadRequest("invalid_request", "token is required: the user's API token, as a string")
	}
	return strings.TrimSpace(s), nil
}

// adminEmailField reads the body's email, which must be a string address.
func adminEmailField(body map[string]any) (string, error) {
	v, ok := body["email"]
	if !ok || v == nil {
		return "", adminBadRequest("invalid_email", "email is required")
	}
	s, ok := v.(string)
	if !ok {
		return "", adminBadRequest("invalid_email", "email must be a string such as \"ann@example.com\"")
	}
	return adminEmail(s)
}

// adminEmail normalizes an email by the contract's identity rule.
func adminEmail(raw string) (string, error) {
	e, err := NormalizeEmail(raw)
	if err != nil {
		return "", adminBadRequest("invalid_email", "%s", strings.TrimPrefix(err.Error(), errBadEmail.Error()+": "))
	}
	return e, nil
}

// adminCredits reads a credit balance: a JSON number with a whole value from 0 to
// 2^53 (1000, 1000.0 and 1e3 are all 1000). Strings, booleans, fractions and negative
// numbers are 400.
func adminCredits(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, adminBadRequest("invalid_credits", "credits must be a number (an integer of 0 or more), not %s", adminJSONType(v))
	}
	if i, err := n.Int64(); err == nil {
		if i < 0 || i > adminMaxCredits {
			return 0, adminBadRequest("invalid_credits", "credits must be between 0 and %d, not %d", int64(adminMaxCredits), i)
		}
		return i, nil
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) {
		return 0, adminBadRequest("invalid_credits", "credits must be a whole number, not %s", n)
	}
	if f < 0 || f > adminMaxCredits {
		return 0, adminBadRequest("invalid_credits", "credits must be between 0 and %d, not %s", int64(adminMaxCredits), n)
	}
	return int64(f), nil
}

func adminJSONType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "null"
}

// adminUserBody is the SCIM User POST /users creates: the contract's identity key,
// active, and the credits in scimd's User extension.
func adminUserBody(email string, credits int64) map[string]any {
	b := userBody(email)
	b["schemas"] = []any{"urn:ietf:params:scim:schemas:core:2.0:User", adminExtensionURN}
	b[adminExtensionURN] = map[string]any{"credits": credits}
	return b
}

// adminCreditsOps is the SCIM PATCH that sets the credits.
func adminCreditsOps(credits int64) []scim.PatchOp {
	return []scim.PatchOp{{Op: "replace", Path: adminExtensionURN + ":credits", Value: credits}}
}

// adminDeactivateOps is the SCIM PATCH that deactivates an account.
func adminDeactivateOps() []scim.PatchOp {
	return []scim.PatchOp{
		{Op: "replace", Path: "active", Value: false},
		{Op: "replace", Path: adminExtensionURN + ":credits", Value: int64(0)},
	}
}

// adminView reads a SCIM User as the admin routes show it: email is the userName,
// credits are 0 when the extension has none, and a user without active is active
// (RFC 7643 leaves it to the provider; scimd creates users active).
func adminView(u *scim.Resource) adminUser {
	v := adminUser{Active: true}
	v.Email, _ = u.Attrs["userName"].(string)
	if a, ok := u.Attrs["active"].(bool); ok {
		v.Active = a
	}
	if ext, ok := u.Attrs[adminExtensionURN].(map[string]any); ok {
		switch n := ext["credits"].(type) {
		case int64:
			v.Credits = n
		case int:
			v.Credits = int64(n)
		case float64:
			v.Credits = int64(n)
		case json.Number:
			v.Credits, _ = n.Int64()
		}
	}
	return v
}

// adminError is the family's one error writer: {"error": <code>, "message": <text>}.
// Kinds map to 400 (bad input), 401 (no or unknown admin token, with
// WWW-Authenticate), 403 (scope, sandbox), 404 (unknown user, family disabled), 409
// (existing email, concurrent change), 413, 429 (with Retry-After), 503 and 500; a 500 carries only an error
// id, and the error is logged with it.
func (c *Compat) adminError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := adminStatus(err)
	if id := refused(c.log.Named("admin"), r, "request failed", status, code, msg, err); id != "" {
		msg = "internal error (error id " + id + ")"
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	if status == http.StatusUnauthorized && code == "unauthorized" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scimd"`)
	}
	if v, ok := scim.RetryAfter(err); ok {
		w.Header().Set("Retry-After", v)
	}
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

// adminStatus maps an error to its status, code and message.
func adminStatus(err error) (int, string, string) {
	var ae *adminErr
	var me *mediaTypeError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.code, ae.message
	case errors.As(err, &me):
		return http.StatusUnsupportedMediaType, "unsupported_media_type", me.detail
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, "payload_too_large", "the request body is too large"
	case errors.Is(err, errFamilyDisabled):
		return http.StatusNotFound, "not_found", errFamilyDisabled.Error()
	}
	e := scim.AsError(err)
	st, code, msg := kindStatus(e)
	switch e.Kind {
	case scim.KindUniqueness:
		code = "user_exists"
	case scim.KindPrecondition:
		msg = "the account was changed at the same time; retry"
	case scim.KindNotFound:
		code = "user_not_found"
	}
	if st == http.StatusInternalServerError {
		code = "internal_error"
	}
	return st, code, msg
}
