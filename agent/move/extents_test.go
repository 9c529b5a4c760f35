package move

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/migrated/migrated/image"
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
