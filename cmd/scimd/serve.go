package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/compat"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/adminhttp"
	"github.com/scimd/scimd/scim/middleware"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
)

// shutdownGrace is how long in-flight requests get to finish after SIGTERM.
const shutdownGrace = 30 * time.Second

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	serveFlags(fs, &c)
	st, log, err := setup(ctx, fs, &c, args, true, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	defer log.Sync() //nolint:errcheck

	tlsConf, err := serverTLS(&c)
	if err != nil {
		return err
	}
	tokens := newTokens(&c, st, log)
	defer tokens.Flush()
	secret, err := tokens.Bootstrap(store.WithActor(ctx, &store.Actor{Route: "bootstrap"}), c.BootstrapToken)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	base := c.BaseURL
	if base == "" {
		scheme := "http://"
		if tlsConf != nil {
			scheme = "https://"
		}
		base = scheme + ln.Addr().String()
	}
	switch {
	case secret != "" && c.BootstrapToken != "":
		log.Info("bootstrapped tenant default with the token from SCIMD_BOOTSTRAP_TOKEN")
	case secret != "":
		fmt.Fprintf(stdout, `
scimd: first start. Created tenant "default" and this API token (shown only once, store it now):

    %s

Try it:

    curl -s -H 'Authorization: Bearer %s' %s/scim/v2/Users

`, secret, secret, base)
	}

	limits := scim.DefaultLimits()
	limits.MaxResults = c.MaxResults
	// A resource is never larger than a request could carry back in a PUT.
	limits.MaxResourceBytes = int(c.MaxBodyBytes)
	limits.PasswordMinLength = c.PasswordMinLength
	svc := scim.NewService(st, log, scim.WithLimits(limits))
	// The task worker (large onboarding batches): stopping lets the entry in
	// progress finish and releases its other claimed entries to the next worker.
	stopWorker := startWorker(ctx, "task", scim.NewTasks(st, svc, log, scim.TaskOptions{}).Work, log)
	defer stopWorker()
	outbox, err := newOutbox(&c, st, svc, log)
	if err != nil {
		return err
	}
	pages, err := accountPages(ctx, &c, st, outbox, log)
	if err != nil {
		return err
	}
	stopDelivery := startWorker(ctx, "delivery", outbox.Work, log)
	defer stopDelivery()
	stopRetention := startAuditRetention(ctx, &c, st, log)
	defer stopRetention()
	stopTokenWatch := startWorker(ctx, "token cache", tokens.WatchTokens, log)
	defer stopTokenWatch()
	var draining atomic.Bool
	h := newHandler(svc, tokens, st, log, &draining, tlsConf != nil, scimhttp.Options{
		BaseURL: c.BaseURL, MaxBodyBytes: c.MaxBodyBytes,
		BulkMaxOperations: c.BulkMaxOperations, BulkMaxPayloadBytes: c.BulkMaxPayloadBytes,
		RequestTimeout: c.RequestTimeout,
	}, pages.Mount)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		TLSConfig:         tlsConf,
	}
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificate is in srv.TLSConfig
			return
		}
		errc <- srv.Serve(ln)
	}()
	log.Info("serving", zap.String("addr", ln.Addr().String()), zap.String("scim", base+scimhttp.Prefix),
		zap.Bool("tls", tlsConf != nil), zap.Float64("rate_limit", c.RateLimit), zap.Float64("auth_fail_limit", c.AuthFailLimit), zap.String("version", version))
	select {
	case err := <-errc:
		return err
	case <-sigCtx.Done():
	}
	stop() // a second SIGINT or SIGTERM ends the process at once
	// Fail readiness first and keep serving for --drain-delay, so a load balancer
	// that polls /readyz stops sending new requests before the listener closes;
	// then let the in-flight requests finish.
	draining.Store(true)
	if c.DrainDelay > 0 {
		log.Info("draining: /readyz answers 503, requests are still served", zap.Duration("drain_delay", c.DrainDelay))
		select {
		case <-time.After(c.DrainDelay):
		case err := <-errc:
			return err
		}
	}
	log.Info("shutting down: finishing in-flight requests", zap.Duration("grace", shutdownGrace))
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	stopWorker()
	stopDelivery()
	stopRetention()
	log.Info("stopped")
	return nil
}

// newTokens returns the token use cases with the configured rate limit
// (--rate-limit, --rate-burst) and failed-authentication throttle
// (--auth-fail-limit, --auth-fail-burst).
func newTokens(c *Config, st *gormstore.Store, log *zap.Logger) *scim.Tokens {
	return scim.NewTokens(st,
		scim.WithRateLimiter(scim.NewRateLimiter(c.RateLimit, c.RateBurst, 0, nil)),
		scim.WithAuthFailLimiter(scim.NewRateLimiter(c.AuthFailLimit, c.AuthFailBurst, 0, nil)),
		scim.WithTokenCache(c.TokenCacheRefresh),
		scim.WithLogger(log))
}

// serverTLS loads the --tls-cert and --tls-key pair, or returns nil when neither is
// set. TLS 1.2 is the oldest version served.
func serverTLS(c *Config) (*tls.Config, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %q and --tls-key %q: %w", c.TLSCert, c.TLSKey, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// newHandler wires every route (see addRoutes) behind the shared request-id,
// access-log and security-header middleware; overTLS adds
// Strict-Transport-Security. mounts add further routes (the account pages). The mux
// is wrapped in middleware.Route so that the access log can name a route by its
// pattern rather than a path that carries an email.
func newHandler(svc *scim.Service, tokens *scim.Tokens, st *gormstore.Store, log *zap.Logger, draining *atomic.Bool, overTLS bool, o scimhttp.Options, mounts ...func(middleware.Mux)) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, svc, tokens, st, log, draining, o, mounts...)
	return middleware.Log(log)(middleware.SecurityHeaders(overTLS)(middleware.ClientAddr(middleware.Audit(svc)(middleware.Deadline(o.RequestTimeout)(middleware.Route(mux))))))
}

// addRoutes registers every route on mux: health, readiness, the SCIM API, the
// compatibility APIs and mounts.
func addRoutes(mux middleware.Mux, svc *scim.Service, tokens *scim.Tokens, st *gormstore.Store, log *zap.Logger, draining *atomic.Bool, o scimhttp.Options, mounts ...func(middleware.Mux)) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "shutting down")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			log.Warn("not ready", zap.Error(err))
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "database unreachable")
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle(scimhttp.Prefix+"/", scimhttp.New(svc, tokens, log, o))
	compat.New(svc, tokens, log, compat.Options{BaseURL: o.BaseURL, MaxBodyBytes: o.MaxBodyBytes}).Mount(mux)
	mux.Handle(adminhttp.Prefix+"/", adminhttp.New(scim.NewAuditLog(st, log), tokens, log))
	for _, m := range mounts {
		m(mux)
	}
}
