package compat

import (
	"strconv"
	"strings"

	"github.com/migrated/migrated/image"
)

// HWCapBit names one bit of AT_HWCAP or AT_HWCAP2.
type HWCapBit struct {
	Mask uint64
	// Name is the kernel's macro name, so a reader can grep the header.
	Name string
	// Desc says what the bit offers, for messages.
	Desc string
	// Informational bits describe the machine (SMT, cache geometry,
	// firmware compatibility) or facilities only the kernel can use; a
	// task cannot execute anything because of them, so Decide does not
	// demand them on the destination.
	Informational bool
}

// PowerPC AT_HWCAP and AT_HWCAP2 bits (arch/powerpc/include/uapi/asm/cputable.h).
const (
	PPCFeature32                   = 0x80000000 // PPC_FEATURE_32
	PPCFeature64                   = 0x40000000 // PPC_FEATURE_64
	PPCFeature601Instr             = 0x20000000 // PPC_FEATURE_601_INSTR
	PPCFeatureHasAltivec           = 0x10000000 // PPC_FEATURE_HAS_ALTIVEC
	PPCFeatureHasFPU               = 0x08000000 // PPC_FEATURE_HAS_FPU
	PPCFeatureHasMMU               = 0x04000000 // PPC_FEATURE_HAS_MMU
	PPCFeatureHas4xxmac            = 0x02000000 // PPC_FEATURE_HAS_4xxMAC
	PPCFeatureUnifiedCache         = 0x01000000 // PPC_FEATURE_UNIFIED_CACHE
	PPCFeatureHasSPE               = 0x00800000 // PPC_FEATURE_HAS_SPE
	PPCFeatureHasEFPSingle         = 0x00400000 // PPC_FEATURE_HAS_EFP_SINGLE
	PPCFeatureHasEFPDouble         = 0x00200000 // PPC_FEATURE_HAS_EFP_DOUBLE
	PPCFeatureNoTB                 = 0x00100000 // PPC_FEATURE_NO_TB
	PPCFeaturePower4               = 0x00080000 // PPC_FEATURE_POWER4
	PPCFeaturePower5               = 0x00040000 // PPC_FEATURE_POWER5
	PPCFeaturePower5Plus           = 0x00020000 // PPC_FEATURE_POWER5_PLUS
	PPCFeatureCell                 = 0x00010000 // PPC_FEATURE_CELL
	PPCFeatureBooke                = 0x00008000 // PPC_FEATURE_BOOKE
	PPCFeatureSMT                  = 0x00004000 // PPC_FEATURE_SMT
	PPCFeatureIcacheSnoop          = 0x00002000 // PPC_FEATURE_ICACHE_SNOOP
	PPCFeatureArch205              = 0x00001000 // PPC_FEATURE_ARCH_2_05
	PPCFeaturePA6T                 = 0x00000800 // PPC_FEATURE_PA6T
	PPCFeatureHasDFP               = 0x00000400 // PPC_FEATURE_HAS_DFP
	PPCFeaturePower6Ext            = 0x00000200 // PPC_FEATURE_POWER6_EXT
	PPCFeatureArch206              = 0x00000100 // PPC_FEATURE_ARCH_2_06
	PPCFeatureHasVSX               = 0x00000080 // PPC_FEATURE_HAS_VSX
	PPCFeaturePseriesPerfmonCompat = 0x00000040 // PPC_FEATURE_PSERIES_PERFMON_COMPAT
	PPCFeatureTrueLE               = 0x00000002 // PPC_FEATURE_TRUE_LE
	PPCFeaturePpcLE                = 0x00000001 // PPC_FEATURE_PPC_LE
	PPCFeature2Arch207             = 0x80000000 // PPC_FEATURE2_ARCH_2_07
	PPCFeature2HTM                 = 0x40000000 // PPC_FEATURE2_HTM
	PPCFeature2DSCR                = 0x20000000 // PPC_FEATURE2_DSCR
	PPCFeature2EBB                 = 0x10000000 // PPC_FEATURE2_EBB
	PPCFeature2ISEL                = 0x08000000 // PPC_FEATURE2_ISEL
	PPCFeature2TAR                 = 0x04000000 // PPC_FEATURE2_TAR
	PPCFeature2VecCrypto           = 0x02000000 // PPC_FEATURE2_VEC_CRYPTO
	PPCFeature2HTMNOSC             = 0x01000000 // PPC_FEATURE2_HTM_NOSC
	PPCFeature2Arch300             = 0x00800000 // PPC_FEATURE2_ARCH_3_00
	PPCFeature2HasIEEE128          = 0x00400000 // PPC_FEATURE2_HAS_IEEE128
	PPCFeature2DARN                = 0x00200000 // PPC_FEATURE2_DARN
	PPCFeature2SCV                 = 0x00100000 // PPC_FEATURE2_SCV
	PPCFeature2HTMNoSuspend        = 0x00080000 // PPC_FEATURE2_HTM_NO_SUSPEND
	PPCFeature2Arch31              = 0x00040000 // PPC_FEATURE2_ARCH_3_1
	PPCFeature2MMA                 = 0x00020000 // PPC_FEATURE2_MMA
)

// PowerPCHWCap is AT_HWCAP on powerpc: PPC_FEATURE_* of
// arch/powerpc/include/uapi/asm/cputable.h ("in AT_HWCAP").
var PowerPCHWCap = []HWCapBit{
	{PPCFeature32, "PPC_FEATURE_32", "32-bit mode", false},
	{PPCFeature64, "PPC_FEATURE_64", "64-bit mode", false},
	{PPCFeature601Instr, "PPC_FEATURE_601_INSTR", "PowerPC 601 instructions", false},
	{PPCFeatureHasAltivec, "PPC_FEATURE_HAS_ALTIVEC", "AltiVec/VMX", false},
	{PPCFeatureHasFPU, "PPC_FEATURE_HAS_FPU", "floating point", false},
	{PPCFeatureHasMMU, "PPC_FEATURE_HAS_MMU", "MMU", true},
	{PPCFeatureHas4xxmac, "PPC_FEATURE_HAS_4xxMAC", "4xx multiply-accumulate", false},
	{PPCFeatureUnifiedCache, "PPC_FEATURE_UNIFIED_CACHE", "unified cache", true},
	{PPCFeatureHasSPE, "PPC_FEATURE_HAS_SPE", "SPE", false},
	{PPCFeatureHasEFPSingle, "PPC_FEATURE_HAS_EFP_SINGLE", "embedded single-precision FP", false},
	{PPCFeatureHasEFPDouble, "PPC_FEATURE_HAS_EFP_DOUBLE", "embedded double-precision FP", false},
	// NO_TB says the CPU lacks a timebase: its absence on the destination
	// only adds a facility.
	{PPCFeatureNoTB, "PPC_FEATURE_NO_TB", "no timebase", true},
	{PPCFeaturePower4, "PPC_FEATURE_POWER4", "POWER4 instructions", false},
	{PPCFeaturePower5, "PPC_FEATURE_POWER5", "POWER5 instructions", false},
	{PPCFeaturePower5Plus, "PPC_FEATURE_POWER5_PLUS", "POWER5+ instructions", false},
	{PPCFeatureCell, "PPC_FEATURE_CELL", "Cell instructions", false},
	{PPCFeatureBooke, "PPC_FEATURE_BOOKE", "Book E", false},
	{PPCFeatureSMT, "PPC_FEATURE_SMT", "SMT", true},
	// ICACHE_SNOOP lets code skip icache flushes after writing code (JITs).
	{PPCFeatureIcacheSnoop, "PPC_FEATURE_ICACHE_SNOOP", "coherent icache", false},
	{PPCFeatureArch205, "PPC_FEATURE_ARCH_2_05", "ISA 2.05 (POWER6)", false},
	{PPCFeaturePA6T, "PPC_FEATURE_PA6T", "PA6T instructions", false},
	{PPCFeatureHasDFP, "PPC_FEATURE_HAS_DFP", "decimal floating point", false},
	{PPCFeaturePower6Ext, "PPC_FEATURE_POWER6_EXT", "POWER6 extended instructions", false},
	{PPCFeatureArch206, "PPC_FEATURE_ARCH_2_06", "ISA 2.06 (POWER7)", false},
	{PPCFeatureHasVSX, "PPC_FEATURE_HAS_VSX", "VSX", false},
	{PPCFeaturePseriesPerfmonCompat, "PPC_FEATURE_PSERIES_PERFMON_COMPAT", "pSeries performance-monitor compatibility", true},
	// TRUE_LE and PPC_LE describe little-endian modes; the task's byte
	// order is decided by ReasonEndianness.
	{PPCFeatureTrueLE, "PPC_FEATURE_TRUE_LE", "true little-endian mode", true},
	{PPCFeaturePpcLE, "PPC_FEATURE_PPC_LE", "PowerPC little-endian mode", true},
}

// PowerPCHWCap2 is AT_HWCAP2 on powerpc: PPC_FEATURE2_* of
// arch/powerpc/include/uapi/asm/cputable.h ("in AT_HWCAP2").
var PowerPCHWCap2 = []HWCapBit{
	{PPCFeature2Arch207, "PPC_FEATURE2_ARCH_2_07", "ISA 2.07 (POWER8)", false},
	{PPCFeature2HTM, "PPC_FEATURE2_HTM", "hardware transactional memory", false},
	{PPCFeature2DSCR, "PPC_FEATURE2_DSCR", "DSCR", false},
	{PPCFeature2EBB, "PPC_FEATURE2_EBB", "event-based branches", false},
	{PPCFeature2ISEL, "PPC_FEATURE2_ISEL", "isel instruction", false},
	{PPCFeature2TAR, "PPC_FEATURE2_TAR", "TAR register", false},
	{PPCFeature2VecCrypto, "PPC_FEATURE2_VEC_CRYPTO", "vector crypto (ISA 2.07)", false},
	{PPCFeature2HTMNOSC, "PPC_FEATURE2_HTM_NOSC", "system calls fail inside transactions", false},
	{PPCFeature2Arch300, "PPC_FEATURE2_ARCH_3_00", "ISA 3.0 (POWER9)", false},
	{PPCFeature2HasIEEE128, "PPC_FEATURE2_HAS_IEEE128", "IEEE 128-bit binary floating point", false},
	{PPCFeature2DARN, "PPC_FEATURE2_DARN", "darn random numbers", false},
	{PPCFeature2SCV, "PPC_FEATURE2_SCV", "scv system calls", false},
	{PPCFeature2HTMNoSuspend, "PPC_FEATURE2_HTM_NO_SUSPEND", "transactional memory without suspend", false},
	{PPCFeature2Arch31, "PPC_FEATURE2_ARCH_3_1", "ISA 3.1, POWER10", false},
	{PPCFeature2MMA, "PPC_FEATURE2_MMA", "matrix-multiply assist", false},
}

// X86HWCap is AT_HWCAP on x86: the kernel passes CPUID leaf 1 EDX
// (ELF_HWCAP is boot_cpu_data.x86_capability[CPUID_1_EDX],
// arch/x86/include/asm/elf.h); bit names are word 0 of
// arch/x86/include/asm/cpufeatures.h (X86_FEATURE_*, with the /proc/cpuinfo
// name). Bits 10 and 20 are reserved. Ring-0-only facilities and
// descriptions of the machine are informational: a task cannot use them.
var X86HWCap = []HWCapBit{
	{1 << 0, "X86_FEATURE_FPU", "fpu: x87 floating point", false},
	{1 << 1, "X86_FEATURE_VME", "vme: virtual-8086 extensions", true},
	{1 << 2, "X86_FEATURE_DE", "de: debugging extensions", true},
	{1 << 3, "X86_FEATURE_PSE", "pse: page size extensions", true},
	{1 << 4, "X86_FEATURE_TSC", "tsc: rdtsc", false},
	{1 << 5, "X86_FEATURE_MSR", "msr: rdmsr/wrmsr", true},
	{1 << 6, "X86_FEATURE_PAE", "pae: physical address extensions", true},
	{1 << 7, "X86_FEATURE_MCE", "mce: machine check exception", true},
	{1 << 8, "X86_FEATURE_CX8", "cx8: cmpxchg8b", false},
	{1 << 9, "X86_FEATURE_APIC", "apic: on-chip APIC", true},
	{1 << 11, "X86_FEATURE_SEP", "sep: sysenter/sysexit", false},
	{1 << 12, "X86_FEATURE_MTRR", "mtrr: memory type range registers", true},
	{1 << 13, "X86_FEATURE_PGE", "pge: page global enable", true},
	{1 << 14, "X86_FEATURE_MCA", "mca: machine check architecture", true},
	{1 << 15, "X86_FEATURE_CMOV", "cmov: conditional moves", false},
	{1 << 16, "X86_FEATURE_PAT", "pat: page attribute table", true},
	{1 << 17, "X86_FEATURE_PSE36", "pse36: 36-bit PSEs", true},
	{1 << 18, "X86_FEATURE_PN", "pn: processor serial number", true},
	{1 << 19, "X86_FEATURE_CLFLUSH", "clflush", false},
	{1 << 21, "X86_FEATURE_DS", "dts: debug store", true},
	{1 << 22, "X86_FEATURE_ACPI", "acpi: thermal control via MSR", true},
	{1 << 23, "X86_FEATURE_MMX", "mmx", false},
	{1 << 24, "X86_FEATURE_FXSR", "fxsr: fxsave/fxrstor", false},
	{1 << 25, "X86_FEATURE_XMM", "sse", false},
	{1 << 26, "X86_FEATURE_XMM2", "sse2", false},
	{1 << 27, "X86_FEATURE_SELFSNOOP", "ss: CPU self snoop", true},
	{1 << 28, "X86_FEATURE_HT", "ht: hyper-threading", true},
	{1 << 29, "X86_FEATURE_ACC", "tm: automatic clock control", true},
	{1 << 30, "X86_FEATURE_IA64", "ia64: IA-64 processor", true},
	{1 << 31, "X86_FEATURE_PBE", "pbe: pending break enable", true},
}

// X86HWCap2 is AT_HWCAP2 on x86: arch/x86/include/uapi/asm/hwcap2.h.
var X86HWCap2 = []HWCapBit{
	{1 << 0, "HWCAP2_RING3MWAIT", "ring3mwait: MONITOR/MWAIT in ring 3", false},
	{1 << 1, "HWCAP2_FSGSBASE", "fsgsbase: rd/wr fs/gs base instructions", false},
}

// hwcapTables returns the AT_HWCAP and AT_HWCAP2 tables of an arch family.
func hwcapTables(f family) (hwcap, hwcap2 []HWCapBit) {
	switch f {
	case familyX86:
		return X86HWCap, X86HWCap2
	case familyPowerPC:
		return PowerPCHWCap, PowerPCHWCap2
	}
	return nil, nil
}

// requiredHWCap is the part of a task's hwcap word the destination must
// also have: every bit that is not informational. Unknown bits are
// required: a bit this build cannot name may still select code.
func requiredHWCap(table []HWCapBit, word uint64) uint64 {
	for _, b := range table {
		if b.Informational {
			word &^= b.Mask
		}
	}
	return word
}

// HWCapNames names the bits of word by table, in the table's order (the
// kernel header's), then "unknown bit N" for bits the table does not know.
func HWCapNames(table []HWCapBit, word uint64) []string {
	var names []string
	for _, b := range table {
		if word&b.Mask != 0 {
			names = append(names, b.Name+" ("+b.Desc+")")
			word &^= b.Mask
		}
	}
	for bit := 0; bit < 64; bit++ {
		if word&(1<<bit) != 0 {
			names = append(names, "unknown bit "+strconv.Itoa(bit))
		}
	}
	return names
}

// XStateComponent names one x86 XSAVE state component, a bit of XCR0.
type XStateComponent struct {
	Bit  uint
	Name string
}

// X86XState names the user state components of XCR0: enum xfeature in
// arch/x86/include/asm/fpu/types.h (XFEATURE_FP = 0 ... XFEATURE_APX = 19).
// Supervisor components (PT, PASID, CET, LBR, HWP) live in IA32_XSS, not in
// XCR0, and never reach a task's XCR0.
var X86XState = []XStateComponent{
	{0, "x87"},                 // XFEATURE_FP
	{1, "SSE"},                 // XFEATURE_SSE
	{2, "AVX"},                 // XFEATURE_YMM
	{3, "MPX bound registers"}, // XFEATURE_BNDREGS
	{4, "MPX bound config"},    // XFEATURE_BNDCSR
	{5, "AVX-512 opmask"},      // XFEATURE_OPMASK
	{6, "AVX-512 ZMM_Hi256"},   // XFEATURE_ZMM_Hi256
	{7, "AVX-512 Hi16_ZMM"},    // XFEATURE_Hi16_ZMM
	{9, "PKRU"},                // XFEATURE_PKRU
	{17, "AMX tile config"},    // XFEATURE_XTILE_CFG
	{18, "AMX tile data"},      // XFEATURE_XTILE_DATA
	{19, "APX"},                // XFEATURE_APX
}

// XCR0 bits by component, from the same enum.
const (
	XFeatureFP       = 1 << 0
	XFeatureSSE      = 1 << 1
	XFeatureYMM      = 1 << 2
	XFeatureOpmask   = 1 << 5
	XFeatureZMMHi256 = 1 << 6
	XFeatureHi16ZMM  = 1 << 7
	XFeaturePKRU     = 1 << 9
	// XFeatureAVX512 is the three components AVX-512 needs together.
	XFeatureAVX512 = XFeatureOpmask | XFeatureZMMHi256 | XFeatureHi16ZMM
)

// XStateNames names the components of an XCR0 value.
func XStateNames(xcr0 uint64) []string {
	var names []string
	for bit := uint(0); bit < 64; bit++ {
		if xcr0&(1<<bit) == 0 {
			continue
		}
		name := "component " + strconv.Itoa(int(bit))
		for _, c := range X86XState {
			if c.Bit == bit {
				name = c.Name
			}
		}
		names = append(names, name)
	}
	return names
}

// capNames are the human names of the Cap bits, for messages.
func capName(c image.Cap) string {
	s := strings.TrimPrefix(c.String(), "CAP_")
	switch c {
	case image.Cap_CAP_VMX:
		return "VMX (AltiVec)"
	case image.Cap_CAP_WATCHPOINT:
		return "hardware watchpoints"
	case image.Cap_CAP_TM:
		return "transactional memory"
	}
	return s
}
