package compat_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/e2e/power"
	"github.com/migrated/migrated/image"
)

// Register dumps captured inside the QEMU POWER guests by e2e/power
// (TestPowerGuests with MIGRATED_E2E_POWER_UPDATE=1). The tracee,
// cprog/powercheck regs_child, loads known values: gpr14-29 =
// 0xA5A5_0000 | r<<8 | r (low words on a 32-bit task), ccr = 0x12345678,
// fpr5 = 0xF0F0000000000505.
const powerTestdata = "../e2e/power/testdata"

func loadPowerDump(t *testing.T, name string) []*image.Regset {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(powerTestdata, name+".txt"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s not captured yet (make e2e-power with MIGRATED_E2E_POWER_UPDATE=1 writes it)", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	sets, err := power.ParseRegDump(text)
	if err != nil {
		t.Fatal(err)
	}
	var out []*image.Regset
	for _, s := range sets {
		if s.Errno == 0 {
			out = append(out, &image.Regset{NoteType: s.Note, Name: compat.RegsetName(s.Note), Data: s.Data})
		}
	}
	return out
}

func find(sets []*image.Regset, nt uint32) []byte {
	for _, s := range sets {
		if s.GetNoteType() == nt {
			return s.GetData()
		}
	}
	return nil
}

// TestPowerDumpPPC32 decodes the NT_PRSTATUS a 64-bit tracer read from a
// 32-bit task in the big-endian COMPAT guest.
func TestPowerDumpPPC32(t *testing.T) {
	sets := loadPowerDump(t, "regs-ppc32")
	raw := find(sets, unix.NT_PRSTATUS)
	r, err := compat.DecodePPC32Regs(raw)
	if err != nil {
		t.Fatal(err)
	}
	for n := 14; n <= 29; n++ {
		if want := uint32(0xA5A50000 | n<<8 | n); r.GPR[n] != want {
			t.Errorf("r%d = %#x, want %#x", n, r.GPR[n], want)
		}
	}
	if r.CCR != 0x12345678 {
		t.Errorf("ccr = %#x, want 0x12345678", r.CCR)
	}
	if r.MSR&0x4000 == 0 { // MSR_PR: a user task
		t.Errorf("msr %#x: MSR_PR clear", r.MSR)
	}
	if string(r.Encode()) != string(raw) {
		t.Error("encode(decode(x)) != x")
	}
	caps, _, err := compat.Capabilities(image.Arch_ARCH_PPC32, sets)
	if err != nil {
		t.Fatal(err)
	}
	if caps&(1<<uint(image.Cap_CAP_FPU)) == 0 {
		t.Errorf("caps %#x: the task loaded fpr5, no FPU", caps)
	}
}

func capSet(cs ...image.Cap) uint64 {
	var b uint64
	for _, c := range cs {
		b |= 1 << uint(c)
	}
	return b
}

// TestPowerDumpCaps reads capabilities from the three dumps. regs_child
// sets VRSAVE, DSCR 0x11, TAR and a low SMT priority (or 1,1,1) and loads
// FP registers; the 32-bit task's VSX cannot be read (the compat view has
// no VSX set: the dump has EINVAL there).
func TestPowerDumpCaps(t *testing.T) {
	common := []image.Cap{image.Cap_CAP_FPU, image.Cap_CAP_VMX, image.Cap_CAP_DSCR, image.Cap_CAP_TAR, image.Cap_CAP_PPR}
	for _, tc := range []struct {
		name string
		arch image.Arch
		caps uint64
	}{
		{"regs-ppc64le", image.Arch_ARCH_PPC64LE, capSet(append(common, image.Cap_CAP_VSX)...)},
		{"regs-ppc64", image.Arch_ARCH_PPC64, capSet(append(common, image.Cap_CAP_VSX)...)},
		{"regs-ppc32", image.Arch_ARCH_PPC32, capSet(common...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sets := loadPowerDump(t, tc.name)
			caps, xstate, err := compat.Capabilities(tc.arch, sets)
			if err != nil {
				t.Fatal(err)
			}
			if caps != tc.caps || xstate != 0 {
				t.Errorf("caps %#x xstate %#x, want %#x 0", caps, xstate, tc.caps)
			}
		})
	}
}

// hostFromAuxv is a POWER host as its probe would see it, from an auxv
// captured in a guest of that kind.
func hostFromAuxv(t *testing.T, file string, arch image.Arch, endian image.Endian, compat32 bool) *compat.HostCaps {
	t.Helper()
	a := readAuxv(t, file, arch)
	return &compat.HostCaps{Arch: arch, Endian: endian, PageSize: a.PageSize, HWCap: a.HWCap, HWCap2: a.HWCap2,
		Compat32: compat32, Run64: true, Clone3SetTID: true, TimeNS: true, VDSO: testVDSO,
		Regsets: []string{compat.RegsetVMX, compat.RegsetVSX, compat.RegsetPPR, compat.RegsetDSCR, compat.RegsetTAR}}
}

var testVDSO = &image.VDSOIdentity{Sha256: []byte{1, 2, 3}, VdsoSize: 65536}

func readAuxv(t *testing.T, file string, arch image.Arch) compat.AuxvCaps {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(powerTestdata, file))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s not captured yet", file)
	}
	if err != nil {
		t.Fatal(err)
	}
	order, word, err := compat.AuxvLayout(arch)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := compat.ParseAuxv(b, order, word)
	if err != nil {
		t.Fatal(err)
	}
	a, err := compat.CapsFromAuxv(entries)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestPowerDecisions are the POWER decisions on captured data: the
// task image is made of a guest's register dump and auxv, the host of
// another guest's auxv.
func TestPowerDecisions(t *testing.T) {
	task := func(regs, auxv string, arch image.Arch, abi image.ABI) *image.Manifest {
		sets := loadPowerDump(t, regs)
		b, err := os.ReadFile(filepath.Join(powerTestdata, auxv))
		if err != nil {
			t.Skipf("%s: %v", auxv, err)
		}
		m, err := compat.NewManifest(&image.Task{
			Header:  &image.Header{FormatVersion: 1, Arch: arch, Abi: abi, Vdso: testVDSO},
			Threads: []*image.Thread{{Tid: 1234, Regsets: sets}},
			Mm:      &image.MM{Auxv: b},
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	p9LE := func() *compat.HostCaps {
		return hostFromAuxv(t, "auxv-ppc64le-power9.bin", image.Arch_ARCH_PPC64LE, image.Endian_ENDIAN_LITTLE, false)
	}
	p9BE := func() *compat.HostCaps {
		return hostFromAuxv(t, "auxv-ppc64-power9.bin", image.Arch_ARCH_PPC64, image.Endian_ENDIAN_BIG, true)
	}
	for _, tc := range []struct {
		name  string
		m     func() *image.Manifest
		h     func() *compat.HostCaps
		kind  image.Verdict_Kind
		codes []string
		words []string
	}{
		{"ppc64le POWER9 task to POWER9", func() *image.Manifest {
			return task("regs-ppc64le", "auxv-ppc64le-power9.bin", image.Arch_ARCH_PPC64LE, image.ABI_ABI_PPC64_ELFV2)
		}, p9LE, image.Verdict_ACCEPT, nil, nil},
		{"ppc64le POWER10 task (ARCH_3_1) to POWER9", func() *image.Manifest {
			return task("regs-ppc64le", "auxv-ppc64le-power10.bin", image.Arch_ARCH_PPC64LE, image.ABI_ABI_PPC64_ELFV2)
		}, p9LE, image.Verdict_REJECT, []string{compat.ReasonHWCap2}, []string{"PPC_FEATURE2_ARCH_3_1", "PPC_FEATURE2_MMA"}},
		{"ppc32 task to BE COMPAT host", func() *image.Manifest {
			return task("regs-ppc32", "auxv-ppc32-power9.bin", image.Arch_ARCH_PPC32, image.ABI_ABI_PPC32_SYSV)
		}, p9BE, image.Verdict_TRANSLATE, nil, []string{"stub32"}},
		{"ppc32 task to ppc64el", func() *image.Manifest {
			return task("regs-ppc32", "auxv-ppc32-power9.bin", image.Arch_ARCH_PPC32, image.ABI_ABI_PPC32_SYSV)
		}, p9LE, image.Verdict_REJECT, []string{compat.ReasonEndianness, compat.ReasonNoCompat32}, []string{"32-bit"}},
		{"ppc64 BE ELFv1 task to BE host", func() *image.Manifest {
			return task("regs-ppc64", "auxv-ppc64-power9.bin", image.Arch_ARCH_PPC64, image.ABI_ABI_PPC64_ELFV1)
		}, p9BE, image.Verdict_ACCEPT, nil, nil},
		{"ppc64 BE ELFv1 task to ppc64el", func() *image.Manifest {
			return task("regs-ppc64", "auxv-ppc64-power9.bin", image.Arch_ARCH_PPC64, image.ABI_ABI_PPC64_ELFV1)
		}, p9LE, image.Verdict_REJECT, []string{compat.ReasonABI, compat.ReasonEndianness}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := compat.Decide(tc.m(), tc.h())
			report := compat.NewReport(v).String()
			t.Logf("%s", report)
			codes := compat.Codes(v)
			slices.Sort(codes)
			if v.GetKind() != tc.kind || !slices.Equal(codes, tc.codes) {
				t.Errorf("%s\nwant %v %v", report, tc.kind, tc.codes)
			}
			for _, w := range tc.words {
				if !strings.Contains(report, w) {
					t.Errorf("report does not say %q:\n%s", w, report)
				}
			}
		})
	}
}
