package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseProfile(t *testing.T) {
	prof := `mode: set
example.com/m/p/a.go:10.2,12.3 2 1
example.com/m/p/a.go:12.3,14.4 1 0
example.com/m/p/a.go:10.2,12.3 2 0
other.org/x/b.go:1.1,2.2 1 1
`
	got, err := parseProfileText(strings.NewReader(prof), "example.com/m")
	if err != nil {
		t.Fatal(err)
	}
	if !got["p/a.go"][[4]int{10, 2, 12, 3}] {
		t.Errorf("block 10.2 not hit (a later zero count must not clear it): %v", got)
	}
	if hit, ok := got["p/a.go"][[4]int{12, 3, 14, 4}]; !ok || hit {
		t.Errorf("block 12.3: hit %t, present %t; want present and not hit", hit, ok)
	}
	if _, ok := got["other.org/x/b.go"]; !ok {
		t.Errorf("a file outside the module keeps its full name: %v", got)
	}
	if _, err := parseProfileText(strings.NewReader("p/a.go:10.2,12.3 2\n"), "m"); err == nil {
		t.Error("a malformed line is accepted")
	}
}

func TestLookupInnermostBlock(t *testing.T) {
	c := &coverMap{
		Tests: []coverTest{{Pkg: "m/p", Name: "TestOwn", Seconds: 1}, {Pkg: "m/cmd", Name: "TestE2E", Seconds: 9}, {Pkg: "m/cmd", Name: "TestBroken", Failed: true}},
		Files: map[string][]block{"p/a.go": {
			{SL: 10, SC: 2, EL: 20, EC: 3, Tests: []int{1}},
			{SL: 12, SC: 5, EL: 14, EC: 9, Tests: []int{0, 1, 2}}, // a function literal inside the statement above
			{SL: 20, SC: 3, EL: 22, EC: 2},
		}},
	}
	cases := []struct {
		line, col int
		want      string
	}{
		{10, 2, "10.2"},
		{12, 5, "12.5"},
		{14, 8, "12.5"},
		{14, 9, "10.2"}, // the end column belongs to the next block
		{20, 2, "10.2"},
		{20, 3, "20.3"},
		{9, 1, ""},
		{22, 2, ""},
	}
	for _, tc := range cases {
		b, ok := c.lookup("p/a.go", tc.line, tc.col)
		got := ""
		if ok {
			got = fmt.Sprintf("%d.%d", b.SL, b.SC)
		}
		if got != tc.want {
			t.Errorf("lookup %d:%d = %q, want %q", tc.line, tc.col, got, tc.want)
		}
	}

	m := &Mutant{Pkg: "m/p", File: "p/a.go", CoverLine: 13, CoverCol: 1}
	sels := selectTests(c, m)
	if len(sels) != 2 || sels[0].pkg != "m/p" || sels[1].pkg != "m/cmd" {
		t.Fatalf("selection %+v, want the own package first, then m/cmd", sels)
	}
	if strings.Join(sels[1].names, ",") != "TestE2E" {
		t.Errorf("m/cmd tests %q: a test failing without any mutant must not be selected", sels[1].names)
	}
	if got := selectTests(c, &Mutant{File: "p/a.go", CoverLine: 21, CoverCol: 1}); len(got) != 0 {
		t.Errorf("a block no test executed selected %+v", got)
	}
	// Outside every block (a package-level initializer): every test reaching the file.
	got := selectTests(c, &Mutant{Pkg: "m/p", File: "p/a.go", CoverLine: 3, CoverCol: 1})
	if len(got) != 2 || strings.Join(got[0].names, ",") != "TestOwn" || strings.Join(got[1].names, ",") != "TestE2E" {
		t.Errorf("package-level mutant selected %+v", got)
	}
}
