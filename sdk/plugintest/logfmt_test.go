package plugintest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestReadableLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"@level":"error","@message":"refusing to start","@timestamp":"2026-11-26T16:28:15.230249Z","error":"plugin info: capability \"NFSList\": IDs must be lowercase \u003cnamespace\u003e.\u003cname\u003e, e.g. storage.list"}`,
			`ERROR refusing to start: error="plugin info: capability "NFSList": IDs must be lowercase <namespace>.<name>, e.g. storage.list"`},
		{`{"@level":"debug","@message":"invoke","@module":"felhom.plugin","@caller":"x.go:1","capability":"nfs.list","ms":12.5,"ok":true,"tags":["a\u0026b"],"none":null}`,
			`DEBUG [felhom.plugin] invoke: capability=nfs.list ms=12.5 ok=true tags=["a&b"] none=null`},
		{`{"@level":"info","@message":"big","n":12345678901234567890}`, `INFO big: n=12345678901234567890`},
		{`{"@level":"warn","@message":"multi","stack":"a\nb"}`, "WARN multi: stack=\"a\n    b\""},
		{`{"@level":"info","@message":"empty","v":""}`, `INFO empty: v=""`},
		{`{"k":"v"}`, `k=v`},
		// Not one JSON object: shown as it is.
		{`panic: boom`, `panic: boom`},
		{`goroutine 1 [running]:`, `goroutine 1 [running]:`},
		{`{"@message":"a"} trailing`, `{"@message":"a"} trailing`},
		{`{"@message":"a"`, `{"@message":"a"`},
		{`["@message"]`, `["@message"]`},
		{``, ``},
	} {
		if got := readableLine(c.in); got != c.want {
			t.Errorf("readableLine(%s)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestLogBufferLines(t *testing.T) {
	var b logBuffer
	for _, w := range []string{`{"@level":"info","@message":"one"}`, "\n", "two\n", `{"@level":"error","@message":"three \u003cx\u003e"}`, "\n"} {
		if _, err := b.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := strings.Join(b.lines(2), "|"), "two|ERROR three <x>"; got != want {
		t.Errorf("lines(2) = %q, want %q", got, want)
	}
	if got := len(b.lines(10)); got != 3 {
		t.Errorf("lines(10) has %d lines, want 3", got)
	}
	var empty logBuffer
	if l := empty.lines(5); l != nil {
		t.Errorf("empty buffer: %q", l)
	}
}

// FuzzReadableLine: any stderr line is safe to show; a line that is not
// a JSON object comes back unchanged, and an object's message survives.
func FuzzReadableLine(f *testing.F) {
	for _, s := range []string{
		`{"@level":"error","@message":"refusing to start","error":"x \u003cy\u003e"}`,
		`{"@message":"m","a":{"b":[1,2,{"c":null}]},"d":"e f"}`,
		`panic: runtime error`, `{"@message":"a"} {}`, `{`, `{"a":}`, `{"@level":1}`, ``, `"str"`, `{"\u0000":"\n"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got := readableLine(line)
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(line), &obj) != nil || obj == nil {
			if got != line {
				t.Fatalf("non-JSON line changed: %q -> %q", line, got)
			}
			return
		}
		var msg string
		if raw, ok := obj["@message"]; ok && json.Unmarshal(raw, &msg) == nil && !strings.Contains(got, strings.TrimSpace(msg)) {
			t.Fatalf("message %q lost: %q -> %q", msg, line, got)
		}
	})
}
