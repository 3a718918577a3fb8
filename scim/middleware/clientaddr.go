package middleware

import (
	"net/http"

	"github.com/scimd/scimd/scim"
)

// ClientAddr puts the address of the connection's peer into the request context
// (scim.WithClientAddr, keyed by scim.ClientKey), for throttling failed
// authentications per client. It reads the connection only, never
// X-Forwarded-For or Forwarded: scimd has no trusted-proxy setting, and a header
// any client can send would let a guesser pick a fresh address for every attempt.
func ClientAddr(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(scim.WithClientAddr(r.Context(), scim.ClientKey(r.RemoteAddr))))
	})
}
