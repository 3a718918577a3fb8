package gormstore

import (
	"context"
	"sort"
	"time"

	"gorm.io/gorm"

	"github.com/scimd/scimd/store"
)

// RecordQuirks adds counts per (tenant, token, quirk) in one transaction; concurrent
// replicas add up rather than overwrite.
func (s *Store) RecordQuirks(ctx context.Context, tenantID, tokenID string, counts map[string]int) error {
	if len(counts) == 0 {
		return nil
	}
	names := make([]string, 0, len(counts))
	for q := range counts {
		names = append(names, q)
	}
	sort.Strings(names) // a fixed order keeps concurrent upserts from deadlocking
	t := now()
	return s.tx(ctx, func(tx *gorm.DB) error {
		for _, q := range names {
			err := tx.Exec(`INSERT INTO quirk_counts (tenant_id, token_id, quirk, count, last_seen) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (tenant_id, token_id, quirk) DO UPDATE SET count = quirk_counts.count + excluded.count, last_seen = excluded.last_seen`,
				tenantID, tokenID, q, counts[q], t).Error
			if err != nil {
				return s.writeErr(err)
			}
		}
		return nil
	})
}

// QuirkCounts reports a tenant's counts, per token and quirk.
func (s *Store) QuirkCounts(ctx context.Context, tenantID string) ([]store.QuirkCount, error) {
	var rows []struct {
		TokenID  string
		Profile  *string
		Quirk    string
		Count    int64
		LastSeen time.Time
	}
	err := s.db.WithContext(ctx).Raw(`SELECT q.token_id, k.profile, q.quirk, q.count, q.last_seen
		FROM quirk_counts AS q LEFT JOIN api_tokens AS k ON k.id = q.token_id
		WHERE q.tenant_id = ? ORDER BY q.token_id, q.quirk`, tenantID).Scan(&rows).Error
	if err != nil {
		return nil, s.readErr(err)
	}
	out := make([]store.QuirkCount, len(rows))
	for i, r := range rows {
		out[i] = store.QuirkCount{TokenID: r.TokenID, Quirk: r.Quirk, Count: r.Count, LastSeen: r.LastSeen.UTC()}
		if r.Profile != nil {
			out[i].Profile = *r.Profile
		}
	}
	return out, nil
}
