package store

import (
	"context"
	"time"
)

// AuditEvent is one entry of a tenant's append-only audit log: a change of the
// tenant's data, or a change that was refused. A change's event is written in the
// same transaction as the change; a refusal's on its own. Events are only ever
// appended, and deleted by the retention sweep once old enough: nothing updates one.
type AuditEvent struct {
	ID       string
	TenantID string
	At       time.Time
	// TokenID, ClientAddr, RequestID and Route say who made the change and how: the
	// API token, the client's network address, the request's X-Request-Id and the
	// route family (see Actor). All are empty for changes made outside a request.
	TokenID, ClientAddr, RequestID, Route string
	// Operation is what was done (OpCreate, …, or a compatibility route's own name
	// for a refused request) to the resource of ResourceType and ResourceID.
	Operation, ResourceType, ResourceID string
	// OldVersion and NewVersion are the resource's versions before and after the
	// change; nil where there is none (before a create, after a delete, for
	// resources without versions).
	OldVersion, NewVersion *int64
	// Outcome is AuditOK, AuditRefused or AuditFailed; Status is the HTTP status
	// the request was answered with (0 for a change made by the command line).
	Outcome string
	Status  int
	// Detail says more in a few words (the refusal's error code, which bulk
	// operation, which settings changed). It never holds a request body, a
	// password or a token secret.
	Detail string
}

// The outcomes of an audit event.
const (
	// AuditOK: the change was made (and committed with its event).
	AuditOK = "ok"
	// AuditRefused: the change was denied or refused (a 4xx answer).
	AuditRefused = "refused"
	// AuditFailed: the change failed on the server's side (a 5xx answer) and was
	// not made.
	AuditFailed = "failed"
)

// The operations the store records with the changes it makes.
const (
	OpCreate         = "create"
	OpUpdate         = "update"
	OpDelete         = "delete"
	OpTokenCreate    = "token.create"
	OpTokenRevoke    = "token.revoke"
	OpTenantCreate   = "tenant.create"
	OpTenantSettings = "tenant.settings"
)

// The resource types of events that are not about a User or a Group.
const (
	AuditToken  = "Token"
	AuditTenant = "Tenant"
)

// AuditQuery selects a page of one tenant's events, in the order (At, ID).
type AuditQuery struct {
	// Since is inclusive; Until, when not zero, exclusive.
	Since, Until time.Time
	// After, when set, starts the page after this event (keyset paging).
	After *AuditPosition
	// Limit is the most events returned.
	Limit int
}

// AuditPosition is an event's place in the log's order.
type AuditPosition struct {
	At time.Time
	ID string
}

// AuditStore keeps the audit log. Besides AppendAudit, every write method of Store
// appends the events of its changes inside its own transaction.
type AuditStore interface {
	// AppendAudit appends one event on its own (a refused change, which has no
	// transaction), filling ID and At when they are empty. An ID that exists is
	// ErrConflict: an event is never replaced.
	AppendAudit(ctx context.Context, e AuditEvent) error
	// AuditEvents returns a page of the tenant's events, oldest first.
	AuditEvents(ctx context.Context, tenantID string, q AuditQuery) ([]AuditEvent, error)
	// DeleteAuditBefore deletes at most limit events of any tenant older than
	// before, oldest first, and returns how many it deleted.
	DeleteAuditBefore(ctx context.Context, before time.Time, limit int) (int, error)
}

// Actor is who makes the changes of one request or command, as their audit events
// record it. The HTTP middleware puts one in the request's context; authentication
// fills TenantID and TokenID once it recognises the caller's token (even a token it
// then refuses); routes that change data mark it with Write and say what they are
// about to do, so that a refusal can be recorded too.
type Actor struct {
	// TenantID and TokenID are the tenant and token of the caller.
	TenantID, TokenID string
	// ClientAddr is the client's network address; RequestID the request's id.
	ClientAddr, RequestID string
	// Route names the route family: scim, scim.bulk, scim.me, compat.<family>,
	// account, cli, bootstrap.
	Route string

	// Write marks a request that changes data: its refusal is recorded.
	Write bool
	// Operation, ResourceType and ResourceID say what a Write request meant to do,
	// for the event of its refusal.
	Operation, ResourceType, ResourceID string
	// Reason is the refusal's error code, set by the route's error writer.
	Reason string

	// Status is the HTTP status the request answers when its changes succeed;
	// 0 leaves each operation's usual one (201 create, 200 update, 204 delete).
	Status int
	// Detail is recorded with every event of the request (e.g. which bulk
	// operation made a change).
	Detail string
}

type actorKey struct{}

// WithActor returns ctx carrying a.
func WithActor(ctx context.Context, a *Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor of ctx, or nil when there is none.
func ActorFrom(ctx context.Context) *Actor {
	a, _ := ctx.Value(actorKey{}).(*Actor)
	return a
}

// Recognise records the caller's tenant and token; the first token recognised in
// a request is its caller (later ones, such as a token a route is asked to check,
// do not replace it). It does nothing on a nil Actor.
func (a *Actor) Recognise(tenantID, tokenID string) {
	if a == nil || a.TokenID != "" {
		return
	}
	a.TenantID, a.TokenID = tenantID, tokenID
}

// Refuse records the error code of a refusal. It does nothing on a nil Actor.
func (a *Actor) Refuse(reason string) {
	if a != nil {
		a.Reason = reason
	}
}

// Mark marks a request as a change of the named route: its refusal is recorded
// with op, the resource type and id. It does nothing on a nil Actor.
func (a *Actor) Mark(route, op, resourceType, resourceID string) {
	if a == nil {
		return
	}
	a.Write, a.Route, a.Operation, a.ResourceType, a.ResourceID = true, route, op, resourceType, resourceID
}

// Change returns the event of a change the actor's request made, outcome AuditOK,
// with the status the request answers for it: Status when set, else the usual
// one of op, and 0 outside HTTP requests. The caller fills the resource and
// versions.
func (a *Actor) Change(tenantID, op string) AuditEvent {
	e := AuditEvent{TenantID: tenantID, Operation: op, Outcome: AuditOK}
	if a == nil {
		return e
	}
	e.TokenID, e.ClientAddr, e.RequestID, e.Route, e.Detail = a.TokenID, a.ClientAddr, a.RequestID, a.Route, a.Detail
	switch {
	case a.RequestID == "":
	case a.Status != 0:
		e.Status = a.Status
	case op == OpCreate || op == OpTokenCreate || op == OpTenantCreate:
		e.Status = 201
	case op == OpDelete:
		e.Status = 204
	default:
		e.Status = 200
	}
	return e
}

// Refusal returns the event of the actor's refused Write request, answered with
// status: AuditRefused for a 4xx (and 501), AuditFailed for another 5xx.
func (a *Actor) Refusal(status int) AuditEvent {
	outcome := AuditRefused
	if status >= 500 && status != 501 {
		outcome = AuditFailed
	}
	detail := a.Reason
	if a.Detail != "" {
		detail = a.Detail + ": " + a.Reason
	}
	return AuditEvent{TenantID: a.TenantID, TokenID: a.TokenID, ClientAddr: a.ClientAddr, RequestID: a.RequestID, Route: a.Route,
		Operation: a.Operation, ResourceType: a.ResourceType, ResourceID: a.ResourceID, Outcome: outcome, Status: status, Detail: detail}
}
