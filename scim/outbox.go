package scim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/store"
)

// Outbox delivery: the messages queued with their users (set-password links,
// invitations, email verifications) are sent by a worker that every server runs.
// Messages are claimed with a lease, so several replicas share the work and a
// message held by a replica that died is taken over when its lease ends. Each
// message is sent with a Message-ID derived from its id, so a retry after an unclear
// outcome (the connection dropped after the data was sent) is recognisable as the
// same message. A failed attempt is retried with exponential backoff; after
// MaxAttempts the message is failed and stays visible until retried by hand. With no
// Mailer configured messages are logged (without their link) and stay pending.

// The message kinds the outbox knows how to write.
const (
	MessageSetPassword = "set_password"
	MessageInvitation  = "invitation"
	MessageVerifyEmail = "verify_email"
)

// The states of a message.
const (
	MessagePending = store.MessagePending
	MessageSent    = store.MessageSent
	MessageFailed  = store.MessageFailed
)

// The account pages a link leads to, under the server's public URL.
const (
	SetPasswordPath = "/account/set-password"
	VerifyEmailPath = "/account/verify-email"
)

// OutboxStore is what delivery needs from persistence; store.Store with the
// gorm store's outbox methods satisfies it.
type OutboxStore interface {
	store.OutboxStore
	TenantByID(ctx context.Context, id string) (store.Tenant, error)
	TenantByName(ctx context.Context, name string) (store.Tenant, error)
	Outbox(ctx context.Context, tenantID string) ([]store.Message, error)
}

// Letter is one message ready to be written and sent: the message, its tenant and,
// for the kinds that carry one, the link and when it expires.
type Letter struct {
	Message   Message
	Tenant    Tenant
	Link      string
	Expires   time.Time
	MessageID string
}

// Mailer writes and sends a letter. An error that reports Permanent() true fails
// the message at once (the server refused the recipient); any other is retried.
type Mailer interface {
	Send(ctx context.Context, l Letter) error
}

// OutboxOptions tune delivery; zero fields take the defaults.
type OutboxOptions struct {
	// BaseURL is the public URL links point to (required to send links).
	BaseURL string
	// Batch is how many messages one step claims (default 10).
	Batch int
	// Lease is how long a claim keeps its messages from other workers (default two
	// minutes); it must be longer than one send may take.
	Lease time.Duration
	// Poll is how long an idle worker waits before looking again (default 5s).
	Poll time.Duration
	// MaxAttempts is how many attempts a message gets before it fails (default 8).
	MaxAttempts int
	// Backoff is the wait after the first failed attempt, doubled after each
	// further one up to MaxBackoff (defaults 30s and one hour).
	Backoff, MaxBackoff time.Duration
	// Unconfigured is how long a message waits before it is logged again while no
	// Mailer is configured (default ten minutes).
	Unconfigured time.Duration
	// LinkTTL is how long a link stays valid (default 72 hours).
	LinkTTL time.Duration
}

func (o OutboxOptions) withDefaults() OutboxOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Batch <= 0 {
		o.Batch = 10
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	def(&o.Lease, 2*time.Minute)
	def(&o.Poll, 5*time.Second)
	def(&o.Backoff, 30*time.Second)
	def(&o.MaxBackoff, time.Hour)
	def(&o.Unconfigured, 10*time.Minute)
	def(&o.LinkTTL, 72*time.Hour)
	o.BaseURL = strings.TrimSuffix(o.BaseURL, "/")
	return o
}

// Outbox delivers messages and serves the links they carry.
type Outbox struct {
	st     OutboxStore
	svc    *Service
	mailer Mailer
	log    *zap.Logger
	o      OutboxOptions
}

// NewOutbox returns the delivery worker and account use cases over st, writing
// users through svc and sending with m (nil: log and keep messages pending).
func NewOutbox(st OutboxStore, svc *Service, m Mailer, log *zap.Logger, o OutboxOptions) *Outbox {
	return &Outbox{st: st, svc: svc, mailer: m, log: log.Named("outbox"), o: o.withDefaults()}
}

// Options returns the options the outbox runs with, defaults filled in.
func (d *Outbox) Options() OutboxOptions { return d.o }

// MessageID is the Message-ID header of a message: the same on every attempt.
func MessageID(m Message) string { return "<" + m.ID + "@scimd>" }

// Step claims due messages and attempts each once; it returns how many it claimed.
func (d *Outbox) Step(ctx context.Context) (int, error) {
	token := uuid.NewString()
	msgs, err := d.st.ClaimMessages(ctx, d.o.Batch, store.Claim{Token: token, Lease: d.o.Lease})
	if err != nil {
		return 0, AsError(err)
	}
	for _, m := range msgs {
		if ctx.Err() != nil {
			// Give the rest back to the next worker at once.
			d.finish(context.WithoutCancel(ctx), token, store.MessageOutcome{ID: m.ID, Status: MessagePending, Uncounted: true, LastError: m.LastError})
			continue
		}
		d.finish(ctx, token, d.attempt(ctx, m))
	}
	return len(msgs), nil
}

func (d *Outbox) finish(ctx context.Context, token string, o store.MessageOutcome) {
	ok, err := d.st.FinishMessage(ctx, token, o)
	switch {
	case err != nil:
		d.log.Warn("message outcome not recorded; it is tried again when its claim ends", zap.String("message_id", o.ID), zap.Error(err))
	case !ok:
		d.log.Warn("message claim was lost before its outcome was recorded", zap.String("message_id", o.ID))
	}
}

// attempt tries one claimed message and says what came of it.
func (d *Outbox) attempt(ctx context.Context, m Message) store.MessageOutcome {
	out := store.MessageOutcome{ID: m.ID, MessageID: MessageID(m)}
	fields := []zap.Field{zap.String("message_id", m.ID), zap.String("tenant_id", m.TenantID), zap.String("kind", m.Kind), zap.Int("attempt", m.Attempts)}
	if d.mailer == nil {
		d.log.Warn("message waiting: no SMTP server is configured", append(fields, zap.String("recipient", m.Recipient))...)
		out.Status, out.Uncounted, out.NextAttempt, out.LastError = MessagePending, true, time.Now().Add(d.o.Unconfigured), "no SMTP server configured"
		return out
	}
	err := d.send(ctx, m, out.MessageID)
	if err == nil {
		out.Status = MessageSent
		d.log.Info("message sent", fields...)
		return out
	}
	out.LastError = err.Error()
	var p interface{ Permanent() bool }
	if m.Attempts >= d.o.MaxAttempts || (errors.As(err, &p) && p.Permanent()) {
		out.Status = MessageFailed
		d.log.Error("message failed", append(fields, zap.Error(err))...)
		return out
	}
	wait := d.o.Backoff
	for i := 1; i < m.Attempts && wait < d.o.MaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, d.o.MaxBackoff)
	out.Status, out.NextAttempt = MessagePending, time.Now().Add(wait)
	d.log.Warn("message not sent; retrying later", append(fields, zap.Duration("retry_in", wait), zap.Error(err))...)
	return out
}

// errPermanent marks a message that can never be sent.
type errPermanent struct{ msg string }

func (e errPermanent) Error() string   { return e.msg }
func (e errPermanent) Permanent() bool { return true }

// send writes the letter for m, with a fresh link when its kind carries one, and
// hands it to the mailer.
func (d *Outbox) send(ctx context.Context, m Message, messageID string) error {
	tn, err := d.st.TenantByID(ctx, m.TenantID)
	if err != nil {
		return err
	}
	if _, err := d.svc.st.Get(ctx, m.TenantID, store.KindUser, m.UserID, store.ReadOptions{}); errors.Is(err, store.ErrNotFound) {
		return errPermanent{"the user no longer exists"}
	} else if err != nil {
		return err
	}
	l := Letter{Message: m, Tenant: tn, MessageID: messageID}
	if path := linkPath(m.Kind); path != "" {
		if d.o.BaseURL == "" {
			return errPermanent{"no public URL is configured for links"}
		}
		secret, hash, err := newLinkSecret()
		if err != nil {
			return err
		}
		t := time.Now().UTC().Truncate(time.Microsecond)
		l.Expires = t.Add(d.o.LinkTTL)
		// Issuing the link revokes the user's earlier unused links of the same
		// purpose: only the newest message's link sets a password.
		if err := d.st.CreateLink(ctx, store.Link{Hash: hash, TenantID: m.TenantID, UserID: m.UserID, Message: m.ID,
			Kind: m.Kind, Purpose: linkPurpose(m.Kind), Created: t, Expires: l.Expires}); err != nil {
			return err
		}
		l.Link = d.o.BaseURL + path + "?token=" + url.QueryEscape(secret)
	}
	return d.mailer.Send(ctx, l)
}

// linkPath is the page a message kind's link leads to, or "" for a kind without one.
func linkPath(kind string) string {
	switch kind {
	case MessageSetPassword, MessageInvitation:
		return SetPasswordPath
	case MessageVerifyEmail:
		return VerifyEmailPath
	}
	return ""
}

// linkPurpose groups the kinds whose links do the same thing: an invitation's link
// sets a password as a set-password message's does. A user has at most one usable
// link per purpose.
func linkPurpose(kind string) string {
	if kind == MessageInvitation {
		return MessageSetPassword
	}
	return kind
}

func newLinkSecret() (secret string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, linkHash(secret), nil
}

func linkHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Work runs Step until ctx ends, waiting Poll when there was nothing to do.
func (d *Outbox) Work(ctx context.Context) {
	d.log.Info("delivery worker started", zap.Bool("smtp", d.mailer != nil), zap.Duration("poll", d.o.Poll))
	defer d.log.Info("delivery worker stopped")
	runWorker(ctx, d.log, "delivery", d.o.Poll, d.Step)
}

// Messages lists the named tenant's messages, oldest first; failed selects the
// failed ones only.
func (d *Outbox) Messages(ctx context.Context, tenant string, failed bool) ([]Message, error) {
	tn, err := tenantNamed(ctx, d.st, tenant)
	if err != nil {
		return nil, err
	}
	msgs, err := d.st.Outbox(ctx, tn.ID)
	if err != nil {
		return nil, AsError(err)
	}
	if failed {
		msgs = slices.DeleteFunc(msgs, func(m Message) bool { return m.Status != MessageFailed })
	}
	return msgs, nil
}

// Retry makes a message that was not sent due at once, with its attempts reset.
func (d *Outbox) Retry(ctx context.Context, id string) error {
	err := d.st.RetryMessage(ctx, strings.ToLower(strings.TrimSpace(id)))
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Kind: KindNotFound, Detail: fmt.Sprintf("no unsent message with id %q", id), Err: err}
	}
	if err != nil {
		return AsError(err)
	}
	return nil
}

// LinkInfo describes a valid link to the page that serves it.
type LinkInfo struct {
	Kind       string
	TenantName string
	Expires    time.Time
}

// errLinkInvalid is what every unusable link is: unknown, used or expired alike,
// so a page does not tell a guesser which.
func errLinkInvalid(err error) error {
	return &Error{Kind: KindNotFound, Detail: "this link is not valid any more: it was used already, it expired, or it is incomplete", Err: err}
}

// ErrLinkReplaced is in the chain of the error for a link that a newer link of
// the same purpose replaced (or another link of its user was used), so that a page
// can say so.
var ErrLinkReplaced = errors.New("link replaced")

// errLinkReplaced is a link revoked by a newer one; only its holder can learn
// that, as only the holder has the secret.
func errLinkReplaced() error {
	return &Error{Kind: KindNotFound, Detail: "this link was replaced by a newer one: use the link in the most recent message", Err: ErrLinkReplaced}
}

// CheckLink tells whether secret is a link that can still be used for page (the
// path it was opened at): not used, revoked or expired, and its user still exists.
func (d *Outbox) CheckLink(ctx context.Context, page, secret string) (LinkInfo, error) {
	if secret == "" {
		return LinkInfo{}, errLinkInvalid(nil)
	}
	l, err := d.st.Link(ctx, linkHash(secret))
	if errors.Is(err, store.ErrNotFound) {
		return LinkInfo{}, errLinkInvalid(err)
	}
	if err != nil {
		return LinkInfo{}, AsError(err)
	}
	if linkPath(l.Kind) != page {
		return LinkInfo{}, errLinkInvalid(nil)
	}
	if l.UsedAt == nil && l.RevokedAt != nil {
		return LinkInfo{}, errLinkReplaced()
	}
	if l.UsedAt != nil || !time.Now().Before(l.Expires) {
		return LinkInfo{}, errLinkInvalid(nil)
	}
	if _, err := d.svc.st.Get(ctx, l.TenantID, store.KindUser, l.UserID, store.ReadOptions{}); errors.Is(err, store.ErrNotFound) {
		return LinkInfo{}, errLinkInvalid(err) // the user was deleted
	} else if err != nil {
		return LinkInfo{}, AsError(err)
	}
	tn, err := d.st.TenantByID(ctx, l.TenantID)
	if err != nil {
		return LinkInfo{}, AsError(err)
	}
	return LinkInfo{Kind: l.Kind, TenantName: tn.Name, Expires: l.Expires}, nil
}

// CheckPassword applies the service's password policy (see CheckPassword); the
// detail is safe to show.
func (d *Outbox) CheckPassword(pw string) error { return d.svc.CheckPassword(pw) }

// PasswordMinLength is the shortest password the set-password page accepts: the
// service's.
func (d *Outbox) PasswordMinLength() int { return d.svc.passwordMinLength() }

// use consumes a link for page, runs fn with it, and gives the link back when fn
// fails, so that a failure on scimd's side does not burn the user's link.
func (d *Outbox) use(ctx context.Context, page, secret string, fn func(store.Link) error) (store.Link, error) {
	if secret == "" {
		return store.Link{}, errLinkInvalid(nil)
	}
	if a := store.ActorFrom(ctx); a != nil {
		a.Route = RouteAccount // the change a link makes is recorded as the account page's
	}
	l, err := d.st.UseLink(ctx, linkHash(secret), time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return store.Link{}, errLinkInvalid(err)
	}
	if err != nil {
		return store.Link{}, AsError(err)
	}
	if linkPath(l.Kind) != page {
		if rerr := d.st.ReleaseLink(context.WithoutCancel(ctx), l); rerr != nil {
			d.log.Error("link opened at the wrong page not released", zap.String("message_id", l.Message), zap.Error(rerr))
		}
		return store.Link{}, errLinkInvalid(nil)
	}
	if err := fn(l); err != nil {
		if rerr := d.st.ReleaseLink(context.WithoutCancel(ctx), l); rerr != nil {
			d.log.Error("link not released after a failed use", zap.String("message_id", l.Message), zap.Error(rerr))
		}
		if e := AsError(err); e.Kind == KindNotFound {
			return store.Link{}, errLinkInvalid(err)
		}
		return store.Link{}, AsError(err)
	}
	return l, nil
}

// SetPassword sets the password of the user a set-password link was sent to and
// uses up the link. It returns where to send the browser next: the result_url
// stored with the message when its host is allowed by the tenant, else "".
func (d *Outbox) SetPassword(ctx context.Context, secret, password string) (string, error) {
	if err := d.CheckPassword(password); err != nil {
		return "", err
	}
	l, err := d.use(ctx, SetPasswordPath, secret, func(l store.Link) error {
		_, err := d.svc.Patch(ctx, l.TenantID, UserKind, l.UserID, []PatchOp{{Op: "replace", Path: "password", Value: password}}, "", Projection{})
		return err
	})
	if err != nil {
		return "", err
	}
	return d.resultURL(ctx, l), nil
}

// VerifyEmail marks the user a verification link was sent to as having a
// verified email (the scimd User extension's emailVerified) and uses up the link.
func (d *Outbox) VerifyEmail(ctx context.Context, secret string) error {
	_, err := d.use(ctx, VerifyEmailPath, secret, func(l store.Link) error {
		_, err := d.svc.Patch(ctx, l.TenantID, UserKind, l.UserID, []PatchOp{{Op: "replace", Path: schemas.ScimdUserURN + ":emailVerified", Value: true}}, "", Projection{})
		return err
	})
	return err
}

// resultURL reads the result_url stored with a link's message and returns it if it
// is an absolute http(s) URL whose host the tenant allows (any, when the tenant has
// no list).
func (d *Outbox) resultURL(ctx context.Context, l store.Link) string {
	m, err := d.st.Message(ctx, l.TenantID, l.Message)
	if err != nil {
		d.log.Warn("message of a used link not found; showing the success page", zap.String("message_id", l.Message), zap.Error(err))
		return ""
	}
	var p struct {
		ResultURL string `json:"result_url"`
	}
	if json.Unmarshal(m.Payload, &p) != nil || p.ResultURL == "" {
		return ""
	}
	u, err := url.Parse(p.ResultURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	tn, err := d.st.TenantByID(ctx, l.TenantID)
	if err != nil {
		return ""
	}
	if hosts := tn.Settings.ResultURLHosts; len(hosts) > 0 {
		name := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if !slices.Contains(hosts, name) && !slices.Contains(hosts, strings.ToLower(u.Host)) {
			d.log.Info("result_url host not allowed by the tenant; showing the success page", zap.String("message_id", l.Message), zap.String("host", u.Host))
			return ""
		}
	}
	return u.String()
}
