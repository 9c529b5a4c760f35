package compat

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
)

func TestSamples(t *testing.T) {
	tests := []struct {
		dir      string
		machine  string
		arch     image.Arch
		endian   image.Endian
		pageSize uint64
		hwcap    uint64
		hwcap2   uint64
		capEff   uint64
		kernel   KernelVersion
		layout   []string // names of the vDSO mappings, in address order
		vvarOff  int64    // offset of [vvar] from [vdso]
		vdsoSize uint64
	}{
		{"amd64", "x86_64", image.Arch_ARCH_AMD64, image.Endian_ENDIAN_LITTLE, 4096, 0x178bebff, 0,
			0x1fffeffffff, KernelVersion{6, 18, 44}, []string{"[vvar]", "[vvar_vclock]", "[vdso]"}, -0x6000, 0x2000},
		{"ppc64le-power9", "ppc64le", image.Arch_ARCH_PPC64LE, image.Endian_ENDIAN_LITTLE, 0x10000, 0xdc0065c2, 0xbef00000,
			0x1ffffffffff, KernelVersion{6, 1, 0}, []string{"[vvar]", "[vdso]"}, -0x20000, 0x10000},
		{"ppc64le-power10", "ppc64le", image.Arch_ARCH_PPC64LE, image.Endian_ENDIAN_LITTLE, 0x10000, 0xdc0065c2, 0xbef60000,
			0x1ffffffffff, KernelVersion{6, 1, 0}, []string{"[vvar]", "[vdso]"}, -0x20000, 0x10000},
		{"ppc64-power9", "ppc64", image.Arch_ARCH_PPC64, image.Endian_ENDIAN_BIG, 0x10000, 0xdc0065c0, 0xbef00000,
			0x1ffffffffff, KernelVersion{6, 1, 158}, []string{"[vvar]", "[vdso]"}, -0x20000, 0x10000},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			read := func(name string) []byte {
				b, err := os.ReadFile(filepath.Join("testdata", "probe", tt.dir, name))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			arch, endian, err := ArchFromMachine(tt.machine)
			if err != nil || arch != tt.arch || endian != tt.endian {
				t.Fatalf("ArchFromMachine(%q) = %v %v %v", tt.machine, arch, endian, err)
			}
			order, word, err := AuxvLayout(arch)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := ParseAuxv(read("auxv"), order, word)
			if err != nil {
				t.Fatal(err)
			}
			ac, err := CapsFromAuxv(entries)
			if err != nil {
				t.Fatal(err)
			}
			if ac.PageSize != tt.pageSize || ac.HWCap != tt.hwcap || ac.HWCap2 != tt.hwcap2 {
				t.Errorf("auxv: page %#x hwcap %#x hwcap2 %#x, want %#x %#x %#x",
					ac.PageSize, ac.HWCap, ac.HWCap2, tt.pageSize, tt.hwcap, tt.hwcap2)
			}
			if ac.PlatformAddr == 0 {
				t.Error("auxv: no AT_PLATFORM")
			}
			// The wrong byte order must not yield the same answer.
			other := binary.ByteOrder(binary.BigEndian)
			if order == binary.ByteOrder(binary.BigEndian) {
				other = binary.LittleEndian
			}
			if e2, err := ParseAuxv(read("auxv"), other, word); err == nil {
				if c2, err := CapsFromAuxv(e2); err == nil && c2.HWCap == tt.hwcap {
					t.Error("auxv parsed with the wrong byte order gives the same hwcap")
				}
			}

			capEff, err := ParseCapEff(read("status"))
			if err != nil || capEff != tt.capEff {
				t.Errorf("CapEff = %#x, %v; want %#x", capEff, err, tt.capEff)
			}
			if HasCap(capEff, CAP_SYS_RESOURCE) != (tt.dir != "amd64") {
				t.Errorf("CAP_SYS_RESOURCE in %#x: wrong", capEff)
			}
			maps, err := ParseMaps(read("maps"))
			if err != nil {
				t.Fatal(err)
			}
			start, size, layout, err := VDSOLayout(maps)
			if err != nil {
				t.Fatal(err)
			}
			if start != ac.VDSOBase {
				t.Errorf("[vdso] at %#x, AT_SYSINFO_EHDR %#x", start, ac.VDSOBase)
			}
			if size != tt.vdsoSize {
				t.Errorf("[vdso] size %#x, want %#x", size, tt.vdsoSize)
			}
			var names []string
			for _, m := range layout {
				names = append(names, m.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.layout, ",") {
				t.Errorf("layout %v, want %v", names, tt.layout)
			}
			if layout[0].Offset != tt.vvarOff {
				t.Errorf("[vvar] offset %#x, want %#x", layout[0].Offset, tt.vvarOff)
			}
			kv, err := ParseKernelRelease(string(read("osrelease")))
			if err != nil || kv != tt.kernel {
				t.Errorf("kernel %v %v, want %v", kv, err, tt.kernel)
			}
		})
	}
}

func TestParseAuxvErrors(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name string
		b    []byte
		word int
	}{
		{"empty", nil, 8},
		{"no terminator", le.AppendUint64(le.AppendUint64(nil, AT_PAGESZ), 4096), 8},
		{"odd length", make([]byte, 12), 8},
		{"bad word size", make([]byte, 16), 2},
	}
	for _, tt := range tests {
		if _, err := ParseAuxv(tt.b, le, tt.word); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", tt.name, err)
		}
	}
	// A 32-bit vector (a compat task's auxv).
	var b []byte
	for _, w := range []uint32{AT_HWCAP, 0xdeadbeef, AT_PAGESZ, 4096, AT_NULL, 0} {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	e, err := ParseAuxv(b, binary.BigEndian, 4)
	if err != nil || len(e) != 2 || e[0].Value != 0xdeadbeef {
		t.Errorf("32-bit auxv: %v %v", e, err)
	}
	if _, err := CapsFromAuxv([]AuxvEntry{{AT_PAGESZ, 4095}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("page size 4095 accepted")
	}
}

func TestParseKernelRelease(t *testing.T) {
	tests := []struct {
		in   string
		want KernelVersion
		ok   bool
	}{
		{"6.18.44-fc-v782", KernelVersion{6, 18, 44}, true},
		{"6.1.0-50-powerpc64le\n", KernelVersion{6, 1, 0}, true},
		{"5.4", KernelVersion{5, 4, 0}, true},
		{"6.8-rc1", KernelVersion{6, 8, 0}, true},
		{"4.19.0+", KernelVersion{4, 19, 0}, true},
		{"", KernelVersion{}, false},
		{"linux", KernelVersion{}, false},
		{"6", KernelVersion{}, false},
	}
	for _, tt := range tests {
		got, err := ParseKernelRelease(tt.in)
		if (err == nil) != tt.ok || tt.ok && got != tt.want {
			t.Errorf("ParseKernelRelease(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if !(KernelVersion{5, 5, 0}).AtLeast(5, 5) || (KernelVersion{5, 4, 99}).AtLeast(5, 5) || !(KernelVersion{6, 0, 0}).AtLeast(5, 5) {
		t.Error("AtLeast")
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		status string
		uids   [4]uint32
		capEff uint64
		ok     bool
	}{
		{"Name:\tx\nUid:\t1000\t1001\t1002\t1003\nCapEff:\t000001fffeffffff\n", [4]uint32{1000, 1001, 1002, 1003}, 0x1fffeffffff, true},
		{"Uid:\t0\t0\t0\t0\nCapEff:\t0000000000000000\n", [4]uint32{}, 0, true},
		{"Uid:\t0\t0\t0\nCapEff:\tzz\n", [4]uint32{}, 0, false},
		{"Name:\tx\n", [4]uint32{}, 0, false},
	}
	for _, tt := range tests {
		uids, err1 := ParseStatusUIDs([]byte(tt.status))
		capEff, err2 := ParseCapEff([]byte(tt.status))
		if tt.ok != (err1 == nil && err2 == nil) || tt.ok && (uids != tt.uids || capEff != tt.capEff) {
			t.Errorf("%q: %v %v %#x %v", tt.status, uids, err1, capEff, err2)
		}
	}
}

func TestParseMapsErrors(t *testing.T) {
	for _, in := range []string{
		"zzzz-1000 r-xp 00000000 00:00 0 [vdso]\n",
		"2000-1000 r-xp 00000000 00:00 0 [vdso]\n",
		"1000 r-xp 00000000 00:00 0\n",
		"1000-2000 r-xp\n",
	} {
		if _, err := ParseMaps([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseMaps(%q): %v", in, err)
		}
	}
	m, err := ParseMaps([]byte("1000-2000 r--p 00000000 00:00 0 [vvar]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := VDSOLayout(m); !errors.Is(err, ErrNoVDSO) {
		t.Errorf("no [vdso]: %v", err)
	}
}

// TestCompat32ELF checks the generated probe executables with debug/elf.
func TestCompat32ELF(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		machine elf.Machine
		order   binary.ByteOrder
	}{
		{"i386", i386ExitELF(), elf.EM_386, binary.LittleEndian},
		{"ppc32", ppc32ExitELF(), elf.EM_PPC, binary.BigEndian},
	}
	for _, tt := range tests {
		f, err := elf.NewFile(bytes.NewReader(tt.b))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if f.Class != elf.ELFCLASS32 || f.Machine != tt.machine || f.ByteOrder != tt.order || f.Type != elf.ET_EXEC {
			t.Errorf("%s: %v %v %v %v", tt.name, f.Class, f.Machine, f.ByteOrder, f.Type)
		}
		if len(f.Progs) != 1 || f.Progs[0].Type != elf.PT_LOAD || f.Progs[0].Filesz != uint64(len(tt.b)) {
			t.Fatalf("%s: program headers %+v", tt.name, f.Progs)
		}
		if f.Entry != f.Progs[0].Vaddr+84 || f.Progs[0].Vaddr%f.Progs[0].Align != 0 {
			t.Errorf("%s: entry %#x vaddr %#x align %#x", tt.name, f.Entry, f.Progs[0].Vaddr, f.Progs[0].Align)
		}
	}
}

// kernelConfig returns CONFIG_name from /proc/config.gz ("y", "m", "" when
// unset), or skips when the kernel does not expose its configuration.
func kernelConfig(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		t.Skipf("no /proc/config.gz to cross-check %s: %v", name, err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(z)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CONFIG_"+name+"="); ok {
			return v
		}
	}
	return ""
}

// TestProbeLive runs Probe on this host and checks each answer against an
// independent source: ld.so's LD_SHOW_AUXV, the kernel configuration, a
// 32-bit program from the system compiler, and setrlimit.
func TestProbeLive(t *testing.T) {
	h, notes, err := ProbeWithNotes()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("caps %+v notes %v", h, notes)
	if h.PageSize != uint64(os.Getpagesize()) {
		t.Errorf("page size %d, os says %d", h.PageSize, os.Getpagesize())
	}
	wantArch := map[string]image.Arch{"amd64": image.Arch_ARCH_AMD64, "ppc64le": image.Arch_ARCH_PPC64LE, "ppc64": image.Arch_ARCH_PPC64}[runtime.GOARCH]
	if h.Arch != wantArch {
		t.Errorf("arch %v, want %v", h.Arch, wantArch)
	}
	if h.VDSO == nil || len(h.VDSO.Sha256) != 32 || h.VDSO.VdsoSize == 0 {
		t.Errorf("vdso identity %v (%s)", h.VDSO, notes[FeatureVDSO])
	}
	if n := len(h.DirtyTrackers); n == 0 || h.DirtyTrackers[n-1] != TrackerHash {
		t.Errorf("dirty trackers %v: hash must come last", h.DirtyTrackers)
	}

	t.Run("ld.so", func(t *testing.T) {
		cmd := exec.Command("/bin/true")
		cmd.Env = append(os.Environ(), "LD_SHOW_AUXV=1")
		out, err := cmd.Output()
		if err != nil || len(out) == 0 {
			t.Skipf("LD_SHOW_AUXV gives nothing here: %v", err)
		}
		got := map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok {
				got[k] = strings.TrimSpace(v)
			}
		}
		hex := func(s string) uint64 {
			n, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
			if err != nil {
				t.Skipf("LD_SHOW_AUXV prints %q symbolically", s)
			}
			return n
		}
		if v := hex(got["AT_HWCAP"]); v != h.HWCap {
			t.Errorf("AT_HWCAP %#x, ld.so says %#x", h.HWCap, v)
		}
		if v := hex(got["AT_HWCAP2"]); v != h.HWCap2 {
			t.Errorf("AT_HWCAP2 %#x, ld.so says %#x", h.HWCap2, v)
		}
		if got["AT_PAGESZ"] != strconv.FormatUint(h.PageSize, 10) {
			t.Errorf("AT_PAGESZ %d, ld.so says %s", h.PageSize, got["AT_PAGESZ"])
		}
		if got["AT_PLATFORM"] != h.Platform {
			t.Errorf("AT_PLATFORM %q, ld.so says %q", h.Platform, got["AT_PLATFORM"])
		}
	})

	t.Run("soft-dirty", func(t *testing.T) {
		has := kernelConfig(t, "MEM_SOFT_DIRTY") == "y"
		if got := hasTracker(h, TrackerSoftDirty); got != has {
			t.Errorf("soft-dirty %v, CONFIG_MEM_SOFT_DIRTY=%v (%s)", got, has, notes[FeatureSoftDirty])
		}
	})

	t.Run("uffd-wp", func(t *testing.T) {
		if kernelConfig(t, "HAVE_ARCH_USERFAULTFD_WP") != "y" || kernelConfig(t, "USERFAULTFD") != "y" {
			if hasTracker(h, TrackerUffdWP) {
				t.Error("uffd-wp found on a kernel configured without it")
			}
			return
		}
		var uts unix.Utsname
		unix.Uname(&uts)
		kv, _ := ParseKernelRelease(unix.ByteSliceToString(uts.Release[:]))
		if kv.AtLeast(6, 7) && !hasTracker(h, TrackerUffdWP) {
			t.Errorf("uffd-wp missing on a %v kernel with USERFAULTFD_WP: %s", kv, notes[FeatureUffdWP])
		}
	})

	t.Run("compat32", func(t *testing.T) {
		if runtime.GOARCH != "amd64" {
			t.Skip("cross-check with gcc -m32 on amd64 only")
		}
		if kernelConfig(t, "IA32_EMULATION") != "y" && h.Compat32 {
			t.Fatal("compat32 on a kernel without IA32_EMULATION")
		}
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			t.Skip("no gcc to build an independent 32-bit program (package gcc-multilib)")
		}
		dir := t.TempDir()
		src := filepath.Join(dir, "t.c")
		os.WriteFile(src, []byte("int main(void){return 7;}\n"), 0o644)
		if out, err := exec.Command(gcc, "-m32", "-static", "-o", filepath.Join(dir, "t32"), src).CombinedOutput(); err != nil {
			t.Skipf("gcc -m32 cannot build here (package gcc-multilib): %v\n%s", err, out)
		}
		err = exec.Command(filepath.Join(dir, "t32")).Run()
		var ee *exec.ExitError
		runs := errors.As(err, &ee) && ee.ExitCode() == 7
		if runs != h.Compat32 {
			t.Errorf("compat32 %v, but a gcc -m32 program runs=%v (%v); probe note: %s", h.Compat32, runs, err, notes[FeatureCompat32])
		}
	})

	t.Run("cap_sys_resource", func(t *testing.T) {
		// Raising a hard limit needs CAP_SYS_RESOURCE.
		var old unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			t.Fatal(err)
		}
		if old.Max == unix.RLIM_INFINITY {
			t.Skip("hard RLIMIT_NOFILE is unlimited")
		}
		raised := unix.Rlimit{Cur: old.Cur, Max: old.Max + 1}
		err := unix.Setrlimit(unix.RLIMIT_NOFILE, &raised)
		if err == nil {
			unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
		}
		if can := err == nil; can != h.CapSysResource {
			t.Errorf("CapSysResource %v, raising the hard limit: %v", h.CapSysResource, err)
		}
	})
}

func hasTracker(h *HostCaps, name string) bool {
	for _, t := range h.DirtyTrackers {
		if t == name {
			return true
		}
	}
	return false
}

func FuzzParseAuxv(f *testing.F) {
	for _, dir := range []string{"amd64", "ppc64le-power9", "ppc64-power9", "ppc64-qemu-user-power9"} {
		b, err := os.ReadFile(filepath.Join("testdata", "probe", dir, "auxv"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, strings.HasPrefix(dir, "ppc64-"), true)
	}
	f.Add([]byte{6, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0}, false, false)
	f.Fuzz(func(t *testing.T, b []byte, big, wide bool) {
		order := binary.ByteOrder(binary.LittleEndian)
		if big {
			order = binary.BigEndian
		}
		word := 4
		if wide {
			word = 8
		}
		e, err := ParseAuxv(b, order, word)
		if err != nil {
			return
		}
		if len(e)*2*word > len(b) {
			t.Fatalf("%d entries from %d bytes", len(e), len(b))
		}
		if c, err := CapsFromAuxv(e); err == nil && (c.PageSize == 0 || c.PageSize&(c.PageSize-1) != 0) {
			t.Fatalf("accepted page size %d", c.PageSize)
		}
	})
}

func FuzzParseMaps(f *testing.F) {
	for _, dir := range []string{"amd64", "ppc64le-power9"} {
		b, err := os.ReadFile(filepath.Join("testdata", "probe", dir, "maps"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMaps(b)
		if err != nil {
			return
		}
		for _, e := range m {
			if e.End < e.Start {
				t.Fatalf("range %x-%x accepted", e.Start, e.End)
			}
		}
		if _, size, layout, err := VDSOLayout(m); err == nil && len(layout) == 0 {
			t.Fatalf("vdso of size %d without layout", size)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	for _, dir := range []string{"amd64", "ppc64-power9"} {
		b, err := os.ReadFile(filepath.Join("testdata", "probe", dir, "status"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseCapEff(b)
		ParseStatusUIDs(b)
		ParseKernelRelease(string(b))
	})
}

// TestCompat32ELFRuns runs the generated 32-bit probes under qemu user
// emulation, so the ppc32 one is checked on an amd64 host too (and the
// i386 one on hosts whose kernel refuses 32-bit executables).
func TestCompat32ELFRuns(t *testing.T) {
	tests := []struct {
		qemu string
		elf  []byte
	}{
		{"qemu-i386", i386ExitELF()},
		{"qemu-ppc", ppc32ExitELF()},
	}
	for _, tt := range tests {
		t.Run(tt.qemu, func(t *testing.T) {
			qemu, err := exec.LookPath(tt.qemu)
			if err != nil {
				t.Skipf("no %s (Debian package qemu-user)", tt.qemu)
			}
			path := filepath.Join(t.TempDir(), "probe32")
			if err := os.WriteFile(path, tt.elf, 0o755); err != nil {
				t.Fatal(err)
			}
			err = exec.Command(qemu, path).Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != compat32ProbeStatus {
				t.Errorf("%s: %v, want exit %d", tt.qemu, err, compat32ProbeStatus)
			}
		})
	}
}

// powerHWCapNames are the names glibc's LD_SHOW_AUXV prints for POWER hwcap
// bits (arch/powerpc/include/uapi/asm/cputable.h).
var powerHWCapNames = map[string]uint64{
	"ppc32": 0x80000000, "ppc64": 0x40000000, "ppc601": 0x20000000, "altivec": 0x10000000,
	"fpu": 0x08000000, "mmu": 0x04000000, "4xxmac": 0x02000000, "ucache": 0x01000000,
	"spe": 0x00800000, "efpsingle": 0x00400000, "efpdouble": 0x00200000, "notb": 0x00100000,
	"power4": 0x00080000, "power5": 0x00040000, "power5+": 0x00020000, "cellbe": 0x00010000,
	"booke": 0x00008000, "smt": 0x00004000, "icachesnoop": 0x00002000, "arch_2_05": 0x00001000,
	"pa6t": 0x00000800, "dfp": 0x00000400, "power6x": 0x00000200, "arch_2_06": 0x00000100,
	"vsx": 0x00000080, "archpmu": 0x00000040, "true_le": 0x00000002, "ppcle": 0x00000001,
}

var powerHWCap2Names = map[string]uint64{
	"arch_2_07": 0x80000000, "htm": 0x40000000, "dscr": 0x20000000, "ebb": 0x10000000,
	"isel": 0x08000000, "tar": 0x04000000, "vcrypto": 0x02000000, "htm-nosc": 0x01000000,
	"arch_3_00": 0x00800000, "ieee128": 0x00400000, "darn": 0x00200000, "scv": 0x00100000,
	"htm-no-suspend": 0x00080000, "arch_3_1": 0x00040000, "mma": 0x00020000,
}

// TestQEMUUserSamples parses auxv bytes written by another implementation
// (QEMU's linux-user ELF loader, POWER9 big-endian and POWER10
// little-endian, captured with a cross-compiled C program) and checks them
// against glibc's LD_SHOW_AUXV of the same process.
func TestQEMUUserSamples(t *testing.T) {
	for _, tt := range []struct {
		dir  string
		arch image.Arch
	}{
		{"ppc64-qemu-user-power9", image.Arch_ARCH_PPC64},
		{"ppc64le-qemu-user-power10", image.Arch_ARCH_PPC64LE},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "probe", tt.dir, "auxv"))
			if err != nil {
				t.Fatal(err)
			}
			text, err := os.ReadFile(filepath.Join("testdata", "probe", tt.dir, "ld_show_auxv.txt"))
			if err != nil {
				t.Fatal(err)
			}
			order, word, _ := AuxvLayout(tt.arch)
			entries, err := ParseAuxv(raw, order, word)
			if err != nil {
				t.Fatal(err)
			}
			c, err := CapsFromAuxv(entries)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for _, line := range strings.Split(string(text), "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok {
					want[k] = strings.TrimSpace(v)
				}
			}
			bitsOf := func(names string, table map[string]uint64) uint64 {
				var v uint64
				for _, n := range strings.Fields(names) {
					b, ok := table[n]
					if !ok {
						t.Fatalf("unknown hwcap name %q", n)
					}
					v |= b
				}
				return v
			}
			if w := bitsOf(want["AT_HWCAP"], powerHWCapNames); c.HWCap != w {
				t.Errorf("AT_HWCAP %#x, ld.so says %#x (%s)", c.HWCap, w, want["AT_HWCAP"])
			}
			if w := bitsOf(want["AT_HWCAP2"], powerHWCap2Names); c.HWCap2 != w {
				t.Errorf("AT_HWCAP2 %#x, ld.so says %#x (%s)", c.HWCap2, w, want["AT_HWCAP2"])
			}
			if strconv.FormatUint(c.PageSize, 10) != want["AT_PAGESZ"] {
				t.Errorf("AT_PAGESZ %d, ld.so says %s", c.PageSize, want["AT_PAGESZ"])
			}
			for _, e := range entries {
				if e.Type == 9 /* AT_ENTRY */ && "0x"+strconv.FormatUint(e.Value, 16) != want["AT_ENTRY"] {
					t.Errorf("AT_ENTRY %#x, ld.so says %s", e.Value, want["AT_ENTRY"])
				}
			}
		})
	}
}
