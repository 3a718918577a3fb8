package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is scimbench's settings, from flags.
type config struct {
	url, token, database, scimd, pgAdmin, logPath, jsonPath string
	users, preload, concurrency, maxOps, memberOps, deletes int
	groupSizes                                              []int
	duration, createTimeout, requestTimeout                 time.Duration
	keep, naive                                             bool
	dbKind                                                  string
	progress                                                io.Writer
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == naiveCommand {
		runNaiveServe(os.Args[2:])
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run1(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "scimbench:", err)
		}
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var sizes string
	fs := flag.NewFlagSet("scimbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", "", "SCIM base URL of a running server, e.g. http://127.0.0.1:8080/scim/v2")
	fs.StringVar(&c.token, "token", os.Getenv("SCIMBENCH_TOKEN"), "bearer token with the scim scope (env SCIMBENCH_TOKEN)")
	fs.StringVar(&c.database, "database", "", "the server's database (sqlite://PATH or postgres://…), for the raw-database baseline; with -scimd, the database to serve")
	fs.StringVar(&c.scimd, "scimd", "", "start this scimd binary on 127.0.0.1 over -database (or a fresh -postgres-admin database) and stop it afterwards")
	fs.StringVar(&c.pgAdmin, "postgres-admin", "", "with -scimd: create a fresh database on this PostgreSQL server (postgres://…), serve it, drop it afterwards")
	fs.StringVar(&c.logPath, "server-log", "scimd-bench.log", "with -scimd: file for the server's log")
	fs.StringVar(&c.jsonPath, "json", "", "write the results as JSON to this file")
	fs.IntVar(&c.users, "users", 10000, "users to create (and as many in the baseline)")
	fs.IntVar(&c.preload, "preload", 0, "users to load untimed before the timed scenarios, through scimd's store in process (and as many in the baseline)")
	fs.IntVar(&c.concurrency, "concurrency", 8, "concurrent clients")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "time bound of each timed scenario")
	fs.IntVar(&c.maxOps, "max-ops", 200000, "count bound of each timed scenario")
	fs.StringVar(&sizes, "group-sizes", "1000,10000", "sizes the group is grown to, comma-separated")
	fs.IntVar(&c.memberOps, "member-ops", 200, "single-member removes (and as many adds) timed at each group size")
	fs.IntVar(&c.deletes, "deletes", 1000, "users to DELETE at the end")
	fs.DurationVar(&c.createTimeout, "create-timeout", 2*time.Hour, "time bound of creating the users and growing the group")
	fs.DurationVar(&c.requestTimeout, "request-timeout", time.Minute, "time bound of one request")
	fs.BoolVar(&c.keep, "keep-baseline", false, "keep the baseline tenant's rows in the database")
	fs.BoolVar(&c.naive, "naive", true, "with -database: also run the naive stack (plain net/http + gorm, no SCIM logic) over the same database, as a reference")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 || n%100 != 0 {
			errs = append(errs, fmt.Errorf("-group-sizes: %q is not a multiple of 100", f))
			continue
		}
		c.groupSizes = append(c.groupSizes, n)
	}
	sort.Ints(c.groupSizes)
	if c.scimd == "" && c.url == "" {
		errs = append(errs, errors.New("name a running server with -url (and -token), or a binary to start with -scimd"))
	}
	if c.scimd != "" && c.database == "" && c.pgAdmin == "" {
		errs = append(errs, errors.New("-scimd needs -database sqlite://PATH or -postgres-admin postgres://…"))
	}
	if c.scimd == "" && c.token == "" {
		errs = append(errs, errors.New("-token (or SCIMBENCH_TOKEN) is required with -url"))
	}
	if c.users < 1 || c.concurrency < 1 || c.maxOps < 1 || c.memberOps < 1 || c.deletes < 0 || c.duration <= 0 || c.preload < 0 {
		errs = append(errs, errors.New("-users, -concurrency, -max-ops, -member-ops and -duration must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(stderr, "scimbench:", err)
		return c, errUsage
	}
	return c, nil
}

func run1(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	c.progress = stderr
	runID := randomHex(4)
	var srv *server
	if c.scimd != "" {
		if c.pgAdmin != "" {
			dsn, drop, err := createDatabase(ctx, c.pgAdmin, "scimbench_"+runID)
			if err != nil {
				return err
			}
			defer func() {
				if err := drop(); err != nil {
					fmt.Fprintln(stderr, "scimbench: drop database:", err)
				}
			}()
			c.database = dsn
		}
		c.token = "scimbench_" + randomHex(16)
		fmt.Fprintf(stderr, "starting %s over %s (log: %s)\n", c.scimd, redact(c.database), c.logPath)
		if srv, err = startServer(ctx, c.scimd, c.database, c.token, c.logPath); err != nil {
			return err
		}
		defer srv.stop()
		c.url = srv.base
	}
	b := &bench{cfg: c, c: newClient(c.url, c.token, c.concurrency, c.requestTimeout), runID: runID}
	if srv != nil {
		b.rss = srv.rss
	}
	if c.database != "" {
		b.cfg.dbKind = strings.SplitN(c.database, ":", 2)[0]
		if b.raw, err = openRaw(c.database, c.concurrency); err != nil {
			return err
		}
		defer b.raw.close()
	}
	m := machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
	fmt.Fprintf(stderr, "scimbench %s: %d users (%d preloaded), concurrency %d, %s per timed scenario, %d CPUs\n",
		c.url, c.preload+c.users, c.preload, c.concurrency, c.duration, m.CPUs)
	if err := b.all(ctx); err != nil {
		return err
	}
	comps := b.compare()
	printTable(stdout, b, m, comps)
	if c.jsonPath != "" {
		j, err := b.jsonReport(m, comps)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(c.jsonPath), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(c.jsonPath, j, 0o644); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// redact hides a password in a DSN.
func redact(dsn string) string {
	if i, j := strings.Index(dsn, "://"), strings.LastIndex(dsn, "@"); i >= 0 && j > i {
		if k := strings.Index(dsn[i+3:j], ":"); k >= 0 {
			return dsn[:i+3+k] + ":***" + dsn[j:]
		}
	}
	return dsn
}
