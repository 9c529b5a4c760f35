package precopy

import (
	"reflect"
	"slices"
	"testing"

	"github.com/migrated/migrated/image"
)

func TestRanges(t *testing.T) {
	r := func(s, e uint64) Range { return Range{s, e} }
	tests := []struct {
		name string
		got  Ranges
		want Ranges
	}{
		{"normalize merges overlaps and neighbours", normalize([]Range{r(30, 40), r(0, 10), r(10, 20), r(35, 50), r(60, 60)}), Ranges{r(0, 20), r(30, 50)}},
		{"normalize of nothing", normalize(nil), nil},
		{"normalize drops empty first", normalize([]Range{r(5, 5), r(7, 9)}), Ranges{r(7, 9)}},
		{"intersect", Ranges{r(0, 10), r(20, 30), r(40, 50)}.Intersect(5, 45), Ranges{r(5, 10), r(20, 30), r(40, 45)}},
		{"intersect outside", Ranges{r(0, 10)}.Intersect(10, 20), nil},
		{"subtract", Ranges{r(0, 100)}.Subtract(Ranges{r(10, 20), r(50, 60), r(90, 120)}), Ranges{r(0, 10), r(20, 50), r(60, 90)}},
		{"subtract all", Ranges{r(10, 20), r(30, 40)}.Subtract(Ranges{r(0, 100)}), nil},
		{"subtract nothing", Ranges{r(10, 20)}.Subtract(nil), Ranges{r(10, 20)}},
		{"subtract across ranges", Ranges{r(0, 10), r(20, 30)}.Subtract(Ranges{r(5, 25)}), Ranges{r(0, 5), r(25, 30)}},
		{"union", Ranges{r(0, 10)}.Union(Ranges{r(10, 20), r(30, 40)}), Ranges{r(0, 20), r(30, 40)}},
		{"intersectAll", Ranges{r(0, 100)}.intersectAll(Ranges{r(10, 20), r(90, 200)}), Ranges{r(10, 20), r(90, 100)}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	rs := Ranges{r(0x1000, 0x3000), r(0x5000, 0x6000)}
	if !rs.Contains(0x2fff) || rs.Contains(0x3000) || rs.Contains(0x4fff) || !rs.Contains(0x5000) {
		t.Errorf("Contains is wrong on %v", rs)
	}
	if got := rs.pageIndices(0x2000, 0x6000, 0x1000); !slices.Equal(got, []uint32{0, 3}) {
		t.Errorf("pageIndices: %v", got)
	}
	if rs.Bytes() != 0x3000 {
		t.Errorf("Bytes: %#x", rs.Bytes())
	}
}

func TestPageTableReshapeKeepsValues(t *testing.T) {
	p := pageTable[uint64]{pageSize: 0x1000}
	p.reshape(Ranges{{0x10000, 0x14000}})
	for i := uint64(0); i < 4; i++ {
		*p.at(0x10000 + i*0x1000) = i + 1
	}
	// The range shrinks at the front and grows at the back, and a second
	// range appears.
	p.reshape(Ranges{{0x12000, 0x16000}, {0x20000, 0x21000}})
	want := map[uint64]uint64{0x12000: 3, 0x13000: 4, 0x14000: 0, 0x15000: 0, 0x20000: 0}
	for a, w := range want {
		if got := p.at(a); got == nil || *got != w {
			t.Errorf("at %#x: %v, want %d", a, got, w)
		}
	}
	if p.at(0x10000) != nil || p.at(0x16000) != nil {
		t.Errorf("addresses outside the table have slots")
	}
	if s := p.span(0x12000, 0x14000); !slices.Equal(s, []uint64{3, 4}) {
		t.Errorf("span: %v", s)
	}
	if s := p.span(0x15000, 0x17000); s != nil {
		t.Errorf("span past a range: %v", s)
	}
}

func TestDiffLayout(t *testing.T) {
	anon := func(s, e uint64, prot uint32) *image.VMA {
		return &image.VMA{Start: s, End: e, Prot: prot, Flags: mapPrivate, Kind: image.VMAKind_VMA_ANON_PRIVATE}
	}
	file := func(s, e uint64, path string) *image.VMA {
		return &image.VMA{Start: s, End: e, Prot: 1, Flags: mapPrivate, Kind: image.VMAKind_VMA_FILE_PRIVATE, Path: path}
	}
	prev := []*image.VMA{anon(0x1000, 0x5000, 3), file(0x10000, 0x12000, "/a"), anon(0x20000, 0x30000, 3), anon(0x40000, 0x41000, 3)}
	cur := []*image.VMA{
		anon(0x1000, 0x3000, 3), anon(0x3000, 0x5000, 1), // split by mprotect
		file(0x10000, 0x12000, "/b"), // replaced by another file
		anon(0x20000, 0x30000, 3),    // unchanged
		anon(0x50000, 0x52000, 3),    // new; 0x40000 gone
	}
	l, replaced := diffLayout(4, prev, cur)
	starts := func(vs []*image.VMA) []uint64 {
		var out []uint64
		for _, v := range vs {
			out = append(out, v.Start)
		}
		return out
	}
	if got := starts(l.Added); !slices.Equal(got, []uint64{0x3000, 0x10000, 0x50000}) {
		t.Errorf("added %#x", got)
	}
	if got := starts(l.Removed); !slices.Equal(got, []uint64{0x10000, 0x40000}) {
		t.Errorf("removed %#x", got)
	}
	if len(l.Changed) != 1 || l.Changed[0].Old.End != 0x5000 || l.Changed[0].New.End != 0x3000 {
		t.Errorf("changed %v", l.Changed)
	}
	if !reflect.DeepEqual(replaced, Ranges{{0x10000, 0x12000}}) {
		t.Errorf("replaced %v", replaced)
	}
	if l.Round != 4 || len(l.VMAs) != len(cur) {
		t.Errorf("layout header %d %d", l.Round, len(l.VMAs))
	}
}
