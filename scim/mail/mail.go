// Package mail writes outbox messages from their templates and sends them over
// SMTP (RFC 5321): plain, STARTTLS (RFC 3207) or implicit TLS (RFC 8314), with
// optional PLAIN authentication (RFC 4954). It implements scim.Mailer.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"text/template"
	"time"

	"github.com/scimd/scimd/scim"
)

//go:embed templates
var templateFS embed.FS

// The TLS modes of an SMTP connection.
const (
	TLSNone     = "none"
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
)

// Config says how to reach the SMTP server and who messages are from.
type Config struct {
	// Addr is the server's host:port.
	Addr string
	// TLS is TLSNone, TLSStartTLS or TLSImplicit.
	TLS string
	// Username and Password, when Username is set, authenticate with PLAIN.
	Username, Password string
	// From is the From address (RFC 5322), e.g. "Example <no-reply@example.com>";
	// a tenant's mail_from setting replaces it for its messages.
	From string
	// Timeout bounds one whole send (default 30s).
	Timeout time.Duration
	// RootCAs, when set, are the certificate authorities the server's certificate
	// must chain to, instead of the system's. The certificate is always verified.
	RootCAs *x509.CertPool
}

// SMTP sends letters over SMTP.
type SMTP struct {
	c    Config
	text map[string]*template.Template
	html map[string]*htmltemplate.Template
}

// Kinds lists the message kinds there are templates for.
var Kinds = []string{scim.MessageSetPassword, scim.MessageInvitation, scim.MessageVerifyEmail}

var _ scim.Mailer = (*SMTP)(nil)

// New checks c and loads the templates.
func New(c Config) (*SMTP, error) {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("smtp address %q: want host:port", c.Addr)
	}
	switch c.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return nil, fmt.Errorf("smtp tls %q: use none, starttls or tls", c.TLS)
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return nil, fmt.Errorf("from address %q: %w", c.From, err)
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	// Each kind's files define "subject" and "text", and "html".
	s := &SMTP{c: c, text: map[string]*template.Template{}, html: map[string]*htmltemplate.Template{}}
	for _, k := range Kinds {
		t, err := template.ParseFS(templateFS, "templates/"+k+".txt")
		if err != nil {
			return nil, err
		}
		h, err := htmltemplate.ParseFS(templateFS, "templates/"+k+".html")
		if err != nil {
			return nil, err
		}
		s.text[k], s.html[k] = t, h
	}
	return s, nil
}

// data is what the templates see.
type data struct {
	Tenant, Recipient, FirstName, Link, Expires string
}

// Rendered is a letter written out.
type Rendered struct {
	Subject, Text, HTML string
}

// Render writes a letter from the templates of its kind.
func Render(l scim.Letter) (Rendered, error) {
	s, err := New(Config{Addr: "localhost:25", TLS: TLSNone, From: "scimd@localhost"})
	if err != nil {
		return Rendered{}, err
	}
	return s.render(l)
}

func (s *SMTP) render(l scim.Letter) (Rendered, error) {
	kind := l.Message.Kind
	t, h := s.text[kind], s.html[kind]
	if t == nil || h == nil {
		return Rendered{}, permanent{fmt.Errorf("no template for message kind %q", kind)}
	}
	if ov, ok := l.Tenant.Settings.Templates[kind]; ok {
		var err error
		if t, h, err = override(t, h, ov); err != nil {
			return Rendered{}, permanent{fmt.Errorf("template override of %s: %w", kind, err)}
		}
	}
	var p struct {
		FirstName string `json:"first_name"`
		Camel     string `json:"firstName"`
	}
	_ = json.Unmarshal(l.Message.Payload, &p)
	d := data{Tenant: l.Tenant.Name, Recipient: l.Message.Recipient, FirstName: p.FirstName, Link: l.Link,
		Expires: l.Expires.UTC().Format("2 January 2006 at 15:04 UTC")}
	if d.FirstName == "" {
		d.FirstName = p.Camel
	}
	var subj, text, html bytes.Buffer
	if err := t.ExecuteTemplate(&subj, "subject", d); err != nil {
		return Rendered{}, err
	}
	if err := t.ExecuteTemplate(&text, "text", d); err != nil {
		return Rendered{}, err
	}
	if err := h.ExecuteTemplate(&html, "html", d); err != nil {
		return Rendered{}, err
	}
	// A subject is one line, whatever its template writes.
	return Rendered{Subject: strings.Join(strings.Fields(subj.String()), " "), Text: text.String(), HTML: html.String()}, nil
}

// override returns the built-in templates t and h with the parts ov sets replaced:
// its Subject and Text parsed by text/template, its HTML by html/template, which
// escapes what it inserts by context.
func override(t *template.Template, h *htmltemplate.Template, ov scim.MessageTemplate) (*template.Template, *htmltemplate.Template, error) {
	var err error
	if ov.Subject != "" || ov.Text != "" {
		if t, err = t.Clone(); err != nil {
			return nil, nil, err
		}
		if ov.Subject != "" {
			if _, err := t.New("subject").Parse(ov.Subject); err != nil {
				return nil, nil, fmt.Errorf("subject: %w", err)
			}
		}
		if ov.Text != "" {
			if _, err := t.New("text").Parse(ov.Text); err != nil {
				return nil, nil, fmt.Errorf("text: %w", err)
			}
		}
	}
	if ov.HTML != "" {
		if h, err = htmltemplate.New("html").Parse(ov.HTML); err != nil {
			return nil, nil, fmt.Errorf("html: %w", err)
		}
	}
	return t, h, nil
}

// CheckTemplate tells whether ov can replace the built-in templates of kind: each
// part it sets must parse (text/template for the subject and text, html/template
// for the HTML) and render with sample data, using only the fields the built-in
// templates have: .Tenant, .Recipient, .FirstName, .Link and .Expires.
func CheckTemplate(kind string, ov scim.MessageTemplate) error {
	l := scim.Letter{
		Message: scim.Message{Kind: kind, Recipient: "ann@example.com", Payload: []byte(`{"first_name":"Ann"}`)},
		Tenant:  scim.Tenant{Name: "example", Settings: scim.TenantSettings{Templates: map[string]scim.MessageTemplate{kind: ov}}},
		Link:    "https://id.example.com/account/set-password?token=sample",
		Expires: time.Now().Add(72 * time.Hour),
	}
	s, err := New(Config{Addr: "localhost:25", TLS: TLSNone, From: "scimd@localhost"})
	if err != nil {
		return err
	}
	if s.text[kind] == nil {
		return fmt.Errorf("no template for message kind %q", kind)
	}
	if _, _, err := override(s.text[kind], s.html[kind], ov); err != nil {
		return err
	}
	r, err := s.render(l)
	if err != nil {
		return err
	}
	if ov.Subject != "" && r.Subject == "" {
		return errors.New("subject: renders empty")
	}
	return nil
}

// permanent is an error retrying cannot cure.
type permanent struct{ error }

func (permanent) Permanent() bool { return true }
func (p permanent) Unwrap() error { return p.error }

// Send writes the letter and delivers it: one SMTP transaction, bounded by the
// configured timeout.
func (s *SMTP) Send(ctx context.Context, l scim.Letter) error {
	from := s.c.From
	if f := l.Tenant.Settings.MailFrom; f != "" {
		from = f
	}
	fromAddr, err := mail.ParseAddress(from)
	if err != nil {
		return permanent{fmt.Errorf("from address: %w", err)}
	}
	if _, err := mail.ParseAddress(l.Message.Recipient); err != nil {
		return permanent{fmt.Errorf("recipient address: %w", err)}
	}
	r, err := s.render(l)
	if err != nil {
		return err
	}
	msg, err := compose(fromAddr, l, r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.Timeout)
	defer cancel()
	return s.deliver(ctx, fromAddr.Address, l.Message.Recipient, msg)
}

// compose builds the MIME message: multipart/alternative with the plain text first.
func compose(from *mail.Address, l scim.Letter, r Rendered) ([]byte, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	boundary := "scimd-" + hex.EncodeToString(b)
	var buf bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&buf, "%s: %s\r\n", k, v) }
	hdr("From", from.String())
	hdr("To", l.Message.Recipient)
	hdr("Subject", mime.QEncoding.Encode("utf-8", r.Subject))
	hdr("Date", time.Now().UTC().Format(time.RFC1123Z))
	hdr("Message-ID", l.MessageID)
	hdr("MIME-Version", "1.0")
	hdr("Auto-Submitted", "auto-generated")
	hdr("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	buf.WriteString("\r\n")
	for _, part := range []struct{ typ, body string }{{"text/plain", r.Text}, {"text/html", r.HTML}} {
		fmt.Fprintf(&buf, "--%s\r\nContent-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary, part.typ)
		qp := quotedprintable.NewWriter(&buf)
		if _, err := qp.Write([]byte(strings.ReplaceAll(part.body, "\n", "\r\n"))); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
		buf.WriteString("\r\n")
	}
	fmt.Fprintf(&buf, "--%s--\r\n", boundary)
	return buf.Bytes(), nil
}

func (s *SMTP) deliver(ctx context.Context, from, to string, msg []byte) error {
	host, _, _ := net.SplitHostPort(s.c.Addr)
	tlsConf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, RootCAs: s.c.RootCAs}
	var conn net.Conn
	var err error
	nd := &net.Dialer{}
	if s.c.TLS == TLSImplicit {
		conn, err = (&tls.Dialer{NetDialer: nd, Config: tlsConf}).DialContext(ctx, "tcp", s.c.Addr)
	} else {
		conn, err = nd.DialContext(ctx, "tcp", s.c.Addr)
	}
	if err != nil {
		return fmt.Errorf("connect to the smtp server: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer c.Close()
	if s.c.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the smtp server does not offer STARTTLS")
		}
		if err := c.StartTLS(tlsConf); err != nil {
			return fmt.Errorf("smtp starttls: %w", err)
		}
	}
	if s.c.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.c.Username, s.c.Password, host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		var te *textproto.Error
		if errors.As(err, &te) && te.Code >= 500 {
			return permanent{fmt.Errorf("smtp RCPT TO refused: %w", err)}
		}
		return fmt.Errorf("smtp RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp end of data: %w", err)
	}
	// The message is accepted once the end of data is; QUIT is a courtesy.
	_ = c.Quit()
	return nil
}
