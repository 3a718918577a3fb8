package scim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/scimd/scimd/schemas"
)

const entURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// patchDoc applies ops to the stored document doc of kind as Service.Patch does
// (operations, then validation) and returns the document that would be stored,
// re-read as JSON so that it compares with a literal.
func patchDoc(t *testing.T, kind ResourceKind, doc string, ops ...PatchOp) (map[string]any, error) {
	t.Helper()
	types := NewTypes()
	d, err := decodeDoc([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := &patcher{rt: types.Of(kind), kind: kind, doc: d, q: NewQuirks(ProfileStrict)}
	for _, op := range ops {
		if err := p.apply(op); err != nil {
			return nil, err
		}
	}
	w, err := types.parseResource(kind, p.doc, p.q, false)
	if err != nil {
		return nil, err
	}
	return jsonObject(t, w.doc), nil
}

// jsonObject is v as encoding/json reads it back: numbers float64, objects maps.
func jsonObject(t *testing.T, v any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

// TestPatchWholeExtension: a path that is an extension's URN names the extension's
// object (scimd's reading of RFC 7644 §3.5.2): add merges into it, replace replaces
// it whole, remove drops it; a value that is not an object is invalidValue.
func TestPatchWholeExtension(t *testing.T) {
	withBoth := `{"userName":"bjensen",` +
		`"` + entURN + `":{"employeeNumber":"701984","department":"Tours","manager":{"value":"m-1","displayName":"Boss"}},` +
		`"` + schemas.ScimdUserURN + `":{"credits":3,"emailVerified":true}}`
	cases := []struct {
		name string
		ops  []PatchOp
		// want is the extension object after the PATCH (nil: absent); wantKind the error.
		urn      string
		want     string
		wantKind ErrorKind
	}{
		{name: "add merges", ops: []PatchOp{{Op: "add", Path: entURN, Value: mustJSON(t, `{"department":"X"}`)}},
			urn: entURN, want: `{"employeeNumber":"701984","department":"X","manager":{"value":"m-1"}}`},
		{name: "add merges manager sub-attributes", ops: []PatchOp{{Op: "add", Path: entURN, Value: mustJSON(t, `{"manager":{"value":"m-2"}}`)}},
			urn: entURN, want: `{"employeeNumber":"701984","department":"Tours","manager":{"value":"m-2"}}`},
		{name: "replace replaces whole", ops: []PatchOp{{Op: "replace", Path: entURN, Value: mustJSON(t, `{"department":"X"}`)}},
			urn: entURN, want: `{"department":"X"}`},
		{name: "replace with manager", ops: []PatchOp{{Op: "replace", Path: entURN, Value: mustJSON(t, `{"manager":{"value":"m-2"}}`)}},
			urn: entURN, want: `{"manager":{"value":"m-2"}}`},
		{name: "urn in another case", ops: []PatchOp{{Op: "replace", Path: "URN:ietf:params:scim:schemas:extension:enterprise:2.0:user", Value: mustJSON(t, `{"department":"X"}`)}},
			urn: entURN, want: `{"department":"X"}`},
		{name: "remove", ops: []PatchOp{{Op: "remove", Path: entURN}}, urn: entURN},
		{name: "scimd add", ops: []PatchOp{{Op: "add", Path: schemas.ScimdUserURN, Value: mustJSON(t, `{"credits":5}`)}},
			urn: schemas.ScimdUserURN, want: `{"credits":5,"emailVerified":true}`},
		{name: "scimd replace", ops: []PatchOp{{Op: "replace", Path: schemas.ScimdUserURN, Value: mustJSON(t, `{"credits":5}`)}},
			urn: schemas.ScimdUserURN, want: `{"credits":5}`},
		{name: "scimd remove", ops: []PatchOp{{Op: "remove", Path: schemas.ScimdUserURN}}, urn: schemas.ScimdUserURN},
		{name: "value not an object", ops: []PatchOp{{Op: "replace", Path: entURN, Value: "X"}}, wantKind: KindInvalidValue},
		{name: "add value a list", ops: []PatchOp{{Op: "add", Path: entURN, Value: []any{map[string]any{"department": "X"}}}}, wantKind: KindInvalidValue},
		{name: "attribute of the wrong type", ops: []PatchOp{{Op: "replace", Path: entURN, Value: mustJSON(t, `{"department":5}`)}}, wantKind: KindInvalidValue},
		{name: "unknown attribute", ops: []PatchOp{{Op: "add", Path: entURN, Value: mustJSON(t, `{"nickname":"x"}`)}}, wantKind: KindInvalidPath},
		{name: "readOnly sub-attribute by path", ops: []PatchOp{{Op: "add", Path: entURN, Value: mustJSON(t, `{"manager.displayName":"x"}`)}}, wantKind: KindMutability},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := patchDoc(t, UserKind, withBoth, c.ops...)
			if c.wantKind != KindInternal {
				if err == nil || AsError(err).Kind != c.wantKind {
					t.Fatalf("error %v, want kind %d", err, c.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ext, present := got[c.urn]
			if c.want == "" {
				if present {
					t.Fatalf("%s is still there: %v", c.urn, ext)
				}
				r := &Resource{Kind: UserKind, Attrs: got, rt: NewTypes().User}
				for _, s := range r.render("")["schemas"].([]string) {
					if s == c.urn {
						t.Fatalf("schemas still lists %s", c.urn)
					}
				}
				return
			}
			if want := mustJSON(t, c.want); !reflect.DeepEqual(ext, want) {
				t.Fatalf("%s = %v, want %v", c.urn, ext, want)
			}
			if got["userName"] != "bjensen" {
				t.Fatalf("userName lost: %v", got)
			}
		})
	}
}

// TestPatchWholeExtensionAddsMissing: add and replace on an extension the user does
// not have yet create it.
func TestPatchWholeExtensionAddsMissing(t *testing.T) {
	for _, op := range []string{"add", "replace"} {
		got, err := patchDoc(t, UserKind, `{"userName":"u"}`, PatchOp{Op: op, Path: entURN, Value: mustJSON(t, `{"department":"X"}`)})
		if err != nil {
			t.Fatal(op, err)
		}
		if want := mustJSON(t, `{"department":"X"}`); !reflect.DeepEqual(got[entURN], want) {
			t.Fatalf("%s: %v", op, got)
		}
	}
	// Removing an extension the user does not have changes nothing.
	got, err := patchDoc(t, UserKind, `{"userName":"u"}`, PatchOp{Op: "remove", Path: entURN})
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
}

// TestDuplicateValuesDropped: equal values of a multi-valued attribute are stored
// once (RFC 7643 §2.4), on POST/PUT (parseResource) and after a PATCH; the first is
// kept, with "primary" if any duplicate had it.
func TestDuplicateValuesDropped(t *testing.T) {
	cases := []struct {
		name, attr, in, want string
	}{
		{"emails", "emails", `[{"type":"work","value":"a@x"},{"type":"work","value":"a@x"}]`, `[{"type":"work","value":"a@x"}]`},
		{"emails case-insensitive value", "emails", `[{"type":"work","value":"a@x"},{"type":"work","value":"A@X"}]`, `[{"type":"work","value":"a@x"}]`},
		{"primary kept", "emails", `[{"type":"work","value":"a@x"},{"type":"home","value":"b@x"},{"type":"work","value":"a@x","primary":true}]`,
			`[{"type":"work","value":"a@x","primary":true},{"type":"home","value":"b@x"}]`},
		{"other type kept", "emails", `[{"type":"work","value":"a@x"},{"type":"home","value":"a@x"}]`, `[{"type":"work","value":"a@x"},{"type":"home","value":"a@x"}]`},
		{"other display kept", "emails", `[{"type":"work","value":"a@x"},{"type":"work","value":"a@x","display":"A"}]`,
			`[{"type":"work","value":"a@x"},{"type":"work","value":"a@x","display":"A"}]`},
		{"phoneNumbers", "phoneNumbers", `[{"type":"work","value":"+1"},{"type":"work","value":"+1"}]`, `[{"type":"work","value":"+1"}]`},
		{"ims", "ims", `[{"type":"aim","value":"u"},{"type":"aim","value":"u"}]`, `[{"type":"aim","value":"u"}]`},
		{"photos", "photos", `[{"type":"photo","value":"https://x/p"},{"type":"photo","value":"https://x/p"}]`, `[{"type":"photo","value":"https://x/p"}]`},
		{"roles", "roles", `[{"value":"admin"},{"value":"admin"}]`, `[{"value":"admin"}]`},
		{"entitlements", "entitlements", `[{"value":"e"},{"value":"e"}]`, `[{"value":"e"}]`},
		{"x509Certificates", "x509Certificates", `[{"value":"TUlJ"},{"value":"TUlJ"}]`, `[{"value":"TUlJ"}]`},
		{"addresses whole objects", "addresses", `[{"type":"work","locality":"Hollywood"},{"type":"work","locality":"Hollywood"},{"type":"work","locality":"Paris"}]`,
			`[{"type":"work","locality":"Hollywood"},{"type":"work","locality":"Paris"}]`},
	}
	types := NewTypes()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := mustJSON(t, c.want)
			// POST and PUT bodies.
			w, err := types.parseResource(UserKind, map[string]any{"schemas": []any{schemas.UserURN}, "userName": "u", c.attr: mustJSON(t, c.in)}, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := jsonObject(t, w.doc)[c.attr]; !reflect.DeepEqual(got, want) {
				t.Errorf("body: %s = %v, want %v", c.attr, got, want)
			}
			// PATCH replace and add.
			for _, op := range []string{"replace", "add"} {
				got, err := patchDoc(t, UserKind, `{"userName":"u"}`, PatchOp{Op: op, Path: c.attr, Value: mustJSON(t, c.in)})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got[c.attr], want) {
					t.Errorf("PATCH %s: %s = %v, want %v", op, c.attr, got[c.attr], want)
				}
			}
		})
	}
	// Adding a value already there in another case adds nothing.
	got, err := patchDoc(t, UserKind, `{"userName":"u","emails":[{"type":"work","value":"a@x"}]}`,
		PatchOp{Op: "add", Path: "emails", Value: mustJSON(t, `[{"type":"work","value":"A@x","primary":true}]`)})
	if err != nil {
		t.Fatal(err)
	}
	if want := mustJSON(t, `[{"type":"work","value":"a@x","primary":true}]`); !reflect.DeepEqual(got["emails"], want) {
		t.Errorf("add again: %v, want %v", got["emails"], want)
	}
}

// TestPatchChangesNothing: the operations RFC 7644 §3.5.2.1 says leave a resource as
// it was (an add of a value already there, a replace with an equal value, a remove of
// an absent one) give a document equal to the stored one (sameValue), which is what
// lets Service.Patch skip the write; any real change does not.
func TestPatchChangesNothing(t *testing.T) {
	before, err := decodeDoc([]byte(fuzzUserDoc))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		ops     []PatchOp
		changed bool
	}{
		{"add current displayName", []PatchOp{{Op: "add", Path: "displayName", Value: "Babs Jensen"}}, false},
		{"replace equal sub-attribute", []PatchOp{{Op: "replace", Path: "name.givenName", Value: "Barbara"}}, false},
		{"replace equal boolean", []PatchOp{{Op: "replace", Path: "active", Value: true}}, false},
		{"add existing email", []PatchOp{{Op: "add", Path: "emails", Value: mustJSON(t, `[{"value":"bjensen@example.com","type":"work","primary":true}]`)}}, false},
		{"add existing email in another case", []PatchOp{{Op: "add", Path: "emails", Value: mustJSON(t, `[{"value":"BJensen@example.com","type":"work"}]`)}}, false},
		{"remove absent", []PatchOp{{Op: "remove", Path: "nickName"}, {Op: "remove", Path: `emails[type eq "other"]`}, {Op: "remove", Path: "x509Certificates"}}, false},
		{"replace extension attribute equal", []PatchOp{{Op: "replace", Path: entURN + ":employeeNumber", Value: "701984"}}, false},
		{"change and back", []PatchOp{{Op: "replace", Path: "title", Value: "X"}, {Op: "replace", Path: "title", Value: "Tour Guide"}}, false},
		{"replace displayName", []PatchOp{{Op: "replace", Path: "displayName", Value: "Babs"}}, true},
		{"remove title", []PatchOp{{Op: "remove", Path: "title"}}, true},
		{"add email", []PatchOp{{Op: "add", Path: "emails", Value: mustJSON(t, `[{"value":"new@example.com","type":"other"}]`)}}, true},
		{"primary moves", []PatchOp{{Op: "replace", Path: `emails[type eq "home"].primary`, Value: true}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			types := NewTypes()
			doc, _ := decodeDoc([]byte(fuzzUserDoc))
			p := &patcher{rt: types.User, kind: UserKind, doc: doc, q: NewQuirks(ProfileStrict)}
			for _, op := range c.ops {
				if err := p.apply(op); err != nil {
					t.Fatal(err)
				}
			}
			w, err := types.parseResource(UserKind, p.doc, p.q, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := !sameValue(before, w.doc); got != c.changed {
				t.Errorf("changed = %v, want %v: %v", got, c.changed, w.doc)
			}
		})
	}
}

// TestSameValue: numbers compare by value across their decoded forms; nothing else
// is equal across types.
func TestSameValue(t *testing.T) {
	cases := []struct {
		a, b any
		want bool
	}{
		{json.Number("5"), int64(5), true},
		{json.Number("1.5"), 1.5, true},
		{json.Number("5"), "5", false},
		{"5", json.Number("5"), false},
		{nil, false, false},
		{[]any{"a", "b"}, []any{"b", "a"}, false},
		{map[string]any{"a": nil}, map[string]any{"b": nil}, false},
		{map[string]any{"a": []any{json.Number("1")}}, map[string]any{"a": []any{int64(1)}}, true},
	}
	for i, c := range cases {
		if got := sameValue(c.a, c.b); got != c.want {
			t.Errorf("%d: sameValue(%#v, %#v) = %v", i, c.a, c.b, got)
		}
	}
}
