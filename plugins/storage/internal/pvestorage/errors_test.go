package pvestorage

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		code  Code
		field string
	}{
		{"permission", &APIError{Status: 403, Message: "Permission check failed (/storage, Datastore.Allocate)"}, CodePermissionDenied, ""},
		{"missing storage 500", &APIError{Status: 500, Message: "storage 'nas' does not exist\n"}, CodeNotFound, ""},
		{"missing storage 400", &APIError{Status: 400, Message: "Parameter verification failed.",
			Errors: map[string]string{"storage": "No such storage."}}, CodeNotFound, ""},
		{"exists", &APIError{Status: 500, Message: "create storage failed: storage ID 'nas' already defined\n"}, CodeConflict, "id"},
		{"digest", &APIError{Status: 500, Message: "detected modified configuration - file changed by other user? Try again.\n"}, CodeConflict, "digest"},
		{"param", &APIError{Status: 400, Message: "Parameter verification failed.",
			Errors: map[string]string{"server": "invalid format", "export": "x"}}, CodeInvalidParams, "options.export"},
		{"param own field", &APIError{Status: 400, Errors: map[string]string{"content": "invalid"}}, CodeInvalidParams, "content"},
		{"proxy", &APIError{Status: 596, Message: "Connection timed out"}, CodeUnavailable, ""},
		{"lock", &APIError{Status: 500, Message: "can't lock file '/etc/pve/priv/lock/storage.cfg' - got timeout"}, CodeUnavailable, ""},
		{"other 500", &APIError{Status: 500, Message: "mkdir /x: permission denied"}, CodeInternal, ""},
		{"transport", errors.New("connection refused"), CodeUnavailable, ""},
		{"wrapped api", fmt.Errorf("call: %w", &APIError{Status: 403}), CodePermissionDenied, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := classify(c.err, "do x")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("classify gave %T", err)
			}
			if e.Code != c.code || e.Field != c.field {
				t.Fatalf("got %v/%q, want %v/%q", e.Code, e.Field, c.code, c.field)
			}
			if !errors.Is(err, c.err) {
				t.Error("cause not wrapped")
			}
		})
	}
	if err := classify(context.Canceled, "list"); !errors.Is(err, context.Canceled) || CodeOf(err) != CodeInternal {
		t.Errorf("context error classified as %v (%v)", CodeOf(err), err)
	}
	if classify(nil, "x") != nil {
		t.Error("nil error classified as failure")
	}
}

func TestClassifyKeepsAdapterCode(t *testing.T) {
	inner := &Error{Code: CodePermissionDenied, Message: "not in scope"}
	err := classify(fmt.Errorf("proxy: %w", inner), "list storages")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodePermissionDenied || e.Message != "list storages" {
		t.Fatalf("got %#v", err)
	}
}
