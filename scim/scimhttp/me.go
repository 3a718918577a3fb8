package scimhttp

import (
	"net/http"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/auth"
	"github.com/scimd/scimd/store"
)

// me serves GET, PUT, PATCH and DELETE /Me (RFC 7644 §3.11) for a token bound to a
// user: the request is served as the same request to /Users/{id}, so its body,
// headers, ETag, If-Match and errors are exactly those of that route, and
// meta.location keeps naming /Users/{id}. A token bound to no user is 501, which
// §3.11 allows.
func (s *Server) me(w http.ResponseWriter, r *http.Request) error {
	p, _ := auth.FromContext(r.Context())
	if p.UserID == "" {
		return &httpError{status: http.StatusNotImplemented, detail: "/Me needs a token bound to a user (scimd token create --user USER_ID); this token is bound to none"}
	}
	if a := store.ActorFrom(r.Context()); a != nil && a.Write {
		a.ResourceID = p.UserID // for the event of a refusal
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = Prefix + s.svc.Types().Of(scim.UserKind).Endpoint + "/" + p.UserID
	r2.URL.RawPath = ""
	mw := &meWriter{ResponseWriter: w}
	s.mux.ServeHTTP(mw, r2)
	if mw.notFound {
		return &scim.Error{Kind: scim.KindNotFound, Detail: "the user this token is bound to (" + p.UserID + ") no longer exists"}
	}
	return nil
}

// meNotImplemented answers POST /Me: self-registration is not offered.
func meNotImplemented(http.ResponseWriter, *http.Request) error {
	return &httpError{status: http.StatusNotImplemented, detail: "POST /Me (self-registration) is not supported by this server; create users with POST /Users"}
}

// meWriter passes a response through, except a 404, which it holds back so that /Me
// can say that the token's user is gone.
type meWriter struct {
	http.ResponseWriter
	notFound bool
}

func (w *meWriter) WriteHeader(status int) {
	if status == http.StatusNotFound {
		w.notFound = true
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *meWriter) Write(b []byte) (int, error) {
	if w.notFound {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *meWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
