package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scim2/filter-parser/v2"

	"github.com/scimd/scimd/schemas"
)

// ParseFilter parses a SCIM filter (RFC 7644 §3.4.2.2) of at most maxLen bytes. String
// values have their JSON escapes decoded (the parser leaves them raw). A filter that
// is not valid UTF-8 or holds a NUL character, raw or as a \u0000 escape, is refused
// before it is parsed or compiled: it can match nothing scimd stores (bodies are
// refused for the same), and PostgreSQL refuses such text outright. Any failure is a
// KindInvalidFilter error.
func ParseFilter(raw string, maxLen int) (e filter.Expression, err error) {
	if maxLen > 0 && len(raw) > maxLen {
		return nil, errorf(KindInvalidFilter, "the filter is %d bytes long; the limit is %d", len(raw), maxLen)
	}
	if strings.TrimSpace(raw) == "" {
		return nil, errorf(KindInvalidFilter, "the filter is empty")
	}
	if e, ok := parseSimpleFilter(raw); ok {
		return finishFilter(e)
	}
	return parseFilterFull(raw)
}

// parseFilterFull is ParseFilter through the general parser. The fast path reads
// only valid UTF-8 without control characters, so the text check here covers both.
func parseFilterFull(raw string) (e filter.Expression, err error) {
	if err := checkFilterText(raw); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, errorf(KindInvalidFilter, "the filter %q cannot be parsed", raw)
		}
	}()
	e, perr := filter.ParseFilter([]byte(raw))
	if perr != nil {
		return nil, &Error{Kind: KindInvalidFilter, Detail: fmt.Sprintf("the filter %q cannot be parsed; write it like userName eq \"bjensen\" (RFC 7644 §3.4.2.2)", raw), Err: perr}
	}
	return finishFilter(e)
}

// valuePathSub matches the non-RFC attr[filter].sub op value form; the value is a
// quoted string (with escapes), a number, true, false or null.
var valuePathSub = regexp.MustCompile(`([A-Za-z][\w$:.-]*)\[([^\[\]]*)\]\.([A-Za-z][\w$]*)\s+(?i:(eq|ne|co|sw|ew|gt|ge|lt|le))\s+("(?:[^"\\]|\\.)*"|[-+0-9.eE]+|true|false|null)`)

var orWord = regexp.MustCompile(`(?i)\bor\b`)

// ParseClientFilter is ParseFilter that, when q accepts it, also reads the form
// emails[type eq "work"].value eq "x" (a client's shorthand outside RFC 7644
// §3.4.2.2) as emails[type eq "work" and value eq "x"].
func ParseClientFilter(raw string, maxLen int, q *Quirks) (filter.Expression, error) {
	e, err := ParseFilter(raw, maxLen)
	if err == nil || !valuePathSub.MatchString(raw) {
		return e, err
	}
	if qerr := q.use(QuirkFilterSubAttribute, KindInvalidFilter, "%s: compare sub-attributes inside the brackets, as in emails[type eq \"work\" and value eq \"x\"]", raw); qerr != nil {
		return nil, qerr
	}
	// The parser takes no parentheses directly inside [...], so an inner filter with
	// "or" cannot be conjoined safely and is left refused.
	rewritten := valuePathSub.ReplaceAllStringFunc(raw, func(m string) string {
		g := valuePathSub.FindStringSubmatch(m)
		if orWord.MatchString(g[2]) {
			return m
		}
		return g[1] + "[" + g[2] + " and " + g[3] + " " + g[4] + " " + g[5] + "]"
	})
	if e2, err2 := ParseFilter(rewritten, maxLen); err2 == nil {
		return e2, nil
	}
	return nil, err
}

// parseSimpleFilter reads the most common filter, one comparison "attrPath op value"
// or "attrPath pr" (RFC 7644 §3.4.2.2), without the general parser. It accepts a
// subset of what filter.ParseFilter accepts, following its grammar step by step (the
// URI prefix is read greedily, spaces are SP only, string escapes are those of the
// grammar), and returns the same expression with string escapes still raw; for
// anything else ok is false and the general parser decides.
func parseSimpleFilter(s string) (e *filter.AttributeExpression, ok bool) {
	i := 0
	var path filter.AttributePath
	for {
		j := i
		for j < len(s) && isURIByte(s[j]) {
			j++
		}
		if j == i || j == len(s) || s[j] != ':' {
			break
		}
		i = j + 1
	}
	if i > 0 {
		uri := s[:i-1]
		path.URIPrefix = &uri
	}
	j := scanAttrName(s, i)
	if j == i {
		return nil, false
	}
	path.AttributeName = s[i:j]
	if j < len(s) && s[j] == '.' {
		k := scanAttrName(s, j+1)
		if k == j+1 {
			return nil, false
		}
		sub := s[j+1 : k]
		path.SubAttribute = &sub
		j = k
	}
	i = skipSP(s, j)
	if i == j || len(s)-i < 2 {
		return nil, false
	}
	var op filter.CompareOperator
	for _, o := range compareOps {
		if lowerASCII(s[i]) == o[0] && lowerASCII(s[i+1]) == o[1] {
			op = o
		}
	}
	i += 2
	if op == filter.PR {
		if i != len(s) {
			return nil, false
		}
		return &filter.AttributeExpression{AttributePath: path, Operator: filter.PR}, true
	}
	if op == "" {
		return nil, false
	}
	j = skipSP(s, i)
	if j == i || j == len(s) {
		return nil, false
	}
	v, ok := simpleValue(s[j:])
	if !ok {
		return nil, false
	}
	return &filter.AttributeExpression{AttributePath: path, Operator: op, CompareValue: v}, true
}

// compareOps are the operators of RFC 7644 §3.4.2.2, pr first.
var compareOps = []filter.CompareOperator{filter.PR, filter.EQ, filter.NE, filter.CO, filter.SW, filter.EW, filter.GT, filter.GE, filter.LT, filter.LE}

// simpleValue reads a whole compare value: a string (returned without its quotes,
// escapes raw), true, false, null or a number (int without fraction and exponent,
// else float64), as filter-parser does.
func simpleValue(s string) (any, bool) {
	switch {
	case equalFoldASCII(s, "true"):
		return true, true
	case equalFoldASCII(s, "false"):
		return false, true
	case equalFoldASCII(s, "null"):
		return nil, true
	}
	if s[0] == '"' {
		for i := 1; i < len(s); {
			c := s[i]
			switch {
			case c == '"':
				return s[1:i], i == len(s)-1
			case c == '\\':
				if i+1 == len(s) {
					return nil, false
				}
				switch s[i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					i += 2
				case 'u':
					if i+6 > len(s) {
						return nil, false
					}
					for _, h := range []byte(s[i+2 : i+6]) {
						if (h < '0' || h > '9') && (h < 'A' || h > 'F') {
							return nil, false
						}
					}
					i += 6
				default:
					return nil, false
				}
			case c < 0x20:
				return nil, false
			case c < utf8.RuneSelf:
				i++
			default:
				r, n := utf8.DecodeRuneInString(s[i:])
				if r == utf8.RuneError && n == 1 {
					return nil, false
				}
				i += n
			}
		}
		return nil, false
	}
	i := 0
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		return nil, false
	}
	frac, exp := false, false
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return nil, false
		}
		frac, i = true, j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return nil, false
		}
		exp, i = true, j
	}
	if i != len(s) {
		return nil, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, false
	}
	if !frac && !exp {
		return int(f), true
	}
	return f, true
}

// lowerASCII lowers an ASCII letter; filter-parser's case-insensitive keywords are
// ASCII.
func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFoldASCII reports whether s is the lowercase ASCII word w in any case.
func equalFoldASCII(s, w string) bool {
	if len(s) != len(w) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lowerASCII(s[i]) != w[i] {
			return false
		}
	}
	return true
}

func isURIByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.'
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// scanAttrName returns the end of the ATTRNAME ("$"? ALPHA *(nameChar)) at i, or i.
func scanAttrName(s string, i int) int {
	j := i
	if j < len(s) && s[j] == '$' {
		j++
	}
	if j == len(s) || !isAlpha(s[j]) {
		return i
	}
	for j++; j < len(s) && (isAlpha(s[j]) || s[j] >= '0' && s[j] <= '9' || s[j] == '-' || s[j] == '_'); j++ {
	}
	return j
}

func skipSP(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

func skipDigits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func finishFilter(e filter.Expression) (filter.Expression, error) {
	if err := unescape(e); err != nil {
		return nil, err
	}
	normalizeUserNames(e)
	return e, nil
}

// normalizeUserNames puts the string compare values of userName comparisons into the
// form userName is stored in (NormalizeUserName), so that a filter written with a
// decomposed "é" finds the user stored with the precomposed one.
func normalizeUserNames(e filter.Expression) {
	switch n := e.(type) {
	case *filter.LogicalExpression:
		normalizeUserNames(n.Left)
		normalizeUserNames(n.Right)
	case *filter.NotExpression:
		normalizeUserNames(n.Expression)
	case *filter.AttributeExpression:
		p := n.AttributePath
		if !strings.EqualFold(p.AttributeName, "userName") || p.SubAttribute != nil ||
			p.URIPrefix != nil && !strings.EqualFold(*p.URIPrefix, schemas.UserURN) {
			return
		}
		if s, ok := n.CompareValue.(string); ok {
			n.CompareValue = NormalizeUserName(s)
		}
	}
}

// ParsePath parses a PATCH path (RFC 7644 §3.5.2) and decodes the JSON escapes of
// the string values in its filter. Any failure is a KindInvalidPath error.
func ParsePath(raw string) (p filter.Path, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = filter.Path{}, errorf(KindInvalidPath, "the path %q cannot be parsed", raw)
		}
	}()
	if sp, ok := parseSimplePath(raw); ok {
		return sp, nil
	}
	p, perr := filter.ParsePath([]byte(raw))
	if perr != nil {
		return filter.Path{}, &Error{Kind: KindInvalidPath, Detail: fmt.Sprintf("the path %q cannot be parsed; write it like name.givenName or emails[type eq \"work\"].value", raw), Err: perr}
	}
	if p.ValueExpression != nil {
		if err := unescape(p.ValueExpression); err != nil {
			return filter.Path{}, &Error{Kind: KindInvalidPath, Detail: err.(*Error).Detail}
		}
	}
	return p, nil
}

// parseSimplePath parses the paths clients send most, an attribute name with at
// most one sub-attribute and no URN or value filter ("active", "name.givenName"),
// without the general parser; anything else is left to it. FuzzParseSimplePath
// holds it equal to the library's parser.
func parseSimplePath(s string) (filter.Path, bool) {
	j := scanAttrName(s, 0)
	if j == 0 {
		return filter.Path{}, false
	}
	p := filter.Path{AttributePath: filter.AttributePath{AttributeName: s[:j]}}
	if j < len(s) && s[j] == '.' {
		k := scanAttrName(s, j+1)
		if k == j+1 {
			return filter.Path{}, false
		}
		sub := s[j+1 : k]
		p.AttributePath.SubAttribute = &sub
		j = k
	}
	if j != len(s) {
		return filter.Path{}, false
	}
	return p, true
}

// checkFilterText refuses filter text that is not valid UTF-8 or holds a NUL.
func checkFilterText(raw string) error {
	if !utf8.ValidString(raw) {
		i := 0
		for i < len(raw) {
			r, n := utf8.DecodeRuneInString(raw[i:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		return errorf(KindInvalidFilter, "the filter is not valid UTF-8 (at byte %d); send it as UTF-8, percent-encoded in a query string (RFC 3986 §2.5)", i)
	}
	if i := strings.IndexByte(raw, 0); i >= 0 {
		return errorf(KindInvalidFilter, "the filter has a NUL character at byte %d", i)
	}
	return nil
}

// unescape decodes the JSON escapes (RFC 7159 §7) of every string compare value; an
// escape of NUL (\u0000) or of half a surrogate pair is refused, as in a body
// (DecodeJSON).
func unescape(e filter.Expression) error {
	switch n := e.(type) {
	case *filter.LogicalExpression:
		if err := unescape(n.Left); err != nil {
			return err
		}
		return unescape(n.Right)
	case *filter.NotExpression:
		return unescape(n.Expression)
	case *filter.ValuePath:
		return unescape(n.ValueFilter)
	case *filter.AttributeExpression:
		s, ok := n.CompareValue.(string)
		if !ok || !strings.Contains(s, `\`) {
			return nil
		}
		quoted := []byte(`"` + s + `"`)
		if err := CheckJSON(quoted, 0); errors.Is(err, ErrJSONNUL) {
			return errorf(KindInvalidFilter, "the string %q has a NUL character (\\u0000)", s)
		} else if errors.Is(err, ErrJSONUnicode) {
			return errorf(KindInvalidFilter, "the string %q has a \\u escape of half a UTF-16 surrogate pair, which names no character", s)
		}
		var out string
		if err := json.Unmarshal(quoted, &out); err != nil {
			return errorf(KindInvalidFilter, "the string %q has an invalid escape", s)
		}
		n.CompareValue = out
	}
	return nil
}
