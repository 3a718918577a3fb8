package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	cases := []struct {
		name   string
		in     string
		kind   ErrorKind
		reason error  // nil: decodes
		where  string // a part of the detail that says where
	}{
		{name: "object", in: `{"userName":"x","n":1.50,"a":[true,false,null],"o":{}}`},
		{name: "array", in: `[{"email":"a@example.com"}]`},
		{name: "scalar", in: `"x"`},
		{name: "whitespace around", in: " \t\r\n{\"a\":1} \n\t\r "},
		{name: "escapes", in: `{"a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`},
		{name: "same key in sibling objects", in: `{"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]}`},
		{name: "many distinct keys", in: `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k18":18}`},
		{name: "depth at the limit", in: deep(8)},

		{name: "trailing brace", in: `{"userName":"x"}}`, kind: KindInvalidSyntax, reason: ErrJSONTrailing, where: "byte 16"},
		{name: "trailing bracket", in: `{"userName":"x"}]`, kind: KindInvalidSyntax, reason: ErrJSONTrailing},
		{name: "trailing bracket after array", in: `[1]]`, kind: KindInvalidSyntax, reason: ErrJSONTrailing},
		{name: "second value", in: `{} {}`, kind: KindInvalidSyntax, reason: ErrJSONTrailing},
		{name: "trailing text", in: `{}x`, kind: KindInvalidSyntax, reason: ErrJSONTrailing},
		{name: "trailing NUL byte", in: "{}\x00", kind: KindInvalidSyntax, reason: ErrJSONTrailing},

		{name: "duplicate key", in: `{"userName":"a","userName":"b"}`, kind: KindInvalidSyntax, reason: ErrJSONDuplicate, where: "top level"},
		{name: "duplicate key in other case", in: `{"userName":"a","USERNAME":"b"}`, kind: KindInvalidSyntax, reason: ErrJSONDuplicate, where: `"USERNAME"`},
		{name: "duplicate key escaped", in: `{"userName":"a","user\u004eame":"b"}`, kind: KindInvalidSyntax, reason: ErrJSONDuplicate},
		{name: "duplicate key nested", in: `{"name":{"givenName":"a","givenName":"b"}}`, kind: KindInvalidSyntax, reason: ErrJSONDuplicate, where: "in name"},
		{name: "duplicate key in array element", in: `{"Operations":[{"op":"add"},{"op":"add","value":{"a":1,"A":2}}]}`, kind: KindInvalidSyntax, reason: ErrJSONDuplicate, where: "in Operations[1].value"},
		{name: "duplicate key among many", in: `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"K3":3}`, kind: KindInvalidSyntax, reason: ErrJSONDuplicate, where: `"k3" and "K3"`},

		{name: "NUL escape in value", in: `{"userName":"a\u0000b"}`, kind: KindInvalidValue, reason: ErrJSONNUL, where: "at userName"},
		{name: "NUL escape in nested value", in: `{"emails":[{"value":"\u0000"}]}`, kind: KindInvalidValue, reason: ErrJSONNUL, where: "at emails[0].value"},
		{name: "NUL escape in key", in: `{"name":{"a\u0000":1}}`, kind: KindInvalidValue, reason: ErrJSONNUL, where: "in name"},
		{name: "NUL escape at top", in: `"\u0000"`, kind: KindInvalidValue, reason: ErrJSONNUL},
		{name: "raw NUL in string", in: "{\"a\":\"x\x00\"}", kind: KindInvalidValue, reason: ErrJSONNUL},
		{name: "escaped backslash before u0000 is text", in: `{"a":"\\u0000"}`},

		{name: "invalid UTF-8 in value", in: "{\"a\":\"caf\xe9\"}", kind: KindInvalidSyntax, reason: ErrJSONUnicode, where: "at a"},
		{name: "overlong NUL", in: "{\"a\":\"\xc0\x80\"}", kind: KindInvalidSyntax, reason: ErrJSONUnicode},
		{name: "encoded surrogate", in: "{\"a\":\"\xed\xa0\x80\"}", kind: KindInvalidSyntax, reason: ErrJSONUnicode},
		{name: "invalid UTF-8 in key", in: "{\"\xff\":1}", kind: KindInvalidSyntax, reason: ErrJSONUnicode},
		{name: "lone high surrogate escape", in: `{"a":"\ud800"}`, kind: KindInvalidSyntax, reason: ErrJSONUnicode},
		{name: "lone low surrogate escape", in: `{"a":"\udc00x"}`, kind: KindInvalidSyntax, reason: ErrJSONUnicode},
		{name: "high surrogate before a non-surrogate", in: `{"a":"\ud800\u0041"}`, kind: KindInvalidSyntax, reason: ErrJSONUnicode},

		{name: "empty", in: ``, kind: KindInvalidSyntax, reason: ErrJSONSyntax},
		{name: "only whitespace", in: " \n", kind: KindInvalidSyntax, reason: ErrJSONSyntax},
		{name: "unclosed", in: `{"a":1`, kind: KindInvalidSyntax, reason: ErrJSONSyntax},
		{name: "missing colon", in: `{"a" 1}`, kind: KindInvalidSyntax, reason: ErrJSONSyntax},
		{name: "trailing comma", in: `{"a":1,}`, kind: KindInvalidSyntax, reason: ErrJSONSyntax},
		{name: "bad number", in: `{"a":01}`, kind: KindInvalidSyntax, reason: ErrJSONSyntax},
		{name: "bad escape", in: `{"a":"\x"}`, kind: KindInvalidSyntax, reason: ErrJSONSyntax},
		{name: "bad literal", in: `{"a":tru}`, kind: KindInvalidSyntax, reason: ErrJSONSyntax},
		{name: "syntax error names the attribute", in: `{"emails":[{"value":x}]}`, kind: KindInvalidSyntax, reason: ErrJSONSyntax, where: "at emails[0].value"},
		{name: "mismatched close", in: `{"a":[1}`, kind: KindInvalidSyntax, reason: ErrJSONSyntax},
		{name: "control character", in: "{\"a\":\"\n\"}", kind: KindInvalidSyntax, reason: ErrJSONSyntax},
		{name: "too deep", in: deep(9), kind: KindInvalidSyntax, reason: ErrJSONDepth, where: "8 levels"},
		// An escaped quote does not end the string: the brackets after it count.
		{name: "too deep after an escaped quote", in: `{"a":"x\"y","b":` + deep(8) + `}`, kind: KindInvalidSyntax, reason: ErrJSONDepth, where: "8 levels"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got any
			err := DecodeJSON([]byte(c.in), 8, &got)
			if c.reason == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				var want any
				d := json.NewDecoder(strings.NewReader(c.in))
				d.UseNumber()
				if err := d.Decode(&want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("decoded %#v, encoding/json %#v", got, want)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T), want a *scim.Error", err, err)
			}
			if se.Kind != c.kind || !errors.Is(err, c.reason) {
				t.Errorf("kind %v reason %v, want %v %v: %s", se.Kind, se.Err, c.kind, c.reason, se.Detail)
			}
			if !strings.Contains(se.Detail, c.where) {
				t.Errorf("detail %q does not say %q", se.Detail, c.where)
			}
			if !utf8.ValidString(se.Detail) {
				t.Errorf("detail is not UTF-8: %q", se.Detail)
			}
		})
	}
}

func TestDecodeJSONShape(t *testing.T) {
	var v struct{ Email string }
	err := DecodeJSON([]byte(`{"email":1}`), 8, &v)
	var se *Error
	if !errors.As(err, &se) || se.Kind != KindInvalidSyntax {
		t.Fatalf("a body of the wrong shape: %v, want KindInvalidSyntax", err)
	}
	var n any
	if err := DecodeJSON([]byte(`{"n":12345678901234567890}`), 0, &n); err != nil || n.(map[string]any)["n"] != json.Number("12345678901234567890") {
		t.Fatalf("numbers stay json.Number: %#v %v", n, err)
	}
	if err := CheckJSON([]byte(strings.Repeat("[", 5000)+strings.Repeat("]", 5000)), 0); err != nil {
		t.Fatalf("no depth limit with maxDepth 0: %v", err)
	}
}

// FuzzDecodeJSON: DecodeJSON never panics, and it decodes a body exactly when
// encoding/json decodes it as one value with nothing after it, no key twice (in any
// case), no NUL and no unpaired surrogate, within the depth limit; what it decodes
// is what encoding/json decodes.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"userName":"x"}`, `{"userName":"x"}}`, `{"userName":"x"}]`, `[1]]`, `{} {}`,
		`{"a":"\u0000"}`, `{"\u0000":1}`, "{\"a\":\"\x00\"}", `{"a":1,"a":2}`, `{"a":1,"A":2}`,
		`{"a":{"b":1,"b":2}}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]`,
	} {
		f.Add([]byte(s))
	}
	const maxDepth = 16
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got any
		err := DecodeJSON(raw, maxDepth, &got)

		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var want any
		decodes := d.Decode(&want) == nil
		trailing := decodes && len(bytes.TrimLeft(raw[d.InputOffset():], " \t\r\n")) > 0
		if err == nil {
			if !decodes || trailing {
				t.Fatalf("DecodeJSON accepts %q, which encoding/json refuses or has data after the value", raw)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("DecodeJSON decodes %q as %#v, encoding/json as %#v", raw, got, want)
			}
			if !utf8.Valid(raw) || bytes.Contains(raw, []byte{0}) {
				t.Fatalf("DecodeJSON accepts %q, which is not UTF-8 or holds a NUL byte", raw)
			}
			if dup, nul := fuzzScan(raw); dup || nul {
				t.Fatalf("DecodeJSON accepts %q, which has a duplicate key (%v) or a NUL (%v)", raw, dup, nul)
			}
			return
		}
		var se *Error
		if !errors.As(err, &se) || se.Detail == "" {
			t.Fatalf("DecodeJSON(%q): %v, want a *scim.Error with a detail", raw, err)
		}
		switch {
		case errors.Is(err, ErrJSONTrailing):
			if !decodes || !trailing {
				t.Fatalf("DecodeJSON(%q) reports trailing data: %s", raw, se.Detail)
			}
		case errors.Is(err, ErrJSONSyntax):
			if decodes && !trailing && utf8.Valid(raw) && !bytes.Contains(raw, []byte{0}) {
				t.Fatalf("DecodeJSON(%q) reports a syntax error that encoding/json does not: %s", raw, se.Detail)
			}
		case errors.Is(err, ErrJSONDuplicate):
			if dup, _ := fuzzScan(raw); !dup {
				t.Fatalf("DecodeJSON(%q) reports a duplicate key that is not there: %s", raw, se.Detail)
			}
		case errors.Is(err, ErrJSONNUL):
			if se.Kind != KindInvalidValue {
				t.Fatalf("a NUL is KindInvalidValue, got %v", se.Kind)
			}
			if _, nul := fuzzScan(raw); !nul && !bytes.Contains(raw, []byte{0}) && (decodes || !bytes.Contains(raw, []byte(`\u0000`))) {
				t.Fatalf("DecodeJSON(%q) reports a NUL that is not there: %s", raw, se.Detail)
			}
		case errors.Is(err, ErrJSONUnicode):
			if utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) && !bytes.Contains(raw, []byte(`\U`)) {
				t.Fatalf("DecodeJSON(%q) reports invalid Unicode in valid UTF-8 without escapes: %s", raw, se.Detail)
			}
		case errors.Is(err, ErrJSONDepth):
			if CheckJSONDepth(raw, maxDepth) == nil {
				t.Fatalf("DecodeJSON(%q) reports a depth over %d that CheckJSONDepth does not", raw, maxDepth)
			}
		case se.Err != nil && decodes && !trailing:
			// The shape did not fit v: cannot happen for *any.
			t.Fatalf("DecodeJSON(%q) into any: %v", raw, err)
		default:
			t.Fatalf("DecodeJSON(%q): %v has no reason", raw, err)
		}
		if se.Kind == KindInvalidValue && !errors.Is(err, ErrJSONNUL) {
			t.Fatalf("only a NUL is KindInvalidValue: %v", err)
		}
	})
}

// fuzzScan walks raw with encoding/json's tokenizer (valid JSON only) and reports
// whether an object names a key twice, case-insensitively, and whether a string or
// key holds a NUL.
func fuzzScan(raw []byte) (dup, nul bool) {
	d := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		object, wantKey bool
		keys            map[string]bool
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err != nil {
			return dup, nul
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.object && top.wantKey
		if s, ok := tok.(string); ok && strings.ContainsRune(s, 0) {
			nul = true
		}
		switch tok {
		case json.Delim('{'):
			if top != nil && top.object {
				top.wantKey = true
			}
			stack = append(stack, &frame{object: true, wantKey: true, keys: map[string]bool{}})
			continue
		case json.Delim('['):
			if top != nil && top.object {
				top.wantKey = true
			}
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			continue
		}
		switch {
		case isKey:
			k := strings.ToLower(tok.(string))
			if top.keys[k] {
				dup = true
			}
			top.keys[k] = true
			top.wantKey = false
		case top != nil && top.object:
			top.wantKey = true
		}
	}
}
