package precopy

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/image"
)

// hashTracker compares an xxhash64 of every page with the hash of what was
// sent for it. It needs nothing of the kernel and changes nothing in the
// task, but reads all of the task's memory each Sync. A page the task wrote
// back to exactly what was sent is (rightly) not dirty.
type hashTracker struct {
	pid      int
	pageSize uint64
	reader   *checkpoint.PageReader
	known    Ranges
	// hashes holds per page the hash of what the destination holds, 0
	// when it holds no data of its own (zeros, or the file's contents).
	hashes pageTable[uint64]
	// BytesRead counts what Syncs read.
	BytesRead uint64
}

func newHashTracker(pid int, pageSize uint64) (*hashTracker, error) {
	r, err := checkpoint.NewPageReader(pid, pageSize)
	if err != nil {
		return nil, err
	}
	return &hashTracker{pid: pid, pageSize: pageSize, reader: r, hashes: pageTable[uint64]{pageSize: pageSize}}, nil
}

func (t *hashTracker) Kind() Kind { return KindHash }

func pageHash(p []byte) uint64 {
	h := xxhash.Sum64(p)
	if h == 0 {
		h = 1 // 0 means "no data of its own"
	}
	return h
}

func (t *hashTracker) Sent(v *image.VMA, indices []uint32, data []byte) {
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

func (t *hashTracker) Sync(vmas []*image.VMA, frozen bool) (*Delta, error) {
	travel := trackableRanges(vmas)
	d := &Delta{Fresh: travel.Subtract(t.known)}
	var dirty []Range
	mark := func(a uint64) {
		if n := len(dirty); n > 0 && dirty[n-1].End == a {
			dirty[n-1].End += t.pageSize
		} else {
			dirty = append(dirty, Range{a, a + t.pageSize})
		}
	}
	for _, v := range vmas {
		if !trackable(v) {
			continue
		}
		parts := t.known.Intersect(v.Start, v.End)
		if len(parts) == 0 {
			continue
		}
		present, err := t.reader.Present(v)
		if err != nil {
			return nil, fmt.Errorf("hash: %w", err)
		}
		var idx []uint32
		for _, i := range present {
			if parts.Contains(v.Start + uint64(i)*t.pageSize) {
				idx = append(idx, i)
			}
		}
		// Pages the destination holds data for and the task no longer has.
		pi := 0
		for _, r := range parts {
			hs := t.hashes.span(r.Start, r.End)
			for k, h := range hs {
				if h == 0 {
					continue
				}
				a := r.Start + uint64(k)*t.pageSize
				i := uint32((a - v.Start) / t.pageSize)
				for pi < len(present) && present[pi] < i {
					pi++
				}
				if pi == len(present) || present[pi] != i {
					mark(a)
				}
			}
		}
		err = t.reader.Read(v, idx, func(b *checkpoint.PageBatch) error {
			for j, i := range b.Indices {
				a := v.Start + uint64(i)*t.pageSize
				p := t.hashes.at(a)
				if p == nil || *p != pageHash(b.Data[uint64(j)*t.pageSize:uint64(j+1)*t.pageSize]) {
					mark(a)
				}
			}
			t.BytesRead += uint64(len(b.Data))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("hash: read %#x-%#x: %w", v.Start, v.End, err)
		}
	}
	t.known = travel
	t.hashes.reshape(travel)
	d.Dirty = normalize(dirty)
	return d, nil
}

// Close releases the page reader; the task was never changed.
func (t *hashTracker) Close() error { return t.reader.Close() }
