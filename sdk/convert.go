package sdk

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// toStruct converts a handler's result (or a report section) to a Struct:
// nil stays nil; a map[string]any of plain values converts directly; any
// other value goes through encoding/json and must encode to an object.
func toStruct(v any) (*structpb.Struct, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case *structpb.Struct:
		return t, nil
	case map[string]any:
		if t == nil {
			return nil, nil
		}
		if s, err := structpb.NewStruct(t); err == nil {
			return s, nil
		}
	}
	if isNilValue(v) {
		return nil, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T as json: %w", v, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%T does not encode to a JSON object", v)
	}
	return structpb.NewStruct(m)
}

func classToProto(c Class) pluginv1.CapabilityClass {
	switch c {
	case Read:
		return pluginv1.CapabilityClass_CAPABILITY_CLASS_READ
	case Benign:
		return pluginv1.CapabilityClass_CAPABILITY_CLASS_BENIGN
	case Destructive:
		return pluginv1.CapabilityClass_CAPABILITY_CLASS_DESTRUCTIVE
	}
	return pluginv1.CapabilityClass_CAPABILITY_CLASS_UNSPECIFIED
}

func stateToProto(s State) pluginv1.State {
	switch s {
	case Available:
		return pluginv1.State_STATE_AVAILABLE
	case StateNotApplicable:
		return pluginv1.State_STATE_NOT_APPLICABLE
	case Unhealthy:
		return pluginv1.State_STATE_UNHEALTHY
	}
	return pluginv1.State_STATE_UNSPECIFIED
}

func checkStatusToProto(s CheckStatus) pluginv1.CheckStatus {
	switch s {
	case Pass:
		return pluginv1.CheckStatus_CHECK_STATUS_PASS
	case Fail:
		return pluginv1.CheckStatus_CHECK_STATUS_FAIL
	case Skip:
		return pluginv1.CheckStatus_CHECK_STATUS_SKIP
	case NotApplicable:
		return pluginv1.CheckStatus_CHECK_STATUS_NOT_APPLICABLE
	}
	return pluginv1.CheckStatus_CHECK_STATUS_UNSPECIFIED
}

func capabilityToProto(c *Capability) *pluginv1.Capability {
	out := &pluginv1.Capability{
		Id:            c.ID,
		SchemaVersion: c.SchemaVersion,
		Class:         classToProto(c.Class),
		NeedsRoot:     c.NeedsRoot,
		Description:   c.Description,
		Flags:         append([]string(nil), c.Flags...),
	}
	for _, s := range c.API {
		out.Api = append(out.Api, &pluginv1.APIScope{Method: s.Method, Path: s.Path})
	}
	return out
}
