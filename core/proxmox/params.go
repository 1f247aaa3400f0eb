package proxmox

import (
	"fmt"
	"net/url"
	"strconv"
)

// toValues converts the params accepted by [Client.Do] to url.Values.
// PVE takes booleans as 0/1; a []string value repeats the parameter.
func toValues(params any) (url.Values, error) {
	switch p := params.(type) {
	case nil:
		return nil, nil
	case url.Values:
		return p, nil
	case map[string]string:
		v := make(url.Values, len(p))
		for k, s := range p {
			v.Set(k, s)
		}
		return v, nil
	case map[string]any:
		v := make(url.Values, len(p))
		for k, x := range p {
			if x == nil {
				continue
			}
			if ss, ok := x.([]string); ok {
				v[k] = append([]string(nil), ss...)
				continue
			}
			s, err := paramString(x)
			if err != nil {
				return nil, fmt.Errorf("param %q: %w", k, err)
			}
			v.Set(k, s)
		}
		return v, nil
	default:
		return nil, fmt.Errorf("params: unsupported type %T (want url.Values, map[string]string or map[string]any)", params)
	}
}

func paramString(x any) (string, error) {
	switch v := x.(type) {
	case string:
		return v, nil
	case bool:
		if v {
			return "1", nil
		}
		return "0", nil
	case int:
		return strconv.Itoa(v), nil
	case int32:
		return strconv.FormatInt(int64(v), 10), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint32:
		return strconv.FormatUint(uint64(v), 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case fmt.Stringer:
		return v.String(), nil
	default:
		return "", fmt.Errorf("unsupported value type %T", x)
	}
}
