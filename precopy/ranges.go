package precopy

import (
	"fmt"
	"sort"
)

// Range is a page-aligned address range [Start, End) of the task.
type Range struct {
	Start, End uint64
}

func (r Range) String() string { return fmt.Sprintf("%#x-%#x", r.Start, r.End) }

// Len is the range's length in bytes.
func (r Range) Len() uint64 { return r.End - r.Start }

// Ranges is a sorted list of disjoint, non-adjacent ranges.
type Ranges []Range

// normalize sorts rs and merges overlapping and adjacent ranges, in place.
func normalize(rs []Range) Ranges {
	if len(rs) == 0 {
		return nil
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
	out := rs[:1]
	for _, r := range rs[1:] {
		if r.End <= r.Start {
			continue
		}
		last := &out[len(out)-1]
		if r.Start <= last.End {
			last.End = max(last.End, r.End)
			continue
		}
		out = append(out, r)
	}
	if out[0].End <= out[0].Start {
		out = out[1:]
	}
	return Ranges(out)
}

// Bytes is the total length.
func (rs Ranges) Bytes() uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Len()
	}
	return n
}

// Intersect returns the parts of rs inside [start, end).
func (rs Ranges) Intersect(start, end uint64) Ranges {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].End > start })
	var out Ranges
	for ; i < len(rs) && rs[i].Start < end; i++ {
		out = append(out, Range{max(rs[i].Start, start), min(rs[i].End, end)})
	}
	return out
}

// Subtract returns the parts of rs not covered by o.
func (rs Ranges) Subtract(o Ranges) Ranges {
	var out Ranges
	j := 0
	for _, r := range rs {
		cur := r.Start
		for j < len(o) && o[j].End <= cur {
			j++
		}
		for k := j; k < len(o) && o[k].Start < r.End; k++ {
			if o[k].Start > cur {
				out = append(out, Range{cur, o[k].Start})
			}
			cur = max(cur, o[k].End)
		}
		if cur < r.End {
			out = append(out, Range{cur, r.End})
		}
	}
	return out
}

// Union merges two range lists.
func (rs Ranges) Union(o Ranges) Ranges {
	all := make([]Range, 0, len(rs)+len(o))
	all = append(all, rs...)
	all = append(all, o...)
	return normalize(all)
}

// Contains tells whether addr is inside one of the ranges.
func (rs Ranges) Contains(addr uint64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].End > addr })
	return i < len(rs) && rs[i].Start <= addr
}

// pageIndices lists the page indices (relative to start) covered by rs
// inside [start, end).
func (rs Ranges) pageIndices(start, end, pageSize uint64) []uint32 {
	var out []uint32
	for _, r := range rs.Intersect(start, end) {
		for a := r.Start; a < r.End; a += pageSize {
			out = append(out, uint32((a-start)/pageSize))
		}
	}
	return out
}
