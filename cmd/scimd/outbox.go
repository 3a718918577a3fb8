package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/account"
	scimmail "github.com/scimd/scimd/scim/mail"
	"github.com/scimd/scimd/store/gormstore"
)

// mailFlags registers the flags of outbox delivery.
func mailFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.SMTPAddr, "smtp-addr", envOr("SCIMD_SMTP_ADDR", ""),
		"SMTP server host:port that messages are sent through; empty keeps them pending and logged (env SCIMD_SMTP_ADDR)")
	fs.StringVar(&c.SMTPTLS, "smtp-tls", envOr("SCIMD_SMTP_TLS", scimmail.TLSStartTLS),
		"none, starttls (port 587) or tls (implicit TLS, port 465) (env SCIMD_SMTP_TLS)")
	fs.StringVar(&c.SMTPUsername, "smtp-username", envOr("SCIMD_SMTP_USERNAME", ""),
		"SMTP user name; the password is read from SCIMD_SMTP_PASSWORD only (env SCIMD_SMTP_USERNAME)")
	fs.StringVar(&c.SMTPCAFile, "smtp-ca-file", envOr("SCIMD_SMTP_CA_FILE", ""),
		"PEM file of the certificate authorities the SMTP server's certificate must chain to, instead of the system's (env SCIMD_SMTP_CA_FILE)")
	fs.StringVar(&c.MailFrom, "mail-from", envOr("SCIMD_MAIL_FROM", ""),
		`From address of messages, e.g. "Example <no-reply@example.com>" (env SCIMD_MAIL_FROM)`)
	fs.IntVar(&c.PasswordMinLength, "password-min-length", int(envInt("SCIMD_PASSWORD_MIN_LENGTH", scim.DefaultPasswordMinLength)),
		"shortest password, in characters, that every route taking one accepts: SCIM and Bulk, the compatibility APIs and the set-password page (env SCIMD_PASSWORD_MIN_LENGTH)")
	c.SMTPPassword = os.Getenv("SCIMD_SMTP_PASSWORD")
}

// validateMail reports the problems of the delivery settings.
func (c *Config) validateMail() []error {
	var errs []error
	switch c.SMTPTLS {
	case scimmail.TLSNone, scimmail.TLSStartTLS, scimmail.TLSImplicit:
	default:
		errs = append(errs, fmt.Errorf("--smtp-tls %q: use none, starttls or tls", c.SMTPTLS))
	}
	if c.PasswordMinLength < 1 || c.PasswordMinLength > scim.MaxPasswordBytes {
		// A longer minimum could not be met within bcrypt's 72 bytes.
		errs = append(errs, fmt.Errorf("--password-min-length must be an integer from 1 to %d (passwords are at most %d bytes)", scim.MaxPasswordBytes, scim.MaxPasswordBytes))
	}
	if c.SMTPAddr == "" {
		return errs
	}
	if _, port, err := net.SplitHostPort(c.SMTPAddr); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("--smtp-addr %q: want host:port, e.g. smtp.example.com:587", c.SMTPAddr))
	}
	if _, err := mail.ParseAddress(c.MailFrom); err != nil {
		errs = append(errs, fmt.Errorf("--mail-from %q: with --smtp-addr, give the From address, e.g. \"Example <no-reply@example.com>\"", c.MailFrom))
	}
	if c.BaseURL == "" {
		errs = append(errs, errors.New("--base-url is required with --smtp-addr: the links in messages point to it"))
	}
	if c.SMTPUsername != "" && c.SMTPPassword == "" {
		errs = append(errs, errors.New("--smtp-username is set but SCIMD_SMTP_PASSWORD is empty"))
	}
	if _, err := c.smtpRoots(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// smtpRoots reads --smtp-ca-file; nil (the system's roots) when it is not set.
func (c *Config) smtpRoots() (*x509.CertPool, error) {
	if c.SMTPCAFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.SMTPCAFile)
	if err != nil {
		return nil, fmt.Errorf("--smtp-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--smtp-ca-file %q: no PEM certificate in it", c.SMTPCAFile)
	}
	return pool, nil
}

// newOutbox returns the delivery worker for the configuration: sending over SMTP
// when a server is configured, else logging and keeping messages pending.
func newOutbox(c *Config, st *gormstore.Store, svc *scim.Service, log *zap.Logger) (*scim.Outbox, error) {
	var m scim.Mailer
	if c.SMTPAddr != "" {
		roots, err := c.smtpRoots()
		if err != nil {
			return nil, err
		}
		s, err := scimmail.New(scimmail.Config{Addr: c.SMTPAddr, TLS: c.SMTPTLS, Username: c.SMTPUsername, Password: c.SMTPPassword, From: c.MailFrom, RootCAs: roots})
		if err != nil {
			return nil, err
		}
		m = s
	} else {
		log.Warn("no SMTP server configured (--smtp-addr): messages stay pending and are logged without their links")
	}
	return scim.NewOutbox(st, svc, m, log, scim.OutboxOptions{BaseURL: c.BaseURL}), nil
}

// accountPages returns the set-password and verify-email pages, their form key
// shared by every replica through the database.
func accountPages(ctx context.Context, c *Config, st *gormstore.Store, ob *scim.Outbox, log *zap.Logger) (*account.Handler, error) {
	key, err := st.Secret(ctx, "account_form")
	if err != nil {
		return nil, fmt.Errorf("account form key: %w", err)
	}
	return account.New(ob, key, log, account.Options{SecureCookie: strings.HasPrefix(c.BaseURL, "https://")}), nil
}

// startWorker runs work until the returned stop is called; stop cancels it and
// waits at most shutdownGrace. Calling stop again does nothing.
func startWorker(ctx context.Context, name string, work func(context.Context), log *zap.Logger) (stop func()) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		work(wctx)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(shutdownGrace):
				log.Warn("worker did not stop in time", zap.String("worker", name), zap.Duration("grace", shutdownGrace))
			}
		})
	}
}

func outboxCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "usage: scimd outbox list --tenant NAME [--failed] | retry ID"
	if len(args) == 0 || (args[0] != "list" && args[0] != "retry") {
		return errors.New(use)
	}
	var c Config
	var tenant string
	var failed bool
	fs := flag.NewFlagSet("outbox "+args[0], flag.ContinueOnError)
	databaseFlags(fs, &c)
	if args[0] == "list" {
		fs.StringVar(&tenant, "tenant", "", "tenant whose messages to list (required)")
		fs.BoolVar(&failed, "failed", false, "list only the messages that failed")
	}
	// The id may stand before or after the flags.
	rest, id := args[1:], ""
	if args[0] == "retry" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:]
	}
	st, log, err := setup(ctx, fs, &c, rest, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	ob := scim.NewOutbox(st, scim.NewService(st, log), nil, log, scim.OutboxOptions{})
	if args[0] == "retry" {
		if id == "" && fs.NArg() == 1 {
			id = fs.Arg(0)
		} else if id == "" || fs.NArg() != 0 {
			return errors.New(use)
		}
		if err := ob.Retry(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "message %s is pending again\n", id)
		return nil
	}
	if tenant == "" || fs.NArg() != 0 {
		return errors.New(use)
	}
	msgs, err := ob.Messages(ctx, tenant, failed)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-36s  %-12s  %-7s  %8s  %-20s  %-30s  %s\n", "ID", "KIND", "STATUS", "ATTEMPTS", "CREATED", "RECIPIENT", "LAST ERROR")
	for _, m := range msgs {
		fmt.Fprintf(stdout, "%-36s  %-12s  %-7s  %8d  %-20s  %-30s  %s\n", m.ID, m.Kind, m.Status, m.Attempts,
			m.Created.Format(time.RFC3339), m.Recipient, m.LastError)
	}
	return nil
}
