package compat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/auth"
	"github.com/scimd/scimd/scim/middleware"
)

// Partner provisioning (CONTRACT.md, rules partner.*): a whitelabel partner adds users to and removes
// them from its organisation with one route, POST /v1/pine/partner/provision-user
// (alias POST /provision-user), authenticated with "Authorization: Token <token>".

// The partner family's paths.
const (
	partnerPath  = "/v1/pine/partner/provision-user"
	partnerAlias = "/provision-user"
)

// The actions of a provision-user call.
const (
	partnerActionProvision   = "provision"
	partnerActionDeprovision = "deprovision"
)

// PartnerMessageKind is the outbox kind of the message a provision queues: a link to
// the set-password page, which redirects to the payload's result_url afterwards.
const PartnerMessageKind = "set_password"

// partnerMaxResultURL bounds a result_url in bytes.
const partnerMaxResultURL = 2048

// partnerAttempts bounds how often a provision re-reads the user after losing a race
// with a concurrent create or delete of the same email.
const partnerAttempts = 3

// partnerError is a refusal of this family with its status and machine-readable code.
type partnerError struct {
	status  int
	code    string
	message string
}

func (e *partnerError) Error() string { return e.message }

func partnerBad(code, format string, args ...any) *partnerError {
	return &partnerError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

// mountPartner registers the partner family's routes. Both paths answer every method
// so that a GET is a 405 in the family's JSON error shape rather than the mux's text.
func (c *Compat) mountPartner(mux middleware.Mux) {
	h := middleware.Recover(c.log, c.partnerWriteError)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.partnerProvisionUser(w, r); err != nil {
			c.partnerWriteError(w, r, err)
		}
	}))
	h = auditChanges(FamilyPartner, map[string]string{http.MethodPost: partnerActionProvision}, h)
	mux.Handle(partnerPath, h)
	mux.Handle(partnerAlias, h)
}

// partnerProvisionUser serves POST /v1/pine/partner/provision-user and its alias
// POST /provision-user (CONTRACT.md partner.routes).
//
// The body is a JSON object {"action", "email", "result_url"}:
//   - action "provision" (the default when absent, null or "") creates the user with
//     userName and a primary work email set to the normalized email, active, and
//     queues a set_password message whose payload holds the result_url, in the same
//     transaction: 201 {"action","email","id","status":"created"}. A user whose
//     userName is already the email is reactivated (active=true) and sent a fresh
//     message in one transaction: 200 with "status":"existing".
//   - action "deprovision" deletes the user as a SCIM DELETE would: 200
//     {"action","email","status":"deleted"}; an email the tenant has no user for is
//     404 user_not_found.
//
// Decisions where the contract is silent:
//   - Only the Token scheme is read ("Token" in any case); a Bearer or Basic header
//     is 401, so a client sending the wrong style learns it at once.
//   - A sandbox token is 403 for both actions: both change production data.
//   - free_access on, or sign-in not configured, disables the endpoint as the
//     vendor document says: both actions are 400 before the body is read.
//   - action is matched case-insensitively after trimming; other values are 400
//     unknown_action. Unknown body fields are ignored; a field of the wrong JSON type
//     is 400 invalid_request.
//   - result_url must be an absolute http or https URL with a host, without user
//     information (user:pass@ is a classic way to disguise a redirect target), and
//     at most 2048 bytes; deprovision ignores it. With the tenant's result_url host
//     list set, the URL's host name (or host:port, for entries naming a port) must
//     be listed, compared case-insensitively.
//   - The body must be sent as Content-Type: application/json (or another +json
//     type, charset utf-8 if any), as both of the vendor's examples send it; any
//     other type, another charset or no Content-Type is 415 unsupported_media_type,
//     after authentication and before the body is read.
//   - The message is queued for every provision, new or existing: it is the vendor's
//     "a password reset email is sent"; the user's password is not touched until
//     the user sets one on the set-password page.
func (c *Compat) partnerProvisionUser(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return &partnerError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: "use POST"}
	}
	ctx := r.Context()
	secret := partnerCredentials(r)
	if secret == "" {
		return &scim.Error{Kind: scim.KindUnauthorized, Detail: "missing credentials: send Authorization: Token <token>"}
	}
	p, err := c.authenticate(ctx, secret, scim.ScopeCompat, FamilyPartner)
	if err != nil {
		return err
	}
	tn := p.Tenant
	partnerNotePrincipal(w, r, p)
	if p.Sandbox {
		return &partnerError{status: http.StatusForbidden, code: "sandbox_token", message: "a sandbox token cannot provision or deprovision users; use a production token"}
	}
	if err := partnerCheckTenant(tn.Settings); err != nil {
		return err
	}
	if err := checkJSONContentType(r, false); err != nil {
		return err
	}
	var body map[string]any
	if err := c.decodeJSON(w, r, &body); err != nil {
		return err
	}
	req, err := partnerParse(body, tn.Settings)
	if err != nil {
		return err
	}
	if req.action == partnerActionDeprovision {
		auditOperation(r, partnerActionDeprovision)
		auditStatus(r, http.StatusOK) // the delete is answered 200 here
		return c.partnerDeprovision(ctx, w, p.TenantID, req)
	}
	return c.partnerProvision(ctx, w, p.TenantID, req)
}

// partnerReply is the success body of both actions.
type partnerReply struct {
	Action string `json:"action"`
	Email  string `json:"email"`
	ID     string `json:"id,omitempty"`
	Status string `json:"status"`
}

// partnerProvision creates the user with its message, or reactivates the existing
// one with a fresh message. A create that loses a race with another create of the
// same email becomes the existing case, and a reactivation whose user was deleted
// meanwhile becomes a create, at most partnerAttempts times.
func (c *Compat) partnerProvision(ctx context.Context, w http.ResponseWriter, tenantID string, req partnerRequest) error {
	body, msg, err := partnerNewUser(req)
	if err != nil {
		return err
	}
	for range partnerAttempts {
		cur, err := c.findByEmail(ctx, tenantID, req.email)
		if err != nil && scim.AsError(err).Kind != scim.KindNotFound {
			return err
		}
		if err != nil {
			u, err := c.svc.CreateQueued(ctx, tenantID, scim.UserKind, body, scim.Projection{}, []scim.Message{msg})
			if err != nil && scim.AsError(err).Kind == scim.KindUniqueness {
				continue
			}
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusCreated, partnerReply{Action: partnerActionProvision, Email: req.email, ID: u.ID, Status: "created"})
			return nil
		}
		u, err := c.svc.PatchQueued(ctx, tenantID, scim.UserKind, cur.ID, partnerReactivateOps(), "", scim.Projection{}, []scim.Message{msg})
		if err != nil && scim.AsError(err).Kind == scim.KindNotFound {
			continue
		}
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, partnerReply{Action: partnerActionProvision, Email: req.email, ID: u.ID, Status: "existing"})
		return nil
	}
	return &partnerError{status: http.StatusConflict, code: "conflict", message: "the user " + req.email + " was changed by concurrent requests; retry"}
}

// partnerDeprovision deletes the user whose userName is the email.
func (c *Compat) partnerDeprovision(ctx context.Context, w http.ResponseWriter, tenantID string, req partnerRequest) error {
	cur, err := c.findByEmail(ctx, tenantID, req.email)
	if err == nil {
		err = c.svc.Delete(ctx, tenantID, scim.UserKind, cur.ID, "")
	}
	if err != nil && scim.AsError(err).Kind == scim.KindNotFound {
		return &partnerError{status: http.StatusNotFound, code: "user_not_found", message: "no user with email " + req.email}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, partnerReply{Action: partnerActionDeprovision, Email: req.email, Status: "deleted"})
	return nil
}

// partnerCredentials returns the secret of an "Authorization: Token <token>" header,
// or "" for any other header.
func partnerCredentials(r *http.Request) string {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Token") {
		return ""
	}
	return strings.TrimSpace(rest)
}

// partnerNotePrincipal records the tenant and token on the request's access-log line.
func partnerNotePrincipal(w http.ResponseWriter, r *http.Request, p scim.Principal) {
	middleware.NotePrincipal(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).
		ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
}

// partnerRequest is a validated provision-user call.
type partnerRequest struct {
	action    string // partnerActionProvision or partnerActionDeprovision
	email     string // normalized
	resultURL string // provision only
}

// partnerCheckTenant refuses the endpoint when the tenant's settings disable it.
func partnerCheckTenant(set scim.TenantSettings) error {
	if set.FreeAccess {
		return partnerBad("free_access_enabled", "provisioning is disabled while free access is on for this tenant; turn free_access off first")
	}
	if set.NoSignIn {
		return partnerBad("sign_in_not_configured", "this tenant has no sign-in configured; configure sign-in before provisioning users")
	}
	return nil
}

// partnerParse validates a decoded provision-user body against the tenant's settings.
// It is pure: every refusal is a 400 partnerError naming the field.
func partnerParse(body map[string]any, set scim.TenantSettings) (partnerRequest, error) {
	str := func(key string) (string, error) {
		switch v := body[key].(type) {
		case nil:
			return "", nil
		case string:
			return v, nil
		default:
			return "", partnerBad("invalid_request", "%s must be a string", key)
		}
	}
	action, err := str("action")
	if err != nil {
		return partnerRequest{}, err
	}
	var req partnerRequest
	switch a := strings.ToLower(strings.TrimSpace(action)); a {
	case "", partnerActionProvision:
		req.action = partnerActionProvision
	case partnerActionDeprovision:
		req.action = partnerActionDeprovision
	default:
		return partnerRequest{}, partnerBad("unknown_action", "action %q is unknown; use \"provision\" or \"deprovision\"", action)
	}
	email, err := str("email")
	if err != nil {
		return partnerRequest{}, err
	}
	if req.email, err = NormalizeEmail(email); err != nil {
		return partnerRequest{}, partnerBad("invalid_email", "%s", strings.TrimPrefix(err.Error(), errBadEmail.Error()+": "))
	}
	if req.action == partnerActionDeprovision {
		return req, nil
	}
	raw, err := str("result_url")
	if err != nil {
		return partnerRequest{}, err
	}
	if req.resultURL, err = partnerResultURL(raw, set.ResultURLHosts); err != nil {
		return partnerRequest{}, err
	}
	return req, nil
}

// partnerResultURL checks a result_url: absolute http(s) with a host, no user
// information, and a host on the tenant's list when it has one.
func partnerResultURL(raw string, hosts []string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", partnerBad("invalid_result_url", "result_url is required to provision a user: the absolute http(s) URL the user is sent to after setting a password")
	}
	if len(raw) > partnerMaxResultURL {
		return "", partnerBad("invalid_result_url", "result_url is longer than %d bytes", partnerMaxResultURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Opaque != "" {
		return "", partnerBad("invalid_result_url", "result_url %q is not an absolute http(s) URL such as https://chat.example.com", raw)
	}
	if u.User != nil {
		return "", partnerBad("invalid_result_url", "result_url must not carry user information (user@host)")
	}
	if len(hosts) > 0 {
		name := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		hostPort := strings.ToLower(u.Host)
		if !slices.Contains(hosts, name) && !slices.Contains(hosts, hostPort) {
			return "", partnerBad("invalid_result_url", "result_url host %q is not one of this tenant's allowed result_url hosts", u.Host)
		}
	}
	return raw, nil
}

// partnerMessagePayload is the JSON payload of the set_password message.
type partnerMessagePayload struct {
	ResultURL string `json:"result_url"`
}

// partnerNewUser returns the SCIM User a provision creates and the set_password
// message queued with it (or with the reactivation of an existing user).
func partnerNewUser(req partnerRequest) (map[string]any, scim.Message, error) {
	payload, err := json.Marshal(partnerMessagePayload{ResultURL: req.resultURL})
	if err != nil {
		return nil, scim.Message{}, err
	}
	return userBody(req.email), scim.Message{Kind: PartnerMessageKind, Recipient: req.email, Payload: payload}, nil
}

// partnerReactivateOps is the PATCH an existing user gets on provision: active again.
func partnerReactivateOps() []scim.PatchOp {
	return []scim.PatchOp{{Op: "replace", Path: "active", Value: true}}
}

// partnerWriteError is the partner family's one error writer: every refusal is
// {"error": <code>, "message": <text>}. An unexpected error is a 500 naming only an
// error id, which is logged with the error.
func (c *Compat) partnerWriteError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *partnerError
	var me *mediaTypeError
	switch {
	case errors.As(err, &pe):
	case errors.As(err, &me):
		pe = &partnerError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: me.detail}
	case errors.Is(err, errTooLarge):
		pe = &partnerError{status: http.StatusRequestEntityTooLarge, code: "body_too_large", message: fmt.Sprintf("the request body is larger than %d bytes", c.opts.MaxBodyBytes)}
	case errors.Is(err, errFamilyDisabled):
		pe = &partnerError{status: http.StatusNotFound, code: "not_configured", message: "partner provisioning is not enabled for this tenant"}
	default:
		pe = partnerFromSCIM(scim.AsError(err))
	}
	if id := refused(c.log, r, "partner request failed", pe.status, pe.code, pe.message, err); id != "" {
		pe.message = "internal error (error id " + id + ")"
	}
	switch pe.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Token realm="scimd"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	if v, ok := scim.RetryAfter(err); ok {
		w.Header().Set("Retry-After", v)
	}
	writeJSON(w, pe.status, map[string]string{"error": pe.code, "message": pe.message})
}

// partnerFromSCIM maps a service error to the family's status and code (see
// kindStatus); malformed bodies are invalid_json here.
func partnerFromSCIM(e *scim.Error) *partnerError {
	st, code, msg := kindStatus(e)
	switch e.Kind {
	case scim.KindInvalidSyntax:
		code = "invalid_json"
	case scim.KindUnavailable:
		msg = "the service is temporarily unavailable; retry later"
	}
	if st == http.StatusInternalServerError {
		msg = ""
	}
	return &partnerError{status: st, code: code, message: msg}
}
