// Package auth authenticates requests by API token (RFC 6750 Bearer, or HTTP Basic
// with the token as password) and puts the token's tenant and scopes into the request
// context. SCIM and compat routes share it; each passes its own error writer.
package auth

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/scimd/scimd/scim"
)

// Authenticator resolves a token secret to a principal; scim.Tokens is one.
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (scim.Principal, error)
}

// ErrorWriter writes err in the shape of the routes being protected.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, err error)

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p scim.Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal the middleware stored.
func FromContext(ctx context.Context) (scim.Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(scim.Principal)
	return p, ok
}

// Credentials returns the token secret of a request: the Bearer token, or the
// password of HTTP Basic credentials (any user name).
func Credentials(r *http.Request) string {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, rest, _ := strings.Cut(h, " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "bearer":
		return rest
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return ""
		}
		_, pass, _ := strings.Cut(string(raw), ":")
		return pass
	}
	return ""
}

// Require authenticates every request and lets through those whose token holds
// scope. A missing or unknown token is 401 with WWW-Authenticate; a token without the
// scope is 403.
func Require(a Authenticator, scope string, onError ErrorWriter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := a.Authenticate(r.Context(), Credentials(r))
			if err != nil {
				if scim.AsError(err).Kind == scim.KindUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="scimd", Basic realm="scimd"`)
				}
				onError(w, r, err)
				return
			}
			if !p.Has(scope) {
				onError(w, r, &scim.Error{Kind: scim.KindForbidden, Detail: "this token lacks the " + scope + " scope"})
				return
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}
