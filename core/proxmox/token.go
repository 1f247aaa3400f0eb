package proxmox

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// Token is a full PVE API token, "USER@REALM!TOKENID=SECRET". Its String,
// GoString and MarshalText hide the secret, so printing a [Config] or
// logging a token never reveals it.
type Token string

const redacted = "REDACTED"

// ID returns the token ID part, "USER@REALM!TOKENID", or "" when the token
// is malformed.
func (t Token) ID() string {
	id, _, err := splitToken(string(t))
	if err != nil {
		return ""
	}
	return id
}

func (t Token) String() string {
	if id := t.ID(); id != "" {
		return id + "=" + redacted
	}
	if t == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the secret.
func (t Token) GoString() string { return fmt.Sprintf("proxmox.Token(%q)", t.String()) }

// MarshalText keeps encoders from writing the secret.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Validate checks the token's format. Its errors never contain the secret.
func (t Token) Validate() error {
	_, _, err := splitToken(string(t))
	return err
}

// authHeader is the Authorization header value for t.
func (t Token) authHeader() string { return "PVEAPIToken=" + string(t) }

// Name parts follow pve-access-control: user names exclude whitespace,
// ':' and '/'; realm and token names are [A-Za-z][A-Za-z0-9.\-_]+.
var tokenIDRe = regexp.MustCompile(`^[^\s:/@!=]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$`)

// splitToken splits "USER@REALM!TOKENID=SECRET" at the last '=' as
// pveproxy does, and validates both halves.
func splitToken(s string) (id, secret string, err error) {
	const want = "want USER@REALM!TOKENID=SECRET"
	if s == "" {
		return "", "", errors.New("token: empty; " + want)
	}
	i := strings.LastIndexByte(s, '=')
	if i < 0 {
		return "", "", errors.New("token: no '=' between token ID and secret; " + want)
	}
	id, secret = s[:i], s[i+1:]
	if !tokenIDRe.MatchString(id) {
		return "", "", errors.New("token: token ID is not USER@REALM!TOKENID (realm and token name start with a letter and use letters, digits, '.', '-', '_'); " + want)
	}
	if secret == "" {
		return "", "", fmt.Errorf("token %s: secret after '=' is empty", id)
	}
	// pveproxy ends the header value at ';' and URI-unescapes it; whitespace
	// and control characters would corrupt the header.
	for _, r := range secret {
		if r == ';' || r == '%' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", "", fmt.Errorf("token %s: secret contains a character not allowed in the header (';', '%%', whitespace or control)", id)
		}
	}
	return id, secret, nil
}
