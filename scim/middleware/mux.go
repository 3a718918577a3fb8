package middleware

import "net/http"

// Mux is where routes are registered. *http.ServeMux is one; tests use another that
// also lists the patterns, so that a route added without a test is noticed.
type Mux interface {
	Handle(pattern string, handler http.Handler)
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

var _ Mux = (*http.ServeMux)(nil)
