// Package allowedsigners parses OpenSSH allowed_signers files (ssh-keygen(1)
// "ALLOWED SIGNERS") and decides which entries grant a signing key.
//
// A line is `principals [options] keytype base64-key [comment]`. The
// principals token (double quotes allowed) is a pattern-list ('*', '?',
// '!' negation, see [MatchList]). Options are comma-separated and
// case-insensitive: cert-authority, namespaces="pattern-list",
// valid-after="TIME", valid-before="TIME", where TIME is YYYYMMDD[Z] or
// YYYYMMDDHHMM[SS][Z] (local time unless it ends in Z or UTC).
//
// Loading fails closed: one malformed line fails the whole file, and the
// error lists every bad line as FILE:LINE with what is wrong. Beyond what
// ssh-keygen refuses, this parser also refuses: unknown options, empty or
// all-negated pattern-lists, certificates as line keys, key types outside
// sshsig.SupportedKeyTypes (DSA included) and RSA keys below
// sshsig.MinRSABits, since such lines could never grant a signature here.
//
// It deliberately does not use ssh.ParseAuthorizedKey on whole lines: that
// function mistakes the principals token for an option when a line has no
// options and finds no key when it has some.
package allowedsigners

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz/sshsig"
	"golang.org/x/crypto/ssh"
)

// maxFileSize bounds what Load reads; real files are a few KiB.
const maxFileSize = 4 << 20

// File is a parsed allowed_signers file.
type File struct {
	Name    string // as given to Parse, used in messages
	Entries []Entry
}

// Entry is one line of the file.
type Entry struct {
	File string
	Line int
	// Principals is the principals pattern-list as written (quotes
	// removed).
	Principals    string
	CertAuthority bool
	// Namespaces is the namespaces= pattern-list; "" allows any.
	Namespaces string
	// ValidAfter and ValidBefore are zero when the option is absent.
	ValidAfter  time.Time
	ValidBefore time.Time
	// Key is the signing key, or the CA key when CertAuthority is set.
	Key     ssh.PublicKey
	Comment string
}

// Source names the entry as FILE:LINE.
func (e *Entry) Source() string { return fmt.Sprintf("%s:%d", e.File, e.Line) }

// Problem is one bad line.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// ParseError lists every bad line of a file that failed to load.
type ParseError struct {
	File     string
	Problems []Problem
}

func (e *ParseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "allowed_signers %s: %d bad line", e.File, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Load reads and parses the file at path; times without Z are local.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load allowed_signers: %w", err)
	}
	defer f.Close()
	data, err := readLimited(f)
	if err != nil {
		return nil, fmt.Errorf("load allowed_signers %s: %w", path, err)
	}
	return Parse(path, data, time.Local)
}

func readLimited(f *os.File) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("file exceeds %d bytes", maxFileSize)
	}
	return data, nil
}

// Parse parses file contents; name is used in messages and entries, loc
// is the zone for times without Z (nil means time.Local).
func Parse(name string, data []byte, loc *time.Location) (*File, error) {
	if loc == nil {
		loc = time.Local
	}
	if len(data) > maxFileSize {
		return nil, &ParseError{File: name, Problems: []Problem{{name, 0, fmt.Sprintf("file exceeds %d bytes", maxFileSize)}}}
	}
	f := &File{Name: name}
	var problems []Problem
	for i, raw := range strings.Split(string(data), "\n") {
		lineNo := i + 1
		line := strings.TrimSuffix(raw, "\r")
		e, msg := parseLine(line, loc)
		if msg != "" {
			problems = append(problems, Problem{name, lineNo, msg})
			continue
		}
		if e == nil {
			continue
		}
		e.File, e.Line = name, lineNo
		f.Entries = append(f.Entries, *e)
	}
	if len(problems) > 0 {
		return nil, &ParseError{File: name, Problems: problems}
	}
	return f, nil
}

// parseLine returns the entry, nil for a blank or comment line, or what is
// wrong with it.
func parseLine(line string, loc *time.Location) (*Entry, string) {
	if strings.IndexByte(line, 0) >= 0 {
		return nil, "line contains a NUL byte"
	}
	rest := strings.TrimLeft(line, " \t")
	if rest == "" || rest[0] == '#' {
		return nil, ""
	}
	e := &Entry{}

	principals, rest, msg := principalsToken(rest)
	if msg != "" {
		return nil, msg
	}
	if msg := checkList(principals); msg != "" {
		return nil, "principals: " + msg
	}
	e.Principals = principals

	tok, after := optionsToken(rest)
	if tok == "" {
		return nil, "missing key after principals"
	}
	if !isKeyType(tok) {
		if msg := parseOptions(e, tok, loc); msg != "" {
			return nil, msg
		}
		rest = after
	}

	keyType, rest := field(rest)
	b64, rest := field(rest)
	e.Comment = strings.TrimSpace(rest)
	if keyType == "" {
		return nil, "missing key type"
	}
	if b64 == "" {
		return nil, "missing base64 key after " + quote(keyType)
	}
	if keyType == ssh.InsecureKeyAlgoDSA {
		return nil, "DSA keys (ssh-dss) are not accepted"
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Sprintf("key is not valid base64: %v", err)
	}
	key, err := ssh.ParsePublicKey(raw)
	if err != nil {
		return nil, fmt.Sprintf("invalid %s key: %v", quote(keyType), err)
	}
	if key.Type() != keyType {
		return nil, fmt.Sprintf("key type %s does not match the encoded key %s", quote(keyType), key.Type())
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return nil, "a certificate cannot be listed as a key; list its CA key with cert-authority"
	}
	if err := sshsig.CheckKey(key); err != nil {
		return nil, err.Error()
	}
	e.Key = key
	return e, ""
}

// principalsToken splits off the first token; a leading double quote runs
// to the next double quote.
func principalsToken(s string) (tok, rest, msg string) {
	if strings.HasPrefix(s, `"`) {
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return "", "", "unterminated quote in principals"
		}
		tok, rest = s[1:1+end], s[2+end:]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			return "", "", "text right after the closing quote of principals"
		}
		return tok, strings.TrimLeft(rest, " \t"), ""
	}
	tok, rest = field(s)
	if strings.ContainsRune(tok, '"') {
		return "", "", "quote inside principals " + quote(tok)
	}
	return tok, rest, ""
}

// optionsToken splits off a token that ends at the first whitespace
// outside double quotes (\" does not end a quote).
func optionsToken(s string) (tok, rest string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && s[i+1] == '"':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == ' ' || c == '\t'):
			return s[:i], strings.TrimLeft(s[i:], " \t")
		}
	}
	return s, ""
}

func field(s string) (tok, rest string) {
	s = strings.TrimLeft(s, " \t")
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], strings.TrimLeft(s[i:], " \t")
	}
	return s, ""
}

func isKeyType(s string) bool {
	switch s {
	case ssh.KeyAlgoRSA, ssh.InsecureKeyAlgoDSA, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384,
		ssh.KeyAlgoECDSA521, ssh.KeyAlgoED25519, ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoSKED25519:
		return true
	}
	return strings.HasSuffix(s, "-cert-v01@openssh.com")
}

// parseOptions fills e from a comma-separated options token.
func parseOptions(e *Entry, tok string, loc *time.Location) string {
	seen := map[string]bool{}
	for _, opt := range splitOptions(tok) {
		name, value, hasValue := strings.Cut(opt, "=")
		lname := strings.ToLower(name)
		if lname == "" {
			return "empty option in " + quote(tok)
		}
		if seen[lname] {
			return "duplicate option " + quote(lname)
		}
		seen[lname] = true
		if lname == "cert-authority" {
			if hasValue {
				return "option cert-authority takes no value"
			}
			e.CertAuthority = true
			continue
		}
		switch lname {
		case "namespaces", "valid-after", "valid-before":
		default:
			return "unknown option " + quote(name) + " (or unsupported key type)"
		}
		if !hasValue {
			return "option " + lname + ` needs a value: ` + lname + `="..."`
		}
		v, msg := dequote(value)
		if msg != "" {
			return "option " + lname + ": " + msg
		}
		switch lname {
		case "namespaces":
			if msg := checkList(v); msg != "" {
				return "namespaces: " + msg
			}
			e.Namespaces = v
		case "valid-after", "valid-before":
			t, err := ParseTime(v, loc)
			if err != nil {
				return "option " + lname + ": " + err.Error()
			}
			if lname == "valid-after" {
				e.ValidAfter = t
			} else {
				e.ValidBefore = t
			}
		}
	}
	if !e.ValidAfter.IsZero() && !e.ValidBefore.IsZero() && !e.ValidBefore.After(e.ValidAfter) {
		return fmt.Sprintf("valid-before %s is not after valid-after %s",
			e.ValidBefore.Format(time.RFC3339), e.ValidAfter.Format(time.RFC3339))
	}
	return ""
}

// splitOptions splits on commas outside double quotes.
func splitOptions(s string) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && s[i+1] == '"':
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// dequote takes a "quoted" option value; \" stands for a quote.
func dequote(v string) (string, string) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", "value must be in double quotes"
	}
	inner := v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		if c == '\\' && i+1 < len(inner) && inner[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		if c == '"' {
			return "", "stray quote inside the value"
		}
		b.WriteByte(c)
	}
	if b.Len() == 0 {
		return "", "empty value"
	}
	return b.String(), ""
}

// ParseTime parses an allowed_signers time: YYYYMMDD, YYYYMMDDHHMM or
// YYYYMMDDHHMMSS, in loc unless suffixed by Z or UTC (any case).
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	v := s
	switch {
	case len(v) > 1 && (v[len(v)-1] == 'Z' || v[len(v)-1] == 'z'):
		v, loc = v[:len(v)-1], time.UTC
	case len(v) > 3 && strings.EqualFold(v[len(v)-3:], "UTC"):
		v, loc = v[:len(v)-3], time.UTC
	}
	var layout string
	switch len(v) {
	case 8:
		layout = "20060102"
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return time.Time{}, fmt.Errorf("time %s: want YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]", quote(s))
	}
	if _, err := strconv.ParseUint(v, 10, 64); err != nil {
		return time.Time{}, fmt.Errorf("time %s: not all digits", quote(s))
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %s: %v", quote(s), err)
	}
	return t, nil
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}
