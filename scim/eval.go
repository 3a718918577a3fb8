package scim

import (
	"fmt"
	"strings"
	"time"

	"github.com/scim2/filter-parser/v2"

	"github.com/scimd/scimd/schemas"
)

// Matches evaluates a filter (RFC 7644 §3.4.2.2) against the resource in memory. It
// serves PATCH value filters (emails[type eq "work"]) and is the reference the SQL
// compiler is tested against, so both follow the same rules: an absent value matches
// nothing but "ne" and "not"; a multi-valued attribute matches when any value does;
// case-insensitive strings compare after strings.ToLower; order is by code point.
func (r *Resource) Matches(e filter.Expression) (bool, error) {
	return evalExpr(r.rt, r, e, nil)
}

// elem is the value a [...] filter is evaluated against.
type elem struct {
	attr *schemas.Attribute
	obj  map[string]any
}

func evalExpr(rt *schemas.ResourceType, r *Resource, e filter.Expression, in *elem) (bool, error) {
	switch n := e.(type) {
	case *filter.LogicalExpression:
		l, err := evalExpr(rt, r, n.Left, in)
		if err != nil {
			return false, err
		}
		rr, err := evalExpr(rt, r, n.Right, in)
		if err != nil {
			return false, err
		}
		if n.Operator == filter.OR {
			return l || rr, nil
		}
		return l && rr, nil
	case *filter.NotExpression:
		v, err := evalExpr(rt, r, n.Expression, in)
		return !v, err
	case *filter.ValuePath:
		attr, _, ok := rt.Resolve(n.AttributePath.URI(), n.AttributePath.AttributeName, "")
		if !ok || attr.Type != schemas.Complex {
			return false, errorf(KindInvalidFilter, "unknown complex attribute %q", n.AttributePath.String())
		}
		for _, o := range values(r, attr) {
			obj, _ := o.(map[string]any)
			ok, err := evalExpr(rt, r, n.ValueFilter, &elem{attr: attr, obj: obj})
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case *filter.AttributeExpression:
		p := n.AttributePath
		if in != nil {
			sub := in.attr.Sub(p.AttributeName)
			if sub == nil || p.SubAttribute != nil {
				return false, errorf(KindInvalidFilter, "%s has no sub-attribute %q", in.attr.Name, p.String())
			}
			return compareValue(sub, in.obj[sub.Name], n)
		}
		attr, parent, ok := rt.Resolve(p.URI(), p.AttributeName, p.SubAttributeName())
		if !ok {
			return false, errorf(KindInvalidFilter, "unknown attribute %q", p.String())
		}
		top, sub := attr, (*schemas.Attribute)(nil)
		if parent != nil {
			top, sub = parent, attr
		}
		if top.Schema == "" {
			return compareValue(attr, commonValue(r, attr, parent), n)
		}
		vals := values(r, top)
		if top.MultiValued && sub == nil {
			if n.Operator == filter.PR {
				return len(vals) > 0, nil
			}
			sub = top.Sub("value")
		}
		for _, v := range vals {
			if sub != nil {
				obj, _ := v.(map[string]any)
				v = obj[sub.Name]
			}
			a := attr
			if sub != nil {
				a = sub
			}
			ok, err := compareValue(a, v, n)
			if err != nil || ok {
				return ok, err
			}
		}
		if len(vals) == 0 && !top.MultiValued {
			a := attr
			if sub != nil {
				a = sub
			}
			return compareValue(a, nil, n)
		}
		return false, nil
	}
	return false, errorf(KindInvalidFilter, "unsupported filter expression %T", e)
}

// values returns the values of a top-level attribute: the elements of a multi-valued
// one, or the one value of a singular one (nothing when absent).
func values(r *Resource, top *schemas.Attribute) []any {
	var v any
	if top.Schema != r.rt.Schema.ID {
		ext, _ := r.Attrs[top.Schema].(map[string]any)
		v = ext[top.Name]
	} else {
		v = r.Attrs[top.Name]
	}
	if v == nil {
		return nil
	}
	if list, ok := v.([]any); ok {
		return list
	}
	return []any{v}
}

func commonValue(r *Resource, attr, parent *schemas.Attribute) any {
	if parent == nil {
		if attr.Name == "id" {
			return r.ID
		}
		return r.Attrs[attr.Name] // externalId
	}
	switch attr.Name {
	case "created":
		return r.Created
	case "lastModified":
		return r.LastModified
	case "resourceType":
		return string(r.Kind)
	}
	return nil
}

// checkOperands refuses what the SQL compiler refuses: a compare value of the wrong
// type for the attribute, and an operator that does not apply to it.
func checkOperands(a *schemas.Attribute, n *filter.AttributeExpression) error {
	op := n.Operator
	if op == filter.PR {
		return nil
	}
	name := n.AttributePath.String()
	if n.CompareValue == nil {
		return errorf(KindInvalidFilter, "%s %s null: compare with a value, or use \"pr\"", name, op)
	}
	ordered := op == filter.GT || op == filter.GE || op == filter.LT || op == filter.LE
	substr := op == filter.CO || op == filter.SW || op == filter.EW
	switch a.Type {
	case schemas.String, schemas.Reference, schemas.Binary:
		if _, ok := n.CompareValue.(string); !ok {
			return errorf(KindInvalidFilter, "%s is a string; compare it with a quoted value", name)
		}
	case schemas.Boolean:
		if _, ok := n.CompareValue.(bool); !ok || ordered || substr {
			return errorf(KindInvalidFilter, "%s is a boolean; only eq, ne and pr with true or false apply", name)
		}
	case schemas.Integer, schemas.Decimal:
		if _, ok := number(n.CompareValue); !ok || substr {
			return errorf(KindInvalidFilter, "%s is a number; compare it with a number using eq, ne, gt, ge, lt or le", name)
		}
		if _, isStr := n.CompareValue.(string); isStr {
			return errorf(KindInvalidFilter, "%s is a number; compare it with a number", name)
		}
	case schemas.DateTime:
		s, ok := n.CompareValue.(string)
		if !ok || substr {
			return errorf(KindInvalidFilter, "%s is a dateTime; compare it with a quoted RFC 3339 time using eq, ne, gt, ge, lt or le", name)
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return errorf(KindInvalidFilter, "%s: %q is not an RFC 3339 time", name, s)
		}
	case schemas.Complex:
		return errorf(KindInvalidFilter, "%s is complex; filter on one of its sub-attributes, or use pr", name)
	}
	return nil
}

func compareValue(a *schemas.Attribute, v any, n *filter.AttributeExpression) (bool, error) {
	if err := checkOperands(a, n); err != nil {
		return false, err
	}
	op := n.Operator
	if op == filter.PR {
		switch t := v.(type) {
		case nil:
			return false, nil
		case string:
			return t != "", nil
		}
		return true, nil
	}
	if op == filter.NE {
		eq := *n
		eq.Operator = filter.EQ
		ok, err := compareValue(a, v, &eq)
		return !ok, err
	}
	switch want := n.CompareValue.(type) {
	case string:
		switch x := v.(type) {
		case nil:
			return false, nil
		case time.Time:
			t, err := time.Parse(time.RFC3339Nano, want)
			if err != nil {
				return false, errorf(KindInvalidFilter, "%q is not an RFC 3339 time", want)
			}
			return order(op, x.Compare(t.UTC()))
		case string:
			if !a.CaseExact {
				x, want = strings.ToLower(x), strings.ToLower(want)
			}
			switch op {
			case filter.EQ:
				return x == want, nil
			case filter.CO:
				return strings.Contains(x, want), nil
			case filter.SW:
				return strings.HasPrefix(x, want), nil
			case filter.EW:
				return strings.HasSuffix(x, want), nil
			}
			return order(op, strings.Compare(x, want))
		}
	case bool:
		x, ok := v.(bool)
		return ok && op == filter.EQ && x == want, nil
	case int, float64:
		x, ok := number(v)
		if !ok {
			return false, nil
		}
		w, _ := number(want)
		switch {
		case x < w:
			return order(op, -1)
		case x > w:
			return order(op, 1)
		}
		return order(op, 0)
	}
	return false, nil
}

func order(op filter.CompareOperator, c int) (bool, error) {
	switch op {
	case filter.EQ:
		return c == 0, nil
	case filter.GT:
		return c > 0, nil
	case filter.GE:
		return c >= 0, nil
	case filter.LT:
		return c < 0, nil
	case filter.LE:
		return c <= 0, nil
	}
	return false, fmt.Errorf("operator %s does not order", op)
}

// checkValueFilter checks a [...] filter over the sub-attributes of top without
// evaluating it, so that a bad filter is refused even when there is no value to test.
func checkValueFilter(top *schemas.Attribute, e filter.Expression) error {
	switch n := e.(type) {
	case *filter.LogicalExpression:
		if err := checkValueFilter(top, n.Left); err != nil {
			return err
		}
		return checkValueFilter(top, n.Right)
	case *filter.NotExpression:
		return checkValueFilter(top, n.Expression)
	case *filter.AttributeExpression:
		sub := top.Sub(n.AttributePath.AttributeName)
		if sub == nil || n.AttributePath.SubAttribute != nil || n.AttributePath.URIPrefix != nil {
			return errorf(KindInvalidFilter, "%s has no sub-attribute %q", top.Name, n.AttributePath.String())
		}
		return checkOperands(sub, n)
	}
	return errorf(KindInvalidFilter, "a [...] filter cannot hold %T", e)
}
