package pvestorage

import (
	"reflect"
	"strings"
	"testing"
)

// nodeStorageJSON is shaped like a real GET /nodes/{node}/storage answer:
// Perl 0/1 booleans, no sizes for an inactive storage, a number as a string.
const nodeStorageJSON = `[
 {"storage":"local-lvm","type":"lvmthin","content":"rootdir,images","active":1,"enabled":1,"shared":0,
  "total":100000000000,"used":25000000000,"avail":75000000000,"used_fraction":0.25},
 {"storage":"local","type":"dir","content":"vztmpl,iso,backup","active":1,"enabled":1,"shared":0,
  "total":"50000000000","used":1000,"avail":49999999000},
 {"storage":"nas","type":"nfs","content":"backup","active":0,"enabled":0,"shared":1}
]`

func TestDecodeStorages(t *testing.T) {
	got, err := DecodeStorages([]byte(nodeStorageJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := []Storage{
		{ID: "local", Type: "dir", Content: []string{"backup", "iso", "vztmpl"}, Active: true, Enabled: true,
			Total: 50000000000, Used: 1000, Avail: 49999999000},
		{ID: "local-lvm", Type: "lvmthin", Content: []string{"images", "rootdir"}, Active: true, Enabled: true,
			Total: 100000000000, Used: 25000000000, Avail: 75000000000},
		{ID: "nas", Type: "nfs", Content: []string{"backup"}, Shared: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeStorages:\n got %+v\nwant %+v", got, want)
	}
	if !got[0].Allows("iso") || got[0].Allows("images") {
		t.Errorf("Allows on %v wrong", got[0].Content)
	}
}

func TestDecodeStoragesErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not a list":       `{"storage":"x"}`,
		"missing id":       `[{"type":"dir"}]`,
		"negative size":    `[{"storage":"a1","total":-5}]`,
		"fractional size":  `[{"storage":"a1","total":1.5}]`,
		"bad boolean":      `[{"storage":"a1","active":"yes"}]`,
		"bad string total": `[{"storage":"a1","total":"12abc"}]`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeStorages([]byte(in)); err == nil {
				t.Fatalf("DecodeStorages(%s) succeeded", in)
			} else if !strings.Contains(err.Error(), "decode storage list") {
				t.Errorf("error %q does not say what was decoded", err)
			}
		})
	}
	if got, err := DecodeStorages([]byte("null")); err != nil || len(got) != 0 {
		t.Errorf("DecodeStorages(null) = %v, %v; want empty", got, err)
	}
}

func TestDecodeStatus(t *testing.T) {
	got, err := DecodeStatus("local", []byte(`{"type":"dir","content":"iso,backup","active":1,"enabled":1,"shared":0,"total":10,"used":4,"avail":6}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Storage{ID: "local", Type: "dir", Content: []string{"backup", "iso"}, Active: true, Enabled: true,
		Total: 10, Used: 4, Avail: 6}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestDecodeContent(t *testing.T) {
	in := `[
 {"volid":"pbs:backup/vm/101/2026-08-01T10:00:00Z","content":"backup","format":"pbs-vm","size":4096,
  "ctime":1785578400,"vmid":101,"protected":1,"verification":{"state":"ok","upid":"UPID:x"},"notes":"nightly"},
 {"volid":"local:backup/vzdump-lxc-100-2026_08_01-10_00_00.tar.zst","content":"backup","format":"tar.zst",
  "size":"2048","ctime":1785578400,"vmid":"100"},
 {"volid":"local:iso/debian.iso","content":"iso","format":"iso","size":1}
]`
	got, err := DecodeContent([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []ContentItem{
		{VolID: "local:backup/vzdump-lxc-100-2026_08_01-10_00_00.tar.zst", Content: "backup", Format: "tar.zst",
			Size: 2048, CTime: 1785578400, VMID: 100},
		{VolID: "local:iso/debian.iso", Content: "iso", Format: "iso", Size: 1},
		{VolID: "pbs:backup/vm/101/2026-08-01T10:00:00Z", Content: "backup", Format: "pbs-vm", Size: 4096,
			CTime: 1785578400, VMID: 101, Notes: "nightly", Protected: true, Verification: "ok"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeContent:\n got %+v\nwant %+v", got, want)
	}
	if _, err := DecodeContent([]byte(`[{"volid":"a:b","vmid":99999999999}]`)); err == nil {
		t.Error("vmid beyond uint32 accepted")
	}
	if _, err := DecodeContent([]byte(`[{"content":"iso"}]`)); err == nil {
		t.Error("entry without volid accepted")
	}
}

func TestDecodeConfig(t *testing.T) {
	in := `{"storage":"nas","type":"nfs","server":"192.0.2.10","export":"/srv/backup","content":"backup,iso",
	 "nodes":"pve1,pve2","disable":1,"digest":"0123abcd","options":"vers=4.2","prune-backups":"keep-last=3",
	 "shared":1,"port":8007,"fuse":false}`
	got, err := DecodeConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{ID: "nas", Type: "nfs", Content: []string{"backup", "iso"}, Nodes: []string{"pve1", "pve2"},
		Disable: true, Digest: "0123abcd", Options: map[string]string{
			"server": "192.0.2.10", "export": "/srv/backup", "options": "vers=4.2",
			"prune-backups": "keep-last=3", "shared": "1", "port": "8007", "fuse": "0"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeConfig:\n got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{`null`, `{"type":"dir"}`, `{"storage":"a1"}`, `[1]`, `{"storage":"a1","type":"dir","x":}`} {
		if _, err := DecodeConfig([]byte(bad)); err == nil {
			t.Errorf("DecodeConfig(%s) succeeded", bad)
		}
	}
}

func TestSplitList(t *testing.T) {
	for in, want := range map[string][]string{
		"":                      nil,
		"images,rootdir":        {"images", "rootdir"},
		"rootdir, images;iso":   {"images", "iso", "rootdir"},
		"backup,backup,,backup": {"backup"},
		" , ;":                  nil,
	} {
		if got := SplitList(in); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitList(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzDecodeStorages(f *testing.F) {
	f.Add([]byte(nodeStorageJSON))
	f.Add([]byte(`[{"storage":"a1","total":"1e3","active":"1"}]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := DecodeStorages(data)
		if err != nil {
			return
		}
		for i, st := range list {
			if st.ID == "" {
				t.Fatalf("entry %d decoded without an ID", i)
			}
			if i > 0 && list[i-1].ID > st.ID {
				t.Fatalf("not sorted: %q before %q", list[i-1].ID, st.ID)
			}
			for _, c := range st.Content {
				if c == "" || strings.ContainsAny(c, ",; ") {
					t.Fatalf("content item %q not split", c)
				}
			}
		}
	})
}

func FuzzDecodeContent(f *testing.F) {
	f.Add([]byte(`[{"volid":"a:b","size":"12","ctime":-1,"vmid":100,"verification":{"state":"ok"}}]`))
	f.Add([]byte(`[{"volid":"x","size":1.0e3}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := DecodeContent(data)
		if err != nil {
			return
		}
		for _, it := range items {
			if it.VolID == "" {
				t.Fatal("item without volid")
			}
		}
	})
}

func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(`{"storage":"nas","type":"nfs","disable":1,"digest":"ab","port":8007,"fuse":true,"x":null}`))
	f.Add([]byte(`{"storage":"a1","type":"dir","o":{"k":[1]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeConfig(data)
		if err != nil {
			return
		}
		if c.ID == "" || c.Type == "" || c.Options == nil {
			t.Fatalf("decoded incomplete config %+v", c)
		}
		for _, k := range []string{"storage", "type", "content", "nodes", "disable", "digest"} {
			if _, ok := c.Options[k]; ok {
				t.Fatalf("%s leaked into Options", k)
			}
		}
	})
}
