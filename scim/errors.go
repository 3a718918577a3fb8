package scim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scimd/scimd/store"
)

// ErrorKind classifies an error the way RFC 7644 §3.12 does.
type ErrorKind int

// The error kinds. Those with a scimType in RFC 7644 §3.12 Table 9 say so.
const (
	KindInternal        ErrorKind = iota // 500
	KindInvalidValue                     // 400 invalidValue
	KindInvalidSyntax                    // 400 invalidSyntax
	KindInvalidFilter                    // 400 invalidFilter
	KindInvalidPath                      // 400 invalidPath
	KindNoTarget                         // 400 noTarget
	KindMutability                       // 400 mutability
	KindTooMany                          // 400 tooMany
	KindUniqueness                       // 409 uniqueness
	KindNotFound                         // 404
	KindPrecondition                     // 412
	KindUnauthorized                     // 401
	KindForbidden                        // 403
	KindUnavailable                      // 503
	KindInvalidCursor                    // 400 invalidCursor (RFC 9865)
	KindExpiredCursor                    // 400 expiredCursor (RFC 9865)
	KindTooManyRequests                  // 429 (RFC 6585 §4), with Error.RetryAfter

	numErrorKinds // keep last: ErrorKinds counts up to it
)

// ErrorKinds lists every error kind, so that each edge's error table can be checked
// to have a row for all of them (a kind added above is listed without more ado).
func ErrorKinds() []ErrorKind {
	out := make([]ErrorKind, numErrorKinds)
	for i := range out {
		out[i] = ErrorKind(i)
	}
	return out
}

// Error is the error every Service method returns. Detail is safe to show to the
// client; Err, when set, is the cause and is only logged.
type Error struct {
	Kind   ErrorKind
	Detail string
	Err    error
	// RetryAfter, for KindTooManyRequests, is how long the client should wait;
	// error writers send it as Retry-After (see RetryAfter).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Detail + ": " + e.Err.Error()
	}
	return e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// memberDetail says why members were refused (RFC 7644 §3.12 invalidValue): the first
// value that names no user or group of the tenant, in the order the client sent them,
// so the client can fix its request, and how many others there are, without echoing a
// list that may hold thousands of ids.
func memberDetail(me *store.MemberError) string {
	if me.Self || len(me.Missing) == 0 {
		return "members: " + me.Error()
	}
	d := fmt.Sprintf("members: no user or group with id %q", me.Missing[0])
	switch n := len(me.Missing) - 1; n {
	case 0:
	case 1:
		d += " (and 1 other unknown id)"
	default:
		d += fmt.Sprintf(" (and %d other unknown ids)", n)
	}
	return d
}

// AsError returns err as an *Error, mapping store sentinels to their kinds; any other
// error becomes KindInternal with a generic detail.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var fe *store.FilterError
	var me *store.MemberError
	var se *store.SortError
	switch {
	case errors.As(err, &se):
		return &Error{Kind: KindInvalidValue, Detail: "sortBy: " + se.Msg, Err: err}
	case errors.As(err, &fe):
		return &Error{Kind: KindInvalidFilter, Detail: fe.Msg, Err: err}
	case errors.As(err, &me):
		return &Error{Kind: KindInvalidValue, Detail: memberDetail(me), Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Kind: KindNotFound, Detail: "resource not found", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Kind: KindUniqueness, Detail: "a resource with this value already exists", Err: err}
	case errors.Is(err, store.ErrPrecondition):
		return &Error{Kind: KindPrecondition, Detail: "the resource was changed by someone else; read it again and retry", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: KindUnavailable, Detail: "the request did not finish within the server's time limit; retry later, or ask for less (a smaller count, fewer operations)", Err: err}
	case errors.Is(err, store.ErrBadSettings):
		// The error names the tenant for the log; the client learns only that its
		// tenant cannot be served (never under default settings).
		return &Error{Kind: KindUnavailable, Detail: "the tenant's settings cannot be read; the server's operator must repair them", Err: err}
	case errors.Is(err, store.ErrUnavailable):
		return &Error{Kind: KindUnavailable, Detail: "the database is unavailable; retry later", Err: err}
	}
	return &Error{Kind: KindInternal, Detail: "internal error", Err: err}
}
