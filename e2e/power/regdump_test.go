package power

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

var regDumpTests = []struct {
	name  string
	in    string
	sets  int
	valid bool
}{
	{"one set", "# c\nregset NT_PPC_TAR 0x103 len 8\n0000 0000000000000000\nend\n", 1, true},
	{"errno", "regset NT_PPC_SPE 0x101 errno 22 Invalid argument\nend\n", 1, true},
	{"two lines", "regset NT_PRFPREG 0x2 len 40\n0000 " + hex32 + "\n0020 0102030405060708\nend\n", 1, true},
	{"empty", "", 0, false},
	{"no end", "regset NT_PPC_TAR 0x103 len 8\n0000 0000000000000000\n", 0, false},
	{"short data", "regset NT_PPC_TAR 0x103 len 8\n0000 00000000\nend\n", 0, false},
	{"too much data", "regset NT_PPC_TAR 0x103 len 4\n0000 0000000000000000\nend\n", 0, false},
	{"bad offset", "regset NT_PPC_TAR 0x103 len 8\n0008 0000000000000000\nend\n", 0, false},
	{"bad hex", "regset NT_PPC_TAR 0x103 len 1\n0000 zz\nend\n", 0, false},
	{"data after errno", "regset NT_PPC_SPE 0x101 errno 22 x\n0000 00\nend\n", 0, false},
	{"errno zero", "regset NT_PPC_SPE 0x101 errno 0 x\nend\n", 0, false},
	{"data after end", "end\nregset NT_PPC_SPE 0x101 errno 22 x\n", 0, false},
	{"huge len", "regset X 0x1 len 99999999\nend\n", 0, false},
}

const hex32 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func TestParseRegDump(t *testing.T) {
	for _, tc := range regDumpTests {
		t.Run(tc.name, func(t *testing.T) {
			sets, err := ParseRegDump([]byte(tc.in))
			if tc.valid != (err == nil) {
				t.Fatalf("err = %v, want valid=%v", err, tc.valid)
			}
			if err != nil && !errors.Is(err, ErrBadRegDump) {
				t.Errorf("error %v is not ErrBadRegDump", err)
			}
			if len(sets) != tc.sets {
				t.Errorf("%d sets, want %d", len(sets), tc.sets)
			}
		})
	}
}

// TestRegDumpTestdata decodes the captures from the guests and checks the
// values regs_child loaded, so a capture (or a layout assumption) that is
// wrong is caught on amd64.
func TestRegDumpTestdata(t *testing.T) {
	tests := []regdumpCase{
		{"regs-ppc64le", nil, 384, binary.LittleEndian, 8},
		{"regs-ppc64", nil, 384, binary.BigEndian, 8},
		{"regs-ppc32", nil, 192, binary.BigEndian, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.name+".txt"))
			if err != nil {
				t.Skipf("no capture (e2e/power/run.sh -update writes it): %v", err)
			}
			tc.check(t, b)
		})
	}
}

func FuzzParseRegDump(f *testing.F) {
	for _, tc := range regDumpTests {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		sets, err := ParseRegDump(in)
		if err != nil {
			return
		}
		for _, s := range sets {
			if s.Errno == 0 && s.Err != "" {
				t.Errorf("%s: error text without errno", s.Name)
			}
		}
	})
}
