package proxmox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// MutateResult is the outcome of [Client.Mutate].
type MutateResult struct {
	// Data is the response data of a call that did not start a task
	// (null for most synchronous writes).
	Data json.RawMessage
	// Task is set when the call started a task, with the task's outcome.
	// It is set even when waiting failed, so the caller knows the UPID.
	Task *TaskResult
}

// UPID returns the started task's ID, or "" for a synchronous call.
func (r MutateResult) UPID() string {
	if r.Task == nil {
		return ""
	}
	return r.Task.UPID.String()
}

// Mutate performs a POST, PUT or DELETE and reports success only once the
// work is done: a synchronous call (data null or not a task ID) succeeds
// on 2xx; a call that answers with a UPID is waited on with the client's
// [Waiter], and its task's exit status decides. Mutations are never retried.
func (c *Client) Mutate(ctx context.Context, method, path string, params any) (MutateResult, error) {
	if method != http.MethodPost && method != http.MethodPut && method != http.MethodDelete {
		return MutateResult{}, fmt.Errorf("%s %s: Mutate takes POST, PUT or DELETE", method, path)
	}
	vals, err := toValues(params)
	if err != nil {
		return MutateResult{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	data, _, err := c.Raw(ctx, method, path, vals)
	if err != nil {
		return MutateResult{}, err
	}
	upid, isTask, err := taskID(data)
	if err != nil {
		return MutateResult{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if !isTask {
		return MutateResult{Data: data}, nil
	}
	res, err := c.Waiter().WaitUPID(ctx, upid)
	if err != nil {
		return MutateResult{Task: &res}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return MutateResult{Task: &res}, nil
}

// taskID reports whether data is a task ID string, and parses it.
func taskID(data json.RawMessage) (UPID, bool, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '"' {
		return UPID{}, false, nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return UPID{}, false, fmt.Errorf("decode data: %w", err)
	}
	if !strings.HasPrefix(s, "UPID:") {
		return UPID{}, false, nil
	}
	u, err := ParseUPID(s)
	if err != nil {
		return UPID{}, false, fmt.Errorf("task ID in response: %w", err)
	}
	return u, true, nil
}
