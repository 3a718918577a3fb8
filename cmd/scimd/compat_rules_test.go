package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// The compat golden cases (testdata/compat/<family>/*.json) each name, in "rules",
// the rules of compat/CONTRACT.md they check. A case without rules, or citing an id
// the contract does not define (a rule renamed or removed), fails to load.

// contractRulePattern is how compat/CONTRACT.md defines a rule: a list item that
// starts with its id in bold code, "- **`partner.provision.existing`**".
var contractRulePattern = regexp.MustCompile("(?m)^- \\*\\*`([a-z][a-z0-9.-]*)`\\*\\*")

var contractRules = sync.OnceValues(func() (map[string]bool, error) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "compat", "CONTRACT.md"))
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, m := range contractRulePattern.FindAllStringSubmatch(string(raw), -1) {
		if ids[m[1]] {
			return nil, fmt.Errorf("compat/CONTRACT.md defines rule %s twice", m[1])
		}
		ids[m[1]] = true
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("compat/CONTRACT.md defines no rules")
	}
	return ids, nil
})

// checkContractRules reports what is wrong with a golden case's rules: none given,
// an id given twice, or an id compat/CONTRACT.md does not define.
func checkContractRules(rules []string) error {
	ids, err := contractRules()
	if err != nil {
		return err
	}
	if len(rules) == 0 {
		return fmt.Errorf(`"rules" is required: the ids of the compat/CONTRACT.md rules the case checks`)
	}
	seen := map[string]bool{}
	var unknown []string
	for _, r := range rules {
		if seen[r] {
			return fmt.Errorf("rule %s is named twice", r)
		}
		seen[r] = true
		if !ids[r] {
			unknown = append(unknown, r)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("compat/CONTRACT.md defines no rule %s", strings.Join(unknown, ", "))
	}
	return nil
}

// TestContractRules checks the check itself: defined ids pass, and a case without
// rules, with an unknown id or with an id twice fails.
func TestContractRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []string
		ok    bool
	}{
		{"defined", []string{"partner.provision.existing", "shared.email"}, true},
		{"none", nil, false},
		{"unknown", []string{"partner.provision.existing", "partner.no-such-rule"}, false},
		{"twice", []string{"shared.email", "shared.email"}, false},
		{"family_prefix_only", []string{"partner"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkContractRules(tc.rules); (err == nil) != tc.ok {
				t.Errorf("checkContractRules(%q) = %v, want ok %v", tc.rules, err, tc.ok)
			}
		})
	}
}
