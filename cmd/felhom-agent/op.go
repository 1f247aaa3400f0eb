package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/core/authz"
)

func init() {
	registerCommand("op", "verify or create signed operations", runOp)
}

const opUsage = `usage:
  felhom-agent op new --capability ID --host HOST [--param K=V ...] [--param-str K=V ...]
                      [--ttl 10m] [--destructive] [-o FILE]
  felhom-agent op verify --allowed-signers FILE [--signature SIG] [--namespace felhom-op]
                         [--host HOST] [--skew 30s] [--max-ttl 15m] [--time RFC3339] OPFILE

op new writes an envelope (fresh random op_id, issued_at now, expires_at now+ttl)
to sign with: ssh-keygen -Y sign -n felhom-op -f KEY FILE
  --param K=V      a typed parameter: true/false become booleans, integers in plain
                   decimal (no leading zeros or +) become numbers, anything else a string
  --param-str K=V  a parameter that is always a string

op verify checks OPFILE and its signature (default OPFILE.sig) like the agent does,
without the replay store and without the policy, and prints the verified principal
and the op. Exit status: 0 valid, 1 rejected (reason code and sentence printed),
2 usage or file errors.
`

func runOp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, opUsage)
		return 2
	}
	switch args[0] {
	case "new":
		return runOpNew(args[1:], stdout, stderr)
	case "verify":
		return runOpVerify(args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, opUsage)
		return 0
	}
	fmt.Fprintf(stderr, "felhom-agent op: unknown subcommand %q\n%s", args[0], opUsage)
	return 2
}

// params collects repeated --param/--param-str flags in order.
type params struct {
	values map[string]any
	typed  bool
}

func (p *params) String() string { return "" }

func (p *params) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", s)
	}
	if _, dup := p.values[k]; dup {
		return fmt.Errorf("parameter %q given twice", k)
	}
	if p.typed {
		p.values[k] = typedParam(v)
	} else {
		p.values[k] = v
	}
	return nil
}

// typedParam: booleans and integers in their plain form become typed
// values, so "vmid=101" is the number 101 but "zip=007" stays a string.
func typedParam(v string) any {
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && strconv.FormatInt(n, 10) == v {
		return json.Number(v)
	}
	return v
}

// parseArgs parses flags and positional arguments in any order.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runOpNew(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("felhom-agent op new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, opUsage) }
	values := map[string]any{}
	capability := fs.String("capability", "", "capability `ID`, e.g. guest.delete")
	host := fs.String("host", "", "target host `ID`")
	ttl := fs.Duration("ttl", 10*time.Minute, "validity window")
	destructive := fs.Bool("destructive", false, "declare the op destructive (required for destructive capabilities)")
	out := fs.String("o", "", "write the envelope to `FILE` instead of stdout")
	fs.Var(&params{values: values, typed: true}, "param", "parameter `K=V` (typed)")
	fs.Var(&params{values: values}, "param-str", "parameter `K=V` (always a string)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	switch {
	case len(pos) != 0:
		fmt.Fprintf(stderr, "felhom-agent op new: unexpected argument %q\n", pos[0])
		return 2
	case *capability == "":
		fmt.Fprintln(stderr, "felhom-agent op new: --capability is required")
		return 2
	case *host == "":
		fmt.Fprintln(stderr, "felhom-agent op new: --host is required")
		return 2
	case *ttl <= 0:
		fmt.Fprintf(stderr, "felhom-agent op new: --ttl %s must be positive\n", *ttl)
		return 2
	}
	id, err := authz.NewOpID(nil)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent op new: %v\n", err)
		return 2
	}
	now := time.Now().UTC().Truncate(time.Second)
	env := &authz.Envelope{Version: authz.EnvelopeVersion, Host: *host, OpID: id, IssuedAt: now,
		ExpiresAt: now.Add(*ttl), Capability: *capability, Params: values, Destructive: *destructive}
	data, err := env.Marshal()
	if err == nil {
		// What the agent will parse: catch a bad host or capability now.
		_, err = authz.ParseEnvelope(data)
	}
	if err != nil {
		var r *authz.Rejection
		if errors.As(err, &r) {
			err = errors.New(r.Detail)
		}
		fmt.Fprintf(stderr, "felhom-agent op new: %v\n", err)
		return 2
	}
	if *ttl > authz.DefaultMaxTTL {
		fmt.Fprintf(stderr, "warning: --ttl %s exceeds the agent's default max_op_ttl %s; the agent refuses it unless configured otherwise\n", *ttl, authz.DefaultMaxTTL)
	}
	target := *out
	if target == "" {
		if _, err := stdout.Write(data); err != nil {
			fmt.Fprintf(stderr, "felhom-agent op new: write: %v\n", err)
			return 2
		}
		target = "FILE"
	} else if err := os.WriteFile(target, data, 0o644); err != nil {
		fmt.Fprintf(stderr, "felhom-agent op new: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "sign it with:\n  ssh-keygen -Y sign -n %s -f KEY %s\n(KEY: your private key, or its .pub / -cert.pub when the key is in ssh-agent)\n",
		authz.DefaultNamespace, shellQuote(target))
	return 0
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func runOpVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("felhom-agent op verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, opUsage) }
	signersPath := fs.String("allowed-signers", "", "OpenSSH allowed_signers `FILE`")
	sigPath := fs.String("signature", "", "signature `FILE` (default OPFILE.sig)")
	namespace := fs.String("namespace", authz.DefaultNamespace, "SSHSIG namespace")
	host := fs.String("host", "", "check that the op is for this host `ID`")
	skew := fs.Duration("skew", authz.DefaultSkew, "clock skew tolerance")
	maxTTL := fs.Duration("max-ttl", authz.DefaultMaxTTL, "longest validity window accepted")
	at := fs.String("time", "", "verify at this RFC 3339 `time` instead of now")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "felhom-agent op verify: give exactly one OPFILE")
		return 2
	}
	if *signersPath == "" {
		fmt.Fprintln(stderr, "felhom-agent op verify: --allowed-signers is required")
		return 2
	}
	now := time.Now()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339, *at); err != nil {
			fmt.Fprintf(stderr, "felhom-agent op verify: --time %q: want RFC 3339, e.g. 2026-06-01T12:00:00Z\n", *at)
			return 2
		}
	}
	opFile := pos[0]
	if *sigPath == "" {
		*sigPath = opFile + ".sig"
	}
	signers, err := authz.LoadAllowedSigners(*signersPath)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent op verify: %v\n", err)
		return 2
	}
	envData, err := os.ReadFile(opFile)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent op verify: %v\n", err)
		return 2
	}
	sigData, err := os.ReadFile(*sigPath)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent op verify: %v\n", err)
		return 2
	}

	v := authz.Verifier{Signers: signers, Namespace: *namespace, Now: func() time.Time { return now }}
	res, err := v.FindPrincipals(envData, sigData)
	var env *authz.Envelope
	if err == nil {
		env, err = authz.ParseEnvelope(envData)
	}
	if err == nil {
		err = env.Check(authz.EnvelopeChecks{Host: *host, Skew: *skew, MaxTTL: *maxTTL}, now)
	}
	if err != nil {
		var r *authz.Rejection
		if !errors.As(err, &r) {
			fmt.Fprintf(stderr, "felhom-agent op verify: %v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "rejected: %s\n", r.Error())
		return 1
	}

	params, err := json.Marshal(env.Params)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent op verify: %v\n", err)
		return 2
	}
	hostNote := ""
	if *host == "" {
		hostNote = " (not checked: no --host)"
	}
	fmt.Fprintf(stdout, "valid: signed by %s\n", res.Principal)
	fmt.Fprintf(stdout, "  principals:  %s\n", strings.Join(res.Principals, ", "))
	fmt.Fprintf(stdout, "  key:         %s %s\n", res.KeyType, res.KeyFingerprint)
	if res.CertKeyID != "" {
		fmt.Fprintf(stdout, "  certificate: %q from CA %s\n", res.CertKeyID, res.CAFingerprint)
	}
	fmt.Fprintf(stdout, "  allowed by:  %s\n", strings.Join(res.Sources, ", "))
	fmt.Fprintf(stdout, "  host:        %s%s\n", env.Host, hostNote)
	fmt.Fprintf(stdout, "  op id:       %s\n", env.OpID)
	fmt.Fprintf(stdout, "  capability:  %s\n", env.Capability)
	fmt.Fprintf(stdout, "  params:      %s\n", params)
	fmt.Fprintf(stdout, "  window:      %s .. %s (%s)\n", env.IssuedAt.UTC().Format(time.RFC3339),
		env.ExpiresAt.UTC().Format(time.RFC3339), env.ExpiresAt.Sub(env.IssuedAt))
	fmt.Fprintf(stdout, "  destructive: %t\n", env.Destructive)
	return 0
}
