package scim

import (
	"context"
	"reflect"
	"strconv"
	"strings"

	"github.com/scim2/filter-parser/v2"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/store"
)

// PatchOp is one operation of a PATCH request (RFC 7644 §3.5.2).
type PatchOp struct {
	Op    string // add, replace or remove, lower-cased
	Path  string
	Value any
}

// ParsePatch reads a PatchOp message body (RFC 7644 §3.5.2). Operation names in
// another case ("Replace") and a missing schemas are read when q accepts them.
func ParsePatch(body map[string]any, maxOps int, q *Quirks) ([]PatchOp, error) {
	var rawOps any
	sawSchemas := false
	for k, v := range body {
		switch {
		case strings.EqualFold(k, "schemas"):
			sawSchemas = true
			list, _ := v.([]any)
			found := false
			for _, s := range list {
				if u, _ := s.(string); strings.EqualFold(u, schemas.PatchOpURN) {
					found = true
				}
			}
			if !found {
				return nil, errorf(KindInvalidSyntax, "schemas must be [%q]", schemas.PatchOpURN)
			}
		case strings.EqualFold(k, "Operations"):
			rawOps = v
		}
	}
	if !sawSchemas {
		if err := q.use(QuirkMissingSchemas, KindInvalidSyntax, "schemas is required: [%q]", schemas.PatchOpURN); err != nil {
			return nil, err
		}
	}
	list, ok := rawOps.([]any)
	if !ok || len(list) == 0 {
		return nil, errorf(KindInvalidSyntax, "Operations must be a non-empty array of {\"op\", \"path\", \"value\"}")
	}
	if maxOps > 0 && len(list) > maxOps {
		return nil, errorf(KindTooMany, "the request has %d operations; the limit is %d", len(list), maxOps)
	}
	ops := make([]PatchOp, 0, len(list))
	for i, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, errorf(KindInvalidSyntax, "Operations[%d] must be an object", i)
		}
		var op PatchOp
		for k, v := range m {
			switch strings.ToLower(k) {
			case "op":
				s, _ := v.(string)
				op.Op = strings.ToLower(s)
				if s != op.Op {
					if err := q.use(QuirkOpCase, KindInvalidSyntax, "Operations[%d].op %q must be lower case: %q", i, s, op.Op); err != nil {
						return nil, err
					}
				}
			case "path":
				s, ok := v.(string)
				if !ok && v != nil {
					return nil, errorf(KindInvalidPath, "Operations[%d].path must be a string", i)
				}
				op.Path = strings.TrimSpace(s)
			case "value":
				op.Value = v
			}
		}
		switch op.Op {
		case "add", "replace", "remove":
		default:
			return nil, errorf(KindInvalidSyntax, "Operations[%d].op must be add, replace or remove", i)
		}
		if op.Op == "remove" && op.Path == "" {
			return nil, errorf(KindNoTarget, "Operations[%d]: remove needs a path (RFC 7644 §3.5.2.2)", i)
		}
		if op.Op != "remove" && op.Value == nil {
			return nil, errorf(KindInvalidValue, "Operations[%d]: %s needs a value", i, op.Op)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// Patch applies ops to a resource in one transaction (RFC 7644 §3.5.2): all of them
// or none. Membership operations on groups become row-level changes, so their cost
// does not depend on the size of the group.
func (s *Service) Patch(ctx context.Context, tenantID string, kind ResourceKind, id string, ops []PatchOp, ifMatch string, proj Projection) (*Resource, error) {
	return s.PatchQueued(ctx, tenantID, kind, id, ops, ifMatch, proj, nil)
}

// PatchQueued is Patch that also queues msgs in the outbox in the same transaction.
func (s *Service) PatchQueued(ctx context.Context, tenantID string, kind ResourceKind, id string, ops []PatchOp, ifMatch string, proj Projection, msgs []Message) (*Resource, error) {
	nid, err := s.resourceID(kind, id)
	if err != nil {
		return nil, err
	}
	rt := s.types.Of(kind)
	written, err := s.st.Update(ctx, tenantID, kind, nid, func(cur *store.Resource) ([]store.MemberChange, error) {
		if err := checkIfMatch(ifMatch, cur.Version); err != nil {
			return nil, err
		}
		doc, err := decodeDoc(cur.Doc)
		if err != nil {
			return nil, err
		}
		p := &patcher{rt: rt, kind: kind, doc: doc, q: QuirksFrom(ctx)}
		for i, op := range ops {
			if err := p.apply(op); err != nil {
				e := AsError(err)
				e.Detail = "Operations[" + strconv.Itoa(i) + "]: " + e.Detail
				return nil, e
			}
		}
		w, err := s.types.parseResource(kind, p.doc, p.q, false)
		if err != nil {
			return nil, err
		}
		if len(msgs) == 0 && w.password == nil && !(p.clearPassword && cur.PasswordHash != "") {
			// RFC 7644 §3.5.2.1: an add of a value already there (and so a replace
			// with an equal value, a remove of an absent one) does not change the
			// resource, its version or its modification time. Memberships the
			// operations name are left to the store, which writes nothing if they
			// change nothing either.
			before, err := decodeDoc(cur.Doc)
			if err != nil {
				return nil, err
			}
			if sameValue(before, w.doc) {
				return p.members, store.ErrUnchanged
			}
		}
		if err := w.columns(cur); err != nil {
			return nil, err
		}
		if err := s.checkSize(cur); err != nil {
			return nil, err
		}
		cur.Outbox = append([]Message(nil), msgs...)
		switch {
		case p.clearPassword:
			cur.PasswordHash = ""
		case w.password != nil:
			if cur.PasswordHash, err = s.hash(*w.password); err != nil {
				return nil, err
			}
		}
		return p.members, nil
	})
	if err != nil {
		return nil, s.writeErr(kind, id, err)
	}
	return s.answer(ctx, written, proj)
}

// sameValue reports whether a and b are the same JSON value: numbers by value
// (a stored document reads back with json.Number where validation gives int64 or
// float64), objects by their members, arrays element by element, in order.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case nil, string, bool:
		return a == b
	}
	switch b.(type) {
	case nil, string, bool, map[string]any, []any:
		return false
	}
	xf, ok := number(a)
	yf, ok2 := number(b)
	return ok && ok2 && xf == yf
}

type patcher struct {
	rt            *schemas.ResourceType
	kind          ResourceKind
	doc           map[string]any
	members       []store.MemberChange
	memberValues  int // named by all operations so far, at most MaxMembersPerRequest
	clearPassword bool
	q             *Quirks
}

func (p *patcher) apply(op PatchOp) error {
	if op.Path == "" {
		obj, ok := op.Value.(map[string]any)
		if !ok {
			return errorf(KindInvalidValue, "%s without a path needs an object of attributes as its value", op.Op)
		}
		for k, v := range obj {
			if e := p.rt.Extension(k); e != nil {
				ext, ok := v.(map[string]any)
				if !ok {
					return errorf(KindInvalidValue, "%s must be an object", e.Schema.ID)
				}
				for ek, ev := range ext {
					if err := p.applyPath(op.Op, e.Schema.ID+":"+ek, ev); err != nil {
						return err
					}
				}
				continue
			}
			if strings.EqualFold(k, "schemas") || strings.EqualFold(k, "id") || strings.EqualFold(k, "meta") {
				continue // readOnly: ignored, as on PUT
			}
			// RFC 7644 §3.5.2.1/3: without a path the value holds attributes; a key
			// that is itself a path is a client's shorthand.
			if urn, rest := p.rt.SplitURN(k); urn != "" {
				if err := p.q.use(QuirkURNKey, KindInvalidPath, "%q: without a path, give extension attributes inside {%q: {…}}", k, urn); err != nil {
					return err
				}
			} else if strings.Contains(rest, ".") {
				if err := p.q.use(QuirkDottedKey, KindInvalidPath, "%q: without a path, give attributes as objects ({\"name\": {\"givenName\": …}}), or use the path", k); err != nil {
					return err
				}
			}
			if err := p.applyPath(op.Op, k, v); err != nil {
				return err
			}
		}
		return nil
	}
	return p.applyPath(op.Op, op.Path, op.Value)
}

func (p *patcher) applyPath(op, rawPath string, value any) error {
	if e := p.rt.Extension(rawPath); e != nil {
		return p.applyExtension(op, e, value)
	}
	path, err := ParsePath(rawPath)
	if err != nil {
		return err
	}
	ap := path.AttributePath
	top, _, ok := p.rt.Resolve(ap.URI(), ap.AttributeName, "")
	if !ok {
		return errorf(KindInvalidPath, "%q names no attribute of %s", rawPath, p.rt.Name)
	}
	// The sub-attribute is either name.sub or name[filter].sub.
	subName := ap.SubAttributeName()
	if path.SubAttribute != nil {
		if subName != "" {
			return errorf(KindInvalidPath, "%q names two sub-attributes", rawPath)
		}
		subName = *path.SubAttribute
	}
	var sub *schemas.Attribute
	if subName != "" {
		if sub = top.Sub(subName); sub == nil {
			return errorf(KindInvalidPath, "%s has no sub-attribute %q", top.Name, subName)
		}
	}
	if top.Mutability == schemas.ReadOnly || sub != nil && sub.Mutability == schemas.ReadOnly {
		return errorf(KindMutability, "%s is readOnly", rawPath)
	}
	if name := readOnlySubIn(top, sub, value); name != "" {
		return errorf(KindMutability, "%s: %s.%s is readOnly", rawPath, top.Name, name)
	}
	if path.ValueExpression != nil && !top.MultiValued {
		return errorf(KindInvalidPath, "%q: a [...] filter applies to multi-valued attributes only", rawPath)
	}
	if p.kind == GroupKind && top.Schema == p.rt.Schema.ID && top.Name == "members" {
		return p.applyMembers(op, path, sub, value)
	}
	if top.Name == "password" && op == "remove" {
		p.clearPassword = true
		return nil
	}
	holder := p.holder(top, op != "remove")
	if holder == nil {
		return nil // removing from an absent extension: nothing to do
	}
	switch {
	case !top.MultiValued && sub == nil:
		return p.setSingle(holder, top, op, value)
	case !top.MultiValued:
		obj, _ := holder[top.Name].(map[string]any)
		if obj == nil {
			if op == "remove" {
				return nil
			}
			obj = map[string]any{}
			holder[top.Name] = obj
		}
		if op == "remove" {
			delete(obj, sub.Name)
			return nil
		}
		obj[sub.Name] = value
		return nil
	}
	return p.applyMulti(holder, top, sub, op, path.ValueExpression, value)
}

// readOnlySubIn returns the name of a readOnly sub-attribute of top that value, the
// value of an operation on top as a whole, gives (such as {"displayName": …} for the
// enterprise manager, RFC 7643 §4.3), or "". RFC 7644 §3.5.2: a client MUST NOT
// modify a readOnly attribute, whether it names it in the path or in the value.
func readOnlySubIn(top, sub *schemas.Attribute, value any) string {
	if sub != nil || top.Type != schemas.Complex {
		return ""
	}
	for _, it := range asList(value) {
		obj, _ := it.(map[string]any)
		for k := range obj {
			if s := top.Sub(k); s != nil && s.Mutability == schemas.ReadOnly {
				return s.Name
			}
		}
	}
	return ""
}

// subName is the schema's spelling of the sub-attribute k of top (names are
// case-insensitive, RFC 7643 §2.1), so that a value merged into a stored one
// replaces its sub-attribute rather than naming it twice; an unknown k is kept as
// given, for validation to ignore.
func subName(top *schemas.Attribute, k string) string {
	if s := top.Sub(k); s != nil {
		return s.Name
	}
	return k
}

// applyExtension applies op to a whole schema extension, named by its URN as the
// path. RFC 7644 §3.5.2 defines a path as an attribute path, and scimd reads an
// extension's URN as the path of the extension's complex value (the key it has in a
// resource, RFC 7643 §3.3): add merges the value's attributes into the extension,
// attribute by attribute as a path-less add does; replace makes the value the whole
// extension; remove drops the extension, and with it its URN from "schemas".
func (p *patcher) applyExtension(op string, e *schemas.Extension, value any) error {
	urn := e.Schema.ID
	if op == "remove" {
		delete(p.doc, urn)
		return nil
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return errorf(KindInvalidValue, "%s: the value of a whole extension must be an object of its attributes", urn)
	}
	if op == "replace" {
		delete(p.doc, urn)
	}
	for k, v := range obj {
		if err := p.applyPath(op, urn+":"+k, v); err != nil {
			return err
		}
	}
	return nil
}

// holder returns the map that holds top: the document, or the extension's object.
func (p *patcher) holder(top *schemas.Attribute, create bool) map[string]any {
	if top.Schema == "" || top.Schema == p.rt.Schema.ID {
		return p.doc
	}
	ext, _ := p.doc[top.Schema].(map[string]any)
	if ext == nil && create {
		ext = map[string]any{}
		p.doc[top.Schema] = ext
	}
	return ext
}

// setSingle applies op to a single-valued attribute. Replacing or adding a complex
// value merges its sub-attributes (RFC 7644 §3.5.2.1, §3.5.2.3).
func (p *patcher) setSingle(holder map[string]any, top *schemas.Attribute, op string, value any) error {
	if op == "remove" {
		delete(holder, top.Name)
		return nil
	}
	if top.Type != schemas.Complex {
		holder[top.Name] = value
		return nil
	}
	obj, ok := value.(map[string]any)
	if !ok {
		// A bare id where a reference object belongs (e.g. manager: "id").
		if s, isStr := value.(string); isStr && top.Sub("value") != nil {
			if err := p.q.use(QuirkBareReference, KindInvalidValue, "%s must be an object such as {\"value\": %q}", top.Name, s); err != nil {
				return err
			}
			obj = map[string]any{"value": s}
		} else {
			return errorf(KindInvalidValue, "%s must be an object", top.Name)
		}
	}
	cur, _ := holder[top.Name].(map[string]any)
	if cur == nil {
		cur = map[string]any{}
	}
	for k, v := range obj {
		cur[subName(top, k)] = v
	}
	holder[top.Name] = cur
	return nil
}

func (p *patcher) applyMulti(holder map[string]any, top, sub *schemas.Attribute, op string, f filter.Expression, value any) error {
	list, _ := holder[top.Name].([]any)
	var matched []int
	if f != nil {
		if err := checkValueFilter(top, f); err != nil {
			return &Error{Kind: KindInvalidPath, Detail: AsError(err).Detail}
		}
		for i, it := range list {
			obj, _ := it.(map[string]any)
			ok, err := evalExpr(p.rt, nil, f, &elem{attr: top, obj: obj})
			if err != nil {
				return &Error{Kind: KindInvalidPath, Detail: AsError(err).Detail}
			}
			if ok {
				matched = append(matched, i)
			}
		}
	} else {
		for i := range list {
			matched = append(matched, i)
		}
	}
	if _, isList := value.([]any); !isList && value != nil && sub == nil && f == nil {
		if err := p.q.use(QuirkSingleValue, KindInvalidValue, "%s is multi-valued: give its values as an array", top.Name); err != nil {
			return err
		}
	}
	switch {
	case op == "remove" && sub == nil && f == nil:
		delete(holder, top.Name)
	case op == "remove" && sub == nil:
		keep := list[:0:0]
		for i, it := range list {
			if !contains(matched, i) {
				keep = append(keep, it)
			}
		}
		holder[top.Name] = keep
	case op == "remove":
		for _, i := range matched {
			if obj, ok := list[i].(map[string]any); ok {
				delete(obj, sub.Name)
			}
		}
	case sub == nil && f == nil && op == "replace":
		if n := len(asList(value)); n > MaxMultiValues {
			return errorf(KindInvalidValue, "%s: %d values; the limit is %d", top.Name, n, MaxMultiValues)
		}
		holder[top.Name] = asList(value)
	case sub == nil && f == nil: // add: append values not already present
		// Checked first, so that an add compares few values with each new one.
		if n := len(asList(value)); n > MaxMultiValues {
			return errorf(KindInvalidValue, "%s: %d values; the limit is %d", top.Name, n, MaxMultiValues)
		}
		var added []int
		for _, v := range asList(value) {
			if !containsValue(list, v) {
				list = append(list, v)
				added = append(added, len(list)-1)
			}
		}
		if len(list) > MaxMultiValues {
			return errorf(KindInvalidValue, "%s: adding %d values to %d exceeds the limit of %d", top.Name, len(added), len(list)-len(added), MaxMultiValues)
		}
		holder[top.Name] = newestPrimary(list, added)
	case len(matched) == 0 && op == "replace" && !p.q.Accepts(QuirkValuePathUpsert):
		// RFC 7644 §3.5.2.3: a filter that matches nothing has no target.
		return p.q.use(QuirkValuePathUpsert, KindNoTarget, "%s: the filter matches no value to replace", top.Name)
	case len(matched) == 0:
		// add where nothing matched: create the value the filter describes, if it
		// describes one (type eq "work" and ...), else there is no target.
		eqs, ok := equalities(f)
		if !ok {
			return errorf(KindNoTarget, "%s: the filter matches no value", top.Name)
		}
		obj := make(map[string]any, len(eqs))
		for k, x := range eqs {
			obj[subName(top, k)] = x
		}
		if op == "replace" {
			if err := p.q.use(QuirkValuePathUpsert, KindNoTarget, "%s: the filter matches no value to replace", top.Name); err != nil {
				return err
			}
		}
		if sub != nil {
			obj[sub.Name] = value
		} else if v, ok := value.(map[string]any); ok {
			for k, x := range v {
				obj[subName(top, k)] = x
			}
		} else {
			return errorf(KindInvalidValue, "%s: the value must be an object", top.Name)
		}
		list = append(list, obj)
		holder[top.Name] = newestPrimary(list, []int{len(list) - 1})
	default:
		for _, i := range matched {
			obj, _ := list[i].(map[string]any)
			if obj == nil {
				obj = map[string]any{}
			}
			switch v := value.(type) {
			case map[string]any:
				if sub != nil {
					obj[sub.Name] = v
					break
				}
				if op == "replace" {
					obj = map[string]any{}
				}
				for k, x := range v {
					obj[subName(top, k)] = x
				}
			default:
				if sub == nil {
					return errorf(KindInvalidValue, "%s: the value must be an object", top.Name)
				}
				obj[sub.Name] = v
			}
			list[i] = obj
		}
		holder[top.Name] = newestPrimary(list, matched)
	}
	return nil
}

// newestPrimary keeps RFC 7643 §2.4 after a change: if a value the operation wrote
// is primary, it is the only primary one; the values that were primary before lose
// the flag.
func newestPrimary(list []any, touched []int) []any {
	winner := -1
	for _, i := range touched {
		if m, ok := list[i].(map[string]any); ok && isTrue(m["primary"]) {
			winner = i
		}
	}
	if winner < 0 {
		return list
	}
	for i, it := range list {
		if m, ok := it.(map[string]any); ok && i != winner && isTrue(m["primary"]) {
			delete(m, "primary")
		}
	}
	return list
}

func isTrue(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		return strings.EqualFold(t, "true")
	}
	return false
}

// equalities returns the value an eq-only conjunction such as
// type eq "work" and primary eq true describes, or false for any other filter.
func equalities(f filter.Expression) (map[string]any, bool) {
	out := map[string]any{}
	var walk func(filter.Expression) bool
	walk = func(e filter.Expression) bool {
		switch n := e.(type) {
		case *filter.LogicalExpression:
			return n.Operator == filter.AND && walk(n.Left) && walk(n.Right)
		case *filter.AttributeExpression:
			if n.Operator != filter.EQ || n.AttributePath.SubAttribute != nil {
				return false
			}
			out[n.AttributePath.AttributeName] = n.CompareValue
			return true
		}
		return false
	}
	return out, f != nil && walk(f)
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func containsValue(list []any, v any) bool {
	for _, x := range list {
		if reflect.DeepEqual(x, v) {
			return true
		}
	}
	return false
}

// applyMembers turns an operation on Group.members into membership changes.
func (p *patcher) applyMembers(op string, path filter.Path, sub *schemas.Attribute, value any) error {
	if sub != nil {
		return errorf(KindMutability, "members.%s is immutable; remove the member and add it again instead", sub.Name)
	}
	f := path.ValueExpression
	if f != nil {
		members, _, _ := p.rt.Resolve("", "members", "")
		if err := checkValueFilter(members, f); err != nil {
			return &Error{Kind: KindInvalidPath, Detail: AsError(err).Detail}
		}
	}
	var ids []store.Member
	if value != nil {
		var err error
		if ids, err = p.parseMembers(value); err != nil {
			return err
		}
		if p.memberValues += len(ids); p.memberValues > MaxMembersPerRequest {
			return errorf(KindInvalidValue, "the request names %d or more members; the limit is %d per request, so send larger changes in several requests", p.memberValues, MaxMembersPerRequest)
		}
	}
	switch {
	case op == "remove" && f != nil:
		p.members = append(p.members, store.MemberChange{RemoveWhere: f})
	case op == "remove" && len(ids) > 0:
		// A value list names the members to remove, never "all of them".
		if err := p.q.use(QuirkRemoveWithValue, KindInvalidValue, "remove takes no value (RFC 7644 §3.5.2.2); to remove some members use the path members[value eq \"…\"]"); err != nil {
			return err
		}
		rm := make([]string, len(ids))
		for i, m := range ids {
			rm[i] = m.Value
		}
		p.members = append(p.members, store.MemberChange{Remove: rm})
	case op == "remove":
		p.members = append(p.members, store.MemberChange{Replace: true})
	case op == "replace" && f != nil:
		p.members = append(p.members, store.MemberChange{RemoveWhere: f, Add: ids})
	case op == "replace":
		p.members = append(p.members, store.MemberChange{Replace: true, Add: ids})
	default: // add
		p.members = append(p.members, store.MemberChange{Add: ids})
	}
	return nil
}

func (p *patcher) parseMembers(v any) ([]store.Member, error) {
	var out []store.Member
	if _, isList := v.([]any); !isList {
		if err := p.q.use(QuirkSingleValue, KindInvalidValue, "members must be an array"); err != nil {
			return nil, err
		}
	}
	for i, it := range asList(v) {
		var id string
		switch m := it.(type) {
		case string:
			if err := p.q.use(QuirkBareMember, KindInvalidValue, "members value [%d] must be an object such as {\"value\": %q}", i, m); err != nil {
				return nil, err
			}
			id = m
		case map[string]any:
			for k, x := range m {
				if strings.EqualFold(k, "value") {
					id, _ = x.(string)
				}
			}
		}
		if id == "" {
			return nil, errorf(KindInvalidValue, "members value [%d] needs a \"value\": the id of a User or Group", i)
		}
		out = append(out, store.Member{Value: strings.ToLower(id)})
	}
	return out, nil
}
