package middleware

import (
	"encoding/json"
	"net/http"
)

// WriteJSON answers status with v encoded as application/json: the plain JSON
// answers of the compatibility and administration routes.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"internal","message":"cannot encode the response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
