package compat

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var updateSamples = flag.Bool("update-samples", false, "rewrite the constructed POWER samples in testdata/probe")

// ppcSample describes one constructed POWER auxv/maps/status sample. The
// values follow what a Linux 6.1 pseries guest writes (the order of
// ARCH_DLINFO in arch/powerpc/include/asm/elf.h, then create_elf_tables in
// fs/binfmt_elf.c); the addresses are made up but well-formed.
type ppcSample struct {
	dir       string
	order     binary.ByteOrder
	hwcap     uint64
	hwcap2    uint64
	pageSize  uint64
	platform  string
	vdsoStart uint64
}

var ppcSamples = []ppcSample{
	// POWER9, little-endian: true_le archpmu vsx arch_2_06 dfp ic_snoop smt
	// mmu fpu altivec ppc64 ppc32 / arch_2_07 dscr ebb isel tar vcrypto
	// arch_3_00 ieee128 darn scv (no htm, as QEMU's POWER9 model).
	{"ppc64le-power9", binary.LittleEndian, 0xdc0065c2, 0xbef00000, 0x10000, "power9", 0x7fff8e5a0000},
	// POWER10, little-endian: as POWER9 plus arch_3_1 and mma.
	{"ppc64le-power10", binary.LittleEndian, 0xdc0065c2, 0xbef60000, 0x10000, "power10", 0x7fffa1c40000},
	// POWER9, big-endian (no true_le).
	{"ppc64-power9", binary.BigEndian, 0xdc0065c0, 0xbef00000, 0x10000, "power9", 0x7fffb7f50000},
}

func (s ppcSample) auxv() []byte {
	const (
		atIgnorePPC = 22
		atDCacheB   = 19
		atICacheB   = 20
		atUCacheB   = 21
		atL1ISize   = 40
		atL1IGeom   = 41
		atL1DSize   = 42
		atL1DGeom   = 43
		atL2Size    = 44
		atL2Geom    = 45
		atL3Size    = 46
		atL3Geom    = 47
		atMinSigStk = 51
	)
	stack := uint64(0x7fffc8e3f000)
	text := uint64(0x10000000)
	entries := [][2]uint64{
		{atIgnorePPC, atIgnorePPC}, {atIgnorePPC, atIgnorePPC},
		{atDCacheB, 128}, {atICacheB, 128}, {atUCacheB, 0},
		{AT_SYSINFO_EHDR, s.vdsoStart},
		{atL1ISize, 32 << 10}, {atL1IGeom, 8<<16 | 128},
		{atL1DSize, 32 << 10}, {atL1DGeom, 8<<16 | 128},
		{atL2Size, 512 << 10}, {atL2Geom, 8<<16 | 128},
		{atL3Size, 10 << 20}, {atL3Geom, 20<<16 | 128},
		{atMinSigStk, 4688},
		{AT_HWCAP, s.hwcap}, {AT_PAGESZ, s.pageSize}, {17 /* AT_CLKTCK */, 100},
		{3 /* AT_PHDR */, text + 64}, {4 /* AT_PHENT */, 56}, {5 /* AT_PHNUM */, 9},
		{7 /* AT_BASE */, 0x7fff8e5b0000}, {8 /* AT_FLAGS */, 0}, {9 /* AT_ENTRY */, text + 0x1e20},
		{11, 0}, {12, 0}, {13, 0}, {14, 0}, {23 /* AT_SECURE */, 0},
		{25 /* AT_RANDOM */, stack - 0x1d7}, {AT_HWCAP2, s.hwcap2},
		{31 /* AT_EXECFN */, stack - 0x10}, {AT_PLATFORM, stack - 0x1c7}, {AT_BASE_PLATFORM, stack - 0x1bf},
		{AT_NULL, 0},
	}
	var b []byte
	for _, e := range entries {
		b = s.order.(binary.AppendByteOrder).AppendUint64(b, e[0])
		b = s.order.(binary.AppendByteOrder).AppendUint64(b, e[1])
	}
	return b
}

func (s ppcSample) maps() string {
	vvar := s.vdsoStart - 2*s.pageSize
	return fmt.Sprintf(`10000000-10010000 r-xp 00000000 fd:00 1441805                            /usr/bin/cat
10010000-10020000 r--p 00000000 fd:00 1441805                            /usr/bin/cat
10020000-10030000 rw-p 00010000 fd:00 1441805                            /usr/bin/cat
1000e6c0000-1000e6f0000 rw-p 00000000 00:00 0                            [heap]
7fff8e3a0000-7fff8e590000 r-xp 00000000 fd:00 1447214                    /usr/lib/powerpc64le-linux-gnu/libc.so.6
%x-%x r--p 00000000 00:00 0                          [vvar]
%x-%x r-xp 00000000 00:00 0                          [vdso]
7fff8e5b0000-7fff8e5f0000 r-xp 00000000 fd:00 1447207                    /usr/lib/powerpc64le-linux-gnu/ld64.so.2
7fffc8e10000-7fffc8e40000 rw-p 00000000 00:00 0                          [stack]
`, vvar, s.vdsoStart, s.vdsoStart, s.vdsoStart+s.pageSize)
}

const ppcStatus = `Name:	cat
Umask:	0022
State:	R (running)
Tgid:	142
Ngid:	0
Pid:	142
PPid:	1
TracerPid:	0
Uid:	0	0	0	0
Gid:	0	0	0	0
FDSize:	64
CapInh:	0000000000000000
CapPrm:	000001ffffffffff
CapEff:	000001ffffffffff
CapBnd:	000001ffffffffff
CapAmb:	0000000000000000
NoNewPrivs:	0
Seccomp:	0
`

// TestConstructedSamplesUpToDate keeps testdata/probe/ppc64* byte-exact
// with the generator above (rewrite with -update-samples).
func TestConstructedSamplesUpToDate(t *testing.T) {
	for _, s := range ppcSamples {
		files := map[string][]byte{
			"auxv":      s.auxv(),
			"maps":      []byte(s.maps()),
			"status":    []byte(ppcStatus),
			"osrelease": []byte("6.1.0-50-powerpc64le\n"),
		}
		if s.order == binary.BigEndian {
			files["osrelease"] = []byte("6.1.158\n")
		}
		for name, want := range files {
			path := filepath.Join("testdata", "probe", s.dir, name)
			if *updateSamples {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (regenerate with go test -run TestConstructedSamplesUpToDate -update-samples)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from its generator", path)
			}
		}
	}
}
