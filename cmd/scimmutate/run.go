package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// The outcomes of a mutant.
const (
	statusKilled     = "KILLED"
	statusTimedOut   = "TIMED OUT"
	statusSurvived   = "SURVIVED"
	statusNotCovered = "NOT COVERED"
	statusNotViable  = "NOT VIABLE"
	statusEquivalent = "EQUIVALENT"
)

// result is what running one mutant found.
type result struct {
	Mutant
	Status     string   `json:"status"`
	Killer     string   `json:"killer,omitempty"`    // package and test that failed
	TestPkgs   []string `json:"test_pkgs,omitempty"` // packages whose tests ran
	Tests      int      `json:"tests"`               // covering tests selected
	Seconds    float64  `json:"seconds"`
	Reason     string   `json:"reason,omitempty"` // equivalent list reason, or why not viable
	Output     string   `json:"-"`
	Equivalent bool     `json:"-"`
}

// selection is the covering tests of one package for one mutant.
type selection struct {
	pkg      string
	names    []string
	baseline float64 // seconds the selected tests took without the mutant
}

// selectTests groups the tests covering m by package: its own package first, then
// the others from the fastest to the slowest.
func selectTests(c *coverMap, m *Mutant) []selection {
	var tests []int
	if b, ok := c.lookup(m.File, m.CoverLine, m.CoverCol); ok {
		tests = b.Tests
	} else {
		// Package-level initializers are in no block: they run when the package is
		// loaded, so every test that executes any code of the file may see them.
		seen := map[int]bool{}
		for _, b := range c.Files[m.File] {
			for _, i := range b.Tests {
				if !seen[i] {
					seen[i] = true
					tests = append(tests, i)
				}
			}
		}
	}
	by := map[string]*selection{}
	for _, i := range tests {
		t := c.Tests[i]
		if t.Failed {
			continue
		}
		s := by[t.Pkg]
		if s == nil {
			s = &selection{pkg: t.Pkg}
			by[t.Pkg] = s
		}
		s.names = append(s.names, t.Name)
		s.baseline += t.Seconds
	}
	out := make([]selection, 0, len(by))
	for _, s := range by {
		sort.Strings(s.names)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].pkg == m.Pkg) != (out[j].pkg == m.Pkg) {
			return out[i].pkg == m.Pkg
		}
		if out[i].baseline != out[j].baseline {
			return out[i].baseline < out[j].baseline
		}
		return out[i].pkg < out[j].pkg
	})
	return out
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

// runMutant applies m through an overlay and runs its covering tests.
func runMutant(ctx context.Context, mod module, c *coverMap, m Mutant) (r result) {
	r = result{Mutant: m}
	began := time.Now()
	defer func() { r.Seconds = time.Since(began).Seconds() }()
	sels := selectTests(c, &m)
	for _, s := range sels {
		r.Tests += len(s.names)
	}
	if len(sels) == 0 {
		r.Status = statusNotCovered
		return r
	}
	tmp, err := os.MkdirTemp("", "scimmutate-")
	if err != nil {
		r.Status, r.Reason = statusNotViable, err.Error()
		return r
	}
	defer os.RemoveAll(tmp)
	abs := filepath.Join(mod.Dir, filepath.FromSlash(m.File))
	src, err := os.ReadFile(abs)
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, filepath.Base(abs)), m.apply(src), 0o644)
	}
	overlay := filepath.Join(tmp, "overlay.json")
	if err == nil {
		var b []byte
		b, err = json.Marshal(map[string]map[string]string{"Replace": {abs: filepath.Join(tmp, filepath.Base(abs))}})
		if err == nil {
			err = os.WriteFile(overlay, b, 0o644)
		}
	}
	if err != nil {
		r.Status, r.Reason = statusNotViable, err.Error()
		return r
	}
	// Compile the mutated package alone first: a mutant that does not build is not viable.
	if out, err := command(ctx, mod.Dir, 5*time.Minute, "go", "build", "-overlay", overlay, m.Pkg); err != nil {
		r.Status, r.Reason, r.Output = statusNotViable, firstLine(out), string(out)
		return r
	}
	for _, s := range sels {
		timeout := time.Duration(3*s.baseline*float64(time.Second)) + 60*time.Second
		r.TestPkgs = append(r.TestPkgs, s.pkg)
		out, err := command(ctx, mod.Dir, timeout, "go", "test", "-overlay", overlay, "-count=1", "-failfast", "-vet=off",
			"-timeout", (timeout + time.Minute).String(), "-run", "^("+strings.Join(s.names, "|")+")$", s.pkg)
		r.Output = string(out)
		switch {
		case err == nil:
			continue
		case errors.Is(err, context.DeadlineExceeded) || bytes.Contains(out, []byte("panic: test timed out")):
			r.Status, r.Killer = statusTimedOut, s.pkg
			return r
		case ctx.Err() != nil:
			r.Status, r.Reason = statusNotViable, "interrupted"
			return r
		case bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")):
			r.Status, r.Reason = statusNotViable, firstLine(out)
			return r
		}
		r.Status = statusKilled
		r.Killer = s.pkg
		if f := failLine.FindSubmatch(out); f != nil {
			r.Killer += " " + strings.SplitN(string(f[1]), "/", 2)[0]
		}
		return r
	}
	r.Status = statusSurvived
	return r
}

// command runs name args in dir in a process group of its own, killed as a whole
// when timeout passes or ctx ends; a timeout is reported as context.DeadlineExceeded.
func command(ctx context.Context, dir string, timeout time.Duration, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-timer.C:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.Bytes(), context.DeadlineExceeded
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.Bytes(), fmt.Errorf("interrupted: %w", ctx.Err())
	}
}

func firstLine(out []byte) string {
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}
