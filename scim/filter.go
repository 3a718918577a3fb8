package scim

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/scim2/filter-parser/v2"
)

// ParseFilter parses a SCIM filter (RFC 7644 §3.4.2.2) of at most maxLen bytes. String
// values have their JSON escapes decoded (the parser leaves them raw). Any failure is
// a KindInvalidFilter error.
func ParseFilter(raw string, maxLen int) (e filter.Expression, err error) {
	if maxLen > 0 && len(raw) > maxLen {
		return nil, errorf(KindInvalidFilter, "the filter is %d bytes long; the limit is %d", len(raw), maxLen)
	}
	if strings.TrimSpace(raw) == "" {
		return nil, errorf(KindInvalidFilter, "the filter is empty")
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

func finishFilter(e filter.Expression) (filter.Expression, error) {
	if err := unescape(e); err != nil {
		return nil, err
	}
	return e, nil
}

// ParsePath parses a PATCH path (RFC 7644 §3.5.2) and decodes the JSON escapes of
// the string values in its filter. Any failure is a KindInvalidPath error.
func ParsePath(raw string) (p filter.Path, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = filter.Path{}, errorf(KindInvalidPath, "the path %q cannot be parsed", raw)
		}
	}()
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

// unescape decodes the JSON escapes (RFC 7159 §7) of every string compare value.
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
		var out string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &out); err != nil {
			return errorf(KindInvalidFilter, "the string %q has an invalid escape", s)
		}
		n.CompareValue = out
	}
	return nil
}
