package gormstore

import (
	"fmt"

	"github.com/scim2/filter-parser/v2"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/store"
)

// sortKey is how a list is ordered: by expr (nil: by creation) then id.
type sortKey struct {
	expr string // "" for the default order by t.created
	text bool   // expr is text, so a position's value can be bound back
	desc bool
}

// order is the ORDER BY list; backward reverses it.
func (k sortKey) order(backward bool) string {
	dir := " ASC"
	if k.desc != backward {
		dir = " DESC"
	}
	if k.expr == "" {
		return "t.created" + dir + ", t.id" + dir
	}
	// (x IS NULL) is false (0) for a value and true (1) without one: ascending puts
	// the unassigned last, descending first, on every database.
	return "(" + k.expr + " IS NULL)" + dir + ", " + k.expr + dir + ", t.id" + dir
}

// seek is the condition for the rows after p in the order (before it, backward).
func (k sortKey) seek(p store.Position, backward bool) (string, []any) {
	gt := k.desc == backward // moving towards larger keys
	cmp, idCmp := " < ", " < "
	if gt {
		cmp, idCmp = " > ", " > "
	}
	if k.expr == "" {
		return "(t.created" + cmp + "? OR (t.created = ? AND t.id" + idCmp + "?))", []any{p.Created, p.Created, p.ID}
	}
	x := k.expr
	// Unassigned values sort after every value in ascending order.
	switch {
	case p.Null && gt:
		return "(" + x + " IS NULL AND t.id > ?)", []any{p.ID}
	case p.Null:
		return "(" + x + " IS NOT NULL OR t.id < ?)", []any{p.ID}
	case gt:
		return "(" + x + " IS NULL OR " + x + " > ? OR (" + x + " = ? AND t.id > ?))", []any{p.Value, p.Value, p.ID}
	default:
		return "(" + x + " IS NOT NULL AND (" + x + " < ? OR (" + x + " = ? AND t.id < ?)))", []any{p.Value, p.Value, p.ID}
	}
}

// orderBy compiles sortBy (RFC 7644 §3.4.2.3). Strings that are not caseExact order
// case-insensitively, by code point; a multi-valued attribute orders by its primary
// value, else its first; a resource without a value sorts last ascending and first
// descending; ties go by id, so pages are stable.
func orderBy(d Dialect, kind store.Kind, p *filter.AttributePath, desc bool) (sortKey, error) {
	if p == nil {
		return sortKey{desc: desc}, nil
	}
	c := &compiler{d: d, rt: resourceType(kind), kind: kind}
	x, text, err := c.sortExpr(*p)
	if err != nil {
		return sortKey{}, err
	}
	return sortKey{expr: x, text: text, desc: desc}, nil
}

func (c *compiler) sortExpr(p filter.AttributePath) (string, bool, error) {
	urn := p.URI()
	attr, parent, ok := c.rt.Resolve(urn, p.AttributeName, p.SubAttributeName())
	if !ok {
		return "", false, sortErrorf("unknown attribute %q", p.String())
	}
	top := attr
	if parent != nil {
		top = parent
	}
	if top.MultiValued {
		sub := attr
		if parent == nil {
			if sub = top.Sub("value"); sub == nil {
				return "", false, sortErrorf("%q is complex; name one of its sub-attributes", p.String())
			}
		}
		if c.kind == store.KindGroup && top.Name == "members" || c.kind == store.KindUser && top.Name == "groups" {
			return "", false, sortErrorf("%s is not sortable", top.Name)
		}
		from, elem, ord := c.d.JSONElementsOrdered("t.data", "e", docKeys(top, urn)...)
		primary := c.d.JSONText(elem, "primary")
		val := c.sortValue(operand{expr: c.d.JSONText(elem, sub.Name), attr: sub, json: true})
		if val == "" {
			return "", false, sortErrorf("%s is not sortable", p.String())
		}
		return "(SELECT " + val + " FROM " + from + " ORDER BY CASE WHEN " + primary + " = " +
			literal(c.d.JSONBool(true)) + " THEN 0 ELSE 1 END, " + ord + " LIMIT 1)", isText(sub), nil
	}
	if attr.Type == schemas.Complex {
		return "", false, sortErrorf("%q is complex; name one of its sub-attributes, e.g. %s.%s", p.String(), attr.Name, firstSub(attr))
	}
	o, err := c.singular(top, parent, attr, urn)
	if err != nil {
		return "", false, sortErrorf("%s is not sortable", p.String())
	}
	if o.expr == "'User'" || o.expr == "'Group'" {
		return "", false, sortErrorf("%s is the same for every resource here", p.String())
	}
	x := c.sortValue(o)
	if x == "" {
		return "", false, sortErrorf("%s is not sortable", p.String())
	}
	return x, isText(attr), nil
}

// sortValue is the expression an operand orders by, or "" when it cannot order.
func (c *compiler) sortValue(o operand) string {
	switch o.attr.Type {
	case schemas.String, schemas.Reference, schemas.Binary:
		x := o.expr
		if !o.attr.CaseExact && !o.folded {
			x = c.d.Lower(x)
		}
		return c.d.Ordered(x)
	case schemas.Integer, schemas.Decimal:
		if o.json {
			return c.d.JSONNumber(o.expr)
		}
		return o.expr
	case schemas.Boolean, schemas.DateTime:
		return o.expr
	}
	return ""
}

func firstSub(a *schemas.Attribute) string {
	if len(a.SubAttributes) > 0 {
		return a.SubAttributes[0].Name
	}
	return "value"
}

// literal renders a dialect's boolean JSON value as a SQL literal; only the fixed
// values JSONBool returns ever reach it.
func literal(v any) string {
	switch x := v.(type) {
	case string:
		return "'" + x + "'"
	case int:
		if x == 1 {
			return "1"
		}
		return "0"
	}
	return "NULL"
}

func sortErrorf(format string, args ...any) error {
	return &store.SortError{Msg: fmt.Sprintf(format, args...)}
}

func isText(a *schemas.Attribute) bool {
	return a.Type == schemas.String || a.Type == schemas.Reference || a.Type == schemas.Binary
}
