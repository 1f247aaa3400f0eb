// Package selftest holds the whole-agent selftests: read-only checks of the
// agent's view of its Proxmox host (--selftest=read) and a reversible task
// round trip on a scratch guest (--selftest=task). Each check reports one
// result with its duration; a run fails when any check fails.
package selftest

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Status is a check's outcome.
type Status string

const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
	// NotApplicable: the host lacks what the check is for; not a failure.
	NotApplicable Status = "N/A"
)

// Result is one check's outcome.
type Result struct {
	Name     string
	Status   Status
	Detail   string
	Duration time.Duration
}

// Check is one named step. Run returns a short detail for the output line;
// an error fails the check. Later checks still run unless Stop is set.
type Check struct {
	Name string
	Run  func(ctx context.Context) (detail string, err error)
	// StopOnFail ends the run when this check fails: later steps depend
	// on it (no point snapshotting a guest the API cannot see).
	StopOnFail bool
}

// SkipError makes a check report SKIP (or N/A) with its message.
type SkipError struct {
	Msg           string
	NotApplicable bool
}

func (e *SkipError) Error() string { return e.Msg }

// Run runs checks in order, printing one line per check to w as each ends,
// and returns all results and whether every check passed.
func Run(ctx context.Context, w io.Writer, checks []Check) ([]Result, bool) {
	ok := true
	var results []Result
	for i, c := range checks {
		start := time.Now()
		detail, err := c.Run(ctx)
		r := Result{Name: c.Name, Status: Pass, Detail: detail, Duration: time.Since(start)}
		if err != nil {
			if se, isSkip := err.(*SkipError); isSkip {
				r.Status, r.Detail = Skip, se.Msg
				if se.NotApplicable {
					r.Status = NotApplicable
				}
			} else {
				r.Status, r.Detail = Fail, err.Error()
				ok = false
			}
		}
		results = append(results, r)
		PrintResult(w, r)
		if r.Status == Fail && c.StopOnFail {
			for _, rest := range checks[i+1:] {
				s := Result{Name: rest.Name, Status: Skip, Detail: "skipped: " + c.Name + " failed"}
				results = append(results, s)
				PrintResult(w, s)
			}
			break
		}
		if ctx.Err() != nil {
			ok = false
			break
		}
	}
	return results, ok
}

// PrintResult writes one result line: status, duration, name, detail.
func PrintResult(w io.Writer, r Result) {
	fmt.Fprintf(w, "%-4s %7s  %-36s %s\n", r.Status, formatDuration(r.Duration), r.Name, r.Detail)
}

func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}
