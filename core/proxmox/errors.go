package proxmox

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// Error classes. An error returned by a [Client] call matches at most one
// of these with errors.Is; the detailed types ([*APIError],
// [*PermissionError], [*ParamError], [*LockTimeoutError]) are reachable
// with errors.As.
var (
	// ErrAuth: the token was refused (401 "Authentication failed!" or "No ticket").
	ErrAuth = errors.New("proxmox: authentication failed")
	// ErrPermission: 403 "Permission check failed (...)". See [PermissionError].
	ErrPermission = errors.New("proxmox: permission denied")
	// ErrInvalidParams: 400 "Parameter verification failed.". See [ParamError].
	ErrInvalidParams = errors.New("proxmox: invalid parameters")
	// ErrNotFound: 404, or a 500 whose text says "does not exist" or "no such".
	ErrNotFound = errors.New("proxmox: not found")
	// ErrAlreadyExists: a 500 or task error whose text says "already exists".
	ErrAlreadyExists = errors.New("proxmox: already exists")
	// ErrNotImplemented: 501, an unknown path or method (e.g. POST on LXC config).
	ErrNotImplemented = errors.New("proxmox: not implemented")
	// ErrLockTimeout: "can't lock file '...' - got timeout". See [LockTimeoutError].
	ErrLockTimeout = errors.New("proxmox: config lock timeout")
	// ErrConfigChanged: the digest passed on a write no longer matches
	// ("detected modified configuration - file changed by other user?").
	ErrConfigChanged = errors.New("proxmox: configuration changed since it was read")
	// ErrUnreachable: pveproxy could not reach the node or pvedaemon
	// (pseudo-statuses 595, 596, 597, 599 from AnyEvent::HTTP).
	ErrUnreachable = errors.New("proxmox: node or daemon unreachable")
	// ErrServer: any other server-side failure (5xx).
	ErrServer = errors.New("proxmox: server error")
)

// APIError is an HTTP-level error answered by the Proxmox API. It unwraps to
// one of the Err* classes and, where one applies, to a detail error.
type APIError struct {
	Method string
	Path   string // API path, without the /api2/json prefix or query
	Status int
	// Reason is the HTTP reason phrase, which pveproxy sets to the first line
	// of the error text.
	Reason string
	// Message is the body's "message" (libpve-http-server-perl >= 5.2.0),
	// trimmed; often the same text as Reason.
	Message string
	// Errors holds per-parameter messages (400 "Parameter verification failed.").
	Errors map[string]string

	class  error
	detail error
}

// Text returns the server's error text: the reason phrase, or the body
// message when the reason is empty or only its first line.
func (e *APIError) Text() string {
	if e.Reason == "" || (len(e.Message) > len(e.Reason) && strings.HasPrefix(e.Message, e.Reason)) {
		return e.Message
	}
	return e.Reason
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d", e.Method, e.Path, e.Status)
	// The reason phrase is only the first line; the message has it all.
	if text := e.Text(); text != "" {
		b.WriteString(" ")
		b.WriteString(oneLine(text))
	}
	if len(e.Errors) > 0 {
		b.WriteString(" (")
		b.WriteString(formatParamErrors(e.Errors))
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap exposes the error class (an Err* sentinel) and the detail error.
func (e *APIError) Unwrap() []error {
	var errs []error
	if e.class != nil {
		errs = append(errs, e.class)
	}
	if e.detail != nil {
		errs = append(errs, e.detail)
	}
	return errs
}

// Class returns the Err* sentinel this error belongs to, or nil when none applies.
func (e *APIError) Class() error { return e.class }

// PermissionError is a parsed 403 "Permission check failed (PATH, PRIVS)".
type PermissionError struct {
	// Path is the ACL path checked, e.g. "/vms/100"; empty for the bare form.
	Path string
	// Privileges lists the privileges the check asked for.
	Privileges []string
	// AnyOf reports that any one of Privileges would have been enough
	// (PVE joins them with "|" in that case).
	AnyOf bool
	// Detail holds parenthesised text that is not a path and privileges,
	// e.g. "changing feature flags for privileged container is only allowed for root@pam".
	Detail string
}

func (e *PermissionError) Error() string {
	switch {
	case e.Path != "":
		sep := ", "
		if e.AnyOf {
			sep = " or "
		}
		return fmt.Sprintf("permission check failed: need %s on %s", strings.Join(e.Privileges, sep), e.Path)
	case e.Detail != "":
		return "permission check failed: " + e.Detail
	default:
		return "permission check failed"
	}
}

// Is makes errors.Is(err, ErrPermission) true for a bare *PermissionError too.
func (e *PermissionError) Is(target error) bool { return target == ErrPermission }

var permRe = regexp.MustCompile(`^Permission check failed(?: \((.*)\))?\.?$`)
var permPathPrivRe = regexp.MustCompile(`^(/[^,]*), ([A-Za-z][A-Za-z0-9.]*(?:\|[A-Za-z][A-Za-z0-9.]*)*)$`)

// parsePermission parses PVE's permission exception text. It reports false
// when text is not one.
func parsePermission(text string) (*PermissionError, bool) {
	m := permRe.FindStringSubmatch(strings.TrimSpace(firstLine(text)))
	if m == nil {
		return nil, false
	}
	pe := &PermissionError{}
	inner := m[1]
	if pm := permPathPrivRe.FindStringSubmatch(inner); pm != nil {
		pe.Path = pm[1]
		pe.Privileges = strings.Split(pm[2], "|")
		pe.AnyOf = len(pe.Privileges) > 1
	} else {
		pe.Detail = inner
	}
	return pe, true
}

// ParamError is a 400 "Parameter verification failed." with its
// per-parameter messages.
type ParamError struct {
	Errors map[string]string
}

func (e *ParamError) Error() string {
	return "parameter verification failed: " + formatParamErrors(e.Errors)
}

// Is makes errors.Is(err, ErrInvalidParams) true for a bare *ParamError too.
func (e *ParamError) Is(target error) bool { return target == ErrInvalidParams }

// LockTimeoutError is "can't lock file 'FILE' - got timeout": another
// operation held the guest's (or storage's) config lock for too long.
type LockTimeoutError struct {
	File string
}

func (e *LockTimeoutError) Error() string {
	return fmt.Sprintf("timed out waiting for lock file %s", e.File)
}

// Is makes errors.Is(err, ErrLockTimeout) true for a bare *LockTimeoutError too.
func (e *LockTimeoutError) Is(target error) bool { return target == ErrLockTimeout }

var lockTimeoutRe = regexp.MustCompile(`can't lock file '([^']*)' - got timeout`)

// classifyText maps PVE's error texts that carry meaning independent of the
// status code (they also appear as task exit statuses) to a class and detail.
func classifyText(text string) (class, detail error) {
	if m := lockTimeoutRe.FindStringSubmatch(text); m != nil {
		return ErrLockTimeout, &LockTimeoutError{File: m[1]}
	}
	lower := strings.ToLower(text)
	switch {
	case strings.Contains(lower, "detected modified configuration"):
		return ErrConfigChanged, nil
	case strings.Contains(lower, "does not exist"), strings.Contains(lower, "no such"):
		return ErrNotFound, nil
	case strings.Contains(lower, "already exists"):
		return ErrAlreadyExists, nil
	}
	return nil, nil
}

// newAPIError builds and classifies an error response.
func newAPIError(method, path string, status int, reason, message string, paramErrs map[string]string) *APIError {
	e := &APIError{
		Method:  method,
		Path:    path,
		Status:  status,
		Reason:  reason,
		Message: strings.TrimSpace(message),
		Errors:  paramErrs,
	}
	text := e.Reason
	if text == "" {
		text = e.Message
	}
	full := e.Reason + "\n" + e.Message
	switch {
	case status == http.StatusUnauthorized:
		e.class = ErrAuth
	case status == http.StatusForbidden:
		e.class = ErrPermission
		if pe, ok := parsePermission(text); ok {
			e.detail = pe
		} else if pe, ok := parsePermission(e.Message); ok {
			e.detail = pe
		}
	case status == http.StatusBadRequest && (len(paramErrs) > 0 || strings.HasPrefix(text, "Parameter verification failed")):
		e.class = ErrInvalidParams
		e.detail = &ParamError{Errors: paramErrs}
	case status == http.StatusNotFound:
		e.class = ErrNotFound
	case status == http.StatusNotImplemented:
		e.class = ErrNotImplemented
	case isUnreachableStatus(status):
		e.class = ErrUnreachable
	case status >= 500:
		e.class, e.detail = classifyText(full)
		if e.class == nil {
			e.class = ErrServer
		}
	}
	return e
}

// isUnreachableStatus reports whether status is one of AnyEvent::HTTP's
// pseudo-statuses that pveproxy passes on when a proxied call fails.
func isUnreachableStatus(status int) bool {
	switch status {
	case 595, 596, 597, 599:
		return true
	}
	return false
}

func formatParamErrors(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+oneLine(m[k]))
	}
	return strings.Join(parts, "; ")
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// oneLine flattens text to one line, as PVE does for task exit statuses.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(s), " ")
}
