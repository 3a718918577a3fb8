package compat

import "net/http"

// mountOnboarding registers the onboarding family's routes. It is being written; it registers
// nothing yet.
func (c *Compat) mountOnboarding(mux *http.ServeMux) {}
