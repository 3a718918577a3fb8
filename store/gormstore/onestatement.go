package gormstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"go.uber.org/zap"
	"gorm.io/gorm"

	"github.com/scimd/scimd/store"
)

// The common writes, on a database that takes data-modifying statements inside
// WITH (see ChainedWrites), are one statement each, run outside a transaction:
// the database applies a single statement as a whole or not at all, so the row,
// its count and its audit event still commit together, in one round trip
// instead of BEGIN, a statement for each and COMMIT.

// chained reports whether s's database takes those statements.
func (s *Store) chained() bool {
	c, ok := s.d.(ChainedWrites)
	return ok && c.ChainedWrites()
}

// createOne writes r (a user, or a group without members, with no outbox
// message), one more to its tenant's count and the event of its creation in one
// statement. Count and event read the new row, so they are written after it, and
// only if it was: a taken userName fails the whole statement with a unique
// violation, and nothing is written.
func (s *Store) createOne(ctx context.Context, r *store.Resource) error {
	var insert string
	var args []any
	if r.Kind == store.KindGroup {
		insert = `INSERT INTO "groups" (tenant_id, id, external_id, display_name, display_name_lower, data, version, created, last_modified)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
		args = []any{r.TenantID, r.ID, r.ExternalID, r.DisplayName, lowerPtr(r.DisplayName), string(r.Doc), r.Version, r.Created, r.LastModified}
	} else {
		insert = `INSERT INTO users (tenant_id, id, external_id, user_name, user_name_lower, display_name, display_name_lower, active, data, password_hash, version, created, last_modified)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
		args = []any{r.TenantID, r.ID, r.ExternalID, r.UserName, strings.ToLower(r.UserName), r.DisplayName, lowerPtr(r.DisplayName),
			r.Active, string(r.Doc), r.PasswordHash, r.Version, r.Created, r.LastModified}
	}
	q := `WITH r AS (` + insert + ` RETURNING 1),
		c AS (INSERT INTO resource_counts (tenant_id, kind, shard, n) SELECT ?, ?, ?, 1 FROM r
			ON CONFLICT (tenant_id, kind, shard) DO UPDATE SET n = resource_counts.n + excluded.n)
		INSERT INTO audit_events (` + auditCols + `) SELECT ` + auditParams + ` FROM r`
	e := changeEvent(ctx, r.TenantID, store.OpCreate, string(r.Kind), r.ID, nil, version(r.Version))
	args = append(args, r.TenantID, string(r.Kind), rand.IntN(countShards))
	args = append(args, auditValues(&e, now())...)
	err := s.again(ctx, func() error { return s.prep.WithContext(ctx).Exec(q, args...).Error })
	return s.stmtErr(ctx, s.writeErr(err))
}

// optimisticAttempts bounds how often updateOne reads a resource, runs the
// updater and finds that another write changed the row first, before Update
// takes the row's lock instead.
const optimisticAttempts = 3

// updateOne is Update of a user without a lock: it reads the user as Get does
// (with its groups), runs fn, and writes the result with its audit event on
// condition that the version is still the one read. Where the database chains
// writes (ChainedWrites) that is one statement; elsewhere (SQLite) a transaction
// of the conditional UPDATE and the event, so the database's single write lock is
// held for two statements, not for the read and fn too. When another write moved
// the version first (or deleted the row) it reads and runs fn again. It reports
// done false, having written nothing, when fn asks for more than the row and its
// event (outbox messages) or the row kept changing under it: Update then runs the
// locked transaction, and fn again.
func (s *Store) updateOne(ctx context.Context, tenantID, id string, fn store.Updater) (out *store.Resource, done bool, err error) {
	const kind = store.KindUser
	for range optimisticAttempts {
		cur, err := againIfShared(ctx, func() (*store.Resource, error) {
			return s.getRow(s.prep.WithContext(ctx), tenantID, kind, id, "", true)
		})
		if err != nil {
			return nil, true, s.stmtErr(ctx, err)
		}
		prev := cur.Version
		_, err = fn(cur) // a user has no members to change
		unchanged := errors.Is(err, store.ErrUnchanged)
		if err != nil && !unchanged {
			return nil, true, s.stmtErr(ctx, err)
		}
		if len(cur.Outbox) > 0 {
			return nil, false, nil
		}
		cur.TenantID, cur.Kind, cur.ID = tenantID, kind, id
		if unchanged {
			return cur, true, nil // nothing to write (see store.Updater)
		}
		cur.Version = prev + 1
		cur.LastModified = now()
		args := []any{cur.ExternalID, cur.UserName, strings.ToLower(cur.UserName), cur.DisplayName, lowerPtr(cur.DisplayName), cur.Active,
			string(cur.Doc), cur.PasswordHash, cur.Version, cur.LastModified, tenantID, id, prev}
		const update = `UPDATE users SET external_id = ?, user_name = ?, user_name_lower = ?, display_name = ?, display_name_lower = ?, active = ?,
				data = ?, password_hash = ?, version = ?, last_modified = ? WHERE tenant_id = ? AND id = ? AND version = ?`
		e := changeEvent(ctx, tenantID, store.OpUpdate, string(kind), id, version(prev), version(cur.Version))
		if !s.chained() {
			err := s.tx(ctx, func(tx *gorm.DB) error {
				res := tx.Exec(update, args...)
				if res.Error != nil {
					return s.writeErr(res.Error)
				}
				if res.RowsAffected != 1 {
					return errVersionMoved
				}
				return s.audit(tx, e)
			})
			switch {
			case errors.Is(err, errVersionMoved): // read and write again
			case err != nil:
				return nil, true, err
			default:
				return cur, true, nil
			}
			continue
		}
		q := `WITH u AS (` + update + ` RETURNING 1)
			INSERT INTO audit_events (` + auditCols + `) SELECT ` + auditParams + ` FROM u`
		args = append(args, auditValues(&e, now())...)
		res := s.prep.WithContext(ctx).Exec(q, args...)
		switch {
		case sharedPrepareFailed(ctx, res.Error): // it did not run: read and write again
		case res.Error != nil && s.d.IsRetryable(res.Error) && ctx.Err() == nil:
			s.log.Debug("statement conflict, retrying", zap.Error(res.Error))
		case res.Error != nil:
			return nil, true, s.stmtErr(ctx, s.writeErr(res.Error))
		case res.RowsAffected == 1:
			return cur, true, nil
		}
	}
	return nil, false, nil
}

// errVersionMoved rolls back updateOne's transaction when another write changed
// the row after it was read.
var errVersionMoved = errors.New("the version moved since the read")

// stmtErr is what a failed transaction (tx) or statement run on its own means: the
// end of the request's context when it ended — the request's deadline passed, or
// its client left, whatever the database reported (SQLite says "interrupted") —
// or the database being unavailable.
func (s *Store) stmtErr(ctx context.Context, err error) error {
	if end := ended(ctx); err != nil && end != nil && !errors.Is(err, end) {
		return fmt.Errorf("%w: %v", end, err)
	}
	if err != nil && (s.unavailable(err) || s.d.IsRetryable(err)) {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}
