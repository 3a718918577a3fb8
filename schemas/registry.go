package schemas

import (
	"strings"

	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
)

// Type is an attribute's data type (RFC 7643 §2.3).
type Type string

// The data types of RFC 7643 §2.3.
const (
	String    Type = "string"
	Boolean   Type = "boolean"
	Decimal   Type = "decimal"
	Integer   Type = "integer"
	DateTime  Type = "dateTime"
	Reference Type = "reference"
	Complex   Type = "complex"
	Binary    Type = "binary"
)

// Mutability and returned characteristics (RFC 7643 §7).
const (
	ReadOnly  = "readOnly"
	ReadWrite = "readWrite"
	Immutable = "immutable"
	WriteOnly = "writeOnly"

	ReturnedAlways  = "always"
	ReturnedNever   = "never"
	ReturnedDefault = "default"
	ReturnedRequest = "request"
)

// Attribute is one attribute definition with the characteristics scimd acts on.
type Attribute struct {
	Name            string
	Type            Type
	MultiValued     bool
	CaseExact       bool
	Required        bool
	Mutability      string
	Returned        string
	Uniqueness      string
	CanonicalValues []string
	SubAttributes   []*Attribute
	// Schema is the URN of the schema the attribute belongs to ("" for the common
	// attributes id, externalId and meta of RFC 7643 §3.1).
	Schema string
}

// Sub returns the sub-attribute named name, matched case-insensitively.
func (a *Attribute) Sub(name string) *Attribute {
	return find(a.SubAttributes, name)
}

func find(attrs []*Attribute, name string) *Attribute {
	for _, s := range attrs {
		if strings.EqualFold(s.Name, name) {
			return s
		}
	}
	return nil
}

func fromElimity(a schema.CoreAttribute, urn string) *Attribute {
	out := &Attribute{
		Name:            a.Name(),
		Type:            Type(a.AttributeType()),
		MultiValued:     a.MultiValued(),
		CaseExact:       a.CaseExact(),
		Required:        a.Required(),
		Mutability:      a.Mutability(),
		Returned:        a.Returned(),
		Uniqueness:      a.Uniqueness(),
		CanonicalValues: a.CanonicalValues(),
		Schema:          urn,
	}
	for _, s := range a.SubAttributes() {
		out.SubAttributes = append(out.SubAttributes, fromElimity(s, urn))
	}
	return out
}

func fromSchema(s schema.Schema) []*Attribute {
	out := make([]*Attribute, 0, len(s.Attributes))
	for _, a := range s.Attributes {
		out = append(out, fromElimity(a, s.ID))
	}
	return out
}

// Extension is a schema extension of a resource type (RFC 7643 §6).
type Extension struct {
	Schema     schema.Schema
	Required   bool
	Attributes []*Attribute
}

// ResourceType describes one SCIM resource type (RFC 7643 §6) and resolves its
// attribute paths.
type ResourceType struct {
	Name        string
	Endpoint    string
	Description string
	Schema      schema.Schema
	Extensions  []Extension
	// Attributes are the core schema's attributes followed by the common ones.
	Attributes []*Attribute
}

// Common returns the common attributes of RFC 7643 §3.1: id, externalId and meta.
func Common() []*Attribute {
	var out []*Attribute
	for _, a := range schema.CommonAttributes() {
		if a.Name() == "schemas" {
			continue
		}
		out = append(out, fromElimity(a, ""))
	}
	return out
}

func newResourceType(name, endpoint, desc string, core schema.Schema, exts ...schema.Schema) *ResourceType {
	rt := &ResourceType{Name: name, Endpoint: endpoint, Description: desc, Schema: core}
	rt.Attributes = append(fromSchema(core), Common()...)
	for _, e := range exts {
		rt.Extensions = append(rt.Extensions, Extension{Schema: e, Attributes: fromSchema(e)})
	}
	return rt
}

// User is the User resource type with the EnterpriseUser extension (RFC 7643 §4.1, §4.3).
func User() *ResourceType {
	ent := schema.ExtensionEnterpriseUser()
	ent.Name = optional.NewString("EnterpriseUser") // RFC 7643 §8.7.1 names it so
	return newResourceType("User", "/Users", "User Account",
		schema.CoreUserSchema(), ent, ScimdUser())
}

// Group is the Group resource type (RFC 7643 §4.2).
func Group() *ResourceType {
	return newResourceType("Group", "/Groups", "Group", schema.CoreGroupSchema())
}

// Extension returns the extension with the given URN (case-insensitive), or nil.
func (rt *ResourceType) Extension(urn string) *Extension {
	for i := range rt.Extensions {
		if strings.EqualFold(rt.Extensions[i].Schema.ID, urn) {
			return &rt.Extensions[i]
		}
	}
	return nil
}

// Schemas returns the URNs of the core schema and every extension.
func (rt *ResourceType) Schemas() []string {
	out := []string{rt.Schema.ID}
	for _, e := range rt.Extensions {
		out = append(out, e.Schema.ID)
	}
	return out
}

// Resolve finds the attribute an attribute path names (RFC 7644 §3.10): an optional
// schema URN, an attribute name and an optional sub-attribute name, all matched
// case-insensitively. It returns the attribute named (the sub-attribute when one is
// given) and, for a sub-attribute, its parent; ok is false when nothing matches.
func (rt *ResourceType) Resolve(urn, name, sub string) (attr, parent *Attribute, ok bool) {
	var top *Attribute
	switch {
	case urn == "" || strings.EqualFold(urn, rt.Schema.ID):
		top = find(rt.Attributes, name)
	default:
		e := rt.Extension(urn)
		if e == nil {
			return nil, nil, false
		}
		top = find(e.Attributes, name)
	}
	if top == nil {
		return nil, nil, false
	}
	if sub == "" {
		return top, nil, true
	}
	s := top.Sub(sub)
	if s == nil {
		return nil, nil, false
	}
	return s, top, true
}

// SplitURN splits a full attribute name such as
// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value" into the
// schema URN of this resource type it starts with and the rest. A name without a known
// URN prefix is returned whole with an empty URN.
func (rt *ResourceType) SplitURN(full string) (urn, rest string) {
	for _, id := range rt.Schemas() {
		if len(full) > len(id) && strings.EqualFold(full[:len(id)], id) && full[len(id)] == ':' {
			return id, full[len(id)+1:]
		}
	}
	return "", full
}
