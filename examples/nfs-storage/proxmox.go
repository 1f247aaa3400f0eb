package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

// storageConfig is an entry of GET /storage or GET /storage/{id}. Proxmox
// writes booleans as 0/1.
type storageConfig struct {
	Storage string  `json:"storage"`
	Type    string  `json:"type"`
	Server  string  `json:"server"`
	Export  string  `json:"export"`
	Path    string  `json:"path"`
	Options string  `json:"options"`
	Content string  `json:"content"`
	Nodes   string  `json:"nodes"`
	Disable flexInt `json:"disable"`
	Digest  string  `json:"digest"`
}

// storageStatus is an entry of GET /nodes/{node}/storage or the answer of
// .../storage/{id}/status (which has no "storage" member).
type storageStatus struct {
	Storage string  `json:"storage"`
	Type    string  `json:"type"`
	Content string  `json:"content"`
	Active  flexInt `json:"active"`
	Enabled flexInt `json:"enabled"`
	Shared  flexInt `json:"shared"`
	Total   flexInt `json:"total"`
	Used    flexInt `json:"used"`
	Avail   flexInt `json:"avail"`
}

func (s storageStatus) info() sdk.StorageInfo {
	return sdk.StorageInfo{ID: s.Storage, Type: s.Type, Content: splitList(s.Content), Active: s.Active != 0,
		Enabled: s.Enabled != 0, Shared: s.Shared != 0, TotalBytes: s.Total.uint(), UsedBytes: s.Used.uint(),
		AvailBytes: s.Avail.uint()}
}

// contentItem is an entry of GET /nodes/{node}/storage/{id}/content.
type contentItem struct {
	VolID   string  `json:"volid"`
	Content string  `json:"content"`
	Format  string  `json:"format"`
	Size    flexInt `json:"size"`
	CTime   flexInt `json:"ctime"`
	VMID    flexInt `json:"vmid"`
	Notes   string  `json:"notes"`
}

// flexInt reads an integer written as a number, a numeric string or a
// boolean, as Proxmox answers vary.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	switch s {
	case "", "null", "false":
		*f = 0
		return nil
	case "true":
		*f = 1
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fl, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || fl != float64(int64(fl)) {
			return fmt.Errorf("want an integer, got %.40s", s)
		}
		n = int64(fl)
	}
	*f = flexInt(n)
	return nil
}

func (f flexInt) uint() uint64 {
	if f < 0 {
		return 0
	}
	return uint64(f)
}

// pve wraps the core's API proxy with the few calls this plugin makes.
type pve struct {
	api  sdk.API
	node string
}

func (p pve) nodePath() string { return "/nodes/" + url.PathEscape(p.node) + "/storage" }

func (p pve) nfsConfigs(ctx context.Context) ([]storageConfig, error) {
	data, err := p.api.Get(ctx, "/storage", url.Values{"type": {"nfs"}})
	if err != nil {
		return nil, classify(err, "list NFS storage configs")
	}
	var out []storageConfig
	if err := decode(data, &out); err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "", "decode storage configs: %v", err)
	}
	return out, nil
}

func (p pve) config(ctx context.Context, id string) (storageConfig, error) {
	data, err := p.api.Get(ctx, "/storage/"+id, nil)
	if err != nil {
		return storageConfig{}, classify(err, "read storage "+id)
	}
	var c storageConfig
	if err := decode(data, &c); err != nil {
		return c, sdk.Errorf(sdk.CodeInternal, "", "decode storage %s: %v", id, err)
	}
	return c, nil
}

func (p pve) statuses(ctx context.Context) (map[string]storageStatus, error) {
	data, err := p.api.Get(ctx, p.nodePath(), nil)
	if err != nil {
		return nil, classify(err, "list storages of node "+p.node)
	}
	var list []storageStatus
	if err := decode(data, &list); err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "", "decode storage list: %v", err)
	}
	out := make(map[string]storageStatus, len(list))
	for _, s := range list {
		out[s.Storage] = s
	}
	return out, nil
}

func (p pve) status(ctx context.Context, id string) (storageStatus, error) {
	data, err := p.api.Get(ctx, p.nodePath()+"/"+id+"/status", nil)
	if err != nil {
		return storageStatus{}, classify(err, "status of storage "+id)
	}
	var s storageStatus
	if err := decode(data, &s); err != nil {
		return s, sdk.Errorf(sdk.CodeInternal, "", "decode status of %s: %v", id, err)
	}
	s.Storage = id
	return s, nil
}

func (p pve) content(ctx context.Context, id, content string, vmid uint32) ([]contentItem, error) {
	q := url.Values{}
	if content != "" {
		q.Set("content", content)
	}
	if vmid != 0 {
		q.Set("vmid", strconv.FormatUint(uint64(vmid), 10))
	}
	data, err := p.api.Get(ctx, p.nodePath()+"/"+id+"/content", q)
	if err != nil {
		return nil, classify(err, "list content of "+id)
	}
	var items []contentItem
	if err := decode(data, &items); err != nil {
		return nil, sdk.Errorf(sdk.CodeInternal, "", "decode content of %s: %v", id, err)
	}
	return items, nil
}

func decode(data json.RawMessage, v any) error {
	if len(bytes.TrimSpace(data)) == 0 || string(data) == "null" {
		return nil
	}
	return json.Unmarshal(data, v)
}

// classify turns an API proxy error into an sdk error with a code, so the
// core can tell a missing storage from a refused call from a conflict.
func classify(err error, doing string) error {
	var ae *sdk.APIError
	if !errors.As(err, &ae) {
		if errors.Is(err, sdk.ErrNotInScope) {
			return sdk.Errorf(sdk.CodePermissionDenied, "", "%s: %v", doing, err)
		}
		return fmt.Errorf("%s: %w", doing, err)
	}
	text := strings.ToLower(ae.Message + " " + ae.Reason + " " + ae.Errors["storage"])
	code, field := sdk.CodeInternal, ""
	switch {
	case ae.Status == 403:
		code = sdk.CodePermissionDenied
	case strings.Contains(text, "does not exist"), strings.Contains(text, "no such storage"):
		code = sdk.CodeNotFound
	case strings.Contains(text, "detected modified configuration"):
		code, field = sdk.CodeConflict, "digest"
	case strings.Contains(text, "already defined"):
		code, field = sdk.CodeConflict, "id"
	case ae.Status == 400:
		code = sdk.CodeInvalidParams
		for k := range ae.Errors {
			if field == "" || k < field {
				field = k
			}
		}
	case ae.Status >= 502 && ae.Status <= 504, ae.Status >= 595:
		code = sdk.CodeUnavailable
	}
	return &sdk.PluginError{Code: code, Field: field, Message: doing + ": " + ae.Error()}
}
