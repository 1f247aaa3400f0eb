package allowedsigners

import "strings"

// MatchPattern reports whether s matches pattern, where '*' matches any
// run of bytes (including none) and '?' exactly one byte, as in OpenSSH's
// match_pattern. Matching is byte-wise and case-sensitive.
func MatchPattern(s, pattern string) bool {
	// Greedy matching with backtracking to the last '*' only: linear in
	// practice and never exponential, unlike the naive recursion.
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && (pattern[pi] == '?' || pattern[pi] == s[si]):
			si++
			pi++
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}

// MatchList reports whether s matches the comma-separated pattern-list
// list: at least one pattern matches and no negated one ("!pattern") does,
// as in OpenSSH's match_pattern_list (a negated match wins, whatever the
// order).
func MatchList(s, list string) bool {
	positive := false
	for _, p := range strings.Split(list, ",") {
		negated := strings.HasPrefix(p, "!")
		if negated {
			p = p[1:]
		}
		if MatchPattern(s, p) {
			if negated {
				return false
			}
			positive = true
		}
	}
	return positive
}

// MatchAny is [MatchList] over patterns already split into a slice.
func MatchAny(s string, patterns []string) bool {
	return MatchList(s, strings.Join(patterns, ","))
}

// checkList reports what is wrong with a pattern-list, or "".
func checkList(list string) string {
	if list == "" {
		return "empty pattern-list"
	}
	positive := false
	for _, p := range strings.Split(list, ",") {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if p == "" {
			return "empty pattern in list " + quote(list)
		}
		if strings.ContainsAny(p, " \t\"") {
			return "pattern " + quote(p) + " contains a space or quote"
		}
		if !neg {
			positive = true
		}
	}
	if !positive {
		return "pattern-list " + quote(list) + " has only negated patterns, so it matches nothing"
	}
	return ""
}

// CheckList validates a pattern-list as used in principals, namespaces=
// and policies: non-empty patterns, no spaces or quotes, at least one
// pattern that is not negated.
func CheckList(list string) error {
	if msg := checkList(list); msg != "" {
		return patternError(msg)
	}
	return nil
}

type patternError string

func (e patternError) Error() string { return string(e) }
