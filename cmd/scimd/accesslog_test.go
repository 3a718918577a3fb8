package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAccessLogNoEmails: routes that name a user by email in their path (the
// administration service's /users/{email}, the platform family's
// /scim/update-user/{email} and /scim/de-provision-user/{email}) and the ?email=
// query of DELETE /users must not put the address into the access log, which every
// request writes: the line carries the route pattern instead of the path, and no
// query string. Routes without personal data in the path keep their path.
func TestAccessLogNoEmails(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const admin, plat = "Ann.Person@Example.com", "plat.user@example.com"
		k := platformKeys{auth: e.token, app: e.token}

		type call struct {
			method, path string
			body         any
			status       int
			pattern      string // the access line's path
		}
		calls := []call{
			{"POST", "/users", map[string]any{"email": admin}, http.StatusCreated, "/users"},
			{"GET", "/users/" + strings.ToLower(admin), nil, http.StatusOK, "/users/{email}"},
			{"GET", "/users/" + url.PathEscape(admin), nil, http.StatusOK, "/users/{email}"},
			{"GET", "/users/nobody.here@example.com", nil, http.StatusNotFound, "/users/{email}"},
			{"DELETE", "/users?email=" + url.QueryEscape(admin), nil, http.StatusOK, "/users"},
			{"POST", "/scim/provision-user", platformSample("plat.user", plat), http.StatusCreated, "/scim/provision-user"},
			{"PUT", "/scim/update-user/" + plat, map[string]any{"firstName": "Plat"}, http.StatusOK, "/scim/update-user/{email}"},
			{"POST", "/scim/update-user/" + url.PathEscape(plat), map[string]any{"lastName": "User"}, http.StatusOK, "/scim/update-user/{email}"},
			{"DELETE", "/scim/de-provision-user/" + plat, nil, http.StatusNoContent, "/scim/de-provision-user/{email}"},
			{"DELETE", "/scim/de-provision-user/" + plat, nil, http.StatusNotFound, "/scim/de-provision-user/{email}"},
		}
		for _, c := range calls {
			var status int
			if strings.HasPrefix(c.path, "/scim/") {
				status = e.platformCall("Bearer "+k.auth, k.app, c.method, c.path, c.body).status
			} else {
				status = adminDo(t, e, e.token, c.method, c.path, c.body).status
			}
			if status != c.status {
				t.Fatalf("%s %s: status %d, want %d", c.method, c.path, status, c.status)
			}
		}

		// No line, at info level and above, names either address in any form.
		forbidden := []string{"ann.person", "plat.user@", "plat.user%40", "nobody.here"}
		for _, ent := range e.logs.All() {
			line := strings.ToLower(ent.Message + " " + fmt.Sprint(ent.ContextMap()))
			for _, f := range forbidden {
				if strings.Contains(line, f) {
					t.Errorf("log line %q %v names %q", ent.Message, ent.ContextMap(), f)
				}
			}
		}

		// Each request's access line carries its route's pattern.
		var got []string
		for _, ent := range e.logs.FilterLoggerName("http").FilterMessage("request").All() {
			m := ent.ContextMap()
			got = append(got, fmt.Sprint(m["method"], " ", m["path"]))
		}
		var want []string
		for _, c := range calls {
			want = append(want, c.method+" "+c.pattern)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("access lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}

		// A route without personal data in its path still logs the path itself.
		e.call("GET", "/scim/v2/Users?filter="+url.QueryEscape(`userName eq "`+strings.ToLower(admin)+`"`), nil).want(t, http.StatusOK)
		lines := e.logs.FilterLoggerName("http").FilterMessage("request").All()
		last := lines[len(lines)-1].ContextMap()
		if last["path"] != "/scim/v2/Users" {
			t.Errorf("SCIM list logged as %v, want /scim/v2/Users", last["path"])
		}
		if line := strings.ToLower(fmt.Sprint(last)); strings.Contains(line, "ann.person") {
			t.Errorf("the query string was logged: %v", last)
		}
	})
}
