package main

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// config is scimmutate's settings, from flags.
type config struct {
	pkgs        []string
	workers     int
	budget      time.Duration
	seed        uint64
	sample      int
	only        string
	files       *regexp.Regexp
	list        bool
	out         string
	equivalents string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scimmutate:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("scimmutate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	pkgs := fs.String("pkgs", "./scim,./store/gormstore,./compat,./scim/scimhttp", "comma-separated target packages whose code is mutated")
	fs.IntVar(&cfg.workers, "workers", 1, "mutants (and coverage runs) in parallel")
	fs.DurationVar(&cfg.budget, "budget", 30*time.Minute, "launch no new mutant after this long (the coverage map is not counted)")
	fs.Uint64Var(&cfg.seed, "seed", 15, "seed of the random order in which mutants are evaluated")
	fs.IntVar(&cfg.sample, "sample", 0, "evaluate at most this many mutants per package (0: all)")
	fs.StringVar(&cfg.only, "only", "", "run only the mutant with this id (file:line:col:OPERATOR) and print its outcome")
	files := fs.String("files", "", "keep only the mutants whose file (module-relative, e.g. scim/patch.go) matches this regular expression")
	fs.BoolVar(&cfg.list, "list", false, "list the candidate mutants and exit")
	fs.StringVar(&cfg.out, "out", "bin/mutate", "directory for the coverage map cache and report.json (relative to the module root)")
	fs.StringVar(&cfg.equivalents, "equivalent", "testdata/mutate/equivalent.txt", "the explained-equivalent list (relative to the module root)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *files != "" {
		re, err := regexp.Compile(*files)
		if err != nil {
			return cfg, fmt.Errorf("-files: %v", err)
		}
		cfg.files = re
	}
	for _, p := range strings.Split(*pkgs, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.pkgs = append(cfg.pkgs, p)
		}
	}
	if len(cfg.pkgs) == 0 {
		return cfg, fmt.Errorf("-pkgs names no package")
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	mod, err := findModule(ctx)
	if err != nil {
		return err
	}
	if err := os.Chdir(mod.Dir); err != nil {
		return err
	}
	mutants, _, err := loadMutants(ctx, mod, cfg.pkgs, stderr)
	if err != nil {
		return err
	}
	// The coverage map covers whole packages, so -files does not change (or rebuild) it.
	targets := targetsOf(mutants)
	if cfg.files != nil {
		mutants = slices.DeleteFunc(mutants, func(m Mutant) bool { return !cfg.files.MatchString(m.File) })
	}
	if cfg.list {
		// With a current coverage map cached, say how many tests cover each mutant.
		cmap := cachedCoverMap(mod, targets, filepath.Join(mod.Dir, cfg.out))
		uncovered := 0
		for _, m := range mutants {
			cover := ""
			if cmap != nil {
				n := 0
				for _, s := range selectTests(cmap, &m) {
					n += len(s.names)
				}
				if n == 0 {
					uncovered++
				}
				cover = fmt.Sprintf("\t%d tests", n)
				if _, ok := cmap.lookup(m.File, m.CoverLine, m.CoverCol); !ok {
					cover = "\tno coverage block"
				}
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s -> %s%s\n", m.ID, m.Func, m.Original, m.Mutated, cover)
		}
		fmt.Fprintf(stdout, "%d candidates", len(mutants))
		if cmap != nil {
			fmt.Fprintf(stdout, ", %d covered by no test", uncovered)
		}
		fmt.Fprintln(stdout)
		return nil
	}
	equivalents, err := readEquivalents(filepath.Join(mod.Dir, cfg.equivalents))
	if err != nil {
		return err
	}
	outDir := filepath.Join(mod.Dir, cfg.out)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	cmap, err := loadOrBuildCoverMap(ctx, mod, targets, outDir, cfg.workers, stderr)
	if err != nil {
		return err
	}
	if cfg.only != "" {
		for _, m := range mutants {
			if m.ID == cfg.only {
				return runOnly(ctx, mod, cmap, m, findEquivalent(equivalents, &m), stdout)
			}
		}
		return fmt.Errorf("no mutant %q (see -list)", cfg.only)
	}

	order := sampleOrder(mutants, cfg.seed, cfg.sample)
	began := time.Now()
	deadline := began.Add(cfg.budget)
	results := make([]*result, len(order))
	var (
		mu   sync.Mutex
		next = 0
		done = 0
		wg   sync.WaitGroup
	)
	fmt.Fprintf(stderr, "mutants: %d candidates, %d in this run (seed %d, sample %d, budget %s, workers %d)\n",
		len(mutants), len(order), cfg.seed, cfg.sample, cfg.budget, cfg.workers)
	for w := 0; w < max(cfg.workers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= len(order) || time.Now().After(deadline) || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				m := mutants[order[i]]
				var r result
				if e := findEquivalent(equivalents, &m); e != nil {
					e.used = true
					r = result{Mutant: m, Status: statusEquivalent, Reason: e.Reason}
				} else {
					r = runMutant(ctx, mod, cmap, m)
				}
				if r.Reason == "interrupted" {
					return
				}
				mu.Lock()
				results[i] = &r
				done++
				fmt.Fprintf(stderr, "[%d/%d %s] %-11s %s %s %s -> %s %s\n", done, len(order),
					time.Since(began).Round(time.Second), r.Status, r.ID, r.Func, r.Original, r.Mutated, r.Killer)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var evaluated []*result
	for _, r := range results {
		if r != nil {
			evaluated = append(evaluated, r)
		}
	}
	rep := buildReport(mutants, evaluated, equivalents, cfg, time.Since(began))
	rep.writeText(stdout)
	return rep.writeJSON(filepath.Join(outDir, "report.json"))
}

// sampleOrder is the order in which mutants are evaluated, keeping at most sample
// mutants of each package. Each mutant's rank is a seeded hash of what identifies it
// (file, function, operator, texts and which occurrence of them it is), not of its
// line: a run cut short by the budget is a random sample, and after edits elsewhere
// the same seed still picks mostly the same mutants, so runs before and after a
// change of the tests compare like with like.
func sampleOrder(mutants []Mutant, seed uint64, sample int) []int {
	idx := make([]int, len(mutants))
	rank := make([]uint64, len(mutants))
	occurrences := map[string]int{}
	for i := range idx {
		idx[i] = i
		m := &mutants[i]
		key := strings.Join([]string{m.File, m.Func, m.Operator, m.Original, m.Mutated}, "\x00")
		occurrences[key]++
		h := fnv.New64a()
		fmt.Fprintf(h, "%d\x00%s\x00%d", seed, key, occurrences[key])
		rank[i] = h.Sum64()
	}
	sort.SliceStable(idx, func(a, b int) bool { return rank[idx[a]] < rank[idx[b]] })
	if sample <= 0 {
		return idx
	}
	per := map[string]int{}
	out := idx[:0]
	for _, i := range idx {
		if per[mutants[i].Pkg] < sample {
			per[mutants[i].Pkg]++
			out = append(out, i)
		}
	}
	return out
}

// runOnly runs one mutant, even one on the equivalent list, and prints what happened.
func runOnly(ctx context.Context, mod module, cmap *coverMap, m Mutant, eq *equivalent, w io.Writer) error {
	fmt.Fprintf(w, "mutant %s in %s (%s): %s -> %s\n", m.ID, m.Func, m.Operator, m.Original, m.Mutated)
	if eq != nil {
		fmt.Fprintf(w, "listed as equivalent (line %d): %s\n", eq.Line, eq.Reason)
	}
	for _, s := range selectTests(cmap, &m) {
		fmt.Fprintf(w, "covering tests in %s (%.1fs): %s\n", s.pkg, s.baseline, strings.Join(s.names, " "))
	}
	r := runMutant(ctx, mod, cmap, m)
	fmt.Fprintf(w, "%s in %.0fs", r.Status, r.Seconds)
	if r.Killer != "" {
		fmt.Fprintf(w, " by %s", r.Killer)
	}
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	if r.Status == statusKilled || r.Status == statusNotViable || r.Status == statusTimedOut {
		fmt.Fprintln(w, tail([]byte(r.Output), 40))
	}
	if r.Status == statusSurvived || r.Status == statusNotCovered {
		fmt.Fprintf(w, "equivalent-list line: %s<reason>\n", entry(&m))
	}
	return nil
}

// targetsOf is the import paths of the packages the mutants belong to.
func targetsOf(mutants []Mutant) []string {
	var targets []string
	seen := map[string]bool{}
	for _, m := range mutants {
		if !seen[m.Pkg] {
			seen[m.Pkg] = true
			targets = append(targets, m.Pkg)
		}
	}
	return targets
}
