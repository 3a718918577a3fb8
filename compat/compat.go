// Package compat serves the vendor-style provisioning APIs of the compatibility
// contract beside /scim/v2. Each family lives in its own file and is a thin
// translation: decode the vendor's request, turn it purely into SCIM resources and
// PATCH operations, call the same scim.Service a SCIM client would, and answer in the
// vendor's shape through that family's one error writer. Nothing here touches the
// store: users, tokens, settings and messages all go through package scim.
package compat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/middleware"
)

// Options configure the compatibility routes.
type Options struct {
	// BaseURL is the public URL scimd is reached at; "" derives it from the request.
	BaseURL string
	// MaxBodyBytes bounds request bodies (413 beyond).
	MaxBodyBytes int64
}

// Compat holds what every family needs.
type Compat struct {
	svc    *scim.Service
	tokens *scim.Tokens
	log    *zap.Logger
	opts   Options
}

// New returns the compatibility routes over the SCIM service and tokens.
func New(svc *scim.Service, tokens *scim.Tokens, log *zap.Logger, o Options) *Compat {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	return &Compat{svc: svc, tokens: tokens, log: log.Named("compat"), opts: o}
}

// Mount registers every family's routes on mux.
func (c *Compat) Mount(mux middleware.Mux) {
	c.mountPartner(mux)
	c.mountAdmin(mux)
	c.mountPlatform(mux)
	c.mountSuperuser(mux)
	c.mountOnboarding(mux)
}

// Family names, as used by `scimd tenant set family.<name>=disabled`.
const (
	FamilyPartner    = "partner"
	FamilyAdmin      = "admin"
	FamilyPlatform   = "platform"
	FamilySuperuser  = "superuser"
	FamilyOnboarding = "onboarding"
)

// MaxEmailLength is the longest email the contract accepts, in characters (Unicode
// code points), not bytes: the administration document allows up to 255 characters
// "regardless of character encoding".
const MaxEmailLength = 255

// errBadEmail is returned by NormalizeEmail; families map it to their 400.
var errBadEmail = errors.New("invalid email")

// NormalizeEmail applies the contract's identity rule: trimmed, lower-cased, in
// Unicode Normalization Form C (the form userName is stored in, so a precomposed and
// a decomposed "é" name one user), at most 255 characters (counted as code points
// after normalisation, so an address of accented letters is not refused for its
// UTF-8 length), and shaped like an address (local@domain, no display name).
func NormalizeEmail(raw string) (string, error) {
	e := scim.NormalizeUserName(strings.ToLower(strings.TrimSpace(raw)))
	if e == "" {
		return "", fmt.Errorf("%w: email is required", errBadEmail)
	}
	if utf8.RuneCountInString(e) > MaxEmailLength {
		return "", fmt.Errorf("%w: email is longer than %d characters", errBadEmail, MaxEmailLength)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" || !strings.Contains(e[strings.LastIndex(e, "@")+1:], ".") {
		return "", fmt.Errorf("%w: %q is not an email address such as ann@example.com", errBadEmail, raw)
	}
	return e, nil
}

// userBody is the SCIM User a contract route creates for an email (the identity key).
func userBody(email string) map[string]any {
	return map[string]any{
		"schemas":  []any{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": email,
		"emails":   []any{map[string]any{"value": email, "type": "work", "primary": true}},
		"active":   true,
	}
}

// findByEmail finds the user whose userName is the email (case-insensitively).
func (c *Compat) findByEmail(ctx context.Context, tenantID, email string) (*scim.Resource, error) {
	one := 1
	page, err := c.svc.List(ctx, tenantID, scim.UserKind, scim.ListQuery{Filter: "userName eq " + strconv.Quote(email), Count: &one})
	if err != nil {
		return nil, err
	}
	if len(page.Resources) == 0 {
		return nil, &scim.Error{Kind: scim.KindNotFound, Detail: "no user with email " + email}
	}
	return page.Resources[0], nil
}

// mediaTypeError is a request body whose Content-Type says it is not JSON; each
// family's error writer answers it 415 in its own shape.
type mediaTypeError struct{ detail string }

func (e *mediaTypeError) Error() string { return e.detail }

// checkJSONContentType refuses, before a body is read, a body that cannot be JSON
// (RFC 8259 §8.1: JSON is UTF-8, and its media type is application/json). It accepts
// application/json and any application/*+json type, with no charset or charset
// utf-8; any other type or charset (text/plain, a form encoding, UTF-16) is a
// *mediaTypeError. A request without Content-Type is accepted only when missingOK,
// which each family sets from its vendor's document (where the vendor's own
// examples send the header, a client of that API sends it too), or when it has no
// body at all: a missing body is the decoder's 400, not a question of media type.
func checkJSONContentType(r *http.Request, missingOK bool) error {
	ct := r.Header.Get("Content-Type")
	if strings.TrimSpace(ct) == "" {
		if missingOK || r.ContentLength == 0 {
			return nil
		}
		return &mediaTypeError{detail: "the request has no Content-Type; send the JSON body with Content-Type: application/json"}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return &mediaTypeError{detail: fmt.Sprintf("the body must be JSON sent as Content-Type: application/json, not %q", ct)}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &mediaTypeError{detail: fmt.Sprintf("the body must be JSON in UTF-8, not charset %q", cs)}
	}
	return nil
}

// decodeJSON reads a JSON body into v with scim.DecodeJSON: bad JSON, trailing
// data, a key given twice and invalid UTF-8 are a scim.KindInvalidSyntax error with
// the reason, a NUL character is scim.KindInvalidValue; a body over the limit is
// errTooLarge.
func (c *Compat) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errTooLarge
		}
		return &scim.Error{Kind: scim.KindInvalidSyntax, Detail: "cannot read the request body", Err: err}
	}
	return scim.DecodeJSON(raw, c.svc.Limits().MaxJSONDepth, v)
}

// errTooLarge is a body over Options.MaxBodyBytes; families answer 413.
var errTooLarge = errors.New("request body too large")

// authenticate resolves a token of the vendor's style to its principal (with its tenant),
// requiring scope and the family enabled for the tenant.
func (c *Compat) authenticate(ctx context.Context, secret, scope, family string) (scim.Principal, error) {
	p, err := c.tokens.Authenticate(ctx, secret)
	if err != nil {
		return scim.Principal{}, err
	}
	if !p.Has(scope) {
		return scim.Principal{}, &scim.Error{Kind: scim.KindForbidden, Detail: "this token lacks the " + scope + " scope"}
	}
	if slices.Contains(p.Tenant.Settings.DisabledFamilies, family) {
		return scim.Principal{}, errFamilyDisabled
	}
	return p, nil
}

// errFamilyDisabled: the tenant turned this route family off (scimd tenant set).
var errFamilyDisabled = errors.New("this API is not enabled for the tenant")

// writeJSON answers with a JSON body.
var writeJSON = middleware.WriteJSON

// kindStatus is the HTTP status, generic error code and client-safe message of a
// service error for the families that answer in their own JSON shape. It is the one
// table from scim error kinds to statuses here; each family's writer starts from it
// and renames only the codes and messages its vendor documents. A conflicting
// concurrent change (KindPrecondition) is 409 in these APIs, which know no ETags.
func kindStatus(e *scim.Error) (int, string, string) {
	switch e.Kind {
	case scim.KindInvalidValue, scim.KindInvalidSyntax, scim.KindInvalidFilter, scim.KindInvalidPath,
		scim.KindNoTarget, scim.KindMutability, scim.KindTooMany, scim.KindInvalidCursor, scim.KindExpiredCursor:
		return http.StatusBadRequest, "invalid_request", e.Detail
	case scim.KindUnauthorized:
		return http.StatusUnauthorized, "unauthorized", e.Detail
	case scim.KindForbidden:
		return http.StatusForbidden, "forbidden", e.Detail
	case scim.KindNotFound:
		return http.StatusNotFound, "not_found", e.Detail
	case scim.KindUniqueness, scim.KindPrecondition:
		return http.StatusConflict, "conflict", e.Detail
	case scim.KindUnavailable:
		return http.StatusServiceUnavailable, "unavailable", e.Detail
	case scim.KindTooManyRequests:
		return http.StatusTooManyRequests, "too_many_requests", e.Detail
	}
	return http.StatusInternalServerError, "internal", "internal error"
}

// refused is what every family's error writer does besides shaping its body: it
// puts code on the request's audit event and logs the error once — a 500 at error
// level under a fresh error id, which it returns for the answer to name; any other
// 5xx (503: the database is unreachable) at warn; a refusal (4xx) at debug. failMsg
// is the family's log message for failures.
func refused(log *zap.Logger, r *http.Request, failMsg string, status int, code, msg string, err error) (errorID string) {
	scim.ActorFrom(r.Context()).Refuse(code)
	rid := middleware.RequestID(r.Context())
	switch {
	case status == http.StatusInternalServerError:
		return logInternal(log, r, failMsg, err, zap.Int("status", status))
	case status >= 500:
		log.Warn(failMsg, zap.String("request_id", rid), zap.Int("status", status), zap.Error(err))
	default:
		log.Debug("request refused", zap.String("request_id", rid), zap.Int("status", status), zap.String("code", code), zap.String("message", msg))
	}
	return ""
}

// logInternal logs an unexpected error once, at error level, with a fresh error id
// and the request id, and returns the id for the answer: the error's own text never
// reaches the client.
func logInternal(log *zap.Logger, r *http.Request, msg string, err error, fields ...zap.Field) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	log.Error(msg, append([]zap.Field{zap.String("error_id", id), zap.String("request_id", middleware.RequestID(r.Context())), zap.Error(err)}, fields...)...)
	return id
}
