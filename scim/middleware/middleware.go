// Package middleware holds the HTTP middleware every scimd route shares: a request id,
// one zap access-log line per request, security headers, panic recovery and a request
// body limit. Error
// bodies are written by the caller's writer, so SCIM and compat routes keep their
// own error shapes.
package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/scimd/scimd/scim/auth"
)

type ctxKey struct{}

// RequestID returns the request's id, or "" outside a request.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

var validID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// statusRecorder remembers the status and size of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Log gives every request an id (the client's X-Request-Id when it is well-formed),
// echoes it in the response, and writes one access-log line when the request ends:
// at error for 500s, warn for 503, info for the rest. The line's path is the
// request's path, except on a route whose pattern has wildcards (/users/{email},
// /scim/update-user/{email}): there it is the pattern (see Route), because such a
// path carries what the client named — an email address, personal data — into every
// line. The query string is never logged.
func Log(log *zap.Logger) func(http.Handler) http.Handler {
	log = log.Named("http")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get("X-Request-Id")
			if !validID.MatchString(id) {
				b := make([]byte, 8)
				_, _ = rand.Read(b)
				id = hex.EncodeToString(b)
			}
			w.Header().Set("X-Request-Id", id)
			rec := &statusRecorder{ResponseWriter: w}
			ctx := context.WithValue(r.Context(), ctxKey{}, id)
			// The principal is set further in; a holder lets the log line see it.
			holder := &principalHolder{}
			ctx = context.WithValue(ctx, holderKey{}, holder)
			next.ServeHTTP(rec, r.WithContext(ctx))
			// 500 is a bug and 503 an outage; a 501 answers a request for something
			// this server does not offer, which is the client's business.
			lvl := zapcore.InfoLevel
			switch {
			case rec.status == http.StatusServiceUnavailable:
				lvl = zapcore.WarnLevel
			case rec.status >= 500 && rec.status != http.StatusNotImplemented:
				lvl = zapcore.ErrorLevel
			}
			path := r.URL.Path
			if p := patternPath(holder.pattern); p != "" {
				path = p
			}
			fields := []zap.Field{
				zap.String("request_id", id),
				zap.String("method", r.Method),
				zap.String("path", path),
				zap.Int("status", rec.status),
				zap.Int("bytes", rec.bytes),
				zap.Duration("duration", time.Since(start)),
				zap.String("remote_addr", r.RemoteAddr),
			}
			if holder.tenantID != "" {
				fields = append(fields, zap.String("tenant_id", holder.tenantID), zap.String("token_id", holder.tokenID))
			}
			log.Check(lvl, "request").Write(fields...)
		})
	}
}

type holderKey struct{}

// principalHolder is what the access log learns further in: the authenticated tenant
// and token (NotePrincipal) and the matched route pattern (Route).
type principalHolder struct{ tenantID, tokenID, pattern string }

// Route wraps the ServeMux that serves every route so that the access log learns the
// pattern that matched the request: the mux sets Request.Pattern on the request it
// is handed, which is the one Route passed and reads back.
func Route(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if h, ok := r.Context().Value(holderKey{}).(*principalHolder); ok {
			h.pattern = r.Pattern
		}
	})
}

// patternPath is the path part of a ServeMux pattern ("GET /users/{email}" gives
// "/users/{email}") when it has a wildcard that matches part of a path, and "" for
// a pattern without one (its path is no more than the pattern says) or no pattern.
func patternPath(pattern string) string {
	if !strings.Contains(strings.ReplaceAll(pattern, "{$}", ""), "{") {
		return ""
	}
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		return pattern[i:]
	}
	return ""
}

// NotePrincipal records the authenticated tenant and token for the access log.
func NotePrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := r.Context().Value(holderKey{}).(*principalHolder); ok {
			if p, ok := auth.FromContext(r.Context()); ok {
				h.tenantID, h.tokenID = p.TenantID, p.TokenID
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Deadline bounds each request's context to d (no bound when d <= 0), so that
// database work a request started is cancelled when the request has taken too
// long; the route's error writer answers 503 (scim.KindUnavailable).
func Deadline(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if d <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// Recover turns a panic into a logged error and the caller's 500 response.
func Recover(log *zap.Logger, onError func(w http.ResponseWriter, r *http.Request, err error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					onError(w, r, fmt.Errorf("panic: %v", v))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// LimitBody caps request bodies at max bytes; reading past it fails with
// *http.MaxBytesError, which handlers answer with 413.
func LimitBody(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, max)
			next.ServeHTTP(w, r)
		})
	}
}

// SecurityHeaders sets headers that keep browsers and caches from misusing any
// answer: X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer,
// X-Frame-Options: DENY, a Content-Security-Policy that allows nothing to load or
// frame the answer, Cache-Control: no-store (answers carry resources, tokens and
// secrets), and with tls Strict-Transport-Security (RFC 6797) for a year. They are
// set before the handler runs, so a handler that needs another value (the HTML
// account pages set their own Content-Security-Policy) replaces it.
func SecurityHeaders(tls bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
			h.Set("Cache-Control", "no-store")
			if tls {
				h.Set("Strict-Transport-Security", "max-age=31536000")
			}
			next.ServeHTTP(w, r)
		})
	}
}
