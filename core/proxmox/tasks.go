package proxmox

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// TaskStatus is GET /nodes/{node}/tasks/{upid}/status.
type TaskStatus struct {
	UPID string
	Node string
	// Status is "running" or "stopped".
	Status string
	// ExitStatus is set once stopped: "OK", "WARNINGS: n", or the error text.
	ExitStatus string
	Type       string
	ID         string
	User       string // "user@realm" (the server splits token tasks)
	TokenID    string // token name for token-started tasks
	PID        int64
	StartTime  int64
}

type taskStatusWire struct {
	UPID       string  `json:"upid"`
	Node       string  `json:"node"`
	Status     string  `json:"status"`
	ExitStatus string  `json:"exitstatus"`
	Type       string  `json:"type"`
	ID         string  `json:"id"`
	User       string  `json:"user"`
	TokenID    string  `json:"tokenid"`
	PID        flexInt `json:"pid"`
	StartTime  flexInt `json:"starttime"`
}

// TaskStatus reads one task's status on the node that runs it.
func (c *Client) TaskStatus(ctx context.Context, upid UPID) (TaskStatus, error) {
	var w taskStatusWire
	if err := c.Do(ctx, "GET", nodePath(upid.Node, "tasks", upid.String(), "status"), nil, &w); err != nil {
		return TaskStatus{}, err
	}
	return TaskStatus{
		UPID: w.UPID, Node: w.Node, Status: w.Status, ExitStatus: w.ExitStatus,
		Type: w.Type, ID: w.ID, User: w.User, TokenID: w.TokenID,
		PID: int64(w.PID), StartTime: int64(w.StartTime),
	}, nil
}

// TaskLogLine is one line of a task log; N counts from 1.
type TaskLogLine struct {
	N int
	T string
}

// TaskLog reads limit lines of a task log from line offset start (0-based).
// limit 0 lets the server pick its default (50). total is the log's line count.
func (c *Client) TaskLog(ctx context.Context, upid UPID, start, limit int) (lines []TaskLogLine, total int, err error) {
	q := url.Values{}
	q.Set("start", strconv.Itoa(start))
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := nodePath(upid.Node, "tasks", upid.String(), "log")
	data, tot, err := c.Raw(ctx, "GET", path, q)
	if err != nil {
		return nil, 0, err
	}
	var wire []struct {
		N flexInt `json:"n"`
		T string  `json:"t"`
	}
	if err := decodeData("GET", path, data, &wire); err != nil {
		return nil, 0, err
	}
	lines = make([]TaskLogLine, len(wire))
	for i, l := range wire {
		lines[i] = TaskLogLine{N: int(l.N), T: l.T}
	}
	if tot != nil {
		total = *tot
	} else {
		total = start + len(lines)
	}
	return lines, total, nil
}

// TaskEntry is one entry of GET /nodes/{node}/tasks.
type TaskEntry struct {
	UPID      string
	Node      string
	Type      string
	ID        string
	User      string
	TokenID   string
	StartTime int64
	EndTime   int64 // 0 while running
	// Status is "RUNNING" for active tasks, else the exit status text.
	Status string
}

// Running reports whether the entry describes a task still running.
func (e TaskEntry) Running() bool {
	return strings.EqualFold(e.Status, "running") || (e.Status == "" && e.EndTime == 0)
}

// TaskListOptions filters GET /nodes/{node}/tasks. Zero values are omitted.
type TaskListOptions struct {
	// Source is "archive" (the server's default), "active" or "all".
	Source     string
	Since      int64 // only tasks started at or after this epoch
	Until      int64
	Start      int
	Limit      int // the server's default is 50; 0 there would mean none
	TypeFilter string
	UserFilter string
	VMID       int
	Errors     bool
}

type taskEntryWire struct {
	UPID      string  `json:"upid"`
	Node      string  `json:"node"`
	Type      string  `json:"type"`
	ID        string  `json:"id"`
	User      string  `json:"user"`
	TokenID   string  `json:"tokenid"`
	StartTime flexInt `json:"starttime"`
	EndTime   flexInt `json:"endtime"`
	Status    string  `json:"status"`
}

// Tasks lists tasks on node; total counts all matches, beyond Limit too.
func (c *Client) Tasks(ctx context.Context, node string, opts TaskListOptions) (entries []TaskEntry, total int, err error) {
	if node == "" {
		node = c.node
	}
	q := url.Values{}
	set := func(k string, v int64) {
		if v != 0 {
			q.Set(k, strconv.FormatInt(v, 10))
		}
	}
	if opts.Source != "" {
		q.Set("source", opts.Source)
	}
	set("since", opts.Since)
	set("until", opts.Until)
	set("start", int64(opts.Start))
	set("limit", int64(opts.Limit))
	set("vmid", int64(opts.VMID))
	if opts.TypeFilter != "" {
		q.Set("typefilter", opts.TypeFilter)
	}
	if opts.UserFilter != "" {
		q.Set("userfilter", opts.UserFilter)
	}
	if opts.Errors {
		q.Set("errors", "1")
	}
	path := nodePath(node, "tasks")
	data, tot, err := c.Raw(ctx, "GET", path, q)
	if err != nil {
		return nil, 0, err
	}
	var wire []taskEntryWire
	if err := decodeData("GET", path, data, &wire); err != nil {
		return nil, 0, err
	}
	entries = make([]TaskEntry, len(wire))
	for i, w := range wire {
		entries[i] = TaskEntry{
			UPID: w.UPID, Node: w.Node, Type: w.Type, ID: w.ID, User: w.User, TokenID: w.TokenID,
			StartTime: int64(w.StartTime), EndTime: int64(w.EndTime), Status: w.Status,
		}
	}
	total = opts.Start + len(entries)
	if tot != nil {
		total = *tot
	}
	return entries, total, nil
}

// isNoSuchTask reports whether err is the 400 "no such task" PVE answers
// for a task whose log file does not exist (yet), e.g. right after dispatch.
func isNoSuchTask(err error) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	for _, v := range apiErr.Errors {
		if strings.Contains(v, "no such task") {
			return true
		}
	}
	return strings.Contains(apiErr.Text(), "no such task")
}
