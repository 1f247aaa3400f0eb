package pvestorage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Code classifies an [*Error]; the main package maps it to the SDK's
// structured error codes.
type Code int

const (
	CodeInvalidParams Code = iota + 1
	CodeNotFound
	CodeConflict
	CodePermissionDenied
	CodeUnavailable
	CodeInternal
)

func (c Code) String() string {
	switch c {
	case CodeInvalidParams:
		return "invalid params"
	case CodeNotFound:
		return "not found"
	case CodeConflict:
		return "conflict"
	case CodePermissionDenied:
		return "permission denied"
	case CodeUnavailable:
		return "unavailable"
	case CodeInternal:
		return "internal"
	}
	return fmt.Sprintf("code(%d)", int(c))
}

// Error is a classified failure. Field names the parameter at fault
// ("id", "content", "options.server", ...) for CodeInvalidParams and for
// conflicts caused by one parameter (such as "digest").
type Error struct {
	Code    Code
	Field   string
	Message string
	Err     error // the cause, if any
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

func invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidParams, Field: field, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first [*Error] in err's chain, or
// CodeInternal when there is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// apiParamField maps a Proxmox /storage parameter name to the field name
// this package's callers use.
func apiParamField(param string) string {
	switch param {
	case "storage":
		return "id"
	case "type", "content", "nodes", "disable", "digest", "vmid":
		return param
	}
	return "options." + param
}

// classify turns an error from [API.Call] into an [*Error] with a code, so
// callers can tell "not there" from "not allowed" from "try later". doing
// says what was being done ("list storages"). Context errors pass through
// unchanged so cancellation stays recognisable.
func classify(err error, doing string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	var pe *Error
	if errors.As(err, &pe) { // already classified (by the API adapter)
		return &Error{Code: pe.Code, Field: pe.Field, Message: doing, Err: err}
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		return &Error{Code: CodeUnavailable, Message: doing, Err: err}
	}
	e := &Error{Code: CodeInternal, Message: doing, Err: err}
	text := strings.ToLower(ae.Message)
	switch {
	case ae.Status == 403:
		e.Code = CodePermissionDenied
	case ae.Status == 404, notFoundText(text), noSuchStorageParam(ae.Errors):
		e.Code = CodeNotFound
	case strings.Contains(text, "detected modified configuration"):
		e.Code, e.Field = CodeConflict, "digest"
	case strings.Contains(text, "already defined"), strings.Contains(text, "already exists"):
		e.Code, e.Field = CodeConflict, "id"
	case ae.Status == 400:
		e.Code = CodeInvalidParams
		if keys := sortedKeys(ae.Errors); len(keys) > 0 {
			e.Field = apiParamField(keys[0])
		}
	case ae.Status == 502, ae.Status == 503, ae.Status == 504, ae.Status >= 595 && ae.Status <= 599,
		strings.Contains(text, "got timeout"):
		e.Code = CodeUnavailable
	}
	return e
}

func notFoundText(lower string) bool {
	return strings.Contains(lower, "does not exist") || strings.Contains(lower, "no such storage")
}

// noSuchStorageParam reports whether a 400's per-parameter errors say the
// storage is unknown, as GET /nodes/{node}/storage/{storage}/status does
// ("storage: No such storage.").
func noSuchStorageParam(errs map[string]string) bool {
	msg, ok := errs["storage"]
	return ok && notFoundText(strings.ToLower(msg))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
