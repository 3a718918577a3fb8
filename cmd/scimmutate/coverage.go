package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// coverTest is one top-level test (Test, Fuzz seed corpus or Example) of one package.
type coverTest struct {
	Pkg     string  `json:"pkg"`
	Dir     string  `json:"dir"` // module-relative
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Failed  bool    `json:"failed,omitempty"`
}

// block is one coverage block of a target file and the tests that executed it.
type block struct {
	SL, SC, EL, EC int
	Tests          []int `json:",omitempty"` // indexes into coverMap.Tests
}

// coverMap records which top-level tests execute which coverage blocks.
type coverMap struct {
	Key   string             `json:"key"`
	Tests []coverTest        `json:"tests"`
	Files map[string][]block `json:"files"` // module-relative file → blocks
}

// contains reports whether the block covers line:col (start inclusive, end exclusive).
func (b block) contains(line, col int) bool {
	if line < b.SL || line == b.SL && col < b.SC {
		return false
	}
	return line < b.EL || line == b.EL && col < b.EC
}

func (b block) size() int { return (b.EL-b.SL)*10000 + b.EC - b.SC }

// lookup finds the innermost coverage block around line:col in file.
func (c *coverMap) lookup(file string, line, col int) (block, bool) {
	var best block
	found := false
	for _, b := range c.Files[file] {
		if b.contains(line, col) && (!found || b.size() < best.size()) {
			best, found = b, true
		}
	}
	return best, found
}

// skipDirs are left out of the source hash: build outputs, and scimmutate's own
// code and equivalent list, which change no test's coverage.
var skipDirs = map[string]bool{"bin": true, "cmd/scimmutate": true, "testdata/mutate": true}

// sourceKey hashes everything a coverage map depends on: the module's Go files,
// go.mod, go.sum and test data (outside bin/ and hidden directories), the Go
// version, the targets and whether the PostgreSQL tests run.
func sourceKey(root string, targets []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "v1 %s %s pg=%t\n", runtime.Version(), strings.Join(targets, ","), os.Getenv("SCIMD_TEST_POSTGRES_URL") != "")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || skipDirs[filepath.ToSlash(rel)]) {
				return filepath.SkipDir
			}
			return nil
		}
		slash := filepath.ToSlash(rel)
		if !d.Type().IsRegular() || !(strings.HasSuffix(slash, ".go") || slash == "go.mod" || slash == "go.sum" ||
			strings.HasPrefix(slash, "testdata/") || strings.Contains(slash, "/testdata/")) {
			return nil // only code and test data change what a test covers
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s %x\n", slash, sum)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// cachedCoverMap returns the cached map if it is current, else nil.
func cachedCoverMap(mod module, targets []string, outDir string) *coverMap {
	key, err := sourceKey(mod.Dir, targets)
	if err != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(outDir, "covermap.json"))
	if err != nil {
		return nil
	}
	var c coverMap
	if json.Unmarshal(b, &c) != nil || c.Key != key {
		return nil
	}
	return &c
}

// loadOrBuildCoverMap returns the cached map when its key matches, else builds it.
func loadOrBuildCoverMap(ctx context.Context, mod module, targets []string, outDir string, workers int, log io.Writer) (*coverMap, error) {
	key, err := sourceKey(mod.Dir, targets)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(outDir, "covermap.json")
	if c := cachedCoverMap(mod, targets, outDir); c != nil {
		fmt.Fprintf(log, "coverage map: cached (%s)\n", mod.rel(path))
		return c, nil
	}
	start := time.Now()
	c, err := buildCoverMap(ctx, mod, targets, outDir, workers, log)
	if err != nil {
		return nil, err
	}
	c.Key = key
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "coverage map: built in %s (%d tests), cached in %s\n", time.Since(start).Round(time.Second), len(c.Tests), mod.rel(path))
	return c, nil
}

// buildCoverMap compiles every test package of the module with coverage of the
// targets and runs each of its top-level tests alone with a coverage profile.
func buildCoverMap(ctx context.Context, mod module, targets []string, outDir string, workers int, log io.Writer) (*coverMap, error) {
	all, err := goList(ctx, mod.Dir, "./...")
	if err != nil {
		return nil, err
	}
	binDir := filepath.Join(outDir, "cover")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	c := &coverMap{Files: map[string][]block{}}
	type job struct {
		test    int
		binary  string
		profile string
	}
	var jobs []job
	for _, p := range all {
		if len(p.TestGoFiles)+len(p.XTestGoFiles) == 0 || skipDirs[mod.rel(p.Dir)] {
			continue
		}
		bin := filepath.Join(binDir, strings.ReplaceAll(strings.TrimPrefix(p.ImportPath, mod.Path+"/"), "/", "_")+".test")
		fmt.Fprintf(log, "coverage map: compiling %s\n", p.ImportPath)
		cmd := exec.CommandContext(ctx, "go", "test", "-c", "-cover", "-covermode=set", "-vet=off",
			"-coverpkg="+strings.Join(targets, ","), "-o", bin, p.ImportPath)
		cmd.Dir = mod.Dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("compile tests of %s: %w\n%s", p.ImportPath, err, out)
		}
		list := exec.CommandContext(ctx, bin, "-test.list", ".")
		list.Dir = p.Dir
		out, err := list.Output()
		if err != nil {
			return nil, fmt.Errorf("list tests of %s: %w", p.ImportPath, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			name := strings.TrimSpace(sc.Text())
			if !(strings.HasPrefix(name, "Test") || strings.HasPrefix(name, "Fuzz") || strings.HasPrefix(name, "Example")) {
				continue
			}
			c.Tests = append(c.Tests, coverTest{Pkg: p.ImportPath, Dir: mod.rel(p.Dir), Name: name})
			jobs = append(jobs, job{test: len(c.Tests) - 1, binary: bin,
				profile: filepath.Join(binDir, fmt.Sprintf("%d.cov", len(c.Tests)-1))})
		}
	}
	var (
		mu    sync.Mutex
		done  int
		next  = make(chan job)
		wg    sync.WaitGroup
		merge = map[string]map[[4]int]map[int]bool{}
		first error
	)
	for w := 0; w < max(workers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				t := &c.Tests[j.test]
				cmd := exec.CommandContext(ctx, j.binary, "-test.run", "^"+t.Name+"$", "-test.count=1",
					"-test.timeout=15m", "-test.coverprofile="+j.profile)
				cmd.Dir = filepath.Join(mod.Dir, filepath.FromSlash(t.Dir))
				began := time.Now()
				out, err := cmd.CombinedOutput()
				secs := time.Since(began).Seconds()
				prof, perr := parseProfile(j.profile, mod)
				os.Remove(j.profile)
				mu.Lock()
				t.Seconds = secs
				done++
				if err != nil {
					t.Failed = true
					fmt.Fprintf(log, "coverage map: %s %s FAILS without any mutant; it is left out of every selection\n%s\n", t.Pkg, t.Name, tail(out, 20))
				}
				if perr != nil && first == nil {
					first = fmt.Errorf("coverage of %s %s: %w", t.Pkg, t.Name, perr)
				}
				for file, blocks := range prof {
					if merge[file] == nil {
						merge[file] = map[[4]int]map[int]bool{}
					}
					for b, hit := range blocks {
						if merge[file][b] == nil {
							merge[file][b] = map[int]bool{}
						}
						if hit && !t.Failed {
							merge[file][b][j.test] = true
						}
					}
				}
				if done%20 == 0 {
					fmt.Fprintf(log, "coverage map: %d/%d tests run\n", done, len(c.Tests))
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := os.RemoveAll(binDir); err != nil {
		return nil, err
	}
	for file, blocks := range merge {
		for b, tests := range blocks {
			bl := block{SL: b[0], SC: b[1], EL: b[2], EC: b[3]}
			for t := range tests {
				bl.Tests = append(bl.Tests, t)
			}
			sort.Ints(bl.Tests)
			c.Files[file] = append(c.Files[file], bl)
		}
		sort.Slice(c.Files[file], func(i, j int) bool {
			a, b := c.Files[file][i], c.Files[file][j]
			return a.SL < b.SL || a.SL == b.SL && a.SC < b.SC
		})
	}
	return c, nil
}

// parseProfile reads a text coverage profile: for each module-relative file, each
// block and whether it ran.
func parseProfile(path string, mod module) (map[string]map[[4]int]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseProfileText(f, mod.Path)
}

func parseProfileText(r io.Reader, modPath string) (map[string]map[[4]int]bool, error) {
	out := map[string]map[[4]int]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "mode:") {
			continue
		}
		// name.go:line.column,line.column numberOfStatements count
		colon := strings.LastIndex(line, ":")
		if colon < 0 {
			return nil, fmt.Errorf("bad profile line %q", line)
		}
		file := strings.TrimPrefix(line[:colon], modPath+"/")
		fields := strings.Fields(line[colon+1:])
		if len(fields) != 3 {
			return nil, fmt.Errorf("bad profile line %q", line)
		}
		var b [4]int
		if _, err := fmt.Sscanf(fields[0], "%d.%d,%d.%d", &b[0], &b[1], &b[2], &b[3]); err != nil {
			return nil, fmt.Errorf("bad profile line %q: %w", line, err)
		}
		count, err := strconv.Atoi(fields[2])
		if err != nil {
			return nil, fmt.Errorf("bad profile line %q: %w", line, err)
		}
		if out[file] == nil {
			out[file] = map[[4]int]bool{}
		}
		out[file][b] = out[file][b] || count > 0
	}
	return out, sc.Err()
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
