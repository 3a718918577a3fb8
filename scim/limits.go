package scim

import (
	"context"

	"github.com/scim2/filter-parser/v2"

	"github.com/scimd/scimd/store"
)

// Limits on hostile input that do not depend on configuration. Each refusal is a
// 400 whose detail names the limit and its value (RFC 7644 §3.12).
const (
	// MaxValueBytes bounds one string, reference or binary value, so that no
	// single attribute can carry a body-sized payload.
	MaxValueBytes = 64 << 10
	// MaxIndexedValueBytes bounds userName, externalId and displayName, which the
	// store keeps in indexed columns: a PostgreSQL B-tree entry must stay under about
	// 2.7 kB, and case folding may grow a string by half. 1 KiB is far above what
	// identity providers send (Okta logins and Entra user principal names are at
	// most a few hundred characters).
	MaxIndexedValueBytes = 1 << 10
	// MaxMultiValues bounds the values of one multi-valued attribute of a resource
	// (emails, roles, entitlements, …) other than a group's members. PATCH checks
	// it before adding, so an add compares at most this many values with each new
	// one.
	MaxMultiValues = 100
	// MaxMembersPerRequest bounds the members one request names: a group's members
	// in a POST or PUT body, or all member values of one PATCH request's
	// operations together. Each is a row written in one transaction; larger groups
	// are built with several PATCH requests.
	MaxMembersPerRequest = 10000
)

// CheckJSONDepth refuses a JSON text whose objects and arrays nest more than max
// levels deep, before it is decoded: the scan is linear and allocates nothing, so
// a deeply nested body costs no more than reading it. Anything else about raw
// (its syntax) is left to the decoder. max <= 0 turns the check off.
func CheckJSONDepth(raw []byte, max int) error {
	if max <= 0 {
		return nil
	}
	if nesting(raw, '{', '[', '}', ']', max) > max {
		return errorf(KindInvalidSyntax, "the body nests JSON objects and arrays deeper than the limit of %d levels", max)
	}
	return nil
}

// filterDepth is how deeply a filter nests parentheses (grouping and not (…)) and
// value paths ([…]), outside its quoted strings.
func filterDepth(raw string) int { return nesting(raw, '(', '[', ')', ']', 0) }

// nesting is the deepest nesting of the brackets open1/open2 … close1/close2 in
// raw, outside its double-quoted strings (with backslash escapes, as in JSON and
// SCIM filters). With stop > 0 it returns as soon as the depth passes stop, so a
// deeply nested input costs no more than reading it up to there.
func nesting[T string | []byte](raw T, open1, open2, close1, close2 byte, stop int) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for i := 0; i < len(raw); i++ {
		b := raw[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			}
			continue
		}
		switch b {
		case '"':
			inString = true
		case open1, open2:
			depth++
			deepest = max(deepest, depth)
			if stop > 0 && deepest > stop {
				return deepest
			}
		case close1, close2:
			if depth > 0 {
				depth--
			}
		}
	}
	return deepest
}

// checkFilterDepth refuses a filter that nests deeper than max levels (RFC 7644
// §3.4.2.2 sets no bound; each level costs the database a nested expression, and
// SQLite's SQL parser gives up at about 18 nested not (…)). max <= 0 turns the
// check off.
func checkFilterDepth(raw string, max int) error {
	if max <= 0 {
		return nil
	}
	if d := filterDepth(raw); d > max {
		return errorf(KindInvalidFilter, "the filter nests parentheses, not (…) and […] %d levels deep; the limit is %d", d, max)
	}
	return nil
}

// parseListFilter parses a list's filter within the length and depth limits.
func (s *Service) parseListFilter(ctx context.Context, raw string) (filter.Expression, error) {
	if l := s.limits.MaxFilterLength; l > 0 && len(raw) > l {
		return nil, errorf(KindInvalidFilter, "the filter is %d bytes long; the limit is %d", len(raw), l)
	}
	if err := checkFilterDepth(raw, s.limits.MaxFilterDepth); err != nil {
		return nil, err
	}
	return ParseClientFilter(raw, s.limits.MaxFilterLength, QuirksFrom(ctx))
}

// checkSize refuses a resource whose stored document would exceed
// Limits.MaxResourceBytes (a PATCH that keeps adding values would otherwise grow it
// without bound).
func (s *Service) checkSize(sr *store.Resource) error {
	if l := s.limits.MaxResourceBytes; l > 0 && len(sr.Doc) > l {
		return errorf(KindInvalidValue, "the %s's attributes would take %d bytes of JSON; the limit is %d", sr.Kind, len(sr.Doc), l)
	}
	return nil
}
