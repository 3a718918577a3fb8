package scim

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// runWorker calls step until ctx ends: again at once after a step that did some
// work, after poll when there was nothing to do or the step failed. A database
// outage is logged as a warning (the next step retries), any other failure as an
// error. The task and delivery workers share it.
func runWorker(ctx context.Context, log *zap.Logger, name string, poll time.Duration, step func(context.Context) (int, error)) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		n, err := step(ctx)
		switch {
		case err == nil || ctx.Err() != nil:
		case AsError(err).Kind == KindUnavailable:
			log.Warn(name+" step deferred: database unavailable", zap.Error(err))
		default:
			log.Error(name+" step failed", zap.Error(err))
		}
		wait := poll
		if n > 0 && err == nil {
			wait = 0
		}
		timer.Reset(wait)
	}
}
