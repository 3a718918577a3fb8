package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store/storetest"
)

// BenchmarkHotPaths measures the server's own cost of the calls identity providers
// repeat most (issue 7), in process and without a network, per database: profile
// with go test -run '^$' -bench HotPaths -cpuprofile cpu.out ./cmd/scimd.
func BenchmarkHotPaths(b *testing.B) {
	const users = 1000
	for _, be := range storetest.Backends(b) {
		b.Run("db="+be.Name, func(b *testing.B) {
			st := be.Open(b)
			log := zap.NewNop()
			limits := scim.DefaultLimits()
			limits.BcryptCost = 4
			svc := scim.NewService(st, log, scim.WithLimits(limits))
			tokens := scim.NewTokens(st, scim.WithTokenCache(scim.DefaultTokenCacheRefresh)) // as serve runs it
			b.Cleanup(startWorker(context.Background(), "token cache", tokens.WatchTokens, log))
			secret, err := tokens.Bootstrap(context.Background(), "")
			if err != nil {
				b.Fatal(err)
			}
			var draining atomic.Bool
			h := newHandler(svc, tokens, st, log, &draining, false, scimhttp.Options{MaxBodyBytes: 64 << 10})
			do := func(method, target string, body any, want int) []byte {
				var rd *bytes.Reader
				if body != nil {
					raw, _ := json.Marshal(body)
					rd = bytes.NewReader(raw)
				} else {
					rd = bytes.NewReader(nil)
				}
				req := httptest.NewRequest(method, target, rd)
				req.Header.Set("Authorization", "Bearer "+secret)
				if body != nil {
					req.Header.Set("Content-Type", "application/scim+json")
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != want {
					b.Fatalf("%s %s: %d %s", method, target, w.Code, w.Body)
				}
				return w.Body.Bytes()
			}
			ids := make([]string, users)
			for i := range ids {
				raw := do("POST", "/scim/v2/Users", map[string]any{
					"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
					"userName": fmt.Sprintf("user%05d@example.com", i), "active": true,
					"name":   map[string]any{"givenName": "Given", "familyName": fmt.Sprintf("Family%d", i)},
					"emails": []any{map[string]any{"value": fmt.Sprintf("user%05d@example.com", i), "type": "work", "primary": true}},
				}, http.StatusCreated)
				var r struct{ ID string }
				_ = json.Unmarshal(raw, &r)
				ids[i] = r.ID
			}
			b.Run("op=lookup", func(b *testing.B) {
				defer cpuPerOp(b)()
				for i := 0; b.Loop(); i++ {
					q := url.Values{"filter": {fmt.Sprintf("userName eq \"user%05d@example.com\"", i%users)}}
					do("GET", "/scim/v2/Users?"+q.Encode(), nil, http.StatusOK)
				}
			})
			b.Run("op=get", func(b *testing.B) {
				defer cpuPerOp(b)()
				for i := 0; b.Loop(); i++ {
					do("GET", "/scim/v2/Users/"+ids[i%users], nil, http.StatusOK)
				}
			})
			b.Run("op=page100", func(b *testing.B) {
				defer cpuPerOp(b)()
				for i := 0; b.Loop(); i++ {
					do("GET", fmt.Sprintf("/scim/v2/Users?startIndex=%d&count=100", 1+(i%10)*100), nil, http.StatusOK)
				}
			})
			b.Run("op=create", func(b *testing.B) {
				run := time.Now().UnixNano() // userNames unique across -count runs
				defer cpuPerOp(b)()
				for i := 0; b.Loop(); i++ {
					do("POST", "/scim/v2/Users", map[string]any{
						"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
						"userName": fmt.Sprintf("new%07d.%d@example.com", i, run), "active": true, "externalId": fmt.Sprintf("ext%07d", i),
						"name":   map[string]any{"givenName": "Given", "familyName": fmt.Sprintf("Family%d", i)},
						"emails": []any{map[string]any{"value": fmt.Sprintf("new%07d@example.com", i), "type": "work", "primary": true}},
						"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"employeeNumber": fmt.Sprint(i), "department": "Engineering"},
					}, http.StatusCreated)
				}
			})
			b.Run("op=patch_active", func(b *testing.B) {
				defer cpuPerOp(b)()
				for i := 0; b.Loop(); i++ {
					do("PATCH", "/scim/v2/Users/"+ids[i%users], map[string]any{
						"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
						"Operations": []any{map[string]any{"op": "replace", "path": "active", "value": i%2 == 0}},
					}, http.StatusOK)
				}
			})
		})
	}
}

// cpuPerOp reports the process's CPU time per operation (user and system), which a
// busy machine disturbs less than the wall time of ns/op.
func cpuPerOp(b *testing.B) func() {
	cpu := func() int64 {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return ru.Utime.Nano() + ru.Stime.Nano()
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}
