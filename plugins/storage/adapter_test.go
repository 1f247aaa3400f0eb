package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/plugins/storage/internal/pvestorage"
	"gitea.dooplex.hu/admin/felhom-agent/sdk"
)

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		code  sdk.ErrorCode
		field string
	}{
		{"missing storage", &sdk.APIError{Method: "GET", Path: "/storage/x", Status: 500, Message: "storage 'x' does not exist\n"}, sdk.CodeNotFound, ""},
		{"reason only", &sdk.APIError{Method: "GET", Path: "/storage/x", Status: 500, Reason: "storage 'x' does not exist"}, sdk.CodeNotFound, ""},
		{"stale digest", &sdk.APIError{Status: 500, Message: "detected modified configuration - file changed by other user? Try again.\n"}, sdk.CodeConflict, "digest"},
		{"bad param", &sdk.APIError{Status: 400, Message: "Parameter verification failed.", Errors: map[string]string{"server": "invalid format"}}, sdk.CodeInvalidParams, "options.server"},
		{"not in scope", fmt.Errorf("proxmox DELETE /cluster/x: %w: denied", sdk.ErrNotInScope), sdk.CodePermissionDenied, ""},
		{"core gone", sdk.Errorf(sdk.CodeUnavailable, "", "core host services unavailable"), sdk.CodeUnavailable, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc := &pvestorage.Service{API: hostAPI{failingAPI{err: c.err}}, Node: "pve1"}
			_, err := svc.Config(context.Background(), "x1")
			got := toSDKError(err)
			var pe *sdk.PluginError
			if !errors.As(got, &pe) {
				t.Fatalf("toSDKError gave %T %v", got, got)
			}
			if pe.Code != c.code || pe.Field != c.field {
				t.Fatalf("got %v/%q (%v), want %v/%q", pe.Code, pe.Field, pe, c.code, c.field)
			}
		})
	}
	// A Proxmox error keeps its status and path in the details.
	svc := &pvestorage.Service{API: hostAPI{failingAPI{err: &sdk.APIError{Method: "GET", Path: "/storage/x1", Status: 403}}}, Node: "pve1"}
	_, err := svc.Config(context.Background(), "x1")
	var pe *sdk.PluginError
	if !errors.As(toSDKError(err), &pe) || pe.Details["proxmox_status"] != "403" || pe.Details["proxmox_path"] != "/storage/x1" {
		t.Fatalf("details lost: %#v", pe)
	}
	// Context errors stay recognisable.
	svc = &pvestorage.Service{API: hostAPI{failingAPI{err: context.DeadlineExceeded}}, Node: "pve1"}
	_, err = svc.List(context.Background(), pvestorage.ListFilter{})
	if !errors.Is(toSDKError(err), context.DeadlineExceeded) {
		t.Fatalf("deadline lost: %v", err)
	}
}

// failingAPI is an sdk.API whose Call fails with err (the adapter uses
// Call only; the other methods are left nil and would panic).
type failingAPI struct {
	sdk.API
	err error
}

func (f failingAPI) Call(context.Context, string, string, url.Values) (*sdk.APIResponse, error) {
	return nil, f.err
}
