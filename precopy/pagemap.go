package precopy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/migrated/migrated/image"
)

// pagemapEntry is one 64-bit entry of /proc/PID/pagemap, in the host's byte
// order (Documentation/admin-guide/mm/pagemap.rst).
type pagemapEntry uint64

const (
	pmPresent    = 1 << 63 // page present in RAM
	pmSwapped    = 1 << 62 // page swapped out
	pmFileShared = 1 << 61 // file page or shared anonymous page
	pmSoftDirty  = 1 << 55 // written since the last clear_refs "4"
)

func (e pagemapEntry) softDirty() bool { return e&pmSoftDirty != 0 }

// holdsData tells whether the page of a VMA of kind k with this entry
// holds data of its own, as checkpoint.PresentPages decides what travels:
// a present or swapped page, and for a private file mapping only a page
// that became anonymous (copy-on-write).
func (e pagemapEntry) holdsData(k image.VMAKind) bool {
	if k == image.VMAKind_VMA_FILE_PRIVATE {
		return (e&pmPresent != 0 && e&pmFileShared == 0) || e&pmSwapped != 0
	}
	return e&(pmPresent|pmSwapped) != 0
}

// ErrPagemapFormat: pagemap bytes that are not whole entries.
var ErrPagemapFormat = errors.New("pagemap: not a whole number of 8-byte entries")

// decodePagemap appends the entries in b to out.
func decodePagemap(b []byte, out []pagemapEntry) ([]pagemapEntry, error) {
	if len(b)%8 != 0 {
		return out, fmt.Errorf("%w: %d bytes", ErrPagemapFormat, len(b))
	}
	for i := 0; i < len(b); i += 8 {
		out = append(out, pagemapEntry(binary.NativeEndian.Uint64(b[i:])))
	}
	return out, nil
}

// pagemapReader reads entries of one task's pagemap.
type pagemapReader struct {
	f        *os.File
	pageSize uint64
	buf      []byte
	ents     []pagemapEntry
}

func openPagemap(pid int, pageSize uint64) (*pagemapReader, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, fmt.Errorf("open pagemap of %d: %w", pid, err)
	}
	return &pagemapReader{f: f, pageSize: pageSize, buf: make([]byte, 8<<16)}, nil
}

func (p *pagemapReader) Close() error { return p.f.Close() }

// read returns the entries of the pages of r (valid until the next read).
func (p *pagemapReader) read(r Range) ([]pagemapEntry, error) {
	p.ents = p.ents[:0]
	n := r.Len() / p.pageSize
	for done := uint64(0); done < n; {
		c := min(n-done, uint64(len(p.buf)/8))
		b := p.buf[:8*c]
		if _, err := p.f.ReadAt(b, int64((r.Start/p.pageSize+done)*8)); err != nil {
			return nil, fmt.Errorf("pagemap of %s: %w", r, err)
		}
		var err error
		if p.ents, err = decodePagemap(b, p.ents); err != nil {
			return nil, err
		}
		done += c
	}
	return p.ents, nil
}
