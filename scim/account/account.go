// Package account serves the pages the links in scimd's messages lead to: set a
// password (/account/set-password) and confirm an email address
// (/account/verify-email). They are plain server-rendered HTML forms that work
// without JavaScript. The link's secret travels in the query of the first GET only;
// the form posts it back in its body, responses carry Referrer-Policy: no-referrer,
// and the access log records the path alone, so the secret appears in no log and no
// Referer. Forms are protected from cross-site posts by a token bound to a cookie
// and to the link, and every client address is rate limited.
package account

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/middleware"
)

//go:embed page.html
var pageFS embed.FS

var page = template.Must(template.ParseFS(pageFS, "page.html"))

// Options tune the pages; zero fields take the defaults.
type Options struct {
	// SecureCookie marks the form cookie Secure (set when the public URL is https).
	SecureCookie bool
	// Rate is how many requests one client address may make per minute, with as
	// many at once (default 30); Clients bounds the addresses remembered (default
	// 10,000).
	Rate    int
	Clients int
}

// Handler serves the account pages.
type Handler struct {
	ob  *scim.Outbox
	key []byte
	log *zap.Logger
	o   Options
	rl  *limiter
}

// New returns the pages over ob; key signs the form tokens and must be the same on
// every replica.
func New(ob *scim.Outbox, key []byte, log *zap.Logger, o Options) *Handler {
	if o.Rate <= 0 {
		o.Rate = 30
	}
	if o.Clients <= 0 {
		o.Clients = 10000
	}
	return &Handler{ob: ob, key: key, log: log.Named("account"), o: o, rl: newLimiter(o.Rate, time.Minute, o.Clients)}
}

// Mount adds the pages to mux.
func (h *Handler) Mount(mux middleware.Mux) {
	mux.Handle("GET "+scim.SetPasswordPath, h.wrap(h.setPasswordForm))
	mux.Handle("POST "+scim.SetPasswordPath, h.wrap(h.setPassword))
	mux.Handle("GET "+scim.VerifyEmailPath, h.wrap(h.verifyEmailForm))
	mux.Handle("POST "+scim.VerifyEmailPath, h.wrap(h.verifyEmail))
}

const (
	csrfCookie   = "scimd_form"
	maxFormBytes = 16 << 10
)

// view is what page.html renders.
type view struct {
	Title, Tenant, Action, Token, CSRF, Expires string
	// Form selects the form shown: "password", "verify" or "" for a message alone.
	Form     string
	MinLen   int
	Message  string
	Error    string // about the form as a whole
	PwError  string // next to the password field
	CfmError string // next to the confirmation field
}

func (h *Handler) wrap(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
		if !h.rl.allow(clientAddr(r), time.Now()) {
			hd.Set("Retry-After", "60")
			h.render(w, http.StatusTooManyRequests, view{Title: "Too many attempts", Message: "Too many attempts from your address. Wait a minute and try again."})
			return
		}
		if err := fn(w, r); err != nil {
			h.fail(w, r, err)
		}
	})
}

// fail shows the page for an error: a used or expired link, or a failure on the
// server's side (logged with the request id, never with the link).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := scim.AsError(err)
	switch {
	case errors.Is(err, scim.ErrLinkReplaced):
		h.render(w, http.StatusGone, view{Title: "Link replaced", Message: "This link was replaced by a newer one: a more recent message was sent to you, or another link was used. Use the link in your most recent message."})
	case e.Kind == scim.KindNotFound:
		h.render(w, http.StatusGone, view{Title: "Link not valid", Message: "This link is not valid any more: it was used already, it expired, or it is incomplete. Ask for a new message."})
	case e.Kind == scim.KindUnavailable:
		h.log.Warn("account page unavailable", zap.String("request_id", middleware.RequestID(r.Context())), zap.Error(err))
		h.render(w, http.StatusServiceUnavailable, view{Title: "Try again later", Message: "The service is unavailable at the moment. Please try again in a few minutes."})
	default:
		h.log.Error("account page failed", zap.String("request_id", middleware.RequestID(r.Context())), zap.Error(err))
		h.render(w, http.StatusInternalServerError, view{Title: "Something went wrong", Message: "Something went wrong on our side (reference " + middleware.RequestID(r.Context()) + "). Please try again later."})
	}
}

func (h *Handler) render(w http.ResponseWriter, status int, v view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := page.Execute(w, v); err != nil {
		h.log.Warn("account page not written", zap.Error(err))
	}
}

// formCookie returns the browser's form cookie, setting a fresh one when it has
// none.
func (h *Handler) formCookie(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/account/", HttpOnly: true, Secure: h.o.SecureCookie,
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	return v
}

// csrf is the form token for a cookie and a link: only a page served to this
// browser for this link carries it.
func (h *Handler) csrf(cookie, token string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte("account-form\x00" + cookie + "\x00" + token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var errForm = errors.New("form token mismatch")

// checkPost reads a posted form and checks its form token; it returns the link.
func (h *Handler) checkPost(w http.ResponseWriter, r *http.Request) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return "", errForm
	}
	token := r.PostForm.Get("token")
	c, err := r.Cookie(csrfCookie)
	if err != nil || token == "" || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(h.csrf(c.Value, token))) != 1 {
		return token, errForm
	}
	return token, nil
}

func (h *Handler) formExpired(w http.ResponseWriter) {
	h.render(w, http.StatusForbidden, view{Title: "Form expired", Message: "This form could not be accepted (it expired, or cookies are blocked). Open the link from your message again."})
}

func (h *Handler) passwordView(w http.ResponseWriter, r *http.Request, token string, li scim.LinkInfo) view {
	return view{Title: "Set your password", Tenant: li.TenantName, Action: scim.SetPasswordPath, Token: token,
		CSRF: h.csrf(h.formCookie(w, r), token), Form: "password", MinLen: h.ob.PasswordMinLength(),
		Expires: li.Expires.UTC().Format("2 January 2006 at 15:04 UTC")}
}

func (h *Handler) setPasswordForm(w http.ResponseWriter, r *http.Request) error {
	token := r.URL.Query().Get("token")
	li, err := h.ob.CheckLink(r.Context(), scim.SetPasswordPath, token)
	if err != nil {
		return err
	}
	h.render(w, http.StatusOK, h.passwordView(w, r, token, li))
	return nil
}

func (h *Handler) setPassword(w http.ResponseWriter, r *http.Request) error {
	token, err := h.checkPost(w, r)
	if err != nil {
		h.formExpired(w)
		return nil
	}
	li, err := h.ob.CheckLink(r.Context(), scim.SetPasswordPath, token)
	if err != nil {
		return err
	}
	pw, confirm := r.PostForm.Get("password"), r.PostForm.Get("confirm")
	v := h.passwordView(w, r, token, li)
	if err := h.ob.CheckPassword(pw); err != nil {
		v.PwError = scim.AsError(err).Detail
	} else if pw != confirm {
		v.CfmError = "the two passwords are not the same"
	}
	if v.PwError != "" || v.CfmError != "" {
		v.Error = "Your password was not set. Correct the field marked below."
		h.render(w, http.StatusUnprocessableEntity, v)
		return nil
	}
	next, err := h.ob.SetPassword(r.Context(), token, pw)
	if err != nil {
		if e := scim.AsError(err); e.Kind == scim.KindInvalidValue {
			v.PwError = e.Detail
			v.Error = "Your password was not set. Correct the field marked below."
			h.render(w, http.StatusUnprocessableEntity, v)
			return nil
		}
		return err
	}
	if next != "" {
		// Only the result_url stored with the message, and only on an allowed host.
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	}
	h.render(w, http.StatusOK, view{Title: "Password set", Tenant: li.TenantName, Message: "Your password is set. You can close this page and sign in."})
	return nil
}

func (h *Handler) verifyEmailForm(w http.ResponseWriter, r *http.Request) error {
	token := r.URL.Query().Get("token")
	li, err := h.ob.CheckLink(r.Context(), scim.VerifyEmailPath, token)
	if err != nil {
		return err
	}
	h.render(w, http.StatusOK, view{Title: "Confirm your email address", Tenant: li.TenantName, Action: scim.VerifyEmailPath,
		Token: token, CSRF: h.csrf(h.formCookie(w, r), token), Form: "verify"})
	return nil
}

func (h *Handler) verifyEmail(w http.ResponseWriter, r *http.Request) error {
	token, err := h.checkPost(w, r)
	if err != nil {
		h.formExpired(w)
		return nil
	}
	if err := h.ob.VerifyEmail(r.Context(), token); err != nil {
		return err
	}
	h.render(w, http.StatusOK, view{Title: "Email address confirmed", Message: "Thank you: your email address is confirmed. You can close this page."})
	return nil
}

// clientAddr is the address a request came from (the connection's; headers a
// client can set are not trusted).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limiter is a token bucket per client address, holding at most max addresses:
// when full, addresses whose bucket has refilled are forgotten first, and if none
// has, all are.
type limiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	max     int
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(n int, per time.Duration, max int) *limiter {
	return &limiter{rate: float64(n) / per.Seconds(), burst: float64(n), max: max, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(addr string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= l.max {
			for k, o := range l.buckets {
				if o.tokens+now.Sub(o.last).Seconds()*l.rate >= l.burst {
					delete(l.buckets, k)
				}
			}
			if len(l.buckets) >= l.max {
				clear(l.buckets)
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[addr] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
