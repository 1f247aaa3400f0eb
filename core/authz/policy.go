package authz

import (
	"fmt"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz/allowedsigners"
)

// PolicyRule lets principals matching Principals sign operations for
// capabilities matching Capabilities. Each element is one pattern with
// '*' and '?' wildcards; a leading '!' negates it, and a negated match
// excludes whatever the other patterns of the list match (OpenSSH
// pattern-list rules).
//
// Principals are matched against the identities allowed_signers grants
// the signing key (see [Result.Principals]): for a certificate, the
// certificate principal; for a plain key, the line's principal patterns
// as written. A plain-key line with a wildcard principal like *@example
// therefore only matches a policy pattern that matches the text
// "*@example" (such as "*@example" or "*"), never "alice@example".
type PolicyRule struct {
	Principals   []string `json:"principals"`
	Capabilities []string `json:"capabilities"`
}

// Policy is a list of rules; an op is allowed when any rule allows it.
type Policy []PolicyRule

// Validate reports the first malformed rule, naming it by index.
func (p Policy) Validate() error {
	for i, r := range p {
		for _, f := range []struct {
			name string
			list []string
		}{{"principals", r.Principals}, {"capabilities", r.Capabilities}} {
			if len(f.list) == 0 {
				return fmt.Errorf("policy rule %d: %s is empty", i, f.name)
			}
			for _, pat := range f.list {
				if strings.Contains(pat, ",") {
					return fmt.Errorf("policy rule %d: %s pattern %q contains a comma; give one pattern per element", i, f.name, pat)
				}
			}
			if err := allowedsigners.CheckList(strings.Join(f.list, ",")); err != nil {
				return fmt.Errorf("policy rule %d: %s: %w", i, f.name, err)
			}
		}
	}
	return nil
}

// Allow returns the first of principals that some rule allows to run
// capability, and whether there is one.
func (p Policy) Allow(principals []string, capability string) (string, bool) {
	for _, principal := range principals {
		for _, r := range p {
			if allowedsigners.MatchAny(principal, r.Principals) && allowedsigners.MatchAny(capability, r.Capabilities) {
				return principal, true
			}
		}
	}
	return "", false
}
