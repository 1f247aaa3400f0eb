package allowedsigners

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz/internal/keygentest"
	"golang.org/x/crypto/ssh"
)

func edKey(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

func TestParseGoodLines(t *testing.T) {
	_, k1 := edKey(t)
	_, k2 := edKey(t)
	_, k3 := edKey(t)
	_, k4 := edKey(t)
	data := strings.Join([]string{
		"# operators",
		"",
		"   ",
		"alice@example " + k1 + " alice laptop",
		// The trap: x/crypto would read the principals as an option here.
		`"bob@example,carol@example" ` + `NAMESPACES="felhom-op,file",Valid-After="20240101",valid-before="20990101123000Z" ` + k2,
		"*@example cert-authority " + k3,
		"\tdave@example valid-after=\"202401011200\" " + k4 + "\r",
	}, "\n")
	loc := time.FixedZone("test", 2*3600)
	f, err := Parse("signers", []byte(data), loc)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Entries) != 4 {
		t.Fatalf("%d entries, want 4", len(f.Entries))
	}
	a, b, c, d := f.Entries[0], f.Entries[1], f.Entries[2], f.Entries[3]
	if a.Principals != "alice@example" || a.Line != 4 || a.Comment != "alice laptop" || a.CertAuthority || a.Namespaces != "" {
		t.Errorf("alice entry: %+v", a)
	}
	if a.Source() != "signers:4" {
		t.Errorf("source %q", a.Source())
	}
	if b.Principals != "bob@example,carol@example" || b.Namespaces != "felhom-op,file" {
		t.Errorf("bob entry: %+v", b)
	}
	if want := time.Date(2024, 1, 1, 0, 0, 0, 0, loc); !b.ValidAfter.Equal(want) {
		t.Errorf("valid-after %v, want %v (local zone)", b.ValidAfter, want)
	}
	if want := time.Date(2099, 1, 1, 12, 30, 0, 0, time.UTC); !b.ValidBefore.Equal(want) {
		t.Errorf("valid-before %v, want %v (Z is UTC)", b.ValidBefore, want)
	}
	if !c.CertAuthority || c.Principals != "*@example" {
		t.Errorf("ca entry: %+v", c)
	}
	if want := time.Date(2024, 1, 1, 12, 0, 0, 0, loc); !d.ValidAfter.Equal(want) || d.Comment != "" {
		t.Errorf("dave entry: %+v", d)
	}
	if strings.TrimSpace(string(ssh.MarshalAuthorizedKey(b.Key))) != k2 {
		t.Errorf("bob's key is not the one on the line")
	}
}

func TestParseBadLines(t *testing.T) {
	_, k := edKey(t)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPub, _ := ssh.NewPublicKey(&ecPriv.PublicKey)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallPub, _ := ssh.NewPublicKey(&small.PublicKey)
	b64 := strings.Fields(k)[1]
	cases := []struct{ line, want string }{
		{"alice@example", "missing key"},
		{"alice@example ssh-ed25519", "missing base64"},
		{"alice@example ssh-ed25519 !!!", "base64"},
		{"alice@example ssh-rsa " + b64, "does not match"},
		{"alice@example " + ssh.KeyAlgoECDSA384 + " " + strings.Fields(string(ssh.MarshalAuthorizedKey(ecPub)))[1], "does not match"},
		{`"alice@example ` + k, "unterminated quote"},
		{`"alice@example"x ` + k, "after the closing quote"},
		{`al"ice ` + k, "quote inside principals"},
		{"alice@example,,bob " + k, "empty pattern"},
		{"!alice@example " + k, "only negated"},
		{"alice@example bogus " + k, `unknown option "bogus"`},
		{"alice@example cert-authority,CERT-AUTHORITY " + k, `duplicate option "cert-authority"`},
		{`alice@example namespaces="a",namespaces="b" ` + k, `duplicate option "namespaces"`},
		{`alice@example valid-after="20240101",VALID-AFTER="20240102" ` + k, "duplicate option"},
		{`alice@example namespaces=felhom-op ` + k, "double quotes"},
		{`alice@example namespaces ` + k, "needs a value"},
		{`alice@example namespaces="" ` + k, "empty value"},
		{`alice@example cert-authority="yes" ` + k, "takes no value"},
		{`alice@example valid-after="2024-01-01" ` + k, "YYYYMMDD"},
		{`alice@example valid-after="2024010" ` + k, "YYYYMMDD"},
		{`alice@example valid-after="20241301" ` + k, "valid-after"},
		{`alice@example valid-after="2024010a" ` + k, "digits"},
		{`alice@example valid-after="20250101",valid-before="20240101" ` + k, "not after valid-after"},
		{`alice@example valid-after="20240101",valid-before="20240101" ` + k, "not after valid-after"},
		{"alice@example " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(smallPub))), "1024-bit"},
		{"alice@example ssh-dss AAAAB3NzaC1kc3MAAAABFwAAAAELAAAAAQQAAAABCA==", "DSA keys (ssh-dss) are not accepted"},
		{"alice@example\x00 " + k, "NUL"},
	}
	for _, tc := range cases {
		_, err := Parse("f", []byte(tc.line+"\n"), time.UTC)
		var pe *ParseError
		if !errors.As(err, &pe) || len(pe.Problems) != 1 {
			t.Errorf("%q: %v, want one problem", tc.line, err)
			continue
		}
		if p := pe.Problems[0]; p.Line != 1 || !strings.Contains(p.Msg, tc.want) {
			t.Errorf("%q: problem %q, want line 1 mentioning %q", tc.line, p, tc.want)
		}
	}
}

// TestOneBadLineFailsTheFile: fail closed, listing every bad line.
func TestOneBadLineFailsTheFile(t *testing.T) {
	_, k := edKey(t)
	data := "alice@example " + k + "\nbob@example nope " + k + "\n# fine\ncarol@example\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if f != nil || err == nil {
		t.Fatalf("load succeeded with bad lines: %+v", f)
	}
	msg := err.Error()
	for _, want := range []string{path + ":2: unknown option \"nope\"", path + ":4: missing key", "2 bad lines"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, ":1:") || strings.Contains(msg, ":3:") {
		t.Errorf("error blames good lines: %q", msg)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
}

func TestMatchPattern(t *testing.T) {
	cases := []struct {
		s, p string
		want bool
	}{
		{"alice@example", "alice@example", true},
		{"alice@example", "*@example", true},
		{"alice@example", "*", true},
		{"", "*", true},
		{"", "", true},
		{"a", "", false},
		{"alice@example", "?lice@example", true},
		{"alice@example", "??lice@example", false},
		{"alice@example", "a*e", true},
		{"alice@example", "a*x", false},
		{"alice@example", "*@*", true},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*a*a*a*a*a*c", false},
		{"abcabd", "*abd", true},
		{"Alice@example", "alice@example", false},
	}
	for _, tc := range cases {
		if got := MatchPattern(tc.s, tc.p); got != tc.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tc.s, tc.p, got, tc.want)
		}
	}
	lists := []struct {
		s, list string
		want    bool
	}{
		{"alice@example", "bob@example,alice@example", true},
		{"alice@example", "*@example,!alice@example", false},
		{"alice@example", "!alice@example,*@example", false},
		{"bob@example", "*@example,!alice@example", true},
		{"bob@other", "*@example,!alice@example", false},
		{"felhom-op", "felhom-*", true},
	}
	for _, tc := range lists {
		if got := MatchList(tc.s, tc.list); got != tc.want {
			t.Errorf("MatchList(%q, %q) = %v, want %v", tc.s, tc.list, got, tc.want)
		}
	}
}

// TestMatchListAgreesWithKeygen checks MatchList against OpenSSH's own
// match_pattern_list through `ssh-keygen -Y match-principals`.
func TestMatchListAgreesWithKeygen(t *testing.T) {
	keygentest.Path(t)
	_, k := edKey(t)
	lists := []string{"alice@example", "*@example", "*@example,!mallory@example", "!mallory@example,*",
		"a?ice@*", "*a*e*", "bob@example,carol@example", "*@sub.example.com"}
	ids := []string{"alice@example", "mallory@example", "bob@example", "alce@example", "x@sub.example.com", "ace"}
	dir := t.TempDir()
	for i, list := range lists {
		path := filepath.Join(dir, "as")
		if err := os.WriteFile(path, []byte(list+" "+k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			_, _, err := keygentest.Try(t, nil, "-Y", "match-principals", "-f", path, "-I", id)
			want := err == nil
			if got := MatchList(id, list); got != want {
				t.Errorf("case %d: MatchList(%q, %q) = %v, ssh-keygen says %v", i, id, list, got, want)
			}
		}
	}
}

func TestFind(t *testing.T) {
	alice, ka := edKey(t)
	bob, kb := edKey(t)
	stranger, _ := edKey(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	data := strings.Join([]string{
		"alice@example,!alice-old@example " + ka,
		`ops@example namespaces="felhom-op" ` + ka,
		`bob@example namespaces="other-ns" ` + kb,
		`bob@example valid-before="20260101Z" ` + kb,
		`bob@example valid-after="20270101Z" ` + kb,
	}, "\n")
	f, err := Parse("as", []byte(data), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	q := Query{Namespace: "felhom-op", Now: now}

	m, err := f.Find(alice.PublicKey(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m[0].Entry.Line != 1 || m[1].Entry.Line != 2 {
		t.Fatalf("matches %+v, want lines 1 and 2", m)
	}
	if got := m[0].Principals; len(got) != 1 || got[0] != "alice@example" {
		t.Errorf("principals %q, want negated pattern dropped", got)
	}

	q2 := q
	q2.Namespace = "file"
	if m, _ := f.Find(alice.PublicKey(), q2); len(m) != 1 || m[0].Entry.Line != 1 {
		t.Errorf("namespace file: %+v, want only the unrestricted line", m)
	}
	q3 := q
	q3.Principal = "ops@example"
	if m, err := f.Find(alice.PublicKey(), q3); err != nil || len(m) != 1 || m[0].Principals[0] != "ops@example" {
		t.Errorf("principal ops@example: %+v %v", m, err)
	}

	check := func(name string, key ssh.PublicKey, q Query, want error, source string) {
		t.Helper()
		_, err := f.Find(key, q)
		var me *MatchError
		if !errors.Is(err, want) || !errors.As(err, &me) || me.Source != source {
			t.Errorf("%s: %v (source %v), want %v at %q", name, err, me, want, source)
		}
	}
	check("stranger", stranger.PublicKey(), q, ErrUnknownKey, "")
	q4 := q
	q4.Principal = "alice-old@example"
	check("negated principal", alice.PublicKey(), q4, ErrPrincipalMismatch, "as:1")
	// bob: three lines, each fails an option; the first reported.
	check("bob", bob.PublicKey(), q, ErrNamespace, "as:3")
	q5 := q
	q5.Namespace = "other-ns"
	q5.Now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if _, err := f.Find(bob.PublicKey(), q5); err != nil {
		t.Errorf("bob in other-ns: %v", err)
	}
	// Expired and not-yet-valid: make the namespace line irrelevant.
	f2, _ := Parse("as", []byte(strings.Join(strings.Split(data, "\n")[3:], "\n")), time.UTC)
	check2 := func(name string, q Query, want error) {
		t.Helper()
		if _, err := f2.Find(bob.PublicKey(), q); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	check2("expired", q, ErrExpired)
	// valid-before is inclusive, as in OpenSSH.
	qb := q
	qb.Now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := f2.Find(bob.PublicKey(), qb); err != nil {
		t.Errorf("at valid-before exactly: %v", err)
	}
	qa := q
	qa.Now = time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	// Both lines fail; the first in file order is reported.
	check2("between the windows", qa, ErrExpired)
	f3, _ := Parse("as", []byte(strings.Split(data, "\n")[4]), time.UTC)
	if _, err := f3.Find(bob.PublicKey(), qa); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("before valid-after: %v, want ErrNotYetValid", err)
	}
}

func TestFindCertificates(t *testing.T) {
	ca, kca := edKey(t)
	otherCA, _ := edKey(t)
	user, _ := edKey(t)
	now := time.Now()
	mk := func(signer ssh.Signer, typ uint32, principals []string, after, before time.Time, crit map[string]string) *ssh.Certificate {
		c := &ssh.Certificate{Key: user.PublicKey(), CertType: typ, KeyId: "op-cert", ValidPrincipals: principals,
			ValidAfter: uint64(after.Unix()), ValidBefore: uint64(before.Unix()), Permissions: ssh.Permissions{CriticalOptions: crit}}
		if err := c.SignCert(rand.Reader, signer); err != nil {
			t.Fatal(err)
		}
		return c
	}
	f, err := Parse("as", []byte("*@example,!mallory@example cert-authority "+kca+"\n"), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	q := Query{Namespace: "felhom-op", Now: now}
	hour := time.Hour
	good := mk(ca, ssh.UserCert, []string{"alice@example", "alice@elsewhere", "mallory@example"}, now.Add(-hour), now.Add(hour), nil)
	m, err := f.Find(good, q)
	if err != nil {
		t.Fatal(err)
	}
	if got := m[0].Principals; len(got) != 1 || got[0] != "alice@example" || m[0].Cert != good {
		t.Errorf("principals %q, want only alice@example", got)
	}
	qa := q
	qa.Principal = "alice@example"
	if _, err := f.Find(good, qa); err != nil {
		t.Errorf("alice: %v", err)
	}
	for _, tc := range []struct {
		name      string
		cert      *ssh.Certificate
		principal string
		want      error
	}{
		{"bob not in cert", good, "bob@example", ErrPrincipalMismatch},
		{"negated in line", good, "mallory@example", ErrPrincipalMismatch},
		{"other CA", mk(otherCA, ssh.UserCert, []string{"alice@example"}, now.Add(-hour), now.Add(hour), nil), "", ErrUnknownKey},
		{"host cert", mk(ca, ssh.HostCert, []string{"alice@example"}, now.Add(-hour), now.Add(hour), nil), "", ErrCertInvalid},
		{"expired", mk(ca, ssh.UserCert, []string{"alice@example"}, now.Add(-2*hour), now.Add(-hour), nil), "", ErrExpired},
		{"future", mk(ca, ssh.UserCert, []string{"alice@example"}, now.Add(hour), now.Add(2*hour), nil), "", ErrNotYetValid},
		{"critical option", mk(ca, ssh.UserCert, []string{"alice@example"}, now.Add(-hour), now.Add(hour), map[string]string{"force-command": "/bin/true"}), "", ErrCertInvalid},
		{"no matching principal", mk(ca, ssh.UserCert, []string{"alice@other"}, now.Add(-hour), now.Add(hour), nil), "", ErrPrincipalMismatch},
	} {
		q := q
		q.Principal = tc.principal
		if _, err := f.Find(tc.cert, q); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A CA that signs with SHA-1 ssh-rsa is refused, as OpenSSH does by
	// default.
	rsaCAKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaCA, _ := ssh.NewSignerFromKey(rsaCAKey)
	sha1CA, err := ssh.NewSignerWithAlgorithms(rsaCA.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSA})
	if err != nil {
		t.Fatal(err)
	}
	fr, err := Parse("as", []byte("*@example cert-authority "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(rsaCA.PublicKey())))), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fr.Find(mk(sha1CA, ssh.UserCert, []string{"alice@example"}, now.Add(-hour), now.Add(hour), nil), q); !errors.Is(err, ErrCertSHA1) {
		t.Errorf("sha-1 CA signature: %v, want ErrCertSHA1", err)
	}
	if _, err := fr.Find(mk(rsaCA, ssh.UserCert, []string{"alice@example"}, now.Add(-hour), now.Add(hour), nil), q); err != nil {
		t.Errorf("rsa-sha2 CA signature: %v", err)
	}

	// A tampered certificate (principal swapped after signing) fails the
	// CA signature check.
	forged := *good
	forged.ValidPrincipals = []string{"alice@example", "root@example"}
	qr := q
	qr.Principal = "root@example"
	if _, err := f.Find(&forged, qr); !errors.Is(err, ErrCertInvalid) {
		t.Errorf("forged cert: %v, want ErrCertInvalid", err)
	}
	// The plain user key is not granted by a cert-authority line.
	if _, err := f.Find(user.PublicKey(), q); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("plain key against a CA line: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	_, k := edKey(f)
	f.Add("alice@example " + k + " comment\n")
	f.Add(`"a@x,b@y" namespaces="felhom-op",valid-after="20240101",valid-before="20990101Z" ` + k)
	f.Add("*@example cert-authority " + k + "\n# c\n\n")
	f.Add(`a namespaces="x\"y" ` + k)
	f.Add(`a valid-after="202401011230UTC" ` + k)
	f.Fuzz(func(t *testing.T, data string) {
		file, err := Parse("fuzz", []byte(data), time.UTC)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			return
		}
		for _, e := range file.Entries {
			if e.Key == nil || CheckList(e.Principals) != nil {
				t.Fatalf("entry accepted with bad fields: %+v", e)
			}
			_, _ = file.Find(e.Key, Query{Principal: "a", Namespace: "felhom-op", Now: time.Unix(0, 0)})
		}
	})
}
