package scim

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// A Quirk is a way a client departs from RFC 7643/7644 that scimd can read anyway.
// Every quirk applied to a request is recorded, so an operator can see how far each
// client strays; a client profile decides which quirks are accepted at all.
type Quirk string

// The quirks scimd knows.
const (
	// QuirkOpCase: a PATCH op not in lower case ("Replace"); RFC 7644 §3.5.2 names
	// "add", "remove" and "replace".
	QuirkOpCase Quirk = "op_case"
	// QuirkStringBoolean: a boolean sent as a string ("False").
	QuirkStringBoolean Quirk = "string_boolean"
	// QuirkStringNumber: an integer or decimal sent as a string ("5").
	QuirkStringNumber Quirk = "string_number"
	// QuirkDottedKey: a PATCH value without path whose keys are attribute paths
	// ("name.givenName") rather than attributes.
	QuirkDottedKey Quirk = "dotted_key"
	// QuirkURNKey: an extension attribute given flat under its full name
	// ("urn:…:enterprise:2.0:User:manager") rather than inside its extension object.
	QuirkURNKey Quirk = "urn_key"
	// QuirkValuePathUpsert: replace on a value filter that matches nothing
	// (RFC 7644 §3.5.2.3: noTarget) creates the value the filter describes.
	QuirkValuePathUpsert Quirk = "valuepath_upsert"
	// QuirkBareReference: a complex reference (manager) given as a bare id string.
	QuirkBareReference Quirk = "bare_reference"
	// QuirkRemoveWithValue: remove on members with a value list, removing only those
	// members (RFC 7644 §3.5.2.2 defines remove by path alone).
	QuirkRemoveWithValue Quirk = "remove_with_value"
	// QuirkSingleValue: one object where a multi-valued attribute needs an array.
	QuirkSingleValue Quirk = "single_value_for_list"
	// QuirkBareMember: a member given as an id string rather than {"value": id}.
	QuirkBareMember Quirk = "bare_member"
	// QuirkMissingSchemas: a request body without its "schemas" attribute.
	QuirkMissingSchemas Quirk = "missing_schemas"
	// QuirkUnknownSchema: a schema URN in "schemas" that the resource type does not
	// have (an old Entra job sends an ADSCIM Group URN); it is ignored.
	QuirkUnknownSchema Quirk = "unknown_schema"
	// QuirkFilterSubAttribute: a filter comparing a sub-attribute after a value
	// path, emails[type eq "work"].value eq "x", outside the RFC 7644 §3.4.2.2
	// grammar; it is read as emails[type eq "work" and value eq "x"].
	QuirkFilterSubAttribute Quirk = "filter_valuepath_subattribute"
)

// AllQuirks lists every quirk.
var AllQuirks = []Quirk{QuirkOpCase, QuirkStringBoolean, QuirkStringNumber, QuirkDottedKey, QuirkURNKey, QuirkValuePathUpsert,
	QuirkBareReference, QuirkRemoveWithValue, QuirkSingleValue, QuirkBareMember, QuirkMissingSchemas,
	QuirkUnknownSchema, QuirkFilterSubAttribute}

// Client profiles: which quirks a token's requests may use.
const (
	// ProfileTolerant is the default: it reads the forms RFC 7643/7644 does not
	// define (a PATCH op in another case, a boolean as a string, …) but never
	// changes the result of a request the RFC defines, so it leaves out the quirks
	// that do (valuepath_upsert answers what §3.5.2.3 calls noTarget;
	// unknown_schema drops a schema the client named).
	ProfileTolerant = "rfc-tolerant"
	ProfileStrict   = "strict" // none: RFC 7643/7644 to the letter
	ProfileOkta     = "okta"
	ProfileEntra    = "entra"
	// ProfileLenient is the default profile's former name: tokens stored with it,
	// and --profile lenient, are read as ProfileTolerant.
	ProfileLenient = "lenient"
)

// Profiles lists the profile names.
var Profiles = []string{ProfileTolerant, ProfileStrict, ProfileOkta, ProfileEntra}

// profileQuirks are the quirks each profile accepts.
var profileQuirks = map[string][]Quirk{
	ProfileTolerant: {QuirkOpCase, QuirkStringBoolean, QuirkStringNumber, QuirkDottedKey, QuirkURNKey, QuirkBareReference,
		QuirkRemoveWithValue, QuirkSingleValue, QuirkBareMember, QuirkMissingSchemas, QuirkFilterSubAttribute},
	ProfileStrict: nil,
	// Okta's connector follows the RFC closely; it may send lone values for lists.
	ProfileOkta: {QuirkSingleValue},
	// Microsoft Entra ID's provisioning service, as its compliance notes describe.
	ProfileEntra: {QuirkOpCase, QuirkStringBoolean, QuirkStringNumber, QuirkDottedKey, QuirkURNKey, QuirkValuePathUpsert,
		QuirkBareReference, QuirkRemoveWithValue, QuirkSingleValue, QuirkUnknownSchema, QuirkFilterSubAttribute},
}

// ParseProfile checks a profile name and returns its canonical form: "" and the
// former name "lenient" are the default, rfc-tolerant.
func ParseProfile(name string) (string, error) {
	name = CanonicalProfile(name)
	if _, ok := profileQuirks[name]; !ok {
		return "", errorf(KindInvalidValue, "unknown client profile %q; profiles are %s", name, strings.Join(Profiles, ", "))
	}
	return name, nil
}

// CanonicalProfile is the profile a stored name stands for: "" (tokens from before
// profiles) and "lenient" (the default's former name) are ProfileTolerant.
func CanonicalProfile(name string) string {
	if name == "" || name == ProfileLenient {
		return ProfileTolerant
	}
	return name
}

// Quirks is the quirk ledger of one request: what its profile accepts and what was
// applied. A nil *Quirks accepts everything and records nothing.
type Quirks struct {
	profile string
	allowed map[Quirk]bool
	mu      sync.Mutex
	applied map[Quirk]int
}

// NewQuirks returns the ledger for a request made with profile.
func NewQuirks(profile string) *Quirks {
	profile = CanonicalProfile(profile)
	q := &Quirks{profile: profile, allowed: map[Quirk]bool{}, applied: map[Quirk]int{}}
	for _, k := range profileQuirks[profile] {
		q.allowed[k] = true
	}
	return q
}

// use records that quirk k is needed to read the request; it is an error carrying
// kind and a precise message when the profile does not accept it.
func (q *Quirks) use(k Quirk, kind ErrorKind, format string, args ...any) error {
	if q == nil {
		return nil
	}
	if !q.allowed[k] {
		return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...) + fmt.Sprintf(" (not accepted from a client with profile %q: %s)", q.profile, k)}
	}
	q.mu.Lock()
	q.applied[k]++
	q.mu.Unlock()
	return nil
}

// Applied returns the quirks applied so far and how often.
func (q *Quirks) Applied() map[string]int {
	if q == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make(map[string]int, len(q.applied))
	for k, n := range q.applied {
		out[string(k)] = n
	}
	return out
}

// Names returns the applied quirks' names, sorted.
func (q *Quirks) Names() []string {
	out := []string{}
	for k := range q.Applied() {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type quirksKey struct{}

// WithQuirks returns ctx carrying the request's quirk ledger.
func WithQuirks(ctx context.Context, q *Quirks) context.Context {
	return context.WithValue(ctx, quirksKey{}, q)
}

// QuirksFrom returns the ledger in ctx, or nil (accept everything, record nothing).
func QuirksFrom(ctx context.Context) *Quirks {
	q, _ := ctx.Value(quirksKey{}).(*Quirks)
	return q
}

// Accepts reports whether the profile accepts quirk k.
func (q *Quirks) Accepts(k Quirk) bool { return q == nil || q.allowed[k] }
