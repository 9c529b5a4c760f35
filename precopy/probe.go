package precopy

import (
	"errors"
	"fmt"
)

// NewTracker sets up dirty tracking of kind k for task pid. It changes
// nothing in the task until the first Sync, except for KindUFFD, which
// freezes the task for a few injected calls to create its userfaultfd
// (and leaves no fd behind in it).
func NewTracker(pid int, k Kind, pageSize uint64) (Tracker, error) {
	switch k {
	case KindUFFD:
		return newUFFDTracker(pid)
	case KindSoftDirty:
		return newSoftDirtyTracker(pid, pageSize)
	case KindHash:
		return newHashTracker(pid, pageSize)
	}
	return nil, fmt.Errorf("dirty tracker %q: %w", k, ErrUnavailable)
}

// ProbeOrder is the order Probe tries trackers in: cheapest first.
var ProbeOrder = []Kind{KindUFFD, KindSoftDirty, KindHash}

// Probe returns the first tracker of ProbeOrder that works for pid, and
// why each one before it did not.
func Probe(pid int, pageSize uint64) (Tracker, []error, error) {
	var why []error
	for _, k := range ProbeOrder {
		t, err := NewTracker(pid, k, pageSize)
		if err == nil {
			return t, why, nil
		}
		why = append(why, fmt.Errorf("%s: %w", k, err))
	}
	return nil, why, fmt.Errorf("no dirty tracker works for %d: %w", pid, errors.Join(why...))
}
