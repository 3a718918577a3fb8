package compat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/auth"
	"github.com/scimd/scimd/scim/middleware"
)

// Onboarding provisioning (COMPAT.md §5): a batch of users is created (POST) or
// updated (PATCH) in one call, and the batch's task reports each user's outcome
// (GET /onboarding/provision/tasks/{taskId}). Authenticated with
// "Authorization: Bearer <token>" of scope compat.
//
// Every batch is a scim bulk user task: its entries are stored before any user is
// written, then run one by one through the same use cases as SCIM writes. A batch
// of at most onboardingSyncMax users runs inside the request and is answered 200
// with its outcome; a larger one is answered 202 at once and run by the background
// task worker, on any replica, surviving restarts.

// The onboarding family's paths.
const (
	onboardingUsersPath = "/onboarding/provision/standalone/users"
	onboardingTasksPath = "/onboarding/provision/tasks/"
)

const (
	// onboardingMaxBody bounds a request body: room for a batch of
	// onboardingMaxUsers entries of ordinary size.
	onboardingMaxBody = 8 << 20
	// onboardingSyncMax is the largest batch run inside the request.
	onboardingSyncMax = 1000
	// onboardingMaxUsers is the largest batch accepted.
	onboardingMaxUsers = 10000
	// onboardingResourceRole is the role a user with a resource must hold.
	onboardingResourceRole = "Resource"
)

// OnboardingMessageKind is the outbox kind of the message sendInvitation queues: an
// invitation whose link lets the new user set a password.
const OnboardingMessageKind = "invitation"

// onboardingError is a refusal of this family with its status and errorType.
type onboardingError struct {
	status    int
	errorType string
	message   string
	tenantID  string // api_user_not_found only
}

func (e *onboardingError) Error() string { return e.message }

func onboardingBad(errorType, format string, args ...any) *onboardingError {
	return &onboardingError{status: http.StatusBadRequest, errorType: errorType, message: fmt.Sprintf(format, args...)}
}

// onboardingRoutes serves the family over the task use cases.
type onboardingRoutes struct {
	c     *Compat
	tasks *scim.Tasks
}

// mountOnboarding registers the onboarding family's routes. A path called with
// another method answers 405 in the family's error shape.
func (c *Compat) mountOnboarding(mux middleware.Mux) {
	o := &onboardingRoutes{c: c, tasks: c.svc.Tasks(scim.TaskOptions{})}
	wrap := func(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
		return middleware.Recover(c.log, c.onboardingWriteError)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				c.onboardingWriteError(w, r, err)
			}
		}))
	}
	changes := map[string]string{http.MethodPost: scim.OpCreate, http.MethodPatch: scim.OpUpdate}
	mux.Handle("POST "+onboardingUsersPath, auditChanges(FamilyOnboarding, changes, wrap(o.provision)))
	mux.Handle("PATCH "+onboardingUsersPath, auditChanges(FamilyOnboarding, changes, wrap(o.update)))
	mux.Handle(onboardingUsersPath, wrap(onboardingMethodNotAllowed("POST, PATCH")))
	mux.Handle("GET "+onboardingTasksPath+"{taskId}", wrap(o.task))
	mux.Handle(onboardingTasksPath+"{taskId}", wrap(onboardingMethodNotAllowed("GET")))
}

func onboardingMethodNotAllowed(allow string) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Allow", allow)
		return &onboardingError{status: http.StatusMethodNotAllowed, errorType: "method_not_allowed", message: "use " + allow}
	}
}

// provision serves POST /onboarding/provision/standalone/users (COMPAT.md §5).
//
// The body is a JSON array of {email, firstName, lastName, roles[], sendInvitation?,
// resource?: {regionId, isActive?}}. Each user becomes one SCIM create: userName and
// a primary work email set to the normalized email, name.givenName and
// name.familyName, roles [{"value": r}], active. The answer is 200
// {"result": {"inserted", "updated": 0, "total", "failures": {email: {code,
// message}}, "taskId"}}; batches over 1,000 users are answered 202 with the same
// shape at once (counts so far) and run in the background.
//
// Decisions where the contract and the vendor document are silent:
//   - The whole request is refused (400) before any user is written when it is not
//     an array, an entry is not an object, a field has the wrong JSON type, a role
//     is empty, an email is missing or invalid (invalid_email; an email is the key
//     of the failures map), the batch has more than 10,000 users (too_many_users),
//     or the resource rule fails: a user with a resource must hold the Resource
//     role, a user holding it must have a resource, and a resource needs a
//     non-empty regionId (users_need_resource_role, listing every such email, as
//     the vendor document says of a resource without a valid regionId).
//   - Per-user failures, after which the batch goes on: email_already_exists (also
//     for the second of two entries with one email: the first creates the user),
//     name_required (firstName or lastName missing or blank), invalid_user (SCIM
//     refused the user, with its reason) and internal_error. failures is keyed by
//     email, so an email that failed twice in one batch appears once; the task's
//     users list has one row per entry, and inserted plus its failed rows is total.
//   - resource.regionId is kept as the EnterpriseUser extension's division (a region
//     is the division of the organisation a resource works in), readable and
//     filterable through SCIM. resource.isActive is accepted and not stored: scimd
//     has no resource record apart from the user, and the User's active means the
//     account may sign in, which is not what the vendor's flag says.
//   - sendInvitation true queues an "invitation" message with the user, in the same
//     transaction; its payload {"first_name", "last_name", "set_password": true}
//     tells the delivery to include a set-password link.
//   - Names and roles are trimmed; roles equal but for case are kept once.
//   - A sandbox token is 403: the call changes production data.
//   - Every batch, the 200 ones included, gets a task, readable at the task route.
//     A batch run in the request that the database interrupts (unavailable) is
//     answered 202 with the counts so far; the worker finishes it.
func (o *onboardingRoutes) provision(w http.ResponseWriter, r *http.Request) error {
	return o.batch(w, r, false)
}

// update serves PATCH /onboarding/provision/standalone/users (COMPAT.md §5).
//
// The body has POST's shape; each entry updates the user whose userName is the
// normalized email, changing only the fields present: firstName and lastName
// replace name.givenName and name.familyName, roles replaces the roles (an empty
// array removes them), resource.regionId replaces the EnterpriseUser division. The
// answer is POST's, with the updated users counted in updated.
//
// Decisions where the contract and the vendor document are silent:
//   - The resource rule can only be checked on what the entry carries: a resource
//     needs a regionId, and roles, when given with a resource, must hold Resource.
//     Roles given without Resource do not remove a stored division (only fields
//     present change).
//   - An email with no user is the per-user failure user_not_found; a firstName or
//     lastName given blank is name_required. An entry with no field to change
//     still counts as updated when its user exists.
//   - sendInvitation is ignored: invitations go to new users, from POST.
//   - The task's type is "bulk_user_update"; batches over 1,000 run in the
//     background as POST's do.
func (o *onboardingRoutes) update(w http.ResponseWriter, r *http.Request) error {
	return o.batch(w, r, true)
}

func (o *onboardingRoutes) batch(w http.ResponseWriter, r *http.Request, patch bool) error {
	ctx := r.Context()
	p, err := o.authorize(w, r, true)
	if err != nil {
		return err
	}
	raw, err := onboardingReadBody(w, r)
	if err != nil {
		return err
	}
	users, err := onboardingParse(raw, o.c.svc.Limits().MaxJSONDepth, patch)
	if err != nil {
		return err
	}
	typ, writes := scim.TaskImportUsers, make([]scim.UserWrite, len(users))
	for i, u := range users {
		if patch {
			writes[i] = onboardingUpdateWrite(u)
		} else {
			writes[i] = onboardingCreateWrite(u)
		}
	}
	if patch {
		typ = scim.TaskUpdateUsers
	}
	if o.tasks == nil {
		return errors.New("the store keeps no tasks")
	}
	if len(writes) > onboardingSyncMax {
		auditStatus(r, http.StatusAccepted) // the worker's changes are those of a 202
		st, err := o.tasks.Submit(ctx, p.TenantID, typ, writes)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, onboardingBatchReply(st))
		return nil
	}
	auditStatus(r, http.StatusOK) // a batch is answered 200, its creates included
	st, finished, err := o.tasks.Run(ctx, p.TenantID, typ, writes)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !finished {
		status = http.StatusAccepted // the rest runs in the background
	}
	writeJSON(w, status, onboardingBatchReply(st))
	return nil
}

// task serves GET /onboarding/provision/tasks/{taskId} (COMPAT.md §5): the task and
// one row per user of its batch, in the batch's order.
//
// Decisions where the contract and the vendor document are silent:
//   - taskId is a string (a UUID); a task of another tenant, or no task, is 404
//     task_not_found.
//   - task.success is true once every user of a completed task succeeded; while
//     the task runs completedAt is null, success false and errorMsg null; a
//     completed task with failures says how many in errorMsg. A user row's success
//     is true once its user was written; errorMsg is its failure's message.
//   - Times are RFC 3339 in UTC with microseconds; lastCheckedInAt is when a worker
//     (or the request) last recorded progress, null before any.
//   - A sandbox token may read tasks.
func (o *onboardingRoutes) task(w http.ResponseWriter, r *http.Request) error {
	p, err := o.authorize(w, r, false)
	if err != nil {
		return err
	}
	if o.tasks == nil {
		return errors.New("the store keeps no tasks")
	}
	id := r.PathValue("taskId")
	st, err := o.tasks.Status(r.Context(), p.TenantID, id, true)
	if err != nil {
		if scim.AsError(err).Kind == scim.KindNotFound {
			return &onboardingError{status: http.StatusNotFound, errorType: "task_not_found", message: fmt.Sprintf("no task %q", id)}
		}
		return err
	}
	writeJSON(w, http.StatusOK, onboardingTaskReply(st))
	return nil
}

// authorize authenticates the Bearer token (scope compat, family enabled) and
// checks the tenant's onboarding API user; write refuses sandbox tokens.
func (o *onboardingRoutes) authorize(w http.ResponseWriter, r *http.Request, write bool) (scim.Principal, error) {
	secret := onboardingCredentials(r)
	if secret == "" {
		return scim.Principal{}, &scim.Error{Kind: scim.KindUnauthorized, Detail: "missing credentials: send Authorization: Bearer <token>"}
	}
	p, err := o.c.authenticate(r.Context(), secret, scim.ScopeCompat, FamilyOnboarding)
	if err != nil {
		return scim.Principal{}, err
	}
	tn := p.Tenant
	onboardingNotePrincipal(w, r, p)
	if tn.Settings.NoOnboardingUser {
		return scim.Principal{}, &onboardingError{status: http.StatusForbidden, errorType: "api_user_not_found", tenantID: tn.ID,
			message: fmt.Sprintf("API User for tenant %s has not been set up. Set it up with: scimd tenant set %s onboarding_api_user=configured", tn.ID, tn.Name)}
	}
	if write && p.Sandbox {
		return scim.Principal{}, &onboardingError{status: http.StatusForbidden, errorType: "sandbox_token", message: "a sandbox token cannot provision or update users; use a production token"}
	}
	return p, nil
}

// onboardingCredentials returns the token of an "Authorization: Bearer <token>"
// header, or "" for any other header.
func onboardingCredentials(r *http.Request) string {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(rest)
}

// onboardingNotePrincipal records the tenant and token on the access-log line.
func onboardingNotePrincipal(w http.ResponseWriter, r *http.Request, p scim.Principal) {
	middleware.NotePrincipal(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).
		ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
}

// onboardingReadBody reads the body under the family's own limit.
func onboardingReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, onboardingMaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errTooLarge
		}
		return nil, &scim.Error{Kind: scim.KindInvalidSyntax, Detail: "cannot read the request body", Err: err}
	}
	return raw, nil
}

// onboardingUser is one validated entry of a batch.
type onboardingUser struct {
	email               string // normalized
	firstName, lastName *string
	roles               []string
	hasRoles            bool
	sendInvitation      bool
	resource            *onboardingResource
}

type onboardingResource struct {
	regionID string
	isActive *bool
}

// onboardingParse decodes (with scim.DecodeJSON, nesting at most maxDepth levels)
// and validates a batch. It is pure; every refusal is a 400: a body that is not
// one JSON value, names a key twice or is not UTF-8 is invalid_json, a NUL character
// is invalid_request (onboardingFromSCIM), anything else an onboardingError.
func onboardingParse(raw []byte, maxDepth int, patch bool) ([]onboardingUser, error) {
	var body any
	if err := scim.DecodeJSON(raw, maxDepth, &body); err != nil {
		return nil, err
	}
	list, ok := body.([]any)
	if !ok {
		return nil, onboardingBad("invalid_request", "the body must be a JSON array of users such as [{\"email\": \"ann@example.com\", \"firstName\": \"Ann\", \"lastName\": \"Smith\", \"roles\": [\"Scheduler\"]}]")
	}
	if len(list) > onboardingMaxUsers {
		return nil, onboardingBad("too_many_users", "the batch has %d users; send at most %d per request", len(list), onboardingMaxUsers)
	}
	users := make([]onboardingUser, len(list))
	for i, it := range list {
		u, err := onboardingParseUser(i, it)
		if err != nil {
			return nil, err
		}
		users[i] = u
	}
	var wrong []string
	for _, u := range users {
		if onboardingResourceMismatch(u, patch) {
			wrong = append(wrong, u.email)
		}
	}
	if len(wrong) > 0 {
		return nil, onboardingBad("users_need_resource_role", "Users with an assigned resource must have Resource role and vice versa; a resource needs a regionId. Email of user records in error: {%s}", strings.Join(wrong, ", "))
	}
	return users, nil
}

// onboardingResourceMismatch applies the resource rule to one entry.
func onboardingResourceMismatch(u onboardingUser, patch bool) bool {
	role := false
	for _, r := range u.roles {
		if strings.EqualFold(r, onboardingResourceRole) {
			role = true
		}
	}
	if u.resource != nil && u.resource.regionID == "" {
		return true
	}
	if patch {
		return u.resource != nil && u.hasRoles && !role
	}
	return role != (u.resource != nil)
}

func onboardingParseUser(i int, it any) (onboardingUser, error) {
	m, ok := it.(map[string]any)
	if !ok {
		return onboardingUser{}, onboardingBad("invalid_request", "users[%d] must be an object", i)
	}
	var u onboardingUser
	str := func(key string) (*string, error) {
		switch v := m[key].(type) {
		case nil:
			return nil, nil
		case string:
			return &v, nil
		}
		return nil, onboardingBad("invalid_request", "users[%d].%s must be a string", i, key)
	}
	email, err := str("email")
	if err != nil {
		return u, err
	}
	if email == nil {
		return u, onboardingBad("invalid_email", "users[%d].email is required", i)
	}
	if u.email, err = NormalizeEmail(*email); err != nil {
		return u, onboardingBad("invalid_email", "users[%d].email: %s", i, strings.TrimPrefix(err.Error(), errBadEmail.Error()+": "))
	}
	if u.firstName, err = str("firstName"); err != nil {
		return u, err
	}
	if u.lastName, err = str("lastName"); err != nil {
		return u, err
	}
	switch v := m["roles"].(type) {
	case nil:
	case []any:
		u.hasRoles = true
		for _, r := range v {
			s, ok := r.(string)
			if !ok || strings.TrimSpace(s) == "" {
				return u, onboardingBad("invalid_request", "users[%d].roles must be an array of role names such as [\"Scheduler\"]", i)
			}
			s = strings.TrimSpace(s)
			dup := false
			for _, have := range u.roles {
				dup = dup || strings.EqualFold(have, s)
			}
			if !dup {
				u.roles = append(u.roles, s)
			}
		}
	default:
		return u, onboardingBad("invalid_request", "users[%d].roles must be an array of role names such as [\"Scheduler\"]", i)
	}
	switch v := m["sendInvitation"].(type) {
	case nil:
	case bool:
		u.sendInvitation = v
	default:
		return u, onboardingBad("invalid_request", "users[%d].sendInvitation must be true or false", i)
	}
	switch v := m["resource"].(type) {
	case nil:
	case map[string]any:
		u.resource = &onboardingResource{}
		switch id := v["regionId"].(type) {
		case nil:
		case string:
			u.resource.regionID = strings.TrimSpace(id)
		default:
			return u, onboardingBad("invalid_request", "users[%d].resource.regionId must be a string", i)
		}
		switch a := v["isActive"].(type) {
		case nil:
		case bool:
			u.resource.isActive = &a
		default:
			return u, onboardingBad("invalid_request", "users[%d].resource.isActive must be true or false", i)
		}
	default:
		return u, onboardingBad("invalid_request", "users[%d].resource must be an object such as {\"regionId\": \"…\", \"isActive\": true}", i)
	}
	return u, nil
}

// onboardingInvitation is the payload of the invitation message.
type onboardingInvitation struct {
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	SetPassword bool   `json:"set_password"`
}

func onboardingTrim(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

func onboardingRoles(roles []string) []any {
	out := make([]any, len(roles))
	for i, r := range roles {
		out[i] = map[string]any{"value": r}
	}
	return out
}

// onboardingCreateWrite turns a POST entry into the create of a SCIM User, with its
// invitation when asked. A user without both names is refused (name_required).
func onboardingCreateWrite(u onboardingUser) scim.UserWrite {
	first, last := onboardingTrim(u.firstName), onboardingTrim(u.lastName)
	body := userBody(u.email)
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
	if len(u.roles) > 0 {
		body["roles"] = onboardingRoles(u.roles)
	}
	if u.resource != nil {
		body["schemas"] = []any{onboardingCoreURN, onboardingEnterpriseURN}
		body[onboardingEnterpriseURN] = map[string]any{"division": u.resource.regionID}
	}
	w := scim.UserWrite{UserName: u.email, GivenName: first, FamilyName: last, Create: body}
	if first == "" || last == "" {
		w.Refused = &scim.Error{Kind: scim.KindInvalidValue, Detail: onboardingNameRequired}
	}
	if u.sendInvitation {
		payload, _ := json.Marshal(onboardingInvitation{FirstName: first, LastName: last, SetPassword: true})
		w.Messages = []scim.Message{{Kind: OnboardingMessageKind, Recipient: u.email, Payload: payload}}
	}
	return w
}

// The URNs an onboarding user body names.
const (
	onboardingCoreURN       = "urn:ietf:params:scim:schemas:core:2.0:User"
	onboardingEnterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

// onboardingNameRequired is the detail of an entry refused for its names; it maps
// to the failure code name_required.
const onboardingNameRequired = "firstName and lastName are required and must not be blank"

// onboardingUpdateWrite turns a PATCH entry into PATCH operations on the user,
// one for each field present.
func onboardingUpdateWrite(u onboardingUser) scim.UserWrite {
	w := scim.UserWrite{UserName: u.email, GivenName: onboardingTrim(u.firstName), FamilyName: onboardingTrim(u.lastName)}
	if (u.firstName != nil && w.GivenName == "") || (u.lastName != nil && w.FamilyName == "") {
		w.Refused = &scim.Error{Kind: scim.KindInvalidValue, Detail: onboardingNameRequired}
	}
	if u.firstName != nil {
		w.Patch = append(w.Patch, scim.PatchOp{Op: "replace", Path: "name.givenName", Value: w.GivenName})
	}
	if u.lastName != nil {
		w.Patch = append(w.Patch, scim.PatchOp{Op: "replace", Path: "name.familyName", Value: w.FamilyName})
	}
	switch {
	case u.hasRoles && len(u.roles) == 0:
		w.Patch = append(w.Patch, scim.PatchOp{Op: "remove", Path: "roles"})
	case u.hasRoles:
		w.Patch = append(w.Patch, scim.PatchOp{Op: "replace", Path: "roles", Value: onboardingRoles(u.roles)})
	}
	if u.resource != nil {
		w.Patch = append(w.Patch, scim.PatchOp{Op: "replace", Path: onboardingEnterpriseURN + ":division", Value: u.resource.regionID})
	}
	return w
}

// onboardingFailure is one entry of the failures map.
type onboardingFailure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// onboardingFailureOf names a failed entry's reason in the vendor's terms.
func onboardingFailureOf(e *scim.Error) onboardingFailure {
	switch {
	case e == nil:
		return onboardingFailure{Code: "internal_error", Message: "The user could not be processed"}
	case e.Kind == scim.KindUniqueness:
		return onboardingFailure{Code: "email_already_exists", Message: "A user with that email already exists"}
	case e.Kind == scim.KindNotFound:
		return onboardingFailure{Code: "user_not_found", Message: "No user with that email exists"}
	case e.Kind == scim.KindInvalidValue && e.Detail == onboardingNameRequired:
		return onboardingFailure{Code: "name_required", Message: e.Detail}
	case e.Kind == scim.KindInternal || e.Kind == scim.KindUnavailable:
		return onboardingFailure{Code: "internal_error", Message: "The user could not be processed; send it again"}
	}
	return onboardingFailure{Code: "invalid_user", Message: e.Detail}
}

type onboardingResult struct {
	Inserted int                          `json:"inserted"`
	Updated  int                          `json:"updated"`
	Total    int                          `json:"total"`
	Failures map[string]onboardingFailure `json:"failures"`
	TaskID   string                       `json:"taskId"`
}

// onboardingBatchReply is the answer to a batch: counts so far and the failures,
// keyed by email (the first failure of an email).
func onboardingBatchReply(st *scim.TaskStatus) map[string]any {
	res := onboardingResult{Total: st.Total, Failures: map[string]onboardingFailure{}, TaskID: st.ID}
	for _, e := range st.Entries {
		switch {
		case e.State == scim.TaskDone && e.Create:
			res.Inserted++
		case e.State == scim.TaskDone:
			res.Updated++
		case e.State == scim.TaskFailed:
			if _, seen := res.Failures[e.UserName]; !seen {
				res.Failures[e.UserName] = onboardingFailureOf(e.Err)
			}
		}
	}
	return map[string]any{"result": res}
}

type onboardingTaskInfo struct {
	TaskID          string  `json:"taskId"`
	TenantID        string  `json:"tenantId"`
	Type            string  `json:"type"`
	CreatedAt       string  `json:"createdAt"`
	LastCheckedInAt *string `json:"lastCheckedInAt"`
	CompletedAt     *string `json:"completedAt"`
	Success         bool    `json:"success"`
	ErrorMsg        *string `json:"errorMsg"`
}

type onboardingTaskUser struct {
	Email     string  `json:"email"`
	TaskID    string  `json:"taskId"`
	FirstName *string `json:"firstName"`
	LastName  *string `json:"lastName"`
	Success   bool    `json:"success"`
	ErrorMsg  *string `json:"errorMsg"`
}

// onboardingTime formats a time as the vendor does: RFC 3339, UTC, microseconds.
func onboardingTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := t.UTC().Format("2006-01-02T15:04:05.000000Z")
	return &s
}

func onboardingNullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// onboardingTaskReply is the task status answer.
func onboardingTaskReply(st *scim.TaskStatus) map[string]any {
	info := onboardingTaskInfo{TaskID: st.ID, TenantID: st.TenantID, Type: st.Type, CreatedAt: *onboardingTime(&st.Created),
		LastCheckedInAt: onboardingTime(st.LastCheckedIn), CompletedAt: onboardingTime(st.Completed)}
	if st.Completed != nil {
		info.Success = st.Failed == 0
		if st.Failed > 0 {
			info.ErrorMsg = onboardingNullable(fmt.Sprintf("%d of %d users failed", st.Failed, st.Total))
		}
	}
	users := make([]onboardingTaskUser, len(st.Entries))
	for i, e := range st.Entries {
		u := onboardingTaskUser{Email: e.UserName, TaskID: st.ID, FirstName: onboardingNullable(e.GivenName), LastName: onboardingNullable(e.FamilyName),
			Success: e.State == scim.TaskDone}
		if e.State == scim.TaskFailed {
			u.ErrorMsg = onboardingNullable(onboardingFailureOf(e.Err).Message)
		}
		users[i] = u
	}
	return map[string]any{"result": map[string]any{"task": info, "users": users}}
}

// onboardingWriteError is the onboarding family's one error writer: every refusal
// is {"errorType": <code>, "message": <text>} (plus "tenantId" for
// api_user_not_found). An unexpected error is a 500 naming only an error id, which
// is logged with the error.
func (c *Compat) onboardingWriteError(w http.ResponseWriter, r *http.Request, err error) {
	var oe *onboardingError
	switch {
	case errors.As(err, &oe):
	case errors.Is(err, errTooLarge):
		oe = &onboardingError{status: http.StatusRequestEntityTooLarge, errorType: "request_too_large",
			message: fmt.Sprintf("the request body is larger than %d bytes; split the batch", onboardingMaxBody)}
	case errors.Is(err, errFamilyDisabled):
		oe = &onboardingError{status: http.StatusNotFound, errorType: "not_found", message: "onboarding provisioning is not enabled for this tenant"}
	default:
		oe = onboardingFromSCIM(scim.AsError(err))
	}
	if id := refused(c.log, r, "onboarding request failed", oe.status, oe.errorType, oe.message, err); id != "" {
		oe.message = "internal error (error id " + id + ")"
	}
	switch oe.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="scimd"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	if v, ok := scim.RetryAfter(err); ok {
		w.Header().Set("Retry-After", v)
	}
	body := map[string]string{"errorType": oe.errorType, "message": oe.message}
	if oe.tenantID != "" {
		body["tenantId"] = oe.tenantID
	}
	writeJSON(w, oe.status, body)
}

// onboardingFromSCIM maps a service error to the family's status and errorType
// (see kindStatus); malformed bodies are invalid_json here.
func onboardingFromSCIM(e *scim.Error) *onboardingError {
	st, code, msg := kindStatus(e)
	switch {
	case e.Kind == scim.KindInvalidSyntax:
		code = "invalid_json"
	case e.Kind == scim.KindUnavailable:
		msg = "the service is temporarily unavailable; retry later"
	case st == http.StatusInternalServerError:
		code, msg = "internal_error", ""
	}
	return &onboardingError{status: st, errorType: code, message: msg}
}
