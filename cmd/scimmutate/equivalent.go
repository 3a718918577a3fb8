package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// equivalent is one entry of the explained-equivalent list: a mutant no test can
// kill because it does not change behaviour (or the code is unreachable), with why.
//
// The list has one entry a line; blank lines and lines starting with # are ignored:
//
//	<file> <func> <OPERATOR> `<original>` -> `<mutated>`: <reason>
//
// for example
//
//	scim/limits.go clamp CONDITIONALS_BOUNDARY `n > max` -> `n >= max`: n == max returns max either way
//
// An entry matches every mutant with the same file, function, operator and texts
// (as the report prints them), wherever the line moves.
type equivalent struct {
	File, Func, Operator, Original, Mutated, Reason string
	Line                                            int // of the list, for messages
	used                                            bool
}

func (e *equivalent) matches(m *Mutant) bool {
	return e.File == m.File && e.Func == m.Func && e.Operator == m.Operator &&
		e.Original == m.Original && e.Mutated == m.Mutated
}

// entry is the list line that explains m, the reason left for the reader to write.
func entry(m *Mutant) string {
	return fmt.Sprintf("%s %s %s `%s` -> `%s`: ", m.File, m.Func, m.Operator, m.Original, m.Mutated)
}

// readEquivalents reads the list at path; a missing file is an empty list.
func readEquivalents(path string) ([]*equivalent, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseEquivalents(f, path)
}

func parseEquivalents(r io.Reader, name string) ([]*equivalent, error) {
	var out []*equivalent
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(why string) error { return fmt.Errorf("%s:%d: %s: %q", name, n, why, line) }
		fields := strings.SplitN(line, " ", 4)
		if len(fields) != 4 {
			return nil, bad("want <file> <func> <OPERATOR> `<original>` -> `<mutated>`: <reason>")
		}
		e := &equivalent{File: fields[0], Func: fields[1], Operator: fields[2], Line: n}
		rest := fields[3]
		var ok bool
		if e.Original, rest, ok = backquoted(rest); !ok {
			return nil, bad("original text must be in backquotes")
		}
		rest, ok = strings.CutPrefix(strings.TrimSpace(rest), "->")
		if !ok {
			return nil, bad("want -> between the texts")
		}
		if e.Mutated, rest, ok = backquoted(strings.TrimSpace(rest)); !ok {
			return nil, bad("mutated text must be in backquotes")
		}
		rest, ok = strings.CutPrefix(strings.TrimSpace(rest), ":")
		e.Reason = strings.TrimSpace(rest)
		if !ok || e.Reason == "" {
			return nil, bad("each entry needs a reason after a colon")
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// backquoted splits "`text` rest" into text and rest.
func backquoted(s string) (text, rest string, ok bool) {
	if !strings.HasPrefix(s, "`") {
		return "", s, false
	}
	end := strings.Index(s[1:], "`")
	if end < 0 {
		return "", s, false
	}
	return s[1 : 1+end], s[2+end:], true
}

// findEquivalent returns the entry that explains m, if any.
func findEquivalent(list []*equivalent, m *Mutant) *equivalent {
	for _, e := range list {
		if e.matches(m) {
			return e
		}
	}
	return nil
}
