package authz

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var tEnv = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const goodEnvelope = `{
  "version": 1,
  "host": "pve1",
  "op_id": "00112233445566778899aabbccddeeff",
  "issued_at": "2026-06-01T12:00:00Z",
  "expires_at": "2026-06-01T12:10:00Z",
  "capability": "guest.delete",
  "params": {"vmid": 101, "purge": true, "node": "pve1", "tags": ["a"], "nested": {"k": 1.5}},
  "destructive": true
}
`

func TestParseEnvelope(t *testing.T) {
	e, err := ParseEnvelope([]byte(goodEnvelope))
	if err != nil {
		t.Fatal(err)
	}
	if e.Version != 1 || e.Host != "pve1" || e.OpID != "00112233445566778899aabbccddeeff" || e.Capability != "guest.delete" ||
		!e.Destructive || !e.IssuedAt.Equal(tEnv) || !e.ExpiresAt.Equal(tEnv.Add(10*time.Minute)) {
		t.Errorf("envelope %+v", e)
	}
	if n, ok := e.Params["vmid"].(json.Number); !ok || n.String() != "101" {
		t.Errorf("vmid %#v, want json.Number 101", e.Params["vmid"])
	}
	if e.Params["purge"] != true || e.Params["node"] != "pve1" {
		t.Errorf("params %#v", e.Params)
	}
	// Marshal then parse gives the same envelope.
	out, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseEnvelope(out)
	if err != nil {
		t.Fatalf("parse marshalled: %v\n%s", err, out)
	}
	if again.OpID != e.OpID || !again.ExpiresAt.Equal(e.ExpiresAt) || len(again.Params) != len(e.Params) {
		t.Errorf("round trip: %+v", again)
	}
	// An offset time is fine.
	off := strings.Replace(goodEnvelope, "2026-06-01T12:00:00Z", "2026-06-01T14:00:00+02:00", 1)
	if e, err := ParseEnvelope([]byte(off)); err != nil || !e.IssuedAt.Equal(tEnv) {
		t.Errorf("offset time: %v", err)
	}
}

func TestParseEnvelopeRefuses(t *testing.T) {
	repl := func(old, new string) string { return strings.Replace(goodEnvelope, old, new, 1) }
	cases := map[string]struct{ data, want string }{
		"duplicate key":          {repl(`"version": 1,`, `"version": 1, "version": 1,`), "duplicate key"},
		"duplicate nested key":   {repl(`"k": 1.5`, `"k": 1.5, "k": 2`), "duplicate key"},
		"unknown field":          {repl(`"version": 1,`, `"version": 1, "note": "x",`), "unknown field"},
		"field in another case":  {repl(`"host"`, `"Host"`), "unknown field"},
		"renamed field":          {repl(`"destructive": true`, `"x": 1`), "unknown field"},
		"missing field":          {repl(",\n  \"destructive\": true", ""), `missing field "destructive"`},
		"null field":             {repl(`"destructive": true`, `"destructive": null`), "null"},
		"version 2":              {repl(`"version": 1`, `"version": 2`), "version 2"},
		"version string":         {repl(`"version": 1`, `"version": "1"`), `field "version"`},
		"version float":          {repl(`"version": 1`, `"version": 1.0`), `field "version"`},
		"destructive string":     {repl(`"destructive": true`, `"destructive": "true"`), `field "destructive"`},
		"short op id":            {repl(`00112233445566778899aabbccddeeff`, `0011223344556677`), "op_id"},
		"uppercase op id":        {repl(`00112233445566778899aabbccddeeff`, `00112233445566778899AABBCCDDEEFF`), "op_id"},
		"bad capability":         {repl(`guest.delete`, `Guest Delete`), "capability"},
		"one-label capability":   {repl(`guest.delete`, `guest`), "capability"},
		"bad host":               {repl(`"host": "pve1"`, `"host": "pve 1"`), "host"},
		"empty host":             {repl(`"host": "pve1"`, `"host": ""`), "host"},
		"bad time":               {repl(`2026-06-01T12:00:00Z`, `2026-06-01 12:00`), "issued_at"},
		"far time":               {repl(`2026-06-01T12:10:00Z`, `2999-06-01T12:10:00Z`), "expires_at"},
		"expires before issued":  {repl(`2026-06-01T12:10:00Z`, `2026-06-01T11:00:00Z`), "not after"},
		"params array":           {repl(`"params": {`, `"params": [{`), "not JSON"},
		"params string":          {strings.Replace(goodEnvelope, goodEnvelope[strings.Index(goodEnvelope, `"params"`):strings.Index(goodEnvelope, `"destructive"`)], `"params": "x", `, 1), "params"},
		"trailing data":          {goodEnvelope + "{}", "after the JSON object"},
		"top-level array":        {"[" + goodEnvelope + "]", "not a JSON object"},
		"invalid utf-8":          {repl(`"node": "pve1"`, "\"node\": \"pv\xff\""), "UTF-8"},
		"not json":               {"version=1", "not JSON"},
		"empty":                  {"", "not JSON"},
		"deep nesting":           {repl(`"tags": ["a"]`, `"tags": `+strings.Repeat("[", 40)+strings.Repeat("]", 40)), "nested deeper"},
		"too big":                {repl(`"node": "pve1"`, `"node": "`+strings.Repeat("x", MaxEnvelopeSize)+`"`), "exceeds"},
		"comment-like extra key": {repl(`{`, `{"//": "c",`), "unknown field"},
	}
	for name, tc := range cases {
		_, err := ParseEnvelope([]byte(tc.data))
		if ReasonOf(err) != ReasonMalformedEnvelope {
			t.Errorf("%s: %v, want malformed_envelope", name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %q does not mention %q", name, err, tc.want)
		}
	}
}

func TestEnvelopeCheck(t *testing.T) {
	e, err := ParseEnvelope([]byte(goodEnvelope))
	if err != nil {
		t.Fatal(err)
	}
	c := EnvelopeChecks{Host: "pve1"}
	cases := []struct {
		name string
		c    EnvelopeChecks
		now  time.Time
		want Reason
	}{
		{"in window", c, tEnv.Add(time.Minute), ""},
		{"issued slightly in the future, within skew", c, tEnv.Add(-29 * time.Second), ""},
		{"issued beyond skew in the future", c, tEnv.Add(-31 * time.Second), ReasonOpNotYetValid},
		{"just expired, within skew", c, tEnv.Add(10*time.Minute + 29*time.Second), ""},
		{"expired beyond skew", c, tEnv.Add(10*time.Minute + 30*time.Second), ReasonOpExpired},
		{"other host", EnvelopeChecks{Host: "pve2"}, tEnv.Add(time.Minute), ReasonWrongHost},
		{"no host check", EnvelopeChecks{}, tEnv.Add(time.Minute), ""},
		{"window too long", EnvelopeChecks{Host: "pve1", MaxTTL: 5 * time.Minute}, tEnv.Add(time.Minute), ReasonOpWindowTooLong},
		{"custom skew", EnvelopeChecks{Host: "pve1", Skew: 2 * time.Minute}, tEnv.Add(-90 * time.Second), ""},
	}
	for _, tc := range cases {
		if got := ReasonOf(e.Check(tc.c, tc.now)); got != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.want)
		}
	}
	long := *e
	long.ExpiresAt = e.IssuedAt.Add(16 * time.Minute)
	if got := ReasonOf(long.Check(c, tEnv.Add(time.Minute))); got != ReasonOpWindowTooLong {
		t.Errorf("16m window with default max: %q", got)
	}
}

func TestNewOpID(t *testing.T) {
	a, err := NewOpID(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewOpID(nil)
	if a == b || !opIDPattern.MatchString(a) || len(a) != 32 {
		t.Errorf("op ids %q %q", a, b)
	}
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(goodEnvelope))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"a":{"b":{"c":[1,2,{"d":null}]}}}`))
	f.Add([]byte(`{"version":1,"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEnvelope(data)
		if err != nil {
			if ReasonOf(err) != ReasonMalformedEnvelope {
				t.Fatalf("error without the reason: %v", err)
			}
			return
		}
		if !e.ExpiresAt.After(e.IssuedAt) || e.Version != EnvelopeVersion || !opIDPattern.MatchString(e.OpID) {
			t.Fatalf("accepted an invalid envelope: %+v", e)
		}
		out, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseEnvelope(out); err != nil {
			t.Fatalf("re-parse of Marshal: %v\n%s", err, out)
		}
	})
}
