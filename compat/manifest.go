package compat

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
)

// Register set names. A Regset in an image carries one of these names
// (RegsetName gives it from the note type), and HostCaps.Regsets lists the
// ones a host can restore for a task of its native arch. The prstatus and
// fpregs sets exist on every host of a family and are never listed.
const (
	RegsetPRStatus = "prstatus" // NT_PRSTATUS
	RegsetFPRegs   = "fpregs"   // NT_PRFPREG
	RegsetXFPRegs  = "xfpregs"  // NT_PRXFPREG (i386 fxsave)
	RegsetXState   = "xstate"   // NT_X86_XSTATE
	RegsetTLS      = "tls"      // NT_386_TLS (i386 GDT TLS entries)
	RegsetShadow   = "shstk"    // NT_X86_SHSTK
	RegsetVMX      = "vmx"      // NT_PPC_VMX
	RegsetSPE      = "spe"      // NT_PPC_SPE
	RegsetVSX      = "vsx"      // NT_PPC_VSX
	RegsetTAR      = "tar"      // NT_PPC_TAR
	RegsetPPR      = "ppr"      // NT_PPC_PPR
	RegsetDSCR     = "dscr"     // NT_PPC_DSCR
	RegsetEBB      = "ebb"      // NT_PPC_EBB
	RegsetPMU      = "pmu"      // NT_PPC_PMU
	RegsetPKey     = "pkey"     // NT_PPC_PKEY
	RegsetDEXCR    = "dexcr"    // NT_PPC_DEXCR
	RegsetHashKey  = "hashkeyr" // NT_PPC_HASHKEYR
	// RegsetTM names the whole group of NT_PPC_TM_* sets (the checkpointed
	// state of a transaction) in HostCaps.Regsets; in an image each one
	// has its own name ("tm-cgpr", ...).
	RegsetTM = "tm"
	// RegsetHWDebug is not a note: it says a host can restore hardware
	// watchpoints (x86 debug registers, powerpc DABR/DAWR through
	// PPC_PTRACE_SETHWDEBUG).
	RegsetHWDebug = "hwdebug"
)

// regsetNames maps note types (include/uapi/linux/elf.h) to names.
var regsetNames = map[uint32]string{
	unix.NT_PRSTATUS:     RegsetPRStatus,
	unix.NT_PRFPREG:      RegsetFPRegs,
	unix.NT_PRXFPREG:     RegsetXFPRegs,
	unix.NT_X86_XSTATE:   RegsetXState,
	unix.NT_386_TLS:      RegsetTLS,
	unix.NT_X86_SHSTK:    RegsetShadow,
	unix.NT_PPC_VMX:      RegsetVMX,
	unix.NT_PPC_SPE:      RegsetSPE,
	unix.NT_PPC_VSX:      RegsetVSX,
	unix.NT_PPC_TAR:      RegsetTAR,
	unix.NT_PPC_PPR:      RegsetPPR,
	unix.NT_PPC_DSCR:     RegsetDSCR,
	unix.NT_PPC_EBB:      RegsetEBB,
	unix.NT_PPC_PMU:      RegsetPMU,
	unix.NT_PPC_PKEY:     RegsetPKey,
	unix.NT_PPC_DEXCR:    RegsetDEXCR,
	unix.NT_PPC_HASHKEYR: RegsetHashKey,
	unix.NT_PPC_TM_CGPR:  "tm-cgpr",
	unix.NT_PPC_TM_CFPR:  "tm-cfpr",
	unix.NT_PPC_TM_CVMX:  "tm-cvmx",
	unix.NT_PPC_TM_CVSX:  "tm-cvsx",
	unix.NT_PPC_TM_SPR:   "tm-spr",
	unix.NT_PPC_TM_CTAR:  "tm-ctar",
	unix.NT_PPC_TM_CPPR:  "tm-cppr",
	unix.NT_PPC_TM_CDSCR: "tm-cdscr",
}

// RegsetName is the name a register set of note type nt carries in an
// image, or "" for a note type this build does not know.
func RegsetName(nt uint32) string { return regsetNames[nt] }

// regsetAliases are other names in use for the same sets: the arch package
// calls NT_PRSTATUS "gpr" and NT_PRFPREG "fpr".
var regsetAliases = map[string]string{"gpr": RegsetPRStatus, "fpr": RegsetFPRegs}

// knownRegsetNames is every name RegsetName returns, and the aliases.
var knownRegsetNames = func() map[string]bool {
	known := map[string]bool{}
	for _, n := range regsetNames {
		known[n] = true
	}
	for a := range regsetAliases {
		known[a] = true
	}
	return known
}()

// knownRegsetName reports whether name is one RegsetName can return, or an
// alias of one.
func knownRegsetName(name string) bool { return knownRegsetNames[name] }

func isTMNote(nt uint32) bool { return nt >= unix.NT_PPC_TM_CGPR && nt <= unix.NT_PPC_TM_CDSCR }

// ErrRegsetLayout is the sentinel of a register set whose size does not fit
// its arch, or whose contents contradict themselves.
var ErrRegsetLayout = errors.New("register set layout")

// RegsetError says which register set did not fit and why.
type RegsetError struct {
	Arch     image.Arch
	NoteType uint32
	Len      int
	Why      string
}

func (e *RegsetError) Error() string {
	return fmt.Sprintf("%s regset %#x (%s), %d bytes: %s", archName(e.Arch), e.NoteType, RegsetName(e.NoteType), e.Len, e.Why)
}

func (e *RegsetError) Unwrap() error { return ErrRegsetLayout }

// Register-set sizes as a 64-bit tracer gets them.
const (
	// SizeAMD64PRStatus is struct user_regs_struct, 27 u64
	// (arch/x86/include/asm/user_64.h).
	SizeAMD64PRStatus = 27 * 8
	// SizeAMD64FPRegs is struct user_i387_struct, the fxsave area
	// (arch/x86/include/asm/user_64.h).
	SizeAMD64FPRegs = 512
	// SizeXStateMin is the legacy fxsave area plus the xsave header
	// (arch/x86/include/asm/user.h, struct user_xstateregs).
	SizeXStateMin = 512 + 64
	// SizePPC64PRStatus is ELF_NGREG (48) u64: struct user_pt_regs padded
	// (arch/powerpc/include/uapi/asm/elf.h).
	SizePPC64PRStatus = 48 * 8
	// SizePPCFPRegs is ELF_NFPREG (33) doubles: fpr[32] + fpscr, for 32-
	// and 64-bit tasks alike.
	SizePPCFPRegs = 33 * 8
	// SizePPCVMX is 34 vector128: vr[32], vscr, vrsave (ptrace-altivec.c).
	SizePPCVMX = 34 * 16
	// SizePPCVSX is 32 doubles: the second doubleword of vsr0-31.
	SizePPCVSX = 32 * 8
	// SizePPCSPE is 35 u32: evr[32], acc (two words), spefscr.
	SizePPCSPE = 35 * 4
	// SizePPCEBB is ELF_NEBB (3) u64: ebbrr, ebbhr, bescr.
	SizePPCEBB = 3 * 8
)

// XSAVE offsets in NT_X86_XSTATE (arch/x86/include/asm/user.h): the kernel
// writes XCR0 into the first software-reserved word of the fxsave area
// (xstate_fx_sw[USER_XSTATE_XCR0_WORD], after fpx_space[58]) and the xsave
// header, whose first word is XSTATE_BV, follows the 512-byte legacy area.
const (
	xstateXCR0Offset    = 464
	xstateXStateBVOffst = 512
)

// MSR bits (arch/powerpc/include/asm/reg.h).
const (
	MSRFP  = 1 << 13 // MSR_FP_LG 13
	MSRVSX = 1 << 23 // MSR_VSX_LG 23
	MSRVEC = 1 << 25 // MSR_VEC_LG 25; on Book E the same bit is MSR_SPE
	MSRTSS = 1 << 33 // MSR_TS_S_LG 33: transaction suspended
	MSRTST = 1 << 34 // MSR_TS_T_LG 34: transactional
	// MSRTSMask is MSR_TS_MASK (MSR_TS_T | MSR_TS_S).
	MSRTSMask = MSRTSS | MSRTST
	// ptMSR is the index of msr in NT_PRSTATUS (PT_MSR,
	// arch/powerpc/include/uapi/asm/ptrace.h), in words of the task.
	ptMSR = 33
)

// defaultPPRs are the PPR values a thread has unless it changed its SMT
// priority: DEFAULT_PPR is PPR_PRIORITY << 50 (arch/powerpc/include/asm/
// processor.h), PPR_PRIORITY 3 on older kernels and 4 since it was raised.
var defaultPPRs = []uint64{0, 3 << 50, 4 << 50}

// Capabilities reads the Cap bits a thread's register sets show it uses,
// and for x86 the XCR0 the task may assume (its source's enabled XSAVE
// components: glibc picks code paths from them at start-up). Call it for
// every thread and OR the results.
//
// x86: CAP_FPU when NT_PRFPREG is present; from NT_X86_XSTATE, XCR0 (bytes
// 464..471) is returned as xstate and XSTATE_BV (offset 512), the
// components in non-initial state, gives CAP_SSE, CAP_AVX, CAP_AVX512 and
// CAP_PKEY (Linux's default PKRU is not the init value, so on a PKU host
// CAP_PKEY is always set).
//
// powerpc (the sets are in the task's byte order): MSR in NT_PRSTATUS
// (word 33; u64 for 64-bit tasks, u32 for 32-bit) gives FP, VMX, VSX and
// the transaction state; since the kernel turns facilities off lazily,
// non-zero contents of NT_PRFPREG, NT_PPC_VMX, NT_PPC_VSX and NT_PPC_SPE
// count as use too. DSCR and TAR count when non-zero, PPR when not one of
// the kernel's default priorities, EBB when present and non-zero (the kernel
// refuses it to a task that never used EBB), PKEY when present (the kernel
// offers it only when memory keys are enabled, and AMR then never has its
// reset value), TM when MSR[TS] is set or any NT_PPC_TM_* set was readable
// (the kernel refuses them outside a transaction).
//
// CAP_WATCHPOINT, CAP_RSEQ, CAP_ROBUST_LIST, CAP_SHARED_ANON and CAP_TIMENS
// do not come from register sets: the checkpoint code sets them.
func Capabilities(arch image.Arch, regsets []*image.Regset) (caps uint64, xstate uint64, err error) {
	switch arch {
	case image.Arch_ARCH_AMD64, image.Arch_ARCH_I386:
		return x86Capabilities(arch, regsets)
	case image.Arch_ARCH_PPC64LE, image.Arch_ARCH_PPC64, image.Arch_ARCH_PPC32:
		caps, err := powerpcCapabilities(arch, regsets)
		return caps, 0, err
	}
	return 0, 0, fmt.Errorf("capabilities of arch %v: %w", arch, ErrRegsetLayout)
}

func bit(c image.Cap) uint64 { return 1 << uint(c) }

func findRegset(regsets []*image.Regset, nt uint32) *image.Regset {
	for _, r := range regsets {
		if r.GetNoteType() == nt {
			return r
		}
	}
	return nil
}

func x86Capabilities(arch image.Arch, regsets []*image.Regset) (caps, xstate uint64, err error) {
	wantPR, wantFP := SizeAMD64PRStatus, SizeAMD64FPRegs
	if arch == image.Arch_ARCH_I386 {
		wantPR, wantFP = SizeI386PRStatus, SizeI387FPRegs
	}
	pr := findRegset(regsets, unix.NT_PRSTATUS)
	if pr == nil {
		return 0, 0, &RegsetError{arch, unix.NT_PRSTATUS, 0, "missing"}
	}
	if len(pr.GetData()) != wantPR {
		return 0, 0, &RegsetError{arch, unix.NT_PRSTATUS, len(pr.GetData()), fmt.Sprintf("want %d bytes", wantPR)}
	}
	if fp := findRegset(regsets, unix.NT_PRFPREG); fp != nil {
		if len(fp.GetData()) != wantFP {
			return 0, 0, &RegsetError{arch, unix.NT_PRFPREG, len(fp.GetData()), fmt.Sprintf("want %d bytes", wantFP)}
		}
		caps |= bit(image.Cap_CAP_FPU)
	}
	xs := findRegset(regsets, unix.NT_X86_XSTATE)
	if xs == nil {
		return caps, 0, nil
	}
	d := xs.GetData()
	if len(d) < SizeXStateMin {
		return 0, 0, &RegsetError{arch, unix.NT_X86_XSTATE, len(d), fmt.Sprintf("want at least %d bytes", SizeXStateMin)}
	}
	xcr0 := binary.LittleEndian.Uint64(d[xstateXCR0Offset:])
	bv := binary.LittleEndian.Uint64(d[xstateXStateBVOffst:])
	if xcr0&(XFeatureFP|XFeatureSSE) != XFeatureFP|XFeatureSSE {
		return 0, 0, &RegsetError{arch, unix.NT_X86_XSTATE, len(d), fmt.Sprintf("XCR0 %#x lacks x87 or SSE: not an xsave area", xcr0)}
	}
	if bv&^xcr0 != 0 {
		return 0, 0, &RegsetError{arch, unix.NT_X86_XSTATE, len(d), fmt.Sprintf("XSTATE_BV %#x has components outside XCR0 %#x", bv, xcr0)}
	}
	if bv&XFeatureSSE != 0 {
		caps |= bit(image.Cap_CAP_SSE)
	}
	if bv&XFeatureYMM != 0 {
		caps |= bit(image.Cap_CAP_AVX)
	}
	if bv&XFeatureAVX512 != 0 {
		caps |= bit(image.Cap_CAP_AVX512)
	}
	if bv&XFeaturePKRU != 0 {
		caps |= bit(image.Cap_CAP_PKEY)
	}
	return caps, xcr0, nil
}

func nonZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return true
		}
	}
	return false
}

func powerpcCapabilities(arch image.Arch, regsets []*image.Regset) (uint64, error) {
	var order binary.ByteOrder = binary.BigEndian
	if arch == image.Arch_ARCH_PPC64LE {
		order = binary.LittleEndian
	}
	var caps uint64
	pr := findRegset(regsets, unix.NT_PRSTATUS)
	if pr == nil {
		return 0, &RegsetError{arch, unix.NT_PRSTATUS, 0, "missing"}
	}
	d := pr.GetData()
	var msr uint64
	switch {
	case arch == image.Arch_ARCH_PPC32 && len(d) == SizePPC32PRStatus:
		msr = uint64(order.Uint32(d[ptMSR*4:]))
	case arch != image.Arch_ARCH_PPC32 && len(d) == SizePPC64PRStatus:
		msr = order.Uint64(d[ptMSR*8:])
	default:
		return 0, &RegsetError{arch, unix.NT_PRSTATUS, len(d), "wrong size for the task's word size (384 bytes for 64-bit, 192 for 32-bit)"}
	}
	spe := findRegset(regsets, unix.NT_PPC_SPE) != nil
	vmx := findRegset(regsets, unix.NT_PPC_VMX) != nil
	if msr&MSRFP != 0 {
		caps |= bit(image.Cap_CAP_FPU)
	}
	if msr&MSRVEC != 0 {
		if spe && !vmx {
			caps |= bit(image.Cap_CAP_SPE) // Book E: MSR_SPE is bit 25
		} else {
			caps |= bit(image.Cap_CAP_VMX)
		}
	}
	if msr&MSRVSX != 0 {
		caps |= bit(image.Cap_CAP_VSX)
	}
	if msr&MSRTSMask != 0 {
		caps |= bit(image.Cap_CAP_TM)
	}
	for _, r := range regsets {
		nt, d := r.GetNoteType(), r.GetData()
		sized := func(want int) error {
			if len(d) != want {
				return &RegsetError{arch, nt, len(d), fmt.Sprintf("want %d bytes", want)}
			}
			return nil
		}
		switch {
		case nt == unix.NT_PRFPREG:
			if err := sized(SizePPCFPRegs); err != nil {
				return 0, err
			}
			if nonZero(d) {
				caps |= bit(image.Cap_CAP_FPU)
			}
		case nt == unix.NT_PPC_VMX:
			if err := sized(SizePPCVMX); err != nil {
				return 0, err
			}
			// vr0-31 and vrsave; vscr is left out: the kernel starts
			// every task with VSCR[NJ] set.
			if nonZero(d[:32*16]) || nonZero(d[33*16:]) {
				caps |= bit(image.Cap_CAP_VMX)
			}
		case nt == unix.NT_PPC_VSX:
			if err := sized(SizePPCVSX); err != nil {
				return 0, err
			}
			if nonZero(d) {
				caps |= bit(image.Cap_CAP_VSX)
			}
		case nt == unix.NT_PPC_SPE:
			if err := sized(SizePPCSPE); err != nil {
				return 0, err
			}
			if nonZero(d) {
				caps |= bit(image.Cap_CAP_SPE)
			}
		case nt == unix.NT_PPC_DSCR, nt == unix.NT_PPC_TAR, nt == unix.NT_PPC_PPR:
			if err := sized(8); err != nil {
				return 0, err
			}
			v := order.Uint64(d)
			switch nt {
			case unix.NT_PPC_DSCR:
				if v != 0 {
					caps |= bit(image.Cap_CAP_DSCR)
				}
			case unix.NT_PPC_TAR:
				if v != 0 {
					caps |= bit(image.Cap_CAP_TAR)
				}
			case unix.NT_PPC_PPR:
				isDefault := false
				for _, p := range defaultPPRs {
					isDefault = isDefault || v == p
				}
				if !isDefault {
					caps |= bit(image.Cap_CAP_PPR)
				}
			}
		case nt == unix.NT_PPC_EBB:
			if err := sized(SizePPCEBB); err != nil {
				return 0, err
			}
			if nonZero(d) {
				caps |= bit(image.Cap_CAP_EBB)
			}
		case nt == unix.NT_PPC_PKEY:
			if len(d) == 0 {
				return 0, &RegsetError{arch, nt, 0, "empty"}
			}
			caps |= bit(image.Cap_CAP_PKEY)
		case isTMNote(nt):
			if len(d) > 0 {
				caps |= bit(image.Cap_CAP_TM)
			}
		}
	}
	return caps, nil
}
