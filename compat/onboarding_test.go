package compat

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scimd/scimd/scim"
)

// Onboarding provisioning (CONTRACT.md onboarding.*): the batch parser, task numbers,
// the translation of entries into SCIM writes and of tasks into replies without
// HTTP, then the routes over a real database.

const testMaxDepth = 32

// TestOnboardingParseRequest: only a body with no batch to run, and the resource
// rule, refuse the whole request (onboarding.batch, onboarding.resource-rule).
func TestOnboardingParseRequest(t *testing.T) {
	entry := func(i int) string {
		return fmt.Sprintf(`{"email":"u%d@example.com","firstName":"F","lastName":"L"}`, i)
	}
	batch := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = entry(i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	for _, tc := range []struct {
		name  string
		body  string
		patch bool
		code  string // the errorType of the 400, or the scim kind for a decode error
		n     int
	}{
		{"empty", `[]`, false, "", 0},
		{"not_json", `[{"email":`, false, "syntax", 0},
		{"trailing", `[]{}`, false, "syntax", 0},
		{"duplicate_key", `[{"email":"a@example.com","Email":"b@example.com"}]`, false, "syntax", 0},
		{"object", `{"email":"a@example.com"}`, false, "invalid_request", 0},
		{"null", `null`, false, "invalid_request", 0},
		{"element_not_object", `[` + entry(0) + `,"x"]`, false, "invalid_request", 0},
		{"max_users", batch(onboardingMaxUsers), false, "", onboardingMaxUsers},
		{"too_many_users", batch(onboardingMaxUsers + 1), false, "too_many_users", 0},
		{"resource_without_role", `[{"email":"a@example.com","firstName":"F","lastName":"L","resource":{"regionId":"r"}}]`, false, "users_need_resource_role", 0},
		{"role_without_resource", `[{"email":"a@example.com","firstName":"F","lastName":"L","roles":["resource"]}]`, false, "users_need_resource_role", 0},
		{"resource_without_region", `[{"email":"a@example.com","firstName":"F","lastName":"L","roles":["Resource"],"resource":{"regionId":" "}}]`, false, "users_need_resource_role", 0},
		{"resource_and_role", `[{"email":"a@example.com","firstName":"F","lastName":"L","roles":["Resource"],"resource":{"regionId":"r","isActive":true}}]`, false, "", 1},
		{"failed_entry_skips_rule", `[{"email":"a@example.com","firstName":"","lastName":"L","resource":{"regionId":"r"}}]`, false, "", 1},
		{"patch_role_without_resource", `[{"email":"a@example.com","roles":["Resource"]}]`, true, "", 1},
		{"patch_resource_without_roles", `[{"email":"a@example.com","resource":{"regionId":"r"}}]`, true, "", 1},
		{"patch_resource_roles_without_resource_role", `[{"email":"a@example.com","roles":["Scheduler"],"resource":{"regionId":"r"}}]`, true, "users_need_resource_role", 0},
		{"patch_resource_without_region", `[{"email":"a@example.com","resource":{}}]`, true, "users_need_resource_role", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users, err := onboardingParse([]byte(tc.body), testMaxDepth, tc.patch)
			switch {
			case tc.code == "":
				if err != nil || len(users) != tc.n {
					t.Fatalf("onboardingParse = %d users, %v; want %d", len(users), err, tc.n)
				}
			case tc.code == "syntax":
				if err == nil || scim.AsError(err).Kind != scim.KindInvalidSyntax || onboardingFromSCIM(scim.AsError(err)).errorType != "invalid_json" {
					t.Fatalf("onboardingParse = %v; want invalid_json", err)
				}
			default:
				var oe *onboardingError
				if !errors.As(err, &oe) || oe.status != 400 || oe.errorType != tc.code {
					t.Fatalf("onboardingParse = %v; want 400 %s", err, tc.code)
				}
			}
		})
	}
	t.Run("resource_rule_lists_every_email", func(t *testing.T) {
		_, err := onboardingParse([]byte(`[
			{"email":"a@example.com","firstName":"F","lastName":"L","roles":["Resource"]},
			{"email":"b@example.com","firstName":"F","lastName":"L"},
			{"email":"C@example.com","firstName":"F","lastName":"L","resource":{"regionId":"r"}}]`), testMaxDepth, false)
		var oe *onboardingError
		if !errors.As(err, &oe) || !strings.Contains(oe.message, "a@example.com") || !strings.Contains(oe.message, "c@example.com") || strings.Contains(oe.message, "b@example.com") {
			t.Errorf("err %v, want a refusal naming a@ and c@ only", err)
		}
	})
}

// TestOnboardingParseEntries: every problem of one entry is that entry's failure,
// with its code and key (onboarding.failures, onboarding.duplicates).
func TestOnboardingParseEntries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry string
		patch bool
		key   string
		code  string // "" for no failure
	}{
		{"valid", `{"email":" Ann@Example.com ","firstName":" Ann ","lastName":"Lee","roles":["Scheduler","scheduler"," Admin "],"sendInvitation":true}`, false, "ann@example.com", ""},
		{"email_missing", `{"firstName":"F","lastName":"L"}`, false, "users[1]", "invalid_email"},
		{"email_blank", `{"email":"  ","firstName":"F","lastName":"L"}`, false, "users[1]", "invalid_email"},
		{"email_number", `{"email":5,"firstName":"F","lastName":"L"}`, false, "users[1]", "invalid_email"},
		{"email_bad", `{"email":" Not-An-Email ","firstName":"F","lastName":"L"}`, false, "Not-An-Email", "invalid_email"},
		{"email_bad_first", `{"email":"nope","firstName":1}`, false, "nope", "invalid_email"},
		{"first_name_number", `{"email":"a@example.com","firstName":1,"lastName":"L"}`, false, "a@example.com", "invalid_field"},
		{"last_name_bool", `{"email":"a@example.com","firstName":"F","lastName":true}`, false, "a@example.com", "invalid_field"},
		{"roles_string", `{"email":"a@example.com","firstName":"F","lastName":"L","roles":"Scheduler"}`, false, "a@example.com", "invalid_field"},
		{"roles_number", `{"email":"a@example.com","firstName":"F","lastName":"L","roles":[1]}`, false, "a@example.com", "invalid_field"},
		{"roles_empty_name", `{"email":"a@example.com","firstName":"F","lastName":"L","roles":["A"," "]}`, false, "a@example.com", "invalid_field"},
		{"send_invitation_string", `{"email":"a@example.com","firstName":"F","lastName":"L","sendInvitation":"yes"}`, false, "a@example.com", "invalid_field"},
		{"resource_string", `{"email":"a@example.com","firstName":"F","lastName":"L","resource":"r"}`, false, "a@example.com", "invalid_field"},
		{"region_number", `{"email":"a@example.com","firstName":"F","lastName":"L","roles":["Resource"],"resource":{"regionId":7}}`, false, "a@example.com", "invalid_field"},
		{"is_active_string", `{"email":"a@example.com","firstName":"F","lastName":"L","roles":["Resource"],"resource":{"regionId":"r","isActive":"yes"}}`, false, "a@example.com", "invalid_field"},
		{"last_name_missing", `{"email":"a@example.com","firstName":"F"}`, false, "a@example.com", "name_required"},
		{"first_name_blank", `{"email":"a@example.com","firstName":"  ","lastName":"L"}`, false, "a@example.com", "name_required"},
		{"patch_names_absent", `{"email":"a@example.com"}`, true, "a@example.com", ""},
		{"patch_name_blank", `{"email":"a@example.com","lastName":" "}`, true, "a@example.com", "name_required"},
		{"duplicate", `{"email":"FIRST@example.com","firstName":"F","lastName":"L"}`, false, "first@example.com", "duplicate_email"},
		{"duplicate_keeps_own_failure", `{"email":"first@example.com","firstName":1,"lastName":"L"}`, false, "first@example.com", "invalid_field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := `{"email":"first@example.com","firstName":"F","lastName":"L"}`
			users, err := onboardingParse([]byte("["+first+","+tc.entry+"]"), testMaxDepth, tc.patch)
			if err != nil {
				t.Fatal(err)
			}
			if users[0].failure != nil {
				t.Fatalf("the first entry failed: %+v", users[0].failure)
			}
			u := users[1]
			if u.key != tc.key {
				t.Errorf("key %q, want %q", u.key, tc.key)
			}
			switch {
			case tc.code == "" && u.failure != nil:
				t.Errorf("failure %+v", u.failure)
			case tc.code != "" && (u.failure == nil || u.failure.Code != tc.code || u.failure.Message == ""):
				t.Errorf("failure %+v, want %s", u.failure, tc.code)
			}
		})
	}
	t.Run("valid_fields", func(t *testing.T) {
		users, err := onboardingParse([]byte(`[{"email":" Ann@Example.com ","firstName":" Ann ","lastName":"Lee","roles":["Scheduler","scheduler"," Admin "],"sendInvitation":true}]`), testMaxDepth, false)
		if err != nil {
			t.Fatal(err)
		}
		u := users[0]
		if u.email != "ann@example.com" || !reflect.DeepEqual(u.roles, []string{"Scheduler", "Admin"}) || !u.sendInvitation || !u.hasRoles {
			t.Errorf("entry %+v", u)
		}
	})
}

// TestOnboardingTaskNumber: a task number is decimal digits without sign or leading
// zero, from 1 to 2^63-1 (onboarding.task).
func TestOnboardingTaskNumber(t *testing.T) {
	for _, tc := range []struct {
		s  string
		n  int64
		ok bool
	}{
		{"1", 1, true},
		{"85", 85, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"9223372036854775808", 0, false},
		{"99999999999999999999", 0, false},
		{"0", 0, false},
		{"01", 0, false},
		{"", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{"1.0", 0, false},
		{"1e2", 0, false},
		{" 1", 0, false},
		{"0a1b2c3d-0000-4000-8000-000000000000", 0, false},
	} {
		if n, ok := onboardingTaskNumber(tc.s); ok != tc.ok || ok && n != tc.n {
			t.Errorf("onboardingTaskNumber(%q) = %d, %v; want %d, %v", tc.s, n, ok, tc.n, tc.ok)
		}
	}
}

// TestOnboardingWrites: a valid entry's SCIM create or PATCH operations
// (onboarding.provision, onboarding.patch).
func TestOnboardingWrites(t *testing.T) {
	first, last := " Field ", "Worker"
	u := onboardingUser{email: "w@example.com", firstName: &first, lastName: &last, roles: []string{"Resource"}, hasRoles: true,
		sendInvitation: true, resource: &onboardingResource{regionID: "r1"}}
	w := onboardingCreateWrite(u)
	body := w.Create
	if w.UserName != "w@example.com" || w.GivenName != "Field" || body["userName"] != "w@example.com" {
		t.Errorf("write %+v", w)
	}
	if !reflect.DeepEqual(body["name"], map[string]any{"givenName": "Field", "familyName": "Worker"}) ||
		!reflect.DeepEqual(body["roles"], []any{map[string]any{"value": "Resource"}}) ||
		!reflect.DeepEqual(body[onboardingEnterpriseURN], map[string]any{"division": "r1"}) {
		t.Errorf("body %v", body)
	}
	if len(w.Messages) != 1 || w.Messages[0].Kind != OnboardingMessageKind || w.Messages[0].Recipient != "w@example.com" ||
		!strings.Contains(string(w.Messages[0].Payload), `"set_password":true`) {
		t.Errorf("messages %+v", w.Messages)
	}
	if w := onboardingCreateWrite(onboardingUser{email: "a@example.com", firstName: &first, lastName: &last}); len(w.Messages) != 0 || w.Create["roles"] != nil || w.Create[onboardingEnterpriseURN] != nil {
		t.Errorf("plain create %+v", w)
	}

	p := onboardingUpdateWrite(u)
	want := []scim.PatchOp{
		{Op: "replace", Path: "name.givenName", Value: "Field"},
		{Op: "replace", Path: "name.familyName", Value: "Worker"},
		{Op: "replace", Path: "roles", Value: []any{map[string]any{"value": "Resource"}}},
		{Op: "replace", Path: onboardingEnterpriseURN + ":division", Value: "r1"},
	}
	if !reflect.DeepEqual(p.Patch, want) || p.Create != nil || len(p.Messages) != 0 {
		t.Errorf("patch %+v", p)
	}
	if p := onboardingUpdateWrite(onboardingUser{email: "a@example.com", hasRoles: true}); !reflect.DeepEqual(p.Patch, []scim.PatchOp{{Op: "remove", Path: "roles"}}) {
		t.Errorf("empty roles: %+v", p.Patch)
	}
	if p := onboardingUpdateWrite(onboardingUser{email: "a@example.com"}); len(p.Patch) != 0 {
		t.Errorf("nothing to change: %+v", p.Patch)
	}
}

// TestOnboardingFailureOf: a write's error in the vendor's terms
// (onboarding.failures).
func TestOnboardingFailureOf(t *testing.T) {
	for _, tc := range []struct {
		err  *scim.Error
		code string
	}{
		{nil, "internal_error"},
		{&scim.Error{Kind: scim.KindUniqueness}, "email_already_exists"},
		{&scim.Error{Kind: scim.KindNotFound}, "user_not_found"},
		{&scim.Error{Kind: scim.KindInternal}, "internal_error"},
		{&scim.Error{Kind: scim.KindUnavailable}, "internal_error"},
		{&scim.Error{Kind: scim.KindInvalidValue, Detail: "bad"}, "invalid_user"},
	} {
		if f := onboardingFailureOf(tc.err); f.Code != tc.code || f.Message == "" {
			t.Errorf("%+v: %+v, want %s", tc.err, f, tc.code)
		}
	}
	if f := onboardingFailureOf(&scim.Error{Kind: scim.KindUniqueness}); f.Message != "A user with that email already exists" {
		t.Errorf("email_already_exists message %q, the vendor document's", f.Message)
	}
}

// TestOnboardingFromSCIM: request-level errors in the family's errorType
// (onboarding.errors).
func TestOnboardingFromSCIM(t *testing.T) {
	for _, tc := range []struct {
		kind   scim.ErrorKind
		status int
		code   string
	}{
		{scim.KindInvalidSyntax, 400, "invalid_json"},
		{scim.KindInvalidValue, 400, "invalid_request"},
		{scim.KindUnauthorized, 401, "unauthorized"},
		{scim.KindForbidden, 403, "forbidden"},
		{scim.KindNotFound, 404, "not_found"},
		{scim.KindUnavailable, 503, "unavailable"},
		{scim.KindInternal, 500, "internal_error"},
	} {
		if oe := onboardingFromSCIM(&scim.Error{Kind: tc.kind, Detail: "secret"}); oe.status != tc.status || oe.errorType != tc.code || tc.status == 500 && oe.message != "" {
			t.Errorf("kind %d: %+v, want %d %s", tc.kind, oe, tc.status, tc.code)
		}
	}
}

// TestOnboardingReplies: a task's counts, failures and status in the vendor's shape
// (onboarding.reply, onboarding.task).
func TestOnboardingReplies(t *testing.T) {
	created := time.Date(2019, 9, 26, 4, 46, 43, 11418000, time.UTC)
	st := &scim.TaskStatus{TenantID: "t1", Type: scim.TaskImportUsers, Number: 85, Total: 5, Created: created, Entries: []scim.TaskEntryStatus{
		{Seq: 0, UserName: "a@example.com", GivenName: "A", Create: true, State: scim.TaskDone},
		{Seq: 1, UserName: "b@example.com", Create: true, State: scim.TaskFailed, Err: &scim.Error{Kind: scim.KindUniqueness}},
		{Seq: 2, UserName: "b@example.com", Create: true, State: scim.TaskFailed, Err: &scim.Error{Kind: scim.KindInvalidValue, Detail: "dup"}},
		{Seq: 3, UserName: "users[3]", Create: true, State: scim.TaskFailed, Err: &scim.Error{Kind: scim.KindInvalidValue, Detail: "x"}},
		{Seq: 4, UserName: "c@example.com", State: scim.TaskDone},
	}}
	res := onboardingBatchReply(st, map[int]onboardingFailure{3: {Code: "invalid_email", Message: "m"}})["result"].(onboardingResult)
	if res.Inserted != 1 || res.Updated != 1 || res.Total != 5 || res.TaskID != 85 {
		t.Errorf("counts %+v", res)
	}
	if len(res.Failures) != 2 || res.Failures["b@example.com"].Code != "email_already_exists" || res.Failures["users[3]"].Code != "invalid_email" {
		t.Errorf("failures %+v", res.Failures)
	}

	running := onboardingTaskReply(st)["result"].(map[string]any)
	info := running["task"].(onboardingTaskInfo)
	if info.TaskID != 85 || info.TenantID != "t1" || info.Type != "bulk_user_import" || info.Success || info.CompletedAt != nil || info.ErrorMsg != nil || info.LastCheckedInAt != nil {
		t.Errorf("running task %+v", info)
	}
	if info.CreatedAt != "2019-09-26T04:46:43.011418Z" {
		t.Errorf("createdAt %q", info.CreatedAt)
	}
	users := running["users"].([]onboardingTaskUser)
	if len(users) != 5 || !users[0].Success || users[0].ErrorMsg != nil || *users[0].FirstName != "A" || users[0].LastName != nil || users[0].TaskID != 85 {
		t.Errorf("user row %+v", users[0])
	}
	if users[1].Success || users[1].ErrorMsg == nil || *users[1].ErrorMsg != "A user with that email already exists" {
		t.Errorf("failed row %+v", users[1])
	}

	done := created.Add(time.Second)
	st.Completed, st.LastCheckedIn, st.Failed = &done, &done, 3
	info = onboardingTaskReply(st)["result"].(map[string]any)["task"].(onboardingTaskInfo)
	if info.Success || info.CompletedAt == nil || info.ErrorMsg == nil || !strings.Contains(*info.ErrorMsg, "3") || info.LastCheckedInAt == nil {
		t.Errorf("completed with failures %+v", info)
	}
	st.Failed = 0
	info = onboardingTaskReply(st)["result"].(map[string]any)["task"].(onboardingTaskInfo)
	if !info.Success || info.ErrorMsg != nil {
		t.Errorf("completed without failures %+v", info)
	}
}

// TestOnboardingRoutes runs the three routes over a real database.
func TestOnboardingRoutes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		tok := f.token(scopes(scim.ScopeCompat))
		auth := []string{"Authorization", "Bearer " + tok}
		sand := []string{"Authorization", "Bearer " + f.token(sandbox(scim.ScopeCompat))}
		batch := `[{"email":"Ann@Example.com","firstName":"Ann","lastName":"Lee","roles":["Scheduler"],"sendInvitation":true},
			{"email":"exists@example.com","firstName":"E","lastName":"X"},
			{"email":"bad","firstName":"B","lastName":"D"},
			{"firstName":"No","lastName":"Email"}]`
		f.user("exists@example.com", true, nil)

		t.Run("refusals", func(t *testing.T) {
			for _, tc := range []struct {
				name, method, path, body string
				hdr                      []string
				status                   int
				code                     string
			}{
				{"no_credentials", "POST", onboardingUsersPath, batch, nil, 401, "unauthorized"},
				{"token_scheme", "POST", onboardingUsersPath, batch, []string{"Authorization", "Token " + tok}, 401, "unauthorized"},
				{"unknown", "GET", onboardingTasksPath + "1", "", []string{"Authorization", "Bearer nope"}, 401, "unauthorized"},
				{"scope", "POST", onboardingUsersPath, batch, []string{"Authorization", "Bearer " + f.token(scopes(scim.ScopeAdmin, scim.ScopeSCIM))}, 403, "forbidden"},
				{"sandbox_post", "POST", onboardingUsersPath, batch, sand, 403, "sandbox_token"},
				{"sandbox_patch", "PATCH", onboardingUsersPath, batch, sand, 403, "sandbox_token"},
				{"method", "PUT", onboardingUsersPath, batch, auth, 405, "method_not_allowed"},
				{"task_method", "POST", onboardingTasksPath + "1", "", auth, 405, "method_not_allowed"},
				{"text_plain", "POST", onboardingUsersPath, batch, append([]string{"Content-Type", "text/plain"}, auth...), 415, "unsupported_media_type"},
				{"not_json", "POST", onboardingUsersPath, `[{`, auth, 400, "invalid_json"},
				{"not_array", "POST", onboardingUsersPath, `{"email":"a@example.com"}`, auth, 400, "invalid_request"},
				{"nul", "POST", onboardingUsersPath, `[{"email":"a\u0000@example.com"}]`, auth, 400, "invalid_request"},
				{"resource_rule", "POST", onboardingUsersPath, `[{"email":"r@example.com","firstName":"R","lastName":"R","resource":{"regionId":"x"}}]`, auth, 400, "users_need_resource_role"},
				{"task_not_number", "GET", onboardingTasksPath + "01", "", auth, 404, "task_not_found"},
				{"task_none", "GET", onboardingTasksPath + "1", "", auth, 404, "task_not_found"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := f.do(tc.method, tc.path, tc.body, tc.hdr...)
					r.want(t, tc.status, "errorType", tc.code)
					if m, _ := r.body["message"].(string); m == "" {
						t.Errorf("no message: %s", r.raw)
					}
					if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
						t.Error("401 without WWW-Authenticate")
					}
				})
			}
			if f.lookup("ann@example.com") != nil || f.lookup("r@example.com") != nil || len(f.outbox()) != 0 {
				t.Fatal("a refused call wrote")
			}
		})
		t.Run("batch_with_failures", func(t *testing.T) {
			r := f.do("POST", onboardingUsersPath, batch, auth...) // no Content-Type: read as JSON
			r.want(t, 200, "", "")
			res := r.body["result"].(map[string]any)
			if res["inserted"] != float64(1) || res["updated"] != float64(0) || res["total"] != float64(4) || res["taskId"] != float64(1) {
				t.Errorf("result %s", r.raw)
			}
			failures := res["failures"].(map[string]any)
			for key, code := range map[string]string{"exists@example.com": "email_already_exists", "bad": "invalid_email", "users[3]": "invalid_email"} {
				if f, _ := failures[key].(map[string]any); f["code"] != code {
					t.Errorf("failure %s: %v, want %s", key, failures[key], code)
				}
			}
			if len(failures) != 3 {
				t.Errorf("failures %v", failures)
			}
			if u := f.lookup("ann@example.com"); u == nil || u.Attrs["active"] != true {
				t.Errorf("user %v", u)
			}
			if got := f.outbox(); len(got) != 1 || got[0] != OnboardingMessageKind {
				t.Errorf("outbox %v", got)
			}
		})
		t.Run("task_status", func(t *testing.T) {
			r := f.do("GET", onboardingTasksPath+"1", "", sand...) // a sandbox token may read
			r.want(t, 200, "", "")
			res := r.body["result"].(map[string]any)
			task := res["task"].(map[string]any)
			if task["taskId"] != float64(1) || task["tenantId"] != f.tenantID || task["type"] != "bulk_user_import" || task["success"] != false || task["completedAt"] == nil {
				t.Errorf("task %v", task)
			}
			if users := res["users"].([]any); len(users) != 4 || users[0].(map[string]any)["success"] != true || users[1].(map[string]any)["success"] != false {
				t.Errorf("users %v", users)
			}
		})
		t.Run("patch", func(t *testing.T) {
			r := f.do("PATCH", onboardingUsersPath, `[{"email":"ann@example.com","lastName":"Jones","roles":[]},{"email":"nobody@example.com","firstName":"N"}]`, auth...)
			r.want(t, 200, "", "")
			res := r.body["result"].(map[string]any)
			if res["updated"] != float64(1) || res["inserted"] != float64(0) || res["taskId"] != float64(2) {
				t.Errorf("result %s", r.raw)
			}
			if fl, _ := res["failures"].(map[string]any)["nobody@example.com"].(map[string]any); fl["code"] != "user_not_found" {
				t.Errorf("failures %v", res["failures"])
			}
			u := f.lookup("ann@example.com")
			if n := u.Attrs["name"].(map[string]any); n["familyName"] != "Jones" || n["givenName"] != "Ann" || u.Attrs["roles"] != nil {
				t.Errorf("user %v", u.Attrs)
			}
			task := f.do("GET", onboardingTasksPath+"2", "", auth...).body["result"].(map[string]any)["task"].(map[string]any)
			if task["type"] != "bulk_user_update" {
				t.Errorf("task %v", task)
			}
		})
		t.Run("empty_batch", func(t *testing.T) {
			r := f.do("POST", onboardingUsersPath, `[]`, append([]string{"Content-Type", "application/json"}, auth...)...)
			r.want(t, 200, "", "")
			if res := r.body["result"].(map[string]any); res["total"] != float64(0) || res["taskId"] != float64(3) {
				t.Errorf("result %s", r.raw)
			}
		})
		t.Run("other_tenant", func(t *testing.T) {
			f.otherTenant("other")
			other := []string{"Authorization", "Bearer " + f.tokenOf("other", scopes(scim.ScopeCompat))}
			f.do("GET", onboardingTasksPath+"1", "", other...).want(t, 404, "errorType", "task_not_found")
			r := f.do("POST", onboardingUsersPath, `[]`, other...)
			if r.body["result"].(map[string]any)["taskId"] != float64(1) {
				t.Errorf("other tenant's first task: %s", r.raw)
			}
		})
		t.Run("settings", func(t *testing.T) {
			f.set("onboarding_api_user=none")
			r := f.do("GET", onboardingTasksPath+"1", "", auth...)
			r.want(t, 403, "errorType", "api_user_not_found")
			if r.body["tenantId"] != f.tenantID {
				t.Errorf("tenantId %v, want %s", r.body["tenantId"], f.tenantID)
			}
			f.set("onboarding_api_user=configured", "family.onboarding=disabled")
			f.do("POST", onboardingUsersPath, `[]`, auth...).want(t, 404, "errorType", "not_found")
			f.set("family.onboarding=enabled")
		})
	})
}

// TestOnboardingTaskNumberRoute: the task route reads the tenant's task numbers
// only (onboarding.task-id).
func TestOnboardingTaskNumberRoute(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		auth := []string{"Authorization", "Bearer " + f.token(scopes(scim.ScopeCompat))}
		for i := 1; i <= 2; i++ {
			r := f.do("POST", onboardingUsersPath, `[]`, auth...)
			if got := r.body["result"].(map[string]any)["taskId"]; got != float64(i) {
				t.Fatalf("batch %d: taskId %v", i, got)
			}
		}
		for _, id := range []string{"1", "2"} {
			f.do("GET", onboardingTasksPath+id, "", auth...).want(t, 200, "", "")
		}
		for _, id := range []string{"3", "0", "+1", "1.0", strconv.FormatInt(1<<62, 10) + "0"} {
			f.do("GET", onboardingTasksPath+id, "", auth...).want(t, 404, "errorType", "task_not_found")
		}
	})
}

// TestOnboardingSyncBound: a batch of up to 1,000 users is run in the request
// (200); a larger one is answered 202 at once and left to the worker
// (onboarding.async). Entries with an invalid email keep the batches cheap: they
// are stored as failed and never run.
func TestOnboardingSyncBound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture) {
		auth := []string{"Authorization", "Bearer " + f.token(scopes(scim.ScopeCompat))}
		batch := func(n int) string {
			parts := make([]string, n)
			for i := range parts {
				parts[i] = fmt.Sprintf(`{"email":"bad%d","firstName":"F","lastName":"L"}`, i)
			}
			return "[" + strings.Join(parts, ",") + "]"
		}
		for _, tc := range []struct {
			n      int
			status int
		}{{onboardingSyncMax, 200}, {onboardingSyncMax + 1, 202}} {
			r := f.do("POST", onboardingUsersPath, batch(tc.n), auth...)
			r.want(t, tc.status, "", "")
			res := r.body["result"].(map[string]any)
			if res["total"] != float64(tc.n) || res["taskId"] == nil {
				t.Errorf("%d users: result total %v taskId %v", tc.n, res["total"], res["taskId"])
			}
		}
	})
}
