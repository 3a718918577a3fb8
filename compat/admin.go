package compat

import "net/http"

// mountAdmin registers the admin family's routes. It is being written; it registers
// nothing yet.
func (c *Compat) mountAdmin(mux *http.ServeMux) {}
