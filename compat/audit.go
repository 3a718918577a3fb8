package compat

import (
	"net/http"

	"github.com/scimd/scimd/scim"
)

// auditRoute is the route an audit event of a family's request names.
func auditRoute(family string) string { return "compat." + family }

// auditChanges marks the requests of h whose method ops names as changes of users
// through the family, with that operation, so that the audit log records their
// refusals as well as their changes (see middleware.Audit). Other methods (the
// reads, a refused method) are not marked.
func auditChanges(family string, ops map[string]string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if op, ok := ops[r.Method]; ok {
			scim.ActorFrom(r.Context()).Mark(auditRoute(family), op, string(scim.UserKind), "")
		}
		h.ServeHTTP(w, r)
	})
}

// auditStatus sets the status a request answers when its changes succeed, where
// the family's differs from the operation's usual one.
func auditStatus(r *http.Request, status int) {
	if a := scim.ActorFrom(r.Context()); a != nil {
		a.Status = status
	}
}

// auditOperation renames what a marked request means to do, once its body says.
func auditOperation(r *http.Request, op string) {
	if a := scim.ActorFrom(r.Context()); a != nil && a.Write {
		a.Operation = op
	}
}
