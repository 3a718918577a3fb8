package gormstore

import (
	"context"

	"gorm.io/gorm"

	"github.com/scimd/scimd/store"
)

// TokenEpoch returns token_epoch (migration 11): triggers move it in the
// transaction of every change to a token or tenant that a principal is made of
// (revocation, expiry, scopes, tenant settings, deletion), however the change is
// made. A process that caches principals polls it to learn that its cache is stale.
func (s *Store) TokenEpoch(ctx context.Context) (int64, error) {
	return againIfShared(ctx, func() (int64, error) {
		var n int64
		err := s.prep.WithContext(ctx).Raw(`SELECT n FROM token_epoch WHERE id = 1`).Scan(&n).Error
		return n, ctxErr(ctx, s.readErr(err))
	})
}

// RevokeToken revokes the tenant's token id, with an audit event in the same
// transaction. Revoking a revoked token changes nothing and is not an error; an
// unknown id (or one of another tenant) is store.ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, tenantID, id string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var ids []string
		if err := tx.Raw(`SELECT id FROM api_tokens WHERE tenant_id = ? AND id = ?`+s.d.ForUpdate(), tenantID, id).Scan(&ids).Error; err != nil {
			return s.readErr(err)
		}
		if len(ids) == 0 {
			return store.ErrNotFound
		}
		res := tx.Exec(`UPDATE api_tokens SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL`, now(), tenantID, id)
		if res.Error != nil {
			return s.writeErr(res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		e := store.ActorFrom(ctx).Change(tenantID, store.OpTokenRevoke)
		e.ResourceType, e.ResourceID = store.AuditToken, id
		return s.audit(tx, e)
	})
}
