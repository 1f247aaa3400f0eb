package pvestorage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Storage is one storage as seen from this node: its configuration summary
// and its live status. Sizes are zero when the storage is not active.
type Storage struct {
	ID      string   `json:"id"`
	Type    string   `json:"type"`
	Content []string `json:"content"`
	Active  bool     `json:"active"`
	Enabled bool     `json:"enabled"`
	Shared  bool     `json:"shared"`
	Total   uint64   `json:"total_bytes"`
	Used    uint64   `json:"used_bytes"`
	Avail   uint64   `json:"avail_bytes"`
}

// Allows reports whether the storage accepts the content type.
func (s Storage) Allows(content string) bool {
	for _, c := range s.Content {
		if c == content {
			return true
		}
	}
	return false
}

// ContentItem is one volume on a storage.
type ContentItem struct {
	VolID     string `json:"volid"`
	Content   string `json:"content"`
	Format    string `json:"format"`
	Size      uint64 `json:"size_bytes"`
	CTime     int64  `json:"ctime,omitempty"`
	VMID      uint32 `json:"vmid,omitempty"`
	Notes     string `json:"notes,omitempty"`
	Protected bool   `json:"protected,omitempty"`
	// Verification is the last PBS verify state ("ok", "failed"), if any.
	Verification string `json:"verification,omitempty"`
}

// Config is a storage's entry in the cluster storage configuration
// (storage.cfg), as GET /storage/{storage} returns it.
type Config struct {
	ID      string
	Type    string
	Content []string
	Nodes   []string
	Disable bool
	Digest  string
	// Options are the remaining properties, as strings (booleans "0"/"1").
	// Sensitive ones (passwords, keys) are never returned by Proxmox.
	Options map[string]string
}

// flexBool decodes a Proxmox boolean: 0/1 (what Perl emits), true/false, or
// either as a string.
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	s := string(bytes.TrimSpace(data))
	switch s {
	case "null":
		return nil
	case "1", "true", `"1"`, `"true"`:
		*b = true
	case "0", "false", `"0"`, `"false"`, `""`:
		*b = false
	default:
		return fmt.Errorf("boolean: unexpected value %.40s", s)
	}
	return nil
}

// flexUint decodes a non-negative integer sent as a number or a string.
type flexUint uint64

func (u *flexUint) UnmarshalJSON(data []byte) error {
	s, null, err := scalarText(data)
	if err != nil || null {
		return err
	}
	if v, err := strconv.ParseUint(s, 10, 64); err == nil {
		*u = flexUint(v)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f >= math.MaxUint64 || math.IsNaN(f) || f != math.Trunc(f) {
		return fmt.Errorf("unsigned integer: unexpected value %.40q", s)
	}
	*u = flexUint(f)
	return nil
}

// flexInt decodes an integer sent as a number or a string.
type flexInt int64

func (i *flexInt) UnmarshalJSON(data []byte) error {
	s, null, err := scalarText(data)
	if err != nil || null {
		return err
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*i = flexInt(v)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= math.MinInt64 || f >= math.MaxInt64 || math.IsNaN(f) || f != math.Trunc(f) {
		return fmt.Errorf("integer: unexpected value %.40q", s)
	}
	*i = flexInt(f)
	return nil
}

// scalarText returns the text of a JSON number or string.
func scalarText(data []byte) (s string, null bool, err error) {
	data = bytes.TrimSpace(data)
	if string(data) == "null" {
		return "", true, nil
	}
	if len(data) > 0 && data[0] == '"' {
		if err := json.Unmarshal(data, &s); err != nil {
			return "", false, err
		}
		s = strings.TrimSpace(s)
		return s, s == "", nil
	}
	return string(data), false, nil
}

type rawStorage struct {
	Storage string   `json:"storage"`
	Type    string   `json:"type"`
	Content string   `json:"content"`
	Active  flexBool `json:"active"`
	Enabled flexBool `json:"enabled"`
	Shared  flexBool `json:"shared"`
	Total   flexUint `json:"total"`
	Used    flexUint `json:"used"`
	Avail   flexUint `json:"avail"`
}

func (r rawStorage) storage() Storage {
	return Storage{
		ID: r.Storage, Type: r.Type, Content: SplitList(r.Content),
		Active: bool(r.Active), Enabled: bool(r.Enabled), Shared: bool(r.Shared),
		Total: uint64(r.Total), Used: uint64(r.Used), Avail: uint64(r.Avail),
	}
}

// DecodeStorages decodes the data of GET /nodes/{node}/storage, sorted by ID.
func DecodeStorages(data []byte) ([]Storage, error) {
	var raw []rawStorage
	if err := decodeData(data, &raw); err != nil {
		return nil, fmt.Errorf("decode storage list: %w", err)
	}
	out := make([]Storage, 0, len(raw))
	for i, r := range raw {
		if r.Storage == "" {
			return nil, fmt.Errorf("decode storage list: entry %d has no storage ID", i)
		}
		out = append(out, r.storage())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DecodeStatus decodes the data of GET /nodes/{node}/storage/{id}/status,
// which does not repeat the ID.
func DecodeStatus(id string, data []byte) (Storage, error) {
	var r rawStorage
	if err := decodeData(data, &r); err != nil {
		return Storage{}, fmt.Errorf("decode status of storage %q: %w", id, err)
	}
	r.Storage = id
	return r.storage(), nil
}

type rawContent struct {
	VolID        string    `json:"volid"`
	Content      string    `json:"content"`
	Format       string    `json:"format"`
	Size         flexUint  `json:"size"`
	CTime        flexInt   `json:"ctime"`
	VMID         flexUint  `json:"vmid"`
	Notes        string    `json:"notes"`
	Protected    flexBool  `json:"protected"`
	Verification *struct { // PBS only
		State string `json:"state"`
	} `json:"verification"`
}

// DecodeContent decodes the data of GET /nodes/{node}/storage/{id}/content,
// sorted by volume ID.
func DecodeContent(data []byte) ([]ContentItem, error) {
	var raw []rawContent
	if err := decodeData(data, &raw); err != nil {
		return nil, fmt.Errorf("decode storage content: %w", err)
	}
	out := make([]ContentItem, 0, len(raw))
	for i, r := range raw {
		if r.VolID == "" {
			return nil, fmt.Errorf("decode storage content: entry %d has no volid", i)
		}
		if r.VMID > math.MaxUint32 {
			return nil, fmt.Errorf("decode storage content: entry %q: vmid %d out of range", r.VolID, r.VMID)
		}
		it := ContentItem{
			VolID: r.VolID, Content: r.Content, Format: r.Format, Size: uint64(r.Size),
			CTime: int64(r.CTime), VMID: uint32(r.VMID), Notes: r.Notes, Protected: bool(r.Protected),
		}
		if r.Verification != nil {
			it.Verification = r.Verification.State
		}
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VolID < out[j].VolID })
	return out, nil
}

// DecodeConfig decodes the data of GET /storage/{storage}.
func DecodeConfig(data []byte) (Config, error) {
	var raw map[string]json.RawMessage
	if err := decodeData(data, &raw); err != nil {
		return Config{}, fmt.Errorf("decode storage config: %w", err)
	}
	if raw == nil {
		return Config{}, fmt.Errorf("decode storage config: no data")
	}
	c := Config{Options: map[string]string{}}
	for k, v := range raw {
		s, err := configValue(v)
		if err != nil {
			return Config{}, fmt.Errorf("decode storage config: property %q: %w", k, err)
		}
		switch k {
		case "storage":
			c.ID = s
		case "type":
			c.Type = s
		case "content":
			c.Content = SplitList(s)
		case "nodes":
			c.Nodes = SplitList(s)
		case "disable":
			c.Disable = s == "1"
		case "digest":
			c.Digest = s
		default:
			c.Options[k] = s
		}
	}
	if c.ID == "" || c.Type == "" {
		return Config{}, fmt.Errorf("decode storage config: storage and type are required")
	}
	return c, nil
}

// configValue renders a config property as the string Proxmox stores:
// booleans as 0/1, numbers as written.
func configValue(v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0:
		return "", fmt.Errorf("empty value")
	case v[0] == '"':
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	case string(v) == "true":
		return "1", nil
	case string(v) == "false":
		return "0", nil
	case string(v) == "null":
		return "", nil
	case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return "", err
		}
		return n.String(), nil
	}
	// Objects and arrays are not storage.cfg values; keep their JSON.
	if !json.Valid(v) {
		return "", fmt.Errorf("invalid JSON")
	}
	return string(v), nil
}

// decodeData unmarshals data, treating JSON null or no data as "nothing".
func decodeData(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	return json.Unmarshal(data, v)
}

// SplitList splits a Proxmox list property ("images,rootdir", "pve1;pve2")
// into sorted, unique, non-empty items.
func SplitList(s string) []string {
	fields := strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == 0
	})
	sort.Strings(fields)
	out := fields[:0]
	for i, f := range fields {
		if i > 0 && f == fields[i-1] {
			continue
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
