package gormstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/scimd/scimd/store"
)

// queue writes r.Outbox inside the transaction that writes r, so a message exists
// exactly when its user does.
func (s *Store) queue(tx *gorm.DB, r *store.Resource) error {
	for i := range r.Outbox {
		m := &r.Outbox[i]
		m.ID, m.TenantID, m.UserID, m.Status, m.Created = newID(), r.TenantID, r.ID, "pending", now()
		if len(m.Payload) == 0 {
			m.Payload = []byte("{}")
		}
		err := tx.Exec(`INSERT INTO outbox (id, tenant_id, user_id, kind, recipient, payload, status, attempts, created, next_attempt)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`, m.ID, m.TenantID, m.UserID, m.Kind, m.Recipient, string(m.Payload), m.Status, m.Created, m.Created).Error
		if err != nil {
			return s.writeErr(err)
		}
	}
	return nil
}

// Outbox lists a tenant's messages, oldest first.
func (s *Store) Outbox(ctx context.Context, tenantID string) ([]store.Message, error) {
	var rows []messageRow
	err := s.db.WithContext(ctx).Raw(`SELECT `+messageCols+` FROM outbox WHERE tenant_id = ? ORDER BY created, id`, tenantID).Scan(&rows).Error
	if err != nil {
		return nil, s.readErr(err)
	}
	out := make([]store.Message, len(rows))
	for i, r := range rows {
		out[i] = r.message()
	}
	return out, nil
}

// SetTenantSettings replaces a tenant's settings, with an audit event naming the
// settings that changed in the same transaction.
func (s *Store) SetTenantSettings(ctx context.Context, tenantID string, set store.TenantSettings) error {
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		var before []string
		if err := tx.Raw(`SELECT settings FROM tenants WHERE id = ?`+s.d.ForUpdate(), tenantID).Scan(&before).Error; err != nil {
			return s.readErr(err)
		}
		if len(before) == 0 {
			return store.ErrNotFound
		}
		if err := tx.Exec(`UPDATE tenants SET settings = ? WHERE id = ?`, string(b), tenantID).Error; err != nil {
			return s.writeErr(err)
		}
		return s.audit(tx, settingsEvent(ctx, tenantID, []byte(before[0]), b))
	})
}

var _ store.OutboxStore = (*Store)(nil)

// messageCols are the outbox columns read back, in messageRow's order.
const messageCols = "id, tenant_id, user_id, kind, recipient, payload, status, attempts, created, next_attempt, sent_at, last_error, message_id"

type messageRow struct {
	ID, TenantID, UserID, Kind, Recipient, Payload, Status string
	Attempts                                               int
	Created, NextAttempt                                   time.Time
	SentAt                                                 *time.Time
	LastError, MessageID                                   string
}

func (r messageRow) message() store.Message {
	return store.Message{ID: r.ID, TenantID: r.TenantID, UserID: r.UserID, Kind: r.Kind, Recipient: r.Recipient,
		Payload: []byte(r.Payload), Status: r.Status, Attempts: r.Attempts, Created: r.Created.UTC(),
		NextAttempt: r.NextAttempt.UTC(), SentAt: utcPtr(r.SentAt), LastError: r.LastError, MessageID: r.MessageID}
}

// ClaimMessages locks the due pending messages it selects, skipping rows another
// claim has locked (FOR UPDATE SKIP LOCKED where the database locks rows; SQLite's
// immediate transaction holds the whole database instead), and leases them to c by
// moving next_attempt to the end of the lease.
func (s *Store) ClaimMessages(ctx context.Context, limit int, c store.Claim) ([]store.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	lock := s.d.ForUpdate()
	if lock != "" {
		lock += " SKIP LOCKED"
	}
	var out []store.Message
	err := s.tx(ctx, func(tx *gorm.DB) error {
		out = nil
		t := now()
		var rows []messageRow
		if err := tx.Raw(`SELECT `+messageCols+` FROM outbox WHERE status = ? AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?`+lock,
			store.MessagePending, t, limit).Scan(&rows).Error; err != nil {
			return s.readErr(err)
		}
		if len(rows) == 0 {
			return nil
		}
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		if err := tx.Exec(`UPDATE outbox SET claim = ?, next_attempt = ?, attempts = attempts + 1 WHERE id IN ?`,
			c.Token, t.Add(c.Lease), ids).Error; err != nil {
			return s.writeErr(err)
		}
		for _, r := range rows {
			m := r.message()
			m.Attempts++
			m.NextAttempt = t.Add(c.Lease)
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// FinishMessage records an outcome under the claim token.
func (s *Store) FinishMessage(ctx context.Context, token string, o store.MessageOutcome) (bool, error) {
	if token == "" {
		return false, nil
	}
	t := now()
	var res *gorm.DB
	db := s.db.WithContext(ctx)
	switch o.Status {
	case store.MessageSent:
		res = db.Exec(`UPDATE outbox SET status = ?, sent_at = ?, claim = '', last_error = '', message_id = ? WHERE id = ? AND claim = ? AND status = ?`,
			store.MessageSent, t, o.MessageID, o.ID, token, store.MessagePending)
	case store.MessageFailed:
		res = db.Exec(`UPDATE outbox SET status = ?, claim = '', last_error = ?, message_id = ? WHERE id = ? AND claim = ? AND status = ?`,
			store.MessageFailed, o.LastError, o.MessageID, o.ID, token, store.MessagePending)
	default:
		give := 0
		if o.Uncounted {
			give = 1
		}
		next := o.NextAttempt.UTC()
		if next.IsZero() {
			next = t
		}
		res = db.Exec(`UPDATE outbox SET claim = '', next_attempt = ?, last_error = ?, message_id = ?, attempts = attempts - ? WHERE id = ? AND claim = ? AND status = ?`,
			next, o.LastError, o.MessageID, give, o.ID, token, store.MessagePending)
	}
	if res.Error != nil {
		return false, s.writeErr(res.Error)
	}
	return res.RowsAffected == 1, nil
}

func (s *Store) messageWhere(ctx context.Context, where string, args ...any) (store.Message, error) {
	var rows []messageRow
	if err := s.db.WithContext(ctx).Raw(`SELECT `+messageCols+` FROM outbox WHERE `+where, args...).Scan(&rows).Error; err != nil {
		return store.Message{}, s.readErr(err)
	}
	if len(rows) == 0 {
		return store.Message{}, store.ErrNotFound
	}
	return rows[0].message(), nil
}

// Message returns one message of the tenant.
func (s *Store) Message(ctx context.Context, tenantID, id string) (store.Message, error) {
	return s.messageWhere(ctx, "tenant_id = ? AND id = ?", tenantID, id)
}

// MessageByID returns a message of any tenant.
func (s *Store) MessageByID(ctx context.Context, id string) (store.Message, error) {
	return s.messageWhere(ctx, "id = ?", id)
}

// RetryMessage makes a message that was not sent due at once with no attempts.
func (s *Store) RetryMessage(ctx context.Context, id string) error {
	res := s.db.WithContext(ctx).Exec(`UPDATE outbox SET status = ?, attempts = 0, next_attempt = ?, claim = '' WHERE id = ? AND status IN ?`,
		store.MessagePending, now(), id, []string{store.MessagePending, store.MessageFailed})
	if res.Error != nil {
		return s.writeErr(res.Error)
	}
	if res.RowsAffected == 0 {
		return store.ErrNotFound
	}
	return nil
}

type linkRow struct {
	Hash, TenantID, UserID, Message, Kind, Purpose string
	Created, Expires                               time.Time
	UsedAt, RevokedAt                              *time.Time
}

// linkCols are the account_links columns read back, in linkRow's order.
const linkCols = "hash, tenant_id, user_id, message, kind, purpose, created, expires, used_at, revoked_at"

func (r linkRow) link() (store.Link, error) {
	h, err := hex.DecodeString(r.Hash)
	if err != nil {
		return store.Link{}, fmt.Errorf("link of message %s: stored hash is not hexadecimal: %w", r.Message, err)
	}
	return store.Link{Hash: h, TenantID: r.TenantID, UserID: r.UserID, Message: r.Message, Kind: r.Kind, Purpose: r.Purpose,
		Created: r.Created.UTC(), Expires: r.Expires.UTC(), UsedAt: utcPtr(r.UsedAt), RevokedAt: utcPtr(r.RevokedAt)}, nil
}

// revokeOthers revokes, at at, the unused links of l's user and purpose that
// other messages than l's carry.
func (s *Store) revokeOthers(tx *gorm.DB, l store.Link, at time.Time) error {
	return s.writeErr(tx.Exec(`UPDATE account_links SET revoked_at = ? WHERE tenant_id = ? AND user_id = ? AND purpose = ? AND message <> ?
		AND used_at IS NULL AND revoked_at IS NULL`, at, l.TenantID, l.UserID, l.Purpose, l.Message).Error)
}

// CreateLink stores a link by its hash and revokes the user's earlier unused links
// of the same purpose, in one transaction. A link without a purpose has its kind's.
func (s *Store) CreateLink(ctx context.Context, l store.Link) error {
	if l.Purpose == "" {
		l.Purpose = l.Kind
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.revokeOthers(tx, l, l.Created.UTC()); err != nil {
			return err
		}
		return s.writeErr(tx.Exec(`INSERT INTO account_links (hash, tenant_id, user_id, message, kind, purpose, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			fmt.Sprintf("%x", l.Hash), l.TenantID, l.UserID, l.Message, l.Kind, l.Purpose, l.Created.UTC(), l.Expires.UTC()).Error)
	})
}

// Link finds a link by hash.
func (s *Store) Link(ctx context.Context, hash []byte) (store.Link, error) {
	var rows []linkRow
	if err := s.db.WithContext(ctx).Raw(`SELECT `+linkCols+` FROM account_links WHERE hash = ?`,
		fmt.Sprintf("%x", hash)).Scan(&rows).Error; err != nil {
		return store.Link{}, s.readErr(err)
	}
	if len(rows) == 0 {
		return store.Link{}, store.ErrNotFound
	}
	return rows[0].link()
}

// UseLink marks the link and its message's other links used, and revokes the
// user's other unused links of the same purpose, in one transaction; the
// conditional update decides between two concurrent uses.
func (s *Store) UseLink(ctx context.Context, hash []byte, at time.Time) (store.Link, error) {
	at = at.UTC().Truncate(time.Microsecond)
	var l store.Link
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE account_links SET used_at = ? WHERE hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires > ?`, at, fmt.Sprintf("%x", hash), at)
		if res.Error != nil {
			return s.writeErr(res.Error)
		}
		if res.RowsAffected != 1 {
			return store.ErrNotFound
		}
		var rows []linkRow
		if err := tx.Raw(`SELECT `+linkCols+` FROM account_links WHERE hash = ?`,
			fmt.Sprintf("%x", hash)).Scan(&rows).Error; err != nil {
			return s.readErr(err)
		}
		if len(rows) == 0 {
			return store.ErrNotFound
		}
		var err error
		if l, err = rows[0].link(); err != nil {
			return err
		}
		if err := s.writeErr(tx.Exec(`UPDATE account_links SET used_at = ? WHERE message = ? AND used_at IS NULL AND revoked_at IS NULL`, at, l.Message).Error); err != nil {
			return err
		}
		return s.revokeOthers(tx, l, at)
	})
	return l, err
}

// ReleaseLink clears the use UseLink recorded on the links of l's message and the
// revocations it made, in one transaction.
func (s *Store) ReleaseLink(ctx context.Context, l store.Link) error {
	if l.UsedAt == nil {
		return nil
	}
	at := l.UsedAt.UTC()
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`UPDATE account_links SET used_at = NULL WHERE message = ? AND used_at = ?`, l.Message, at).Error; err != nil {
			return s.writeErr(err)
		}
		return s.writeErr(tx.Exec(`UPDATE account_links SET revoked_at = NULL WHERE tenant_id = ? AND user_id = ? AND purpose = ? AND message <> ? AND revoked_at = ?`,
			l.TenantID, l.UserID, l.Purpose, l.Message, at).Error)
	})
}
