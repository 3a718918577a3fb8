package gormstore

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/scimd/scimd/store"
)

var _ store.AuditStore = (*Store)(nil)

// auditCols are the columns of audit_events, in the order audit writes them and
// auditRow reads them.
const auditCols = "id, tenant_id, at, token_id, client_addr, request_id, route, operation, resource_type, resource_id, old_version, new_version, outcome, status, detail"

// maxAuditDetail bounds the detail of an event, in characters.
const maxAuditDetail = 512

// audit inserts events with one statement, inside the transaction of the change
// they record when db is one. Values longer than their column are cut, so that an
// odd request (a long id in a path) cannot make the change itself fail.
func (s *Store) audit(db *gorm.DB, events ...store.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	var sb strings.Builder
	args := make([]any, 0, len(events)*15)
	sb.WriteString(`INSERT INTO audit_events (` + auditCols + `) VALUES `)
	at := now()
	for i := range events {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(" + auditParams + ")")
		args = append(args, auditValues(&events[i], at)...)
	}
	return s.writeErr(db.Exec(sb.String(), args...).Error)
}

// auditParams are the placeholders of one event's auditValues.
const auditParams = "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"

// auditValues fills e's ID and At (at when it has none) and returns the values
// audit writes for it, in the order of auditCols. Every statement that writes an
// event takes its values from here, so an event reads the same however it was
// written.
func auditValues(e *store.AuditEvent, at time.Time) []any {
	if e.ID == "" {
		e.ID = newEventID()
	}
	if e.At.IsZero() {
		e.At = at
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	return []any{clip(e.ID, 36), e.TenantID, e.At, clip(e.TokenID, 36), clip(e.ClientAddr, 64), clip(e.RequestID, 64),
		clip(e.Route, 64), clip(e.Operation, 32), clip(e.ResourceType, 32), clip(e.ResourceID, 36), e.OldVersion, e.NewVersion,
		clip(e.Outcome, 16), e.Status, clip(e.Detail, maxAuditDetail)}
}

// changeEvent is the event change records.
func changeEvent(ctx context.Context, tenantID, op, resourceType, id string, oldVersion, newVersion *int64) store.AuditEvent {
	e := store.ActorFrom(ctx).Change(tenantID, op)
	e.ResourceType, e.ResourceID, e.OldVersion, e.NewVersion = resourceType, id, oldVersion, newVersion
	return e
}

// change records one change of the request in ctx inside tx.
func (s *Store) change(ctx context.Context, tx *gorm.DB, tenantID, op, resourceType, id string, oldVersion, newVersion *int64) error {
	return s.audit(tx, changeEvent(ctx, tenantID, op, resourceType, id, oldVersion, newVersion))
}

// newEventID returns a time-ordered id (UUIDv7), so that events of one
// microsecond still list in the order they were made.
func newEventID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return newID()
}

// clip cuts s to at most n characters (the databases count VARCHAR lengths in
// characters).
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

func version(v int64) *int64 { return &v }

// AppendAudit appends one event on its own.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	return s.audit(s.prep.WithContext(ctx), e)
}

type auditRow struct {
	ID, TenantID                          string
	At                                    time.Time
	TokenID, ClientAddr, RequestID, Route string
	Operation, ResourceType, ResourceID   string
	OldVersion, NewVersion                *int64
	Outcome                               string
	Status                                int
	Detail                                string
}

// AuditEvents returns a page of the tenant's events in the order (at, id).
func (s *Store) AuditEvents(ctx context.Context, tenantID string, q store.AuditQuery) ([]store.AuditEvent, error) {
	where, args := "tenant_id = ? AND at >= ?", []any{tenantID, q.Since.UTC()}
	if !q.Until.IsZero() {
		where += " AND at < ?"
		args = append(args, q.Until.UTC())
	}
	if p := q.After; p != nil {
		at := p.At.UTC().Truncate(time.Microsecond)
		where += " AND (at > ? OR (at = ? AND id > ?))"
		args = append(args, at, at, p.ID)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	var rows []auditRow
	err := s.db.WithContext(ctx).Raw(`SELECT `+auditCols+` FROM audit_events WHERE `+where+` ORDER BY at, id LIMIT ?`,
		append(args, limit)...).Scan(&rows).Error
	if err != nil {
		return nil, s.readErr(err)
	}
	out := make([]store.AuditEvent, len(rows))
	for i, r := range rows {
		out[i] = store.AuditEvent{ID: r.ID, TenantID: r.TenantID, At: r.At.UTC(), TokenID: r.TokenID, ClientAddr: r.ClientAddr,
			RequestID: r.RequestID, Route: r.Route, Operation: r.Operation, ResourceType: r.ResourceType, ResourceID: r.ResourceID,
			OldVersion: r.OldVersion, NewVersion: r.NewVersion, Outcome: r.Outcome, Status: r.Status, Detail: r.Detail}
	}
	return out, nil
}

// DeleteAuditBefore deletes one batch of the oldest events older than before.
func (s *Store) DeleteAuditBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	res := s.db.WithContext(ctx).Exec(`DELETE FROM audit_events WHERE id IN
		(SELECT id FROM audit_events WHERE at < ? ORDER BY at LIMIT ?)`, before.UTC(), limit)
	if res.Error != nil {
		return 0, s.writeErr(res.Error)
	}
	return int(res.RowsAffected), nil
}

// heldGroup is a group that holds a resource being deleted, with its version.
type heldGroup struct {
	ID      string
	Version int64
}

// deleteEvents are the events of a delete: the resource's, and one for each group
// that loses it as a member and so gets a new version.
func deleteEvents(a *store.Actor, tenantID string, kind store.Kind, id string, v int64, held []heldGroup) []store.AuditEvent {
	events := make([]store.AuditEvent, 0, 1+len(held))
	e := a.Change(tenantID, store.OpDelete)
	e.ResourceType, e.ResourceID, e.OldVersion = string(kind), id, version(v)
	events = append(events, e)
	for _, g := range held {
		e := a.Change(tenantID, store.OpUpdate)
		e.ResourceType, e.ResourceID, e.OldVersion, e.NewVersion = string(store.KindGroup), g.ID, version(g.Version), version(g.Version+1)
		e.Detail = joinDetail(e.Detail, "member "+id+" removed with its deletion")
		e.Status = events[0].Status // the request's answer, the delete's
		events = append(events, e)
	}
	return events
}

// joinDetail appends more to an event's detail.
func joinDetail(detail, more string) string {
	if detail == "" {
		return more
	}
	return detail + "; " + more
}

// tokenEvent is the event of a new token: what it may do (scopes, profile, the
// user it is bound to, sandbox, expiry), never its secret or hash.
func tokenEvent(ctx context.Context, t store.Token) store.AuditEvent {
	e := store.ActorFrom(ctx).Change(t.TenantID, store.OpTokenCreate)
	e.ResourceType, e.ResourceID = store.AuditToken, t.ID
	d := "scopes " + strings.Join(t.Scopes, ",")
	if t.Profile != "" {
		d += "; profile " + t.Profile
	}
	if t.UserID != "" {
		d += "; bound to user " + t.UserID
	}
	if t.Sandbox {
		d += "; sandbox"
	}
	if t.ExpiresAt != nil {
		d += "; expires " + t.ExpiresAt.UTC().Format(time.RFC3339)
	}
	e.Detail = joinDetail(e.Detail, d)
	return e
}

// revokeEvents are the events of revoking a user's tokens, one per token.
func revokeEvents(a *store.Actor, tenantID, userID string, ids []string) []store.AuditEvent {
	events := make([]store.AuditEvent, len(ids))
	for i, id := range ids {
		e := a.Change(tenantID, store.OpTokenRevoke)
		e.ResourceType, e.ResourceID = store.AuditToken, id
		e.Detail = joinDetail(e.Detail, "bound to user "+userID)
		events[i] = e
	}
	return events
}

// settingsEvent is the event of a change of tenant settings; its detail names the
// settings that changed, not their values (templates can be long).
func settingsEvent(ctx context.Context, tenantID string, before, after []byte) store.AuditEvent {
	e := store.ActorFrom(ctx).Change(tenantID, store.OpTenantSettings)
	e.ResourceType, e.ResourceID = store.AuditTenant, tenantID
	var b, a map[string]json.RawMessage
	_ = json.Unmarshal(before, &b)
	_ = json.Unmarshal(after, &a)
	var changed []string
	for k, v := range a {
		if !bytes.Equal(b[k], v) {
			changed = append(changed, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	if len(changed) == 0 {
		e.Detail = joinDetail(e.Detail, "no setting changed")
	} else {
		e.Detail = joinDetail(e.Detail, "changed "+strings.Join(changed, ", "))
	}
	return e
}
