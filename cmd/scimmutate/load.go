package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// listedPackage is the part of `go list -json` that scimmutate reads.
type listedPackage struct {
	ImportPath   string
	Dir          string
	Name         string
	Export       string
	GoFiles      []string
	TestGoFiles  []string
	XTestGoFiles []string
	Standard     bool
}

// goList runs `go list -json` with args in dir and decodes its stream of packages.
func goList(ctx context.Context, dir string, args ...string) ([]listedPackage, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs, nil
		} else if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
}

// module describes the Go module scimmutate works in.
type module struct {
	Path string // module path
	Dir  string // module root
}

func findModule(ctx context.Context) (module, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Path}}\t{{.Dir}}")
	out, err := cmd.Output()
	if err != nil {
		return module{}, fmt.Errorf("go list -m: %w", err)
	}
	path, dir, ok := strings.Cut(strings.TrimSpace(string(out)), "\t")
	if !ok || dir == "" {
		return module{}, fmt.Errorf("not inside a Go module: %q", out)
	}
	return module{Path: path, Dir: dir}, nil
}

// rel is the module-relative, slash-separated path of an absolute file name.
func (m module) rel(abs string) string {
	r, err := filepath.Rel(m.Dir, abs)
	if err != nil {
		return abs
	}
	return filepath.ToSlash(r)
}

// loadMutants parses and type-checks the target packages and enumerates their
// mutants. Type information comes from the compiler's export data (`go list
// -export`); when it is missing the operators fall back to syntax alone and a
// mutant that does not compile is reported as not viable.
func loadMutants(ctx context.Context, mod module, targets []string, warn io.Writer) ([]Mutant, map[string]string, error) {
	pkgs, err := goList(ctx, mod.Dir, append([]string{"-export", "-deps"}, targets...)...)
	if err != nil {
		return nil, nil, err
	}
	exports := map[string]string{}
	for _, p := range pkgs {
		if p.Export != "" {
			exports[p.ImportPath] = p.Export
		}
	}
	roots, err := goList(ctx, mod.Dir, targets...)
	if err != nil {
		return nil, nil, err
	}
	dirs := map[string]string{}
	var out []Mutant
	for _, p := range roots {
		dirs[p.ImportPath] = p.Dir
		fset := token.NewFileSet()
		var files []*ast.File
		srcs := map[*ast.File][]byte{}
		names := append([]string(nil), p.GoFiles...)
		sort.Strings(names)
		for _, name := range names {
			abs := filepath.Join(p.Dir, name)
			src, err := os.ReadFile(abs)
			if err != nil {
				return nil, nil, err
			}
			f, err := parser.ParseFile(fset, abs, src, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				return nil, nil, err
			}
			files = append(files, f)
			srcs[f] = src
		}
		info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}}
		var typeErrs []error
		conf := types.Config{
			Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
				f, ok := exports[path]
				if !ok {
					return nil, fmt.Errorf("no export data for %s", path)
				}
				return os.Open(f)
			}),
			Error: func(err error) { typeErrs = append(typeErrs, err) },
		}
		_, _ = conf.Check(p.ImportPath, fset, files, info)
		if len(typeErrs) > 0 {
			fmt.Fprintf(warn, "warning: type checking %s: %v (operators fall back to syntax)\n", p.ImportPath, typeErrs[0])
		}
		for _, f := range files {
			in := fileInput{pkg: p.ImportPath, rel: mod.rel(fset.Position(f.Package).Filename), src: srcs[f], file: f, fset: fset, info: info}
			out = append(out, enumerate(in)...)
		}
	}
	return out, dirs, nil
}
