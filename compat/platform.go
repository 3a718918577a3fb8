package compat

import "net/http"

// mountPlatform registers the platform family's routes. It is being written; it registers
// nothing yet.
func (c *Compat) mountPlatform(mux *http.ServeMux) {}
