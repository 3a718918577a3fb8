package scimhttp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// TestClientGoneIsNoServerFault: a request whose client went away (its context
// cancelled) is answered 503 in the access log and logs no warning or error, so an
// operator's alerts on server faults do not fire for clients that hang up.
func TestClientGoneIsNoServerFault(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("db="+b.Name, func(t *testing.T) {
			st := b.Open(t)
			core, logs := observer.New(zapcore.WarnLevel)
			log := zap.New(core)
			svc := scim.NewService(st, log)
			tokens := scim.NewTokens(st)
			secret, err := tokens.Bootstrap(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			h := scimhttp.New(svc, tokens, log, scimhttp.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			r := httptest.NewRequestWithContext(ctx, http.MethodGet, scimhttp.Prefix+"/Users", nil)
			r.Header.Set("Authorization", "Bearer "+secret)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503: %s", w.Code, w.Body)
			}
			for _, e := range logs.All() {
				t.Errorf("logged %s %q %v", e.Level, e.Message, e.ContextMap())
			}
		})
	}
}
