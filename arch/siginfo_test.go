package arch_test

import (
	"encoding/binary"
	"testing"

	"github.com/migrated/migrated/arch"
	"github.com/migrated/migrated/arch/x86"
)

// native builds a 64-bit siginfo: signo, errno, code, then union words at
// the given union offsets.
func native(o binary.ByteOrder, signo, code int32, fields map[int]uint64, widths map[int]int) []byte {
	b := make([]byte, arch.SiginfoSize)
	o.PutUint32(b[0:], uint32(signo))
	o.PutUint32(b[8:], uint32(code))
	for off, v := range fields {
		if widths[off] == 8 {
			o.PutUint64(b[16+off:], v)
		} else {
			o.PutUint32(b[16+off:], uint32(v))
		}
	}
	return b
}

func TestSiginfoForTask(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		name   string
		signo  int32
		code   int32
		fields map[int]uint64 // 64-bit union offset -> value
		widths map[int]int
		want   map[int]uint32 // compat union offset -> value
	}{
		{"kill SI_USER", 10, 0, map[int]uint64{0: 1234, 4: 1000}, nil, map[int]uint32{0: 1234, 4: 1000}},
		{"kernel SIGALRM", 14, 0x80, nil, nil, map[int]uint32{0: 0, 4: 0}},
		{"tkill", 34, -6, map[int]uint64{0: 77, 4: 0, 8: 0xdead}, map[int]int{8: 8}, map[int]uint32{0: 77, 8: 0xdead}},
		{"sigqueue", 35, -1, map[int]uint64{0: 5, 4: 6, 8: 0xfeedbeef}, map[int]int{8: 8}, map[int]uint32{0: 5, 4: 6, 8: 0xfeedbeef}},
		{"timer", 14, -2, map[int]uint64{0: 3, 4: 9, 8: 0x1234}, map[int]int{8: 8}, map[int]uint32{0: 3, 4: 9, 8: 0x1234}},
		{"sigchld", 17, 1, map[int]uint64{0: 42, 4: 1000, 8: 3, 16: 11, 24: 22}, map[int]int{16: 8, 24: 8}, map[int]uint32{0: 42, 4: 1000, 8: 3, 12: 11, 16: 22}},
		{"segv", 11, 1, map[int]uint64{0: 0x8048000}, map[int]int{0: 8}, map[int]uint32{0: 0x8048000}},
		{"poll", 29, 1, map[int]uint64{0: 0x41, 8: 7}, map[int]int{0: 8}, map[int]uint32{0: 0x41, 4: 7}},
		{"sigio", 29, -5, map[int]uint64{0: 0x41, 8: 7}, map[int]int{0: 8}, map[int]uint32{0: 0x41, 4: 7}},
		{"sigsys", 31, 1, map[int]uint64{0: 0x80491234, 8: 400, 12: 0x40000003}, map[int]int{0: 8}, map[int]uint32{0: 0x80491234, 4: 400, 8: 0x40000003}},
	}
	i386 := x86.I386{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := native(le, c.signo, c.code, c.fields, c.widths)
			got, err := arch.SiginfoForTask(i386, raw)
			if err != nil {
				t.Fatal(err)
			}
			if le.Uint32(got[0:]) != uint32(c.signo) || int32(le.Uint32(got[8:])) != c.code {
				t.Fatalf("header: signo %d code %d", le.Uint32(got[0:]), int32(le.Uint32(got[8:])))
			}
			for off, v := range c.want {
				if g := le.Uint32(got[12+off:]); g != v {
					t.Errorf("compat union +%d = %#x, want %#x", off, g, v)
				}
			}
			same, err := arch.SiginfoForTask(x86.AMD64{}, raw)
			if err != nil || string(same) != string(raw) {
				t.Errorf("amd64: the layout must not change (%v)", err)
			}
		})
	}
	if _, err := arch.SiginfoForTask(i386, make([]byte, 100)); err == nil {
		t.Error("a short siginfo was accepted")
	}
}
