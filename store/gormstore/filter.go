package gormstore

import (
	"strings"
	"time"

	"github.com/scim2/filter-parser/v2"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/store"
)

// maxFilterDepth bounds the nesting of and/or/not a compiled filter may have, so that
// a hostile filter cannot make the compiler or the database recurse without end.
const maxFilterDepth = 64

// operand is a SQL expression standing for one attribute's value.
type operand struct {
	expr   string
	attr   *schemas.Attribute
	folded bool // expr is already case-folded (a *_lower column or a lower-case id)
	json   bool // expr is JSON text: booleans and numbers need the dialect's form
	time   bool // expr is a timestamp column
}

// source is a multi-valued attribute: a FROM list with one row per value, the
// condition that ties those rows to the resource row t, and the operand of each
// sub-attribute of one value.
type source struct {
	attr  *schemas.Attribute
	from  string
	link  string
	field func(sub *schemas.Attribute) (operand, error)
}

type compiler struct {
	d     Dialect
	rt    *schemas.ResourceType
	kind  store.Kind
	args  []any
	depth int
}

// compileFilter turns a SCIM filter (RFC 7644 §3.4.2.2) over the resource table
// aliased t into a SQL condition and its parameters. Attribute names are resolved
// through the schema registry only; every value is a bound parameter.
func compileFilter(d Dialect, kind store.Kind, e filter.Expression) (string, []any, error) {
	c := &compiler{d: d, rt: resourceType(kind), kind: kind}
	sql, err := c.expr(e, nil)
	if err != nil {
		return "", nil, err
	}
	return sql, c.args, nil
}

// compileMemberFilter turns a filter over the sub-attributes of Group.members (as in
// the PATCH path members[value eq "…"]) into a condition on the group_members table.
func compileMemberFilter(d Dialect, e filter.Expression) (string, []any, error) {
	c := &compiler{d: d, rt: resourceType(store.KindGroup), kind: store.KindGroup}
	members, _, _ := c.rt.Resolve("", "members", "")
	src := c.membersSource(members, "group_members")
	sql, err := c.expr(e, src)
	if err != nil {
		return "", nil, err
	}
	return sql, c.args, nil
}

func resourceType(kind store.Kind) *schemas.ResourceType {
	if kind == store.KindGroup {
		return groupType
	}
	return userType
}

var (
	userType  = schemas.User()
	groupType = schemas.Group()
)

func (c *compiler) bind(v any) string {
	c.args = append(c.args, v)
	return "?"
}

func (c *compiler) expr(e filter.Expression, in *source) (string, error) {
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > maxFilterDepth {
		return "", store.Filterf("the filter nests deeper than %d levels", maxFilterDepth)
	}
	switch n := e.(type) {
	case *filter.LogicalExpression:
		// A chain of one operator (a or b or c …, which the parser nests one level
		// per term) is one flat SQL list, and one level deep: a client asking for
		// many ids at once is not refused for nesting, and the SQL stays shallow.
		var terms []string
		var chain func(e filter.Expression) error
		chain = func(e filter.Expression) error {
			if l, ok := e.(*filter.LogicalExpression); ok && l.Operator == n.Operator {
				if err := chain(l.Left); err != nil {
					return err
				}
				return chain(l.Right)
			}
			t, err := c.expr(e, in)
			terms = append(terms, t)
			return err
		}
		if err := chain(n); err != nil {
			return "", err
		}
		op := " AND "
		if n.Operator == filter.OR {
			op = " OR "
		}
		return "(" + strings.Join(terms, op) + ")", nil
	case *filter.NotExpression:
		inner, err := c.expr(n.Expression, in)
		if err != nil {
			return "", err
		}
		// A comparison on an absent value is NULL in SQL and false in SCIM; COALESCE
		// keeps NOT from turning "absent" into "unknown".
		return "NOT COALESCE((" + inner + "), FALSE)", nil
	case *filter.ValuePath:
		return c.valuePath(n, in)
	case *filter.AttributeExpression:
		return c.attrExpr(n, in)
	case nil:
		return "", store.Filterf("empty filter")
	default:
		return "", store.Filterf("unsupported filter expression %T", e)
	}
}

func pathString(p filter.AttributePath) string { return p.String() }

func (c *compiler) valuePath(n *filter.ValuePath, in *source) (string, error) {
	if in != nil {
		return "", store.Filterf("a [...] filter cannot be nested inside another one")
	}
	p := n.AttributePath
	if p.SubAttribute != nil {
		return "", store.Filterf("%q: a [...] filter applies to an attribute, not a sub-attribute", pathString(p))
	}
	attr, _, ok := c.rt.Resolve(p.URI(), p.AttributeName, "")
	if !ok {
		return "", store.Filterf("unknown attribute %q", pathString(p))
	}
	if attr.Type != schemas.Complex {
		return "", store.Filterf("%q has no sub-attributes to filter with [...]", pathString(p))
	}
	if !attr.MultiValued {
		// A singular complex attribute: name[givenName eq "x"] is name.givenName eq "x"
		// for a resource that has a name. Without one there is no value for the filter
		// to apply to, so even name[not (givenName pr)] matches nothing, as for an
		// absent multi-valued attribute.
		cond, err := c.expr(n.ValueFilter, c.complexSource(attr, p.URI()))
		if err != nil {
			return "", err
		}
		return "(" + c.d.JSONText("t.data", docKeys(attr, p.URI())...) + " IS NOT NULL AND (" + cond + "))", nil
	}
	src, err := c.source(attr, p.URI())
	if err != nil {
		return "", err
	}
	cond, err := c.expr(n.ValueFilter, src)
	if err != nil {
		return "", err
	}
	return exists(src, cond), nil
}

func exists(src *source, cond string) string {
	where := cond
	if src.link != "" {
		where = src.link + " AND (" + cond + ")"
	}
	return "EXISTS (SELECT 1 FROM " + src.from + " WHERE " + where + ")"
}

func (c *compiler) attrExpr(n *filter.AttributeExpression, in *source) (string, error) {
	p := n.AttributePath
	if in != nil {
		if p.URIPrefix != nil || p.SubAttribute != nil {
			return "", store.Filterf("%q: inside %s[...] name a sub-attribute of %s only", pathString(p), in.attr.Name, in.attr.Name)
		}
		sub := in.attr.Sub(p.AttributeName)
		if sub == nil {
			return "", store.Filterf("%s has no sub-attribute %q", in.attr.Name, p.AttributeName)
		}
		o, err := in.field(sub)
		if err != nil {
			return "", err
		}
		return c.compare(o, n)
	}
	urn := p.URI()
	attr, parent, ok := c.rt.Resolve(urn, p.AttributeName, p.SubAttributeName())
	if !ok {
		return "", store.Filterf("unknown attribute %q", pathString(p))
	}
	top := attr
	if parent != nil {
		top = parent
	}
	if top.MultiValued {
		src, err := c.source(top, urn)
		if err != nil {
			return "", err
		}
		sub := attr
		if parent == nil {
			if n.Operator == filter.PR {
				return exists(src, "1 = 1"), nil
			}
			// RFC 7644 §3.4.2.2: a multi-valued complex attribute compared as a
			// whole compares its "value" sub-attribute.
			if sub = top.Sub("value"); sub == nil {
				return "", store.Filterf("%q is complex; filter on one of its sub-attributes", pathString(p))
			}
		}
		o, err := src.field(sub)
		if err != nil {
			return "", err
		}
		cond, err := c.compare(o, n)
		if err != nil {
			return "", err
		}
		return exists(src, cond), nil
	}
	o, err := c.singular(top, parent, attr, urn)
	if err != nil {
		return "", err
	}
	return c.compare(o, n)
}

// singular returns the operand of a single-valued attribute or sub-attribute: an
// indexed column where there is one, else the value inside the JSON document.
func (c *compiler) singular(top, parent, attr *schemas.Attribute, urn string) (operand, error) {
	if top.Schema == "" { // common attributes: id, externalId, meta
		switch {
		case attr.Name == "id":
			return operand{expr: "t.id", attr: attr}, nil
		case attr.Name == "externalId":
			return operand{expr: "t.external_id", attr: attr}, nil
		case parent != nil && attr.Name == "created":
			return operand{expr: "t.created", attr: attr, time: true}, nil
		case parent != nil && attr.Name == "lastModified":
			return operand{expr: "t.last_modified", attr: attr, time: true}, nil
		case parent != nil && attr.Name == "resourceType":
			// A literal rather than a parameter, because "pr" uses the operand twice;
			// it is one of two constants, never request input.
			lit := "'User'"
			if c.kind == store.KindGroup {
				lit = "'Group'"
			}
			return operand{expr: lit, attr: attr}, nil
		default:
			return operand{}, store.Filterf("%s is not filterable; meta.created, meta.lastModified and meta.resourceType are", pathName(parent, attr))
		}
	}
	if parent == nil && urn == "" || parent == nil && strings.EqualFold(urn, c.rt.Schema.ID) {
		switch {
		case c.kind == store.KindUser && attr.Name == "userName":
			return operand{expr: "t.user_name_lower", attr: attr, folded: true}, nil
		case attr.Name == "displayName" && top.Schema == c.rt.Schema.ID:
			return operand{expr: "t.display_name_lower", attr: attr, folded: true}, nil
		case c.kind == store.KindUser && attr.Name == "active":
			return operand{expr: "t.active", attr: attr}, nil
		}
	}
	keys := docKeys(top, urn)
	if parent != nil {
		keys = append(keys, attr.Name)
	}
	return operand{expr: c.d.JSONText("t.data", keys...), attr: attr, json: true}, nil
}

func pathName(parent, attr *schemas.Attribute) string {
	if parent != nil {
		return parent.Name + "." + attr.Name
	}
	return attr.Name
}

// docKeys is the key path of a top-level attribute inside the stored document:
// extension attributes sit under their schema URN (RFC 7643 §3.3).
func docKeys(top *schemas.Attribute, urn string) []string {
	if top.Schema != "" && top.Schema != userType.Schema.ID && top.Schema != groupType.Schema.ID {
		return []string{top.Schema, top.Name}
	}
	return []string{top.Name}
}

func (c *compiler) complexSource(attr *schemas.Attribute, urn string) *source {
	keys := docKeys(attr, urn)
	return &source{attr: attr, field: func(sub *schemas.Attribute) (operand, error) {
		return operand{expr: c.d.JSONText("t.data", append(append([]string{}, keys...), sub.Name)...), attr: sub, json: true}, nil
	}}
}

// source returns the rows of a multi-valued attribute: memberships for Group.members
// and User.groups, JSON array elements for everything else.
func (c *compiler) source(attr *schemas.Attribute, urn string) (*source, error) {
	if attr.Schema == c.rt.Schema.ID {
		switch {
		case c.kind == store.KindGroup && attr.Name == "members":
			src := c.membersSource(attr, "m")
			src.from = "group_members AS m"
			src.link = "m.tenant_id = t.tenant_id AND m.group_id = t.id"
			return src, nil
		case c.kind == store.KindUser && attr.Name == "groups":
			return &source{
				attr: attr,
				from: `group_members AS m JOIN "groups" AS g ON g.tenant_id = m.tenant_id AND g.id = m.group_id`,
				link: "m.tenant_id = t.tenant_id AND m.member_id = t.id",
				field: func(sub *schemas.Attribute) (operand, error) {
					switch sub.Name {
					case "value":
						return operand{expr: "m.group_id", attr: sub, folded: true}, nil
					case "display":
						return operand{expr: "g.display_name_lower", attr: sub, folded: true}, nil
					}
					return operand{}, store.Filterf("groups.%s is not filterable; groups.value and groups.display are", sub.Name)
				},
			}, nil
		}
	}
	from, elem := c.d.JSONElements("t.data", "e", docKeys(attr, urn)...)
	return &source{attr: attr, from: from, field: func(sub *schemas.Attribute) (operand, error) {
		if sub.Type == schemas.Complex {
			return operand{}, store.Filterf("%s.%s is complex", attr.Name, sub.Name)
		}
		return operand{expr: c.d.JSONText(elem, sub.Name), attr: sub, json: true}, nil
	}}, nil
}

// membersSource maps the sub-attributes of Group.members onto group_members columns
// under alias.
func (c *compiler) membersSource(attr *schemas.Attribute, alias string) *source {
	return &source{attr: attr, field: func(sub *schemas.Attribute) (operand, error) {
		switch sub.Name {
		case "value":
			// ids are generated lower-case, so the column is its own folded form.
			return operand{expr: alias + ".member_id", attr: sub, folded: true}, nil
		case "type":
			return operand{expr: alias + ".member_type", attr: sub}, nil
		}
		return operand{}, store.Filterf("members.%s is not filterable; members.value and members.type are", sub.Name)
	}}
}

func (c *compiler) compare(o operand, n *filter.AttributeExpression) (string, error) {
	op := n.Operator
	name := pathString(n.AttributePath)
	if op == filter.PR {
		if o.attr.Type == schemas.String || o.attr.Type == schemas.Reference || o.attr.Type == schemas.Binary {
			return "(" + o.expr + " IS NOT NULL AND " + o.expr + " <> '')", nil
		}
		return o.expr + " IS NOT NULL", nil
	}
	if n.CompareValue == nil {
		return "", store.Filterf("%s %s null: compare with a value, or use \"pr\" / \"not (… pr)\" for presence", name, op)
	}
	switch o.attr.Type {
	case schemas.String, schemas.Reference, schemas.Binary:
		s, ok := n.CompareValue.(string)
		if !ok {
			return "", store.Filterf("%s is a string; compare it with a quoted value", name)
		}
		exact := o.attr.CaseExact
		x := o.expr
		if !exact {
			s = strings.ToLower(s)
			if !o.folded {
				x = c.d.Lower(x)
			}
		}
		switch op {
		case filter.EQ:
			return x + " = " + c.bind(s), nil
		case filter.NE:
			return "NOT COALESCE(" + x + " = " + c.bind(s) + ", FALSE)", nil
		case filter.CO, filter.SW, filter.EW:
			sql, arg := c.d.Match(x, string(op), s, exact)
			c.args = append(c.args, arg)
			return sql, nil
		case filter.GT, filter.GE, filter.LT, filter.LE:
			return c.d.Ordered(x) + " " + sqlOp(op) + " " + c.bind(s), nil
		}
	case schemas.Boolean:
		b, ok := n.CompareValue.(bool)
		if !ok {
			return "", store.Filterf("%s is a boolean; compare it with true or false", name)
		}
		var arg any = b
		if o.json {
			arg = c.d.JSONBool(b)
		}
		switch op {
		case filter.EQ:
			return o.expr + " = " + c.bind(arg), nil
		case filter.NE:
			return "NOT COALESCE(" + o.expr + " = " + c.bind(arg) + ", FALSE)", nil
		}
		return "", store.Filterf("%s is a boolean; only eq, ne and pr apply to it", name)
	case schemas.Integer, schemas.Decimal:
		var num float64
		switch v := n.CompareValue.(type) {
		case int:
			num = float64(v)
		case float64:
			num = v
		default:
			return "", store.Filterf("%s is a number; compare it with a number", name)
		}
		x := o.expr
		if o.json {
			x = c.d.JSONNumber(x)
		}
		switch op {
		case filter.EQ:
			return x + " = " + c.bind(num), nil
		case filter.NE:
			return "NOT COALESCE(" + x + " = " + c.bind(num) + ", FALSE)", nil
		case filter.GT, filter.GE, filter.LT, filter.LE:
			return x + " " + sqlOp(op) + " " + c.bind(num), nil
		}
		return "", store.Filterf("%s is a number; co, sw and ew do not apply to it", name)
	case schemas.DateTime:
		s, ok := n.CompareValue.(string)
		if !ok {
			return "", store.Filterf("%s is a dateTime; compare it with a quoted RFC 3339 time", name)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return "", store.Filterf("%s: %q is not an RFC 3339 time such as \"2024-05-01T12:00:00Z\"", name, s)
		}
		if !o.time {
			return "", store.Filterf("%s is not filterable", name)
		}
		t = t.UTC()
		if lo := t.Truncate(time.Microsecond); !lo.Equal(t) {
			// Stored times are whole microseconds (see now), and PostgreSQL's driver
			// drops finer digits from a parameter. Against a time between two
			// microseconds, > and >= are > the one before it, < and <= are <= it,
			// eq never holds and ne always does.
			switch op {
			case filter.EQ:
				return "FALSE", nil
			case filter.NE:
				return "TRUE", nil
			case filter.GT, filter.GE:
				return o.expr + " > " + c.bind(lo), nil
			case filter.LT, filter.LE:
				return o.expr + " <= " + c.bind(lo), nil
			}
		}
		switch op {
		case filter.EQ:
			return o.expr + " = " + c.bind(t), nil
		case filter.NE:
			return "NOT COALESCE(" + o.expr + " = " + c.bind(t) + ", FALSE)", nil
		case filter.GT, filter.GE, filter.LT, filter.LE:
			return o.expr + " " + sqlOp(op) + " " + c.bind(t), nil
		}
		return "", store.Filterf("%s is a dateTime; co, sw and ew do not apply to it", name)
	case schemas.Complex:
		return "", store.Filterf("%s is complex; filter on one of its sub-attributes, or use pr", name)
	}
	return "", store.Filterf("operator %q is not supported", op)
}

func sqlOp(op filter.CompareOperator) string {
	switch op {
	case filter.GT:
		return ">"
	case filter.GE:
		return ">="
	case filter.LT:
		return "<"
	default:
		return "<="
	}
}
