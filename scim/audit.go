package scim

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/store"
)

// The audit log: every change of a tenant's data is recorded by the store in the
// transaction that makes it (see store.AuditEvent), with the actor the request's
// context carries. What is left here is recording refusals, which have no
// transaction of their own, and reading and pruning the log.

// RouteAccount is the route of the changes the account pages make (a password set
// or an email verified through a link in a message), which no token makes.
const RouteAccount = "account"

// appendTimeout bounds the write of a refusal's event, which runs after the answer
// is decided and must not hold the request for long.
const appendTimeout = 5 * time.Second

// failedAppendTimeout bounds the write of a failure's (5xx) event: the database is
// often what failed, and a request already past its deadline must not wait the
// full appendTimeout more for a record that will most likely not be written.
const failedAppendTimeout = 500 * time.Millisecond

// AuditRefused records the refusal of the change the actor's request meant to make,
// answered with status, in the actor's tenant. It is best effort: a failure is
// logged and never fails the request. Nothing is recorded without a recognised
// caller (there is no tenant to record it in).
func (s *Service) AuditRefused(ctx context.Context, a *store.Actor, status int) {
	if a == nil || a.TenantID == "" {
		return
	}
	e := a.Refusal(status)
	timeout := appendTimeout
	if status >= 500 {
		timeout = failedAppendTimeout
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := s.st.AppendAudit(ctx, e); err != nil {
		s.log.Warn("cannot record a refused change in the audit log", zap.String("request_id", a.RequestID),
			zap.String("tenant_id", a.TenantID), zap.String("operation", e.Operation), zap.Int("status", status), zap.Error(err))
	}
}

// auditEntryRefused records a task entry that failed: its status is the one its
// error has on the SCIM API, its detail the error's code.
func (s *Service) auditEntryRefused(ctx context.Context, e store.TaskEntry, kind ErrorKind) {
	var ea store.Actor
	if a := store.ActorFrom(ctx); a != nil {
		ea = *a
	}
	ea.TenantID = e.TenantID
	ea.Operation, ea.ResourceType, ea.ResourceID = OpOfTaskEntry(e.Op), string(UserKind), ""
	if e.Op == taskOpCreate {
		ea.ResourceID = e.ResourceID
	}
	ea.Reason = kindCode(kind)
	ea.Detail = joinAuditDetail(ea.Detail, "task "+e.TaskID+" entry "+strconv.Itoa(e.Seq))
	s.AuditRefused(ctx, &ea, kindHTTPStatus(kind))
}

// OpOfTaskEntry names the store operation of a task entry.
func OpOfTaskEntry(op string) string {
	if op == taskOpCreate {
		return store.OpCreate
	}
	return store.OpUpdate
}

func joinAuditDetail(detail, more string) string {
	if detail == "" {
		return more
	}
	return detail + "; " + more
}

// kindHTTPStatus is the status an error of kind has on the SCIM API (RFC 7644
// §3.12), for events that were not answered on their own.
func kindHTTPStatus(k ErrorKind) int {
	switch k {
	case KindInvalidValue, KindInvalidSyntax, KindInvalidFilter, KindInvalidPath, KindNoTarget, KindMutability,
		KindTooMany, KindInvalidCursor, KindExpiredCursor:
		return 400
	case KindUnauthorized:
		return 401
	case KindForbidden:
		return 403
	case KindNotFound:
		return 404
	case KindUniqueness:
		return 409
	case KindPrecondition:
		return 412
	case KindTooManyRequests:
		return 429
	case KindUnavailable:
		return 503
	}
	return 500
}

// AuditStore is what reading and pruning the audit log need from persistence;
// store.Store satisfies it.
type AuditStore interface {
	AuditEvents(ctx context.Context, tenantID string, q store.AuditQuery) ([]store.AuditEvent, error)
	DeleteAuditBefore(ctx context.Context, before time.Time, limit int) (int, error)
	TenantByName(ctx context.Context, name string) (store.Tenant, error)
}

// AuditLog reads a tenant's audit log and prunes old events.
type AuditLog struct {
	st  AuditStore
	log *zap.Logger
}

// NewAuditLog returns the audit log use cases over st.
func NewAuditLog(st AuditStore, log *zap.Logger) *AuditLog {
	return &AuditLog{st: st, log: log.Named("audit")}
}

// The page sizes of audit reads.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditQuery selects a page of a tenant's events.
type AuditQuery struct {
	// Since is inclusive, Until (when not zero) exclusive.
	Since, Until time.Time
	// Limit is the page size: 0 is DefaultAuditLimit, at most MaxAuditLimit.
	Limit int
	// Cursor is the NextCursor of the previous page; "" starts at Since.
	Cursor string
}

// AuditPage is one page of events, oldest first. NextCursor, when not empty,
// continues after the page.
type AuditPage struct {
	Events     []store.AuditEvent
	NextCursor string
}

// Events returns a page of the tenant's events.
func (l *AuditLog) Events(ctx context.Context, tenantID string, q AuditQuery) (*AuditPage, error) {
	switch {
	case q.Limit == 0:
		q.Limit = DefaultAuditLimit
	case q.Limit < 0 || q.Limit > MaxAuditLimit:
		return nil, errorf(KindInvalidValue, "limit must be an integer from 1 to %d, not %d", MaxAuditLimit, q.Limit)
	}
	if !q.Until.IsZero() && !q.Until.After(q.Since) {
		return nil, errorf(KindInvalidValue, "until (%s) must be later than since (%s)", q.Until.UTC().Format(time.RFC3339), q.Since.UTC().Format(time.RFC3339))
	}
	sq := store.AuditQuery{Since: q.Since, Until: q.Until, Limit: q.Limit + 1}
	if q.Cursor != "" {
		p, err := decodeAuditCursor(q.Cursor)
		if err != nil {
			return nil, err
		}
		sq.After = &p
	}
	events, err := l.st.AuditEvents(ctx, tenantID, sq)
	if err != nil {
		return nil, AsError(err)
	}
	page := &AuditPage{Events: events}
	if len(events) > q.Limit {
		page.Events = events[:q.Limit]
		last := page.Events[q.Limit-1]
		page.NextCursor = encodeAuditCursor(store.AuditPosition{At: last.At, ID: last.ID})
	}
	return page, nil
}

// TenantEvents is Events for the tenant named name (for the command line).
func (l *AuditLog) TenantEvents(ctx context.Context, name string, q AuditQuery) (*AuditPage, error) {
	tn, err := tenantNamed(ctx, l.st, name)
	if err != nil {
		return nil, err
	}
	return l.Events(ctx, tn.ID, q)
}

// An audit cursor is the position of the last event of a page: its time in
// nanoseconds and its id. It is not signed: it selects nothing the query's tenant
// could not see anyway.
func encodeAuditCursor(p store.AuditPosition) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(p.At.UnixNano(), 10) + "." + p.ID))
}

func decodeAuditCursor(raw string) (store.AuditPosition, error) {
	bad := &Error{Kind: KindInvalidCursor, Detail: "the cursor is not one this server gave out; start again without it"}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return store.AuditPosition{}, bad
	}
	ns, id, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" || len(id) > 36 {
		return store.AuditPosition{}, bad
	}
	return store.AuditPosition{At: time.Unix(0, n).UTC(), ID: id}, nil
}

// AuditPruneBatch is how many events one retention step deletes.
const AuditPruneBatch = 1000

// Prune deletes one batch of events older than retention (of any tenant) and
// returns how many it deleted; a retention of 0 keeps every event.
func (l *AuditLog) Prune(ctx context.Context, retention time.Duration) (int, error) {
	if retention <= 0 {
		return 0, nil
	}
	n, err := l.st.DeleteAuditBefore(ctx, time.Now().Add(-retention), AuditPruneBatch)
	if err != nil {
		return 0, AsError(err)
	}
	if n > 0 {
		l.log.Info("audit events past retention deleted", zap.Int("count", n), zap.Duration("retention", retention))
	}
	return n, nil
}

// Work prunes the log every poll until ctx ends; while there are old events it
// deletes them batch after batch, each its own short statement.
func (l *AuditLog) Work(ctx context.Context, retention, poll time.Duration) {
	runWorker(ctx, l.log, "audit retention", poll, func(ctx context.Context) (int, error) {
		return l.Prune(ctx, retention)
	})
}

// Actor is who makes a request's changes, as the audit log records them (see
// store.Actor); routes outside this package mark their changes on it.
type Actor = store.Actor

// ActorFrom returns the audit actor of ctx, or nil when there is none.
func ActorFrom(ctx context.Context) *Actor { return store.ActorFrom(ctx) }

// The audit operations of changes to resources.
const (
	OpCreate = store.OpCreate
	OpUpdate = store.OpUpdate
	OpDelete = store.OpDelete
)

// AuditRecord is an audit event as the admin API and `scimd audit --format json`
// show it.
type AuditRecord struct {
	ID           string `json:"id"`
	At           string `json:"at"` // RFC 3339, UTC, microseconds
	TenantID     string `json:"tenantId"`
	TokenID      string `json:"tokenId"`
	ClientAddr   string `json:"clientAddr"`
	RequestID    string `json:"requestId"`
	Route        string `json:"route"`
	Operation    string `json:"operation"`
	ResourceType string `json:"resourceType"`
	ResourceID   string `json:"resourceId"`
	OldVersion   *int64 `json:"oldVersion"`
	NewVersion   *int64 `json:"newVersion"`
	Outcome      string `json:"outcome"`
	Status       int    `json:"status"`
	Detail       string `json:"detail"`
}

// AuditTimeLayout is how audit times are shown.
const AuditTimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// RecordOf returns e as shown.
func RecordOf(e store.AuditEvent) AuditRecord {
	return AuditRecord{ID: e.ID, At: e.At.UTC().Format(AuditTimeLayout), TenantID: e.TenantID, TokenID: e.TokenID,
		ClientAddr: e.ClientAddr, RequestID: e.RequestID, Route: e.Route, Operation: e.Operation, ResourceType: e.ResourceType,
		ResourceID: e.ResourceID, OldVersion: e.OldVersion, NewVersion: e.NewVersion, Outcome: e.Outcome, Status: e.Status, Detail: e.Detail}
}
