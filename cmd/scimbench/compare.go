package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// compare is one line of the table: a scimd figure next to the database alone and
// the target.
type compare struct {
	Scenario string  `json:"scenario"`
	Ops      int     `json:"ops"`
	Errors   int     `json:"errors"`
	RPS      float64 `json:"req_per_s"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	DBRPS    float64 `json:"db_req_per_s,omitempty"`
	DBP50    float64 `json:"db_p50_ms,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	Target   string  `json:"target,omitempty"`
	Met      *bool   `json:"met,omitempty"`
	// NaiveRPS is the naive stack's rate in the same scenario (naive.go),
	// NaiveRatio that rate over the database's, and VsNaive scimd's rate over it.
	NaiveRPS   float64 `json:"naive_req_per_s,omitempty"`
	NaiveRatio float64 `json:"naive_ratio,omitempty"`
	VsNaive    float64 `json:"scimd_per_naive,omitempty"`
}

// ratioTargets are the minimum scimd/database throughput ratios, and which
// baseline scenario each scimd scenario is divided by.
var ratioTargets = map[string]struct {
	min  float64
	base string
}{
	"create user":               {0.5, "create user"},
	"lookup userName eq":        {0.35, "lookup userName eq"},
	"GET user by id":            {0.45, "GET user by id"},
	"PATCH active":              {0.8, "PATCH active"},
	"page by index, count=100":  {0.25, "page by cursor, count=100"},
	"page by cursor, count=100": {0.25, "page by cursor, count=100"},
}

// Single-member changes must be fast whatever the group's size.
const (
	memberP50 = 2.0
	memberP99 = 20.0
	flatness  = 1.5
)

func (b *bench) compare() []compare {
	db, naive := map[string]Result{}, map[string]Result{}
	for _, r := range b.results {
		switch r.Side {
		case "database":
			db[r.Scenario] = r
		case "naive":
			naive[r.Scenario] = r
		}
	}
	var out []compare
	for _, r := range b.results {
		if r.Side != "scimd" {
			continue
		}
		c := compare{Scenario: r.Scenario, Ops: r.Ops, Errors: r.Errors, RPS: r.RPS, P50: r.P50, P95: r.P95, P99: r.P99}
		baseName := r.Scenario
		t, hasRatio := ratioTargets[r.Scenario]
		if hasRatio {
			baseName = t.base
		}
		if r.Scenario == floorScenario {
			baseName = "GET user by id"
		}
		baseName = strings.Replace(baseName, " (minimal)", "", 1)
		if d, ok := db[baseName]; ok && d.RPS > 0 {
			c.DBRPS, c.DBP50 = d.RPS, d.P50
			c.Ratio = r.RPS / d.RPS
		}
		if n, ok := naive[r.Scenario]; ok && n.RPS > 0 && n.Errors == 0 {
			c.NaiveRPS, c.VsNaive = n.RPS, r.RPS/n.RPS
			if c.DBRPS > 0 {
				c.NaiveRatio = n.RPS / c.DBRPS
			}
		}
		met := r.Errors == 0 && r.Ops > 0
		switch {
		case hasRatio:
			c.Target = fmt.Sprintf("≥ %.2f", t.min)
			met = met && c.DBRPS > 0 && c.Ratio >= t.min
			c.Met = &met
		case r.Scenario == floorScenario:
			c.Target = "reference: no SCIM work"
		case strings.HasPrefix(r.Scenario, "group add 1 ") || strings.HasPrefix(r.Scenario, "group remove 1 "):
			c.Target = fmt.Sprintf("p50 ≤ %g, p99 ≤ %g ms", memberP50, memberP99)
			met = met && r.P50 <= memberP50 && r.P99 <= memberP99
			c.Met = &met
		default:
			c.Target = "0 errors"
			c.Met = &met
		}
		out = append(out, c)
	}
	// Flatness: the p50 at the largest size against the p50 at the smallest.
	if len(b.cfg.groupSizes) > 1 {
		lo, hi := b.cfg.groupSizes[0], b.cfg.groupSizes[len(b.cfg.groupSizes)-1]
		p50 := map[string]float64{}
		for _, r := range b.results {
			if r.Side == "scimd" {
				p50[r.Scenario] = r.P50
			}
		}
		for _, name := range []string{"group add 1 member", "group remove 1 member", "group add 1 member (minimal)", "group remove 1 member (minimal)", "GET member user"} {
			a, okA := p50[fmt.Sprintf("%s @%d", name, lo)]
			z, okZ := p50[fmt.Sprintf("%s @%d", name, hi)]
			if !okA || !okZ || a == 0 {
				continue
			}
			met := z/a <= flatness
			out = append(out, compare{Scenario: fmt.Sprintf("%s: p50 @%d / p50 @%d", name, hi, lo), Ratio: z / a,
				Target: fmt.Sprintf("≤ %.1f", flatness), Met: &met})
		}
	}
	return out
}

// printTable writes the comparison as a Markdown table.
func printTable(w io.Writer, b *bench, m machine, comps []compare) {
	db := b.cfg.dbKind
	if db == "" {
		db = "no baseline"
	}
	fmt.Fprintf(w, "\nscimbench %s, %s; %d users, concurrency %d, %s per timed scenario; %d CPUs, %s/%s, %s\n\n",
		time.Now().UTC().Format("2006-01-02"), db, b.cfg.preload+b.cfg.users, b.cfg.concurrency, b.cfg.duration, m.CPUs, m.OS, m.Arch, m.Go)
	fmt.Fprintln(w, "| Scenario | ops | errors | scimd req/s | p50 ms | p95 ms | p99 ms | database req/s | db p50 ms | ratio | target | met | naive req/s | naive ratio | scimd ÷ naive |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|--:|--:|--:|")
	for _, c := range comps {
		if c.Ops == 0 && c.RPS == 0 && c.Ratio != 0 { // a flatness line
			fmt.Fprintf(w, "| %s | | | | | | | | | %.2f | %s | %s | | | |\n", c.Scenario, c.Ratio, c.Target, yes(c.Met))
			continue
		}
		dbr, dbp, ratio := "–", "–", "–"
		if c.DBRPS > 0 {
			dbr, dbp, ratio = fmt.Sprintf("%.0f", c.DBRPS), fmt.Sprintf("%.2f", c.DBP50), fmt.Sprintf("%.2f", c.Ratio)
		}
		nr, nratio, vs := "", "", ""
		if c.NaiveRPS > 0 {
			nr, vs = fmt.Sprintf("%.0f", c.NaiveRPS), fmt.Sprintf("%.2f", c.VsNaive)
			if c.NaiveRatio > 0 {
				nratio = fmt.Sprintf("%.2f", c.NaiveRatio)
			}
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			c.Scenario, c.Ops, c.Errors, c.RPS, c.P50, c.P95, c.P99, dbr, dbp, ratio, c.Target, yes(c.Met), nr, nratio, vs)
	}
	if b.naive != nil {
		fmt.Fprintln(w, "\nnaive: a plain net/http + gorm server with no SCIM logic over the same database (scimbench naive-serve);")
		fmt.Fprintln(w, "naive ratio: its rate over the database's; scimd ÷ naive above 1 means scimd is faster.")
	}
	if b.maxRSS > 0 {
		fmt.Fprintf(w, "\nscimd resident set: at most %.0f MB (sampled after each scenario)\n", float64(b.maxRSS)/(1<<20))
	}
}

func yes(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "yes"
	}
	return "**no**"
}
