package scim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// viaDecoder is how documents were read before decodeStored, and still are when
// it declines.
func viaDecoder(b []byte) (map[string]any, error) {
	m := map[string]any{}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	err := d.Decode(&m)
	return m, err
}

func checkDecodeStored(t *testing.T, b []byte) {
	t.Helper()
	got, ok := decodeStored(b)
	if !ok {
		return // encoding/json decides
	}
	want, err := viaDecoder(b)
	if err != nil {
		t.Fatalf("decodeStored(%q) accepted what encoding/json refuses (%v): %#v", b, err, got)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeStored(%q) = %#v, encoding/json gives %#v", b, got, want)
	}
}

func TestDecodeStored(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{}`, true},
		{` {"a": 1, "b": [true, false, null, -0.5e+3, "x"], "c": {"d": []}} `, true},
		{`{"userName":"ünï 日本","emails":[{"value":"a@example.com","primary":true}]}`, true},
		{`{"a":1,"a":{"b":2}}`, true}, // the last of a repeated key wins
		{`{"a":1} trailing`, true},    // one value is read, as Decoder does
		{`{"a":"esc\"aped"}`, false},  // escapes are left to encoding/json
		{"{\"a\":\"\xff\"}", false},   // so is invalid UTF-8
		{`{"a":01}`, false},
		{`{"a":1.}`, false},
		{`{"a":-}`, false},
		{`{"a":tru}`, false},
		{`{"a":1,}`, false},
		{`{"a" 1}`, false},
		{`[1]`, false},
		{`null`, false},
		{`{"a":[1,]}`, false},
		{`{"a":`, false},
		{` `, false}, // only whitespace: no document, no read past its end
		{``, false},
	} {
		_, ok := decodeStored([]byte(tc.in))
		if ok != tc.ok {
			t.Errorf("decodeStored(%q) ok = %v, want %v", tc.in, ok, tc.ok)
		}
		checkDecodeStored(t, []byte(tc.in))
	}
}

func FuzzDecodeStored(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":[1,2.5,-3e4,{"b":null}],"c":"d"}`, `{"schemas":["urn:x"],"name":{"givenName":"Ann"},"active":true}`,
		`{"a":"\u00e9"}`, `{"a":1e}`, "{\"a\":\"\t\"}", `{"a":{"a":{"a":{"a":[[[[]]]]}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeStored(t, b)
	})
}
