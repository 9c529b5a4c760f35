package rebalance

import (
	"fmt"
	"sort"
	"time"
)

// Backoff is one task/target pair the policy avoids until Until after
// Failures failed moves.
type Backoff struct {
	Task     string    `json:"task"`
	Target   string    `json:"target"`
	Failures int       `json:"failures"`
	Until    time.Time `json:"until"`
}

// Backoffs returns the policy's record of failed moves, sorted by task and
// target.
func (p *Policy) Backoffs() []Backoff {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Backoff, 0, len(p.failures))
	for k, f := range p.failures {
		out = append(out, Backoff{Task: k.task, Target: k.target, Failures: f.count, Until: f.until})
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Task != out[b].Task {
			return out[a].Task < out[b].Task
		}
		return out[a].Target < out[b].Target
	})
	return out
}

// SetBackoffs replaces the policy's record of failed moves, as Backoffs
// returned it (from this or another policy).
func (p *Policy) SetBackoffs(bs []Backoff) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures = make(map[pair]*failure, len(bs))
	for _, b := range bs {
		p.failures[pair{b.Task, b.Target}] = &failure{count: b.Failures, until: b.Until}
	}
}

// Snapshot is everything a node's policy decides on at one instant: what
// the agent hands out for `migrated rebalance --dry-run` (as JSON), and
// what a test or an operator can replay.
type Snapshot struct {
	// Self is the node that took the snapshot; its row of the plan is the
	// move it would start.
	Self     string    `json:"self"`
	Config   Config    `json:"config"`
	View     View      `json:"view"`
	Backoffs []Backoff `json:"backoffs,omitempty"`
}

// Plan runs a fresh policy with the snapshot's config and failure record
// over its view. Config.Compatible is not part of a snapshot: compat.Decide
// decides.
func (s *Snapshot) Plan() (*Plan, error) {
	p, err := New(s.Config)
	if err != nil {
		return nil, fmt.Errorf("snapshot of %s: %w", s.Self, err)
	}
	p.SetBackoffs(s.Backoffs)
	return p.Plan(&s.View), nil
}
