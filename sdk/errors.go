package sdk

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gitea.dooplex.hu/admin/felhom-agent/sdk/proto/pluginv1"
)

// ErrorCode classifies a capability failure.
type ErrorCode int32

const (
	CodeInvalidParams     ErrorCode = ErrorCode(pluginv1.ErrorCode_ERROR_CODE_INVALID_PARAMS)
	CodeNotFound          ErrorCode = ErrorCode(pluginv1.ErrorCode_ERROR_CODE_NOT_FOUND)
	CodeNotApplicable     ErrorCode = ErrorCode(pluginv1.ErrorCode_ERROR_CODE_NOT_APPLICABLE)
	CodePermissionDenied  ErrorCode = ErrorCode(pluginv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED)
	CodeConflict          ErrorCode = ErrorCode(pluginv1.ErrorCode_ERROR_CODE_CONFLICT)
	CodeUnavailable       ErrorCode = ErrorCode(pluginv1.ErrorCode_ERROR_CODE_UNAVAILABLE)
	CodeTaskFailed        ErrorCode = ErrorCode(pluginv1.ErrorCode_ERROR_CODE_TASK_FAILED)
	CodeInternal          ErrorCode = ErrorCode(pluginv1.ErrorCode_ERROR_CODE_INTERNAL)
	CodeUnknownCapability ErrorCode = ErrorCode(pluginv1.ErrorCode_ERROR_CODE_UNKNOWN_CAPABILITY)
)

func (c ErrorCode) String() string {
	s := pluginv1.ErrorCode(c).String()
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s, "ERROR_CODE_"), "_", " "))
}

// PluginError is a structured capability failure. Plugins create it with
// [Errorf]; hosts receive it from [PluginClient.Invoke] (errors.As).
type PluginError struct {
	Code    ErrorCode
	Message string
	// Field names the parameter or config key at fault, if any.
	Field   string
	Details map[string]string
}

func (e *PluginError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns a *PluginError with the given code and the parameter (or
// config key) at fault; field may be empty.
func Errorf(code ErrorCode, field, format string, args ...any) error {
	return &PluginError{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

func (e *PluginError) proto() *pluginv1.PluginError {
	return &pluginv1.PluginError{Code: pluginv1.ErrorCode(e.Code), Message: e.Message, Field: e.Field, Details: e.Details}
}

// PluginErrorFromProto converts the wire form; nil stays nil.
func PluginErrorFromProto(p *pluginv1.PluginError) *PluginError {
	if p == nil {
		return nil
	}
	return &PluginError{Code: ErrorCode(p.GetCode()), Message: p.GetMessage(), Field: p.GetField(), Details: p.GetDetails()}
}

// APIError is a Proxmox API error answered through the core's proxy.
type APIError struct {
	Method  string
	Path    string
	Status  int
	Reason  string
	Message string
	// Errors holds Proxmox's per-parameter errors.
	Errors map[string]string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "proxmox %s %s: %d", e.Method, e.Path, e.Status)
	if e.Reason != "" {
		b.WriteString(" " + e.Reason)
	}
	if e.Message != "" && e.Message != e.Reason {
		b.WriteString(": " + strings.TrimSpace(e.Message))
	}
	if len(e.Errors) > 0 {
		keys := make([]string, 0, len(e.Errors))
		for k := range e.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "; %s: %s", k, strings.TrimSpace(e.Errors[k]))
		}
	}
	return b.String()
}

// TaskError is a Proxmox task that ended without "OK" (or "WARNINGS: n").
type TaskError struct {
	UPID       string
	ExitStatus string
	LogTail    []string
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("task %s failed: %s", e.UPID, e.ExitStatus)
}

var (
	// ErrPluginCrashed: the plugin process died (or its connection broke)
	// while or before a call ran. Returned wrapped by every PluginClient
	// method; test with errors.Is.
	ErrPluginCrashed = errors.New("plugin crashed")
	// ErrNotInScope: the core's API proxy refused a call outside the
	// plugin's declared API scopes.
	ErrNotInScope = errors.New("api call not in the plugin's declared scopes")
	// ErrNoHostServices: the core offered no host services (Configure got
	// broker ID 0), so the plugin cannot reach Proxmox.
	ErrNoHostServices = errors.New("the core offered no host services")
)

// toProtoError classifies any handler error for the wire.
func toProtoError(err error) *pluginv1.PluginError {
	var pe *PluginError
	if errors.As(err, &pe) {
		return pe.proto()
	}
	out := &pluginv1.PluginError{Code: pluginv1.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()}
	var ae *APIError
	var te *TaskError
	switch {
	case errors.As(err, &ae):
		out.Details = map[string]string{"status": fmt.Sprint(ae.Status), "path": ae.Path, "method": ae.Method}
		switch {
		case ae.Status == 401 || ae.Status == 403:
			out.Code = pluginv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED
		case ae.Status == 404:
			out.Code = pluginv1.ErrorCode_ERROR_CODE_NOT_FOUND
		case ae.Status == 502 || ae.Status == 503 || ae.Status == 504 || ae.Status == 595 || ae.Status == 596:
			out.Code = pluginv1.ErrorCode_ERROR_CODE_UNAVAILABLE
		}
	case errors.As(err, &te):
		out.Code = pluginv1.ErrorCode_ERROR_CODE_TASK_FAILED
		out.Details = map[string]string{"upid": te.UPID, "exit_status": te.ExitStatus}
	case errors.Is(err, ErrNotInScope):
		out.Code = pluginv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, ErrNoHostServices):
		out.Code = pluginv1.ErrorCode_ERROR_CODE_UNAVAILABLE
	}
	return out
}

// toStatus turns an error from plugin code into a gRPC status carrying the
// PluginError as a detail.
func toStatus(err error) error {
	pe := toProtoError(err)
	code := codes.Internal
	switch pe.Code {
	case pluginv1.ErrorCode_ERROR_CODE_INVALID_PARAMS:
		code = codes.InvalidArgument
	case pluginv1.ErrorCode_ERROR_CODE_NOT_FOUND:
		code = codes.NotFound
	case pluginv1.ErrorCode_ERROR_CODE_NOT_APPLICABLE:
		code = codes.FailedPrecondition
	case pluginv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED:
		code = codes.PermissionDenied
	case pluginv1.ErrorCode_ERROR_CODE_CONFLICT:
		code = codes.Aborted
	case pluginv1.ErrorCode_ERROR_CODE_UNAVAILABLE:
		// Not codes.Unavailable: the host reads that as a dead plugin.
		code = codes.ResourceExhausted
	case pluginv1.ErrorCode_ERROR_CODE_UNKNOWN_CAPABILITY:
		code = codes.Unimplemented
	}
	st := status.New(code, pe.Message)
	if d, derr := st.WithDetails(pe); derr == nil {
		st = d
	}
	return st.Err()
}

// hostError maps an error of a call to the plugin into what host code
// should see: *PluginError for structured failures, ErrPluginCrashed for a
// dead plugin, the caller's context error when that ended the call.
func hostError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	for _, d := range st.Details() {
		if pe, ok := d.(*pluginv1.PluginError); ok {
			return fmt.Errorf("%s: %w", op, PluginErrorFromProto(pe))
		}
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("%s: %w: %s", op, ErrPluginCrashed, st.Message())
	case codes.Canceled, codes.DeadlineExceeded:
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		return fmt.Errorf("%s: %w: %s", op, ErrPluginCrashed, st.Message())
	}
	return fmt.Errorf("%s: %s: %s", op, st.Code(), st.Message())
}
