package registry

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func caps(ids ...string) []Capability {
	out := make([]Capability, len(ids))
	for i, id := range ids {
		out[i] = Capability{ID: CapabilityID(id), SchemaVersion: 1, Class: ClassRead}
	}
	return out
}

func gen(plugin string, n uint64, ids ...string) *Generation {
	return &Generation{Plugin: plugin, Version: "1.0.0", Number: n, Capabilities: caps(ids...)}
}

func newReg(t testing.TB, owners map[string]string) *Registry {
	t.Helper()
	r, err := New(Options{Owners: owners})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseCapabilityID(t *testing.T) {
	good := []string{"storage.list", "backup.pbs.prune", "smart.read", "usb.mount_disk", "a.b", "x9.y_z", "a.b2"}
	for _, s := range good {
		if _, err := ParseCapabilityID(s); err != nil {
			t.Errorf("ParseCapabilityID(%q) = %v, want ok", s, err)
		}
	}
	bad := map[string]string{
		"":                         "empty",
		"storage":                  "no namespace",
		"Storage.list":             "lowercase",
		"storage..list":            "empty label",
		".list":                    "empty label",
		"storage.":                 "empty label",
		"storage.-list":            "starting with",
		"usb.mount-disk":           "lowercase",
		"1x.list":                  "starting with a letter",
		"storage.2":                "starting with a letter",
		"storage.li st":            "lowercase",
		"storage.list/x":           "lowercase",
		strings.Repeat("a.", 70):   "longer than",
		"storage.lïst":             "lowercase",
		"storage.list\x00":         "lowercase",
		"storage.list\nbackup.run": "lowercase",
	}
	for s, want := range bad {
		_, err := ParseCapabilityID(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCapabilityID(%q) = %v, want error containing %q", s, err, want)
		}
	}
}

func TestCapabilityIDParts(t *testing.T) {
	id := CapabilityID("backup.pbs.prune")
	if id.Namespace() != "backup" || id.Name() != "pbs.prune" {
		t.Fatalf("Namespace/Name = %q/%q", id.Namespace(), id.Name())
	}
}

func TestSwapAndLookup(t *testing.T) {
	r := newReg(t, nil)
	g1 := gen("storage", 1, "storage.list", "storage.define")
	old, err := r.Swap("storage", g1)
	if err != nil || old != nil {
		t.Fatalf("Swap = %v, %v", old, err)
	}
	e, ok := r.Lookup("storage.list")
	if !ok || e.Generation != g1 || e.Status().State != StateAvailable {
		t.Fatalf("Lookup = %+v, %v", e, ok)
	}
	if _, ok := r.Lookup("storage.remove"); ok {
		t.Fatal("Lookup of an undeclared capability succeeded")
	}

	// The upgrade drops storage.define and adds storage.remove, at once.
	g2 := gen("storage", 2, "storage.list", "storage.remove")
	old, err = r.Swap("storage", g2)
	if err != nil || old != g1 {
		t.Fatalf("second Swap = %v, %v; want old generation 1", old, err)
	}
	if _, ok := r.Lookup("storage.define"); ok {
		t.Error("capability of the old generation survived the swap")
	}
	for _, id := range []CapabilityID{"storage.list", "storage.remove"} {
		if e, ok := r.Lookup(id); !ok || e.Generation != g2 {
			t.Errorf("%s not served by generation 2", id)
		}
	}
	if got := r.Owned("storage"); fmt.Sprint(got) != "[storage.list storage.remove]" {
		t.Errorf("Owned = %v", got)
	}
	if r.Generation("storage") != g2 {
		t.Error("Generation did not return the new generation")
	}
	if r.Remove("storage") != g2 || len(r.Entries()) != 0 || r.Generation("storage") != nil {
		t.Error("Remove did not drop the plugin")
	}
	if r.Remove("storage") != nil {
		t.Error("second Remove returned a generation")
	}
}

func TestConflictNamesBothPluginsAndLeavesRegistryUnchanged(t *testing.T) {
	r := newReg(t, nil)
	if _, err := r.Swap("storage", gen("storage", 1, "storage.list")); err != nil {
		t.Fatal(err)
	}
	_, err := r.Swap("nfs-storage", gen("nfs-storage", 1, "nfs.mount", "storage.list"))
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Swap = %v, want *ConflictError", err)
	}
	if ce.Holder != "storage" || ce.Incoming != "nfs-storage" || ce.ID != "storage.list" {
		t.Errorf("conflict = %+v", ce)
	}
	want := `capability storage.list is offered by plugins storage and nfs-storage: disable one in plugins.disabled or set plugins.owners["storage.list"]`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\nwant it to contain %q", err, want)
	}
	// Nothing of the refused plugin got in, not even its unconflicting ID.
	if _, ok := r.Lookup("nfs.mount"); ok {
		t.Error("refused plugin registered nfs.mount")
	}
	if r.Generation("nfs-storage") != nil {
		t.Error("refused plugin has a generation")
	}
	if err := r.Check("nfs-storage", gen("nfs-storage", 1, "storage.list")); !errors.As(err, &ce) {
		t.Errorf("Check = %v, want conflict", err)
	}
}

func TestOwnersShadowTheOtherPlugin(t *testing.T) {
	r := newReg(t, map[string]string{"storage.list": "nfs-storage"})
	gs := gen("storage", 1, "storage.list", "storage.define")
	gn := gen("nfs-storage", 1, "storage.list", "nfs.mount")
	if _, err := r.Swap("storage", gs); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Swap("nfs-storage", gn); err != nil {
		t.Fatal(err)
	}
	if e, _ := r.Lookup("storage.list"); e == nil || e.Generation != gn {
		t.Fatalf("storage.list not served by the configured owner")
	}
	if e, _ := r.Lookup("storage.define"); e == nil || e.Generation != gs {
		t.Fatalf("the shadowed plugin lost its other capability")
	}
	if got := r.Owned("storage"); fmt.Sprint(got) != "[storage.define]" {
		t.Errorf("Owned(storage) = %v", got)
	}
}

func TestNewRejectsBadOwners(t *testing.T) {
	_, err := New(Options{Owners: map[string]string{"Storage": "x", "storage.list": "Bad_Name"}})
	if err == nil || !strings.Contains(err.Error(), "plugins.owners") || !strings.Contains(err.Error(), `"Bad_Name" is not a plugin name`) {
		t.Fatalf("New = %v", err)
	}
}

func TestSwapValidates(t *testing.T) {
	r := newReg(t, nil)
	cases := map[string]*Generation{
		"declared twice":     gen("p", 1, "a.b", "a.b"),
		"no namespace":       gen("p", 1, "ab"),
		"belongs to plugin":  gen("q", 1, "a.b"),
		"class must be":      {Plugin: "p", Capabilities: []Capability{{ID: "a.b", SchemaVersion: 1}}},
		"schema_version":     {Plugin: "p", Capabilities: []Capability{{ID: "a.b", Class: ClassBenign}}},
		"nil generation":     nil,
		"plugin name \"P_\"": gen("P_", 1, "a.b"),
	}
	for want, g := range cases {
		name := "p"
		if want == `plugin name "P_"` {
			name = "P_"
		}
		_, err := r.Swap(name, g)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Swap(%s) = %v, want error containing %q", want, err, want)
		}
	}
	if len(r.Entries()) != 0 {
		t.Error("a failed swap registered something")
	}
}

func TestClass(t *testing.T) {
	r := newReg(t, nil)
	g := &Generation{Plugin: "backup", Capabilities: []Capability{
		{ID: "backup.run", SchemaVersion: 1, Class: ClassBenign},
		{ID: "backup.restore", SchemaVersion: 1, Class: ClassDestructive},
	}}
	if _, err := r.Swap("backup", g); err != nil {
		t.Fatal(err)
	}
	if c, err := r.Class("backup.restore"); err != nil || c != ClassDestructive {
		t.Errorf("Class(backup.restore) = %v, %v", c, err)
	}
	if _, err := r.Class("backup.nope"); !errors.Is(err, ErrUnknownCapability) || !strings.Contains(err.Error(), "backup.nope") {
		t.Errorf("Class(unknown) = %v", err)
	}
}

func TestStates(t *testing.T) {
	r := newReg(t, nil)
	g1 := gen("usb", 1, "usb.list", "usb.mount")
	g1.States = map[CapabilityID]Status{"usb.mount": {State: StateNotApplicable, Detail: "no USB disks"}}
	if _, err := r.Swap("usb", g1); err != nil {
		t.Fatal(err)
	}
	if st := mustLookup(t, r, "usb.mount").Status(); st.State != StateNotApplicable || st.Detail != "no USB disks" || st.Since.IsZero() {
		t.Errorf("initial state = %+v", st)
	}
	if !r.SetState(g1, "usb.list", StateUnhealthy, "lsblk failed") {
		t.Error("SetState on the current generation did nothing")
	}
	if st := mustLookup(t, r, "usb.list").Status(); st.State != StateUnhealthy || st.Detail != "lsblk failed" {
		t.Errorf("state = %+v", st)
	}

	g2 := gen("usb", 2, "usb.list", "usb.mount")
	if _, err := r.Swap("usb", g2); err != nil {
		t.Fatal(err)
	}
	if r.SetState(g1, "usb.list", StateUnhealthy, "late message") {
		t.Error("an old generation changed its successor's state")
	}
	if n := r.SetGenerationState(g2, StateQuarantined, "crashed 5 times"); n != 2 {
		t.Errorf("SetGenerationState changed %d entries, want 2", n)
	}
	if r.SetState(g2, "usb.list", StateAvailable, "") {
		t.Error("a health message lifted a quarantine")
	}
	if st := mustLookup(t, r, "usb.list").Status(); st.State != StateQuarantined {
		t.Errorf("state = %v, want quarantined", st.State)
	}
	// A new generation lifts it.
	if _, err := r.Swap("usb", gen("usb", 3, "usb.list")); err != nil {
		t.Fatal(err)
	}
	if st := mustLookup(t, r, "usb.list").Status(); st.State != StateAvailable {
		t.Errorf("state after new generation = %v", st.State)
	}
}

func TestStringsAndJSONNames(t *testing.T) {
	for s, want := range map[State]string{StateAvailable: "available", StateNotApplicable: "not_applicable", StateUnhealthy: "unhealthy", StateQuarantined: "quarantined", 0: "unknown"} {
		b, _ := s.MarshalText()
		if string(b) != want {
			t.Errorf("State %d = %q, want %q", s, b, want)
		}
		var back State
		if err := back.UnmarshalText(b); (err == nil) != (s != 0) || (err == nil && back != s) {
			t.Errorf("State %q did not round-trip: %v %v", b, back, err)
		}
	}
	for c, want := range map[Class]string{ClassRead: "read", ClassBenign: "benign", ClassDestructive: "destructive", 0: "unspecified"} {
		b, _ := c.MarshalText()
		if string(b) != want {
			t.Errorf("Class %d = %q, want %q", c, b, want)
		}
		var back Class
		if err := back.UnmarshalText(b); (err == nil) != (c != 0) || (err == nil && back != c) {
			t.Errorf("Class %q did not round-trip: %v %v", b, back, err)
		}
	}
}

func mustLookup(t *testing.T, r *Registry, id CapabilityID) *Entry {
	t.Helper()
	e, ok := r.Lookup(id)
	if !ok {
		t.Fatalf("%s not registered", id)
	}
	return e
}

// TestSwapIsAtomicForReaders swaps generations while readers look up both
// capabilities of the plugin: a capability must never be missing (a
// remove-then-add swap would show a gap), and an entry's generation must
// always declare it.
func TestSwapIsAtomicForReaders(t *testing.T) {
	r := newReg(t, nil)
	if _, err := r.Swap("storage", gen("storage", 0, "storage.list", "storage.define")); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var bad atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				for _, id := range []CapabilityID{"storage.list", "storage.define"} {
					e, ok := r.Lookup(id)
					if !ok || e.Generation.Capabilities[0].ID != "storage.list" {
						bad.Add(1)
					}
				}
			}
		}()
	}
	for n := uint64(1); n <= 2000; n++ {
		if _, err := r.Swap("storage", gen("storage", n, "storage.list", "storage.define")); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d lookups saw a missing or foreign entry during swaps", bad.Load())
	}
	if e := mustLookup(t, r, "storage.list"); e.Generation.Number != 2000 {
		t.Fatalf("final generation %d", e.Generation.Number)
	}
}

func BenchmarkLookup(b *testing.B) {
	r := newReg(b, nil)
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("plugin%d", i)
		ids := make([]string, 8)
		for j := range ids {
			ids[j] = fmt.Sprintf("ns%d.cap%d", i, j)
		}
		if _, err := r.Swap(name, gen(name, 1, ids...)); err != nil {
			b.Fatal(err)
		}
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := r.Lookup("ns5.cap3"); !ok {
				b.Fatal("missing")
			}
		}
	})
}

func FuzzParseCapabilityID(f *testing.F) {
	for _, s := range []string{"storage.list", "a.b.c", "", ".", "A.b", "a..b", "a.b-", "a.-b", "a1.b_2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseCapabilityID(s)
		if err != nil {
			return
		}
		if string(id) != s || id.Namespace() == "" || id.Name() == "" || strings.ToLower(s) != s {
			t.Fatalf("accepted %q: namespace %q name %q", s, id.Namespace(), id.Name())
		}
		if string(id) != id.Namespace()+"."+id.Name() {
			t.Fatalf("%q does not split back", s)
		}
	})
}
