package pvestorage

import "context"

// Results travel as protobuf Structs, so they are built from the JSON-like
// Go values a Struct holds: map[string]any, []any, string, float64, bool.

// StorageMap renders a storage as a capability result.
func StorageMap(st Storage) map[string]any {
	return map[string]any{
		"id": st.ID, "type": st.Type, "content": stringsAny(st.Content),
		"active": st.Active, "enabled": st.Enabled, "shared": st.Shared,
		"total_bytes": float64(st.Total), "used_bytes": float64(st.Used), "avail_bytes": float64(st.Avail),
	}
}

// StoragesMap renders a storage list as a capability result.
func StoragesMap(list []Storage) map[string]any {
	out := make([]any, 0, len(list))
	for _, st := range list {
		out = append(out, StorageMap(st))
	}
	return map[string]any{"storages": out}
}

// ContentMap renders a content list as a capability result.
func ContentMap(id string, items []ContentItem) map[string]any {
	out := make([]any, 0, len(items))
	for _, it := range items {
		m := map[string]any{"volid": it.VolID, "content": it.Content, "format": it.Format,
			"size_bytes": float64(it.Size)}
		if it.CTime != 0 {
			m["ctime"] = float64(it.CTime)
		}
		if it.VMID != 0 {
			m["vmid"] = float64(it.VMID)
		}
		if it.Notes != "" {
			m["notes"] = it.Notes
		}
		if it.Protected {
			m["protected"] = true
		}
		if it.Verification != "" {
			m["verification"] = it.Verification
		}
		out = append(out, m)
	}
	return map[string]any{"id": id, "items": out}
}

// Report builds the HostReport "storage" section: every storage of this
// node with its status.
func (s *Service) Report(ctx context.Context) (map[string]any, error) {
	list, err := s.List(ctx, ListFilter{})
	if err != nil {
		return nil, err
	}
	m := StoragesMap(list)
	m["node"] = s.Node
	return m, nil
}

func stringsAny(l []string) []any {
	out := make([]any, 0, len(l))
	for _, s := range l {
		out = append(out, s)
	}
	return out
}
