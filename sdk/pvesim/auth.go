package pvesim

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strings"
)

// allPrivileges is PVE 9's privilege list (pveum.adoc "Privileges"; VM.Monitor
// was replaced by the VM.GuestAgent.* privileges in libpve-access-control 9).
var allPrivileges = []string{
	"Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
	"Group.Allocate",
	"Mapping.Audit", "Mapping.Modify", "Mapping.Use",
	"Permissions.Modify",
	"Pool.Allocate", "Pool.Audit",
	"Realm.Allocate", "Realm.AllocateUser",
	"SDN.Allocate", "SDN.Audit", "SDN.Use",
	"Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog",
	"User.Modify",
	"VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone",
	"VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType",
	"VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.Console",
	"VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt",
	"VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted",
	"VM.Migrate", "VM.PowerMgmt", "VM.Replicate", "VM.Snapshot", "VM.Snapshot.Rollback",
}

var privilegeSet = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range allPrivileges {
		m[p] = true
	}
	return m
}()

// role is a named privilege set; noAccess marks PVE's NoAccess role, which
// cancels every other role on the same path.
type role struct {
	privs    []string
	noAccess bool
}

func builtinRoles() map[string]role {
	vmAll := []string{}
	for _, p := range allPrivileges {
		if strings.HasPrefix(p, "VM.") {
			vmAll = append(vmAll, p)
		}
	}
	return map[string]role{
		"Administrator": {privs: append([]string(nil), allPrivileges...)},
		"NoAccess":      {noAccess: true},
		"PVEAuditor": {privs: []string{
			"Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit",
		}},
		"PVEVMAdmin": {privs: vmAll},
		"PVEVMUser": {privs: []string{
			"VM.Audit", "VM.Backup", "VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console",
			"VM.GuestAgent.Audit", "VM.PowerMgmt",
		}},
		"PVEDatastoreAdmin": {privs: []string{
			"Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
		}},
		"PVEDatastoreUser": {privs: []string{"Datastore.AllocateSpace", "Datastore.Audit"}},
		"PVESysAdmin": {privs: []string{
			"Permissions.Modify", "Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming",
			"Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog",
		}},
	}
}

// RolePrivs returns the privileges of a built-in role (nil if unknown), for
// building ACLs passed to [Server.AddToken].
func RolePrivs(name string) []string {
	r, ok := builtinRoles()[name]
	if !ok {
		return nil
	}
	return append([]string(nil), r.privs...)
}

type user struct {
	id      string // "name@realm"
	enabled bool
}

type token struct {
	id      string // "name@realm!tokenid"
	user    string
	secret  string
	privsep bool
}

// aclEntry grants a role on a path to a user or token ("ugid").
type aclEntry struct {
	path      string
	ugid      string
	role      string
	propagate bool
}

// authInfo is the authenticated caller of a request.
type authInfo struct {
	authID string // the full token ID, e.g. "root@pam!admin"
	user   string // "root@pam"
}

const rootUser = "root@pam"

func (s *Server) initAccess() error {
	s.users[rootUser] = &user{id: rootUser, enabled: true}
	admin, err := s.addToken(rootUser, "admin", true, map[string][]string{"/": {"@Administrator"}})
	if err != nil {
		return fmt.Errorf("create admin token: %w", err)
	}
	audit, err := s.addToken(rootUser, "audit", true, map[string][]string{"/": {"@PVEAuditor"}})
	if err != nil {
		return fmt.Errorf("create audit token: %w", err)
	}
	s.adminToken, s.auditToken = admin, audit
	return nil
}

var (
	userIDRE  = regexp.MustCompile(`^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$`)
	tokenIDRE = regexp.MustCompile(`^([^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+)!([A-Za-z][A-Za-z0-9.\-_]+)$`)
	tokNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.\-_]+$`)
)

// AddToken creates (or replaces) API token userID!tokenID and returns its
// full "USER@REALM!TOKENID=SECRET" value. acl maps ACL paths to privilege
// names, granted with propagation ("@Role" names a built-in role instead).
//
// A user that does not exist yet is created with the same ACL, so a fresh
// user's privsep token holds exactly acl. For an existing user (root@pam has
// every privilege), a privsep token's ACL is intersected with the user's
// privileges as PVE does; a non-privsep token gets the user's privileges and
// acl is then ignored. Use [Server.SetUserACL] to change a user's ACL.
func (s *Server) AddToken(userID, tokenID string, privsep bool, acl map[string][]string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addToken(userID, tokenID, privsep, acl)
}

func (s *Server) addToken(userID, tokenID string, privsep bool, acl map[string][]string) (string, error) {
	if !userIDRE.MatchString(userID) {
		return "", fmt.Errorf("add token: invalid user ID %q", userID)
	}
	if !tokNameRE.MatchString(tokenID) {
		return "", fmt.Errorf("add token: invalid token name %q", tokenID)
	}
	full := userID + "!" + tokenID
	if _, ok := s.users[userID]; !ok {
		s.users[userID] = &user{id: userID, enabled: true}
		if err := s.setACL(userID, acl); err != nil {
			return "", fmt.Errorf("add token %s: %w", full, err)
		}
	}
	if privsep {
		if err := s.setACL(full, acl); err != nil {
			return "", fmt.Errorf("add token %s: %w", full, err)
		}
	} else {
		_ = s.setACL(full, nil) // a nil ACL cannot fail
	}
	secret, err := newUUID()
	if err != nil {
		return "", fmt.Errorf("add token %s: %w", full, err)
	}
	s.tokens[full] = &token{id: full, user: userID, secret: secret, privsep: privsep}
	return full + "=" + secret, nil
}

// SetUserACL replaces the ACL entries of an existing user (not root@pam,
// which always has every privilege). acl has the same form as for AddToken.
func (s *Server) SetUserACL(userID string, acl map[string][]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if userID == rootUser {
		return fmt.Errorf("set user ACL: %s always has all privileges", rootUser)
	}
	if _, ok := s.users[userID]; !ok {
		return fmt.Errorf("set user ACL: no such user %q", userID)
	}
	return s.setACL(userID, acl)
}

// setACL replaces all ACL entries of ugid. Each path gets one role: a
// built-in one ("@Name") or a custom role holding the listed privileges.
func (s *Server) setACL(ugid string, acl map[string][]string) error {
	kept := s.acl[:0:0]
	for _, e := range s.acl {
		if e.ugid != ugid {
			kept = append(kept, e)
		}
	}
	for _, p := range sortedKeys(acl) {
		privs := acl[p]
		np := normalizePath(p)
		var roles []string
		var custom []string
		for _, pr := range privs {
			if name, ok := strings.CutPrefix(pr, "@"); ok {
				if _, known := s.roles[name]; !known {
					return fmt.Errorf("unknown role %q on path %s", name, p)
				}
				roles = append(roles, name)
				continue
			}
			if !privilegeSet[pr] {
				return fmt.Errorf("unknown privilege %q on path %s", pr, p)
			}
			custom = append(custom, pr)
		}
		if len(custom) > 0 {
			s.customRole++
			name := fmt.Sprintf("PVESimCustom%d", s.customRole)
			s.roles[name] = role{privs: custom}
			roles = append(roles, name)
		}
		for _, r := range roles {
			kept = append(kept, aclEntry{path: np, ugid: ugid, role: r, propagate: true})
		}
	}
	s.acl = kept
	return nil
}

func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// extractAuthValue mirrors pve-http-server's extract_auth_value: the key,
// then '=' or a space, then everything up to the first ';', URI-unescaped.
func extractAuthValue(header, key string) (string, bool) {
	i := 0
	for {
		j := strings.Index(header[i:], key)
		if j < 0 {
			return "", false
		}
		j += i
		if j == 0 || isSpace(header[j-1]) {
			rest := header[j+len(key):]
			if rest != "" && (rest[0] == '=' || rest[0] == ' ') {
				v := rest[1:]
				if k := strings.IndexByte(v, ';'); k >= 0 {
					v = v[:k]
				}
				v = uriUnescape(v)
				return v, v != ""
			}
		}
		i = j + 1
	}
}

// uriUnescape decodes %XX escapes and leaves everything else (including
// '+' and broken escapes) alone, like URI::Escape's uri_unescape.
func uriUnescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

// parseTokenValue splits "USER@REALM!TOKENID=SECRET" at the last '=' as
// PVE's verify_token does.
func parseTokenValue(v string) (tokenID, secret string, ok bool) {
	i := strings.LastIndexByte(v, '=')
	if i <= 0 {
		return "", "", false
	}
	tokenID, secret = v[:i], v[i+1:]
	if !tokenIDRE.MatchString(tokenID) {
		return "", "", false
	}
	return tokenID, secret, true
}

// authenticate checks the API token of a request.
func (s *Server) authenticate(r *http.Request) (*authInfo, *apiError) {
	value, ok := extractAuthValue(r.Header.Get("Authorization"), "PVEAPIToken")
	if !ok {
		return nil, rawError(http.StatusUnauthorized, "No ticket")
	}
	failed := rawError(http.StatusUnauthorized, "Authentication failed!")
	tokenID, secret, ok := parseTokenValue(value)
	if !ok {
		return nil, failed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tokenID]
	if !ok || t.secret != secret {
		return nil, failed
	}
	if u, ok := s.users[t.user]; !ok || !u.enabled {
		return nil, failed
	}
	return &authInfo{authID: t.id, user: t.user}, nil
}

// normalizePath collapses repeated slashes and drops a trailing slash.
func normalizePath(p string) string {
	p = path.Clean("/" + p)
	return p
}

// privSet maps privilege names to their propagate flag.
type privSet map[string]bool

// permissions computes the effective privileges of a user or token on a
// path (s.mu held), as PVE's RPCEnvironment::permissions.
func (s *Server) permissions(authID, p string) privSet {
	p = normalizePath(p)
	if authID == rootUser {
		all := privSet{}
		for _, pr := range allPrivileges {
			all[pr] = true
		}
		return all
	}
	if m := tokenIDRE.FindStringSubmatch(authID); m != nil {
		t, ok := s.tokens[authID]
		if !ok {
			return privSet{}
		}
		if t.privsep && m[1] == rootUser {
			// root@pam holds everything, so the intersection is the token's ACL.
			return s.compileACL(authID, p)
		}
		userPerms := s.permissions(m[1], p)
		if !t.privsep {
			return userPerms
		}
		tokenPerms := s.compileACL(authID, p)
		res := privSet{}
		for pr, prop := range tokenPerms {
			if uprop, ok := userPerms[pr]; ok {
				res[pr] = prop && uprop
			}
		}
		return res
	}
	if u, ok := s.users[authID]; !ok || !u.enabled {
		return privSet{}
	}
	return s.compileACL(authID, p)
}

// compileACL resolves the roles of ugid on p: walking from "/" down, a
// deeper path with entries for ugid replaces what was inherited, and only
// propagating entries apply below the path they are set on.
func (s *Server) compileACL(ugid, p string) privSet {
	comps := []string{"/"}
	if p != "/" {
		acc := ""
		for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			acc += "/" + c
			comps = append(comps, acc)
		}
	}
	roles := map[string]bool{}
	for i, prefix := range comps {
		final := i == len(comps)-1
		var next map[string]bool
		for _, e := range s.acl {
			if e.ugid != ugid || e.path != prefix || !(final || e.propagate) {
				continue
			}
			if next == nil {
				next = map[string]bool{}
			}
			next[e.role] = next[e.role] || e.propagate
		}
		if next != nil {
			roles = next
		}
	}
	res := privSet{}
	for name, prop := range roles {
		r := s.roles[name]
		if r.noAccess {
			return privSet{}
		}
		for _, pr := range r.privs {
			res[pr] = res[pr] || prop
		}
	}
	return res
}

// permCheck is an endpoint's permissions.check from the PVE schema.
type permCheck struct {
	kind  string // "perm", "or", or "" for user => 'all' (handler checks)
	path  string // may contain {vmid}, {node}, {storage}
	privs []string
	any   bool
	alts  []permCheck
}

func perm(p string, privs ...string) permCheck { return permCheck{kind: "perm", path: p, privs: privs} }
func permAny(p string, privs ...string) permCheck {
	return permCheck{kind: "perm", path: p, privs: privs, any: true}
}
func permOr(alts ...permCheck) permCheck { return permCheck{kind: "or", alts: alts} }

var permAll = permCheck{}

// checkRoutePerm applies the route's permission check before validation,
// with URI parameters substituted as PVE does.
func (s *Server) checkRoutePerm(req *request) *apiError {
	pc := req.route.perm
	if pc.kind == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evalPerm(req, pc, false)
}

func (s *Server) evalPerm(req *request, pc permCheck, noerr bool) *apiError {
	switch pc.kind {
	case "or":
		for _, alt := range pc.alts {
			if s.evalPerm(req, alt, true) == nil {
				return nil
			}
		}
		return permError("")
	case "perm":
		p := pc.path
		for _, name := range []string{"vmid", "node", "storage"} {
			p = strings.ReplaceAll(p, "{"+name+"}", req.params[name].s)
		}
		if pc.any {
			return s.checkAny(req.auth.authID, p, pc.privs...)
		}
		return s.check(req.auth.authID, p, pc.privs...)
	}
	return nil
}

// check requires all privs on p (s.mu held); the error names the first
// missing privilege.
func (s *Server) check(authID, p string, privs ...string) *apiError {
	have := s.permissions(authID, p)
	for _, pr := range privs {
		if _, ok := have[pr]; !ok {
			return permError(normalizePath(p) + ", " + pr)
		}
	}
	return nil
}

// checkAny requires one of privs on p (s.mu held).
func (s *Server) checkAny(authID, p string, privs ...string) *apiError {
	have := s.permissions(authID, p)
	for _, pr := range privs {
		if _, ok := have[pr]; ok {
			return nil
		}
	}
	return permError(normalizePath(p) + ", " + strings.Join(privs, "|"))
}

// has reports whether authID holds priv on p (s.mu held).
func (s *Server) has(authID, p, priv string) bool {
	_, ok := s.permissions(authID, p)[priv]
	return ok
}

// effectivePermissions is GET /access/permissions without a path: every
// default path and every ACL path on which the subject has any privilege.
func (s *Server) effectivePermissions(authID string) map[string]map[string]int {
	paths := map[string]bool{
		"/": true, "/access": true, "/access/groups": true, "/mapping": true, "/nodes": true,
		"/pool": true, "/sdn": true, "/storage": true, "/vms": true,
	}
	for _, e := range s.acl {
		paths[e.path] = true
	}
	res := map[string]map[string]int{}
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		perms := s.permissions(authID, p)
		if len(perms) == 0 {
			continue
		}
		res[p] = privMap(perms)
	}
	return res
}

func privMap(ps privSet) map[string]int {
	m := map[string]int{}
	for pr, prop := range ps {
		m[pr] = boolInt(prop)
	}
	return m
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// canSeeTask reports whether the caller owns a task (its own token's task,
// or a user seeing its tokens' tasks).
func canSeeTask(caller *authInfo, taskUser string) bool {
	if caller.authID == taskUser {
		return true
	}
	if !strings.Contains(caller.authID, "!") {
		u, _, _ := strings.Cut(taskUser, "!")
		return u == caller.authID
	}
	return false
}
