package precopy

import (
	"errors"

	"github.com/migrated/migrated/image"
)

// Kind names a dirty-tracking method.
type Kind string

const (
	// KindUFFD is userfaultfd asynchronous write-protect, read back and
	// re-armed with PAGEMAP_SCAN (Linux >= 6.7, not on POWER).
	KindUFFD Kind = "uffd-wp"
	// KindSoftDirty is the soft-dirty bit of /proc/PID/pagemap, cleared
	// with clear_refs (CONFIG_MEM_SOFT_DIRTY, e.g. POWER Book3S-64).
	KindSoftDirty Kind = "soft-dirty"
	// KindHash compares a 64-bit hash of every page with the hash of what
	// was sent: always works, reads all memory each round.
	KindHash Kind = "hash"
)

// ErrUnavailable: the tracking method does not work on this kernel or for
// this task.
var ErrUnavailable = errors.New("dirty tracking method unavailable")

// Delta is what one Tracker.Sync found.
type Delta struct {
	// Dirty are pages that may have been written since the previous Sync,
	// inside ranges that were tracked then and still are.
	Dirty Ranges
	// Fresh are ranges tracked from now on that were not tracked before (a
	// new mapping, a mapping the task replaced, a part that could not be
	// tracked): every present page in them must be sent, and whatever the
	// destination held there is void.
	Fresh Ranges
}

// Tracker finds the pages a running task writes.
//
// The first Sync arms tracking and returns every trackable range as Fresh.
// Each later Sync returns what was written since the previous one and
// re-arms in the same step, so a write is never lost between two Syncs: a
// page written while it is being read is reported again next time.
type Tracker interface {
	Kind() Kind
	// Sync brings tracking in line with vmas (the task's VMA list, read
	// just before) and returns what must be sent. frozen tells that the
	// caller holds every thread of the task stopped.
	Sync(vmas []*image.VMA, frozen bool) (*Delta, error)
	// Sent tells the tracker the exact contents now at the destination for
	// the pages indices of v: data holds len(indices) pages, or is nil when
	// the pages are absent (the destination holds zeros, or the file's
	// contents for a private file mapping).
	Sent(v *image.VMA, indices []uint32, data []byte)
	// Close stops tracking and undoes everything Sync did to the task.
	Close() error
}

// trackable tells whether a VMA's pages are tracked: those whose contents
// travel.
func trackable(v *image.VMA) bool { return v.PagesTravel() }

// trackableRanges lists the address ranges of the VMAs whose pages travel.
func trackableRanges(vmas []*image.VMA) Ranges {
	rs := make([]Range, 0, len(vmas))
	for _, v := range vmas {
		if trackable(v) {
			rs = append(rs, Range{v.Start, v.End})
		}
	}
	return normalize(rs)
}
