package middleware

import (
	"context"
	"net"
	"net/http"
	"net/netip"

	"github.com/scimd/scimd/store"
)

// AuditRecorder records the refusal of a change; scim.Service is one.
type AuditRecorder interface {
	AuditRefused(ctx context.Context, a *store.Actor, status int)
}

// Audit gives every request the actor its audit events name (store.Actor): the
// client's address (the connection's peer; X-Forwarded-For is not read, as scimd has
// no trusted-proxy setting) and the request id, to which authentication adds the
// caller's tenant and token and routes that change data add what they mean to do.
// The store records each change with it in the change's transaction. When a request
// marked as a change is answered with an error (4xx or 5xx) and its caller was
// recognised, Audit records the refusal in the caller's tenant, after the handler,
// in a separate insert that never fails the request (after sending a 5xx answer, so
// that a database too slow to record it does not hold the client). Log must run outside Audit,
// for the request id.
func Audit(rec AuditRecorder) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := &store.Actor{ClientAddr: clientIP(r.RemoteAddr), RequestID: RequestID(r.Context())}
			sr := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(sr, r.WithContext(store.WithActor(r.Context(), a)))
			if a.Write && a.TenantID != "" && sr.status >= 400 {
				if sr.status >= 500 {
					// The database may be what failed, and the insert may then wait
					// out its own timeout: send the answer first.
					_ = http.NewResponseController(w).Flush()
				}
				rec.AuditRefused(r.Context(), a, sr.status)
			}
		})
	}
}

// clientIP is the IP address of a "host:port" remote address.
func clientIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().WithZone("").String()
	}
	return host
}
