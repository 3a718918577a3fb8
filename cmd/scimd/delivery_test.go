package main

import (
	"context"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/account"
	scimmail "github.com/scimd/scimd/scim/mail"
	"github.com/scimd/scimd/scim/scimhttp"
	"github.com/scimd/scimd/store"
)

// sink is an SMTP server on 127.0.0.1 that keeps what it receives.
type sink struct {
	addr string
	srv  *smtp.Server
	mu   sync.Mutex
	got  []received
}

type received struct {
	from string
	to   []string
	msg  *mail.Message
	text string // the plain-text part, decoded
}

func startSink(t *testing.T, addr string) *sink {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{addr: ln.Addr().String()}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 5*time.Second, 5*time.Second
	s.srv.ErrorLog = smtpNoLog{}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

type smtpNoLog struct{}

func (smtpNoLog) Printf(string, ...any) {}
func (smtpNoLog) Println(...any)        {}

func (s *sink) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

type sinkSession struct {
	s    *sink
	from string
	to   []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(m.Body)
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	rec := received{from: ss.from, to: ss.to, msg: m}
	mr := multipart.NewReader(strings.NewReader(string(body)), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(p) // NextPart undoes the quoted-printable encoding
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			rec.text = string(b)
		}
	}
	ss.s.mu.Lock()
	ss.s.got = append(ss.s.got, rec)
	ss.s.mu.Unlock()
	return nil
}

// mailEnv is an env whose server also serves the account pages, with an outbox
// sending to addr ("" for none).
type mailEnv struct {
	*env
	ob   *scim.Outbox
	logs *observer.ObservedLogs // every level
}

func newMailEnv(t *testing.T, e *env, addr string, o scim.OutboxOptions) *mailEnv {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core))
	var m scim.Mailer
	if addr != "" {
		s, err := scimmail.New(scimmail.Config{Addr: addr, TLS: scimmail.TLSNone, From: "Example <no-reply@example.com>", Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		m = s
	}
	var draining atomic.Bool
	var ob *scim.Outbox
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	srv.Start()
	t.Cleanup(srv.Close)
	o.BaseURL = srv.URL
	if o.Backoff == 0 {
		o.Backoff = time.Millisecond
	}
	ob = scim.NewOutbox(e.st, e.svc, m, log, o)
	pages := account.New(ob, []byte("0123456789abcdef0123456789abcdef"), log, account.Options{})
	mux.Handle("/", newHandler(e.svc, e.tokens, e.st, log, &draining, false, scimhttp.Options{MaxBodyBytes: 64 << 10}, pages.Mount))
	e.srv = srv
	return &mailEnv{env: e, ob: ob, logs: logs}
}

// step runs one delivery step and returns how many messages it claimed.
func (me *mailEnv) step(t *testing.T) int {
	t.Helper()
	n, err := me.ob.Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// noSecretLogged fails if any log line carries secret.
func (me *mailEnv) noSecretLogged(t *testing.T, secret string) {
	t.Helper()
	for _, l := range me.logs.All() {
		line := l.Message + fmt.Sprint(l.ContextMap())
		if strings.Contains(line, secret) {
			t.Fatalf("log line carries a secret: %s", line)
		}
	}
}

func provisionPartner(t *testing.T, e *env, email, resultURL string) {
	t.Helper()
	partnerCall(t, e, e.token, "POST", partnerPath, map[string]any{"email": email, "result_url": resultURL}).want(t, http.StatusCreated)
}

var linkRE = regexp.MustCompile(`https?://\S+/account/[a-z-]+\?token=[A-Za-z0-9_-]+`)

// linkOf returns the link in a received message's text.
func linkOf(t *testing.T, r received) string {
	t.Helper()
	l := linkRE.FindString(r.text)
	if l == "" {
		t.Fatalf("no link in message:\n%s", r.text)
	}
	return l
}

// browser is an HTTP client with a cookie jar that does not follow redirects.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, header: res.Header, body: string(raw)}
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest("GET", u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenRE = regexp.MustCompile(`name="(token|csrf)" value="([^"]*)"`)

// form reads the hidden fields of a page's form.
func (p page) form(t *testing.T) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	if v.Get("token") == "" || v.Get("csrf") == "" {
		t.Fatalf("page has no form:\n%s", p.body)
	}
	return v
}

func (p page) want(t *testing.T, status int, text string) page {
	t.Helper()
	if p.status != status || !strings.Contains(p.body, text) {
		t.Fatalf("status %d, want %d with %q; body:\n%s", p.status, status, text, p.body)
	}
	if p.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("Referrer-Policy %q", p.header.Get("Referrer-Policy"))
	}
	return p
}

func userByName(t *testing.T, e *env, name string) *store.Resource {
	t.Helper()
	tn, err := e.st.TenantByName(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	f := fmt.Sprintf(`userName eq %q`, name)
	pg, err := e.svc.List(context.Background(), tn.ID, scim.UserKind, scim.ListQuery{Filter: f})
	if err != nil || len(pg.Resources) != 1 {
		t.Fatalf("user %s: %v %v", name, pg, err)
	}
	r, err := e.st.Get(context.Background(), tn.ID, store.KindUser, pg.Resources[0].ID, store.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDeliverySetPassword follows a partner provisioning to the end: the message
// arrives once over SMTP, the link opens the form, a too-short password and a
// forged form are refused, a good password is stored and the browser is sent to
// the result_url; the link then no longer works and no log line carries it.
func TestDeliverySetPassword(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		sk := startSink(t, "")
		me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{})
		provisionPartner(t, e, "Ann@Example.com", "https://partner.example/welcome?x=1")
		if n := me.step(t); n != 1 {
			t.Fatalf("claimed %d messages, want 1", n)
		}
		if n := me.step(t); n != 0 {
			t.Fatalf("a sent message was claimed again (%d)", n)
		}
		got := sk.messages()
		if len(got) != 1 {
			t.Fatalf("received %d messages, want 1", len(got))
		}
		r := got[0]
		if len(r.to) != 1 || r.to[0] != "ann@example.com" || r.from != "no-reply@example.com" {
			t.Errorf("envelope from %q to %q", r.from, r.to)
		}
		if s := r.msg.Header.Get("Subject"); s != "Set your password for default" {
			t.Errorf("subject %q", s)
		}
		msgs, _ := e.st.Outbox(context.Background(), userByName(t, e, "ann@example.com").TenantID)
		if len(msgs) != 1 || msgs[0].Status != scim.MessageSent || msgs[0].SentAt == nil {
			t.Fatalf("outbox %+v", msgs)
		}
		if id := r.msg.Header.Get("Message-Id"); id != "<"+msgs[0].ID+"@scimd>" || msgs[0].MessageID != id {
			t.Errorf("Message-ID %q, stored %q, message %s", id, msgs[0].MessageID, msgs[0].ID)
		}
		link := linkOf(t, r)
		if !strings.HasPrefix(link, e.srv.URL+"/account/set-password?token=") {
			t.Fatalf("link %s", link)
		}
		secret := strings.SplitN(link, "token=", 2)[1]

		b := newBrowser(t)
		form := b.get(link).want(t, http.StatusOK, `<label for="password">`).form(t)
		action := e.srv.URL + "/account/set-password"

		// A forged post (no matching form token) is refused and uses nothing up.
		forged := url.Values{"token": {secret}, "csrf": {"x"}, "password": {"long enough pw"}, "confirm": {"long enough pw"}}
		b.post(action, forged).want(t, http.StatusForbidden, "could not be accepted")
		newBrowser(t).post(action, form).want(t, http.StatusForbidden, "could not be accepted") // no cookie

		short := url.Values{"token": form["token"], "csrf": form["csrf"], "password": {"short"}, "confirm": {"short"}}
		b.post(action, short).want(t, http.StatusUnprocessableEntity, `id="password-error">the password must be at least 8 characters long`)
		mismatch := url.Values{"token": form["token"], "csrf": form["csrf"], "password": {"long enough pw"}, "confirm": {"other pw!!"}}
		b.post(action, mismatch).want(t, http.StatusUnprocessableEntity, `id="confirm-error"`)
		if h := userByName(t, e, "ann@example.com").PasswordHash; h != "" {
			t.Fatal("a refused form stored a password")
		}

		good := url.Values{"token": form["token"], "csrf": form["csrf"], "password": {"correct horse"}, "confirm": {"correct horse"}}
		p := b.post(action, good)
		if p.status != http.StatusSeeOther || p.header.Get("Location") != "https://partner.example/welcome?x=1" {
			t.Fatalf("status %d Location %q; body %s", p.status, p.header.Get("Location"), p.body)
		}
		if h := userByName(t, e, "ann@example.com").PasswordHash; !strings.HasPrefix(h, "$2") {
			t.Fatalf("password hash %q", h)
		}
		// Single use: the link and the form are dead now.
		b.get(link).want(t, http.StatusGone, "not valid any more")
		b.post(action, good).want(t, http.StatusGone, "not valid any more")
		me.noSecretLogged(t, secret) // the access log lines included
	})
}

// TestDeliveryResultURLHostNotAllowed shows the success page instead of redirecting
// when the tenant's host list no longer names the result_url's host.
func TestDeliveryResultURLHostNotAllowed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		sk := startSink(t, "")
		me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{})
		provisionPartner(t, e, "bob@example.com", "https://elsewhere.example/done")
		if _, err := e.tokens.SetTenant(context.Background(), "default", []string{"result_url_hosts=partner.example"}); err != nil {
			t.Fatal(err)
		}
		me.step(t)
		got := sk.messages()
		if len(got) != 1 {
			t.Fatalf("received %d", len(got))
		}
		b := newBrowser(t)
		form := b.get(linkOf(t, got[0])).form(t)
		form.Set("password", "a fine password")
		form.Set("confirm", "a fine password")
		p := b.post(e.srv.URL+"/account/set-password", form).want(t, http.StatusOK, "Your password is set")
		if loc := p.header.Get("Location"); loc != "" {
			t.Fatalf("redirected to %s", loc)
		}
	})
}

// TestDeliveryExpiredLink refuses a link after its expiry.
func TestDeliveryExpiredLink(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		sk := startSink(t, "")
		me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{LinkTTL: 300 * time.Millisecond})
		provisionPartner(t, e, "cy@example.com", "https://partner.example/")
		me.step(t)
		got := sk.messages()
		if len(got) != 1 {
			t.Fatalf("received %d", len(got))
		}
		b := newBrowser(t)
		form := b.get(linkOf(t, got[0])).want(t, http.StatusOK, "Set your password").form(t)
		time.Sleep(400 * time.Millisecond)
		b.get(linkOf(t, got[0])).want(t, http.StatusGone, "not valid any more")
		form.Set("password", "a fine password")
		form.Set("confirm", "a fine password")
		b.post(e.srv.URL+"/account/set-password", form).want(t, http.StatusGone, "not valid any more")
		if h := userByName(t, e, "cy@example.com").PasswordHash; h != "" {
			t.Fatal("an expired link set a password")
		}
	})
}

// TestDeliverySMTPDownThenUp keeps a message pending while the SMTP server is down,
// retries it with backoff, delivers it once when the server is back, and fails it
// after the last attempt; a retry by hand sends it again.
func TestDeliverySMTPDownThenUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		me := newMailEnv(t, e, addr, scim.OutboxOptions{MaxAttempts: 3})
		provisionPartner(t, e, "dee@example.com", "https://partner.example/")
		tenantID := userByName(t, e, "dee@example.com").TenantID
		if n := me.step(t); n != 1 {
			t.Fatalf("claimed %d", n)
		}
		msgs, _ := e.st.Outbox(context.Background(), tenantID)
		if msgs[0].Status != scim.MessagePending || msgs[0].Attempts != 1 || msgs[0].LastError == "" {
			t.Fatalf("after a failed attempt: %+v", msgs[0])
		}
		sk := startSink(t, addr)
		waitFor(t, func() bool { me.step(t); return len(sk.messages()) > 0 })
		time.Sleep(20 * time.Millisecond)
		me.step(t)
		if got := sk.messages(); len(got) != 1 {
			t.Fatalf("received %d messages, want exactly 1", len(got))
		}
		msgs, _ = e.st.Outbox(context.Background(), tenantID)
		if msgs[0].Status != scim.MessageSent {
			t.Fatalf("status %s", msgs[0].Status)
		}

		// A second message while the server is down for good fails after three
		// attempts and is listed as failed; a retry sends it.
		_ = sk.srv.Close()
		provisionPartner(t, e, "eve@example.com", "https://partner.example/")
		waitFor(t, func() bool {
			me.step(t)
			m, _ := me.ob.Messages(context.Background(), "default", true)
			return len(m) == 1
		})
		failed, _ := me.ob.Messages(context.Background(), "default", true)
		if failed[0].Recipient != "eve@example.com" || failed[0].Attempts != 3 || failed[0].LastError == "" {
			t.Fatalf("failed message %+v", failed[0])
		}
		sk2 := startSink(t, addr)
		if err := me.ob.Retry(context.Background(), failed[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := me.ob.Retry(context.Background(), msgs[0].ID); scim.AsError(err).Kind != scim.KindNotFound {
			t.Fatalf("retry of a sent message: %v", err)
		}
		me.step(t)
		if got := sk2.messages(); len(got) != 1 || got[0].to[0] != "eve@example.com" {
			t.Fatalf("after retry received %d", len(got))
		}
	})
}

// TestDeliveryWithoutSMTP logs a waiting message without any link and keeps it
// pending with its attempts untouched.
func TestDeliveryWithoutSMTP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		me := newMailEnv(t, e, "", scim.OutboxOptions{})
		provisionPartner(t, e, "fay@example.com", "https://partner.example/")
		if n := me.step(t); n != 1 {
			t.Fatalf("claimed %d", n)
		}
		if n := me.step(t); n != 0 {
			t.Fatalf("a waiting message was claimed again at once (%d)", n)
		}
		msgs, _ := e.st.Outbox(context.Background(), userByName(t, e, "fay@example.com").TenantID)
		if len(msgs) != 1 || msgs[0].Status != scim.MessagePending || msgs[0].Attempts != 0 {
			t.Fatalf("outbox %+v", msgs)
		}
		if me.logs.FilterMessage("message waiting: no SMTP server is configured").Len() != 1 {
			t.Error("the waiting message was not logged")
		}
		me.noSecretLogged(t, "token=")
	})
}

// TestDeliveryVerifyEmail confirms an address through the emailed link.
func TestDeliveryVerifyEmail(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		sk := startSink(t, "")
		me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{})
		superuserPost(t, e, "/api/v1/create_user", map[string]any{"key": e.token, "email": "gus@example.com",
			"first_name": "Gus", "last_name": "G", "password": "password123"})
		me.step(t)
		got := sk.messages()
		if len(got) != 1 || !strings.Contains(got[0].msg.Header.Get("Subject"), "Confirm your email address") {
			t.Fatalf("received %+v", got)
		}
		link := linkOf(t, got[0])
		if !strings.Contains(link, "/account/verify-email?token=") || !strings.Contains(got[0].text, "Hello Gus") {
			t.Fatalf("link %s text %s", link, got[0].text)
		}
		b := newBrowser(t)
		form := b.get(link).want(t, http.StatusOK, "Confirm my email address").form(t)
		// A verification link does not open the set-password page.
		b.get(strings.Replace(link, "verify-email", "set-password", 1)).want(t, http.StatusGone, "not valid")
		b.post(e.srv.URL+"/account/verify-email", form).want(t, http.StatusOK, "confirmed")
		u := userByName(t, e, "gus@example.com")
		if !strings.Contains(strings.ReplaceAll(string(u.Doc), " ", ""), `"emailVerified":true`) {
			t.Fatalf("doc %s", u.Doc)
		}
		b.post(e.srv.URL+"/account/verify-email", form).want(t, http.StatusGone, "not valid")
	})
}

// TestDeliveryRacingWorkers runs two workers over the same queue at once: every
// message arrives exactly once.
func TestDeliveryRacingWorkers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		sk := startSink(t, "")
		me := newMailEnv(t, e, sk.addr, scim.OutboxOptions{Batch: 3})
		other := scim.NewOutbox(e.st, e.svc, mustSMTP(t, sk.addr), zaptest.NewLogger(t), scim.OutboxOptions{BaseURL: e.srv.URL, Batch: 3})
		const n = 24
		for i := range n {
			provisionPartner(t, e, fmt.Sprintf("u%02d@example.com", i), "https://partner.example/")
		}
		var wg sync.WaitGroup
		for _, ob := range []*scim.Outbox{me.ob, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				deadline := time.Now().Add(20 * time.Second)
				for time.Now().Before(deadline) {
					k, err := ob.Step(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					if k == 0 && len(sk.messages()) >= n {
						return
					}
				}
			}()
		}
		wg.Wait()
		got := sk.messages()
		seen := map[string]int{}
		for _, r := range got {
			seen[r.msg.Header.Get("Message-Id")]++
		}
		if len(got) != n || len(seen) != n {
			t.Fatalf("received %d messages with %d distinct Message-IDs, want %d each", len(got), len(seen), n)
		}
	})
}

func mustSMTP(t *testing.T, addr string) scim.Mailer {
	s, err := scimmail.New(scimmail.Config{Addr: addr, TLS: scimmail.TLSNone, From: "no-reply@example.com", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}
