package adminhttp

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/auth"
	"github.com/scimd/scimd/scim/middleware"
)

// Prefix is where the administration API is mounted.
const Prefix = "/admin/v1"

// Server serves the administration API.
type Server struct {
	audit *scim.AuditLog
	authn auth.Authenticator
	log   *zap.Logger
	mux   *http.ServeMux
}

// New returns the administration API handler, for mounting at Prefix+"/".
func New(audit *scim.AuditLog, authn auth.Authenticator, log *zap.Logger) http.Handler {
	s := &Server{audit: audit, authn: authn, log: log.Named("admin"), mux: http.NewServeMux()}
	s.mux.HandleFunc(Prefix+"/audit", s.route(http.MethodGet, s.auditEvents))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &apiError{status: http.StatusNotFound, code: "not_found", message: "no administration endpoint at " + r.URL.Path + "; see " + Prefix + "/audit"})
	})
	return middleware.Recover(s.log, s.writeError)(s.mux)
}

// apiError is a refusal with its status and machine-readable code.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_request", message: fmt.Sprintf(format, args...)}
}

// route serves one method (HEAD too for GET) of a path for a token of the audit or
// admin scope: no or an unknown token is 401, another scope 403.
func (s *Server) route(method string, h func(w http.ResponseWriter, r *http.Request, p scim.Principal) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			s.writeError(w, r, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: r.Method + " is not allowed here; use " + method})
			return
		}
		p, err := s.authn.Authenticate(r.Context(), auth.Credentials(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !p.Has(scim.ScopeAudit) && !p.Has(scim.ScopeAdmin) {
			s.writeError(w, r, &scim.Error{Kind: scim.KindForbidden, Detail: "reading the audit log needs a token with the " + scim.ScopeAudit + " (or " + scim.ScopeAdmin + ") scope"})
			return
		}
		if method != http.MethodGet {
			// Sandbox tokens are read-only on every route family.
			if err := p.MayChange(); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		middleware.NotePrincipal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r, p); err != nil {
				s.writeError(w, r, err)
			}
		})).ServeHTTP(w, r)
	}
}

// auditEvents serves GET /admin/v1/audit?since&until&limit&cursor: a page of the
// token's tenant's audit events, oldest first, as {"events": [...], "nextCursor"}.
// since (inclusive) and until (exclusive) are RFC 3339 times, both optional; limit
// is 1 to 1000 (default 100); nextCursor, present when more events follow, is
// passed as cursor (with the same since and until) for the next page.
func (s *Server) auditEvents(w http.ResponseWriter, r *http.Request, p scim.Principal) error {
	v := r.URL.Query()
	var q scim.AuditQuery
	var err error
	if q.Since, err = queryTime(v.Get("since"), "since"); err != nil {
		return err
	}
	if q.Until, err = queryTime(v.Get("until"), "until"); err != nil {
		return err
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil || n < 1 || n > scim.MaxAuditLimit {
			return badRequest("limit must be an integer from 1 to %d, not %q", scim.MaxAuditLimit, l)
		}
		q.Limit = n
	}
	q.Cursor = v.Get("cursor")
	page, err := s.audit.Events(r.Context(), p.TenantID, q)
	if err != nil {
		return err
	}
	events := make([]scim.AuditRecord, len(page.Events))
	for i, e := range page.Events {
		events[i] = scim.RecordOf(e)
	}
	out := map[string]any{"events": events}
	if page.NextCursor != "" {
		out["nextCursor"] = page.NextCursor
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// queryTime reads an RFC 3339 time; "" is the zero time.
func queryTime(raw, name string) (time.Time, error) {
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, badRequest("%s must be an RFC 3339 time such as 2026-11-01T00:00:00Z, not %q", name, raw)
	}
	return t, nil
}

// writeError is the API's one error writer: {"error": code, "message": text}. An
// unexpected error is a 500 naming only an error id, which is logged with it.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		e := scim.AsError(err)
		ae = &apiError{message: e.Detail}
		switch e.Kind {
		case scim.KindUnauthorized:
			ae.status, ae.code = http.StatusUnauthorized, "unauthorized"
			w.Header().Set("WWW-Authenticate", `Bearer realm="scimd", Basic realm="scimd"`)
		case scim.KindForbidden:
			ae.status, ae.code = http.StatusForbidden, "forbidden"
		case scim.KindInvalidCursor:
			ae.status, ae.code = http.StatusBadRequest, "invalid_cursor"
		case scim.KindInvalidValue:
			ae.status, ae.code = http.StatusBadRequest, "invalid_request"
		case scim.KindTooManyRequests:
			ae.status, ae.code = http.StatusTooManyRequests, "too_many_requests"
		case scim.KindUnavailable:
			ae.status, ae.code = http.StatusServiceUnavailable, "unavailable"
			w.Header().Set("Retry-After", "5")
		default:
			id := errorID()
			ae.status, ae.code, ae.message = http.StatusInternalServerError, "internal", "internal error (error id "+id+")"
			s.log.Error("request failed", zap.String("error_id", id), zap.String("request_id", middleware.RequestID(r.Context())), zap.Error(err))
		}
	}
	if ae.status < 500 {
		s.log.Debug("request refused", zap.String("request_id", middleware.RequestID(r.Context())), zap.Int("status", ae.status), zap.String("code", ae.code))
	}
	if v, ok := scim.RetryAfter(err); ok {
		w.Header().Set("Retry-After", v)
	}
	writeJSON(w, ae.status, map[string]string{"error": ae.code, "message": ae.message})
}

func errorID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writeJSON answers with a JSON body.
var writeJSON = middleware.WriteJSON
