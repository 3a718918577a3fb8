package scimhttp

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store"
)

// The route families of the SCIM API, as audit events name them.
const (
	RouteSCIM = "scim"
	RouteBulk = "scim.bulk"
	RouteMe   = "scim.me"
)

// OpBulk is the operation of a refused bulk request as a whole; the operations of
// a bulk request that runs are recorded one by one.
const OpBulk = "bulk"

// changeOp is the audit operation a method means on a resource.
func changeOp(method string) string {
	switch method {
	case http.MethodPost:
		return store.OpCreate
	case http.MethodPut, http.MethodPatch:
		return store.OpUpdate
	case http.MethodDelete:
		return store.OpDelete
	}
	return ""
}

// markChange marks the requests that change resources (POST, PUT, PATCH and DELETE
// on /Users and /Groups, writes to /Me, POST /Bulk; not the .search queries) in the
// request's audit actor, so that a refusal is recorded too (middleware.Audit).
func (s *Server) markChange(next http.Handler) http.Handler {
	endpoints := map[string]scim.ResourceKind{}
	for _, kind := range []scim.ResourceKind{scim.UserKind, scim.GroupKind} {
		endpoints[strings.TrimPrefix(s.svc.Types().Of(kind).Endpoint, "/")] = kind
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := store.ActorFrom(r.Context()); a != nil {
			a.Route = RouteSCIM
			if op := changeOp(r.Method); op != "" {
				seg, id, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, Prefix), "/"), "/")
				kind, resource := endpoints[seg]
				switch {
				case resource && id != ".search":
					a.Mark(RouteSCIM, op, string(kind), strings.ToLower(id))
				case seg == "Me" && id == "":
					a.Mark(RouteMe, op, string(scim.UserKind), "")
				case seg == "Bulk" && id == "" && r.Method == http.MethodPost:
					a.Mark(RouteBulk, OpBulk, "", "")
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// opActor is the audit actor of one bulk operation: the bulk request's caller,
// client and request id, with the operation's own resource, status and detail.
// Nil when the request has no actor.
func (s *Server) opActor(r *http.Request, op *bulkOp, id string) *store.Actor {
	a := store.ActorFrom(r.Context())
	if a == nil {
		return nil
	}
	oa := &store.Actor{TenantID: a.TenantID, TokenID: a.TokenID, ClientAddr: a.ClientAddr, RequestID: a.RequestID,
		Detail: fmt.Sprintf("Operations[%d]", op.index)}
	kind := scim.UserKind
	if op.endpoint == s.svc.Types().Of(scim.GroupKind).Endpoint {
		kind = scim.GroupKind
	}
	if strings.HasPrefix(id, bulkIDPrefix) {
		id = ""
	}
	oa.Mark(RouteBulk, changeOp(op.method), string(kind), strings.ToLower(id))
	return oa
}

// auditReason notes a refusal's code on the request's audit actor: the scimType,
// or the status's name when there is none.
func auditReason(r *http.Request, status int, scimType string) {
	if scimType == "" {
		scimType = http.StatusText(status)
	}
	store.ActorFrom(r.Context()).Refuse(scimType)
}
