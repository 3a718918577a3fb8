package scim

import (
	"encoding/json"
	"fmt"
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
