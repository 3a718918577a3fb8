package scim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/store"
)

// Token scopes: which routes a token may call.
const (
	ScopeSCIM   = "scim"
	ScopeCompat = "compat"
	ScopeAdmin  = "admin"
	// ScopeAudit lets a token read its tenant's audit log (GET /admin/v1/audit).
	ScopeAudit = "audit"
)

// AllScopes lists every scope, in the order they are printed.
var AllScopes = []string{ScopeSCIM, ScopeCompat, ScopeAdmin, ScopeAudit}

// DefaultTenant is the tenant a fresh install creates.
const DefaultTenant = "default"

// Tenant is an organisation.
type Tenant = store.Tenant

// Accounts is what the tenant and token use cases need from persistence.
type Accounts interface {
	CreateTenant(ctx context.Context, name string) (store.Tenant, error)
	TenantByName(ctx context.Context, name string) (store.Tenant, error)
	SetTenantSettings(ctx context.Context, tenantID string, s store.TenantSettings) error
	TenantByID(ctx context.Context, id string) (store.Tenant, error)
	RevokeUserTokens(ctx context.Context, tenantID, userID string) error
	RevokeToken(ctx context.Context, tenantID, id string) error
	TokenEpoch(ctx context.Context) (int64, error)
	ListTenants(ctx context.Context) ([]store.Tenant, error)
	CreateToken(ctx context.Context, t store.Token) (store.Token, error)
	TokenByHash(ctx context.Context, hash []byte) (store.Token, error)
	CountTokens(ctx context.Context, tenantID string) (int, error)
	ListTokens(ctx context.Context, tenantID string) ([]store.Token, error)
	TouchToken(ctx context.Context, tenantID, id string, at time.Time, every time.Duration) (bool, error)
	// Get finds the user a token is bound to.
	Get(ctx context.Context, tenantID string, kind store.Kind, id string, opts store.ReadOptions) (*store.Resource, error)
}

// Principal is who a request acts as: a token of a tenant, with its scopes.
type Principal struct {
	TenantID string
	TokenID  string
	Scopes   []string
	// UserID is the user /Me stands for (RFC 7644 §3.11); "" when the token is bound
	// to none.
	UserID string
	// Profile is the client profile of the token (see Quirks).
	Profile string
	// Sandbox is set for sandbox tokens, which are read-only (see MayChange).
	Sandbox bool
	// Tenant is the token's tenant (id, name and settings, without its creation
	// time), read with the token, so routes that consult its settings need no
	// second query.
	Tenant Tenant
}

// Has reports whether the principal holds scope.
func (p Principal) Has(scope string) bool { return slices.Contains(p.Scopes, scope) }

// ErrSandboxReadOnly is in the chain of the error a sandbox token gets for a
// change.
var ErrSandboxReadOnly = errors.New("sandbox tokens are read-only")

// MayChange refuses a sandbox token a request that changes data: sandbox tokens
// are read-only on every route family (SCIM, its Bulk and /Me, the compatibility
// APIs, the admin API); searches and other reads are allowed. The error is
// KindForbidden (403); the compatibility families answer it in their own shapes.
func (p Principal) MayChange() error {
	if p.Sandbox {
		return &Error{Kind: KindForbidden, Detail: "sandbox tokens are read-only: this token may read but not change data; use a token made without --sandbox", Err: ErrSandboxReadOnly}
	}
	return nil
}

// Tokens manages tenants and API tokens. Secrets are random, shown once, and stored
// only as their SHA-256.
type Tokens struct {
	st       Accounts
	limiter  *RateLimiter // never nil; its own rate 0 is no server-wide limit
	failures *RateLimiter // nil: failed authentications are not throttled
	uses     *tokenUses
	cache    *tokenCache // nil: every request reads its token row
	now      func() time.Time
	log      *zap.Logger
}

// TokensOption configures Tokens.
type TokensOption func(*Tokens)

// WithRateLimiter makes Authenticate charge every request it authenticates to the
// token's bucket in l, at l's rate unless the token's tenant sets its own
// (TenantSettings.RateLimit); nil means no server-wide limit.
func WithRateLimiter(l *RateLimiter) TokensOption {
	return func(t *Tokens) { t.limiter = l }
}

// WithAuthFailLimiter makes Authenticate charge every failed authentication (an
// unknown, revoked or expired token) to the bucket in l of the client address in
// the context (WithClientAddr). While an address's bucket is empty, a token from it
// that this process has not accepted before is answered KindTooManyRequests without
// being looked up, so guessing gets no faster than l's rate; a token it has
// accepted is still checked, so a working client is not locked out by a guesser
// sharing its address. nil means no throttle.
func WithAuthFailLimiter(l *RateLimiter) TokensOption {
	return func(t *Tokens) { t.failures = l }
}

// WithClock sets the clock token expiry and last use are read with; nil means
// time.Now.
func WithClock(now func() time.Time) TokensOption {
	return func(t *Tokens) { t.now = now }
}

// WithLogger sets the logger of background work (recording last use).
func WithLogger(log *zap.Logger) TokensOption {
	return func(t *Tokens) { t.log = log.Named("tokens") }
}

// NewTokens returns the tenant and token use cases over st.
func NewTokens(st Accounts, opts ...TokensOption) *Tokens {
	t := &Tokens{st: st, log: zap.NewNop()}
	for _, o := range opts {
		o(t)
	}
	if t.limiter == nil {
		t.limiter = newRateLimiter(0, 0, 0, nil)
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.uses = newTokenUses(DefaultRateLimitTokens)
	return t
}

// tenantNamer finds tenants by name; every store does.
type tenantNamer interface {
	TenantByName(ctx context.Context, name string) (store.Tenant, error)
}

// tenantNamed finds the tenant an operator named (a command's --tenant), as a
// KindNotFound error that names it when there is none.
func tenantNamed(ctx context.Context, st tenantNamer, name string) (store.Tenant, error) {
	tn, err := st.TenantByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Tenant{}, &Error{Kind: KindNotFound, Detail: fmt.Sprintf("tenant %q does not exist", name), Err: err}
	}
	if err != nil {
		return store.Tenant{}, AsError(err)
	}
	return tn, nil
}

var tenantName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// CreateTenant adds a tenant. Names are lower-case letters, digits, '.', '_' and '-'.
func (t *Tokens) CreateTenant(ctx context.Context, name string) (Tenant, error) {
	if !tenantName.MatchString(name) {
		return Tenant{}, errorf(KindInvalidValue, "tenant name %q: use 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	tn, err := t.st.CreateTenant(ctx, name)
	if errors.Is(err, store.ErrConflict) {
		return Tenant{}, &Error{Kind: KindUniqueness, Detail: fmt.Sprintf("tenant %q exists already", name), Err: err}
	}
	if err != nil {
		return Tenant{}, AsError(err)
	}
	return tn, nil
}

// Tenants lists every tenant.
func (t *Tokens) Tenants(ctx context.Context) ([]Tenant, error) {
	ts, err := t.st.ListTenants(ctx)
	if err != nil {
		return nil, AsError(err)
	}
	return ts, nil
}

// ParseScopes reads a comma- or space-separated scope list and checks every name.
func ParseScopes(s string) ([]string, error) {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if !slices.Contains(AllScopes, f) {
			return nil, errorf(KindInvalidValue, "unknown scope %q; scopes are %s", f, strings.Join(AllScopes, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, errorf(KindInvalidValue, "name at least one scope: %s", strings.Join(AllScopes, ", "))
	}
	return out, nil
}

// NewSecret returns a fresh random token secret (256 bits).
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "scimd_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// NewKey32 returns a random 32-character key of letters and digits (about 190 bits).
func NewKey32() (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, 32)
	b := make([]byte, 1)
	for len(out) < 32 {
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		if int(b[0]) < 256-256%len(alphabet) { // no modulo bias
			out = append(out, alphabet[int(b[0])%len(alphabet)])
		}
	}
	return string(out), nil
}

// MinSecretLength is the shortest secret accepted from an operator.
const MinSecretLength = 20

// TokenOptions describe a token to issue.
type TokenOptions struct {
	Scopes []string
	// Secret is the token itself; empty makes a random one.
	Secret string
	// UserID binds the token to a user of its tenant, whom /Me then stands for
	// (RFC 7644 §3.11). Empty binds it to none, and /Me answers 501.
	UserID string
	// Profile is the client profile its requests are read with: rfc-tolerant
	// (the default; "lenient" is its former name), strict, okta or entra.
	Profile string
	// Sandbox marks a read-only token: every route family refuses it for changes.
	Sandbox bool
	// Key32 makes the random secret a 32-character key, the form some vendor APIs
	// expect, instead of the default scimd_… token.
	Key32 bool
	// ExpiresAt, when not zero, is when the token stops working; it must be in
	// the future.
	ExpiresAt time.Time
}

// IssueToken creates a token for the named tenant. With secret empty a random one is
// made; the secret is returned once and only its hash is stored.
func (t *Tokens) IssueToken(ctx context.Context, tenant string, scopes []string, secret string) (string, error) {
	return t.Issue(ctx, tenant, TokenOptions{Scopes: scopes, Secret: secret})
}

// Issue creates a token for the named tenant as o describes; a user to bind must be
// one of that tenant's. The secret is returned once and only its hash is stored.
func (t *Tokens) Issue(ctx context.Context, tenant string, o TokenOptions) (string, error) {
	secret := o.Secret
	profile, err := ParseProfile(o.Profile)
	if err != nil {
		return "", err
	}
	var expires *time.Time
	if !o.ExpiresAt.IsZero() {
		if !o.ExpiresAt.After(t.now()) {
			return "", errorf(KindInvalidValue, "the expiry %s is not in the future", o.ExpiresAt.UTC().Format(time.RFC3339))
		}
		at := o.ExpiresAt.UTC()
		expires = &at
	}
	tn, err := t.st.TenantByName(ctx, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return "", &Error{Kind: KindNotFound, Detail: fmt.Sprintf("tenant %q does not exist; create it with: scimd tenant create %s", tenant, tenant), Err: err}
	}
	if err != nil {
		return "", AsError(err)
	}
	if secret == "" && o.Key32 {
		if secret, err = NewKey32(); err != nil {
			return "", AsError(err)
		}
	} else if secret == "" {
		if secret, err = NewSecret(); err != nil {
			return "", AsError(err)
		}
	} else if len(secret) < MinSecretLength {
		return "", errorf(KindInvalidValue, "a token must be at least %d characters long", MinSecretLength)
	}
	var userID string
	if o.UserID != "" {
		u, err := t.st.Get(ctx, tn.ID, store.KindUser, normID(o.UserID), store.ReadOptions{})
		if errors.Is(err, store.ErrNotFound) {
			return "", &Error{Kind: KindNotFound, Detail: fmt.Sprintf("tenant %q has no user with id %q; a token can only be bound to a user of its own tenant", tenant, o.UserID), Err: err}
		}
		if err != nil {
			return "", AsError(err)
		}
		userID = u.ID
	}
	h := sha256.Sum256([]byte(secret))
	if _, err := t.st.CreateToken(ctx, store.Token{TenantID: tn.ID, Hash: h[:], Scopes: o.Scopes, UserID: userID, Profile: profile, Sandbox: o.Sandbox, ExpiresAt: expires}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return "", &Error{Kind: KindUniqueness, Detail: "this token exists already", Err: err}
		}
		return "", AsError(err)
	}
	return secret, nil
}

// Authenticate finds the token whose secret this is, for a request made with it:
// the request is charged to the token's rate limit (WithRateLimiter, or its
// tenant's own), and a token over it is a KindTooManyRequests error. Every route
// authenticates through here, so the limit holds across the SCIM API and every
// compat family. A failed authentication is charged to the client address
// (WithAuthFailLimiter), and an address over that limit is refused before its
// token is looked up.
func (t *Tokens) Authenticate(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, errMissingCredentials()
	}
	h := sha256.Sum256([]byte(secret))
	addr := ClientAddr(ctx)
	throttled := t.failures != nil && addr != ""
	if throttled && !t.uses.known(h) {
		if wait := t.failures.Wait(addr); wait > 0 {
			return Principal{}, &Error{Kind: KindTooManyRequests, RetryAfter: wait,
				Detail: "too many failed authentications from this address; retry after " + RetryAfterSeconds(wait) + " s"}
		}
	}
	tok, err := t.lookup(ctx, h)
	if err != nil {
		if throttled && AsError(err).Kind == KindUnauthorized {
			_ = t.failures.Allow(addr) // an empty bucket refuses the next attempt
		}
		return Principal{}, err
	}
	rate, burst := t.rateOf(tok.TenantSettings)
	if err := t.limiter.AllowRate(tok.ID, rate, burst); err != nil {
		return Principal{}, err
	}
	return principalOf(tok), nil
}

// rateOf returns the rate limit of a tenant's tokens: the tenant's own rate and
// burst where set, the server's otherwise; a rate of 0 is no limit.
func (t *Tokens) rateOf(s TenantSettings) (float64, int) {
	switch {
	case s.NoRateLimit:
		return 0, 0
	case s.RateLimit > 0:
		return s.RateLimit, s.RateBurst // a burst of 0 follows the tenant's rate
	case s.RateBurst > 0:
		return t.limiter.rate, s.RateBurst
	}
	return t.limiter.rate, int(t.limiter.burst)
}

// Verify finds the token whose secret this is without charging it a request: for
// checking a token presented by someone else (the admin family's verify route).
func (t *Tokens) Verify(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, errMissingCredentials()
	}
	tok, err := t.lookup(ctx, sha256.Sum256([]byte(secret)))
	if err != nil {
		return Principal{}, err
	}
	return principalOf(tok), nil
}

func errMissingCredentials() error {
	return errorf(KindUnauthorized, "missing credentials: send Authorization: Bearer <token>")
}

// ErrTokenExpired is in the chain of the KindUnauthorized error for an expired
// token, for the routes that word their own 401s.
var ErrTokenExpired = errors.New("the token has expired")

// lookup reads the token whose secret hashes to h and checks that it is neither
// revoked nor expired; an accepted token's use is recorded (coarsely, see
// LastUseInterval).
func (t *Tokens) lookup(ctx context.Context, h [32]byte) (store.Token, error) {
	now := t.now()
	var (
		tok    store.Token
		err    error
		cached bool
		gen    uint64
	)
	if t.cache != nil {
		tok, cached, gen = t.cache.get(h, time.Now())
	}
	if !cached {
		tok, err = t.st.TokenByHash(ctx, h[:])
	}
	if err == nil && subtle.ConstantTimeCompare(tok.Hash, h[:]) == 1 {
		// A recognised token names the caller of the request's audit events, even
		// when it is refused (revoked, expired, over its rate) below.
		store.ActorFrom(ctx).Recognise(tok.TenantID, tok.ID)
	}
	if errors.Is(err, store.ErrNotFound) || err == nil && (tok.RevokedAt != nil || subtle.ConstantTimeCompare(tok.Hash, h[:]) != 1) {
		t.uses.forget(h)
		return store.Token{}, errorf(KindUnauthorized, "the token is not valid")
	}
	if err != nil {
		// A tenant whose settings cannot be decoded (store.ErrBadSettings) is
		// KindUnavailable: refused, never served under default settings. Only
		// accepted rows are cached, and a change to a tenant's settings moves the
		// token epoch, so a cached principal does not outlive its settings.
		return store.Token{}, AsError(err)
	}
	if tok.ExpiresAt != nil && !now.Before(*tok.ExpiresAt) {
		t.uses.forget(h)
		return store.Token{}, &Error{Kind: KindUnauthorized, Err: ErrTokenExpired,
			Detail: "the token expired at " + tok.ExpiresAt.UTC().Format(time.RFC3339) + "; ask for a new one (scimd token create)"}
	}
	if t.cache != nil && !cached {
		t.cache.put(h, tok, gen, time.Now())
	}
	t.noteUse(ctx, tok, h, now)
	return tok, nil
}

func principalOf(tok store.Token) Principal {
	return Principal{TenantID: tok.TenantID, TokenID: tok.ID, Scopes: tok.Scopes, UserID: tok.UserID, Profile: CanonicalProfile(tok.Profile), Sandbox: tok.Sandbox,
		Tenant: Tenant{ID: tok.TenantID, Name: tok.TenantName, Settings: tok.TenantSettings}}
}

// Bootstrap prepares a fresh install. With secret set, the default tenant is created
// if needed and, if it has no token yet, gets exactly this one. With secret empty,
// and only when there is no tenant at all, the default tenant is created with a random
// token. It returns the secret it created ("" when it created none).
func (t *Tokens) Bootstrap(ctx context.Context, secret string) (string, error) {
	if secret == "" {
		ts, err := t.st.ListTenants(ctx)
		if errors.Is(err, store.ErrBadSettings) {
			t.log.Error("tenant settings cannot be decoded; its requests are refused", zap.Error(err))
			return "", nil // there are tenants
		}
		if err != nil || len(ts) > 0 {
			return "", err
		}
	}
	tn, err := t.st.TenantByName(ctx, DefaultTenant)
	if errors.Is(err, store.ErrNotFound) {
		tn, err = t.CreateTenant(ctx, DefaultTenant)
	}
	if errors.Is(err, store.ErrBadSettings) {
		// The tenant exists; its requests are refused until its settings are
		// repaired, and the other tenants are served meanwhile.
		t.log.Error("tenant settings cannot be decoded; its requests are refused", zap.Error(err))
		return "", nil
	}
	if err != nil {
		return "", AsError(err)
	}
	n, err := t.st.CountTokens(ctx, tn.ID)
	if err != nil || n > 0 {
		return "", err
	}
	return t.IssueToken(ctx, DefaultTenant, AllScopes, secret)
}

// TenantSettings are the settings the compatibility routes consult.
type TenantSettings = store.TenantSettings

// Families lists the compatibility route families a tenant may turn off.
var Families = []string{"partner", "admin", "platform", "superuser", "onboarding"}

// SetTenant applies settings given as key=value pairs to the named tenant:
// free_access=true|false, sign_in=configured|none, onboarding_api_user=configured|none,
// family.<name>=enabled|disabled, result_url_hosts=host[,host…] (empty clears the list),
// mail_from=address (the From of the tenant's messages; empty uses the server's),
// rate_limit=R|unlimited|default (requests a second per token of the tenant, in
// place of the server's --rate-limit) and rate_burst=B|default (in place of
// --rate-burst).
func (t *Tokens) SetTenant(ctx context.Context, tenant string, pairs []string) (TenantSettings, error) {
	tn, err := tenantNamed(ctx, t.st, tenant)
	if err != nil {
		return TenantSettings{}, err
	}
	set := tn.Settings
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		bad := errorf(KindInvalidValue, "setting %q: want key=value with free_access=true|false, sign_in=configured|none, onboarding_api_user=configured|none, family.<%s>=enabled|disabled, result_url_hosts=host,…, mail_from=address, rate_limit=R|unlimited|default or rate_burst=B|default", p, strings.Join(Families, "|"))
		if !ok {
			return TenantSettings{}, bad
		}
		switch {
		case k == "free_access" && (v == "true" || v == "false"):
			set.FreeAccess = v == "true"
		case k == "sign_in" && (v == "configured" || v == "none"):
			set.NoSignIn = v == "none"
		case k == "onboarding_api_user" && (v == "configured" || v == "none"):
			set.NoOnboardingUser = v == "none"
		case k == "result_url_hosts":
			set.ResultURLHosts = nil
			for _, h := range strings.Split(v, ",") {
				if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
					set.ResultURLHosts = append(set.ResultURLHosts, h)
				}
			}
		case k == "mail_from":
			if v != "" {
				if _, err := mail.ParseAddress(v); err != nil {
					return TenantSettings{}, errorf(KindInvalidValue, "mail_from %q: want an address such as \"Example <no-reply@example.com>\"", v)
				}
			}
			set.MailFrom = v
		case k == "rate_limit":
			r, unlimited, err := parseTenantRate(v)
			if err != nil {
				return TenantSettings{}, err
			}
			set.RateLimit, set.NoRateLimit = r, unlimited
		case k == "rate_burst":
			b, err := parseTenantBurst(v)
			if err != nil {
				return TenantSettings{}, err
			}
			set.RateBurst = b
		case strings.HasPrefix(k, "family.") && slices.Contains(Families, strings.TrimPrefix(k, "family.")) && (v == "enabled" || v == "disabled"):
			f := strings.TrimPrefix(k, "family.")
			set.DisabledFamilies = slices.DeleteFunc(set.DisabledFamilies, func(x string) bool { return x == f })
			if v == "disabled" {
				set.DisabledFamilies = append(set.DisabledFamilies, f)
			}
		default:
			return TenantSettings{}, bad
		}
	}
	if err := t.st.SetTenantSettings(ctx, tn.ID, set); err != nil {
		return TenantSettings{}, AsError(err)
	}
	t.forgetAll()
	return set, nil
}

// maxTenantRate bounds a tenant's rate limit; anything faster is no limit at all.
const maxTenantRate = 1e6

// parseTenantRate reads rate_limit: requests a second (0 or "default": the
// server's), or "unlimited".
func parseTenantRate(v string) (rate float64, unlimited bool, err error) {
	switch v {
	case "default":
		return 0, false, nil
	case "unlimited":
		return 0, true, nil
	}
	r, perr := strconv.ParseFloat(v, 64)
	if perr != nil || !(r >= 0 && r <= maxTenantRate) {
		return 0, false, errorf(KindInvalidValue, "rate_limit %q: want requests per second from 0 to %g (fractions allowed; 0 or default: the server's --rate-limit), or unlimited", v, float64(maxTenantRate))
	}
	return r, false, nil
}

// parseTenantBurst reads rate_burst: requests at once (0 or "default": the server's
// --rate-burst, or the tenant's rate_limit rounded up when it has one).
func parseTenantBurst(v string) (int, error) {
	if v == "default" {
		return 0, nil
	}
	b, err := strconv.Atoi(v)
	if err != nil || b < 0 || b > maxTenantRate {
		return 0, errorf(KindInvalidValue, "rate_burst %q: want a whole number of requests from 0 to %d (0 or default: the server's --rate-burst)", v, int(maxTenantRate))
	}
	return b, nil
}

// TenantToken is a token as listed for an operator: never its secret or hash.
type TenantToken struct {
	Tenant string
	store.Token
}

// ListTokens lists the tokens of the named tenant, or of every tenant when tenant
// is "", with their scopes, expiry, last use and revocation.
func (t *Tokens) ListTokens(ctx context.Context, tenant string) ([]TenantToken, error) {
	var tenants []Tenant
	if tenant == "" {
		ts, err := t.st.ListTenants(ctx)
		if err != nil {
			return nil, AsError(err)
		}
		tenants = ts
	} else {
		tn, err := tenantNamed(ctx, t.st, tenant)
		if err != nil {
			return nil, err
		}
		tenants = []Tenant{tn}
	}
	var out []TenantToken
	for _, tn := range tenants {
		toks, err := t.st.ListTokens(ctx, tn.ID)
		if err != nil {
			return nil, AsError(err)
		}
		for _, tok := range toks {
			tok.Hash = nil
			out = append(out, TenantToken{Tenant: tn.Name, Token: tok})
		}
	}
	return out, nil
}

// RevokeUser revokes every token bound to a user of the tenant; the next request
// with any of them is 401, on every replica.
func (t *Tokens) RevokeUser(ctx context.Context, tenantID, userID string) error {
	if err := t.st.RevokeUserTokens(ctx, tenantID, normID(userID)); err != nil {
		return AsError(err)
	}
	t.forgetAll()
	return nil
}

// Revoke revokes the token id of the named tenant (as `scimd token list` shows
// it); the next request with it is 401, on every replica. Revoking a revoked token
// is no error.
func (t *Tokens) Revoke(ctx context.Context, tenant, id string) error {
	tn, err := tenantNamed(ctx, t.st, tenant)
	if err != nil {
		return err
	}
	if err := t.st.RevokeToken(ctx, tn.ID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &Error{Kind: KindNotFound, Detail: fmt.Sprintf("tenant %q has no token %q (see scimd token list)", tenant, id), Err: err}
		}
		return AsError(err)
	}
	t.forgetAll()
	return nil
}

// IssueForUser makes a token bound to a user of the tenant with this id, with no
// scope: it opens no route itself, and the product behind a compatibility API
// checks it with Authenticate. The secret is returned once.
func (t *Tokens) IssueForUser(ctx context.Context, tenantID, userID string) (string, error) {
	tn, err := t.st.TenantByID(ctx, tenantID)
	if err != nil {
		return "", AsError(err)
	}
	return t.Issue(ctx, tn.Name, TokenOptions{Scopes: []string{}, UserID: userID})
}
