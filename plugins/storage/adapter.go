package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/plugins/storage/internal/pvestorage"
	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

// hostAPI adapts the SDK's API proxy to [pvestorage.API].
type hostAPI struct{ api sdk.API }

func (h hostAPI) Call(ctx context.Context, method, path string, params url.Values) (json.RawMessage, error) {
	resp, err := h.api.Call(ctx, method, path, params)
	if err != nil {
		return nil, fromSDKError(err)
	}
	return resp.Data, nil
}

// apiError keeps the SDK's *APIError reachable beside the domain's view of it.
type apiError struct {
	sdkErr *sdk.APIError
	pv     *pvestorage.APIError
}

func (e *apiError) Error() string   { return e.sdkErr.Error() }
func (e *apiError) Unwrap() []error { return []error{e.sdkErr, e.pv} }

func fromSDKError(err error) error {
	var ae *sdk.APIError
	switch {
	case errors.As(err, &ae):
		msg := ae.Message
		if strings.TrimSpace(msg) == "" {
			msg = ae.Reason
		}
		return &apiError{sdkErr: ae, pv: &pvestorage.APIError{Status: ae.Status, Message: msg, Errors: ae.Errors}}
	case errors.Is(err, sdk.ErrNotInScope):
		return &pvestorage.Error{Code: pvestorage.CodePermissionDenied, Message: "core refused the API call", Err: err}
	}
	return err
}

var codes = map[pvestorage.Code]sdk.ErrorCode{
	pvestorage.CodeInvalidParams:    sdk.CodeInvalidParams,
	pvestorage.CodeNotFound:         sdk.CodeNotFound,
	pvestorage.CodeConflict:         sdk.CodeConflict,
	pvestorage.CodePermissionDenied: sdk.CodePermissionDenied,
	pvestorage.CodeUnavailable:      sdk.CodeUnavailable,
	pvestorage.CodeInternal:         sdk.CodeInternal,
}

// toSDKError turns a domain error into the SDK's structured error, so the
// core (and the hub) can tell bad input from a missing storage from a
// conflict. Context errors pass through; the SDK maps them itself.
func toSDKError(err error) error {
	var e *pvestorage.Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	msg := e.Error()
	if e.Field != "" {
		msg = strings.TrimPrefix(msg, e.Field+": ")
	}
	pe := &sdk.PluginError{Code: codes[e.Code], Field: e.Field, Message: msg}
	var ae *sdk.APIError
	if errors.As(err, &ae) {
		pe.Details = map[string]string{"proxmox_status": strconv.Itoa(ae.Status), "proxmox_path": ae.Path}
	}
	return pe
}
