package compat

import "net/http"

// mountPartner registers the partner family's routes. It is being written; it registers
// nothing yet.
func (c *Compat) mountPartner(mux *http.ServeMux) {}
