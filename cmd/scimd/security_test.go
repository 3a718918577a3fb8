package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
)

// TestSecurityHeaders checks the headers every answer carries, on every kind of
// route: health, the SCIM API (success and error), each compat family and the HTML
// account pages (which keep their own Content-Security-Policy).
func TestSecurityHeaders(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		newMailEnv(t, e, "", scim.OutboxOptions{}) // mounts the account pages
		cases := []struct {
			name, method, path, token string
			status                    int
			csp                       string // "" means the API default
		}{
			{name: "healthz", method: "GET", path: "/healthz", status: 200},
			{name: "readyz", method: "GET", path: "/readyz", status: 200},
			{name: "scim_list", method: "GET", path: "/scim/v2/Users", token: e.token, status: 200},
			{name: "scim_unauthorized", method: "GET", path: "/scim/v2/Users", status: 401},
			{name: "scim_unknown_path", method: "GET", path: "/scim/v2/Nope", token: e.token, status: 404},
			{name: "compat_admin", method: "GET", path: "/users", token: e.token, status: 200},
			{name: "compat_partner", method: "POST", path: "/v1/pine/partner/provision-user", status: 401},
			{name: "compat_platform", method: "POST", path: "/scim/provision-user", status: 401},
			{name: "compat_superuser", method: "GET", path: "/api/v1/user/count?key=" + e.token, status: 200},
			{name: "compat_onboarding", method: "POST", path: "/onboarding/provision/standalone/users", status: 401},
			{name: "account_page", method: "GET", path: scim.SetPasswordPath, status: 410,
				csp: "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"},
			{name: "not_found", method: "GET", path: "/nowhere", status: 404},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.callAs(tc.token, tc.method, tc.path, nil)
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.raw)
				}
				csp := tc.csp
				if csp == "" {
					csp = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
				}
				for k, v := range map[string]string{
					"X-Content-Type-Options":  "nosniff",
					"Referrer-Policy":         "no-referrer",
					"X-Frame-Options":         "DENY",
					"Cache-Control":           "no-store",
					"Content-Security-Policy": csp,
				} {
					if got := r.header.Values(k); len(got) != 1 || got[0] != v {
						t.Errorf("%s: %q, want exactly %q", k, got, v)
					}
				}
				if h := r.header.Get("Strict-Transport-Security"); h != "" {
					t.Errorf("Strict-Transport-Security over plain HTTP: %q", h)
				}
			})
		}
	})
}

// rateEnv serves e's database again with a rate limit of rate requests a second and
// bursts of burst per token.
func rateEnv(t *testing.T, e *env, rate float64, burst int) {
	t.Helper()
	tokens := scim.NewTokens(e.st, scim.WithRateLimiter(scim.NewRateLimiter(rate, burst, 0, nil)))
	var draining atomic.Bool
	srv := httptest.NewServer(newHandler(e.svc, tokens, e.st, zaptest.NewLogger(t), &draining, false, scimhttp.Options{MaxBodyBytes: 64 << 10}))
	t.Cleanup(srv.Close)
	e.srv = srv
}

// untilLimited sends the request with token up to limit times and returns the first
// 429 answer. The first burst requests must pass: the bucket starts full.
func untilLimited(t *testing.T, e *env, token, method, path string, burst, limit int) resp {
	t.Helper()
	for i := range limit {
		r := e.callAs(token, method, path, nil)
		if r.status == http.StatusTooManyRequests {
			if i < burst {
				t.Fatalf("request %d of a burst of %d was refused: %s", i+1, burst, r.raw)
			}
			return r
		}
		if r.status != http.StatusOK {
			t.Fatalf("request %d: status %d: %s", i+1, r.status, r.raw)
		}
	}
	t.Fatalf("%d requests in a row were not limited", limit)
	return resp{}
}

// TestRateLimit sends bursts beyond a token's limit: the excess is 429 with
// Retry-After in the route family's error shape, other tokens are unaffected, and
// the token passes again once its bucket has refilled.
func TestRateLimit(t *testing.T) {
	// 20 a second refills one request every 50 ms; 20 requests in a row cannot all
	// pass unless they take most of a second.
	const rate, burst, tries = 20, 3, 20
	forEachBackend(t, func(t *testing.T, e *env) {
		a := e.newTenant("ratea", scim.AllScopes...)
		b := e.newTenant("rateb", scim.AllScopes...)
		rateEnv(t, e, rate, burst)

		t.Run("scim", func(t *testing.T) {
			r := untilLimited(t, e, a, "GET", "/scim/v2/Users", burst, tries)
			r.wantError(t, http.StatusTooManyRequests, "")
			if got := r.header.Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After %q, want 1 (50 ms rounded up)", got)
			}
			// Another token of another tenant is not affected.
			e.callAs(b, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
			// After one refill period the token passes again.
			time.Sleep(2 * time.Second / rate)
			e.callAs(a, "GET", "/scim/v2/Users", nil).want(t, http.StatusOK)
		})
		t.Run("compat_admin", func(t *testing.T) {
			c := e.newTenant("ratec", scim.AllScopes...)
			r := untilLimited(t, e, c, "GET", "/users", burst, tries)
			var body map[string]string
			if err := json.Unmarshal([]byte(r.raw), &body); err != nil || body["error"] != "too_many_requests" || body["message"] == "" {
				t.Errorf("body %s (%v), want the admin family's {error: too_many_requests, message}", r.raw, err)
			}
			if got := r.header.Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After %q, want 1", got)
			}
			e.callAs(b, "GET", "/users", nil).want(t, http.StatusOK)
			time.Sleep(2 * time.Second / rate)
			e.callAs(c, "GET", "/users", nil).want(t, http.StatusOK)
		})
		t.Run("compat_superuser", func(t *testing.T) {
			c := e.newTenant("rated", scim.AllScopes...)
			r := untilLimited(t, e, c, "GET", "/api/v1/user/count?key="+c, burst, tries)
			var body map[string]string
			if err := json.Unmarshal([]byte(r.raw), &body); err != nil || body["error"] != "too_many_requests" || body["msg"] == "" {
				t.Errorf("body %s (%v), want the superuser family's {error: too_many_requests, msg}", r.raw, err)
			}
			if r.header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
		})
	})
}

// tlsServerCert writes a CA and a certificate it signed for 127.0.0.1 to dir, and
// returns the certificate and key files and a pool trusting the CA.
func tlsServerCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scimd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return certFile, keyFile, pool
}

// TestServeTLS runs scimd serve with --tls-cert and --tls-key: HTTPS works for a
// client trusting the CA, with HSTS and at least TLS 1.2; plain HTTP and TLS 1.1 do
// not; the rate-limit flags reach the server.
func TestServeTLS(t *testing.T) {
	const secret = "tls-secret-0123456789abcdef"
	t.Setenv("SCIMD_BOOTSTRAP_TOKEN", secret)
	dir := t.TempDir()
	certFile, keyFile, pool := tlsServerCert(t, dir)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	db := "sqlite://" + filepath.Join(dir, "tls.db")
	addr, stop := serveUntilWith(t, client, "https", "--database", db, "--tls-cert", certFile, "--tls-key", keyFile,
		"--rate-limit", "20", "--rate-burst", "2")
	defer func() {
		if _, err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	get := func(c *http.Client, url string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
		}
		return res, err
	}

	t.Run("https", func(t *testing.T) {
		res, err := get(client, "https://"+addr+"/scim/v2/ServiceProviderConfig")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
		if got := res.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("Strict-Transport-Security %q", got)
		}
		if res.TLS == nil || res.TLS.Version < tls.VersionTLS12 {
			t.Errorf("connection state %+v", res.TLS)
		}
	})
	t.Run("plain_http_refused", func(t *testing.T) {
		plain := &http.Client{Timeout: 10 * time.Second}
		res, err := get(plain, "http://"+addr+"/scim/v2/ServiceProviderConfig")
		if err == nil && res.StatusCode == 200 {
			t.Fatal("plain HTTP to the TLS port answered 200")
		}
	})
	t.Run("tls_1_1_refused", func(t *testing.T) {
		old := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
		if _, err := get(old, "https://"+addr+"/healthz"); err == nil {
			t.Fatal("a TLS 1.1 client was served")
		}
	})
	t.Run("rate_limit_flags", func(t *testing.T) {
		time.Sleep(200 * time.Millisecond) // the bucket refills after the requests above
		for i := range 20 {
			res, err := get(client, "https://"+addr+"/scim/v2/ServiceProviderConfig")
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode == http.StatusTooManyRequests {
				if i < 2 || res.Header.Get("Retry-After") == "" {
					t.Fatalf("429 at request %d, Retry-After %q", i+1, res.Header.Get("Retry-After"))
				}
				return
			}
		}
		t.Fatal("--rate-limit 20 --rate-burst 2: 20 requests in a row were not limited")
	})
}

// TestServeTLSConfig: a half TLS configuration and bad rate values are refused
// together at start; an unreadable or mismatched pair is refused before serving.
func TestServeTLSConfig(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "c.db")
	certFile, keyFile, _ := tlsServerCert(t, dir)
	otherDir := filepath.Join(dir, "other")
	if err := os.Mkdir(otherDir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := tlsServerCert(t, otherDir)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"cert_without_key", []string{"--tls-cert", certFile, "--rate-limit", "-1", "--rate-burst", "-2"},
			[]string{"--tls-cert and --tls-key go together", "--rate-limit must be", "--rate-burst must be"}},
		{"key_without_cert", []string{"--tls-key", keyFile}, []string{"--tls-cert and --tls-key go together"}},
		{"missing_file", []string{"--tls-cert", filepath.Join(dir, "none.pem"), "--tls-key", keyFile}, []string{"--tls-cert", "none.pem"}},
		{"mismatched_pair", []string{"--tls-cert", certFile, "--tls-key", otherKey}, []string{"--tls-cert", "private key does not match"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, append([]string{"serve", "--database", db, "--addr", "127.0.0.1:0"}, tc.args...)...)
			if err == nil {
				t.Fatal("serve started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
