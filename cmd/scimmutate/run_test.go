package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunOutcomes runs the whole tool on a module of two packages written to a
// temporary directory: the coverage map, then one mutant of each outcome, one of
// them killed only by the tests of the other package.
func TestRunOutcomes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Go tests (a few seconds)")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n",
		"p/p.go": `package p

// Clamp returns n, at most max.
func Clamp(n, max int) int {
	if n > max {
		return max
	}
	return n
}

// Small reports whether x exceeds a uint8.
func Small(x uint8) bool { return x > 255 }

// Unused is run by no test.
func Unused(a, b int) bool { return a < b }
`,
		"p/p_test.go": `package p

import "testing"

func TestClamp(t *testing.T) {
	if Clamp(5, 3) != 3 || Clamp(2, 3) != 2 {
		t.Fatal("clamp")
	}
}
`,
		"q/q.go": "package q\n",
		"q/q_test.go": `package q

import (
	"testing"

	"example.com/m/p"
)

func TestSmall(t *testing.T) {
	if p.Small(255) {
		t.Fatal("255 fits in a uint8")
	}
}
`,
	}
	for name, body := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	mod := module{Path: "example.com/m", Dir: dir}
	mutants, _, err := loadMutants(ctx, mod, []string{"./p"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cmap, err := buildCoverMap(ctx, mod, []string{"example.com/m/p"}, filepath.Join(dir, "bin"), 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmap.Tests) != 2 {
		t.Fatalf("coverage map tests %+v, want TestClamp and TestSmall", cmap.Tests)
	}
	want := map[string]struct{ status, killer string }{
		"n > max -> n <= max": {statusKilled, "example.com/m/p TestClamp"},
		"n > max -> n >= max": {statusSurvived, ""},
		"x > 255 -> x >= 255": {statusKilled, "example.com/m/q TestSmall"},
		"x > 255 -> x > 256":  {statusNotViable, ""},
		"a < b -> a <= b":     {statusNotCovered, ""},
	}
	seen := 0
	for _, m := range mutants {
		w, ok := want[m.Original+" -> "+m.Mutated]
		if !ok {
			continue
		}
		seen++
		r := runMutant(ctx, mod, cmap, m)
		if r.Status != w.status || r.Killer != w.killer {
			t.Errorf("%s (%s -> %s): %s %q, want %s %q\n%s", m.ID, m.Original, m.Mutated, r.Status, r.Killer, w.status, w.killer, tail([]byte(r.Output), 10))
		}
		if src, _ := os.ReadFile(filepath.Join(dir, "p", "p.go")); !strings.Contains(string(src), "if n > max {") || !strings.Contains(string(src), "x > 255") {
			t.Fatal("the mutant changed the working tree")
		}
	}
	if seen != len(want) {
		t.Errorf("%d of the %d expected mutants enumerated", seen, len(want))
	}
}
