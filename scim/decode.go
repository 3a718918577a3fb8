package scim

import (
	"encoding/json"
	"unicode/utf8"
)

// decodeStored decodes a stored document, an object that scimd itself encoded,
// into the value encoding/json's Decoder with UseNumber gives (numbers as
// json.Number), without its reflection: reading the stored documents was a fifth of
// the server CPU of a page of 100 users. It handles objects, arrays, strings
// without escapes, numbers, booleans and null; ok is false, having decided nothing,
// for anything else (an escaped or invalid string, a malformed number, input that
// is not an object), which the caller decodes with encoding/json instead.
// FuzzDecodeStored holds the two equal.
func decodeStored(b []byte) (m map[string]any, ok bool) {
	p := storedParser{b: b}
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, false
	}
	v, ok := p.value(0)
	if !ok {
		return nil, false
	}
	return v.(map[string]any), true
}

// maxStoredDepth is deeper than any stored document; deeper input is left to
// encoding/json.
const maxStoredDepth = 64

type storedParser struct {
	b []byte
	i int
}

func (p *storedParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *storedParser) value(depth int) (any, bool) {
	if depth > maxStoredDepth {
		return nil, false
	}
	p.space()
	if p.i >= len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '{':
		p.i++
		m := map[string]any{}
		if p.empty('}') {
			return m, true
		}
		for {
			p.space()
			k, ok := p.str()
			if !ok {
				return nil, false
			}
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, false
			}
			p.i++
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			m[k] = v
			if done, ok := p.after('}'); !ok || done {
				return m, ok
			}
		}
	case c == '[':
		p.i++
		a := []any{}
		if p.empty(']') {
			return a, true
		}
		for {
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			a = append(a, v)
			if done, ok := p.after(']'); !ok || done {
				return a, ok
			}
		}
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.word("true")
	case c == 'f':
		return false, p.word("false")
	case c == 'n':
		return nil, p.word("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, false
}

// empty skips the end of an object or array that closes at once, and reports it.
func (p *storedParser) empty(end byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == end {
		p.i++
		return true
	}
	return false
}

// after reads what follows an element of an object or array that end closes: a
// comma (not done) or end (done); anything else is not ok.
func (p *storedParser) after(end byte) (done, ok bool) {
	p.space()
	if p.i >= len(p.b) {
		return false, false
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return false, true
	case end:
		p.i++
		return true, true
	}
	return false, false
}

func (p *storedParser) word(w string) bool {
	if len(p.b)-p.i < len(w) || string(p.b[p.i:p.i+len(w)]) != w {
		return false
	}
	p.i += len(w)
	return true
}

// str reads a string without escapes or control characters, valid UTF-8.
func (p *storedParser) str() (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := p.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			p.i = j + 1
			return string(s), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// number reads a number by RFC 8259's grammar, as json.Number.
func (p *storedParser) number() (any, bool) {
	start := p.i
	end, ok := scanJSONNumber(p.b, p.i)
	p.i = end
	if !ok {
		return nil, false
	}
	return json.Number(p.b[start:end]), true
}

// scanJSONNumber reads the number that starts at b[i] (a '-' or a digit) by RFC 8259
// §6's grammar. end is where the reading stopped: after the number when ok, at the
// byte that broke the grammar (or len(b)) when not.
func scanJSONNumber(b []byte, i int) (end int, ok bool) {
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return i, false
		}
	}
	return i, true
}
