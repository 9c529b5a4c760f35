package precopy

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/image"
	"golang.org/x/sys/unix"
)

// softDirtyTracker reads the soft-dirty bit of each page from
// /proc/PID/pagemap and clears the bits with "4" into /proc/PID/clear_refs
// (Documentation/admin-guide/mm/soft-dirty.rst).
//
// Reading the bits and clearing them are two steps, and a write that falls
// between them would be lost; so each Sync holds the task frozen for the
// read and the clear (as CRIU's pre-dump does). The bit also misses pages
// the task dropped (MADV_DONTNEED): the tracker remembers which pages the
// destination holds data for and reports those that no longer hold any.
type softDirtyTracker struct {
	pid      int
	pm       *pagemapReader
	known    Ranges
	sent     pageTable[bool] // the destination holds data of its own for the page
	Freezes  int
	pageSize uint64
}

func newSoftDirtyTracker(pid int, pageSize uint64) (*softDirtyTracker, error) {
	if err := softDirtyProbe(); err != nil {
		return nil, err
	}
	pm, err := openPagemap(pid, pageSize)
	if err != nil {
		return nil, err
	}
	return &softDirtyTracker{pid: pid, pm: pm, pageSize: pageSize, sent: pageTable[bool]{pageSize: pageSize}}, nil
}

// softDirtyProbe tells whether the kernel keeps soft-dirty bits: without
// CONFIG_MEM_SOFT_DIRTY, clear_refs accepts "4" but bit 55 is never set,
// not even for a page just written in a new mapping (which is soft-dirty by
// definition). It looks at a page of our own and clears nothing.
func softDirtyProbe() error {
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("soft-dirty probe: %w", err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1
	pm, err := openPagemap(os.Getpid(), uint64(ps))
	if err != nil {
		return fmt.Errorf("soft-dirty probe: %w: %w", err, ErrUnavailable)
	}
	defer pm.Close()
	addr := uint64(uintptr(unsafe.Pointer(&mem[0])))
	ents, err := pm.read(Range{addr, addr + uint64(ps)})
	if err != nil {
		return fmt.Errorf("soft-dirty probe: %w: %w", err, ErrUnavailable)
	}
	if !ents[0].softDirty() {
		return fmt.Errorf("soft-dirty: a freshly written page has no soft-dirty bit (CONFIG_MEM_SOFT_DIRTY unset): %w", ErrUnavailable)
	}
	return nil
}

func (t *softDirtyTracker) Kind() Kind { return KindSoftDirty }

func (t *softDirtyTracker) Sent(v *image.VMA, indices []uint32, data []byte) {
	for _, i := range indices {
		if p := t.sent.at(v.Start + uint64(i)*t.pageSize); p != nil {
			*p = data != nil
		}
	}
}

func (t *softDirtyTracker) Sync(vmas []*image.VMA, frozen bool) (d *Delta, err error) {
	travel := trackableRanges(vmas)
	d = &Delta{Fresh: travel.Subtract(t.known)}
	if len(t.known) > 0 && !frozen {
		f, err := checkpoint.Freeze(t.pid)
		if err != nil {
			return nil, fmt.Errorf("soft-dirty: freeze %d to read and clear its bits: %w", t.pid, err)
		}
		t.Freezes++
		defer func() {
			if e := f.Thaw(); e != nil && err == nil {
				d, err = nil, fmt.Errorf("soft-dirty: thaw %d: %w", t.pid, e)
			}
		}()
	}
	var dirty []Range
	for _, v := range vmas {
		if !trackable(v) {
			continue
		}
		for _, r := range t.known.Intersect(v.Start, v.End) {
			ents, err := t.pm.read(r)
			if err != nil {
				return nil, fmt.Errorf("soft-dirty: %w", err)
			}
			sent := t.sent.span(r.Start, r.End)
			dirty = appendDirtyRuns(dirty, r.Start, t.pageSize, ents, sent, v.Kind)
		}
	}
	if err := clearSoftDirty(t.pid); err != nil {
		return nil, err
	}
	t.known = travel
	t.sent.reshape(travel)
	d.Dirty = normalize(dirty)
	return d, nil
}

// appendDirtyRuns appends the runs of pages (the page at start+i*pageSize
// has entry ents[i]) that are soft-dirty, or that the destination holds
// data for (sent[i]) while the task no longer does.
func appendDirtyRuns(out []Range, start, pageSize uint64, ents []pagemapEntry, sent []bool, k image.VMAKind) []Range {
	for i, e := range ents {
		dirty := e.softDirty() || (i < len(sent) && sent[i] && !e.holdsData(k))
		if !dirty {
			continue
		}
		a := start + uint64(i)*pageSize
		if n := len(out); n > 0 && out[n-1].End == a {
			out[n-1].End += pageSize
		} else {
			out = append(out, Range{a, a + pageSize})
		}
	}
	return out
}

func clearSoftDirty(pid int) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/clear_refs", pid), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("soft-dirty: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString("4"); err != nil {
		return fmt.Errorf("soft-dirty: clear_refs of %d: %w", pid, err)
	}
	return nil
}

// Close forgets the state. Soft-dirty bits are the kernel's bookkeeping
// and the task cannot see them; nothing in the task needs undoing.
func (t *softDirtyTracker) Close() error { return t.pm.Close() }
