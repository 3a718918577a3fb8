package scim

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/scimd/scimd/schemas"
)

// value checks v against attribute a (RFC 7643 §2.3) and returns it in
// canonical form: sub-attribute names in schema casing, numbers as int64 or float64,
// absent parts (null, empty arrays and objects) dropped. The returned nil means
// "unassigned" (RFC 7643 §2.5). at names the value in error messages.
func (q *Quirks) value(a *schemas.Attribute, v any, at string) (any, error) {
	if v == nil {
		return nil, nil
	}
	if a.MultiValued {
		var items []any
		switch t := v.(type) {
		case []any:
			items = t
		case map[string]any:
			if err := q.use(QuirkSingleValue, KindInvalidValue, "%s must be an array, not a single object", at); err != nil {
				return nil, err
			}
			items = []any{t}

		default:
			return nil, errorf(KindInvalidValue, "%s must be an array", at)
		}
		if limit := multiValueLimit(a); len(items) > limit {
			return nil, errorf(KindInvalidValue, "%s has %d values; the limit is %d", at, len(items), limit)
		}
		out := make([]any, 0, len(items))
		for i, it := range items {
			x, err := q.single(a, it, at+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return nil, err
			}
			if x != nil {
				out = append(out, x)
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		out = dropDuplicates(a, out)
		keepOnePrimary(out)
		return out, nil
	}
	return q.single(a, v, at)
}

// dropDuplicates keeps the first of values of the multi-valued attribute a that are
// equal (RFC 7643 §2.4: the same type and value SHOULD NOT appear twice). Complex
// values are equal when every sub-attribute but "primary" is, strings compared as the
// sub-attribute's caseExact says (emails.value is not caseExact, RFC 7643 §8.7.1);
// this covers values without a "value" sub-attribute, such as addresses. A dropped
// value that was primary leaves the flag on the value kept. Values with the same type
// and value that differ in another sub-attribute (display) are all kept: dropping one
// would lose what the client sent.
func dropDuplicates(a *schemas.Attribute, items []any) []any {
	if len(items) < 2 {
		return items
	}
	seen := make(map[string]int, len(items))
	out := items[:0]
	for _, it := range items {
		k := dupKey(a, it)
		if i, dup := seen[k]; dup {
			if m, ok := it.(map[string]any); ok && m["primary"] == true {
				out[i].(map[string]any)["primary"] = true
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, it)
	}
	return out
}

// dupKey is the identity of a canonical value of a for dropDuplicates.
func dupKey(a *schemas.Attribute, v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return valueKey(a, v)
	}
	parts := make([]string, 0, len(m))
	for k, x := range m {
		if k == "primary" {
			continue
		}
		sub := a.Sub(k)
		if sub == nil {
			sub = a
		}
		parts = append(parts, strconv.Quote(k)+":"+valueKey(sub, x))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func valueKey(a *schemas.Attribute, v any) string {
	if s, ok := v.(string); ok && !a.CaseExact && (a.Type == schemas.String || a.Type == schemas.Reference) {
		v = strings.ToLower(s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// keepOnePrimary enforces RFC 7643 §2.4: "primary" true appears no more than once.
// The last value marked primary keeps it.
func keepOnePrimary(items []any) {
	last := -1
	for i, it := range items {
		if m, ok := it.(map[string]any); ok && m["primary"] == true {
			last = i
		}
	}
	for i, it := range items {
		if m, ok := it.(map[string]any); ok && i != last && m["primary"] == true {
			delete(m, "primary")
		}
	}
}

func (q *Quirks) single(a *schemas.Attribute, v any, at string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch a.Type {
	case schemas.Complex:
		m, ok := v.(map[string]any)
		if s, isStr := v.(string); isStr && a.Sub("value") != nil {
			// A bare id where a reference object belongs: manager: "id", members: ["id"].
			k := QuirkBareReference
			if a.Name == "members" {
				k = QuirkBareMember
			}
			if err := q.use(k, KindInvalidValue, "%s must be an object such as {\"value\": %q}", at, s); err != nil {
				return nil, err
			}
			m, ok = map[string]any{"value": s}, true
		}
		if !ok {
			return nil, errorf(KindInvalidValue, "%s must be an object", at)
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			sub := a.Sub(k)
			if sub == nil {
				continue // RFC 7644 §3.3: unknown attributes may be ignored
			}
			if sub.Mutability == schemas.ReadOnly {
				// RFC 7644 §3.3 and §3.5.1: values of readOnly attributes (the
				// enterprise manager.displayName, RFC 7643 §4.3) in a POST or PUT body
				// SHALL be ignored; a PATCH naming one is refused before it gets here.
				continue
			}
			if _, dup := out[sub.Name]; dup {
				return nil, errorf(KindInvalidSyntax, "%s.%s is given twice", at, sub.Name)
			}
			y, err := q.value(sub, x, at+"."+sub.Name)
			if err != nil {
				return nil, err
			}
			if y != nil {
				out[sub.Name] = y
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	case schemas.String, schemas.Reference:
		s, ok := v.(string)
		if !ok {
			return nil, errorf(KindInvalidValue, "%s must be a string", at)
		}
		if limit := valueLimit(a, at); len(s) > limit {
			return nil, errorf(KindInvalidValue, "%s is %d bytes long; the limit is %d bytes", at, len(s), limit)
		}
		return s, nil
	case schemas.Binary:
		s, ok := v.(string)
		if !ok {
			return nil, errorf(KindInvalidValue, "%s must be a base64 string", at)
		}
		if len(s) > MaxValueBytes {
			return nil, errorf(KindInvalidValue, "%s is %d bytes long; the limit is %d bytes", at, len(s), MaxValueBytes)
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			return nil, errorf(KindInvalidValue, "%s is not valid base64", at)
		}
		return s, nil
	case schemas.Boolean:
		switch t := v.(type) {
		case bool:
			return t, nil
		case string:
			if b, err := strconv.ParseBool(t); err == nil {
				if err := q.use(QuirkStringBoolean, KindInvalidValue, "%s must be a boolean (true or false), not the string %q", at, t); err != nil {
					return nil, err
				}
				return b, nil
			}
		}
		return nil, errorf(KindInvalidValue, "%s must be a boolean (true or false)", at)
	case schemas.Integer:
		if err := q.numberString(v, at, "an integer"); err != nil {
			return nil, err
		}
		n, ok := number(v)
		if !ok || n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return nil, errorf(KindInvalidValue, "%s must be an integer", at)
		}
		return int64(n), nil
	case schemas.Decimal:
		if err := q.numberString(v, at, "a number"); err != nil {
			return nil, err
		}
		n, ok := number(v)
		if !ok {
			return nil, errorf(KindInvalidValue, "%s must be a number", at)
		}
		return n, nil
	case schemas.DateTime:
		s, ok := v.(string)
		if !ok {
			return nil, errorf(KindInvalidValue, "%s must be a dateTime string", at)
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, errorf(KindInvalidValue, "%s: %q is not an RFC 3339 dateTime such as 2024-05-01T12:00:00Z", at, s)
		}
		return s, nil
	}
	return nil, errorf(KindInvalidValue, "%s has an unsupported type", at)
}

// numberString admits a number sent as a JSON string ("credits": "5") only as
// QuirkStringNumber: RFC 7643 §2.3.4 and §2.3.5 make integer and decimal JSON numbers,
// so for a client whose profile does not read the quirk it is 400 invalidValue.
func (q *Quirks) numberString(v any, at, what string) error {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	return q.use(QuirkStringNumber, KindInvalidValue, "%s must be %s, not the string %q", at, what, s)
}

func number(v any) (float64, bool) {
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		return f, err == nil
	case float64:
		return t, true
	case int64:
		return float64(t), true
	case int:
		return float64(t), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		return f, err == nil
	}
	return 0, false
}

// valueLimit is the longest string a value of a may be: MaxIndexedValueBytes for
// the top-level userName, externalId and displayName (at is then the attribute's
// own name), MaxValueBytes for every other.
func valueLimit(a *schemas.Attribute, at string) int {
	if at == a.Name && (a.Name == "userName" || a.Name == "externalId" || a.Name == "displayName") {
		return MaxIndexedValueBytes
	}
	return MaxValueBytes
}

// multiValueLimit is how many values the multi-valued attribute a may have.
func multiValueLimit(a *schemas.Attribute) int {
	if a.Name == "members" {
		return MaxMembersPerRequest
	}
	return MaxMultiValues
}
