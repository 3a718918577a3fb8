package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/store"
)

// ResourceKind names a resource type: UserKind or GroupKind.
type ResourceKind = store.Kind

// The resource kinds.
const (
	UserKind  = store.KindUser
	GroupKind = store.KindGroup
)

// Types holds the resource types scimd serves, built once from the schemas.
type Types struct {
	User  *schemas.ResourceType
	Group *schemas.ResourceType
}

// NewTypes builds the User and Group resource types.
func NewTypes() Types { return Types{User: schemas.User(), Group: schemas.Group()} }

// Of returns the resource type of kind.
func (t Types) Of(kind ResourceKind) *schemas.ResourceType {
	if kind == GroupKind {
		return t.Group
	}
	return t.User
}

// Resource is a resource as the service hands it out: its attributes in canonical
// form plus the server-managed id, version and times.
type Resource struct {
	Kind         ResourceKind
	ID           string
	Version      int64
	Created      time.Time
	LastModified time.Time
	// Attrs are the resource's attributes, without id, schemas and meta; members and
	// groups carry value, type and display.
	Attrs map[string]any
	rt    *schemas.ResourceType
}

// ETag is the resource's weak entity tag (RFC 7644 §3.14).
func (r *Resource) ETag() string { return fmt.Sprintf(`W/"%d"`, r.Version) }

// Location is the resource's absolute URL under baseURL (…/scim/v2).
func (r *Resource) Location(baseURL string) string {
	return baseURL + r.rt.Endpoint + "/" + url.PathEscape(r.ID)
}

// Render returns the resource's JSON representation (RFC 7643 §3) with meta and $ref
// URLs under baseURL, reduced to what proj selects (RFC 7644 §3.9).
func (r *Resource) Render(baseURL string, proj Projection) map[string]any {
	return proj.Apply(r.rt, r.render(baseURL))
}

func (r *Resource) render(baseURL string) map[string]any {
	out := make(map[string]any, len(r.Attrs)+3)
	for k, v := range r.Attrs {
		out[k] = v
	}
	sch := []string{r.rt.Schema.ID}
	for _, e := range r.rt.Extensions {
		if _, ok := r.Attrs[e.Schema.ID]; ok {
			sch = append(sch, e.Schema.ID)
		}
	}
	out["schemas"] = sch
	out["id"] = r.ID
	out["meta"] = map[string]any{
		"resourceType": string(r.Kind),
		"created":      r.Created.UTC().Format(time.RFC3339Nano),
		"lastModified": r.LastModified.UTC().Format(time.RFC3339Nano),
		"location":     r.Location(baseURL),
		"version":      r.ETag(),
	}
	if ms, ok := r.Attrs["members"].([]any); ok {
		out["members"] = withRefs(ms, baseURL, "")
	}
	if gs, ok := r.Attrs["groups"].([]any); ok {
		out["groups"] = withRefs(gs, baseURL, "/Groups/")
	}
	return out
}

func withRefs(items []any, baseURL, path string) []any {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = withRef(it.(map[string]any), baseURL, path)
	}
	return out
}

// withRef is a copy of the member or group reference m with its $ref: under path,
// or for members ("") under /Users/ or /Groups/ by the member's type.
func withRef(m map[string]any, baseURL, path string) map[string]any {
	c := make(map[string]any, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	if path == "" {
		path = "/Users/"
		if m["type"] == string(GroupKind) {
			path = "/Groups/"
		}
	}
	c["$ref"] = baseURL + path + url.PathEscape(fmt.Sprint(m["value"]))
	return c
}

// fromStore turns a stored resource into a Resource, decoding its document.
func (t Types) fromStore(sr *store.Resource) (*Resource, error) {
	attrs, err := decodeDoc(sr.Doc)
	if err != nil {
		return nil, fmt.Errorf("decode stored %s %s: %w", sr.Kind, sr.ID, err)
	}
	if sr.Kind == GroupKind && len(sr.Members) > 0 {
		ms := make([]any, len(sr.Members))
		for i, m := range sr.Members {
			ms[i] = memberAttr(m)
		}
		attrs["members"] = ms
	}
	if sr.Kind == UserKind && len(sr.Groups) > 0 {
		gs := make([]any, len(sr.Groups))
		for i, g := range sr.Groups {
			e := map[string]any{"value": g.Value, "type": "direct"}
			if g.Display != "" {
				e["display"] = g.Display
			}
			gs[i] = e
		}
		attrs["groups"] = gs
	}
	return &Resource{Kind: sr.Kind, ID: sr.ID, Version: sr.Version, Created: sr.Created, LastModified: sr.LastModified,
		Attrs: attrs, rt: t.Of(sr.Kind)}, nil
}

// memberAttr is one element of a group's "members" (RFC 7643 §4.2), before its
// $ref is added.
func memberAttr(m store.Member) map[string]any {
	e := map[string]any{"value": m.Value, "type": string(m.Type)}
	if m.Display != "" {
		e["display"] = m.Display
	}
	return e
}

func decodeDoc(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return map[string]any{}, nil
	}
	if m, ok := decodeStored(b); ok {
		return m, nil
	}
	m := map[string]any{}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// written is a validated write: the document to store and what is kept apart from it.
type written struct {
	doc      map[string]any
	password *string // set when the request gave one
	members  []store.Member
}

// parseResource validates a POST/PUT body (RFC 7644 §3.3, §3.5.1) against rt:
// known attributes are checked and canonicalised, readOnly ones and unknown ones are
// ignored (RFC 7643 §7), extension attributes are read from their URN object, and
// required attributes must be present. A client's body (client true) must carry
// "schemas" (RFC 7643 §3); a document PATCH produced need not. q decides which
// non-standard forms are read, and records them.
func (t Types) parseResource(kind ResourceKind, body map[string]any, q *Quirks, client bool) (*written, error) {
	rt := t.Of(kind)
	doc := map[string]any{}
	sawSchemas := false
	var foreign []string
	for k, v := range body {
		if strings.EqualFold(k, "schemas") {
			sawSchemas = true
			var err error
			if foreign, err = q.checkSchemas(rt, v); err != nil {
				return nil, err
			}
			continue
		}
		if e := rt.Extension(k); e != nil {
			if err := q.setExtension(doc, e, v); err != nil {
				return nil, err
			}
			continue
		}
		urn, name := rt.SplitURN(k)
		attr, _, ok := rt.Resolve(urn, name, "")
		if !ok || attr.Mutability == schemas.ReadOnly {
			continue
		}
		if urn != "" && client {
			if err := q.use(QuirkURNKey, KindInvalidSyntax, "%q: put extension attributes inside their extension object, {%q: {%q: …}}", k, urn, attr.Name); err != nil {
				return nil, err
			}
		}
		x, err := q.value(attr, v, attr.Name)
		if err != nil {
			return nil, err
		}
		if x == nil {
			continue
		}
		if err := put(doc, rt, attr, x); err != nil {
			return nil, err
		}
	}
	// A foreign schema URN is ignored only as a name: attributes the client put
	// under it have nowhere to go, and are refused rather than lost.
	for _, u := range foreign {
		for k, v := range body {
			if strings.EqualFold(k, u) && !empty(v) {
				return nil, errorf(KindInvalidValue, "%q: %s has no schema %s, so its attributes cannot be stored; send them under %s", k, rt.Name, u, strings.Join(rt.Schemas(), " or "))
			}
		}
	}
	if client && !sawSchemas {
		if err := q.use(QuirkMissingSchemas, KindInvalidSyntax, "schemas is required: [%q]", rt.Schema.ID); err != nil {
			return nil, err
		}
	}
	return finish(rt, kind, doc)
}

// checkSchemas checks a body's "schemas" (RFC 7643 §3) against rt and returns the
// URNs in it that rt does not have, which only a profile accepting
// QuirkUnknownSchema lets through. Such a URN is invalidValue (RFC 7644 §3.12: the
// value is not compatible with the resource schema), not invalidSyntax: the body's
// structure is sound, one of its values is not.
func (q *Quirks) checkSchemas(rt *schemas.ResourceType, v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, errorf(KindInvalidSyntax, "schemas must be an array of schema URNs")
	}
	var foreign []string
	for _, s := range list {
		u, ok := s.(string)
		if !ok {
			return nil, errorf(KindInvalidSyntax, "schemas must be an array of schema URNs")
		}
		if !strings.EqualFold(u, rt.Schema.ID) && rt.Extension(u) == nil {
			if err := q.use(QuirkUnknownSchema, KindInvalidValue, "schemas: %q is not a schema of %s; use %s", u, rt.Name, strings.Join(rt.Schemas(), " or ")); err != nil {
				return nil, err
			}
			foreign = append(foreign, u)
		}
	}
	return foreign, nil
}

// empty reports whether v carries no value (RFC 7643 §2.5: null, or an empty
// array or object).
func empty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	}
	return false
}

func (q *Quirks) setExtension(doc map[string]any, e *schemas.Extension, v any) error {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return errorf(KindInvalidValue, "%s must be an object", e.Schema.ID)
	}
	out := map[string]any{}
	for k, x := range m {
		var attr *schemas.Attribute
		for _, a := range e.Attributes {
			if strings.EqualFold(a.Name, k) {
				attr = a
			}
		}
		if attr == nil || attr.Mutability == schemas.ReadOnly {
			continue
		}
		if _, dup := out[attr.Name]; dup {
			return errorf(KindInvalidSyntax, "%s:%s is given twice", e.Schema.ID, attr.Name)
		}
		y, err := q.value(attr, x, e.Schema.ID+":"+attr.Name)
		if err != nil {
			return err
		}
		if y != nil {
			out[attr.Name] = y
		}
	}
	if len(out) > 0 {
		doc[e.Schema.ID] = out
	}
	return nil
}

// put stores a validated top-level value under its canonical place in doc.
func put(doc map[string]any, rt *schemas.ResourceType, attr *schemas.Attribute, v any) error {
	if attr.Schema != "" && attr.Schema != rt.Schema.ID {
		ext, _ := doc[attr.Schema].(map[string]any)
		if ext == nil {
			ext = map[string]any{}
			doc[attr.Schema] = ext
		}
		if _, dup := ext[attr.Name]; dup {
			return errorf(KindInvalidSyntax, "%s:%s is given twice", attr.Schema, attr.Name)
		}
		ext[attr.Name] = v
		return nil
	}
	if _, dup := doc[attr.Name]; dup {
		return errorf(KindInvalidSyntax, "%s is given twice (attribute names are case-insensitive)", attr.Name)
	}
	doc[attr.Name] = v
	return nil
}

// finish takes the write-only and relational parts out of doc, normalises a User's
// userName and checks required attributes.
func finish(rt *schemas.ResourceType, kind ResourceKind, doc map[string]any) (*written, error) {
	w := &written{doc: doc}
	if kind == UserKind {
		if s, ok := doc["userName"].(string); ok {
			doc["userName"] = NormalizeUserName(s)
		}
	}
	if p, ok := doc["password"].(string); ok {
		w.password = &p
	}
	delete(doc, "password")
	delete(doc, "groups")
	if kind == GroupKind {
		if ms, ok := doc["members"].([]any); ok {
			for i, m := range ms {
				v, _ := m.(map[string]any)["value"].(string)
				if v == "" {
					return nil, errorf(KindInvalidValue, "members[%d].value is required: the id of a User or Group", i)
				}
				w.members = append(w.members, store.Member{Value: strings.ToLower(v)})
			}
		}
		delete(doc, "members")
	}
	for _, a := range rt.Attributes {
		if !a.Required || a.Mutability == schemas.ReadOnly {
			continue
		}
		if s, ok := doc[a.Name].(string); !ok || strings.TrimSpace(s) == "" {
			if _, present := doc[a.Name]; !present || ok {
				return nil, errorf(KindInvalidValue, "%s is required and must not be empty", a.Name)
			}
		}
	}
	return w, nil
}

// columns copies the indexed attributes of w into sr.
func (w *written) columns(sr *store.Resource) error {
	doc, err := json.Marshal(w.doc)
	if err != nil {
		return err
	}
	sr.Doc = doc
	sr.ExternalID = strPtr(w.doc["externalId"])
	sr.DisplayName = strPtr(w.doc["displayName"])
	if sr.Kind == UserKind {
		sr.UserName, _ = w.doc["userName"].(string)
		sr.Active = nil
		if b, ok := w.doc["active"].(bool); ok {
			sr.Active = &b
		}
	}
	return nil
}

func strPtr(v any) *string {
	if s, ok := v.(string); ok {
		return &s
	}
	return nil
}

// NormalizeUserName is the form a userName is stored, compared and looked up in:
// Unicode Normalization Form C (UAX #15). RFC 7643 §4.1.1 makes userName unique, and
// a precomposed "é" (U+00E9) and "e" followed by a combining acute accent (U+0301)
// are one name to a person; without one form they would be two users who look the
// same. Case is folded by the database's unique index, not here.
func NormalizeUserName(s string) string {
	return norm.NFC.String(s)
}
