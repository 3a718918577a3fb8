package storetest

import (
	"errors"
	"slices"
	"strings"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/store"
)

// listFilterBooleans: a boolean compares as a boolean wherever it is stored, the
// active column, an extension attribute in the document and a sub-attribute of
// a multi-valued attribute (RFC 7644 §3.4.2.2), with eq and ne, and the same rows
// match on every database. An absent value is not equal to true or false, so ne
// matches it (as not (… eq …) does).
func listFilterBooleans(f *fixture) {
	tn := f.tenant("acme")
	ext := schemas.ScimdUserURN
	mk := func(userName string, active *bool, doc string) string {
		return f.create(&store.Resource{TenantID: tn.ID, Kind: store.KindUser, UserName: userName, Active: active, Doc: []byte(doc)}).ID
	}
	ann := mk("ann", ptr(true), `{"userName":"ann","active":true,"`+ext+`":{"emailVerified":true},
		"emails":[{"value":"ann@example.com","type":"work","primary":true},{"value":"ann@home.example","type":"home","primary":false}]}`)
	bob := mk("bob", ptr(false), `{"userName":"bob","active":false,"`+ext+`":{"emailVerified":false},
		"emails":[{"value":"bob@example.com","type":"work","primary":false}]}`)
	cat := mk("cat", nil, `{"userName":"cat","emails":[{"value":"cat@example.com","type":"work"}]}`)
	verified := ext + ":emailVerified"
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{`active eq true`, []string{ann}},
		{`active eq false`, []string{bob}},
		{`active ne true`, []string{bob, cat}},
		{`active ne false`, []string{ann, cat}},
		{verified + ` eq true`, []string{ann}},
		{verified + ` eq false`, []string{bob}},
		{verified + ` ne true`, []string{bob, cat}},
		{verified + ` ne false`, []string{ann, cat}},
		{verified + ` eq true and active eq true`, []string{ann}},
		{`emails[primary eq true]`, []string{ann}},
		{`emails[primary eq false]`, []string{ann, bob}},
		{`emails[primary ne true]`, []string{ann, bob, cat}},
		{`emails[type eq "work" and primary eq true]`, []string{ann}},
		{`emails[type eq "work" and primary eq false]`, []string{bob}},
		{`emails[type eq "home" and primary eq true]`, nil},
		{`emails.primary eq true`, []string{ann}},
		{`emails.primary eq false`, []string{ann, bob}},
	} {
		res, err := f.st.List(f.ctx, tn.ID, store.KindUser, store.ListOptions{Count: 10, Filter: parse(f.t, tc.filter)})
		if err != nil {
			f.t.Errorf("List(%s): %v", tc.filter, err)
			continue
		}
		if got := ids(res.Resources); !slices.Equal(got, tc.want) || res.Total != len(tc.want) {
			f.t.Errorf("List(%s) = %d %v, want %d %v (ann %s, bob %s, cat %s)", tc.filter, res.Total, got, len(tc.want), tc.want, ann, bob, cat)
		}
	}
}

// listFilterTooDeep: a filter nested more than 64 levels is refused as an invalid
// filter on every database, never run.
func listFilterTooDeep(f *fixture) {
	tn := f.tenant("acme")
	f.user(tn.ID, "ann")
	deep := strings.Repeat("not (", 64) + `userName eq "ann"` + strings.Repeat(")", 64)
	_, err := f.st.List(f.ctx, tn.ID, store.KindUser, store.ListOptions{Count: 10, Filter: parse(f.t, deep)})
	var fe *store.FilterError
	if !errors.As(err, &fe) || !errors.Is(err, store.ErrInvalidFilter) {
		f.t.Errorf("List with 65 levels: %v, want an invalid filter", err)
	}
}

// listFilterPresentEmpty: "pr" matches a non-empty value only (RFC 7644 §3.4.2.2): an
// empty string, reference or binary value is not present, on every database.
func listFilterPresentEmpty(f *fixture) {
	tn := f.tenant("acme")
	mk := func(userName, doc string) string {
		return f.create(&store.Resource{TenantID: tn.ID, Kind: store.KindUser, UserName: userName, Doc: []byte(doc)}).ID
	}
	ann := mk("ann", `{"userName":"ann","nickName":"annie","profileUrl":"https://example.com/ann",
		"x509Certificates":[{"value":"MIIBhTCCASugAwIBAgIQ"}]}`)
	bob := mk("bob", `{"userName":"bob","nickName":"","profileUrl":"","x509Certificates":[{"value":""}]}`)
	mk("cat", `{"userName":"cat"}`)
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{`nickName pr`, []string{ann}},               // string
		{`profileUrl pr`, []string{ann}},             // reference
		{`x509Certificates.value pr`, []string{ann}}, // binary
		{`x509Certificates[value pr]`, []string{ann}},
	} {
		res, err := f.st.List(f.ctx, tn.ID, store.KindUser, store.ListOptions{Count: 10, Filter: parse(f.t, tc.filter)})
		if err != nil {
			f.t.Errorf("List(%s): %v", tc.filter, err)
			continue
		}
		if got := ids(res.Resources); !slices.Equal(sortedIDs(got...), sortedIDs(tc.want...)) || res.Total != len(tc.want) {
			f.t.Errorf("List(%s) = %d %v, want %d %v (ann %s, bob %s)", tc.filter, res.Total, got, len(tc.want), tc.want, ann, bob)
		}
	}
}
