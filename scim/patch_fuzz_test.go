package scim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/scimd/scimd/store"
)

// fuzzUserDoc and fuzzGroupDoc are the stored documents FuzzPatch patches.
const (
	fuzzUserDoc = `{"userName":"bjensen","externalId":"bjensen-1","name":{"givenName":"Barbara","familyName":"Jensen","formatted":"Ms. Barbara J Jensen III"},` +
		`"displayName":"Babs Jensen","active":true,"title":"Tour Guide",` +
		`"emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],` +
		`"phoneNumbers":[{"value":"555-555-8377","type":"work"}],"addresses":[{"type":"work","streetAddress":"100 Universal City Plaza","locality":"Hollywood","country":"USA","primary":true}],` +
		`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984","department":"Tour Operations","manager":{"value":"26118915-6090-4610-87e4-49d8ca9f808d"}}}`
	fuzzGroupDoc = `{"displayName":"Tour Guides","externalId":"g-1"}`
)

// fuzzMaxOps is the operation limit FuzzPatch applies (the service's default is of the
// same order).
const fuzzMaxOps = 100

// FuzzPatch: any JSON body, read as a PatchOp message and applied to a fixed User and
// a fixed Group the way Service.Patch applies it, either fails with a 4xx-kind Error or
// leaves a document that passes validation, whose stored form reads back and passes
// the same validation again unchanged. It never panics.
func FuzzPatch(f *testing.F) {
	types := NewTypes()
	f.Fuzz(func(t *testing.T, raw []byte) {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber() // as scimhttp.readBody
		var body map[string]any
		if err := d.Decode(&body); err != nil || body == nil {
			return
		}
		ops, err := ParsePatch(body, fuzzMaxOps, nil)
		if err != nil {
			want4xx(t, "ParsePatch", raw, err)
			return
		}
		for _, c := range []struct {
			kind ResourceKind
			doc  string
		}{{UserKind, fuzzUserDoc}, {GroupKind, fuzzGroupDoc}} {
			doc, err := decodeDoc([]byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			p := &patcher{rt: types.Of(c.kind), kind: c.kind, doc: doc}
			failed := false
			for _, op := range ops {
				if err := p.apply(op); err != nil {
					want4xx(t, string(c.kind)+" patch", raw, err)
					failed = true
					break
				}
			}
			if failed {
				continue
			}
			w, err := types.parseResource(c.kind, p.doc, nil, false)
			if err != nil {
				want4xx(t, string(c.kind)+" validation", raw, err)
				continue
			}
			var sr store.Resource
			if err := w.columns(&sr); err != nil {
				t.Fatalf("%s: body %q: the patched document cannot be stored: %v", c.kind, raw, err)
			}
			again, err := decodeDoc(sr.Doc)
			if err != nil {
				t.Fatalf("%s: body %q: the stored document %s does not read back: %v", c.kind, raw, sr.Doc, err)
			}
			w2, err := types.parseResource(c.kind, again, nil, false)
			if err != nil {
				t.Fatalf("%s: body %q: the stored document %s is not valid: %v", c.kind, raw, sr.Doc, err)
			}
			var sr2 store.Resource
			if err := w2.columns(&sr2); err != nil {
				t.Fatalf("%s: body %q: %v", c.kind, raw, err)
			}
			if !bytes.Equal(sr.Doc, sr2.Doc) || !reflect.DeepEqual(sr, sr2) {
				t.Fatalf("%s: body %q: validation is not stable:\n%s\n%s", c.kind, raw, sr.Doc, sr2.Doc)
			}
		}
	})
}

// want4xx fails t unless err is an Error of a kind answered with a 4xx status.
func want4xx(t *testing.T, what string, raw []byte, err error) {
	t.Helper()
	switch e := AsError(err); e.Kind {
	case KindInternal, KindUnavailable:
		t.Fatalf("%s: body %q: %v is a %d-kind error, not a 4xx", what, raw, err, e.Kind)
	}
}
