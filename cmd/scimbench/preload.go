package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/postgres"
	"github.com/scimd/scimd/store/sqlite"
)

// preload loads -preload users into scimd's tenant and as many into the baseline
// before the timed scenarios, untimed, so that a large profile does not spend hours
// creating users over HTTP. scimd's users go through scimd's own service and store
// in this process (the same validation, document, indexes and counters as a POST);
// the baseline's through its prepared insert, a thousand to a transaction.
func (b *bench) preload(ctx context.Context) error {
	n := b.cfg.preload
	if n == 0 {
		return nil
	}
	if b.cfg.database == "" {
		return fmt.Errorf("-preload needs -database (or -scimd)")
	}
	start := time.Now()
	var st *gormstore.Store
	var err error
	if p, ok := strings.CutPrefix(b.cfg.database, "sqlite://"); ok {
		st, err = sqlite.Open(p, zap.NewNop())
	} else {
		st, err = postgres.Open(b.cfg.database, zap.NewNop())
	}
	if err != nil {
		return fmt.Errorf("preload: open the database: %w", err)
	}
	defer st.Close()
	p, err := scim.NewTokens(st).Verify(ctx, b.cfg.token)
	if err != nil {
		return fmt.Errorf("preload: the token: %w", err)
	}
	svc := scim.NewService(st, zap.NewNop())
	var next, done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range b.cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				raw, _ := json.Marshal(userDoc(b.runID, i))
				var body map[string]any
				_ = json.Unmarshal(raw, &body)
				r, err := svc.Create(ctx, p.TenantID, scim.UserKind, body, scim.Projection{})
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("preload user %d: %w", i, err) })
					return
				}
				b.ids[i] = r.ID
				if d := done.Add(1); d%50000 == 0 {
					fmt.Fprintf(b.cfg.progress, "  preloaded %d users into scimd (%.0f/s)\n", d, float64(d)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprintf(b.cfg.progress, "  preloaded %d users into scimd in %s\n", n, time.Since(start).Round(time.Second))
	if b.raw == nil {
		return nil
	}
	if err := b.preloadRaw(ctx, "the baseline", b.raw.tenant, b.rawIDs); err != nil {
		return err
	}
	if b.naive == nil {
		return nil
	}
	return b.preloadRaw(ctx, "the naive stack's tenant", b.raw.naiveTenant, b.naiveIDs)
}

// preloadRaw inserts -preload users into tenant with the baseline's prepared
// insert, a thousand to a transaction, and records their ids in ids.
func (b *bench) preloadRaw(ctx context.Context, what, tenant string, ids []string) error {
	n := b.cfg.preload
	start := time.Now()
	for lo := 0; lo < n; lo += 1000 {
		tx, err := b.raw.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		ins := tx.StmtContext(ctx, b.raw.insUser)
		for i := lo; i < min(lo+1000, n); i++ {
			id := uuid.NewString()
			if err := b.raw.insertUserWith(ctx, ins, tenant, b.runID, i, id); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("preload user %d into %s: %w", i, what, err)
			}
			ids[i] = id
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.cfg.progress, "  preloaded %d users into %s in %s\n", n, what, time.Since(start).Round(time.Second))
	return nil
}
