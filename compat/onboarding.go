package compat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/auth"
	"github.com/scimd/scimd/scim/middleware"
)

// Onboarding provisioning (CONTRACT.md, rules onboarding.*): a batch of users is created (POST) or
// updated (PATCH) in one call, and the batch's task reports each user's outcome
// (GET /onboarding/provision/tasks/{taskId}). Authenticated with
// "Authorization: Bearer <token>" of scope compat.
//
// A batch body is JSON: Content-Type application/json (or another +json type,
// charset utf-8 if any), or no Content-Type at all, since the vendor's document
// shows its request bodies without headers. Any other type or charset (text/plain,
// a form encoding, UTF-16) is 415 unsupported_media_type, after authentication and
// before the body is read.
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

// provision serves POST /onboarding/provision/standalone/users (CONTRACT.md
// onboarding.provision, onboarding.failures).
//
// The body is a JSON array of {email, firstName, lastName, roles[], sendInvitation?,
// resource?: {regionId, isActive?}}. Each user becomes one SCIM create: userName and
// a primary work email set to the normalized email, name.givenName and
// name.familyName, roles [{"value": r}], active. The answer is 200
// {"result": {"inserted", "updated": 0, "total", "failures": {email: {code,
// message}}, "taskId"}}, taskId being the batch's task number (see task); batches
// over 1,000 users are answered 202 with the same shape at once (counts so far) and
// run in the background.
//
// One bad entry never fails the batch: as the vendor document shows for an existing
// email, per-user problems are listed under failures, keyed by email, and the other
// entries are written, each user in its own transaction (one user's failure undoes
// nothing of another's, and leaves nothing of its own behind). The answer is 200
// however many entries failed, all of them included, as in the vendor's example of
// a batch whose only user failed. The shared rule that wrong types are 400
// (CONTRACT.md shared.errors) applies to the request, not to one entry of a batch.
//
// Decisions where the contract and the vendor document are silent:
//   - The whole request is refused (400) before any user is written only when there
//     is no batch to run: the body is not JSON (invalid_json), not an array, or an
//     array with an element that is not an object (invalid_request: not an array
//     of users), or it has more than 10,000 users (too_many_users). An empty array
//     is a batch of nothing (200). The resource rule is the other whole-request 400,
//     as the vendor document shows it: a user with a resource must hold the Resource
//     role, a user holding it must have a resource, and a resource needs a
//     non-empty regionId (users_need_resource_role, listing every such email); it
//     is checked on the entries that have no failure of their own.
//   - Failures found in an entry before anything is written, the first one found
//     (email first): invalid_email (missing, not a string, or not an address),
//     invalid_field (a field of the wrong JSON type, or an empty role; the message
//     names the entry and field), name_required (firstName or lastName missing or
//     blank), duplicate_email (an email that an earlier entry of the batch already
//     has: the first entry is processed, the later ones are not, whatever became
//     of the first).
//   - Failures found while writing: email_already_exists (a user with the email
//     exists), invalid_user (SCIM refused the user, with its reason) and
//     internal_error.
//   - failures is keyed by the normalized email. An entry whose email is not valid
//     is keyed by the email as sent (trimmed); one with no email string at all
//     (missing, blank or not a string) by its position, "users[i]" (from 0), which
//     its message names too. An email that failed twice in one batch appears once,
//     with its first failure; the task's users list has one row per entry (email
//     being the same key), and inserted plus its failed rows is total.
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

// update serves PATCH /onboarding/provision/standalone/users (CONTRACT.md
// onboarding.patch).
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
//   - Entries are checked as POST's are (failures keyed the same way), except
//     that names may be left out: a firstName or lastName given blank is
//     name_required. An email with no user is the failure user_not_found. An entry
//     with no field to change still counts as updated when its user exists.
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
	if err := checkJSONContentType(r, true); err != nil {
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
	refused := map[int]onboardingFailure{}
	for i, u := range users {
		switch {
		case u.failure != nil:
			// Stored failed, never run; the task shows its message.
			refused[i] = *u.failure
			writes[i] = scim.UserWrite{UserName: u.key, GivenName: onboardingTrim(u.firstName), FamilyName: onboardingTrim(u.lastName),
				Refused: &scim.Error{Kind: scim.KindInvalidValue, Detail: u.failure.Message}}
		case patch:
			writes[i] = onboardingUpdateWrite(u)
		default:
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
		writeJSON(w, http.StatusAccepted, onboardingBatchReply(st, refused))
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
	writeJSON(w, status, onboardingBatchReply(st, refused))
	return nil
}

// task serves GET /onboarding/provision/tasks/{taskId} (CONTRACT.md onboarding.task): the task and
// one row per user of its batch, in the batch's order.
//
// taskId is the task's number within the tenant (1, 2, 3 … in the order the
// tenant's batches were made), a JSON number as in the vendor document
// ("taskId": 85), so that a client storing it as an integer works (CONTRACT.md
// onboarding.task-id). scimd's internal task id is never shown.
//
// Decisions where the contract and the vendor document are silent:
//   - A taskId in the path that is not a task number (anything but decimal digits
//     without a leading zero, such as a UUID a client kept from an older scimd, or
//     a number past 2^63-1), a number no task of the tenant has, and a task of
//     another tenant are all 404 task_not_found: the path names no task the caller
//     can read.
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
	notFound := &onboardingError{status: http.StatusNotFound, errorType: "task_not_found", message: fmt.Sprintf("no task %q", id)}
	n, ok := onboardingTaskNumber(id)
	if !ok {
		return notFound
	}
	st, err := o.tasks.StatusByNumber(r.Context(), p.TenantID, n, true)
	if err != nil {
		if scim.AsError(err).Kind == scim.KindNotFound {
			return notFound
		}
		return err
	}
	writeJSON(w, http.StatusOK, onboardingTaskReply(st))
	return nil
}

// onboardingTaskNumber reads a task number from the path: decimal digits, no sign
// and no leading zero, at least 1 and within int64.
func onboardingTaskNumber(s string) (int64, bool) {
	if s == "" || s[0] == '0' || len(s) > 19 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
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

// onboardingUser is one entry of a batch: a user to write, or, with failure set,
// the reason it is refused without being run.
type onboardingUser struct {
	// key names the entry in failures and in the task: the normalized email, or
	// (see onboardingParseUser) the email as sent or the entry's position.
	key                 string
	email               string // normalized; empty when the entry has no valid email
	firstName, lastName *string
	roles               []string
	hasRoles            bool
	sendInvitation      bool
	resource            *onboardingResource
	failure             *onboardingFailure
}

type onboardingResource struct {
	regionID string
	isActive *bool
}

// The codes of the failures found in an entry before anything is written.
const (
	onboardingInvalidEmail   = "invalid_email"
	onboardingInvalidField   = "invalid_field"
	onboardingNameRequired   = "name_required"
	onboardingDuplicateEmail = "duplicate_email"
)

// onboardingNameMessage is the message of a name_required failure.
const onboardingNameMessage = "firstName and lastName are required and must not be blank"

func onboardingFail(code, format string, args ...any) *onboardingFailure {
	return &onboardingFailure{Code: code, Message: fmt.Sprintf(format, args...)}
}

// onboardingParse decodes (with scim.DecodeJSON, nesting at most maxDepth levels)
// and validates a batch. It is pure. The whole request is refused (a 400) only for
// what leaves no batch to run: a body that is not one JSON value, names a key twice
// or is not UTF-8 (invalid_json), holds a NUL character (invalid_request,
// onboardingFromSCIM), is not an array of objects, or is longer than
// onboardingMaxUsers, and the vendor's resource rule. Every other problem is the
// failure of its own entry.
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
	first := map[string]int{} // email -> index of its first entry
	for i, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, onboardingBad("invalid_request", "users[%d] must be an object; the body must be a JSON array of users", i)
		}
		u := onboardingParseUser(i, m, patch)
		if u.email != "" {
			if j, seen := first[u.email]; seen {
				if u.failure == nil {
					u.failure = onboardingFail(onboardingDuplicateEmail, "users[%d] repeats the email of users[%d]; each email may appear once in a batch", i, j)
				}
			} else {
				first[u.email] = i
			}
		}
		users[i] = u
	}
	var wrong []string
	for _, u := range users {
		if u.failure == nil && onboardingResourceMismatch(u, patch) {
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

// onboardingParseUser reads entry i. A problem fails the entry (the first problem
// found, email first) and never the batch. The entry's key is its normalized email;
// an entry whose email is not valid is keyed by the email as sent (trimmed), and one
// with no email string at all (missing, blank or not a string) by its position,
// "users[i]", so that every failure has a key the client can trace to its entry.
func onboardingParseUser(i int, m map[string]any, patch bool) onboardingUser {
	u := onboardingUser{key: fmt.Sprintf("users[%d]", i)}
	var fail *onboardingFailure
	str := func(key string) *string {
		switch v := m[key].(type) {
		case nil:
			return nil
		case string:
			return &v
		}
		if fail == nil {
			fail = onboardingFail(onboardingInvalidField, "users[%d].%s must be a string", i, key)
		}
		return nil
	}
	switch v := m["email"].(type) {
	case nil:
		fail = onboardingFail(onboardingInvalidEmail, "users[%d].email is required", i)
	case string:
		email, err := NormalizeEmail(v)
		switch {
		case err == nil:
			u.key, u.email = email, email
		case strings.TrimSpace(v) == "":
			fail = onboardingFail(onboardingInvalidEmail, "users[%d].email is required", i)
		default:
			u.key = strings.TrimSpace(v)
			fail = onboardingFail(onboardingInvalidEmail, "users[%d].email: %s", i, strings.TrimPrefix(err.Error(), errBadEmail.Error()+": "))
		}
	default:
		fail = onboardingFail(onboardingInvalidEmail, "users[%d].email must be a string", i)
	}
	u.firstName, u.lastName = str("firstName"), str("lastName")
	rolesMsg := "users[%d].roles must be an array of role names such as [\"Scheduler\"]"
	switch v := m["roles"].(type) {
	case nil:
	case []any:
		u.hasRoles = true
		for _, r := range v {
			s, ok := r.(string)
			if !ok || strings.TrimSpace(s) == "" {
				if fail == nil {
					fail = onboardingFail(onboardingInvalidField, rolesMsg, i)
				}
				break
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
		if fail == nil {
			fail = onboardingFail(onboardingInvalidField, rolesMsg, i)
		}
	}
	switch v := m["sendInvitation"].(type) {
	case nil:
	case bool:
		u.sendInvitation = v
	default:
		if fail == nil {
			fail = onboardingFail(onboardingInvalidField, "users[%d].sendInvitation must be true or false", i)
		}
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
			if fail == nil {
				fail = onboardingFail(onboardingInvalidField, "users[%d].resource.regionId must be a string", i)
			}
		}
		switch a := v["isActive"].(type) {
		case nil:
		case bool:
			u.resource.isActive = &a
		default:
			if fail == nil {
				fail = onboardingFail(onboardingInvalidField, "users[%d].resource.isActive must be true or false", i)
			}
		}
	default:
		if fail == nil {
			fail = onboardingFail(onboardingInvalidField, "users[%d].resource must be an object such as {\"regionId\": \"…\", \"isActive\": true}", i)
		}
	}
	if fail == nil {
		first, last := onboardingTrim(u.firstName), onboardingTrim(u.lastName)
		if patch {
			if (u.firstName != nil && first == "") || (u.lastName != nil && last == "") {
				fail = onboardingFail(onboardingNameRequired, onboardingNameMessage)
			}
		} else if first == "" || last == "" {
			fail = onboardingFail(onboardingNameRequired, onboardingNameMessage)
		}
	}
	u.failure = fail
	return u
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

// onboardingCreateWrite turns a valid POST entry into the create of a SCIM User,
// with its invitation when asked.
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

// onboardingUpdateWrite turns a valid PATCH entry into PATCH operations on the
// user, one for each field present.
func onboardingUpdateWrite(u onboardingUser) scim.UserWrite {
	w := scim.UserWrite{UserName: u.email, GivenName: onboardingTrim(u.firstName), FamilyName: onboardingTrim(u.lastName)}
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
	TaskID   int64                        `json:"taskId"`
}

// onboardingBatchReply is the answer to a batch: counts so far and the failures,
// keyed by email (the first failure of an email); refused holds the failures of the
// entries refused before the batch ran, by position.
func onboardingBatchReply(st *scim.TaskStatus, refused map[int]onboardingFailure) map[string]any {
	res := onboardingResult{Total: st.Total, Failures: map[string]onboardingFailure{}, TaskID: st.Number}
	for _, e := range st.Entries {
		switch {
		case e.State == scim.TaskDone && e.Create:
			res.Inserted++
		case e.State == scim.TaskDone:
			res.Updated++
		case e.State == scim.TaskFailed:
			if _, seen := res.Failures[e.UserName]; seen {
				break
			}
			if f, ok := refused[e.Seq]; ok {
				res.Failures[e.UserName] = f
			} else {
				res.Failures[e.UserName] = onboardingFailureOf(e.Err)
			}
		}
	}
	return map[string]any{"result": res}
}

type onboardingTaskInfo struct {
	TaskID          int64   `json:"taskId"`
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
	TaskID    int64   `json:"taskId"`
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
	info := onboardingTaskInfo{TaskID: st.Number, TenantID: st.TenantID, Type: st.Type, CreatedAt: *onboardingTime(&st.Created),
		LastCheckedInAt: onboardingTime(st.LastCheckedIn), CompletedAt: onboardingTime(st.Completed)}
	if st.Completed != nil {
		info.Success = st.Failed == 0
		if st.Failed > 0 {
			info.ErrorMsg = onboardingNullable(fmt.Sprintf("%d of %d users failed", st.Failed, st.Total))
		}
	}
	users := make([]onboardingTaskUser, len(st.Entries))
	for i, e := range st.Entries {
		u := onboardingTaskUser{Email: e.UserName, TaskID: st.Number, FirstName: onboardingNullable(e.GivenName), LastName: onboardingNullable(e.FamilyName),
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
	var me *mediaTypeError
	switch {
	case errors.As(err, &oe):
	case errors.As(err, &me):
		oe = &onboardingError{status: http.StatusUnsupportedMediaType, errorType: "unsupported_media_type", message: me.detail}
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
