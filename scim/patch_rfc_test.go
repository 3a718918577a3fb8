package scim

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/store/storetest"
)

// wantKind fails t unless err is a *Error of kind want.
func wantKind(t *testing.T, err error, want ErrorKind) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want kind %d", want)
	}
	if got := AsError(err).Kind; got != want {
		t.Fatalf("error %v of kind %d, want kind %d", err, got, want)
	}
}

// TestParsePatchValueRequired: RFC 7644 §3.5.2 says "add" and "replace" operations
// MUST contain a "value" member. One without it is 400 invalidValue (RFC 7644 §3.12:
// "a required value was missing"), and so is "value": null, which RFC 7643 §2.5 makes
// the same as an unassigned value; "remove" needs none. Without the check an add or
// replace of a single attribute with no value would silently remove it.
func TestParsePatchValueRequired(t *testing.T) {
	cases := []struct {
		name string
		op   string // one operation, as JSON
		ok   bool
	}{
		{"add without value", `{"op":"add","path":"displayName"}`, false},
		{"replace without value", `{"op":"replace","path":"displayName"}`, false},
		{"add value null", `{"op":"add","path":"displayName","value":null}`, false},
		{"replace value null", `{"op":"replace","path":"title","value":null}`, false},
		{"replace sub-attribute without value", `{"op":"replace","path":"name.givenName"}`, false},
		{"add to a value filter without value", `{"op":"add","path":"emails[type eq \"work\"].value"}`, false},
		{"add without path or value", `{"op":"add"}`, false},
		{"remove without value", `{"op":"remove","path":"displayName"}`, true},
		{"add with an empty string", `{"op":"add","path":"displayName","value":""}`, true},
		{"replace with false", `{"op":"replace","path":"active","value":false}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := mustJSON(t, `{"schemas":["`+schemas.PatchOpURN+`"],"Operations":[`+c.op+`]}`).(map[string]any)
			ops, err := ParsePatch(body, 0, NewQuirks(ProfileStrict))
			if c.ok {
				if err != nil || len(ops) != 1 {
					t.Fatalf("ops %v, error %v", ops, err)
				}
				return
			}
			wantKind(t, err, KindInvalidValue)
		})
	}
}

// TestPatchReadOnly: RFC 7644 §3.5.2 says a client MUST NOT modify a readOnly
// attribute and such an operation gets an error, scimType mutability (§3.12): id,
// meta, groups (RFC 7643 §4.1.2) and the enterprise manager's displayName (RFC 7643
// §4.3), named by its path or given inside the value of manager; Group
// members' sub-attributes are immutable. The writable parts stay writable. The stored
// manager.displayName ("Boss", as a document written before readOnly sub-attributes
// were ignored on POST and PUT may hold) is not kept by a write: it is readOnly, so
// RFC 7644 §3.3 has the server ignore a client's value for it.
func TestPatchReadOnly(t *testing.T) {
	const doc = `{"userName":"bjensen","displayName":"Babs",` +
		`"` + entURN + `":{"department":"Tours","manager":{"value":"m-1","displayName":"Boss"}}}`
	cases := []struct {
		name string
		kind ResourceKind
		op   PatchOp
		// want is the enterprise extension after the PATCH; "" when an error is expected.
		want string
	}{
		{name: "add manager.displayName", op: PatchOp{Op: "add", Path: entURN + ":manager.displayName", Value: "X"}},
		{name: "replace manager.displayName", op: PatchOp{Op: "replace", Path: entURN + ":manager.displayName", Value: "X"}},
		{name: "replace manager.displayName in another case", op: PatchOp{Op: "replace", Path: strings.ToUpper(entURN) + ":Manager.DISPLAYNAME", Value: "X"}},
		{name: "remove manager.displayName", op: PatchOp{Op: "remove", Path: entURN + ":manager.displayName"}},
		{name: "replace manager with displayName", op: PatchOp{Op: "replace", Path: entURN + ":manager", Value: mustJSON(t, `{"value":"m-2","displayName":"X"}`)}},
		{name: "add manager with displayName", op: PatchOp{Op: "add", Path: entURN + ":manager", Value: mustJSON(t, `{"value":"m-2","DisplayName":"X"}`)}},
		{name: "replace manager with displayName only", op: PatchOp{Op: "replace", Path: entURN + ":manager", Value: mustJSON(t, `{"displayName":"X"}`)}},
		{name: "add extension with manager displayName", op: PatchOp{Op: "add", Path: entURN, Value: mustJSON(t, `{"manager":{"value":"m-2","displayName":"X"}}`)}},
		{name: "path-less add with manager displayName", op: PatchOp{Op: "add", Value: mustJSON(t, `{"`+entURN+`":{"manager":{"value":"m-2","displayName":"X"}}}`)}},
		{name: "replace id", op: PatchOp{Op: "replace", Path: "id", Value: "other"}},
		{name: "add meta", op: PatchOp{Op: "add", Path: "meta", Value: mustJSON(t, `{"resourceType":"Group"}`)}},
		{name: "replace meta.created", op: PatchOp{Op: "replace", Path: "meta.created", Value: "2020-01-01T00:00:00Z"}},
		{name: "add groups", op: PatchOp{Op: "add", Path: "groups", Value: mustJSON(t, `[{"value":"g-1"}]`)}},
		{name: "replace groups display", op: PatchOp{Op: "replace", Path: `groups[value eq "g-1"].display`, Value: "X"}},
		{name: "remove groups", op: PatchOp{Op: "remove", Path: "groups"}},
		{name: "path-less add groups", op: PatchOp{Op: "add", Value: mustJSON(t, `{"groups":[{"value":"g-1"}]}`)}},
		{name: "group member display", kind: GroupKind, op: PatchOp{Op: "replace", Path: `members[value eq "u-1"].display`, Value: "X"}},
		{name: "replace manager value", op: PatchOp{Op: "replace", Path: entURN + ":manager", Value: mustJSON(t, `{"value":"m-2"}`)},
			want: `{"department":"Tours","manager":{"value":"m-2"}}`},
		{name: "replace manager Value in another case", op: PatchOp{Op: "replace", Path: entURN + ":manager", Value: mustJSON(t, `{"Value":"m-2"}`)},
			want: `{"department":"Tours","manager":{"value":"m-2"}}`},
		{name: "replace manager.value", op: PatchOp{Op: "replace", Path: entURN + ":manager.value", Value: "m-3"},
			want: `{"department":"Tours","manager":{"value":"m-3"}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kind, d := c.kind, doc
			if kind == "" {
				kind = UserKind
			}
			if kind == GroupKind {
				d = `{"displayName":"g"}`
			}
			got, err := patchDoc(t, kind, d, c.op)
			if c.want == "" {
				wantKind(t, err, KindMutability)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := mustJSON(t, c.want); !reflect.DeepEqual(got[entURN], want) {
				t.Fatalf("%s = %v, want %v", entURN, got[entURN], want)
			}
		})
	}
}

// TestPatchReplaceValuePathReplacesWhole: RFC 7644 §3.5.2.3: when the path has a
// value filter that matches values of a multi-valued attribute, "all matching record
// values SHALL be replaced": the value given takes the place of each matched value,
// whole (sub-attributes it does not give are gone), and the other values stay. An
// add on the same path (§3.5.2.1) merges the value's sub-attributes into the matched
// ones instead, as an add to a complex value does.
func TestPatchReplaceValuePathReplacesWhole(t *testing.T) {
	const doc = `{"userName":"u","emails":[` +
		`{"value":"a@x.example","type":"work","display":"A"},` +
		`{"value":"b@x.example","type":"home","display":"B"},` +
		`{"value":"c@x.example","type":"work"}]}`
	cases := []struct {
		name string
		op   PatchOp
		want string
	}{
		{"replace each match", PatchOp{Op: "replace", Path: `emails[type eq "work"]`, Value: mustJSON(t, `{"value":"n@x.example","type":"work"}`)},
			`[{"value":"n@x.example","type":"work"},{"value":"b@x.example","type":"home","display":"B"}]`},
		{"replace one", PatchOp{Op: "replace", Path: `emails[value eq "b@x.example"]`, Value: mustJSON(t, `{"value":"h@x.example"}`)},
			`[{"value":"a@x.example","type":"work","display":"A"},{"value":"h@x.example"},{"value":"c@x.example","type":"work"}]`},
		{"replace a sub-attribute", PatchOp{Op: "replace", Path: `emails[type eq "home"].display`, Value: "H"},
			`[{"value":"a@x.example","type":"work","display":"A"},{"value":"b@x.example","type":"home","display":"H"},{"value":"c@x.example","type":"work"}]`},
		{"add merges", PatchOp{Op: "add", Path: `emails[value eq "a@x.example"]`, Value: mustJSON(t, `{"type":"other"}`)},
			`[{"value":"a@x.example","type":"other","display":"A"},{"value":"b@x.example","type":"home","display":"B"},{"value":"c@x.example","type":"work"}]`},
		{"add merges names in another case", PatchOp{Op: "add", Path: `emails[value eq "a@x.example"]`, Value: mustJSON(t, `{"TYPE":"other"}`)},
			`[{"value":"a@x.example","type":"other","display":"A"},{"value":"b@x.example","type":"home","display":"B"},{"value":"c@x.example","type":"work"}]`},
		{"add on a filter matching nothing, names in another case", PatchOp{Op: "add", Path: `emails[TYPE eq "other"]`, Value: mustJSON(t, `{"Value":"o@x.example","Type":"other"}`)},
			`[{"value":"a@x.example","type":"work","display":"A"},{"value":"b@x.example","type":"home","display":"B"},{"value":"c@x.example","type":"work"},{"value":"o@x.example","type":"other"}]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := patchDoc(t, UserKind, doc, c.op)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustJSON(t, c.want); !reflect.DeepEqual(got["emails"], want) {
				t.Fatalf("emails = %v,\nwant %v", got["emails"], want)
			}
		})
	}
}

// TestPatchPrimaryDemoted: RFC 7643 §2.4: "primary" true appears no more than once
// among the values of a multi-valued attribute. A PATCH that makes a value primary
// leaves that value primary and takes the flag from the one that had it, wherever
// the two are in the list (the new one first, or last), however it is written.
func TestPatchPrimaryDemoted(t *testing.T) {
	const oldFirst = `{"userName":"u","emails":[{"value":"a@x.example","primary":true},{"value":"b@x.example"}]}`
	const oldLast = `{"userName":"u","emails":[{"value":"a@x.example"},{"value":"b@x.example","primary":true}]}`
	cases := []struct {
		name, doc string
		op        PatchOp
		want      string
	}{
		{"sub-attribute, new last", oldFirst, PatchOp{Op: "replace", Path: `emails[value eq "b@x.example"].primary`, Value: true},
			`[{"value":"a@x.example"},{"value":"b@x.example","primary":true}]`},
		{"sub-attribute, new first", oldLast, PatchOp{Op: "replace", Path: `emails[value eq "a@x.example"].primary`, Value: true},
			`[{"value":"a@x.example","primary":true},{"value":"b@x.example"}]`},
		{"add sub-attribute, new first", oldLast, PatchOp{Op: "add", Path: `emails[value eq "a@x.example"].primary`, Value: true},
			`[{"value":"a@x.example","primary":true},{"value":"b@x.example"}]`},
		{"replace value, new first", oldLast, PatchOp{Op: "replace", Path: `emails[value eq "a@x.example"]`, Value: mustJSON(t, `{"value":"a@x.example","primary":true}`)},
			`[{"value":"a@x.example","primary":true},{"value":"b@x.example"}]`},
		{"add value", oldFirst, PatchOp{Op: "add", Path: "emails", Value: mustJSON(t, `[{"value":"c@x.example","primary":true}]`)},
			`[{"value":"a@x.example"},{"value":"b@x.example"},{"value":"c@x.example","primary":true}]`},
		{"add value already there, new first", oldLast, PatchOp{Op: "add", Path: "emails", Value: mustJSON(t, `[{"value":"a@x.example","primary":true}]`)},
			`[{"value":"a@x.example","primary":true},{"value":"b@x.example"}]`},
		{"add on a filter matching nothing", oldFirst, PatchOp{Op: "add", Path: `emails[type eq "home"]`, Value: mustJSON(t, `{"value":"h@x.example","primary":true}`)},
			`[{"value":"a@x.example"},{"value":"b@x.example"},{"type":"home","value":"h@x.example","primary":true}]`},
		{"primary false keeps the old", oldLast, PatchOp{Op: "replace", Path: `emails[value eq "a@x.example"].primary`, Value: false},
			`[{"value":"a@x.example","primary":false},{"value":"b@x.example","primary":true}]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := patchDoc(t, UserKind, c.doc, c.op)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustJSON(t, c.want); !reflect.DeepEqual(got["emails"], want) {
				t.Fatalf("emails = %v,\nwant %v", got["emails"], want)
			}
		})
	}
}

// TestPatchMemberIDsAnyCase: a member is named by the id of a User or Group, which
// scimd issues as a lower-case UUID; UUIDs compare case-insensitively (RFC 4122 §3),
// so a member id in another case names the same resource on add, replace and remove,
// and the group lists it once, by its id as issued. On every backend.
func TestPatchMemberIDsAnyCase(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run("backend="+b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			tn, err := NewTokens(st).CreateTenant(ctx, "members")
			if err != nil {
				t.Fatal(err)
			}
			l := DefaultLimits()
			l.BcryptCost = 4
			svc := NewService(st, zaptest.NewLogger(t), WithLimits(l))
			var uids []string
			for _, name := range []string{"a", "b"} {
				u, err := svc.Create(ctx, tn.ID, UserKind, map[string]any{"schemas": []any{schemas.UserURN}, "userName": name}, Projection{})
				if err != nil {
					t.Fatal(err)
				}
				if u.ID != strings.ToLower(u.ID) {
					t.Fatalf("id %q is not lower case", u.ID)
				}
				uids = append(uids, u.ID)
			}
			g, err := svc.Create(ctx, tn.ID, GroupKind, map[string]any{"schemas": []any{schemas.GroupURN}, "displayName": "g"}, Projection{})
			if err != nil {
				t.Fatal(err)
			}
			mixed := func(s string) string { // every other letter upper case
				var out []rune
				for i, r := range s {
					if i%2 == 0 {
						r = []rune(strings.ToUpper(string(r)))[0]
					}
					out = append(out, r)
				}
				return string(out)
			}
			patch := func(profile string, ops ...string) []string {
				t.Helper()
				body := mustJSON(t, `{"schemas":["`+schemas.PatchOpURN+`"],"Operations":[`+strings.Join(ops, ",")+`]}`).(map[string]any)
				q := NewQuirks(profile)
				parsed, err := ParsePatch(body, 0, q)
				if err != nil {
					t.Fatal(err)
				}
				r, err := svc.Patch(WithQuirks(ctx, q), tn.ID, GroupKind, g.ID, parsed, "", Projection{})
				if err != nil {
					t.Fatalf("%v: %v", ops, err)
				}
				raw, _ := json.Marshal(r.render("")["members"])
				var members []map[string]any
				_ = json.Unmarshal(raw, &members)
				var got []string
				for _, m := range members {
					got = append(got, m["value"].(string))
				}
				slices.Sort(got)
				return got
			}
			member := func(id string) string { return `{"op":"add","path":"members","value":[{"value":"` + id + `"}]}` }
			sorted := func(xs ...string) []string { slices.Sort(xs); return xs }

			if got := patch(ProfileStrict, member(strings.ToUpper(uids[0]))); !slices.Equal(got, uids[:1]) {
				t.Fatalf("add in upper case: members %v, want %v", got, uids[:1])
			}
			if got := patch(ProfileStrict, member(mixed(uids[0])), member(mixed(uids[1]))); !slices.Equal(got, sorted(uids...)) {
				t.Fatalf("add again in mixed case: members %v, want %v", got, sorted(uids...))
			}
			// RFC 7644 §3.5.2.2 removes by a value filter; the default profile also
			// reads a remove with a value list (QuirkRemoveWithValue).
			rm := `{"op":"remove","path":"members","value":[{"value":"` + mixed(uids[0]) + `"}]}`
			if got := patch(ProfileTolerant, rm); !slices.Equal(got, uids[1:]) {
				t.Fatalf("remove in mixed case: members %v, want %v", got, uids[1:])
			}
			repl := `{"op":"replace","path":"members","value":[{"value":"` + strings.ToUpper(uids[0]) + `"},{"value":"` + uids[1] + `"}]}`
			if got := patch(ProfileStrict, repl); !slices.Equal(got, sorted(uids...)) {
				t.Fatalf("replace in upper case: members %v, want %v", got, sorted(uids...))
			}
		})
	}
}

// TestValueIntegerAndDuplicates: RFC 7643 §2.3.4: an integer has no fractional part,
// so 1.5 for an integer attribute (scimd's credits) is 400 invalidValue, never
// stored as 1; and a complex value naming one sub-attribute twice in different case
// (attribute names are case-insensitive, RFC 7643 §2.1) is 400 invalidSyntax, for
// bodies that reach validation without the HTTP decoder (Bulk, compat, PATCH).
func TestValueIntegerAndDuplicates(t *testing.T) {
	types := NewTypes()
	credits, _, ok := types.User.Resolve(schemas.ScimdUserURN, "credits", "")
	if !ok {
		t.Fatal("no credits attribute")
	}
	emails, _, _ := types.User.Resolve("", "emails", "")
	manager, _, _ := types.User.Resolve(entURN, "manager", "")
	q := NewQuirks(ProfileStrict)
	cases := []struct {
		name string
		attr *schemas.Attribute
		v    any
		want any // the canonical value; nil when an error of kind is expected
		kind ErrorKind
	}{
		{"integer 1.5", credits, 1.5, nil, KindInvalidValue},
		{"integer json 1.5", credits, json.Number("1.5"), nil, KindInvalidValue},
		{"integer -0.5", credits, -0.5, nil, KindInvalidValue},
		{"integer 1e300", credits, 1e300, nil, KindInvalidValue},
		{"integer true", credits, true, nil, KindInvalidValue},
		{"integer 3", credits, float64(3), int64(3), 0},
		{"integer json 3", credits, json.Number("3"), int64(3), 0},
		{"integer 2.0", credits, json.Number("2.0"), int64(2), 0},
		{"value and Value", emails, mustJSON(t, `[{"value":"a@x.example","Value":"b@x.example"}]`), nil, KindInvalidSyntax},
		{"type and TYPE", emails, mustJSON(t, `[{"value":"a@x.example","type":"work","TYPE":"work"}]`), nil, KindInvalidSyntax},
		{"manager value twice", manager, mustJSON(t, `{"value":"m-1","VALUE":"m-2"}`), nil, KindInvalidSyntax},
		{"once each", emails, mustJSON(t, `[{"Value":"a@x.example","TYPE":"work"}]`), []any{map[string]any{"value": "a@x.example", "type": "work"}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := q.value(c.attr, c.v, c.attr.Name)
			if c.want == nil {
				wantKind(t, err, c.kind)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("%#v, want %#v", got, c.want)
			}
		})
	}
	// The same through a whole body and through PATCH.
	body := map[string]any{"schemas": []any{schemas.UserURN, schemas.ScimdUserURN}, "userName": "u",
		schemas.ScimdUserURN: map[string]any{"credits": 1.5}}
	_, err := types.parseResource(UserKind, body, q, true)
	wantKind(t, err, KindInvalidValue)
	_, err = patchDoc(t, UserKind, `{"userName":"u"}`, PatchOp{Op: "replace", Path: schemas.ScimdUserURN + ":credits", Value: 1.5})
	wantKind(t, err, KindInvalidValue)
	_, err = patchDoc(t, UserKind, `{"userName":"u"}`, PatchOp{Op: "add", Path: "emails", Value: mustJSON(t, `[{"value":"a@x.example","VALUE":"b@x.example"}]`)})
	wantKind(t, err, KindInvalidSyntax)
}
