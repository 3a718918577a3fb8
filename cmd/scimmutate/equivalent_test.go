package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestEquivalentList(t *testing.T) {
	list, err := parseEquivalents(strings.NewReader("# comment\n\n"+
		"scim/limits.go clamp CONDITIONALS_BOUNDARY `n > max` -> `n >= max`: n == max returns max either way\n"+
		"scim/a.go f ERROR_IGNORED `err != nil` -> `false`: err is always nil here\n"), "equivalent.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Reason != "n == max returns max either way" || list[0].Line != 3 {
		t.Fatalf("parsed %+v", list)
	}
	m := Mutant{File: "scim/limits.go", Func: "clamp", Operator: opBoundary, Original: "n > max", Mutated: "n >= max", Line: 99}
	if findEquivalent(list, &m) != list[0] {
		t.Error("entry does not match its mutant on another line")
	}
	for _, other := range []Mutant{
		{File: "scim/limits.go", Func: "clampAll", Operator: opBoundary, Original: "n > max", Mutated: "n >= max"},
		{File: "scim/limits.go", Func: "clamp", Operator: opNegation, Original: "n > max", Mutated: "n <= max"},
		{File: "scim/other.go", Func: "clamp", Operator: opBoundary, Original: "n > max", Mutated: "n >= max"},
	} {
		if findEquivalent(list, &other) != nil {
			t.Errorf("entry matches %+v", other)
		}
	}
	// The line the report suggests for a survivor parses back to an entry matching it.
	back, err := parseEquivalents(strings.NewReader(entry(&m)+"why"), "x")
	if err != nil || len(back) != 1 || !back[0].matches(&m) {
		t.Errorf("suggested line %q: %v %+v", entry(&m), err, back)
	}
}

func TestEquivalentListErrors(t *testing.T) {
	for _, line := range []string{
		"scim/a.go f OP n > max -> n >= max: no backquotes",
		"scim/a.go f OP `n > max` `n >= max`: no arrow",
		"scim/a.go f OP `n > max` -> `n >= max`",
		"scim/a.go f OP `n > max` -> `n >= max`:   ",
		"scim/a.go f",
	} {
		if _, err := parseEquivalents(strings.NewReader(line), "x"); err == nil {
			t.Errorf("accepted %q", line)
		}
	}
}

func TestSampleOrder(t *testing.T) {
	var ms []Mutant
	for i := 0; i < 30; i++ {
		ms = append(ms, Mutant{Pkg: []string{"a", "b", "c"}[i%3], File: "f.go", Line: i, Original: fmt.Sprintf("n > %d", i)})
	}
	one, two := sampleOrder(ms, 7, 4), sampleOrder(ms, 7, 4)
	if len(one) != 12 {
		t.Fatalf("%d mutants sampled, want 4 of each of 3 packages", len(one))
	}
	per := map[string]int{}
	for i := range one {
		if one[i] != two[i] {
			t.Fatal("the same seed gives another order")
		}
		per[ms[one[i]].Pkg]++
	}
	if per["a"] != 4 || per["b"] != 4 || per["c"] != 4 {
		t.Errorf("per package %v", per)
	}
	if other := sampleOrder(ms, 8, 0); len(other) != 30 {
		t.Errorf("without -sample, %d of 30", len(other))
	}
	// Lines moved and a mutant added at the start: the others keep their order.
	var moved []Mutant
	moved = append(moved, Mutant{Pkg: "a", File: "f.go", Original: "new"})
	for _, m := range ms {
		m.Line += 5
		moved = append(moved, m)
	}
	var before, after []string
	for _, i := range sampleOrder(ms, 7, 0) {
		before = append(before, ms[i].Original)
	}
	for _, i := range sampleOrder(moved, 7, 0) {
		if moved[i].Original != "new" {
			after = append(after, moved[i].Original)
		}
	}
	if strings.Join(before, ",") != strings.Join(after, ",") {
		t.Errorf("order changed by an edit elsewhere:\n%v\n%v", before, after)
	}
}
