package move

import (
	"errors"
	"fmt"
	"strings"

	"github.com/migrated/migrated/image"
)

// Report is what a finished move tells its caller (and `migrated move --json`).
type Report struct {
	MoveID      string  `json:"move_id"`
	PID         int     `json:"pid"`
	NewPID      int     `json:"new_pid"`
	Host        string  `json:"host"`
	DowntimeMs  float64 `json:"downtime_ms"`
	TotalMs     float64 `json:"total_ms"`
	Rounds      int     `json:"rounds"`
	MemoryBytes uint64  `json:"memory_bytes"`
	WireBytes   uint64  `json:"wire_bytes"`
	Tracker     string  `json:"tracker"`
	Verdict     string  `json:"verdict"`
	// FreezeMs is the time the task was frozen on the source, until the
	// destination said Running. Its parts: the final pre-copy round
	// (FinalRoundMs), reading the task's state (CaptureMs), and building
	// it on the destination until Prepared (PrepareMs).
	FreezeMs     float64 `json:"freeze_ms"`
	FinalRoundMs float64 `json:"final_round_ms"`
	CaptureMs    float64 `json:"capture_ms"`
	PrepareMs    float64 `json:"prepare_ms"`
	// Signals queued for the original while it was frozen, after its
	// state was read: sent on to the task on the destination, or lost
	// (a move in doubt, or the message did not go out). Warning says
	// what could not be done after the cutover, if anything.
	SignalsForwarded int    `json:"signals_forwarded,omitempty"`
	SignalsLost      int    `json:"signals_lost,omitempty"`
	Warning          string `json:"warning,omitempty"`
}

// RejectedError: the destination refused the task before anything was
// moved. The original runs on, untouched.
type RejectedError struct {
	Host    string
	Reasons []*image.Reason
}

// ErrRejected matches every *RejectedError.
var ErrRejected = errors.New("destination refused the task")

func (e *RejectedError) Is(t error) bool { return t == ErrRejected }

func (e *RejectedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s refused the task:", e.Host)
	for _, r := range e.Reasons {
		fmt.Fprintf(&b, "\n  %s: %s", r.Code, r.Message)
	}
	return b.String()
}

// FailedError: the destination failed while building the process, before
// Prepared. The original was thawed and runs on.
type FailedError struct {
	Reasons []*image.Reason
}

// ErrFailed matches every *FailedError.
var ErrFailed = errors.New("destination failed before the cutover")

func (e *FailedError) Is(t error) bool { return t == ErrFailed }

func (e *FailedError) Error() string {
	var parts []string
	for _, r := range e.Reasons {
		parts = append(parts, r.Code+": "+r.Message)
	}
	return "destination failed before the cutover (the original runs on): " + strings.Join(parts, "; ")
}

// ErrInDoubt: COMMIT was sent and no answer came. The original is kept
// frozen until the outcome is known (see Resolve).
var ErrInDoubt = errors.New("move in doubt: commit sent, outcome unknown")
