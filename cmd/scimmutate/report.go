package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// pkgReport is one package's line of the report.
type pkgReport struct {
	Pkg        string  `json:"pkg"`
	Candidates int     `json:"candidates"`
	Evaluated  int     `json:"evaluated"`
	Killed     int     `json:"killed"`
	TimedOut   int     `json:"timed_out"`
	Survived   int     `json:"survived"`
	NotCovered int     `json:"not_covered"`
	NotViable  int     `json:"not_viable"`
	Equivalent int     `json:"equivalent"`
	Score      float64 `json:"score"`   // (killed+timed out)/(killed+timed out+survived+not covered)
	Sampled    float64 `json:"sampled"` // evaluated/candidates
}

func (p *pkgReport) add(r *result) {
	p.Evaluated++
	switch r.Status {
	case statusKilled:
		p.Killed++
	case statusTimedOut:
		p.TimedOut++
	case statusSurvived:
		p.Survived++
	case statusNotCovered:
		p.NotCovered++
	case statusNotViable:
		p.NotViable++
	case statusEquivalent:
		p.Equivalent++
	}
}

func (p *pkgReport) finish() {
	if d := p.Killed + p.TimedOut + p.Survived + p.NotCovered; d > 0 {
		p.Score = float64(p.Killed+p.TimedOut) / float64(d)
	}
	if p.Candidates > 0 {
		p.Sampled = float64(p.Evaluated) / float64(p.Candidates)
	}
}

// report is the whole run: the JSON written to bin/mutate/report.json.
type report struct {
	Seed        uint64      `json:"seed"`
	Sample      int         `json:"sample"`
	Budget      string      `json:"budget"`
	Duration    string      `json:"duration"`
	Workers     int         `json:"workers"`
	Postgres    bool        `json:"postgres"`
	Packages    []pkgReport `json:"packages"`
	Total       pkgReport   `json:"total"`
	Mutants     []*result   `json:"mutants"`
	StaleListed []string    `json:"stale_equivalents,omitempty"` // list entries matching no candidate
}

func buildReport(mutants []Mutant, evaluated []*result, list []*equivalent, cfg config, took time.Duration) *report {
	rep := &report{Seed: cfg.seed, Sample: cfg.sample, Budget: cfg.budget.String(), Duration: took.Round(time.Second).String(),
		Workers: cfg.workers, Postgres: os.Getenv("SCIMD_TEST_POSTGRES_URL") != "", Mutants: evaluated}
	by := map[string]*pkgReport{}
	var order []string
	rep.Total.Pkg = "total"
	for i := range mutants {
		m := &mutants[i]
		if by[m.Pkg] == nil {
			by[m.Pkg] = &pkgReport{Pkg: m.Pkg}
			order = append(order, m.Pkg)
		}
		by[m.Pkg].Candidates++
		rep.Total.Candidates++
		for _, e := range list {
			if e.matches(m) {
				e.used = true
			}
		}
	}
	for _, r := range evaluated {
		by[r.Pkg].add(r)
		rep.Total.add(r)
	}
	for _, p := range order {
		by[p].finish()
		rep.Packages = append(rep.Packages, *by[p])
	}
	rep.Total.finish()
	sort.SliceStable(rep.Mutants, func(i, j int) bool {
		a, b := rep.Mutants[i], rep.Mutants[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	for _, e := range list {
		if !e.used {
			rep.StaleListed = append(rep.StaleListed, fmt.Sprintf("line %d: %s %s %s `%s` -> `%s`", e.Line, e.File, e.Func, e.Operator, e.Original, e.Mutated))
		}
	}
	return rep
}

func (rep *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "\nMutation score (seed %d, sample %d per package, budget %s, took %s, workers %d, PostgreSQL %t)\n\n",
		rep.Seed, rep.Sample, rep.Budget, rep.Duration, rep.Workers, rep.Postgres)
	fmt.Fprintf(w, "%-36s %6s %6s %6s %6s %6s %6s %6s %6s %7s %7s\n", "package", "cands", "eval", "killed", "t/o", "surv", "n/cov", "n/via", "equiv", "score", "sampled")
	for _, p := range append(append([]pkgReport(nil), rep.Packages...), rep.Total) {
		fmt.Fprintf(w, "%-36s %6d %6d %6d %6d %6d %6d %6d %6d %6.1f%% %6.1f%%\n", shortPkg(p.Pkg), p.Candidates, p.Evaluated,
			p.Killed, p.TimedOut, p.Survived, p.NotCovered, p.NotViable, p.Equivalent, 100*p.Score, 100*p.Sampled)
	}
	sections := []struct{ status, title string }{
		{statusSurvived, "Survived (no covering test failed)"},
		{statusNotCovered, "Not covered (no test reaches the code)"},
		{statusTimedOut, "Timed out (counted as killed)"},
		{statusEquivalent, "Equivalent (explained, excluded from the score)"},
	}
	for _, s := range sections {
		var lines []string
		for _, r := range rep.Mutants {
			if r.Status != s.status {
				continue
			}
			l := fmt.Sprintf("  %s %s: %s -> %s", r.ID, r.Func, r.Original, r.Mutated)
			if r.Status == statusEquivalent {
				l += "  (" + r.Reason + ")"
			}
			if r.Status == statusSurvived {
				l += fmt.Sprintf("  [%d tests in %s]", r.Tests, strings.Join(shortPkgs(r.TestPkgs), ","))
			}
			lines = append(lines, l)
		}
		if len(lines) > 0 {
			fmt.Fprintf(w, "\n%s: %d\n%s\n", s.title, len(lines), strings.Join(lines, "\n"))
		}
	}
	if len(rep.StaleListed) > 0 {
		fmt.Fprintf(w, "\nEquivalent-list entries that match no mutant any more (remove or update them):\n  %s\n", strings.Join(rep.StaleListed, "\n  "))
	}
	fmt.Fprintf(w, "\nRerun one mutant (prints the failing test, or a line for the equivalent list): bin/scimmutate -only '<id>'\n")
}

func (rep *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// shortPkg drops the module path's first two elements (github.com/owner/) so the
// table stays narrow: github.com/scimd/scimd/scim → scim.
func shortPkg(p string) string {
	if parts := strings.SplitN(p, "/", 4); len(parts) == 4 && strings.Contains(parts[0], ".") {
		return parts[3]
	}
	return p
}

func shortPkgs(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = shortPkg(p)
	}
	return out
}
