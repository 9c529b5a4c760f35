package compat

import (
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/migrated/migrated/image"
)

const (
	// AT_HWCAP of a POWER9 and a POWER10 pseries guest.
	hwcapPower = PPCFeature32 | PPCFeature64 | PPCFeatureHasAltivec | PPCFeatureHasFPU | PPCFeatureHasMMU |
		PPCFeatureSMT | PPCFeatureIcacheSnoop | PPCFeatureArch205 | PPCFeatureHasDFP | PPCFeatureArch206 |
		PPCFeatureHasVSX | PPCFeatureTrueLE
	hwcap2Power9 = PPCFeature2Arch207 | PPCFeature2DSCR | PPCFeature2EBB | PPCFeature2ISEL | PPCFeature2TAR |
		PPCFeature2VecCrypto | PPCFeature2Arch300 | PPCFeature2HasIEEE128 | PPCFeature2DARN | PPCFeature2SCV
	hwcap2Power10 = hwcap2Power9 | PPCFeature2Arch31 | PPCFeature2MMA

	// AT_HWCAP of this amd64 development machine (CPUID.1 EDX).
	hwcapX86 = 0x178bebff
	// XCR0 with x87, SSE, AVX, AVX-512 and PKRU.
	xcr0AVX512 = XFeatureFP | XFeatureSSE | XFeatureYMM | XFeatureAVX512 | XFeaturePKRU
	xcr0AVX2   = XFeatureFP | XFeatureSSE | XFeatureYMM
)

func capBits(cs ...image.Cap) uint64 {
	var b uint64
	for _, c := range cs {
		b |= bit(c)
	}
	return b
}

func vdso(sum byte) *image.VDSOIdentity {
	return &image.VDSOIdentity{
		Sha256:   append([]byte{sum, 0xab}, make([]byte, 30)...),
		VdsoSize: 8192,
		Layout: []*image.SpecialMapping{
			{Name: "[vvar]", Offset: -16384, Size: 12288},
			{Name: "[vvar_vclock]", Offset: -4096, Size: 4096},
			{Name: "[vdso]", Offset: 0, Size: 8192},
		},
	}
}

func hostAMD64() *HostCaps {
	return &HostCaps{
		Arch: image.Arch_ARCH_AMD64, Endian: image.Endian_ENDIAN_LITTLE, PageSize: 4096,
		HWCap: hwcapX86, HWCap2: 0, Compat32: true, Run64: true, VDSO: vdso(1),
		Clone3SetTID: true, TimeNS: true, XStateFeatures: xcr0AVX512,
		Regsets: []string{RegsetPRStatus, RegsetFPRegs, RegsetXState},
	}
}

func hostPower(arch image.Arch, hwcap2 uint64, compat32 bool) *HostCaps {
	h := &HostCaps{
		Arch: arch, Endian: image.Endian_ENDIAN_LITTLE, PageSize: 65536,
		HWCap: hwcapPower, HWCap2: hwcap2, Compat32: compat32, Run64: true, VDSO: vdso(2),
		Clone3SetTID: true, TimeNS: true,
		Regsets: []string{RegsetPRStatus, RegsetFPRegs, RegsetVMX, RegsetVSX, RegsetPPR, RegsetDSCR, RegsetTAR, RegsetEBB, RegsetPMU},
	}
	if arch == image.Arch_ARCH_PPC64 {
		h.Endian = image.Endian_ENDIAN_BIG
	}
	return h
}

// Hosts of the decision matrix.
func hostP9LE() *HostCaps  { return hostPower(image.Arch_ARCH_PPC64LE, hwcap2Power9, false) }
func hostP10LE() *HostCaps { return hostPower(image.Arch_ARCH_PPC64LE, hwcap2Power10, false) }
func hostP9BE() *HostCaps  { return hostPower(image.Arch_ARCH_PPC64, hwcap2Power9, true) }

func taskAMD64() *image.Manifest {
	return &image.Manifest{
		Header: &image.Header{FormatVersion: 1, Arch: image.Arch_ARCH_AMD64, Endian: image.Endian_ENDIAN_LITTLE,
			WordSize: 8, Abi: image.ABI_ABI_SYSV_X86_64, PageSize: 4096, Vdso: vdso(1)},
		Capabilities:   capBits(image.Cap_CAP_FPU, image.Cap_CAP_SSE, image.Cap_CAP_AVX),
		Hwcap:          hwcapX86,
		FdKinds:        []image.FdKind{image.FdKind_FD_REGULAR, image.FdKind_FD_DEV_NULL},
		Tids:           []int32{4242, 4243},
		XstateFeatures: xcr0AVX2,
		Regsets:        []string{RegsetPRStatus, RegsetFPRegs, RegsetXState},
	}
}

func taskI386() *image.Manifest {
	m := taskAMD64()
	m.Header.Arch, m.Header.WordSize, m.Header.Abi = image.Arch_ARCH_I386, 4, image.ABI_ABI_SYSV_I386
	m.Header.Vdso = vdso(32) // the 32-bit vDSO: never the host's 64-bit one
	m.NeedsCompat = true
	return m
}

func taskPower(arch image.Arch, hwcap2 uint64) *image.Manifest {
	m := &image.Manifest{
		Header: &image.Header{FormatVersion: 1, Arch: arch, Endian: image.Endian_ENDIAN_LITTLE,
			WordSize: 8, Abi: image.ABI_ABI_PPC64_ELFV2, PageSize: 65536, Vdso: vdso(2)},
		Capabilities: capBits(image.Cap_CAP_FPU, image.Cap_CAP_VMX, image.Cap_CAP_VSX),
		Hwcap:        hwcapPower,
		Hwcap2:       hwcap2,
		FdKinds:      []image.FdKind{image.FdKind_FD_REGULAR},
		Tids:         []int32{300},
		Regsets:      []string{RegsetPRStatus, RegsetFPRegs, RegsetVMX, RegsetVSX},
	}
	switch arch {
	case image.Arch_ARCH_PPC64:
		m.Header.Endian, m.Header.Abi = image.Endian_ENDIAN_BIG, image.ABI_ABI_PPC64_ELFV1
	case image.Arch_ARCH_PPC32:
		m.Header.Endian, m.Header.Abi, m.Header.WordSize = image.Endian_ENDIAN_BIG, image.ABI_ABI_PPC32_SYSV, 4
		m.Header.Vdso = vdso(33)
		m.NeedsCompat = true
		m.Capabilities = capBits(image.Cap_CAP_FPU)
		m.Regsets = []string{RegsetPRStatus, RegsetFPRegs}
	}
	return m
}

func taskP9LE() *image.Manifest  { return taskPower(image.Arch_ARCH_PPC64LE, hwcap2Power9) }
func taskP10LE() *image.Manifest { return taskPower(image.Arch_ARCH_PPC64LE, hwcap2Power10) }
func taskPPC32() *image.Manifest { return taskPower(image.Arch_ARCH_PPC32, hwcap2Power9) }

type decideCase struct {
	name  string
	m     *image.Manifest
	h     *HostCaps
	kind  image.Verdict_Kind
	codes []string // reason codes, in any order
	steps []string // plan step codes, in any order
	// words must each appear in some message: the sentence names the cause.
	words []string
}

func with[T any](v T, f func(T)) T { f(v); return v }

var decideCases = []decideCase{
	// Accept.
	{name: "amd64 to amd64", m: taskAMD64(), h: hostAMD64(), kind: image.Verdict_ACCEPT},
	{name: "ppc64le POWER9 task to POWER10", m: taskP9LE(), h: hostP10LE(), kind: image.Verdict_ACCEPT},
	{name: "ppc64 BE ELFv1 to BE host", m: taskPower(image.Arch_ARCH_PPC64, hwcap2Power9), h: with(hostP9BE(), func(h *HostCaps) { h.VDSO = vdso(2) }),
		kind: image.Verdict_ACCEPT},
	{name: "x86 informational hwcap bits differ (ht, tm, pbe)",
		m: with(taskAMD64(), func(m *image.Manifest) { m.Hwcap |= 1<<28 | 1<<29 | 1<<31 }),
		h: with(hostAMD64(), func(h *HostCaps) { h.HWCap &^= 1<<28 | 1<<29 | 1<<31 }), kind: image.Verdict_ACCEPT},
	{name: "powerpc informational hwcap bits differ (SMT)", m: taskP9LE(),
		h: with(hostP9LE(), func(h *HostCaps) { h.HWCap &^= PPCFeatureSMT }), kind: image.Verdict_ACCEPT},
	{name: "task without a vDSO", m: with(taskAMD64(), func(m *image.Manifest) { m.Header.Vdso = &image.VDSOIdentity{} }),
		h: with(hostAMD64(), func(h *HostCaps) { h.VDSO = nil }), kind: image.Verdict_ACCEPT},

	// Translate.
	{name: "i386 task to amd64 with IA32 emulation", m: taskI386(), h: hostAMD64(), kind: image.Verdict_TRANSLATE,
		steps: []string{StepStub32, StepCompatRegsets, StepCompatLayouts, StepVDSO32}, words: []string{"int 0x80"}},
	{name: "ppc32 task to BE ppc64 COMPAT host", m: taskPPC32(), h: hostP9BE(), kind: image.Verdict_TRANSLATE,
		steps: []string{StepStub32, StepCompatRegsets, StepCompatLayouts, StepVDSO32}, words: []string{"192 bytes"}},
	{name: "64 KiB-page task to a 4 KiB-page host",
		m: with(taskP9LE(), func(m *image.Manifest) {}), h: with(hostP9LE(), func(h *HostCaps) { h.PageSize = 4096 }),
		kind: image.Verdict_TRANSLATE, steps: []string{StepPageSizeSmaller}, words: []string{"16 destination pages"}},
	{name: "single-threaded task, new PID allowed, no set_tid",
		m:    with(taskP9LE(), func(m *image.Manifest) { m.AllowNewIds = true }),
		h:    with(hostP9LE(), func(h *HostCaps) { h.Clone3SetTID = false }),
		kind: image.Verdict_TRANSLATE, steps: []string{StepNewPID}},

	// One reason each.
	{name: "format version", m: with(taskAMD64(), func(m *image.Manifest) { m.Header.FormatVersion = 2 }), h: hostAMD64(),
		kind: image.Verdict_REJECT, codes: []string{ReasonFormatVersion}, words: []string{"version 2"}},
	{name: "manifest: word size contradicts arch", m: with(taskAMD64(), func(m *image.Manifest) { m.Header.WordSize = 4 }), h: hostAMD64(),
		kind: image.Verdict_REJECT, codes: []string{ReasonManifest}, words: []string{"word size 4"}},
	{name: "manifest: no thread ids", m: with(taskAMD64(), func(m *image.Manifest) { m.Tids = nil }), h: hostAMD64(),
		kind: image.Verdict_REJECT, codes: []string{ReasonManifest}},
	{name: "manifest: VSX on x86", m: with(taskAMD64(), func(m *image.Manifest) { m.Capabilities |= bit(image.Cap_CAP_VSX) }), h: hostAMD64(),
		kind: image.Verdict_REJECT, codes: []string{ReasonManifest}, words: []string{"VSX"}},
	{name: "host caps: no page size", m: taskAMD64(), h: with(hostAMD64(), func(h *HostCaps) { h.PageSize = 0 }),
		kind: image.Verdict_REJECT, codes: []string{ReasonHostCaps}, words: []string{"page size"}},
	{name: "arch family", m: taskP9LE(), h: hostAMD64(), kind: image.Verdict_REJECT,
		codes: []string{ReasonArch, ReasonVDSO}, words: []string{"powerpc (ppc64le)", "x86 (amd64)"}},
	{name: "endianness: BE ELFv2 task to LE host",
		m: with(taskPower(image.Arch_ARCH_PPC64, hwcap2Power9), func(m *image.Manifest) { m.Header.Abi = image.ABI_ABI_PPC64_ELFV2 }),
		h: hostP9LE(), kind: image.Verdict_REJECT, codes: []string{ReasonEndianness}, words: []string{"big-endian", "little-endian"}},
	{name: "abi: ppc64le manifest claiming ELFv1",
		m: with(taskP9LE(), func(m *image.Manifest) { m.Header.Abi = image.ABI_ABI_PPC64_ELFV1 }), h: hostP9LE(),
		kind: image.Verdict_REJECT, codes: []string{ReasonABI}, words: []string{"ELFv1"}},
	{name: "no 64-bit", m: taskAMD64(), h: with(hostAMD64(), func(h *HostCaps) { h.Run64 = false }),
		kind: image.Verdict_REJECT, codes: []string{ReasonNo64Bit}},
	{name: "i386 task to amd64 without IA32 emulation", m: taskI386(), h: with(hostAMD64(), func(h *HostCaps) { h.Compat32 = false }),
		kind: image.Verdict_REJECT, codes: []string{ReasonNoCompat32}, words: []string{"32-bit", "IA32 emulation"}},
	{name: "page size: 4 KiB task to 64 KiB host",
		m: with(taskP9LE(), func(m *image.Manifest) { m.Header.PageSize = 4096 }), h: hostP9LE(),
		kind: image.Verdict_REJECT, codes: []string{ReasonPageSize}, words: []string{"4 KiB", "64 KiB"}},
	{name: "page size: not a power of two",
		m: with(taskAMD64(), func(m *image.Manifest) { m.Header.PageSize = 3000 }), h: hostAMD64(),
		kind: image.Verdict_REJECT, codes: []string{ReasonPageSize}},
	{name: "hwcap: x86 sse2 missing", m: taskAMD64(), h: with(hostAMD64(), func(h *HostCaps) { h.HWCap &^= 1 << 26 }),
		kind: image.Verdict_REJECT, codes: []string{ReasonHWCap}, words: []string{"X86_FEATURE_XMM2"}},
	{name: "hwcap: powerpc DFP missing", m: taskP9LE(), h: with(hostP9LE(), func(h *HostCaps) { h.HWCap &^= PPCFeatureHasDFP }),
		kind: image.Verdict_REJECT, codes: []string{ReasonHWCap}, words: []string{"PPC_FEATURE_HAS_DFP"}},
	{name: "hwcap2: x86 fsgsbase missing", m: with(taskAMD64(), func(m *image.Manifest) { m.Hwcap2 = 2 }), h: hostAMD64(),
		kind: image.Verdict_REJECT, codes: []string{ReasonHWCap2}, words: []string{"HWCAP2_FSGSBASE"}},
	{name: "vdso differs", m: taskAMD64(), h: with(hostAMD64(), func(h *HostCaps) { h.VDSO = vdso(9) }),
		kind: image.Verdict_REJECT, codes: []string{ReasonVDSO}},
	{name: "vdso same bytes, other layout", m: taskAMD64(),
		h:    with(hostAMD64(), func(h *HostCaps) { h.VDSO = vdso(1); h.VDSO.Layout[0].Offset = -20480 }),
		kind: image.Verdict_REJECT, codes: []string{ReasonVDSO}, words: []string{"[vvar]"}},
	{name: "vdso missing from manifest", m: with(taskAMD64(), func(m *image.Manifest) { m.Header.Vdso = nil }), h: hostAMD64(),
		kind: image.Verdict_REJECT, codes: []string{ReasonVDSO}},
	{name: "tm in flight", m: with(taskP9LE(), func(m *image.Manifest) { m.Capabilities |= bit(image.Cap_CAP_TM) }),
		h:    with(hostP9LE(), func(h *HostCaps) { h.HWCap2 |= PPCFeature2HTM; h.Regsets = append(h.Regsets, RegsetTM) }),
		kind: image.Verdict_REJECT, codes: []string{ReasonTMActive}},
	{name: "regset: EBB in use, host kernel offers no ebb regset",
		m:    with(taskP9LE(), func(m *image.Manifest) { m.Capabilities |= bit(image.Cap_CAP_EBB) }),
		h:    with(hostP9LE(), func(h *HostCaps) { h.Regsets = []string{RegsetVMX, RegsetVSX} }),
		kind: image.Verdict_REJECT, codes: []string{ReasonRegsetUnsupported}, words: []string{"EBB", "ebb register set"}},
	{name: "regset: VSX in use, destination CPU has none (hwcap and regset)",
		m:    with(taskP9LE(), func(m *image.Manifest) { m.Hwcap &^= PPCFeatureHasVSX }),
		h:    with(hostP9LE(), func(h *HostCaps) { h.HWCap &^= PPCFeatureHasVSX }),
		kind: image.Verdict_REJECT, codes: []string{ReasonRegsetUnsupported}, words: []string{"task uses VSX; destination CPU has none"}},
	{name: "regset: VSX of a 32-bit powerpc task", m: with(taskPPC32(), func(m *image.Manifest) { m.Capabilities |= bit(image.Cap_CAP_VSX) }),
		h: hostP9BE(), kind: image.Verdict_REJECT, codes: []string{ReasonRegsetUnsupported}, words: []string{"compat regset view"}},
	{name: "regset: unknown name", m: with(taskAMD64(), func(m *image.Manifest) { m.Regsets = append(m.Regsets, "zmm-future") }),
		h: hostAMD64(), kind: image.Verdict_REJECT, codes: []string{ReasonRegsetUnsupported}, words: []string{"zmm-future"}},
	{name: "regset: the arch package's names for the base sets", m: with(taskAMD64(), func(m *image.Manifest) { m.Regsets = []string{"gpr", "fpr", "xstate"} }),
		h: hostAMD64(), kind: image.Verdict_ACCEPT},
	{name: "regset: x86 watchpoints", m: with(taskAMD64(), func(m *image.Manifest) { m.Capabilities |= bit(image.Cap_CAP_WATCHPOINT) }),
		h: hostAMD64(), kind: image.Verdict_REJECT, codes: []string{ReasonRegsetUnsupported}, words: []string{"watchpoints"}},
	{name: "xstate: AVX-512 task to AVX2 host", m: with(taskAMD64(), func(m *image.Manifest) { m.XstateFeatures = xcr0AVX512 }),
		h:    with(hostAMD64(), func(h *HostCaps) { h.XStateFeatures = xcr0AVX2 }),
		kind: image.Verdict_REJECT, codes: []string{ReasonXState}, words: []string{"AVX-512 opmask", "PKRU"}},
	{name: "xstate: AVX in use, host advertises no XSAVE", m: taskAMD64(),
		h:    with(hostAMD64(), func(h *HostCaps) { h.XStateFeatures = 0 }),
		kind: image.Verdict_REJECT, codes: []string{ReasonXState}, words: []string{"AVX"}},
	{name: "fd kinds", m: with(taskAMD64(), func(m *image.Manifest) {
		m.FdKinds = append(m.FdKinds, image.FdKind_FD_SOCKET, image.FdKind_FD_SIGNALFD, image.FdKind_FD_SOCKET)
	}), h: hostAMD64(), kind: image.Verdict_REJECT, codes: []string{ReasonFdKind}, words: []string{"socket, signalfd"}},
	{name: "pid namespace: no set_tid, new ids not allowed", m: taskAMD64(),
		h:    with(hostAMD64(), func(h *HostCaps) { h.Clone3SetTID = false }),
		kind: image.Verdict_REJECT, codes: []string{ReasonPIDNamespace}},
	{name: "pid namespace: new ids allowed but two threads", m: with(taskAMD64(), func(m *image.Manifest) { m.AllowNewIds = true }),
		h:    with(hostAMD64(), func(h *HostCaps) { h.Clone3SetTID = false }),
		kind: image.Verdict_REJECT, codes: []string{ReasonPIDNamespace}, words: []string{"2 threads"}},
	{name: "timens", m: with(taskAMD64(), func(m *image.Manifest) { m.Capabilities |= bit(image.Cap_CAP_TIMENS) }),
		h: with(hostAMD64(), func(h *HostCaps) { h.TimeNS = false }), kind: image.Verdict_REJECT, codes: []string{ReasonTimeNS}},
	{name: "unknown capability bit", m: with(taskAMD64(), func(m *image.Manifest) { m.Capabilities |= 1 << 40 }), h: hostAMD64(),
		kind: image.Verdict_REJECT, codes: []string{ReasonCapability}, words: []string{"40"}},

	// Several reasons at once.
	{name: "ppc32 toward ppc64le: no compat and endianness", m: taskPPC32(), h: hostP9LE(),
		kind: image.Verdict_REJECT, codes: []string{ReasonNoCompat32, ReasonEndianness}, words: []string{"CONFIG_COMPAT"}},
	{name: "ppc64le task with HWCAP2 ARCH_3_1 toward POWER9", m: taskP10LE(), h: hostP9LE(),
		kind: image.Verdict_REJECT, codes: []string{ReasonHWCap2}, words: []string{"PPC_FEATURE2_ARCH_3_1", "PPC_FEATURE2_MMA"}},
	{name: "POWER10 task toward a POWER9 with another kernel", m: taskP10LE(),
		h:    with(hostP9LE(), func(h *HostCaps) { h.VDSO = vdso(7) }),
		kind: image.Verdict_REJECT, codes: []string{ReasonHWCap2, ReasonVDSO}},
	{name: "ppc64 ELFv1 toward ppc64le: endianness and ABI", m: taskPower(image.Arch_ARCH_PPC64, hwcap2Power9), h: hostP9LE(),
		kind: image.Verdict_REJECT, codes: []string{ReasonEndianness, ReasonABI}, words: []string{"function descriptors"}},
	{name: "everything wrong at once", m: with(taskAMD64(), func(m *image.Manifest) {
		m.Header.FormatVersion = 9
		m.Header.PageSize = 4096
		m.Capabilities |= bit(image.Cap_CAP_TIMENS)
		m.FdKinds = []image.FdKind{image.FdKind_FD_PIPE}
		m.XstateFeatures = xcr0AVX512
	}), h: with(hostAMD64(), func(h *HostCaps) {
		h.PageSize = 2 << 20
		h.VDSO = vdso(3)
		h.TimeNS = false
		h.Clone3SetTID = false
		h.XStateFeatures = xcr0AVX2
		h.Run64 = false
	}), kind: image.Verdict_REJECT, codes: []string{ReasonFormatVersion, ReasonPageSize, ReasonTimeNS, ReasonFdKind,
		ReasonXState, ReasonVDSO, ReasonPIDNamespace, ReasonNo64Bit}},

	// Missing inputs are reasons, never panics.
	{name: "nil manifest", m: nil, h: hostAMD64(), kind: image.Verdict_REJECT, codes: []string{ReasonManifest}},
	{name: "empty manifest", m: &image.Manifest{}, h: hostAMD64(), kind: image.Verdict_REJECT,
		codes: []string{ReasonManifest, ReasonFormatVersion, ReasonArch, ReasonPageSize, ReasonVDSO}},
	{name: "nil host", m: taskAMD64(), h: nil, kind: image.Verdict_REJECT,
		codes: []string{ReasonHostCaps, ReasonHostCaps, ReasonVDSO, ReasonPIDNamespace}},
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func stepCodes(v *image.Verdict) []string {
	var c []string
	for _, s := range v.GetTranslations() {
		c = append(c, StepCode(s))
	}
	return c
}

func TestDecide(t *testing.T) {
	for _, tc := range decideCases {
		t.Run(tc.name, func(t *testing.T) {
			v := Decide(tc.m, tc.h)
			all := NewReport(v).String()
			if v.GetKind() != tc.kind {
				t.Fatalf("kind %v, want %v\n%s", v.GetKind(), tc.kind, all)
			}
			if got, want := sorted(Codes(v)), sorted(tc.codes); !slices.Equal(got, want) {
				t.Errorf("codes %v, want %v\n%s", got, want, all)
			}
			if got, want := sorted(stepCodes(v)), sorted(tc.steps); !slices.Equal(got, want) {
				t.Errorf("plan %v, want %v\n%s", got, want, all)
			}
			for _, r := range v.GetReasons() {
				if r.GetMessage() == "" {
					t.Errorf("reason %s has no message", r.GetCode())
				}
			}
			for _, w := range tc.words {
				if !strings.Contains(all, w) {
					t.Errorf("no message says %q:\n%s", w, all)
				}
			}
			// Pure: the same inputs give the same verdict, and Decide
			// changed neither input.
			var m2 *image.Manifest
			if tc.m != nil {
				m2 = proto.Clone(tc.m).(*image.Manifest)
			}
			if v2 := Decide(m2, tc.h); !proto.Equal(v, v2) {
				t.Errorf("second decision differs:\n%v\n%v", v, v2)
			}
		})
	}
}

// TestDecideCoversEveryReason: the matrix has a row for every reason code.
func TestDecideCoversEveryReason(t *testing.T) {
	seen := map[string]bool{ReasonPIDTaken: true} // TestDecidePIDs
	for _, tc := range decideCases {
		for _, c := range tc.codes {
			seen[c] = true
		}
	}
	for _, r := range Reasons {
		if !seen[r.Code] {
			t.Errorf("no decision row raises %s", r.Code)
		}
	}
}

func TestDecidePIDs(t *testing.T) {
	taken := func(ids ...int32) func(int32) bool {
		return func(id int32) bool { return slices.Contains(ids, id) }
	}
	single := with(taskAMD64(), func(m *image.Manifest) { m.Tids = []int32{4242} })
	cases := []struct {
		name  string
		m     *image.Manifest
		inUse func(int32) bool
		kind  image.Verdict_Kind
		codes []string
		steps []string
		words []string
	}{
		{"all free", taskAMD64(), taken(1, 2), image.Verdict_ACCEPT, nil, nil, nil},
		{"pid taken", taskAMD64(), taken(4242), image.Verdict_REJECT, []string{ReasonPIDTaken}, nil, []string{"PID 4242"}},
		{"tid taken", taskAMD64(), taken(4242, 4243), image.Verdict_REJECT, []string{ReasonPIDTaken}, nil, []string{"4242, 4243"}},
		{"taken, new id allowed, single thread", with(proto.Clone(single).(*image.Manifest), func(m *image.Manifest) { m.AllowNewIds = true }),
			taken(4242), image.Verdict_TRANSLATE, nil, []string{StepNewPID}, nil},
		{"taken, new id not allowed, single thread", single, taken(4242), image.Verdict_REJECT, []string{ReasonPIDTaken}, nil, nil},
		{"other reasons kept", with(taskAMD64(), func(m *image.Manifest) { m.Header.FormatVersion = 7 }), taken(4243),
			image.Verdict_REJECT, []string{ReasonFormatVersion, ReasonPIDTaken}, nil, nil},
		{"no predicate", taskAMD64(), nil, image.Verdict_ACCEPT, nil, nil, nil},
		{"nil manifest", nil, taken(1), image.Verdict_REJECT, []string{ReasonManifest}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := DecidePIDs(tc.m, hostAMD64(), tc.inUse)
			all := NewReport(v).String()
			if v.GetKind() != tc.kind {
				t.Fatalf("kind %v, want %v\n%s", v.GetKind(), tc.kind, all)
			}
			if got, want := sorted(Codes(v)), sorted(tc.codes); !slices.Equal(got, want) {
				t.Errorf("codes %v, want %v\n%s", got, want, all)
			}
			if got, want := sorted(stepCodes(v)), sorted(tc.steps); !slices.Equal(got, want) {
				t.Errorf("plan %v, want %v\n%s", got, want, all)
			}
			for _, w := range tc.words {
				if !strings.Contains(all, w) {
					t.Errorf("no message says %q:\n%s", w, all)
				}
			}
		})
	}
}

// TestReasonCodesDocumented: every code is in docs/reason-codes.md, and the
// codes are unique and stable-looking (lower case, dashes).
func TestReasonTable(t *testing.T) {
	doc, err := os.ReadFile("../docs/reason-codes.md")
	if err != nil {
		t.Fatalf("read the reason-code documentation: %v", err)
	}
	seen := map[string]bool{}
	for _, r := range Reasons {
		if seen[r.Code] {
			t.Errorf("code %s listed twice", r.Code)
		}
		seen[r.Code] = true
		if strings.Trim(r.Code, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			t.Errorf("code %q: want lower case and dashes", r.Code)
		}
		if !strings.Contains(string(doc), "`"+r.Code+"`") {
			t.Errorf("docs/reason-codes.md does not document %s", r.Code)
		}
		if r.When == "" || r.Action == "" || r.Example == "" {
			t.Errorf("code %s: documentation incomplete", r.Code)
		}
	}
}

func TestReport(t *testing.T) {
	for _, tc := range []struct {
		v    *image.Verdict
		want string
	}{
		{nil, "reject"},
		{&image.Verdict{}, "reject"},
		{&image.Verdict{Kind: image.Verdict_ACCEPT}, "accept"},
		{Decide(taskI386(), hostAMD64()), "translate"},
		{Decide(taskPPC32(), hostP9LE()), "reject"},
	} {
		r := NewReport(tc.v)
		if r.Verdict != tc.want {
			t.Errorf("verdict %q, want %q", r.Verdict, tc.want)
		}
		if r.Reasons == nil {
			t.Errorf("reasons must be an empty list, not null, in JSON")
		}
		if len(r.Reasons) != len(tc.v.GetReasons()) || len(r.Plan) != len(tc.v.GetTranslations()) {
			t.Errorf("report %+v lost parts of %v", r, tc.v)
		}
	}
}

// FuzzDecide: a manifest arrives from a peer as protobuf; whatever it
// holds, Decide answers and never panics, and a REJECT always has reasons.
func FuzzDecide(f *testing.F) {
	for _, tc := range decideCases {
		if tc.m == nil {
			continue
		}
		b, err := proto.Marshal(tc.m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
		f.Add(b, uint8(3))
	}
	hosts := []*HostCaps{nil, hostAMD64(), hostP9LE(), hostP9BE(), hostP10LE()}
	f.Fuzz(func(t *testing.T, b []byte, hi uint8) {
		m := &image.Manifest{}
		if err := proto.Unmarshal(b, m); err != nil {
			return
		}
		v := DecidePIDs(m, hosts[int(hi)%len(hosts)], func(id int32) bool { return id%2 == 0 })
		switch v.GetKind() {
		case image.Verdict_REJECT:
			if len(v.GetReasons()) == 0 {
				t.Fatal("REJECT without a reason")
			}
		case image.Verdict_TRANSLATE:
			if len(v.GetTranslations()) == 0 || len(v.GetReasons()) != 0 {
				t.Fatalf("TRANSLATE %v", v)
			}
		case image.Verdict_ACCEPT:
			if len(v.GetTranslations())+len(v.GetReasons()) != 0 {
				t.Fatalf("ACCEPT %v", v)
			}
		default:
			t.Fatalf("kind %v", v.GetKind())
		}
	})
}

// TestReasonExamples: the example message documented for each code is one
// Decide really writes (for a row of the matrix).
func TestReasonExamples(t *testing.T) {
	said := map[string]bool{}
	for _, tc := range decideCases {
		for _, r := range Decide(tc.m, tc.h).GetReasons() {
			said[r.GetMessage()] = true
		}
	}
	for _, r := range DecidePIDs(taskAMD64(), hostAMD64(), func(id int32) bool { return id == 4242 }).GetReasons() {
		said[r.GetMessage()] = true
	}
	for _, r := range Reasons {
		if !said[r.Example] {
			t.Errorf("%s: example %q is not a message of any decision row", r.Code, r.Example)
		}
	}
	if t.Failed() {
		for m := range said {
			t.Log(m)
		}
	}
}

// BenchmarkDecide: the rebalancer runs Decide for every task and candidate
// node, so its cost matters: an accept (every rule passes) and a reject
// with several reasons, side by side.
func BenchmarkDecide(b *testing.B) {
	for _, bc := range []struct {
		name string
		m    *image.Manifest
		h    *HostCaps
	}{
		{"accept-amd64", taskAMD64(), hostAMD64()},
		{"translate-i386", taskI386(), hostAMD64()},
		{"reject-ppc32-to-ppc64le", taskPPC32(), hostP9LE()},
		{"reject-power10-to-power9", taskP10LE(), hostP9LE()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Decide(bc.m, bc.h)
			}
		})
	}
}
