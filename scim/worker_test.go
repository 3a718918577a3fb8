package scim

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestRunWorkerQuiet: a worker whose steps succeed, and whose last step is cut short
// by shutdown, logs no warning or error: an operator's alerts on those levels see only
// real failures.
func TestRunWorkerQuiet(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		runWorker(ctx, zap.New(core), "test", time.Millisecond, func(ctx context.Context) (int, error) {
			calls++
			if calls < 4 {
				return calls % 2, nil // work done, then nothing to do
			}
			cancel()
			return 0, ctx.Err()
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("runWorker did not return after its context ended")
	}
	if calls != 4 {
		t.Errorf("%d steps, want 4", calls)
	}
	for _, e := range logs.All() {
		t.Errorf("logged %s %q %v", e.Level, e.Message, e.ContextMap())
	}
}
