package checkpoint

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
	"golang.org/x/sys/unix"
)

// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent    = 1 << 63
	pmSwapped    = 1 << 62
	pmFileShared = 1 << 61
	pmSoftDirty  = 1 << 55
)

// PresentPages returns the indices (relative to v.Start) of the pages of v
// that must travel: pages present or swapped, and for private file mappings
// only those that became anonymous (copy-on-write); the rest is mapped from
// the file on the destination.
func PresentPages(pagemap *os.File, v *image.VMA, pageSize uint64) ([]uint32, error) {
	if !v.PagesTravel() {
		return nil, nil
	}
	n := (v.End - v.Start) / pageSize
	var out []uint32
	if v.Deleted {
		// A mapping of an unlinked file: every page travels (the file
		// cannot be found on the destination); reading faults them in.
		for i := uint64(0); i < n; i++ {
			out = append(out, uint32(i))
		}
		return out, nil
	}
	const chunk = 1 << 16
	buf := make([]byte, 8*min(n, chunk))
	for done := uint64(0); done < n; {
		c := min(n-done, chunk)
		b := buf[:8*c]
		off := int64((v.Start/pageSize + done) * 8)
		if _, err := pagemap.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("pagemap of %#x-%#x: %w", v.Start, v.End, err)
		}
		for i := uint64(0); i < c; i++ {
			e := binary.NativeEndian.Uint64(b[8*i:])
			take := false
			switch v.Kind {
			case image.VMAKind_VMA_FILE_PRIVATE:
				take = (e&pmPresent != 0 && e&pmFileShared == 0) || e&pmSwapped != 0
			default:
				take = e&(pmPresent|pmSwapped) != 0
			}
			if take {
				out = append(out, uint32(done+i))
			}
		}
		done += c
	}
	return out, nil
}

// PageBatch is a run of pages of one VMA read from the task.
type PageBatch struct {
	VMA     *image.VMA
	Indices []uint32 // page indices relative to VMA.Start, ascending
	Data    []byte   // len(Indices) pages
}

// BatchPages is how many pages one batch holds at most (1 MiB of 4 KiB pages).
const BatchPages = 256

// PageReader reads a task's pages in batches, reusing its buffers.
type PageReader struct {
	PID      int
	PageSize uint64
	pagemap  *os.File
	data     []byte
	addrs    []uint64
	// Pages and Bytes count what was read.
	Pages uint64
}

// NewPageReader opens the task's pagemap.
func NewPageReader(pid int, pageSize uint64) (*PageReader, error) {
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, fmt.Errorf("open pagemap of %d: %w", pid, err)
	}
	return &PageReader{PID: pid, PageSize: pageSize, pagemap: pm, data: make([]byte, BatchPages*pageSize)}, nil
}

// Close releases the pagemap.
func (r *PageReader) Close() error { return r.pagemap.Close() }

// Present lists the pages of v that travel.
func (r *PageReader) Present(v *image.VMA) ([]uint32, error) {
	return PresentPages(r.pagemap, v, r.PageSize)
}

// Read reads the given pages of v (indices ascending) and calls fn for each
// batch; the batch is valid only during the call.
func (r *PageReader) Read(v *image.VMA, indices []uint32, fn func(*PageBatch) error) error {
	readable := v.Prot&unix.PROT_READ != 0
	for len(indices) > 0 {
		k := min(len(indices), BatchPages)
		idx := indices[:k]
		indices = indices[k:]
		data := r.data[:uint64(k)*r.PageSize]
		if readable {
			r.addrs = r.addrs[:0]
			for _, i := range idx {
				r.addrs = append(r.addrs, v.Start+uint64(i)*r.PageSize)
			}
			if err := inject.ReadPages(r.PID, r.addrs, r.PageSize, data); err != nil {
				return err
			}
		} else {
			// Not readable (PROT_NONE after a write): /proc/PID/mem reads
			// it with the tracer's rights.
			for j, i := range idx {
				if err := inject.ReadMemForce(r.PID, v.Start+uint64(i)*r.PageSize, data[uint64(j)*r.PageSize:uint64(j+1)*r.PageSize]); err != nil {
					return err
				}
			}
		}
		r.Pages += uint64(k)
		if err := fn(&PageBatch{VMA: v, Indices: idx, Data: data}); err != nil {
			return err
		}
	}
	return nil
}
