// Command scimd is the scimd SCIM 2.0 server and its administration commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store/gormstore"
	"github.com/scimd/scimd/store/postgres"
	"github.com/scimd/scimd/store/sqlite"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `scimd: a SCIM 2.0 identity server

Usage:
  scimd serve [flags]                          run the server (migrates first)
  scimd migrate [flags]                        bring the database schema up to date
  scimd tenant create NAME [--scope S]         add a tenant; prints its first token alone on stdout
  scimd tenant list [flags]                    list tenants
  scimd tenant report NAME [flags]             how often each token needed each client quirk
  scimd tenant set NAME key=value…             change settings: compatibility routes, rate limit
  scimd tenant template NAME KIND              override a message kind's templates for the tenant
        [--subject S] [--text FILE]            (set_password, invitation, verify_email);
        [--html FILE] [--reset]                checked before saving; --reset restores the built-in
  scimd token create --tenant NAME --scope S   issue an API token; prints it alone on stdout
        [--user USER_ID]                       bind it to a user of the tenant, for /scim/v2/Me
        [--profile P]                          client profile: rfc-tolerant (default; lenient is
                                               its former name), strict, okta, entra
        [--sandbox] [--format token|key32]     a read-only token (every route refuses it changes);
                                               or a 32-character key
        [--expires-in 90d | --expires-at T]    when it stops working (default: never)
  scimd token list [--tenant NAME]             list tokens: scopes, expiry, last use; never secrets
  scimd token revoke --tenant NAME ID          revoke a token (its id from token list)
  scimd outbox list --tenant NAME [--failed]   list a tenant's messages and their delivery state
  scimd outbox retry ID                        send a failed message again
  scimd audit --tenant NAME --since T          print a tenant's audit log (changes and refusals)
        [--until T] [--limit N] [--format F]   table (default) or json, one event per line
  scimd version                                print the version

Run "scimd COMMAND -h" for a command's flags.
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "scimd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("name a command")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "migrate":
		return migrate(ctx, args[1:], stderr)
	case "tenant":
		return tenantCmd(cliContext(ctx), args[1:], stdout, stderr)
	case "token":
		return tokenCmd(cliContext(ctx), args[1:], stdout, stderr)
	case "outbox":
		return outboxCmd(ctx, args[1:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "scimd", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func newLogger(c *Config, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.LogLevel)
	if err != nil {
		return nil, err
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if c.LogFormat == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}

// openStore opens the backend the DSN names.
func openStore(dsn string, log *zap.Logger) (*gormstore.Store, error) {
	backend, target, err := splitDSN(dsn)
	if err != nil {
		return nil, err
	}
	if backend == "postgres" {
		return postgres.Open(target, log)
	}
	return sqlite.Open(target, log)
}

// setup parses flags, validates the configuration, and opens and migrates the store.
func setup(ctx context.Context, fs *flag.FlagSet, c *Config, args []string, serving bool, stderr io.Writer) (*gormstore.Store, *zap.Logger, error) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if err := c.Validate(serving); err != nil {
		return nil, nil, fmt.Errorf("configuration:\n%w", err)
	}
	log, err := newLogger(c, stderr)
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(c.Database, log)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("migrate: %w", err)
	}
	return st, log, nil
}

func migrate(ctx context.Context, args []string, stderr io.Writer) error {
	var c Config
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	databaseFlags(fs, &c)
	st, log, err := setup(ctx, fs, &c, args, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("database schema is up to date")
	return nil
}

func tenantCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "template" {
		return tenantTemplateCmd(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "create" && args[0] != "list" && args[0] != "report" && args[0] != "set") {
		return errors.New("usage: scimd tenant create NAME | list | report NAME | set NAME key=value… | template NAME KIND [flags]")
	}
	var c Config
	fs := flag.NewFlagSet("tenant "+args[0], flag.ContinueOnError)
	databaseFlags(fs, &c)
	rest := args[1:]
	var name, scopes string
	if args[0] == "create" {
		fs.StringVar(&scopes, "scope", scim.ScopeSCIM, "scopes of the tenant's first token: scim, compat, admin, audit (comma-separated)")
	}
	if args[0] == "create" || args[0] == "report" || args[0] == "set" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return fmt.Errorf("usage: scimd tenant %s NAME [flags]", args[0])
		}
		name, rest = rest[0], rest[1:]
	}
	// Settings may stand before or after the flags.
	flags, pairs := rest, []string(nil)
	if args[0] == "set" {
		flags, pairs = splitArgs(rest)
	}
	st, _, err := setup(ctx, fs, &c, flags, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	if len(fs.Args()) > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	tokens := scim.NewTokens(st)
	if args[0] == "set" {
		set, err := tokens.SetTenant(ctx, name, pairs)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(set)
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	if args[0] == "report" {
		return tenantReport(ctx, scim.NewService(st, zap.NewNop()), name, stdout)
	}
	if args[0] == "list" {
		ts, err := tokens.Tenants(ctx)
		if err != nil {
			return err
		}
		for _, t := range ts {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", t.Name, t.ID, t.Created.Format("2006-01-02T15:04:05Z"))
		}
		return nil
	}
	sc, err := scim.ParseScopes(scopes)
	if err != nil {
		return err
	}
	if _, err := tokens.CreateTenant(ctx, name); err != nil {
		return err
	}
	secret, err := tokens.IssueToken(ctx, name, sc, "")
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	return nil
}

func tokenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "list" {
		return tokenList(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "revoke" {
		return tokenRevoke(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: scimd token create --tenant NAME --scope scim[,compat,admin] [--user USER_ID] [--profile P] [--expires-in 90d] | token list [--tenant NAME] | token revoke --tenant NAME ID")
	}
	var c Config
	var tenant, scopes, userID, profile, format, expiresIn, expiresAt string
	var sandbox bool
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	fs.StringVar(&expiresIn, "expires-in", "", "the token stops working after this long, e.g. 90d, 36h or 30m (default: never)")
	fs.StringVar(&expiresAt, "expires-at", "", "the token stops working at this RFC 3339 time, e.g. 2030-01-31T00:00:00Z (default: never)")
	databaseFlags(fs, &c)
	fs.StringVar(&tenant, "tenant", "", "tenant the token acts for (required)")
	fs.StringVar(&scopes, "scope", scim.ScopeSCIM, "comma-separated scopes: scim, compat, admin, audit")
	fs.StringVar(&userID, "user", "", "id of a user of the tenant whom /scim/v2/Me stands for (optional)")
	fs.BoolVar(&sandbox, "sandbox", false, "a sandbox token: read-only on every route (SCIM, Bulk, /Me, the compatibility and admin APIs refuse it any change with 403)")
	fs.StringVar(&format, "format", "token", "token (scimd_…, the default) or key32 (a 32-character key)")
	fs.StringVar(&profile, "profile", scim.ProfileTolerant, "client profile the token's requests are read with: "+strings.Join(scim.Profiles, ", ")+" (lenient, the default's former name, is read as rfc-tolerant)")
	st, _, err := setup(ctx, fs, &c, args[1:], false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	if tenant == "" {
		return errors.New("--tenant is required")
	}
	if format != "token" && format != "key32" {
		return fmt.Errorf("--format %q: use token or key32", format)
	}
	if format != "token" && format != "key32" {
		return fmt.Errorf("--format %q: use token or key32", format)
	}
	sc, err := scim.ParseScopes(scopes)
	if err != nil {
		return err
	}
	expires, err := parseExpiry(expiresIn, expiresAt, time.Now())
	if err != nil {
		return err
	}
	secret, err := scim.NewTokens(st).Issue(ctx, tenant, scim.TokenOptions{Scopes: sc, UserID: userID, Profile: profile, Sandbox: sandbox, Key32: format == "key32", ExpiresAt: expires})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	return nil
}

// maxExpiresInDays bounds --expires-in; a longer life is no expiry at all.
const maxExpiresInDays = 36500

// parseExpiry reads --expires-in (a Go duration, or whole days as 90d) or
// --expires-at (RFC 3339) into the time a token stops working, zero for never.
func parseExpiry(in, at string, now time.Time) (time.Time, error) {
	switch {
	case in != "" && at != "":
		return time.Time{}, errors.New("use --expires-in or --expires-at, not both")
	case at != "":
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return time.Time{}, fmt.Errorf("--expires-at %q: want an RFC 3339 time such as 2030-01-31T00:00:00Z", at)
		}
		return t, nil
	case in != "":
		var d time.Duration
		if days, ok := strings.CutSuffix(in, "d"); ok {
			n, err := strconv.Atoi(days)
			if err != nil || n < 1 || n > maxExpiresInDays {
				return time.Time{}, fmt.Errorf("--expires-in %q: want whole days from 1d to %dd, or a duration such as 36h or 30m", in, maxExpiresInDays)
			}
			d = time.Duration(n) * 24 * time.Hour
		} else {
			var err error
			if d, err = time.ParseDuration(in); err != nil || d <= 0 {
				return time.Time{}, fmt.Errorf("--expires-in %q: want a positive duration such as 90d, 36h or 30m", in)
			}
		}
		return now.Add(d), nil
	}
	return time.Time{}, nil
}

// splitArgs separates the flags of a command whose flags all take a value
// ("--name value" or "--name=value") from its other arguments, which may stand
// before, between or after them.
func splitArgs(args []string) (flags, others []string) {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case strings.HasPrefix(a, "-") && strings.Contains(a, "="):
			flags = append(flags, a)
		case strings.HasPrefix(a, "-"):
			flags = append(flags, a)
			if i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			others = append(others, a)
		}
	}
	return flags, others
}

// tokenRevoke revokes one token, named by the id `scimd token list` prints. Every
// running scimd refuses it within three --token-cache-refresh intervals.
func tokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c Config
	var tenant string
	fs := flag.NewFlagSet("token revoke", flag.ContinueOnError)
	databaseFlags(fs, &c)
	fs.StringVar(&tenant, "tenant", "", "the tenant the token belongs to (required)")
	// The id may stand before or after the flags.
	flags, ids := splitArgs(args)
	st, _, err := setup(ctx, fs, &c, flags, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	if tenant == "" || len(ids) != 1 {
		return errors.New("usage: scimd token revoke --tenant NAME ID (ids: scimd token list)")
	}
	id := ids[0]
	if err := scim.NewTokens(st).Revoke(ctx, tenant, id); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked token %s of tenant %s\n", id, tenant)
	return nil
}

// tokenList prints the tokens of a tenant, or of every tenant: never a secret or
// hash, only what an operator needs to decide which to keep.
func tokenList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c Config
	var tenant string
	fs := flag.NewFlagSet("token list", flag.ContinueOnError)
	databaseFlags(fs, &c)
	fs.StringVar(&tenant, "tenant", "", "list only this tenant's tokens (default: every tenant's)")
	st, _, err := setup(ctx, fs, &c, args, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	if len(fs.Args()) > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	toks, err := scim.NewTokens(st).ListTokens(ctx, tenant)
	if err != nil {
		return err
	}
	when := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tSCOPES\tPROFILE\tUSER\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
	for _, t := range toks {
		profile := scim.CanonicalProfile(t.Profile)
		if t.Sandbox {
			profile += ",sandbox"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Tenant, orDash(strings.Join(t.Scopes, ",")), profile,
			orDash(t.UserID), when(&t.Created), when(t.ExpiresAt), when(t.LastUsedAt), when(t.RevokedAt))
	}
	return tw.Flush()
}

// tenantReport prints how often each token of a tenant needed each client quirk, so
// an operator sees how far each client strays from RFC 7644.
func tenantReport(ctx context.Context, svc *scim.Service, name string, stdout io.Writer) error {
	counts, err := svc.QuirkReport(ctx, name)
	if err != nil {
		return err
	}
	if len(counts) == 0 {
		fmt.Fprintf(stdout, "tenant %s: no request needed a non-standard form\n", name)
		return nil
	}
	fmt.Fprintf(stdout, "%-36s  %-12s  %-22s  %8s  %s\n", "TOKEN", "PROFILE", "QUIRK", "COUNT", "LAST SEEN")
	for _, c := range counts {
		profile := scim.CanonicalProfile(c.Profile)
		fmt.Fprintf(stdout, "%-36s  %-12s  %-22s  %8d  %s\n", c.TokenID, profile, c.Quirk, c.Count, c.LastSeen.Format(time.RFC3339))
	}
	return nil
}
