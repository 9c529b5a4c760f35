package precopy

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/migrated/migrated/image"
)

func entriesBytes(es ...uint64) []byte {
	b := make([]byte, 8*len(es))
	for i, e := range es {
		binary.NativeEndian.PutUint64(b[8*i:], e)
	}
	return b
}

// Pagemap entries as the kernel writes them: pfn in bits 0-54, soft-dirty
// 55, exclusive 56, file/shared 61, swapped 62, present 63.
var pagemapCases = []struct {
	name      string
	entry     uint64
	softDirty bool
	anonData  bool // holdsData for a private anonymous VMA
	fileData  bool // holdsData for a private file VMA
}{
	{"none", 0, false, false, false},
	{"present anon", pmPresent | 1<<56 | 0x1234, false, true, true},
	{"present anon, soft-dirty", pmPresent | pmSoftDirty | 0x1234, true, true, true},
	{"present file page (not copied on write)", pmPresent | pmFileShared | 0x99, false, true, false},
	{"present file page, soft-dirty", pmPresent | pmFileShared | pmSoftDirty, true, true, false},
	{"swapped", pmSwapped | 0x3e, false, true, true},
	{"swapped, soft-dirty", pmSwapped | pmSoftDirty, true, true, true},
	{"hole in a soft-dirty VMA", pmSoftDirty, true, false, false},
}

func TestPagemapEntries(t *testing.T) {
	var raw []uint64
	for _, c := range pagemapCases {
		raw = append(raw, c.entry)
	}
	ents, err := decodePagemap(entriesBytes(raw...), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range pagemapCases {
		e := ents[i]
		if e.softDirty() != c.softDirty || e.holdsData(image.VMAKind_VMA_ANON_PRIVATE) != c.anonData ||
			e.holdsData(image.VMAKind_VMA_FILE_PRIVATE) != c.fileData {
			t.Errorf("%s (%#x): softDirty %v anon %v file %v", c.name, c.entry, e.softDirty(),
				e.holdsData(image.VMAKind_VMA_ANON_PRIVATE), e.holdsData(image.VMAKind_VMA_FILE_PRIVATE))
		}
	}
	if _, err := decodePagemap(make([]byte, 12), nil); !errors.Is(err, ErrPagemapFormat) {
		t.Errorf("12 bytes: %v", err)
	}
}

// TestSoftDirtyRuns checks what the soft-dirty tracker makes of pagemap
// entries: soft-dirty pages holding data go to the contents check (their
// indices in the VMA); pages the destination holds data for that the task
// dropped, and soft-dirty pages holding none, are dirty as they are. (The
// tracker itself cannot run on this amd64 kernel, which lacks
// CONFIG_MEM_SOFT_DIRTY; the POWER guests and e2e/x86guest run it.)
func TestSoftDirtyRuns(t *testing.T) {
	const ps = 0x1000
	tests := []struct {
		name    string
		ents    []uint64
		hashes  []uint64 // of what the destination holds, 0: nothing of its own
		kind    image.VMAKind
		want    []Range
		wantIdx []uint32
	}{
		{"clean", []uint64{pmPresent, pmPresent}, []uint64{7, 7}, image.VMAKind_VMA_ANON_PRIVATE, nil, nil},
		{"soft-dirty pages holding data are checked by contents",
			[]uint64{pmPresent | pmSoftDirty, pmPresent | pmSoftDirty, pmPresent, pmSwapped | pmSoftDirty},
			nil, image.VMAKind_VMA_ANON_PRIVATE, nil, []uint32{16, 17, 19}},
		{"sent, then dropped", []uint64{0, pmPresent, 0}, []uint64{7, 7, 0}, image.VMAKind_VMA_ANON_PRIVATE,
			[]Range{{0x10000, 0x11000}}, nil},
		{"soft-dirty and dropped", []uint64{pmSoftDirty, pmSoftDirty}, []uint64{7, 0}, image.VMAKind_VMA_ANON_PRIVATE,
			[]Range{{0x10000, 0x12000}}, nil},
		{"private file page back to the file's", []uint64{pmPresent | pmFileShared, pmPresent}, []uint64{7, 7},
			image.VMAKind_VMA_FILE_PRIVATE, []Range{{0x10000, 0x11000}}, nil},
	}
	for _, tt := range tests {
		ents, err := decodePagemap(entriesBytes(tt.ents...), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, idx := classifyDirty(nil, nil, 0x10000, 0, ps, ents, tt.hashes, tt.kind)
		if !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(idx, tt.wantIdx) {
			t.Errorf("%s: %v %v, want %v %v", tt.name, got, idx, tt.want, tt.wantIdx)
		}
	}
}

func FuzzDecodePagemap(f *testing.F) {
	for _, c := range pagemapCases {
		f.Add(entriesBytes(c.entry, c.entry|pmSoftDirty))
	}
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		ents, err := decodePagemap(b, nil)
		if err != nil {
			if len(b)%8 == 0 {
				t.Fatalf("whole entries rejected: %v", err)
			}
			return
		}
		if len(ents) != len(b)/8 {
			t.Fatalf("%d entries from %d bytes", len(ents), len(b))
		}
		runs, idx := classifyDirty(nil, nil, 0, 0, 1, ents, nil, image.VMAKind_VMA_ANON_PRIVATE)
		for i, r := range runs {
			if r.End <= r.Start || r.End > uint64(len(ents)) || (i > 0 && runs[i-1].End >= r.Start) {
				t.Fatalf("bad runs %v", runs)
			}
		}
		for i, x := range idx {
			if int(x) >= len(ents) || (i > 0 && idx[i-1] >= x) {
				t.Fatalf("bad indices %v", idx)
			}
		}
	})
}
