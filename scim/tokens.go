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
	"strings"

	"github.com/scimd/scimd/store"
)

// Token scopes: which routes a token may call.
const (
	ScopeSCIM   = "scim"
	ScopeCompat = "compat"
	ScopeAdmin  = "admin"
)

// AllScopes lists every scope, in the order they are printed.
var AllScopes = []string{ScopeSCIM, ScopeCompat, ScopeAdmin}

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
	ListTenants(ctx context.Context) ([]store.Tenant, error)
	CreateToken(ctx context.Context, t store.Token) (store.Token, error)
	TokenByHash(ctx context.Context, hash []byte) (store.Token, error)
	CountTokens(ctx context.Context, tenantID string) (int, error)
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
	// Sandbox is set for sandbox tokens.
	Sandbox bool
}

// Has reports whether the principal holds scope.
func (p Principal) Has(scope string) bool { return slices.Contains(p.Scopes, scope) }

// Tokens manages tenants and API tokens. Secrets are random, shown once, and stored
// only as their SHA-256.
type Tokens struct {
	st      Accounts
	limiter *RateLimiter // nil: no rate limit
}

// TokensOption configures Tokens.
type TokensOption func(*Tokens)

// WithRateLimiter makes Authenticate charge every request it authenticates to the
// token's bucket in l; nil means no limit.
func WithRateLimiter(l *RateLimiter) TokensOption {
	return func(t *Tokens) { t.limiter = l }
}

// NewTokens returns the tenant and token use cases over st.
func NewTokens(st Accounts, opts ...TokensOption) *Tokens {
	t := &Tokens{st: st}
	for _, o := range opts {
		o(t)
	}
	return t
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
	// Profile is the client profile its requests are read with: lenient (the
	// default), strict, okta or entra.
	Profile string
	// Sandbox marks a token the compatibility routes refuse for changes.
	Sandbox bool
	// Key32 makes the random secret a 32-character key, the form some vendor APIs
	// expect, instead of the default scimd_… token.
	Key32 bool
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
	if _, err := t.st.CreateToken(ctx, store.Token{TenantID: tn.ID, Hash: h[:], Scopes: o.Scopes, UserID: userID, Profile: profile, Sandbox: o.Sandbox}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return "", &Error{Kind: KindUniqueness, Detail: "this token exists already", Err: err}
		}
		return "", AsError(err)
	}
	return secret, nil
}

// Authenticate finds the token whose secret this is, for a request made with it:
// with a rate limiter (WithRateLimiter), the request is charged to the token and a
// token over its limit is a KindTooManyRequests error. Every route authenticates
// through here, so the limit holds across the SCIM API and every compat family.
func (t *Tokens) Authenticate(ctx context.Context, secret string) (Principal, error) {
	p, err := t.Verify(ctx, secret)
	if err != nil {
		return Principal{}, err
	}
	if err := t.limiter.Allow(p.TokenID); err != nil {
		return Principal{}, err
	}
	return p, nil
}

// Verify finds the token whose secret this is without charging it a request: for
// checking a token presented by someone else (the admin family's verify route).
func (t *Tokens) Verify(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, errorf(KindUnauthorized, "missing credentials: send Authorization: Bearer <token>")
	}
	h := sha256.Sum256([]byte(secret))
	tok, err := t.st.TokenByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) || err == nil && (tok.RevokedAt != nil || subtle.ConstantTimeCompare(tok.Hash, h[:]) != 1) {
		return Principal{}, errorf(KindUnauthorized, "the token is not valid")
	}
	if err != nil {
		return Principal{}, AsError(err)
	}
	return Principal{TenantID: tok.TenantID, TokenID: tok.ID, Scopes: tok.Scopes, UserID: tok.UserID, Profile: tok.Profile, Sandbox: tok.Sandbox}, nil
}

// Bootstrap prepares a fresh install. With secret set, the default tenant is created
// if needed and, if it has no token yet, gets exactly this one. With secret empty,
// and only when there is no tenant at all, the default tenant is created with a random
// token. It returns the secret it created ("" when it created none).
func (t *Tokens) Bootstrap(ctx context.Context, secret string) (string, error) {
	if secret == "" {
		ts, err := t.st.ListTenants(ctx)
		if err != nil || len(ts) > 0 {
			return "", err
		}
	}
	tn, err := t.st.TenantByName(ctx, DefaultTenant)
	if errors.Is(err, store.ErrNotFound) {
		tn, err = t.CreateTenant(ctx, DefaultTenant)
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
// mail_from=address (the From of the tenant's messages; empty uses the server's).
func (t *Tokens) SetTenant(ctx context.Context, tenant string, pairs []string) (TenantSettings, error) {
	tn, err := t.st.TenantByName(ctx, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return TenantSettings{}, &Error{Kind: KindNotFound, Detail: fmt.Sprintf("tenant %q does not exist", tenant), Err: err}
	}
	if err != nil {
		return TenantSettings{}, AsError(err)
	}
	set := tn.Settings
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		bad := errorf(KindInvalidValue, "setting %q: want key=value with free_access=true|false, sign_in=configured|none, onboarding_api_user=configured|none, family.<%s>=enabled|disabled, result_url_hosts=host,… or mail_from=address", p, strings.Join(Families, "|"))
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
	return set, nil
}

// Tenant returns the tenant with this id, with its settings.
func (t *Tokens) Tenant(ctx context.Context, id string) (Tenant, error) {
	tn, err := t.st.TenantByID(ctx, id)
	if err != nil {
		return Tenant{}, AsError(err)
	}
	return tn, nil
}

// RevokeUser revokes every token bound to a user of the tenant; the next request
// with any of them is 401, on every replica.
func (t *Tokens) RevokeUser(ctx context.Context, tenantID, userID string) error {
	if err := t.st.RevokeUserTokens(ctx, tenantID, normID(userID)); err != nil {
		return AsError(err)
	}
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
