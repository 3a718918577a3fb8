package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/scimhttp"
)

// Config is scimd's configuration: flags, each with a SCIMD_* environment fallback.
type Config struct {
	Addr           string
	Database       string
	BaseURL        string
	MaxBodyBytes   int64
	MaxResults     int
	LogLevel       string
	LogFormat      string
	BootstrapToken string

	// BulkMaxOperations and BulkMaxPayloadBytes bound one bulk request.
	BulkMaxOperations   int
	BulkMaxPayloadBytes int64

	// Outbox delivery (see mailFlags); SMTPPassword comes from the environment only.
	SMTPAddr, SMTPTLS, SMTPUsername, SMTPPassword, MailFrom string
	// SMTPCAFile names PEM certificates the SMTP server's certificate must chain to
	// instead of the system's.
	SMTPCAFile        string
	PasswordMinLength int

	// TLSCert and TLSKey name the PEM certificate chain and key to serve HTTPS with;
	// both or neither.
	TLSCert, TLSKey string
	// RateLimit is each token's average requests per second (0: no limit);
	// RateBurst how many it may send at once (0: RateLimit rounded up, at least 1).
	RateLimit float64
	RateBurst int
	// AuditRetention is how long audit events are kept ("90d", "2160h"; "0" keeps
	// them forever); see auditRetention.
	AuditRetention string
	// AuthFailLimit is how many failed authentications a second one client address
	// may make on average (0: no throttle); AuthFailBurst how many at once.
	AuthFailLimit float64
	AuthFailBurst int
	// DrainDelay is how long serve keeps serving after SIGTERM with /readyz
	// answering 503, before it closes the listener.
	DrainDelay time.Duration
	// RequestTimeout bounds one request, database work included (0: no bound).
	RequestTimeout time.Duration
	// TokenCacheRefresh is how often the token cache checks that it is current
	// (0: no cache, every request reads its token row); see scim.WithTokenCache.
	TokenCacheRefresh time.Duration
}

// envOr returns the environment variable key, or def when it is unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envInt(key string, def int64) int64 {
	if v, ok := os.LookupEnv(key); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
		return -1 // reported by Validate
	}
	return def
}

func envFloat(key string, def float64) float64 {
	if v, ok := os.LookupEnv(key); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
		return -1 // reported by Validate
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(key); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		return -1 // reported by Validate
	}
	return def
}

// databaseFlags registers the flags every sub-command that opens the database needs.
func databaseFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Database, "database", envOr("SCIMD_DATABASE", "sqlite://./scimd.db"),
		"database DSN: sqlite://PATH (embedded, default) or postgres://USER@HOST:PORT/DB (env SCIMD_DATABASE)")
	fs.StringVar(&c.LogLevel, "log-level", envOr("SCIMD_LOG_LEVEL", "info"), "debug, info, warn or error (env SCIMD_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", envOr("SCIMD_LOG_FORMAT", "json"), "json or console (env SCIMD_LOG_FORMAT)")
}

// serveFlags registers the flags of scimd serve.
func serveFlags(fs *flag.FlagSet, c *Config) {
	databaseFlags(fs, c)
	fs.StringVar(&c.Addr, "addr", envOr("SCIMD_ADDR", "127.0.0.1:8080"), "address to listen on (env SCIMD_ADDR)")
	fs.StringVar(&c.BaseURL, "base-url", envOr("SCIMD_BASE_URL", ""),
		"public URL scimd is reached at, for absolute meta.location, e.g. https://id.example.com (env SCIMD_BASE_URL; default: from the request's Host)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", envInt("SCIMD_MAX_BODY_BYTES", 1<<20), "largest request body in bytes; larger is 413 (env SCIMD_MAX_BODY_BYTES)")
	fs.IntVar(&c.MaxResults, "max-results", int(envInt("SCIMD_MAX_RESULTS", int64(scim.DefaultLimits().MaxResults))), "largest page a list returns (env SCIMD_MAX_RESULTS)")
	fs.IntVar(&c.BulkMaxOperations, "bulk-max-operations", int(envInt("SCIMD_BULK_MAX_OPERATIONS", scimhttp.DefaultBulkMaxOperations)),
		"most operations in one bulk request; more is 413 (env SCIMD_BULK_MAX_OPERATIONS)")
	fs.Int64Var(&c.BulkMaxPayloadBytes, "bulk-max-payload-bytes", envInt("SCIMD_BULK_MAX_PAYLOAD_BYTES", scimhttp.DefaultBulkMaxPayloadBytes),
		"largest bulk request body in bytes, at least --max-body-bytes; larger is 413 (env SCIMD_BULK_MAX_PAYLOAD_BYTES)")
	fs.StringVar(&c.TLSCert, "tls-cert", envOr("SCIMD_TLS_CERT", ""), "PEM certificate chain to serve HTTPS with, together with --tls-key (env SCIMD_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", envOr("SCIMD_TLS_KEY", ""), "PEM private key of --tls-cert (env SCIMD_TLS_KEY)")
	fs.Float64Var(&c.RateLimit, "rate-limit", envFloat("SCIMD_RATE_LIMIT", 0),
		"requests per second each API token may make on average; more is 429 with Retry-After; 0 turns the limit off (env SCIMD_RATE_LIMIT)")
	fs.IntVar(&c.RateBurst, "rate-burst", int(envInt("SCIMD_RATE_BURST", 0)),
		"requests a token may make at once before --rate-limit applies; 0 means --rate-limit rounded up (env SCIMD_RATE_BURST)")
	fs.Float64Var(&c.AuthFailLimit, "auth-fail-limit", envFloat("SCIMD_AUTH_FAIL_LIMIT", 1),
		"failed authentications per second one client address may make on average; beyond it new tokens from the address are 429 with Retry-After without being checked; 0 turns the throttle off (env SCIMD_AUTH_FAIL_LIMIT)")
	fs.IntVar(&c.AuthFailBurst, "auth-fail-burst", int(envInt("SCIMD_AUTH_FAIL_BURST", 20)),
		"failed authentications one client address may make at once before --auth-fail-limit applies; 0 means --auth-fail-limit rounded up (env SCIMD_AUTH_FAIL_BURST)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", envDuration("SCIMD_REQUEST_TIMEOUT", time.Minute),
		"longest a request may take, database work included; past it the answer is 503 with Retry-After and the database work is cancelled; 0: no bound (env SCIMD_REQUEST_TIMEOUT)")
	fs.DurationVar(&c.TokenCacheRefresh, "token-cache-refresh", envDuration("SCIMD_TOKEN_CACHE_REFRESH", scim.DefaultTokenCacheRefresh),
		"how often each process checks whether any token or tenant changed, keeping the tokens it accepted in memory meanwhile; a revoked token is refused everywhere within 3 times this; 0 turns the cache off and reads the token on every request (env SCIMD_TOKEN_CACHE_REFRESH)")
	fs.DurationVar(&c.DrainDelay, "drain-delay", envDuration("SCIMD_DRAIN_DELAY", 0),
		"after SIGTERM, how long to keep serving while /readyz answers 503, so a load balancer stops sending requests before the listener closes, e.g. 5s (env SCIMD_DRAIN_DELAY)")
	fs.StringVar(&c.AuditRetention, "audit-retention", envOr("SCIMD_AUDIT_RETENTION", defaultAuditRetention),
		"how long audit events are kept, in days (90d) or as a duration (2160h); older ones are deleted hourly; 0 keeps them forever (env SCIMD_AUDIT_RETENTION)")
	c.BootstrapToken = os.Getenv("SCIMD_BOOTSTRAP_TOKEN")
	mailFlags(fs, c)
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate(serving bool) error {
	var errs []error
	if _, _, err := splitDSN(c.Database); err != nil {
		errs = append(errs, err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		errs = append(errs, fmt.Errorf("--log-format %q: use json or console", c.LogFormat))
	}
	if serving {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("--addr %q: want host:port, e.g. 127.0.0.1:8080", c.Addr))
		}
		if c.BaseURL != "" {
			u, err := url.Parse(c.BaseURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("--base-url %q: want an absolute http(s) URL such as https://id.example.com", c.BaseURL))
			}
		}
		if c.MaxBodyBytes < 1024 {
			errs = append(errs, fmt.Errorf("--max-body-bytes must be an integer of at least 1024"))
		}
		if c.MaxResults < 1 {
			errs = append(errs, fmt.Errorf("--max-results must be a positive integer"))
		}
		if c.BulkMaxOperations < 1 {
			errs = append(errs, fmt.Errorf("--bulk-max-operations must be a positive integer"))
		}
		if c.BulkMaxPayloadBytes < c.MaxBodyBytes || c.BulkMaxPayloadBytes < 1024 {
			errs = append(errs, fmt.Errorf("--bulk-max-payload-bytes must be an integer of at least --max-body-bytes (%d)", c.MaxBodyBytes))
		}
		if (c.TLSCert == "") != (c.TLSKey == "") {
			errs = append(errs, fmt.Errorf("--tls-cert and --tls-key go together: set both to serve HTTPS, or neither"))
		}
		if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
			errs = append(errs, fmt.Errorf("--rate-limit must be a number of requests per second, 0 or more (0: no limit)"))
		}
		if c.RequestTimeout < 0 || c.RequestTimeout > 0 && c.RequestTimeout < time.Second || c.RequestTimeout > 110*time.Second {
			errs = append(errs, fmt.Errorf("--request-timeout must be 0 (no bound) or a duration from 1s to 110s (under the 120s write timeout), e.g. 60s"))
		}
		if c.TokenCacheRefresh < 0 || c.TokenCacheRefresh > 0 && c.TokenCacheRefresh < 10*time.Millisecond || c.TokenCacheRefresh > time.Second {
			errs = append(errs, fmt.Errorf("--token-cache-refresh must be 0 (no cache) or a duration from 10ms to 1s, e.g. 50ms"))
		}
		if c.DrainDelay < 0 || c.DrainDelay > 5*time.Minute {
			errs = append(errs, fmt.Errorf("--drain-delay must be a duration from 0 to 5m, e.g. 5s"))
		}
		if c.RateBurst < 0 {
			errs = append(errs, fmt.Errorf("--rate-burst must be an integer, 0 or more (0: --rate-limit rounded up)"))
		}
		if c.AuthFailLimit < 0 || math.IsNaN(c.AuthFailLimit) || math.IsInf(c.AuthFailLimit, 0) {
			errs = append(errs, fmt.Errorf("--auth-fail-limit must be a number of failed authentications per second, 0 or more (0: no throttle)"))
		}
		if c.AuthFailBurst < 0 {
			errs = append(errs, fmt.Errorf("--auth-fail-burst must be an integer, 0 or more (0: --auth-fail-limit rounded up)"))
		}
		if _, err := c.auditRetention(); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, c.validateMail()...)
		if c.BootstrapToken != "" && len(c.BootstrapToken) < scim.MinSecretLength {
			errs = append(errs, fmt.Errorf("SCIMD_BOOTSTRAP_TOKEN must be at least %d characters long", scim.MinSecretLength))
		}
	}
	return errors.Join(errs...)
}

// splitDSN returns the backend a DSN names and what to pass to it.
func splitDSN(dsn string) (backend, target string, err error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		p := strings.TrimPrefix(dsn, "sqlite://")
		if p == "" {
			return "", "", fmt.Errorf("--database %q: name a file, e.g. sqlite://./scimd.db", dsn)
		}
		return "sqlite", p, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return "postgres", dsn, nil
	}
	return "", "", fmt.Errorf("--database %q: use sqlite://PATH or postgres://USER@HOST:PORT/DB", dsn)
}
