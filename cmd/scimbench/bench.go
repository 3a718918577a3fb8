package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// bench holds one run: its settings, the users it created on each side and the
// results so far.
type bench struct {
	cfg    config
	c      *client
	raw    *rawDB // nil without -database
	naive  *naive // nil without -database or with -naive=false
	runID  string
	rss    func() int64 // the server's resident set in bytes, or nil
	ids    []string     // scimd user ids by index ("" where the create failed)
	rawIDs []string
	ok     []int // indexes of the users scimd created
	rawOK  []int
	// naiveIDs and naiveOK are the naive stack's, as ids and ok are scimd's.
	naiveIDs []string
	naiveOK  []int
	results  []Result
	maxRSS   int64
}

func (b *bench) timed() load {
	return load{Workers: b.cfg.concurrency, MaxOps: b.cfg.maxOps, MaxTime: b.cfg.duration}
}

func (b *bench) add(r Result) {
	if b.rss != nil && r.Side == "scimd" {
		r.ServerRSS = b.rss()
		b.maxRSS = max(b.maxRSS, r.ServerRSS)
	}
	b.results = append(b.results, r)
	fmt.Fprintf(b.cfg.progress, "  %-30s %-8s %7d ops %5d err %9.1f req/s  p50 %7.2f ms  p99 %7.2f ms  rss %4d MB\n",
		r.Scenario, r.Side, r.Ops, r.Errors, r.RPS, r.P50, r.P99, r.ServerRSS>>20)
	if r.FirstErr != "" {
		fmt.Fprintf(b.cfg.progress, "    first error: %.300s\n", r.FirstErr)
	}
}

func (b *bench) all(ctx context.Context) error {
	if b.raw != nil {
		if err := b.raw.setup(ctx, b.runID); err != nil {
			return err
		}
	}
	b.ids = make([]string, b.cfg.preload+b.cfg.users)
	b.rawIDs = make([]string, b.cfg.preload+b.cfg.users)
	b.naiveIDs = make([]string, b.cfg.preload+b.cfg.users)
	if b.raw != nil && b.cfg.naive {
		n, err := startNaive(ctx, b.cfg.database, b.raw.naiveTenant, b.cfg.concurrency, b.cfg.requestTimeout)
		if err != nil {
			return fmt.Errorf("naive stack: %w", err)
		}
		defer n.stop()
		b.naive = n
	}
	if err := b.preload(ctx); err != nil {
		return err
	}
	b.create(ctx)
	if len(b.ok) == 0 {
		return fmt.Errorf("no user could be created; see the first error above")
	}
	b.lookups(ctx)
	b.gets(ctx)
	b.pages(ctx)
	b.patches(ctx)
	b.groups(ctx)
	b.deletes(ctx)
	if b.raw != nil && !b.cfg.keep {
		if err := b.raw.cleanup(ctx); err != nil {
			fmt.Fprintf(b.cfg.progress, "  baseline cleanup: %v\n", err)
		}
	}
	return nil
}

func (b *bench) create(ctx context.Context) {
	n, pre := b.cfg.users, b.cfg.preload
	l := load{Workers: b.cfg.concurrency, MaxOps: n, MaxTime: b.cfg.createTimeout}
	// post creates user pre+i over HTTP through c and records its id in ids.
	post := func(c *client, ids []string) opFunc {
		return func(ctx context.Context, _, i int, _ *rand.Rand) error {
			i += pre
			var r resource
			if err := c.expect(ctx, 201, "POST", "/Users", nil, userDoc(b.runID, i), &r); err != nil {
				return err
			}
			if r.ID == "" || r.UserName != userName(b.runID, i) {
				return fmt.Errorf("create %d: answer has id %q, userName %q", i, r.ID, r.UserName)
			}
			ids[i] = r.ID
			return nil
		}
	}
	b.add(run(ctx, "create user", "scimd", l, post(b.c, b.ids)))
	b.ok = created(b.ids)
	if b.raw == nil {
		return
	}
	b.add(run(ctx, "create user", "database", l, func(ctx context.Context, _, i int, _ *rand.Rand) error {
		i += pre
		id := uuid.NewString()
		if err := b.raw.insertUser(ctx, b.runID, i, id); err != nil {
			return err
		}
		b.rawIDs[i] = id
		return nil
	}))
	b.rawOK = created(b.rawIDs)
	if b.naive == nil {
		return
	}
	b.add(run(ctx, "create user", "naive", l, post(b.naive.c, b.naiveIDs)))
	b.naiveOK = created(b.naiveIDs)
}

func created(ids []string) []int {
	var ok []int
	for i, id := range ids {
		if id != "" {
			ok = append(ok, i)
		}
	}
	return ok
}

func (b *bench) lookups(ctx context.Context) {
	lookup := func(c *client, ids []string, ok []int) opFunc {
		return func(ctx context.Context, _, _ int, rng *rand.Rand) error {
			i := ok[rng.IntN(len(ok))]
			q := url.Values{"filter": {fmt.Sprintf("userName eq %q", userName(b.runID, i))}}
			var lr listResponse
			if err := c.expect(ctx, 200, "GET", "/Users", q, nil, &lr); err != nil {
				return err
			}
			if len(lr.Resources) != 1 || lr.Resources[0].ID != ids[i] {
				return fmt.Errorf("lookup %d: %d resources", i, len(lr.Resources))
			}
			return nil
		}
	}
	b.add(run(ctx, "lookup userName eq", "scimd", b.timed(), lookup(b.c, b.ids, b.ok)))
	if b.raw == nil || len(b.rawOK) == 0 {
		return
	}
	b.add(run(ctx, "lookup userName eq", "database", b.timed(), func(ctx context.Context, _, _ int, rng *rand.Rand) error {
		return b.raw.lookupUser(ctx, b.runID, b.rawOK[rng.IntN(len(b.rawOK))])
	}))
	if b.naive != nil && len(b.naiveOK) > 0 {
		b.add(run(ctx, "lookup userName eq", "naive", b.timed(), lookup(b.naive.c, b.naiveIDs, b.naiveOK)))
	}
}

// floorScenario is the cheapest answer the server gives (GET /healthz: no token,
// no database) over the same client and connections: the ceiling HTTP itself puts
// on every other scenario on this machine.
const floorScenario = "HTTP floor: GET /healthz"

func (b *bench) gets(ctx context.Context) {
	health := strings.TrimSuffix(strings.TrimSuffix(b.cfg.url, "/"), "/scim/v2") + "/healthz"
	b.add(run(ctx, floorScenario, "scimd", b.timed(), func(ctx context.Context, _, _ int, _ *rand.Rand) error {
		st, _, err := b.c.doURL(ctx, "GET", health)
		if err == nil && st != 200 {
			err = fmt.Errorf("GET /healthz: %d", st)
		}
		return err
	}))
	get := func(c *client, ids []string, ok []int) opFunc {
		return func(ctx context.Context, _, _ int, rng *rand.Rand) error {
			id := ids[ok[rng.IntN(len(ok))]]
			var r resource
			if err := c.expect(ctx, 200, "GET", "/Users/"+id, nil, nil, &r); err != nil {
				return err
			}
			if r.ID != id {
				return fmt.Errorf("GET %s: answer has id %q", id, r.ID)
			}
			return nil
		}
	}
	b.add(run(ctx, "GET user by id", "scimd", b.timed(), get(b.c, b.ids, b.ok)))
	if b.raw == nil || len(b.rawOK) == 0 {
		return
	}
	b.add(run(ctx, "GET user by id", "database", b.timed(), func(ctx context.Context, _, _ int, rng *rand.Rand) error {
		return b.raw.getUser(ctx, b.rawIDs[b.rawOK[rng.IntN(len(b.rawOK))]])
	}))
	if b.naive != nil && len(b.naiveOK) > 0 {
		b.add(run(ctx, "GET user by id", "naive", b.timed(), get(b.naive.c, b.naiveIDs, b.naiveOK)))
	}
}

// walk is one worker's position in a sequential walk through all users.
type walk struct {
	start   int    // index paging: the next startIndex (0 before the first page)
	cursor  string // cursor paging: the next cursor
	seen    int
	total   int
	created any // database: the position after the last page
	id      string
}

func (b *bench) pages(ctx context.Context) {
	const count = "100"
	byIndex := func(c *client) opFunc {
		walks := make([]walk, b.cfg.concurrency)
		return func(ctx context.Context, w, _ int, _ *rand.Rand) error {
			st := &walks[w]
			if st.start == 0 {
				st.start = 1
			}
			q := url.Values{"startIndex": {fmt.Sprint(st.start)}, "count": {count}}
			var lr listResponse
			err := c.expect(ctx, 200, "GET", "/Users", q, nil, &lr)
			if err != nil || lr.TotalResults == nil {
				if err == nil {
					err = fmt.Errorf("page at %d: no totalResults", st.start)
				}
				st.start = 1
				return err
			}
			want := min(100, *lr.TotalResults-st.start+1)
			st.start += 100
			if st.start > *lr.TotalResults {
				st.start = 1
			}
			if len(lr.Resources) != want {
				return fmt.Errorf("page: %d resources, want %d", len(lr.Resources), want)
			}
			return nil
		}
	}
	b.add(run(ctx, "page by index, count=100", "scimd", b.timed(), byIndex(b.c)))
	walks := make([]walk, b.cfg.concurrency)
	b.add(run(ctx, "page by cursor, count=100", "scimd", b.timed(), func(ctx context.Context, w, _ int, _ *rand.Rand) error {
		st := &walks[w]
		q := url.Values{"cursor": {st.cursor}, "count": {count}}
		var lr listResponse
		if err := b.c.expect(ctx, 200, "GET", "/Users", q, nil, &lr); err != nil {
			*st = walk{}
			return err
		}
		if st.cursor == "" && lr.TotalResults != nil {
			st.total = *lr.TotalResults
		}
		st.seen += len(lr.Resources)
		st.cursor = lr.NextCursor
		if st.cursor == "" {
			seen, total := st.seen, st.total
			*st = walk{}
			if seen != total {
				return fmt.Errorf("cursor walk saw %d users of %d", seen, total)
			}
		} else if len(lr.Resources) != 100 {
			return fmt.Errorf("cursor page: %d resources and a next cursor", len(lr.Resources))
		}
		return nil
	}))
	if b.raw == nil {
		return
	}
	walks = make([]walk, b.cfg.concurrency)
	b.add(run(ctx, "page by cursor, count=100", "database", b.timed(), func(ctx context.Context, w, _ int, _ *rand.Rand) error {
		st := &walks[w]
		created, id, more, err := b.raw.keysetPage(ctx, st.created, st.id)
		if err != nil || !more {
			*st = walk{}
			return err
		}
		st.created, st.id = created, id
		return nil
	}))
	if b.naive != nil && len(b.naiveOK) > 0 {
		b.add(run(ctx, "page by index, count=100", "naive", b.timed(), byIndex(b.naive.c)))
	}
}

func (b *bench) patches(ctx context.Context) {
	b.add(run(ctx, "PATCH active", "scimd", b.timed(), func(ctx context.Context, _, _ int, rng *rand.Rand) error {
		id := b.ids[b.ok[rng.IntN(len(b.ok))]]
		active := rng.IntN(2) == 0
		var r resource
		body := patchOp(map[string]any{"op": "replace", "path": "active", "value": active})
		if err := b.c.expect(ctx, 200, "PATCH", "/Users/"+id, nil, body, &r); err != nil {
			return err
		}
		if r.ID != id || r.Active == nil || *r.Active != active {
			return fmt.Errorf("PATCH %s: answer does not show active %t", id, active)
		}
		return nil
	}))
	if b.raw == nil || len(b.rawOK) == 0 {
		return
	}
	b.add(run(ctx, "PATCH active", "database", b.timed(), func(ctx context.Context, _, _ int, rng *rand.Rand) error {
		i := b.rawOK[rng.IntN(len(b.rawOK))]
		return b.raw.setActive(ctx, b.runID, i, b.rawIDs[i], rng.IntN(2) == 0)
	}))
	if b.naive == nil || len(b.naiveOK) == 0 {
		return
	}
	b.add(run(ctx, "PATCH active", "naive", b.timed(), func(ctx context.Context, _, _ int, rng *rand.Rand) error {
		id := b.naiveIDs[b.naiveOK[rng.IntN(len(b.naiveOK))]]
		body := patchOp(map[string]any{"op": "replace", "path": "active", "value": rng.IntN(2) == 0})
		return b.naive.c.expect(ctx, 204, "PATCH", "/Users/"+id, nil, body, nil)
	}))
}

// groups grows one group to each size with 100-member PATCHes and, at each size,
// times single-member remove and add PATCHes and a read without members.
func (b *bench) groups(ctx context.Context) {
	var g resource
	if err := b.c.expect(ctx, 201, "POST", "/Groups", nil,
		map[string]any{"schemas": []string{schemaGroup}, "displayName": "scimbench " + b.runID}, &g); err != nil || g.ID == "" {
		b.add(Result{Scenario: "create group", Side: "scimd", Errors: 1, FirstErr: fmt.Sprint(err)})
		return
	}
	members := make([]string, len(b.ok))
	for k, i := range b.ok {
		members[k] = b.ids[i]
	}
	var rawMembers []string
	for _, i := range b.rawOK {
		rawMembers = append(rawMembers, b.rawIDs[i])
	}
	path := "/Groups/" + g.ID
	cur, rawCur := 0, 0
	for _, size := range b.cfg.groupSizes {
		if size > len(members) {
			fmt.Fprintf(b.cfg.progress, "  group size %d skipped: only %d users\n", size, len(members))
			continue
		}
		at := fmt.Sprintf(" @%d", size)
		// Grow, one identity-provider push at a time.
		from := cur
		grow := load{Workers: 1, MaxOps: (size - from + 99) / 100, MaxTime: b.cfg.createTimeout}
		b.add(run(ctx, "group add 100 members"+at, "scimd", grow, func(ctx context.Context, _, i int, _ *rand.Rand) error {
			part := members[from+i*100 : min(from+(i+1)*100, size)]
			body := patchOp(map[string]any{"op": "add", "path": "members", "value": memberValues(part)})
			return b.c.expect(ctx, 204, "PATCH", path, nil, body, nil, "Prefer", "return=minimal")
		}))
		cur = size
		// Single-member changes: take a random member out, then put it back.
		for _, minimal := range []bool{false, true} {
			var hdr []string
			name, want := "", 200
			if minimal {
				hdr, name, want = []string{"Prefer", "return=minimal"}, " (minimal)", 204
			}
			picks := sample(members[:size], b.cfg.memberOps)
			one := load{Workers: 1, MaxOps: len(picks), MaxTime: b.cfg.duration}
			rm := run(ctx, "group remove 1 member"+name+at, "scimd", one, func(ctx context.Context, _, i int, _ *rand.Rand) error {
				body := patchOp(map[string]any{"op": "remove", "path": fmt.Sprintf("members[value eq %q]", picks[i])})
				return b.c.expect(ctx, want, "PATCH", path, nil, body, nil, hdr...)
			})
			b.add(rm)
			// Put back every member taken out, and the one whose remove the time
			// bound cut short (the server may have applied it): adding a member
			// the group has already changes nothing.
			back := load{Workers: 1, MaxOps: min(rm.Ops+1, len(picks)), MaxTime: b.cfg.createTimeout}
			b.add(run(ctx, "group add 1 member"+name+at, "scimd", back, func(ctx context.Context, _, i int, _ *rand.Rand) error {
				body := patchOp(map[string]any{"op": "add", "path": "members", "value": memberValues(picks[i : i+1])})
				return b.c.expect(ctx, want, "PATCH", path, nil, body, nil, hdr...)
			}))
		}
		// A user's answer lists its groups: reading a member of the big group must
		// not cost more as the group grows.
		b.add(run(ctx, "GET member user"+at, "scimd", b.timed(), func(ctx context.Context, _, _ int, rng *rand.Rand) error {
			id := members[rng.IntN(size)]
			var r resource
			if err := b.c.expect(ctx, 200, "GET", "/Users/"+id, nil, nil, &r); err != nil {
				return err
			}
			if r.ID != id || len(r.Groups) == 0 {
				return fmt.Errorf("GET member %s: answer has id %q and %d groups", id, r.ID, len(r.Groups))
			}
			return nil
		}))
		b.add(run(ctx, "GET group without members"+at, "scimd", b.timed(), func(ctx context.Context, _, _ int, _ *rand.Rand) error {
			var r resource
			if err := b.c.expect(ctx, 200, "GET", path, url.Values{"excludedAttributes": {"members"}}, nil, &r); err != nil {
				return err
			}
			if r.ID != g.ID || r.Members != nil {
				return fmt.Errorf("GET group: wrong id or members present")
			}
			return nil
		}))
		if b.raw == nil || size > len(rawMembers) {
			continue
		}
		rawFrom := rawCur
		grow.MaxOps = (size - rawFrom + 99) / 100
		b.add(run(ctx, "group add 100 members"+at, "database", grow, func(ctx context.Context, _, i int, _ *rand.Rand) error {
			return b.raw.addMembers(ctx, rawMembers[rawFrom+i*100:min(rawFrom+(i+1)*100, size)])
		}))
		rawCur = size
		picks := sample(rawMembers[:size], b.cfg.memberOps)
		one := load{Workers: 1, MaxOps: len(picks), MaxTime: b.cfg.duration}
		rm := run(ctx, "group remove 1 member"+at, "database", one, func(ctx context.Context, _, i int, _ *rand.Rand) error {
			return b.raw.removeMember(ctx, picks[i])
		})
		b.add(rm)
		back := load{Workers: 1, MaxOps: rm.Ops, MaxTime: b.cfg.createTimeout}
		b.add(run(ctx, "group add 1 member"+at, "database", back, func(ctx context.Context, _, i int, _ *rand.Rand) error {
			return b.raw.addMember(ctx, picks[i])
		}))
		b.add(run(ctx, "GET group without members"+at, "database", b.timed(), func(ctx context.Context, _, _ int, _ *rand.Rand) error {
			return b.raw.getBaselineGroup(ctx)
		}))
	}
}

// sample returns n distinct elements of s (all of them when n is larger).
func sample(s []string, n int) []string {
	out := make([]string, 0, min(n, len(s)))
	for _, k := range rand.Perm(len(s))[:min(n, len(s))] {
		out = append(out, s[k])
	}
	return out
}

// deletes removes the most recently created users (members of the group when it
// holds every user).
func (b *bench) deletes(ctx context.Context) {
	n := min(b.cfg.deletes, len(b.ok))
	victims := slices.Clone(b.ok[len(b.ok)-n:])
	l := load{Workers: b.cfg.concurrency, MaxOps: n, MaxTime: b.cfg.duration}
	b.add(run(ctx, "DELETE user", "scimd", l, func(ctx context.Context, _, i int, _ *rand.Rand) error {
		return b.c.expect(ctx, 204, "DELETE", "/Users/"+b.ids[victims[i]], nil, nil, nil)
	}))
	if b.raw == nil || len(b.rawOK) == 0 {
		return
	}
	n = min(b.cfg.deletes, len(b.rawOK))
	rawVictims := slices.Clone(b.rawOK[len(b.rawOK)-n:])
	l.MaxOps = n
	b.add(run(ctx, "DELETE user", "database", l, func(ctx context.Context, _, i int, _ *rand.Rand) error {
		return b.raw.deleteUser(ctx, b.rawIDs[rawVictims[i]])
	}))
}

// report is the JSON written by -json.
type report struct {
	Date        string    `json:"date"`
	Machine     machine   `json:"machine"`
	BaseURL     string    `json:"base_url"`
	Database    string    `json:"database,omitempty"`
	Users       int       `json:"users"`
	Concurrency int       `json:"concurrency"`
	Duration    string    `json:"duration_per_scenario"`
	ServerRSS   int64     `json:"server_max_rss_bytes,omitempty"`
	Results     []Result  `json:"results"`
	Comparisons []compare `json:"comparisons"`
}

type machine struct {
	CPUs int    `json:"cpus"`
	OS   string `json:"os"`
	Arch string `json:"arch"`
	Go   string `json:"go"`
}

func (b *bench) jsonReport(m machine, comps []compare) ([]byte, error) {
	return json.MarshalIndent(report{
		Date: time.Now().UTC().Format(time.RFC3339), Machine: m, BaseURL: b.c.base, Database: b.cfg.dbKind,
		Users: b.cfg.preload + b.cfg.users, Concurrency: b.cfg.concurrency, Duration: b.cfg.duration.String(), ServerRSS: b.maxRSS,
		Results: b.results, Comparisons: comps,
	}, "", "  ")
}
