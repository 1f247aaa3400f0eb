package proxmox

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// UPID is a Proxmox VE task ID,
// "UPID:NODE:PID:PSTART:STARTTIME:TYPE:ID:USER:" (pve-common PVE/UPID.pm).
type UPID struct {
	// Node runs the task; its status and log are read there.
	Node string
	// PID is the worker's process ID.
	PID uint32
	// PStart is the worker's start time in clock ticks since boot (not an
	// epoch); it takes 9 hex digits after about 497 days of uptime.
	PStart uint64
	// StartTime is the task's start, in epoch seconds of the node's clock.
	StartTime int64
	// Type is the worker type, e.g. "qmsnapshot", "vzstart", "vzdump".
	Type string
	// ID is the object the task works on, usually a VMID; may be empty.
	ID string
	// User started the task: "user@realm", or a full token ID
	// "user@realm!token" for token-started tasks.
	User string
}

// ParseUPID parses a PVE task ID with the same rules as upstream's
// decoder. Uppercase-hex inputs round-trip through [UPID.String].
func ParseUPID(s string) (UPID, error) {
	var u UPID
	fail := func(format string, args ...any) (UPID, error) {
		return UPID{}, fmt.Errorf("parse UPID %s: %s", quoteShort(s), fmt.Sprintf(format, args...))
	}
	if !strings.HasPrefix(s, "UPID:") {
		return fail("does not start with \"UPID:\"")
	}
	if len(s) == len("UPID:") || !strings.HasSuffix(s, ":") {
		return fail("does not end with ':'")
	}
	f := strings.Split(s[len("UPID:"):len(s)-1], ":")
	switch {
	case len(f) == 8:
		return fail("has 8 fields, as a Proxmox Backup Server UPID does; want a PVE UPID with 7 (node:pid:pstart:starttime:type:id:user)")
	case len(f) != 7:
		return fail("has %d fields, want 7 (node:pid:pstart:starttime:type:id:user)", len(f))
	}
	if !nodeNameRe.MatchString(f[0]) {
		return fail("node %s: must be letters, digits and inner '-'", quoteShort(f[0]))
	}
	u.Node = f[0]
	pid, err := parseHexField("pid", f[1], 8, 8)
	if err != nil {
		return fail("%v", err)
	}
	u.PID = uint32(pid)
	if u.PStart, err = parseHexField("pstart", f[2], 8, 9); err != nil {
		return fail("%v", err)
	}
	if len(f[2]) == 9 && f[2][0] == '0' {
		// PVE prints %08X, which never pads to 9 digits.
		return fail("pstart %q: a 9-digit value must not start with 0", f[2])
	}
	st, err := parseHexField("starttime", f[3], 8, 8)
	if err != nil {
		return fail("%v", err)
	}
	u.StartTime = int64(st)
	for _, part := range []struct {
		name, val string
		empty     bool
		dst       *string
	}{
		{"type", f[4], false, &u.Type},
		{"id", f[5], true, &u.ID},
		{"user", f[6], false, &u.User},
	} {
		if part.val == "" && !part.empty {
			return fail("%s is empty", part.name)
		}
		if i := strings.IndexFunc(part.val, func(r rune) bool { return r == '/' || unicode.IsSpace(r) }); i >= 0 {
			return fail("%s %s: contains '/' or whitespace", part.name, quoteShort(part.val))
		}
		*part.dst = part.val
	}
	return u, nil
}

func parseHexField(name, v string, minDigits, maxDigits int) (uint64, error) {
	if len(v) < minDigits || len(v) > maxDigits {
		want := strconv.Itoa(minDigits)
		if maxDigits != minDigits {
			want += " or " + strconv.Itoa(maxDigits)
		}
		return 0, fmt.Errorf("%s %s: has %d characters, want %s hex digits", name, quoteShort(v), len(v), want)
	}
	for i := 0; i < len(v); i++ {
		if !isHexDigit(v[i]) {
			return 0, fmt.Errorf("%s %s: %q is not a hex digit", name, quoteShort(v), v[i])
		}
	}
	n, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// String encodes u as PVE does (uppercase hex, zero-padded to 8 digits).
func (u UPID) String() string {
	return fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", u.Node, u.PID, u.PStart, u.StartTime, u.Type, u.ID, u.User)
}

// Started returns StartTime as a time.
func (u UPID) Started() time.Time { return time.Unix(u.StartTime, 0) }

// UserID returns the user part of User, "user@realm", without a token name.
func (u UPID) UserID() string {
	if i := strings.IndexByte(u.User, '!'); i >= 0 {
		return u.User[:i]
	}
	return u.User
}

// TokenID returns the token name when a token started the task, else "".
func (u UPID) TokenID() string {
	if i := strings.IndexByte(u.User, '!'); i >= 0 {
		return u.User[i+1:]
	}
	return ""
}

// quoteShort quotes s for an error message, shortened when long.
func quoteShort(s string) string {
	const max = 120
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
