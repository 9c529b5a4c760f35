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
//
// A soft-dirty page is not reported as it is: the tracker reads it and
// compares an xxhash64 of its contents with the hash of what was sent. The
// kernel keeps one soft-dirty bit per transparent huge page, so on a kernel
// running THP "always" (Debian's ppc64el) one written 64 KiB page marks
// 2 MiB dirty, and pre-copy would resend 32 pages for each one the task
// wrote and never converge on a slow link. Reading is cheap next to
// sending; a page the task rewrote with the same bytes is not resent
// either.
type softDirtyTracker struct {
	pid    int
	pm     *pagemapReader
	reader *checkpoint.PageReader
	known  Ranges
	// hashes holds per page the hash of what the destination holds, 0 when
	// it holds no data of its own (zeros, or the file's contents).
	hashes   pageTable[uint64]
	Freezes  int
	pageSize uint64
	// Refined counts soft-dirty pages found unchanged by their hash.
	Refined uint64
}

func newSoftDirtyTracker(pid int, pageSize uint64) (*softDirtyTracker, error) {
	if err := softDirtyProbe(); err != nil {
		return nil, err
	}
	pm, err := openPagemap(pid, pageSize)
	if err != nil {
		return nil, err
	}
	r, err := checkpoint.NewPageReader(pid, pageSize)
	if err != nil {
		pm.Close()
		return nil, err
	}
	return &softDirtyTracker{pid: pid, pm: pm, reader: r, pageSize: pageSize, hashes: pageTable[uint64]{pageSize: pageSize}}, nil
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
	for j, i := range indices {
		p := t.hashes.at(v.Start + uint64(i)*t.pageSize)
		if p == nil {
			continue
		}
		if data == nil {
			*p = 0
		} else {
			*p = pageHash(data[uint64(j)*t.pageSize : uint64(j+1)*t.pageSize])
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
	type candidates struct {
		v   *image.VMA
		idx []uint32
	}
	var check []candidates
	for _, v := range vmas {
		if !trackable(v) {
			continue
		}
		c := candidates{v: v}
		for _, r := range t.known.Intersect(v.Start, v.End) {
			ents, err := t.pm.read(r)
			if err != nil {
				return nil, fmt.Errorf("soft-dirty: %w", err)
			}
			hs := t.hashes.span(r.Start, r.End)
			var direct []Range
			direct, c.idx = classifyDirty(direct, c.idx, r.Start, v.Start, t.pageSize, ents, hs, v.Kind)
			dirty = append(dirty, direct...)
		}
		if len(c.idx) > 0 {
			check = append(check, c)
		}
	}
	if err := clearSoftDirty(t.pid); err != nil {
		return nil, err
	}
	// The bits are clear: a write from here on sets them again and shows
	// in the next Sync, so the contents may be read after the thaw.
	for _, c := range check {
		err := t.reader.Read(c.v, c.idx, func(b *checkpoint.PageBatch) error {
			for j, i := range b.Indices {
				a := c.v.Start + uint64(i)*t.pageSize
				p := t.hashes.at(a)
				if p != nil && *p != 0 && *p == pageHash(b.Data[uint64(j)*t.pageSize:uint64(j+1)*t.pageSize]) {
					t.Refined++
					continue
				}
				dirty = appendPage(dirty, a, t.pageSize)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("soft-dirty: read %#x-%#x: %w", c.v.Start, c.v.End, err)
		}
	}
	t.known = travel
	t.hashes.reshape(travel)
	d.Dirty = normalize(dirty)
	return d, nil
}

// classifyDirty looks at the pages from start (the page at start+i*pageSize
// has entry ents[i], and hashes[i] is the hash of what the destination
// holds for it, 0 for none): a soft-dirty page holding data of the task's
// own goes to idx (its index in the VMA at vmaStart) to be compared by
// contents; a page the destination holds data for while the task no
// longer does, or a soft-dirty page that holds none, is dirty as it is.
func classifyDirty(out []Range, idx []uint32, start, vmaStart, pageSize uint64, ents []pagemapEntry, hashes []uint64, k image.VMAKind) ([]Range, []uint32) {
	for i, e := range ents {
		a := start + uint64(i)*pageSize
		held := i < len(hashes) && hashes[i] != 0
		switch {
		case e.holdsData(k) && e.softDirty():
			idx = append(idx, uint32((a-vmaStart)/pageSize))
		case e.softDirty() || (held && !e.holdsData(k)):
			out = appendPage(out, a, pageSize)
		}
	}
	return out, idx
}

// appendPage appends the page at a to runs, merging it into the last run
// when adjacent.
func appendPage(out []Range, a, pageSize uint64) []Range {
	if n := len(out); n > 0 && out[n-1].End == a {
		out[n-1].End += pageSize
	} else {
		out = append(out, Range{a, a + pageSize})
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
func (t *softDirtyTracker) Close() error {
	err := t.reader.Close()
	if e := t.pm.Close(); err == nil {
		err = e
	}
	return err
}
