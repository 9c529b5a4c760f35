package move

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
	"github.com/migrated/migrated/transport"
)

// TestExtentWriter writes extents into this very process (process_vm_writev
// to oneself is allowed) through the layout check and the fallback.
func TestExtentWriter(t *testing.T) {
	const ps = 4096
	mem := make([]byte, 16*ps+ps)
	base := (uint64(uintptr(unsafe.Pointer(&mem[0]))) + ps - 1) &^ (ps - 1)
	off := int(base - uint64(uintptr(unsafe.Pointer(&mem[0]))))
	region := mem[off : off+16*ps]
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, ps) }
	anon := &image.VMA{Start: base, End: base + 8*ps, Kind: image.VMAKind_VMA_ANON_PRIVATE}
	shared := &image.VMA{Start: base + 8*ps, End: base + 16*ps, Kind: image.VMAKind_VMA_FILE_SHARED}
	for _, tc := range []struct {
		name      string
		ext       []transport.Extent
		fallback  error // what the fallback returns
		wantErr   string
		wantPages map[int]byte // page of region -> byte it holds after
		fellBack  bool
	}{
		{"two extents", []transport.Extent{{Addr: base, Data: page(1)}, {Addr: base + 2*ps, Data: append(page(2), page(3)...)}},
			nil, "", map[int]byte{0: 1, 1: 0, 2: 2, 3: 3}, false},
		{"outside every VMA", []transport.Extent{{Addr: base + 16*ps, Data: page(4)}}, nil, "in no VMA", nil, false},
		{"across the VMA end", []transport.Extent{{Addr: base + 7*ps, Data: append(page(5), page(5)...)}}, nil, "in no VMA", nil, false},
		{"pages that do not travel", []transport.Extent{{Addr: base + 9*ps, Data: page(6)}}, nil, "do not travel", nil, false},
		{"fallback reports its error", []transport.Extent{{Addr: base + 4*ps, Data: page(7)}}, errors.New("boom"), "boom", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clear(region)
			var w extentWriter
			w.setLayout([]*image.VMA{shared, anon})
			fellBack := false
			writeAt := func(addr uint64, data []byte) error {
				fellBack = true
				return tc.fallback
			}
			pid := os.Getpid()
			if tc.fallback != nil {
				pid = -1 // process_vm_writev fails: the fallback runs
			}
			err := w.write(pid, tc.ext, writeAt)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if fellBack != tc.fellBack {
				t.Errorf("fell back: %v, want %v", fellBack, tc.fellBack)
			}
			for i, b := range tc.wantPages {
				if !bytes.Equal(region[i*ps:(i+1)*ps], page(b)) {
					t.Errorf("page %d does not hold %d", i, b)
				}
			}
		})
	}
}

// BenchmarkExtentWriter writes the data extents of 128-page frames of the
// mixed workload (a zero page, then three pages of data, over and over)
// into 64 MiB of this process: one process_vm_writev per frame against one
// per extent, into populated memory and into fresh memory (faults
// included).
func BenchmarkExtentWriter(b *testing.B) {
	const ps, frame, size = 4096, 128, 64 << 20
	data := bytes.Repeat([]byte{7}, frame*ps)
	for _, fresh := range []bool{false, true} {
		for _, vec := range []bool{false, true} {
			name := map[bool]string{false: "populated", true: "fresh"}[fresh] + map[bool]string{false: "/per-extent", true: "/vector"}[vec]
			b.Run(name, func(b *testing.B) {
				mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
				if err != nil {
					b.Fatal(err)
				}
				defer unix.Munmap(mem)
				base := uint64(uintptr(unsafe.Pointer(&mem[0])))
				var w extentWriter
				w.setLayout([]*image.VMA{{Start: base, End: base + size, Kind: image.VMAKind_VMA_ANON_PRIVATE}})
				pid := os.Getpid()
				if !fresh {
					clear(mem)
				}
				var ext []transport.Extent
				b.SetBytes(frame * ps * 3 / 4)
				off := uint64(0)
				for b.Loop() {
					if off+frame*ps > size {
						off = 0
						if fresh {
							b.StopTimer()
							_ = unix.Madvise(mem, unix.MADV_DONTNEED)
							b.StartTimer()
						}
					}
					ext = ext[:0]
					for p := uint64(1); p < frame; p += 4 {
						ext = append(ext, transport.Extent{Addr: base + off + p*ps, Data: data[p*ps : (p+3)*ps]})
					}
					if vec {
						if err := w.write(pid, ext, nil); err != nil {
							b.Fatal(err)
						}
					} else {
						for _, e := range ext {
							if err := inject.WriteMem(pid, e.Addr, e.Data); err != nil {
								b.Fatal(err)
							}
						}
					}
					off += frame * ps
				}
			})
		}
	}
}
