package main

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

func TestDecodeStatus(t *testing.T) {
	var list []storageStatus
	in := `[{"storage":"nas","type":"nfs","content":"iso,backup","active":1,"enabled":"1","shared":true,
	  "total":"2199023255552","used":1024,"avail":2199023254528}]`
	if err := decode(json.RawMessage(in), &list); err != nil {
		t.Fatal(err)
	}
	got := list[0].info()
	want := sdk.StorageInfo{ID: "nas", Type: "nfs", Content: []string{"backup", "iso"}, Active: true, Enabled: true,
		Shared: true, TotalBytes: 2199023255552, UsedBytes: 1024, AvailBytes: 2199023254528}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if err := decode(json.RawMessage(`[{"storage":"x","total":"lots"}]`), &list); err == nil {
		t.Error("non-numeric total accepted")
	}
	var none []storageStatus
	if err := decode(json.RawMessage(`null`), &none); err != nil || none != nil {
		t.Errorf("null data: %v %v", none, err)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err   error
		code  sdk.ErrorCode
		field string
	}{
		{&sdk.APIError{Status: 500, Message: "storage 'nas' does not exist\n"}, sdk.CodeNotFound, ""},
		{&sdk.APIError{Status: 400, Errors: map[string]string{"storage": "No such storage."}}, sdk.CodeNotFound, ""},
		{&sdk.APIError{Status: 500, Message: "storage ID 'nas' already defined\n"}, sdk.CodeConflict, "id"},
		{&sdk.APIError{Status: 500, Reason: "detected modified configuration - file changed by other user? Try again."}, sdk.CodeConflict, "digest"},
		{&sdk.APIError{Status: 400, Errors: map[string]string{"server": "invalid", "export": "invalid"}}, sdk.CodeInvalidParams, "export"},
		{&sdk.APIError{Status: 403, Message: "Permission check failed (/storage, Datastore.Allocate)"}, sdk.CodePermissionDenied, ""},
		{&sdk.APIError{Status: 596, Reason: "Connection timed out"}, sdk.CodeUnavailable, ""},
		{sdk.ErrNotInScope, sdk.CodePermissionDenied, ""},
	}
	for _, c := range cases {
		var pe *sdk.PluginError
		if err := classify(c.err, "x"); !errors.As(err, &pe) || pe.Code != c.code || pe.Field != c.field {
			t.Errorf("classify(%v) = %v, want %v/%q", c.err, err, c.code, c.field)
		}
	}
}

func FuzzDecodeStorageStatus(f *testing.F) {
	f.Add([]byte(`[{"storage":"nas","active":"1","total":1e3,"used":-1}]`))
	f.Add([]byte(`{"type":"nfs","enabled":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var list []storageStatus
		if decode(data, &list) == nil {
			for _, s := range list {
				_ = s.info() // must not panic; negative sizes clamp to 0
				if s.Used < 0 && s.info().UsedBytes != 0 {
					t.Fatal("negative size not clamped")
				}
			}
		}
		var one storageConfig
		_ = decode(data, &one)
	})
}
