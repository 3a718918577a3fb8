package gormstore

import (
	"context"
	"encoding/json"
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
	var rows []struct {
		ID, TenantID, UserID, Kind, Recipient, Payload, Status string
		Attempts                                               int
		Created                                                time.Time
	}
	err := s.db.WithContext(ctx).Raw(`SELECT id, tenant_id, user_id, kind, recipient, payload, status, attempts, created
		FROM outbox WHERE tenant_id = ? ORDER BY created, id`, tenantID).Scan(&rows).Error
	if err != nil {
		return nil, s.readErr(err)
	}
	out := make([]store.Message, len(rows))
	for i, r := range rows {
		out[i] = store.Message{ID: r.ID, TenantID: r.TenantID, UserID: r.UserID, Kind: r.Kind, Recipient: r.Recipient,
			Payload: []byte(r.Payload), Status: r.Status, Attempts: r.Attempts, Created: r.Created.UTC()}
	}
	return out, nil
}

// SetTenantSettings replaces a tenant's settings.
func (s *Store) SetTenantSettings(ctx context.Context, tenantID string, set store.TenantSettings) error {
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	res := s.db.WithContext(ctx).Exec(`UPDATE tenants SET settings = ? WHERE id = ?`, string(b), tenantID)
	if res.Error != nil {
		return s.writeErr(res.Error)
	}
	if res.RowsAffected == 0 {
		return store.ErrNotFound
	}
	return nil
}
