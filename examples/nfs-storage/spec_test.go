package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func wantFieldErr(t *testing.T, err error, field, says string) {
	t.Helper()
	var fe *fieldError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want an error on field %q", err, field)
	}
	if fe.Field != field {
		t.Fatalf("error %q names field %q, want %q", err, fe.Field, field)
	}
	if !strings.Contains(err.Error(), says) {
		t.Fatalf("error %q does not say %q", err, says)
	}
}

func TestValidateServer(t *testing.T) {
	for _, ok := range []string{"192.0.2.10", "2001:db8::5", "nas", "nas.example.net", "nas-1.lan."} {
		if err := validateServer(ok); err != nil {
			t.Errorf("validateServer(%q) = %v", ok, err)
		}
	}
	for in, says := range map[string]string{
		"":                               "required",
		"nas.lan:/srv/nfs":               "export path goes in export",
		"[2001:db8::5]":                  "without brackets",
		"fe80::1%eth0":                   "zone",
		"0.0.0.0":                        "unspecified",
		"192.168.1.256":                  "not a valid IPv4",
		"nas_backup.lan":                 "bad part",
		"nas lan":                        "bad part",
		"http://nas.lan":                 "export path goes in export",
		strings.Repeat("a.", 127) + "aa": "DNS limit",
	} {
		wantFieldErr(t, validateServer(in), "server", says)
	}
}

func TestValidateExport(t *testing.T) {
	for _, ok := range []string{"/", "/srv/nfs/backup", "/volume1/pve backups/"} {
		if err := validateExport("export", ok); err != nil {
			t.Errorf("validateExport(%q) = %v", ok, err)
		}
	}
	for in, says := range map[string]string{
		"":            "required",
		"srv/nfs":     "absolute",
		"/srv/../etc": "'..'",
		"/srv;reboot": "must not contain",
		"/srv\nx":     "must not contain",
	} {
		wantFieldErr(t, validateExport("export", in), "export", says)
	}
}

func TestSpecValidateAndParams(t *testing.T) {
	s := nfsSpec{ID: "nas-backup", Server: "192.0.2.10", Export: "/srv/nfs/backup",
		Content: []string{"iso", "backup", "iso"}, Options: "vers=4.2,soft", Nodes: []string{"pve2", "pve1"}}
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"storage": "nas-backup", "type": "nfs", "server": "192.0.2.10",
		"export": "/srv/nfs/backup", "content": "backup,iso", "options": "vers=4.2,soft", "nodes": "pve1,pve2"}
	if got := s.params(); !reflect.DeepEqual(got, want) {
		t.Fatalf("params = %v, want %v", got, want)
	}

	bad := []struct {
		mut         func(*nfsSpec)
		field, says string
	}{
		{func(s *nfsSpec) { s.ID = "n" }, "id", "invalid storage ID"},
		{func(s *nfsSpec) { s.Content = []string{"backup", "vmstate"} }, "content[1]", "unknown content type"},
		{func(s *nfsSpec) { s.Options = "vers=4.2,soft hard" }, "options", "mount option 2"},
		{func(s *nfsSpec) { s.Options = "vers=4,$(reboot)" }, "options", "mount option 2"},
		{func(s *nfsSpec) { s.Path = "mnt/x" }, "path", "absolute"},
		{func(s *nfsSpec) { s.Nodes = []string{"-pve"} }, "nodes[0]", "invalid node"},
	}
	for _, b := range bad {
		c := s
		b.mut(&c)
		wantFieldErr(t, c.validate(), b.field, b.says)
	}
}

func FuzzValidateServer(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "nas.lan", "::1", "[::1]", "a..b", "x:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validateServer(s) == nil && (s == "" || strings.ContainsAny(s, "/[] \n;,@%")) {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzValidateMountOptions(f *testing.F) {
	f.Add("vers=4.2,soft,timeo=600")
	f.Add("a,,b")
	f.Fuzz(func(t *testing.T, s string) {
		if validateMountOptions(s) == nil && strings.ContainsAny(s, " \n\t;$`'\"\\") {
			t.Fatalf("accepted %q", s)
		}
	})
}
