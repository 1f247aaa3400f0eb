package proxmox

import (
	"strings"
	"testing"
	"time"
)

func TestParseUPID(t *testing.T) {
	const tokenTask = "UPID:pve:002D2B1C:0A3F6E21:6812C0DE:vzcreate:300:root@pam!opentofu:"
	u, err := ParseUPID(tokenTask)
	if err != nil {
		t.Fatal(err)
	}
	want := UPID{Node: "pve", PID: 0x002D2B1C, PStart: 0x0A3F6E21, StartTime: 0x6812C0DE, Type: "vzcreate", ID: "300", User: "root@pam!opentofu"}
	if u != want {
		t.Fatalf("ParseUPID = %+v, want %+v", u, want)
	}
	if u.String() != tokenTask {
		t.Errorf("String() = %q", u.String())
	}
	if u.UserID() != "root@pam" || u.TokenID() != "opentofu" {
		t.Errorf("UserID %q TokenID %q", u.UserID(), u.TokenID())
	}
	if !u.Started().Equal(time.Unix(0x6812C0DE, 0)) {
		t.Errorf("Started = %v", u.Started())
	}

	valid := []struct{ in, canonical string }{
		{"UPID:pve-node-2:00001234:00ABCDEF:5F000000:vzdump::root@pam:", ""},                                                   // empty id
		{"UPID:n1:0000000A:1ABCDEF01:65000000:qmstart:100:felhom@pve:", ""},                                                    // 9-digit pstart
		{"UPID:pve:0000abcd:0000ef01:650a0b0c:qmconfig:101:u@pve:", "UPID:pve:0000ABCD:0000EF01:650A0B0C:qmconfig:101:u@pve:"}, // lowercase hex
	}
	for _, v := range valid {
		u, err := ParseUPID(v.in)
		if err != nil {
			t.Errorf("ParseUPID(%q) = %v", v.in, err)
			continue
		}
		want := v.canonical
		if want == "" {
			want = v.in
		}
		if u.String() != want {
			t.Errorf("ParseUPID(%q).String() = %q, want %q", v.in, u.String(), want)
		}
		if u.TokenID() != "" {
			t.Errorf("TokenID of %q = %q, want empty", v.in, u.TokenID())
		}
	}
}

func TestParseUPIDErrors(t *testing.T) {
	tests := []struct{ in, errHas string }{
		{"", "does not start with \"UPID:\""},
		{"upid:pve:00001234:00ABCDEF:5F000000:qmstart:100:root@pam:", "does not start with"},
		{"UPID:pve:00001234:00ABCDEF:5F000000:qmstart:100:root@pam", "does not end with ':'"},
		{"UPID:pve:00001234:00ABCDEF:5F000000:qmstart:root@pam:", "has 6 fields, want 7"},
		{"UPID:pbs:000004D2:00ABCDEF:00000001:5F000000:garbage_collection:store1:root@pam:", "Proxmox Backup Server"},
		{"UPID:-pve:00001234:00ABCDEF:5F000000:qmstart:100:root@pam:", "node \"-pve\""},
		{"UPID::00001234:00ABCDEF:5F000000:qmstart:100:root@pam:", "node \"\""},
		{"UPID:pve:1234:00ABCDEF:5F000000:qmstart:100:root@pam:", "pid \"1234\": has 4 characters, want 8 hex digits"},
		{"UPID:pve:0000123G:00ABCDEF:5F000000:qmstart:100:root@pam:", "pid \"0000123G\": 'G' is not a hex digit"},
		{"UPID:pve:00001234:ABCDEF:5F000000:qmstart:100:root@pam:", "pstart \"ABCDEF\": has 6 characters, want 8 or 9"},
		{"UPID:pve:00001234:0ABCDEF01:5F000000:qmstart:100:root@pam:", "pstart \"0ABCDEF01\": a 9-digit value must not start with 0"},
		{"UPID:pve:00001234:00ABCDEF:15F000000:qmstart:100:root@pam:", "starttime \"15F000000\": has 9 characters"},
		{"UPID:pve:00001234:00ABCDEF:5F000000::100:root@pam:", "type is empty"},
		{"UPID:pve:00001234:00ABCDEF:5F000000:qm start:100:root@pam:", "type \"qm start\": contains '/' or whitespace"},
		{"UPID:pve:00001234:00ABCDEF:5F000000:qmstart:1/0:root@pam:", "id \"1/0\""},
		{"UPID:pve:00001234:00ABCDEF:5F000000:qmstart:100::", "user is empty"},
	}
	for _, tt := range tests {
		_, err := ParseUPID(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.HasPrefix(err.Error(), "parse UPID") {
			t.Errorf("ParseUPID(%q) error = %v, want one containing %q", tt.in, err, tt.errHas)
		}
	}
}

func FuzzParseUPID(f *testing.F) {
	for _, s := range []string{
		"UPID:pve:002D2B1C:0A3F6E21:6812C0DE:vzcreate:300:root@pam!opentofu:",
		"UPID:pve-node-2:00001234:00ABCDEF:5F000000:vzdump::root@pam:",
		"UPID:n1:0000000A:1ABCDEF01:65000000:qmstart:100:felhom@pve:",
		"UPID:pve:0000abcd:0000ef01:650a0b0c:qmconfig:101:u@pve:",
		"UPID:pbs:000004D2:00ABCDEF:00000001:5F000000:garbage_collection:store1:root@pam:",
		"UPID:pve:00001234:0ABCDEF01:5F000000:qmstart:100:root@pam:",
		"UPID:::::::::",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUPID(s)
		if err != nil {
			return
		}
		out := u.String()
		if strings.ToUpper(hexFields(s)) == hexFields(s) && out != s {
			t.Fatalf("round trip: ParseUPID(%q).String() = %q", s, out)
		}
		// The canonical form always parses back to the same value.
		u2, err := ParseUPID(out)
		if err != nil || u2 != u {
			t.Fatalf("canonical %q: parsed %+v, %v; want %+v", out, u2, err, u)
		}
	})
}

// hexFields returns the pid, pstart and starttime fields of a UPID.
func hexFields(s string) string {
	f := strings.Split(s, ":")
	if len(f) < 5 {
		return ""
	}
	return strings.Join(f[2:5], ":")
}
