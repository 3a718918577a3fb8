package scim

import (
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/scim2/filter-parser/v2"
)

// TestParseSimpleFilter checks the fast path of ParseFilter against the general
// parser: on every hand-written and generated filter both must give the same
// expression (same node types and values) or the same refusal.
func TestParseSimpleFilter(t *testing.T) {
	cases := []string{
		`userName eq "bjensen"`,
		`userName Eq "bjensen"`,
		`userName EQ "bjensen"`,
		`userName eQ "bjensen"`,
		`USERNAME eq "BJensen@Example.com"`,
		`userName   eq    "x"`,
		` userName eq "x"`,
		`userName eq "x" `,
		"userName\teq \"x\"",
		`userName eq"x"`,
		`userName eq ""`,
		`userName eq "`,
		`userName eq "a"b"`,
		`userName eq "a\"b"`,
		`userName eq "a\\b"`,
		`userName eq "a\/b"`,
		`userName eq "\b\f\n\r\t"`,
		`userName eq "\u00E9"`,
		`userName eq "\u00e9"`,
		`userName eq "\uD83D\uDE00"`,
		`userName eq "\uD800"`,
		`userName eq "\u12"`,
		`userName eq "\x41"`,
		`userName eq "a\"`,
		`userName eq "é"`,
		`userName eq "日本語"`,
		`userName eq "😀"`,
		"userName eq \"\x7f\"",
		"userName eq \"a\x01b\"",
		"userName eq \"\xff\"",
		"userName eq \"\xe6\x97\"",
		`userName eq "x" and active eq true`,
		`userName eq "x" or active eq true`,
		`not (userName eq "x")`,
		`(userName eq "x")`,
		`emails[type eq "work"]`,
		`emails[type eq "work"].value eq "x"`,
		`title pr`,
		`title PR`,
		`title Pr `,
		`title pr and x pr`,
		`title present`,
		`pr pr`,
		`eq eq "x"`,
		`not eq "x"`,
		`not pr`,
		`and pr`,
		`name.givenName eq "Barbara"`,
		`name.$ref eq "x"`,
		`$ref eq "x"`,
		`$ eq "x"`,
		`name. eq "x"`,
		`name.givenName.x eq "x"`,
		`1name eq "x"`,
		`na-me_1 eq "x"`,
		`-name eq "x"`,
		`meta.lastModified gt "2011-05-13T04:42:34Z"`,
		`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x"`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User: eq "x"`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:2x eq "x"`,
		`urn:a-b:name eq "x"`,
		`a.b:c eq 1`,
		`:name eq 1`,
		`a::name eq 1`,
		`a:b:c:d pr`,
		`active eq true`,
		`active eq TRUE`,
		`active eq True`,
		`active eq false`,
		`active eq FaLsE`,
		`active eq falſe`,
		`active eq truex`,
		`active eq null`,
		`active eq NULL`,
		`active ne nul`,
		`x eq 0`,
		`x eq -0`,
		`x eq -0.0`,
		`x eq 1`,
		`x eq 01`,
		`x eq 1e3`,
		`x eq 1E3`,
		`x eq 1e+3`,
		`x eq 1e-3`,
		`x eq 1.5`,
		`x eq -1.5e-7`,
		`x eq 1.`,
		`x eq .5`,
		`x eq 1e`,
		`x eq 1e+`,
		`x eq +1`,
		`x eq -`,
		`x eq --1`,
		`x eq 1e400`,
		`x eq -1e400`,
		`x eq 1e-400`,
		`x eq 99999999999999999999`,
		`x eq 9007199254740993`,
		`x eq 123456789012345678901234567890`,
		`x eq 1_000`,
		`x eq 0x10`,
		`x eq Inf`,
		`x eq NaN`,
		`x gt 5`, `x ge 5`, `x lt 5`, `x le 5`, `x ne 5`, `x co "a"`, `x sw "a"`, `x ew "a"`,
		`x xx 5`, `x e 5`, `x eqq 5`, `x pr 5`, `x`, `x `, `x e`, `x eq`, `x eq `,
		"x eq\u00a0\"a\"",
		"x \u212aeq \"a\"",
		`userName eq "x"]`,
		`userName eq "x")`,
		`userName[eq "x"`,
	}
	rng := rand.New(rand.NewSource(1))
	for range 10000 {
		cases = append(cases, genSimpleFilter(rng))
	}
	fast := 0
	for _, raw := range cases {
		if _, ok := parseSimpleFilter(raw); ok {
			fast++
		}
		got, gerr := ParseFilter(raw, 0)
		want, werr := parseFilterFull(raw)
		if (gerr == nil) != (werr == nil) {
			t.Errorf("%q: ParseFilter gave %v, %v; the general parser %v, %v", raw, show(got), gerr, show(want), werr)
			continue
		}
		if gerr != nil {
			var ge, we *Error
			if !errors.As(gerr, &ge) || !errors.As(werr, &we) || ge.Kind != we.Kind || ge.Detail != we.Detail {
				t.Errorf("%q: refused with %v, the general parser with %v", raw, gerr, werr)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) || show(got) != show(want) {
			t.Errorf("%q: ParseFilter gave %s; the general parser %s", raw, show(got), show(want))
		}
	}
	if fast < len(cases)/5 {
		t.Errorf("the fast path read %d of %d filters; the generator should reach it more", fast, len(cases))
	}
	t.Logf("fast path read %d of %d filters", fast, len(cases))
}

// show prints an expression with its value types (so -0 and 0, 1 and 1.0 differ).
func show(e filter.Expression) string {
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", *p)
	}
	switch n := e.(type) {
	case *filter.AttributeExpression:
		return fmt.Sprintf("attr{uri %s name %q sub %s op %q value %T %#v %v}", str(n.AttributePath.URIPrefix),
			n.AttributePath.AttributeName, str(n.AttributePath.SubAttribute), n.Operator, n.CompareValue, n.CompareValue, n.CompareValue)
	case *filter.LogicalExpression:
		return fmt.Sprintf("(%s %s %s)", show(n.Left), n.Operator, show(n.Right))
	case *filter.NotExpression:
		return fmt.Sprintf("not(%s)", show(n.Expression))
	case *filter.ValuePath:
		return fmt.Sprintf("%s %s %s[%s]", str(n.AttributePath.URIPrefix), n.AttributePath.AttributeName, str(n.AttributePath.SubAttribute), show(n.ValueFilter))
	}
	return fmt.Sprintf("%#v", e)
}

// genSimpleFilter builds a filter mostly of the simple form, with odd spacing, case,
// values and now and then a damaged byte.
func genSimpleFilter(rng *rand.Rand) string {
	pick := func(xs ...string) string { return xs[rng.Intn(len(xs))] }
	recase := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if rng.Intn(3) == 0 {
				if c >= 'a' && c <= 'z' {
					b[i] = c - 32
				} else if c >= 'A' && c <= 'Z' {
					b[i] = c + 32
				}
			}
		}
		return string(b)
	}
	if rng.Intn(2) == 0 {
		// the common, well-formed shape
		return pick("", "", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:") + recase(pick("userName", "name.givenName", "emails.value", "active", "externalId", "meta.lastModified", "$ref")) +
			pick(" ", "  ") + recase(pick("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr")) +
			pick(" "+genString(rng), " "+genNumber(rng), " "+recase(pick("true", "false", "null")), "")
	}
	var sb strings.Builder
	switch rng.Intn(6) {
	case 0:
		sb.WriteString(pick("urn:ietf:params:scim:schemas:core:2.0:User:", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:",
			"a:", "a.b:", "1:", "x:y:", "urn::", ":", "a-b:", "urn:ietf:params:scim:schemas:core:2.0:Group:"))
	case 1:
		sb.WriteString(pick("", " ", "(", "not (", "$"))
	}
	sb.WriteString(recase(pick("userName", "name", "emails", "active", "meta", "x", "$ref", "a1-_", "1a", "_a", "pr", "eq", "not", "displayName", "externalId")))
	if rng.Intn(3) == 0 {
		sb.WriteString(pick(".", "."+recase(pick("givenName", "value", "lastModified", "$ref", "x9", "1", "")), "[", ".a.b"))
	}
	sb.WriteString(pick(" ", " ", " ", "  ", "", "\t", " \u00a0"))
	sb.WriteString(recase(pick("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "pr", "e", "eqq", "xx", "\u212a")))
	if rng.Intn(8) > 0 {
		sb.WriteString(pick(" ", " ", "   ", ""))
		switch rng.Intn(4) {
		case 0, 1:
			sb.WriteString(genString(rng))
		case 2:
			sb.WriteString(genNumber(rng))
		default:
			sb.WriteString(recase(pick("true", "false", "null", "tru", "nulll", "falſe", "truex")))
		}
	}
	if rng.Intn(8) == 0 {
		sb.WriteString(pick(" ", ")", "]", " and x pr", " or y eq 1", " x"))
	}
	s := sb.String()
	if rng.Intn(10) == 0 && len(s) > 0 {
		b := []byte(s)
		i := rng.Intn(len(b))
		switch rng.Intn(3) {
		case 0:
			b = append(b[:i], b[i+1:]...)
		case 1:
			b[i] = byte(rng.Intn(256))
		default:
			b = append(b[:i], append([]byte{byte(rng.Intn(128))}, b[i:]...)...)
		}
		s = string(b)
	}
	return s
}

func genString(rng *rand.Rand) string {
	parts := []string{"a", "Z", "bjensen", "@example.com", " ", "é", "日本", "😀", `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`,
		`\u00E9`, `\u00e9`, `\uD83D\uDE00`, `\uDE00`, `\u12`, `\x`, `\`, "\x01", "\x7f", "\xff", `"`, "'", "]", ")", "and", "or"}
	var sb strings.Builder
	sb.WriteByte('"')
	for range rng.Intn(6) {
		p := parts[rng.Intn(len(parts))]
		if rng.Intn(5) > 0 && (p == `"` || p == `\` || p == "\xff" || p == "\x01") {
			p = "b"
		}
		sb.WriteString(p)
	}
	if rng.Intn(20) > 0 {
		sb.WriteByte('"')
	}
	return sb.String()
}

func genNumber(rng *rand.Rand) string {
	pick := func(xs ...string) string { return xs[rng.Intn(len(xs))] }
	return pick("", "", "-", "+", "--") + pick("0", "1", "42", "01", "9007199254740993", "99999999999999999999", "", "00") +
		pick("", "", ".", ".5", ".0", ".123", "..1") + pick("", "", "e3", "E3", "e+3", "e-3", "e", "e+", "e400", "E-400", "e308")
}

// FuzzParseSimpleFilter holds the fast path of ParseFilter to the general parser on
// any input: go test ./scim -run '^$' -fuzz ParseSimpleFilter.
func FuzzParseSimpleFilter(f *testing.F) {
	for _, s := range []string{`userName eq "bjensen"`, `x eq -1.5e-7`, `a:b:c pr`, `active eq TRUE`, `x eq "\u00E9\n"`, `name.givenName sw "日本"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.TrimSpace(raw) == "" {
			return
		}
		got, gerr := ParseFilter(raw, 0)
		want, werr := parseFilterFull(raw)
		if (gerr == nil) != (werr == nil) || gerr == nil && show(got) != show(want) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("%q: ParseFilter gave %s, %v; the general parser %s, %v", raw, show(got), gerr, show(want), werr)
		}
	})
}

// FuzzParseSimplePath holds the PATCH path fast path equal to the library's parser:
// wherever parseSimplePath accepts a path, the general parser gives the same path.
func FuzzParseSimplePath(f *testing.F) {
	for _, s := range []string{"active", "name.givenName", "members", "x-y_z.a1", "$ref", "a.$ref", "a.", ".a", "a.b.c", "emails[type eq \"work\"].value", "urn:x:y:User:a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := parseSimplePath(raw)
		if !ok {
			return
		}
		want, err := parseLibraryPath(raw)
		if err != nil {
			t.Fatalf("%q: fast path accepted what the library refuses: %v", raw, err)
		}
		if fmt.Sprintf("%+v %v", got.AttributePath, deref(got.AttributePath.SubAttribute)) != fmt.Sprintf("%+v %v", want.AttributePath, deref(want.AttributePath.SubAttribute)) ||
			got.ValueExpression != nil || want.ValueExpression != nil || got.SubAttribute != nil || want.SubAttribute != nil {
			t.Fatalf("%q: fast path %+v, library %+v", raw, got, want)
		}
	})
}

func parseLibraryPath(raw string) (p filter.Path, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return filter.ParsePath([]byte(raw))
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestParseSimplePath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		name string
		sub  string
	}{
		{"active", true, "active", "<nil>"},
		{"name.givenName", true, "name", "givenName"},
		{"a.b.c", false, "", ""},
		{"emails[type eq \"work\"].value", false, "", ""},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", false, "", ""},
		{"", false, "", ""},
		{"1a", false, "", ""},
	} {
		p, ok := parseSimplePath(tc.in)
		if ok != tc.ok || ok && (p.AttributePath.AttributeName != tc.name || deref(p.AttributePath.SubAttribute) != tc.sub) {
			t.Errorf("%q: got %+v %v", tc.in, p, ok)
		}
	}
}
