package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The reasons DecodeJSON refuses a body, as the Err of the *Error it returns, for
// callers and tests that need more than the kind.
var (
	ErrJSONSyntax    = errors.New("not a JSON text")
	ErrJSONTrailing  = errors.New("data after the JSON value")
	ErrJSONDuplicate = errors.New("duplicate object key")
	ErrJSONNUL       = errors.New("NUL character in a string")
	ErrJSONUnicode   = errors.New("not valid Unicode")
	ErrJSONDepth     = errors.New("nested too deeply")
)

// DecodeJSON decodes a request body into v the way encoding/json's Decoder does with
// UseNumber (numbers stay json.Number), after checking what encoding/json lets
// through. raw must be exactly one JSON value (RFC 8259 §2) with nothing but
// whitespace after it; be UTF-8 with no unpaired surrogate escapes (RFC 8259 §8.1:
// encoding/json would replace them with U+FFFD, changing the client's data without a
// word); have no object that names a key twice, compared case-insensitively since SCIM
// attribute names are case-insensitive (RFC 7643 §2.1; RFC 8259 §4 leaves duplicate
// names unpredictable, and encoding/json keeps the last); hold no NUL character
// (U+0000) in any string or key, which PostgreSQL cannot store in text; and nest
// objects and arrays at most maxDepth levels (maxDepth <= 0: no limit). The scan is
// linear in len(raw) and needs memory for the keys of the open objects only.
//
// A refusal is a *Error of KindInvalidValue for a NUL and of KindInvalidSyntax for
// anything else, whose Detail names the problem and where (the key path, or the
// byte offset) and whose Err is one of the ErrJSON… reasons. A body that is valid but
// does not fit v is KindInvalidSyntax with encoding/json's error as Err.
func DecodeJSON(raw []byte, maxDepth int, v any) error {
	if err := CheckJSON(raw, maxDepth); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return &Error{Kind: KindInvalidSyntax, Detail: "the body does not have the expected shape: " + err.Error(), Err: err}
	}
	return nil
}

// CheckJSON applies DecodeJSON's checks to raw without decoding it.
func CheckJSON(raw []byte, maxDepth int) error {
	s := jsonScanner{b: raw, max: maxDepth, frames: make([]jsonFrame, 0, 8)}
	return s.run()
}

// jsonScanner checks one JSON text, iteratively (no recursion, so that the depth
// limit alone bounds the memory), keeping a frame for each open object or array.
type jsonScanner struct {
	b      []byte
	i      int
	max    int
	frames []jsonFrame
}

type jsonFrame struct {
	object bool
	index  int // the current index of an array
	// keys are an object's keys so far (the last is the current one); seen indexes
	// their folded forms once there are many.
	keys []jsonKey
	seen map[string]int
}

// jsonKey is one key of an object. A plain key (ASCII, no escapes), the usual
// kind, is kept as its place in the body and compared ASCII-case-insensitively,
// without allocating; any other is decoded.
type jsonKey struct {
	start, end int    // between the quotes, in the body
	plain      bool   // ASCII without escapes
	text       string // decoded, for a key that is not plain
}

func (s *jsonScanner) name(k jsonKey) string {
	if k.plain {
		return string(s.b[k.start:k.end])
	}
	return k.text
}

func (s *jsonScanner) fold(k jsonKey) string { return strings.ToLower(s.name(k)) }

// sameKey reports whether a and b name the same attribute: equal once lower-cased.
func (s *jsonScanner) sameKey(a, b jsonKey) bool {
	if a.plain && b.plain {
		return asciiEqualFold(s.b[a.start:a.end], s.b[b.start:b.end])
	}
	return s.fold(a) == s.fold(b)
}

func asciiEqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// manyKeys is the number of keys after which an object's keys are looked up in a
// map rather than compared one by one.
const manyKeys = 16

func (s *jsonScanner) run() error {
	s.space()
	if s.i == len(s.b) {
		return s.fail(KindInvalidSyntax, ErrJSONSyntax, "the body is empty; send one JSON value")
	}
value:
	for {
		// A value starts at s.i (after whitespace).
		if s.i == len(s.b) {
			return s.early()
		}
		switch c := s.b[s.i]; {
		case c == '{' || c == '[':
			if s.max > 0 && len(s.frames) >= s.max {
				return s.fail(KindInvalidSyntax, ErrJSONDepth, "the body nests JSON objects and arrays deeper than the limit of %d levels", s.max)
			}
			s.push(c == '{')
			s.i++
			s.space()
			if s.i < len(s.b) && (c == '{' && s.b[s.i] == '}' || c == '[' && s.b[s.i] == ']') {
				s.i++
				s.frames = s.frames[:len(s.frames)-1]
				break
			}
			if c == '{' {
				if err := s.member(); err != nil {
					return err
				}
			}
			continue value
		case c == '"':
			if _, err := s.str(false); err != nil {
				return err
			}
		case c == 't':
			if err := s.word("true"); err != nil {
				return err
			}
		case c == 'f':
			if err := s.word("false"); err != nil {
				return err
			}
		case c == 'n':
			if err := s.word("null"); err != nil {
				return err
			}
		case c == '-' || c >= '0' && c <= '9':
			if err := s.number(); err != nil {
				return err
			}
		default:
			return s.unexpected()
		}
		// A value ended: close what it ends, or go on to the next element.
		for {
			s.space()
			if len(s.frames) == 0 {
				if s.i < len(s.b) {
					return s.fail(KindInvalidSyntax, ErrJSONTrailing, "the body has data after its JSON value, at byte %d (%s); send exactly one JSON value", s.i, s.near())
				}
				return nil
			}
			if s.i == len(s.b) {
				return s.early()
			}
			f := &s.frames[len(s.frames)-1]
			switch c := s.b[s.i]; {
			case c == ',':
				s.i++
				s.space()
				if f.object {
					if err := s.member(); err != nil {
						return err
					}
				} else {
					f.index++
				}
				continue value
			case f.object && c == '}' || !f.object && c == ']':
				s.i++
				s.frames = s.frames[:len(s.frames)-1]
			default:
				return s.unexpected()
			}
		}
	}
}

// push opens a frame, reusing the memory of one closed before.
func (s *jsonScanner) push(object bool) {
	if n := len(s.frames); n < cap(s.frames) {
		s.frames = s.frames[:n+1]
		f := &s.frames[n]
		f.object, f.index, f.keys, f.seen = object, 0, f.keys[:0], nil
		return
	}
	s.frames = append(s.frames, jsonFrame{object: object})
}

// member reads an object's key and the colon after it, and checks the key against
// the object's earlier ones.
func (s *jsonScanner) member() error {
	if s.i == len(s.b) {
		return s.early()
	}
	if s.b[s.i] != '"' {
		return s.unexpected()
	}
	key, err := s.key()
	if err != nil {
		return err
	}
	f := &s.frames[len(s.frames)-1]
	prev := -1
	if f.seen != nil {
		if j, ok := f.seen[s.fold(key)]; ok {
			prev = j
		}
	} else {
		for j := range f.keys {
			if s.sameKey(f.keys[j], key) {
				prev = j
				break
			}
		}
	}
	if prev >= 0 {
		where := "at the top level"
		if p := s.path(len(s.frames) - 1); p != "" {
			where = "in " + p
		}
		if first := s.name(f.keys[prev]); first != s.name(key) {
			return s.fail(KindInvalidSyntax, ErrJSONDuplicate, "the body names %q and %q %s, which are the same attribute (attribute names are case-insensitive, RFC 7643 §2.1); give each attribute once", first, s.name(key), where)
		}
		return s.fail(KindInvalidSyntax, ErrJSONDuplicate, "the body names %q twice %s; give each attribute once", s.name(key), where)
	}
	if f.keys == nil {
		f.keys = make([]jsonKey, 0, 8)
	}
	f.keys = append(f.keys, key)
	switch {
	case f.seen != nil:
		f.seen[s.fold(key)] = len(f.keys) - 1
	case len(f.keys) > manyKeys:
		f.seen = make(map[string]int, 2*len(f.keys))
		for j, k := range f.keys {
			f.seen[s.fold(k)] = j
		}
	}
	s.space()
	if s.i == len(s.b) {
		return s.early()
	}
	if s.b[s.i] != ':' {
		return s.unexpected()
	}
	s.i++
	s.space()
	return nil
}

// key reads an object's key at s.i (a string, checked as str checks it).
func (s *jsonScanner) key() (jsonKey, error) {
	start := s.i + 1
	plain, err := s.str(true)
	if err != nil {
		return jsonKey{}, err
	}
	k := jsonKey{start: start, end: s.i - 1, plain: plain}
	if !plain {
		if k.text, err = s.decodeKey(start - 1); err != nil {
			return jsonKey{}, err
		}
	}
	return k, nil
}

// decodeKey decodes the checked string from start to s.i.
func (s *jsonScanner) decodeKey(start int) (string, error) {
	var text string
	if err := json.Unmarshal(s.b[start:s.i], &text); err != nil {
		return "", s.fail(KindInvalidSyntax, ErrJSONSyntax, "the body is not valid JSON: a bad key at byte %d", start)
	}
	return text, nil
}

// str reads a string at s.i, checking its escapes, its UTF-8 and that it holds no
// NUL, and reports whether it is plain: ASCII without escapes.
func (s *jsonScanner) str(key bool) (plain bool, err error) {
	start := s.i + 1
	plain = true
	for j := start; j < len(s.b); {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			return plain, nil
		case c == '\\':
			plain = false
			if j+1 == len(s.b) {
				s.i = len(s.b)
				return false, s.early()
			}
			switch s.b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				r, ok := hex4(s.b, j+2)
				if !ok {
					s.i = j
					return false, s.fail(KindInvalidSyntax, ErrJSONSyntax, "the body is not valid JSON: a bad \\u escape at byte %d", j)
				}
				j += 6
				switch {
				case r == 0:
					s.i = j
					return false, s.nul(key)
				case utf16.IsSurrogate(r):
					r2, ok := rune(0), false
					if r < 0xdc00 && j+1 < len(s.b) && s.b[j] == '\\' && s.b[j+1] == 'u' {
						r2, ok = hex4(s.b, j+2)
					}
					if !ok || utf16.DecodeRune(r, r2) == utf8.RuneError {
						s.i = j - 6
						return false, s.fail(KindInvalidSyntax, ErrJSONUnicode, "the body has a \\u escape at byte %d that is half of a UTF-16 surrogate pair, which names no character%s", j-6, s.at(key))
					}
					j += 6
				}
			default:
				s.i = j
				return false, s.fail(KindInvalidSyntax, ErrJSONSyntax, "the body is not valid JSON: a bad escape at byte %d", j)
			}
		case c < 0x20:
			s.i = j
			if c == 0 {
				return false, s.nul(key)
			}
			return false, s.fail(KindInvalidSyntax, ErrJSONSyntax, "the body is not valid JSON: a control character (byte %d) inside a string at byte %d; escape it", c, j)
		case c < utf8.RuneSelf:
			j++
		default:
			plain = false
			r, n := utf8.DecodeRune(s.b[j:])
			if r == utf8.RuneError && n <= 1 {
				s.i = j
				return false, s.fail(KindInvalidSyntax, ErrJSONUnicode, "the body is not valid UTF-8 at byte %d%s; send JSON as UTF-8 (RFC 8259 §8.1)", j, s.at(key))
			}
			j += n
		}
	}
	s.i = len(s.b)
	return false, s.early()
}

// nul is the refusal of a NUL character in a string or key.
func (s *jsonScanner) nul(key bool) error {
	what := "a string"
	if key {
		what = "a key"
	}
	return s.fail(KindInvalidValue, ErrJSONNUL, "the body has a NUL character (\\u0000) in %s%s, which scimd does not store", what, s.at(key))
}

// at names where the string being read is: a key " in" the object that holds
// it, a value " at" its path; "" at the top level.
func (s *jsonScanner) at(key bool) string {
	if key {
		if p := s.path(len(s.frames) - 1); p != "" {
			return " in " + p
		}
		return ""
	}
	if p := s.path(len(s.frames)); p != "" {
		return " at " + p
	}
	return ""
}

// path names the current position inside the first n open frames, as in
// name.givenName or Operations[0].value.
func (s *jsonScanner) path(n int) string {
	var b strings.Builder
	for _, f := range s.frames[:n] {
		if f.object {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			if len(f.keys) > 0 {
				b.WriteString(s.name(f.keys[len(f.keys)-1]))
			}
		} else {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		}
	}
	return b.String()
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (s *jsonScanner) word(w string) error {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return s.unexpected()
	}
	s.i += len(w)
	return nil
}

// number reads a number by RFC 8259 §6's grammar.
func (s *jsonScanner) number() error {
	end, ok := scanJSONNumber(s.b, s.i)
	s.i = end
	if !ok {
		return s.badNumber()
	}
	return nil
}

func (s *jsonScanner) badNumber() error {
	if s.i == len(s.b) {
		return s.early()
	}
	return s.unexpected()
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// near shows the bytes at s.i, shortened, for an error detail.
func (s *jsonScanner) near() string {
	end := min(s.i+20, len(s.b))
	return strconv.Quote(strings.ToValidUTF8(string(s.b[s.i:end]), "\uFFFD"))
}

func (s *jsonScanner) unexpected() error {
	where := ""
	if p := s.path(len(s.frames)); p != "" {
		where = " (at " + p + ")"
	}
	return s.fail(KindInvalidSyntax, ErrJSONSyntax, "the body is not valid JSON: syntax error at byte %d%s: unexpected %s", s.i, where, s.near())
}

func (s *jsonScanner) early() error {
	return s.fail(KindInvalidSyntax, ErrJSONSyntax, "the body is not valid JSON: syntax error at byte %d: the body ends inside a value", len(s.b))
}

func (s *jsonScanner) fail(kind ErrorKind, reason error, format string, args ...any) error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...), Err: reason}
}
