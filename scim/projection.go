package scim

import (
	"strings"

	"github.com/scimd/scimd/schemas"
)

// Projection selects the attributes a response carries: the "attributes" and
// "excludedAttributes" parameters of RFC 7644 §3.9, with the "returned"
// characteristic of RFC 7643 §7 (always-returned attributes cannot be left out). The
// zero value selects the default set. Names are matched case-insensitively, may be
// sub-attributes ("name.givenName", "emails.value") and may carry a schema URN
// ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", or the
// extension URN alone for the whole extension). Names that are no attribute of a
// resource type select nothing there, so one projection serves a root query over
// Users and Groups.
type Projection struct {
	Attributes []string
	Excluded   []string
}

// selection maps a container ("" for the core schema and common attributes, else an
// extension URN) to its attributes ("" for the whole extension), each to the
// sub-attributes chosen (nil for the whole attribute).
type selection map[string]map[string]map[string]bool

func (s selection) add(container, attr, sub string) {
	if s[container] == nil {
		s[container] = map[string]map[string]bool{}
	}
	subs, seen := s[container][attr]
	switch {
	case sub == "":
		s[container][attr] = nil
	case seen && subs == nil:
		// the whole attribute is chosen already
	default:
		if subs == nil {
			subs = map[string]bool{}
			s[container][attr] = subs
		}
		subs[sub] = true
	}
}

// resolve turns the names into selections for one resource type.
func (p Projection) resolve(rt *schemas.ResourceType) (include, exclude selection) {
	parse := func(names []string) selection {
		var sel selection
		for _, n := range names {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if sel == nil {
				sel = selection{}
			}
			if e := rt.Extension(n); e != nil {
				sel.add(e.Schema.ID, "", "")
				continue
			}
			urn, rest := rt.SplitURN(n)
			name, sub, _ := strings.Cut(rest, ".")
			attr, parent, ok := rt.Resolve(urn, name, sub)
			if !ok {
				continue
			}
			top := attr
			subName := ""
			if parent != nil {
				top, subName = parent, attr.Name
			}
			container := ""
			if top.Schema != "" && top.Schema != rt.Schema.ID {
				container = top.Schema
			}
			sel.add(container, top.Name, subName)
		}
		return sel
	}
	return parse(p.Attributes), parse(p.Excluded)
}

// SplitList splits a comma-separated query parameter value.
func SplitList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// Needs reports whether the projection keeps a core attribute, so that derived data
// (members, groups) is read only when it will be returned.
func (p Projection) Needs(rt *schemas.ResourceType, attr string) bool {
	include, exclude := p.resolve(rt)
	if include != nil {
		_, ok := include[""][attr]
		return ok
	}
	if subs, ok := exclude[""][attr]; ok && subs == nil {
		return false
	}
	return true
}

// always lists what every response keeps (RFC 7643 §3.1: id is returned always).
var always = map[string]bool{"id": true, "schemas": true}

// Apply returns out reduced to the projection. out is a rendered resource and may be
// modified.
func (p Projection) Apply(rt *schemas.ResourceType, out map[string]any) map[string]any {
	include, exclude := p.resolve(rt)
	if include == nil && exclude == nil {
		return out
	}
	if include != nil {
		kept := map[string]any{}
		for k := range always {
			if v, ok := out[k]; ok {
				kept[k] = v
			}
		}
		for _, a := range rt.Attributes {
			if a.Returned == schemas.ReturnedAlways && out[a.Name] != nil {
				kept[a.Name] = out[a.Name]
			}
		}
		for container, attrs := range include {
			src, dst := out, kept
			if container != "" {
				ext, _ := out[container].(map[string]any)
				if ext == nil {
					continue
				}
				if _, whole := attrs[""]; whole {
					kept[container] = ext
					continue
				}
				src, dst = ext, map[string]any{}
			}
			for attr, subs := range attrs {
				if v, ok := src[attr]; ok {
					dst[attr] = only(v, subs)
				}
			}
			if container != "" && len(dst) > 0 {
				kept[container] = dst
			}
		}
		out = kept
	}
	for container, attrs := range exclude {
		holder := out
		if container != "" {
			if _, whole := attrs[""]; whole {
				delete(out, container)
				continue
			}
			holder, _ = out[container].(map[string]any)
			if holder == nil {
				continue
			}
		}
		for attr, subs := range attrs {
			if always[attr] || isAlways(rt, container, attr) {
				continue
			}
			if subs == nil {
				delete(holder, attr)
				continue
			}
			holder[attr] = without(holder[attr], subs)
		}
	}
	return out
}

func isAlways(rt *schemas.ResourceType, container, attr string) bool {
	if container != "" {
		return false
	}
	a, _, ok := rt.Resolve("", attr, "")
	return ok && a.Returned == schemas.ReturnedAlways
}

// only keeps the chosen sub-attributes of a complex value or of each element of a
// multi-valued one; nil subs keeps all.
func only(v any, subs map[string]bool) any {
	if subs == nil {
		return v
	}
	pick := func(m map[string]any) map[string]any {
		o := map[string]any{}
		for k, x := range m {
			if subs[k] {
				o[k] = x
			}
		}
		return o
	}
	switch t := v.(type) {
	case map[string]any:
		return pick(t)
	case []any:
		out := make([]any, 0, len(t))
		for _, e := range t {
			if m, ok := e.(map[string]any); ok {
				out = append(out, pick(m))
			}
		}
		return out
	}
	return v
}

// without drops the given sub-attributes from a complex or multi-valued value.
func without(v any, subs map[string]bool) any {
	drop := func(m map[string]any) map[string]any {
		o := map[string]any{}
		for k, x := range m {
			if !subs[k] {
				o[k] = x
			}
		}
		return o
	}
	switch t := v.(type) {
	case map[string]any:
		return drop(t)
	case []any:
		out := make([]any, 0, len(t))
		for _, e := range t {
			if m, ok := e.(map[string]any); ok {
				out = append(out, drop(m))
			}
		}
		return out
	}
	return v
}
