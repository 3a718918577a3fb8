package gormstore

import (
	"context"
	"errors"

	"github.com/scimd/scimd/store"
)

// sharedPrepareFailed reports whether err is a context's end although ctx has not
// ended: gorm prepares a statement once for all the callers that want it at the same
// moment, under the first caller's context, so when that caller's deadline passes
// during the preparation the others receive its error. Their work never ran, and
// runs again under their own context.
func sharedPrepareFailed(ctx context.Context, err error) bool {
	return err != nil && !store.Expired(ctx) && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled))
}

// againIfShared runs f, and once more when it failed only because of another
// caller's context (sharedPrepareFailed). f is a read, or a single statement that
// did not run.
func againIfShared[T any](ctx context.Context, f func() (T, error)) (T, error) {
	v, err := f()
	if sharedPrepareFailed(ctx, err) {
		v, err = f()
	}
	return v, err
}
