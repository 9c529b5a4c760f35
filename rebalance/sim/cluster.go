package sim

import (
	"crypto/sha256"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
)

// AT_HWCAP and AT_HWCAP2 bits, from arch/powerpc/include/uapi/asm/cputable.h
// and arch/x86 (x86 has no meaningful AT_HWCAP2 here).
const (
	ppcFeature32           = 0x80000000
	ppcFeature64           = 0x40000000
	ppcFeatureHasAltivec   = 0x10000000
	ppcFeatureHasFPU       = 0x08000000
	ppcFeatureHasMMU       = 0x04000000
	ppcFeatureSMT          = 0x00004000
	ppcFeatureICacheSnoop  = 0x00002000
	ppcFeatureHasDFP       = 0x00000400
	ppcFeatureArch206      = 0x00000100
	ppcFeatureHasVSX       = 0x00000080
	ppcFeaturePSeriesPerf  = 0x00000040
	ppcFeatureTrueLE       = 0x00000002
	ppcFeature2Arch207     = 0x80000000
	ppcFeature2DSCR        = 0x20000000
	ppcFeature2EBB         = 0x10000000
	ppcFeature2ISEL        = 0x08000000
	ppcFeature2TAR         = 0x04000000
	ppcFeature2VecCrypto   = 0x02000000
	ppcFeature2Arch300     = 0x00800000
	ppcFeature2IEEE128     = 0x00400000
	ppcFeature2DARN        = 0x00200000
	ppcFeature2SCV         = 0x00100000
	ppcFeature2Arch31      = 0x00040000
	ppcFeature2MMA         = 0x00020000
	x86XStateX87SSEAVX     = 0x7   // x87 | SSE | AVX
	x86XStateAVX512        = 0xe0  // opmask | ZMM_Hi256 | Hi16_ZMM
	x86XStatePKRU          = 0x200 // PKRU
	pageSize64K            = 65536
	pageSize4K             = 4096
	powerHWCapBE           = ppcFeature32 | ppcFeature64 | ppcFeatureHasAltivec | ppcFeatureHasFPU | ppcFeatureHasMMU | ppcFeatureSMT | ppcFeatureICacheSnoop | ppcFeatureHasDFP | ppcFeatureArch206 | ppcFeatureHasVSX | ppcFeaturePSeriesPerf
	powerHWCapLE           = powerHWCapBE | ppcFeatureTrueLE // 0xdc0065c2, as a POWER9 ppc64le shows it
	power9HWCap2           = ppcFeature2Arch207 | ppcFeature2DSCR | ppcFeature2EBB | ppcFeature2ISEL | ppcFeature2TAR | ppcFeature2VecCrypto | ppcFeature2Arch300 | ppcFeature2IEEE128 | ppcFeature2DARN | ppcFeature2SCV
	power10HWCap2          = power9HWCap2 | ppcFeature2Arch31 | ppcFeature2MMA
	amd64HWCap             = 0x178bfbff // cpuid(1).edx as Linux reports AT_HWCAP on x86_64
	kernelLE               = "6.1.0-50-powerpc64le"
	kernelBE               = "6.1.0-be-compat"
	kernelBENoCompat       = "6.1.0-be"
	kernelAMD64            = "6.1.0-40-amd64"
	platformPower9, plat10 = "power9", "power10"
)

// NodeKind is one kind of host in the synthetic cluster.
type NodeKind struct {
	Name string
	// Share of the nodes of this kind.
	Share float64
	// CPUs choices (one drawn per node).
	CPUs []float64
	Caps *compat.HostCaps
	// Tasks started on a node of this kind: task kinds and their weights.
	Starts []TaskStart
}

// TaskStart is a kind of task started on a node kind, with its weight.
type TaskStart struct {
	Kind   string
	Weight float64
}

func vdsoOf(kernel string, words int) *image.VDSOIdentity {
	h := sha256.Sum256([]byte(fmt.Sprintf("vdso%d:%s", words, kernel)))
	size := uint64(8192)
	return &image.VDSOIdentity{Sha256: h[:], VdsoSize: size, Layout: []*image.SpecialMapping{
		{Name: "[vvar]", Offset: -16384, Size: 16384},
		{Name: "[vdso]", Offset: 0, Size: size},
	}}
}

func powerCaps(endian image.Endian, hwcap2 uint64, platform, kernel string, compat32 bool) *compat.HostCaps {
	arch, hwcap := image.Arch_ARCH_PPC64LE, uint64(powerHWCapLE)
	if endian == image.Endian_ENDIAN_BIG {
		arch, hwcap = image.Arch_ARCH_PPC64, powerHWCapBE
	}
	return &compat.HostCaps{
		Arch: arch, Endian: endian, PageSize: pageSize64K, HWCap: hwcap, HWCap2: hwcap2,
		Platform: platform, Compat32: compat32, Run64: true, KernelRelease: kernel,
		VDSO:          vdsoOf(kernel, 64),
		DirtyTrackers: []string{"soft-dirty", "hash"},
		TimeNS:        true, Clone3SetTID: true, CapCheckpointRestore: true,
		Regsets: []string{"prstatus", "fpregs", "vmx", "vsx", "ppr", "dscr", "tar", "ebb", "pmu"},
	}
}

func amd64Caps(xstate uint64) *compat.HostCaps {
	return &compat.HostCaps{
		Arch: image.Arch_ARCH_AMD64, Endian: image.Endian_ENDIAN_LITTLE, PageSize: pageSize4K,
		HWCap: amd64HWCap, Platform: "x86_64", Compat32: true, Run64: true, KernelRelease: kernelAMD64,
		VDSO:          vdsoOf(kernelAMD64, 64),
		DirtyTrackers: []string{"uffd-wp", "hash"},
		TimeNS:        true, Clone3SetTID: true, CapCheckpointRestore: true,
		XStateFeatures: xstate, Regsets: []string{"prstatus", "fpregs", "xstate"},
	}
}

// DefaultKinds is the mix of the synthetic cluster: mostly ppc64le POWER9
// and POWER10 (Debian's ppc64el kernel: 64 KiB pages, no CONFIG_COMPAT),
// big-endian ppc64 POWER9/POWER10 with and without CONFIG_COMPAT, and some
// amd64 with and without AVX-512.
func DefaultKinds() []NodeKind {
	return []NodeKind{
		{Name: "ppc64le-power10", Share: 0.28, CPUs: []float64{48, 96},
			Caps:   powerCaps(image.Endian_ENDIAN_LITTLE, power10HWCap2, plat10, kernelLE, false),
			Starts: []TaskStart{{"ppc64le-isa31", 0.5}, {"ppc64le", 0.5}}},
		{Name: "ppc64le-power9", Share: 0.34, CPUs: []float64{32, 64},
			Caps:   powerCaps(image.Endian_ENDIAN_LITTLE, power9HWCap2, platformPower9, kernelLE, false),
			Starts: []TaskStart{{"ppc64le", 1}}},
		{Name: "ppc64-power9-compat", Share: 0.12, CPUs: []float64{32},
			Caps:   powerCaps(image.Endian_ENDIAN_BIG, power9HWCap2, platformPower9, kernelBE, true),
			Starts: []TaskStart{{"ppc32", 0.5}, {"ppc64", 0.5}}},
		{Name: "ppc64-power9", Share: 0.10, CPUs: []float64{32},
			Caps:   powerCaps(image.Endian_ENDIAN_BIG, power9HWCap2, platformPower9, kernelBENoCompat, false),
			Starts: []TaskStart{{"ppc64", 1}}},
		{Name: "ppc64-power10", Share: 0.06, CPUs: []float64{48},
			Caps:   powerCaps(image.Endian_ENDIAN_BIG, power10HWCap2, plat10, kernelBENoCompat, false),
			Starts: []TaskStart{{"ppc64", 1}}},
		{Name: "amd64-avx512", Share: 0.05, CPUs: []float64{32, 64},
			Caps:   amd64Caps(x86XStateX87SSEAVX | x86XStateAVX512 | x86XStatePKRU),
			Starts: []TaskStart{{"amd64-avx512", 0.5}, {"amd64", 0.4}, {"i386", 0.1}}},
		{Name: "amd64-avx2", Share: 0.05, CPUs: []float64{32},
			Caps:   amd64Caps(x86XStateX87SSEAVX),
			Starts: []TaskStart{{"amd64", 0.85}, {"i386", 0.15}}},
	}
}

// NewManifest builds the capability manifest of a task of kind started on a
// host with caps h, as checkpoint would capture it there. Task kinds:
// "ppc64le" (started on POWER9, or on POWER10 in POWER9 mode),
// "ppc64le-isa31" (started on POWER10: needs ARCH_3_1 and MMA), "ppc64"
// (big-endian ELFv1), "ppc32" (needs CONFIG_COMPAT), "amd64",
// "amd64-avx512", "i386".
func NewManifest(kind string, h *compat.HostCaps, pid int32, threads int, rss uint64) (*image.Manifest, error) {
	m := &image.Manifest{
		Header: &image.Header{
			FormatVersion: 1, PageSize: h.PageSize, KernelRelease: h.KernelRelease, Pid: pid,
			Vdso: h.VDSO,
		},
		Hwcap: h.HWCap, Hwcap2: h.HWCap2, MemoryBytes: rss, Uid: 1000,
		FdKinds: []image.FdKind{image.FdKind_FD_REGULAR, image.FdKind_FD_DEV_NULL},
	}
	for i := 0; i < threads; i++ {
		m.Tids = append(m.Tids, pid+int32(i))
	}
	bit := func(cs ...image.Cap) uint64 {
		var b uint64
		for _, c := range cs {
			b |= 1 << uint(c)
		}
		return b
	}
	hd := m.Header
	switch kind {
	case "ppc64le", "ppc64le-isa31":
		hd.Arch, hd.Endian, hd.WordSize, hd.Abi = image.Arch_ARCH_PPC64LE, image.Endian_ENDIAN_LITTLE, 8, image.ABI_ABI_PPC64_ELFV2
		m.Capabilities = bit(image.Cap_CAP_FPU, image.Cap_CAP_VMX, image.Cap_CAP_VSX, image.Cap_CAP_RSEQ, image.Cap_CAP_ROBUST_LIST)
		m.Regsets = []string{"prstatus", "fpregs", "vmx", "vsx"}
		if kind == "ppc64le" {
			// Started on POWER9 (or on POWER10 under a POWER9
			// compatibility mode): no ISA 3.1 bits.
			m.Hwcap2 &^= ppcFeature2Arch31 | ppcFeature2MMA
		}
	case "ppc64":
		hd.Arch, hd.Endian, hd.WordSize, hd.Abi = image.Arch_ARCH_PPC64, image.Endian_ENDIAN_BIG, 8, image.ABI_ABI_PPC64_ELFV1
		m.Capabilities = bit(image.Cap_CAP_FPU, image.Cap_CAP_VMX, image.Cap_CAP_VSX, image.Cap_CAP_ROBUST_LIST)
		m.Regsets = []string{"prstatus", "fpregs", "vmx", "vsx"}
		m.Hwcap2 &^= ppcFeature2Arch31 | ppcFeature2MMA
	case "ppc32":
		hd.Arch, hd.Endian, hd.WordSize, hd.Abi = image.Arch_ARCH_PPC32, image.Endian_ENDIAN_BIG, 4, image.ABI_ABI_PPC32_SYSV
		m.NeedsCompat = true
		hd.Vdso = vdsoOf(h.KernelRelease, 32)
		m.Capabilities = bit(image.Cap_CAP_FPU, image.Cap_CAP_VMX, image.Cap_CAP_ROBUST_LIST)
		m.Regsets = []string{"prstatus", "fpregs", "vmx"}
		m.Hwcap &^= ppcFeature64
		m.Hwcap2 &^= ppcFeature2Arch31 | ppcFeature2MMA
	case "amd64", "amd64-avx512":
		hd.Arch, hd.Endian, hd.WordSize, hd.Abi = image.Arch_ARCH_AMD64, image.Endian_ENDIAN_LITTLE, 8, image.ABI_ABI_SYSV_X86_64
		m.Capabilities = bit(image.Cap_CAP_FPU, image.Cap_CAP_SSE, image.Cap_CAP_AVX, image.Cap_CAP_RSEQ, image.Cap_CAP_ROBUST_LIST)
		m.XstateFeatures = x86XStateX87SSEAVX
		if kind == "amd64-avx512" {
			m.Capabilities |= bit(image.Cap_CAP_AVX512)
			m.XstateFeatures = h.XStateFeatures
		}
		m.Regsets = []string{"prstatus", "fpregs", "xstate"}
	case "i386":
		hd.Arch, hd.Endian, hd.WordSize, hd.Abi = image.Arch_ARCH_I386, image.Endian_ENDIAN_LITTLE, 4, image.ABI_ABI_SYSV_I386
		m.NeedsCompat = true
		hd.Vdso = vdsoOf(h.KernelRelease, 32)
		m.Capabilities = bit(image.Cap_CAP_FPU, image.Cap_CAP_SSE, image.Cap_CAP_ROBUST_LIST)
		m.XstateFeatures = x86XStateX87SSEAVX
		m.Regsets = []string{"prstatus", "fpregs", "xstate"}
	default:
		return nil, fmt.Errorf("sim: unknown task kind %q", kind)
	}
	return m, nil
}

// lognormal draws exp(N(ln(median), sigma)).
func lognormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }
