package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store"
	"github.com/scimd/scimd/store/gormstore"
)

// defaultAuditRetention is how long audit events are kept unless configured.
const defaultAuditRetention = "90d"

// maxAuditRetention bounds --audit-retention; longer is keeping forever (0).
const maxAuditRetention = 100 * 365 * 24 * time.Hour

// auditRetention reads --audit-retention: whole days ("90d"), a Go duration
// ("2160h") or 0 for no retention limit.
func (c *Config) auditRetention() (time.Duration, error) {
	raw := strings.TrimSpace(c.AuditRetention)
	bad := fmt.Errorf("--audit-retention %q: give days such as 90d, a duration such as 2160h, or 0 to keep audit events forever", c.AuditRetention)
	if raw == "0" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(raw, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > int(maxAuditRetention/(24*time.Hour)) {
			return 0, bad
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(raw); err != nil || d < 0 || d > maxAuditRetention {
			return 0, bad
		}
	}
	if d > 0 && d < time.Hour {
		return 0, fmt.Errorf("--audit-retention %q: keep audit events at least an hour (or 0: forever)", c.AuditRetention)
	}
	return d, nil
}

// auditSweepEvery is how often serve deletes the audit events past retention.
const auditSweepEvery = time.Hour

// startAuditRetention runs the audit retention sweep (see scim.AuditLog.Work) until
// the returned stop is called; with retention 0 it runs nothing.
func startAuditRetention(ctx context.Context, c *Config, st *gormstore.Store, log *zap.Logger) (stop func()) {
	retention, err := c.auditRetention()
	if err != nil || retention == 0 {
		log.Info("audit events are kept forever (--audit-retention 0)")
		return func() {}
	}
	audit := scim.NewAuditLog(st, log)
	return startWorker(ctx, "audit retention", func(ctx context.Context) { audit.Work(ctx, retention, auditSweepEvery) }, log)
}

// cliContext marks the changes an administration command makes: their audit
// events name the route "cli" and no token.
func cliContext(ctx context.Context) context.Context {
	return store.WithActor(ctx, &store.Actor{Route: "cli"})
}

// maxAuditCLILimit bounds --limit of scimd audit.
const maxAuditCLILimit = 100000

const auditUsage = "usage: scimd audit --tenant NAME --since 2026-11-01T00:00:00Z [--until T] [--limit N] [--format table|json]"

// auditCmd prints a tenant's audit events, oldest first: as a table, or with
// --format json as one JSON object per line.
func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c Config
	var tenant, since, until, format string
	var limit int
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	databaseFlags(fs, &c)
	fs.StringVar(&tenant, "tenant", "", "tenant whose audit events to print (required)")
	fs.StringVar(&since, "since", "", "print events from this RFC 3339 time on, e.g. 2026-11-01T00:00:00Z (required)")
	fs.StringVar(&until, "until", "", "print events before this RFC 3339 time (default: up to now)")
	fs.IntVar(&limit, "limit", 1000, fmt.Sprintf("print at most this many events (1 to %d)", maxAuditCLILimit))
	fs.StringVar(&format, "format", "table", "table, or json (one JSON object per line)")
	st, _, err := setup(ctx, fs, &c, args, false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	var problems []error
	if tenant == "" || since == "" || fs.NArg() != 0 {
		problems = append(problems, errors.New(auditUsage))
	}
	var q scim.AuditQuery
	if since != "" {
		if q.Since, err = time.Parse(time.RFC3339Nano, since); err != nil {
			problems = append(problems, fmt.Errorf("--since %q: want an RFC 3339 time such as 2026-11-01T00:00:00Z", since))
		}
	}
	if until != "" {
		if q.Until, err = time.Parse(time.RFC3339Nano, until); err != nil {
			problems = append(problems, fmt.Errorf("--until %q: want an RFC 3339 time such as 2026-12-01T00:00:00Z", until))
		}
	}
	if limit < 1 || limit > maxAuditCLILimit {
		problems = append(problems, fmt.Errorf("--limit must be an integer from 1 to %d", maxAuditCLILimit))
	}
	if format != "table" && format != "json" {
		problems = append(problems, fmt.Errorf("--format %q: use table or json", format))
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	audit := scim.NewAuditLog(st, zap.NewNop())
	var events []store.AuditEvent
	more := false
	for {
		q.Limit = min(limit-len(events), scim.MaxAuditLimit)
		page, err := audit.TenantEvents(ctx, tenant, q)
		if err != nil {
			return err
		}
		events = append(events, page.Events...)
		if page.NextCursor == "" {
			break
		}
		if len(events) >= limit {
			more = true
			break
		}
		q.Cursor = page.NextCursor
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		for _, e := range events {
			if err := enc.Encode(scim.RecordOf(e)); err != nil {
				return err
			}
		}
	} else if err := auditTable(stdout, events); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(stderr, "scimd: more events follow; raise --limit or narrow --since and --until\n")
	}
	return nil
}

// auditTable prints events as aligned columns.
func auditTable(w io.Writer, events []store.AuditEvent) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tOUTCOME\tSTATUS\tOPERATION\tRESOURCE\tVERSION\tROUTE\tTOKEN\tCLIENT\tREQUEST\tDETAIL")
	for _, e := range events {
		status := "-"
		if e.Status != 0 {
			status = strconv.Itoa(e.Status)
		}
		resource := e.ResourceType
		if e.ResourceID != "" {
			resource += "/" + e.ResourceID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(scim.AuditTimeLayout), e.Outcome, status,
			e.Operation, orDash(resource), versions(e.OldVersion, e.NewVersion), orDash(e.Route), orDash(e.TokenID), orDash(e.ClientAddr),
			orDash(e.RequestID), strings.ReplaceAll(e.Detail, "\t", " "))
	}
	return tw.Flush()
}

// versions shows an event's versions as old→new, "-" for a missing one.
func versions(old, new *int64) string {
	if old == nil && new == nil {
		return "-"
	}
	show := func(v *int64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatInt(*v, 10)
	}
	return show(old) + "→" + show(new)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
