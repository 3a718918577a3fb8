package compat

import "net/http"

// mountSuperuser registers the superuser family's routes. It is being written; it registers
// nothing yet.
func (c *Compat) mountSuperuser(mux *http.ServeMux) {}
