package scimhttp

import (
	"bytes"
	"encoding/json"
	"testing"
)

// treeFrom builds a value of the kinds SCIM answers hold from data, deterministically.
func treeFrom(data []byte, depth int) (any, []byte) {
	if len(data) == 0 {
		return nil, data
	}
	op, data := data[0], data[1:]
	take := func(n int) string {
		n = min(n, len(data))
		s := string(data[:n])
		data = data[n:]
		return s
	}
	switch op % 10 {
	case 0:
		return nil, data
	case 1:
		return op&0x10 != 0, data
	case 2:
		return int(op) - 128, data
	case 3:
		return json.Number("12.5e3"), data
	case 4, 5:
		return take(int(op >> 3)), data
	case 6:
		var out []string
		if op&0x80 != 0 {
			return out, data // a nil slice is null
		}
		for range op >> 5 {
			out = append(out, take(3))
		}
		if out == nil {
			out = []string{}
		}
		return out, data
	case 7:
		if depth > 4 {
			return "deep", data
		}
		out := []any{}
		for range op >> 5 {
			var v any
			v, data = treeFrom(data, depth+1)
			out = append(out, v)
		}
		return out, data
	case 8:
		if depth > 4 {
			return 1.5, data
		}
		out := map[string]any{}
		for range op >> 5 {
			k := take(4)
			var v any
			v, data = treeFrom(data, depth+1)
			out[k] = v
		}
		return out, data
	default:
		return struct {
			A string `json:"a"`
		}{take(2)}, data
	}
}

func checkSameAsMarshal(t *testing.T, v any) {
	t.Helper()
	want, werr := json.Marshal(v)
	got, gerr := appendJSON(nil, v)
	if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("appendJSON(%#v) = %s, %v; json.Marshal = %s, %v", v, got, gerr, want, werr)
	}
}

func TestAppendJSON(t *testing.T) {
	for _, v := range []any{
		nil, true, false, 0, -42, int64(1 << 40), "", "plain", "quote\" back\\slash", "<script>&amp;</script>",
		"ctl \x00\x01\b\f\n\r\t\x1f\x7f", "bad utf8 \xff\xfe", "line\u2028para\u2029", "ünïcødé 日本 🎉",
		map[string]any(nil), []any(nil), []string(nil), map[string]any{}, []any{}, []string{},
		map[string]any{"b": 1, "a": []any{"x", map[string]any{"z": nil, "<": "&"}}, "é": []string{"u", "v"}},
		json.Number("1e3"), 1.5, map[string]any{"n": json.Number("x")}, // an invalid number fails both ways
	} {
		checkSameAsMarshal(t, v)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add([]byte{8 | 0x40, 'k', 'e', 'y', '1', 4 | 0x28, '<', 'a', '>', '&', 0xff})
	f.Add([]byte{7 | 0x60, 5 | 0x18, 0xe2, 0x80, 0xa8, 6 | 0x40, 'a', 'b', 'c', 'd', 'e', 'f', 2})
	f.Add([]byte("\x88\x00\x01\x02\x03\x87\x04\x05"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _ := treeFrom(data, 0)
		checkSameAsMarshal(t, v)
	})
}
