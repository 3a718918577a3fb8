package scimhttp

import (
	"net/http"
	"net/url"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
)

// noFilter refuses a filter on the discovery endpoints (RFC 7644 §4: 403).
func noFilter(r *http.Request) error {
	if r.URL.Query().Has("filter") {
		return &scim.Error{Kind: scim.KindForbidden, Detail: "the discovery endpoints do not take a filter (RFC 7644 §4)"}
	}
	return nil
}

// serviceProviderConfig serves RFC 7643 §5. Every claim here is backed by tests:
// scimd advertises only what it does.
func (s *Server) serviceProviderConfig(w http.ResponseWriter, r *http.Request) error {
	base := s.base(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas":          []string{schemas.ServiceProviderConfigURN},
		"documentationUri": "https://github.com/scimd/scimd#readme",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": true, "maxOperations": s.bulkMaxOps, "maxPayloadSize": s.bulkMaxBody},
		"filter":           map[string]any{"supported": true, "maxResults": s.svc.Limits().MaxResults},
		"changePassword":   map[string]any{"supported": true},
		"sort":             map[string]any{"supported": true},
		"etag":             map[string]any{"supported": true},
		// RFC 9865 §4: both paging methods, index by default.
		"pagination": map[string]any{
			"cursor": true, "index": true, "defaultPaginationMethod": "index",
			"defaultPageSize": s.svc.Limits().DefaultCount, "maxPageSize": s.svc.Limits().MaxResults,
			"cursorTimeout": int(s.svc.Limits().CursorTimeout.Seconds()),
		},
		"authenticationSchemes": []any{
			map[string]any{
				"type": "oauthbearertoken", "name": "OAuth Bearer Token", "primary": true,
				"description": "Authentication with an scimd API token: Authorization: Bearer <token>",
				"specUri":     "https://www.rfc-editor.org/info/rfc6750",
			},
			map[string]any{
				"type": "httpbasic", "name": "HTTP Basic",
				"description": "HTTP Basic with any user name and an scimd API token as the password",
				"specUri":     "https://www.rfc-editor.org/info/rfc7617",
			},
		},
		"meta": map[string]any{"resourceType": "ServiceProviderConfig", "location": base + "/ServiceProviderConfig"},
	})
	return nil
}

func (s *Server) resourceTypeJSON(rt *schemas.ResourceType, base string) map[string]any {
	exts := make([]any, 0, len(rt.Extensions))
	for _, e := range rt.Extensions {
		exts = append(exts, map[string]any{"schema": e.Schema.ID, "required": e.Required})
	}
	out := map[string]any{
		"schemas":     []string{schemas.ResourceTypeURN},
		"id":          rt.Name,
		"name":        rt.Name,
		"endpoint":    rt.Endpoint,
		"description": rt.Description,
		"schema":      rt.Schema.ID,
		"meta":        map[string]any{"resourceType": "ResourceType", "location": base + "/ResourceTypes/" + rt.Name},
	}
	if len(exts) > 0 {
		out["schemaExtensions"] = exts
	}
	return out
}

func (s *Server) types() []*schemas.ResourceType {
	t := s.svc.Types()
	return []*schemas.ResourceType{t.User, t.Group}
}

func listResponse(items []any) map[string]any {
	return map[string]any{
		"schemas":      []string{schemas.ListResponseURN},
		"totalResults": len(items),
		"itemsPerPage": len(items),
		"startIndex":   1,
		"Resources":    items,
	}
}

// resourceTypes serves RFC 7644 §4 /ResourceTypes.
func (s *Server) resourceTypes(w http.ResponseWriter, r *http.Request) error {
	if err := noFilter(r); err != nil {
		return err
	}
	var items []any
	for _, rt := range s.types() {
		items = append(items, s.resourceTypeJSON(rt, s.base(r)))
	}
	writeJSON(w, http.StatusOK, listResponse(items))
	return nil
}

func (s *Server) resourceType(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	for _, rt := range s.types() {
		if rt.Name == id {
			writeJSON(w, http.StatusOK, s.resourceTypeJSON(rt, s.base(r)))
			return nil
		}
	}
	return &scim.Error{Kind: scim.KindNotFound, Detail: "no resource type " + id + "; there are User and Group"}
}

// schemaJSONs returns the schema representations of RFC 7643 §7 for every schema
// scimd serves, built from the same definitions that validate requests.
func (s *Server) schemaJSONs(base string) []map[string]any {
	var out []map[string]any
	seen := map[string]bool{}
	for _, rt := range s.types() {
		all := []schemasOf{{rt.Schema.ID, rt.Schema.ToMap()}}
		for _, e := range rt.Extensions {
			all = append(all, schemasOf{e.Schema.ID, e.Schema.ToMap()})
		}
		for _, sc := range all {
			if seen[sc.id] {
				continue
			}
			seen[sc.id] = true
			sc.m["meta"] = map[string]any{"resourceType": "Schema", "location": base + "/Schemas/" + url.PathEscape(sc.id)}
			out = append(out, sc.m)
		}
	}
	return out
}

type schemasOf struct {
	id string
	m  map[string]any
}

func (s *Server) schemaList(w http.ResponseWriter, r *http.Request) error {
	if err := noFilter(r); err != nil {
		return err
	}
	var items []any
	for _, m := range s.schemaJSONs(s.base(r)) {
		items = append(items, m)
	}
	writeJSON(w, http.StatusOK, listResponse(items))
	return nil
}

func (s *Server) schema(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	for _, m := range s.schemaJSONs(s.base(r)) {
		if m["id"] == id {
			writeJSON(w, http.StatusOK, m)
			return nil
		}
	}
	return &scim.Error{Kind: scim.KindNotFound, Detail: "no schema " + id + "; GET " + Prefix + "/Schemas lists them"}
}
