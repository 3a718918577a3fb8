package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/scimd/scimd/scim"
	scimmail "github.com/scimd/scimd/scim/mail"
)

// testCert makes a self-signed certificate for 127.0.0.1 and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "scimd test SMTP"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// tlsSink is an SMTP server on 127.0.0.1 with TLS (STARTTLS or implicit) and,
// when user is set, AUTH PLAIN required before MAIL.
type tlsSink struct {
	*sink
	mu       sync.Mutex
	tlsMails int // messages received over TLS
	authed   []string
}

func startTLSSink(t *testing.T, mode string, cert *tls.Certificate, user, password string) *tlsSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &tlsSink{sink: &sink{addr: ln.Addr().String()}}
	ts.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &tlsSession{sinkSession: sinkSession{s: ts.sink}, ts: ts, c: c, user: user, password: password}, nil
	}))
	ts.srv.Domain = "localhost"
	ts.srv.ReadTimeout, ts.srv.WriteTimeout = 5*time.Second, 5*time.Second
	ts.srv.ErrorLog = smtpNoLog{}
	if cert != nil {
		conf := &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
		if mode == scimmail.TLSImplicit {
			ln = tls.NewListener(ln, conf)
		} else {
			ts.srv.TLSConfig = conf
		}
	}
	go func() { _ = ts.srv.Serve(ln) }()
	t.Cleanup(func() { _ = ts.srv.Close() })
	return ts
}

type tlsSession struct {
	sinkSession
	ts             *tlsSink
	c              *smtp.Conn
	user, password string
	authed         bool
}

func (s *tlsSession) AuthMechanisms() []string {
	if s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *tlsSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != s.user || password != s.password {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		s.ts.mu.Lock()
		s.ts.authed = append(s.ts.authed, user)
		s.ts.mu.Unlock()
		return nil
	}), nil
}

func (s *tlsSession) Mail(from string, o *smtp.MailOptions) error {
	if s.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	return s.sinkSession.Mail(from, o)
}

func (s *tlsSession) Data(r io.Reader) error {
	if _, ok := s.c.TLSConnectionState(); ok {
		s.ts.mu.Lock()
		s.ts.tlsMails++
		s.ts.mu.Unlock()
	}
	return s.sinkSession.Data(r)
}

func (ts *tlsSink) overTLS() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.tlsMails
}

// testLetter is a set_password letter to ann@example.com.
func testLetter() scim.Letter {
	return scim.Letter{
		Message: scim.Message{ID: "m1", Kind: scim.MessageSetPassword, Recipient: "ann@example.com"},
		Tenant:  scim.Tenant{Name: "acme"}, Link: "https://id.example.com/account/set-password?token=abc",
		Expires: time.Now().Add(time.Hour), MessageID: "<m1@scimd>",
	}
}

func newTLSMailer(t *testing.T, addr, mode string, roots *x509.CertPool, user, password string) *scimmail.SMTP {
	t.Helper()
	m, err := scimmail.New(scimmail.Config{Addr: addr, TLS: mode, From: "no-reply@example.com", Username: user, Password: password,
		RootCAs: roots, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSMTPTLS sends over STARTTLS and implicit TLS to a server whose certificate the
// mailer trusts, and refuses, without falling back to plain text, a certificate it
// does not trust and a server that does not offer STARTTLS.
func TestSMTPTLS(t *testing.T) {
	cert, roots := testCert(t)
	otherCert, _ := testCert(t) // a certificate no pool trusts
	for _, c := range []struct {
		name string
		mode string
		cert *tls.Certificate
		want string // "" for delivered, else part of the error
	}{
		{"starttls", scimmail.TLSStartTLS, &cert, ""},
		{"implicit_tls", scimmail.TLSImplicit, &cert, ""},
		{"starttls_untrusted_certificate", scimmail.TLSStartTLS, &otherCert, "certificate signed by unknown authority"},
		{"implicit_tls_untrusted_certificate", scimmail.TLSImplicit, &otherCert, "certificate signed by unknown authority"},
		{"starttls_not_offered", scimmail.TLSStartTLS, nil, "does not offer STARTTLS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := startTLSSink(t, c.mode, c.cert, "", "")
			err := newTLSMailer(t, ts.addr, c.mode, roots, "", "").Send(context.Background(), testLetter())
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				got := ts.messages()
				if len(got) != 1 || got[0].to[0] != "ann@example.com" || ts.overTLS() != 1 {
					t.Fatalf("received %d messages, %d over TLS; want 1 over TLS", len(got), ts.overTLS())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
			if got := ts.messages(); len(got) != 0 {
				t.Fatalf("a refused connection delivered %d messages", len(got))
			}
		})
	}
	// Without RootCAs the system pool applies, which does not hold the test
	// certificate: verification is never skipped.
	t.Run("system_roots", func(t *testing.T) {
		ts := startTLSSink(t, scimmail.TLSImplicit, &cert, "", "")
		err := newTLSMailer(t, ts.addr, scimmail.TLSImplicit, nil, "", "").Send(context.Background(), testLetter())
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("error %v, want a certificate error", err)
		}
	})
}

// TestSMTPAuthPlain authenticates with AUTH PLAIN over STARTTLS through the delivery
// worker: the right password delivers the message, a wrong one leaves it pending
// with the server's refusal as its last error, and no log line or stored error
// carries the password.
func TestSMTPAuthPlain(t *testing.T) {
	const user, password = "scimd", "s3cret-Pa55-word"
	cert, roots := testCert(t)
	forEachBackend(t, func(t *testing.T, e *env) {
		ts := startTLSSink(t, scimmail.TLSStartTLS, &cert, user, password)
		core, logs := observer.New(zap.DebugLevel)
		log := zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core))
		o := scim.OutboxOptions{BaseURL: "https://id.example.com", Backoff: time.Millisecond}

		wrong := scim.NewOutbox(e.st, e.svc, newTLSMailer(t, ts.addr, scimmail.TLSStartTLS, roots, user, "not-"+password), log, o)
		provisionPartner(t, e, "ann@example.com", "https://partner.example/")
		tenantID := userByName(t, e, "ann@example.com").TenantID
		if n, err := wrong.Step(context.Background()); err != nil || n != 1 {
			t.Fatalf("step: %d %v", n, err)
		}
		msgs, _ := e.st.Outbox(context.Background(), tenantID)
		if len(msgs) != 1 || msgs[0].Status != scim.MessagePending || !strings.Contains(msgs[0].LastError, "smtp auth") {
			t.Fatalf("after a refused login: %+v", msgs)
		}
		if len(ts.messages()) != 0 {
			t.Fatal("delivered without authentication")
		}

		right := scim.NewOutbox(e.st, e.svc, newTLSMailer(t, ts.addr, scimmail.TLSStartTLS, roots, user, password), log, o)
		waitFor(t, func() bool {
			if _, err := right.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
			return len(ts.messages()) > 0
		})
		ts.mu.Lock()
		authed := fmt.Sprint(ts.authed)
		ts.mu.Unlock()
		if got := ts.messages(); len(got) != 1 || ts.overTLS() != 1 || authed != "[scimd]" {
			t.Fatalf("received %d messages, %d over TLS, logins %s", len(got), ts.overTLS(), authed)
		}
		msgs, _ = e.st.Outbox(context.Background(), tenantID)
		if msgs[0].Status != scim.MessageSent {
			t.Fatalf("status %s", msgs[0].Status)
		}
		for _, l := range logs.All() {
			if line := l.Message + fmt.Sprint(l.ContextMap()); strings.Contains(line, password) {
				t.Fatalf("log line carries the SMTP password: %s", line)
			}
		}
		for _, m := range msgs {
			if strings.Contains(m.LastError, password) {
				t.Fatalf("stored error carries the SMTP password: %s", m.LastError)
			}
		}
	})
}
