package middleware

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// WriteJSON answers status with v encoded as application/json: the plain JSON
// answers of the compatibility and administration routes.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"internal","message":"cannot encode the response"}`, http.StatusInternalServerError)
		return
	}
	WriteBody(w, status, "application/json", b)
}

// WriteBody answers status with body as contentType. The length is sent, so an
// answer flushed before the handler ends is complete at once (see Audit).
func WriteBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
