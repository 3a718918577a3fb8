package main

import (
	"net/http"
	"net/url"
	"testing"
)

func TestDiscovery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		t.Run("service_provider_config", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/ServiceProviderConfig", nil).want(t, http.StatusOK)
			want := map[string]bool{"patch": true, "filter": true, "etag": true, "changePassword": true, "sort": true}
			for k, v := range want {
				if got, _ := r.body[k].(map[string]any)["supported"].(bool); got != v {
					t.Errorf("%s.supported = %v, want %v", k, got, v)
				}
			}
			if mr, _ := r.body["filter"].(map[string]any)["maxResults"].(float64); mr < 1 {
				t.Errorf("filter.maxResults = %v", mr)
			}
			if schemes, _ := r.body["authenticationSchemes"].([]any); len(schemes) != 2 {
				t.Errorf("authenticationSchemes: %v", r.body["authenticationSchemes"])
			}
			if got := str(r.body, "meta.location"); got != e.srv.URL+"/scim/v2/ServiceProviderConfig" {
				t.Errorf("meta.location %q", got)
			}
		})
		t.Run("resource_types", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/ResourceTypes", nil).want(t, http.StatusOK)
			if r.body["totalResults"] != float64(2) {
				t.Fatalf("totalResults %v", r.body["totalResults"])
			}
			u := e.call("GET", "/scim/v2/ResourceTypes/User", nil).want(t, http.StatusOK)
			if u.body["endpoint"] != "/Users" || u.body["schema"] != "urn:ietf:params:scim:schemas:core:2.0:User" {
				t.Errorf("User resource type: %s", u.raw)
			}
			ext, _ := u.body["schemaExtensions"].([]any)
			if len(ext) != 2 || ext[0].(map[string]any)["schema"] != "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" ||
				ext[1].(map[string]any)["schema"] != "urn:scimd:schemas:extension:2.0:User" {
				t.Errorf("schemaExtensions: %v", u.body["schemaExtensions"])
			}
			e.call("GET", "/scim/v2/ResourceTypes/Device", nil).wantError(t, http.StatusNotFound, "")
		})
		t.Run("schemas", func(t *testing.T) {
			r := e.call("GET", "/scim/v2/Schemas", nil).want(t, http.StatusOK)
			got := map[string]bool{}
			for _, it := range r.body["Resources"].([]any) {
				got[it.(map[string]any)["id"].(string)] = true
			}
			for _, id := range []string{
				"urn:ietf:params:scim:schemas:core:2.0:User",
				"urn:ietf:params:scim:schemas:core:2.0:Group",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
				"urn:scimd:schemas:extension:2.0:User",
			} {
				if !got[id] {
					t.Errorf("schema %s missing", id)
				}
				one := e.call("GET", "/scim/v2/Schemas/"+url.PathEscape(id), nil).want(t, http.StatusOK)
				if one.body["id"] != id || one.body["attributes"] == nil {
					t.Errorf("GET schema %s: %s", id, one.raw)
				}
			}
			e.call("GET", "/scim/v2/Schemas/urn:nope", nil).wantError(t, http.StatusNotFound, "")
		})
		t.Run("filter_forbidden", func(t *testing.T) {
			// RFC 7644 §4: a filter on the discovery endpoints is 403.
			e.call("GET", "/scim/v2/Schemas?filter="+url.QueryEscape(`id eq "x"`), nil).wantError(t, http.StatusForbidden, "")
			e.call("GET", "/scim/v2/ResourceTypes?filter="+url.QueryEscape(`id eq "x"`), nil).wantError(t, http.StatusForbidden, "")
		})
		t.Run("unsupported", func(t *testing.T) {
			e.call("GET", "/scim/v2/Me", nil).wantError(t, http.StatusNotImplemented, "")
			e.call("GET", "/scim/v2/Devices", nil).wantError(t, http.StatusNotFound, "")
			r := e.call("DELETE", "/scim/v2/Users", nil)
			r.wantError(t, http.StatusMethodNotAllowed, "")
			if r.header.Get("Allow") != "GET, POST" {
				t.Errorf("Allow %q", r.header.Get("Allow"))
			}
		})
	})
}

func TestAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, c := range []struct{ name, header string }{
			{"missing", ""},
			{"unknown_token", "Bearer scimd_not-a-real-token-at-all"},
			{"wrong_scheme", "Token " + e.token},
			{"bad_basic", "Basic !!!"},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := e.callAs("", "GET", "/scim/v2/Users", nil, "Authorization", c.header)
				r.wantError(t, http.StatusUnauthorized, "")
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			})
		}
		t.Run("basic_with_token_as_password", func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.srv.URL+"/scim/v2/Users", nil)
			req.SetBasicAuth("anyone", e.token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
		})
		t.Run("scope_required", func(t *testing.T) {
			tok := e.newTenant("compatonly", "compat")
			e.callAs(tok, "GET", "/scim/v2/Users", nil).wantError(t, http.StatusForbidden, "")
		})
		t.Run("health_needs_no_token", func(t *testing.T) {
			for _, p := range []string{"/healthz", "/readyz"} {
				res, err := http.Get(e.srv.URL + p)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("%s: %d", p, res.StatusCode)
				}
			}
		})
	})
}
