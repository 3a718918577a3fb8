package scimhttp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"

	scimerrors "github.com/elimity-com/scim/errors"
	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/middleware"
	"github.com/scimd/scimd/store"
)

// Status maps an error kind to its HTTP status and RFC 7644 §3.12 scimType; every
// route that answers in SCIM's error format uses it.
func Status(k scim.ErrorKind) (int, scimerrors.ScimType) {
	switch k {
	case scim.KindInvalidValue:
		return http.StatusBadRequest, scimerrors.ScimTypeInvalidValue
	case scim.KindInvalidSyntax:
		return http.StatusBadRequest, scimerrors.ScimTypeInvalidSyntax
	case scim.KindInvalidFilter:
		return http.StatusBadRequest, scimerrors.ScimTypeInvalidFilter
	case scim.KindInvalidPath:
		return http.StatusBadRequest, scimerrors.ScimTypeInvalidPath
	case scim.KindNoTarget:
		return http.StatusBadRequest, scimerrors.ScimTypeNoTarget
	case scim.KindMutability:
		return http.StatusBadRequest, scimerrors.ScimTypeMutability
	case scim.KindTooMany:
		return http.StatusBadRequest, scimerrors.ScimTypeTooMany
	case scim.KindUniqueness:
		return http.StatusConflict, scimerrors.ScimTypeUniqueness
	case scim.KindNotFound:
		return http.StatusNotFound, ""
	case scim.KindPrecondition:
		return http.StatusPreconditionFailed, ""
	case scim.KindUnauthorized:
		return http.StatusUnauthorized, ""
	case scim.KindForbidden:
		return http.StatusForbidden, ""
	case scim.KindUnavailable:
		return http.StatusServiceUnavailable, ""
	case scim.KindTooManyRequests:
		return http.StatusTooManyRequests, ""
	case scim.KindInvalidCursor:
		return http.StatusBadRequest, "invalidCursor"
	case scim.KindExpiredCursor:
		return http.StatusBadRequest, "expiredCursor"
	}
	return http.StatusInternalServerError, ""
}

// httpError is an error that carries its own status (405, 413, 415, 501).
type httpError struct {
	status int
	detail string
}

func (e *httpError) Error() string { return e.detail }

// writeError is the one place SCIM errors become HTTP. An unexpected error is logged
// with an id and answered with that id only, never its text.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var body scimerrors.ScimError
	if he, ok := err.(*httpError); ok {
		body = scimerrors.ScimError{Status: he.status, Detail: he.detail}
	} else {
		e := scim.AsError(err)
		st, typ := Status(e.Kind)
		body = scimerrors.ScimError{Status: st, ScimType: typ, Detail: e.Detail}
		switch {
		case store.Expired(r.Context()) && !errors.Is(r.Context().Err(), context.Canceled):
			// The request ran out of its time (--request-timeout): the database
			// work was cancelled; say so, and log it once.
			s.log.Warn("request timed out", zap.String("request_id", middleware.RequestID(r.Context())), zap.Error(err))
			st, typ = Status(scim.KindUnavailable)
			body = scimerrors.ScimError{Status: st, ScimType: typ, Detail: scim.AsError(context.DeadlineExceeded).Detail}
		case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
			// The client went away (or its deadline passed): nobody reads this
			// answer, and it is no server fault to log as one.
			s.log.Debug("request abandoned by the client", zap.String("request_id", middleware.RequestID(r.Context())), zap.Error(err))
			writeJSON(w, http.StatusServiceUnavailable, scimerrors.ScimError{Status: http.StatusServiceUnavailable, Detail: "the request was cancelled"})
			return
		case st >= 500:
			id := errorID()
			body.Detail = e.Detail + " (error id " + id + ")"
			s.log.Error("request failed", zap.String("error_id", id), zap.String("request_id", middleware.RequestID(r.Context())), zap.Error(err))
		default:
			s.log.Debug("request refused", zap.String("request_id", middleware.RequestID(r.Context())), zap.Int("status", st), zap.String("detail", e.Detail))
		}
	}
	auditReason(r, body.Status, string(body.ScimType))
	if body.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	if v, ok := scim.RetryAfter(err); ok {
		w.Header().Set("Retry-After", v)
	}
	writeJSON(w, body.Status, body)
}

func errorID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writeJSON writes v as application/scim+json (RFC 7644 §3.1).
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := appendJSON(make([]byte, 0, 1024), v)
	if err != nil {
		http.Error(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"500","detail":"cannot encode the response"}`, http.StatusInternalServerError)
		return
	}
	middleware.WriteBody(w, status, "application/scim+json", b)
}
