package pvestorage

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fromJSON builds params the way a protobuf Struct's AsMap does.
func fromJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseDefineParams(t *testing.T) {
	got, err := ParseDefineParams(fromJSON(t, `{"id":"nas","type":"nfs","content":"backup,iso",
	 "options":{"server":"192.0.2.10","export":"/srv/backup","shared":true,"port":2049},
	 "nodes":["pve1","pve2"],"disable":0}`))
	if err != nil {
		t.Fatal(err)
	}
	want := DefineRequest{Spec: Spec{ID: "nas", Type: "nfs", Content: []string{"backup", "iso"},
		Nodes:   []string{"pve1", "pve2"},
		Options: map[string]string{"server": "192.0.2.10", "export": "/srv/backup", "shared": "1", "port": "2049"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	upd, err := ParseDefineParams(fromJSON(t, `{"id":"nas","update":true,"digest":"abc","content":["iso"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !upd.Update || upd.Digest != "abc" || !reflect.DeepEqual(upd.Spec.Content, []string{"iso"}) {
		t.Fatalf("update parsed as %+v", upd)
	}
}

func TestParseParamsErrors(t *testing.T) {
	cases := []struct {
		name, in, field string
		parse           func(map[string]any) error
	}{
		{"define unknown key", `{"id":"nas","typ":"nfs"}`, "typ", defineErr},
		{"define id not string", `{"id":5,"type":"dir"}`, "id", defineErr},
		{"define content item", `{"id":"nas","type":"dir","content":["iso",3]}`, "content[1]", defineErr},
		{"define options not object", `{"id":"nas","type":"dir","options":"path=/x"}`, "options", defineErr},
		{"define option fraction", `{"id":"nas","type":"pbs","options":{"port":1.5}}`, "options.port", defineErr},
		{"define option list", `{"id":"nas","type":"dir","options":{"path":["/x"]}}`, "options.path", defineErr},
		{"define bad bool", `{"id":"nas","type":"dir","disable":"maybe"}`, "disable", defineErr},
		{"define digest on create", `{"id":"nas","type":"dir","digest":"ab","options":{"path":"/x"}}`, "digest", defineErr},
		{"define missing path", `{"id":"nas","type":"dir"}`, "options.path", defineErr},
		{"status missing id", `{}`, "id", idErr},
		{"status extra", `{"id":"local","vmid":100}`, "vmid", idErr},
		{"content bad vmid", `{"id":"local","vmid":42}`, "vmid", contentErr},
		{"content vmid text", `{"id":"local","vmid":"abc"}`, "vmid", contentErr},
		{"content bad type", `{"id":"local","content":"movies"}`, "content", contentErr},
		{"list bad enabled", `{"enabled_only":2}`, "enabled_only", listErr},
		{"list unknown", `{"node":"pve"}`, "node", listErr},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantInvalid(t, c.parse(fromJSON(t, c.in)), c.field) })
	}
}

func defineErr(m map[string]any) error  { _, err := ParseDefineParams(m); return err }
func idErr(m map[string]any) error      { _, err := ParseIDParams(m); return err }
func contentErr(m map[string]any) error { _, _, err := ParseContentParams(m); return err }
func listErr(m map[string]any) error    { _, err := ParseListParams(m); return err }

func TestParseContentParams(t *testing.T) {
	id, f, err := ParseContentParams(fromJSON(t, `{"id":"pbs1","content":"backup","vmid":101}`))
	if err != nil || id != "pbs1" || f != (ContentFilter{Content: "backup", VMID: 101}) {
		t.Fatalf("got %q %+v %v", id, f, err)
	}
}

func FuzzParseDefineParams(f *testing.F) {
	f.Add(`{"id":"nas","type":"nfs","content":"backup","options":{"server":"nas.lan","export":"/srv"}}`)
	f.Add(`{"id":"nas","update":1,"digest":"x","nodes":"a;b","options":{"port":8007}}`)
	f.Fuzz(func(t *testing.T, in string) {
		var m map[string]any
		if json.Unmarshal([]byte(in), &m) != nil {
			return
		}
		r, err := ParseDefineParams(m)
		if err != nil {
			if CodeOf(err) != CodeInvalidParams {
				t.Fatalf("parse error with code %v: %v", CodeOf(err), err)
			}
			return
		}
		// Whatever parses must pass validation on its own.
		if err := ValidateSpec(r.Spec, r.Update); err != nil {
			t.Fatalf("parsed spec fails validation: %v", err)
		}
	})
}
