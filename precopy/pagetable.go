package precopy

import "sort"

// pageTable keeps one value per page of a set of ranges, and keeps the
// values of the addresses that stay when the ranges change.
type pageTable[T any] struct {
	pageSize uint64
	regions  []ptRegion[T] // sorted, disjoint
}

type ptRegion[T any] struct {
	r    Range
	vals []T
}

// reshape makes the table cover exactly rs: values of addresses in both the
// old and the new ranges are kept, new addresses get the zero value.
func (p *pageTable[T]) reshape(rs Ranges) {
	if len(rs) == len(p.regions) {
		same := true
		for i, r := range rs {
			if p.regions[i].r != r {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	out := make([]ptRegion[T], 0, len(rs))
	for _, r := range rs {
		nr := ptRegion[T]{r: r, vals: make([]T, r.Len()/p.pageSize)}
		i := sort.Search(len(p.regions), func(i int) bool { return p.regions[i].r.End > r.Start })
		for ; i < len(p.regions) && p.regions[i].r.Start < r.End; i++ {
			o := p.regions[i]
			s, e := max(o.r.Start, r.Start), min(o.r.End, r.End)
			copy(nr.vals[(s-r.Start)/p.pageSize:(e-r.Start)/p.pageSize], o.vals[(s-o.r.Start)/p.pageSize:(e-o.r.Start)/p.pageSize])
		}
		out = append(out, nr)
	}
	p.regions = out
}

// at returns the value slot of the page at addr, or nil outside the table.
func (p *pageTable[T]) at(addr uint64) *T {
	i := sort.Search(len(p.regions), func(i int) bool { return p.regions[i].r.End > addr })
	if i == len(p.regions) || p.regions[i].r.Start > addr {
		return nil
	}
	return &p.regions[i].vals[(addr-p.regions[i].r.Start)/p.pageSize]
}

// span returns the values of the pages of [start, end), which must lie in
// one range of the table, or nil.
func (p *pageTable[T]) span(start, end uint64) []T {
	i := sort.Search(len(p.regions), func(i int) bool { return p.regions[i].r.End > start })
	if i == len(p.regions) || p.regions[i].r.Start > start || p.regions[i].r.End < end {
		return nil
	}
	rg := p.regions[i]
	return rg.vals[(start-rg.r.Start)/p.pageSize : (end-rg.r.Start)/p.pageSize]
}
