package powerpc

import (
	"encoding/binary"
	"fmt"

	"github.com/migrated/migrated/arch"
)

// Power is one POWER task arch. The three values are PPC64LE, PPC64 and
// PPC32; all are registered with package arch from init.
type Power struct {
	kind    arch.Kind
	name    string
	word    int // bytes per register in NT_PRSTATUS
	order   binary.ByteOrder
	abi     arch.ABI
	machine uint16
	// eflags is e_flags of the stub: the ELF ABI level that
	// SET_PERSONALITY reads ((e_flags & 3) == 2 means ELFv2,
	// arch/powerpc/include/asm/elf.h); 1 marks ELFv1 as binutils does.
	eflags  uint32
	regsets []arch.RegsetSpec
	sys     *arch.Syscalls
	gadget  []byte
}

var (
	// PPC64LE is a 64-bit little-endian task (ELFv2).
	PPC64LE = &Power{kind: arch.KindPPC64LE, name: "ppc64le", word: 8, order: binary.LittleEndian,
		abi: arch.ABIPPC64ELFv2, machine: arch.EM_PPC64, eflags: 2, regsets: regsets64, sys: &syscalls64}
	// PPC64 is a 64-bit big-endian task (ELFv1: an entry point is the
	// address of a function descriptor).
	PPC64 = &Power{kind: arch.KindPPC64, name: "ppc64", word: 8, order: binary.BigEndian,
		abi: arch.ABIPPC64ELFv1, machine: arch.EM_PPC64, eflags: 1, regsets: regsets64, sys: &syscalls64}
	// PPC32 is a 32-bit big-endian task on a 64-bit big-endian kernel
	// with CONFIG_COMPAT.
	PPC32 = &Power{kind: arch.KindPPC32, name: "ppc32", word: 4, order: binary.BigEndian,
		abi: arch.ABIPPC32SysV, machine: arch.EM_PPC, eflags: 0, regsets: regsets32, sys: &syscalls32}
)

var _ arch.Arch = (*Power)(nil)
var _ arch.Regs = (*regs)(nil)

func init() {
	for _, p := range []*Power{PPC64LE, PPC64, PPC32} {
		p.gadget = encode(p.order, insnSC)
		arch.Register(p)
	}
}

func (p *Power) Kind() arch.Kind             { return p.kind }
func (p *Power) Name() string                { return p.name }
func (p *Power) WordSize() int               { return p.word }
func (p *Power) ByteOrder() binary.ByteOrder { return p.order }
func (p *Power) ABI() arch.ABI               { return p.abi }
func (p *Power) ELFMachine() uint16          { return p.machine }
func (p *Power) Regsets() []arch.RegsetSpec  { return p.regsets }
func (p *Power) Syscalls() *arch.Syscalls    { return p.sys }

// Gadget is "sc" in the task's byte order. The engine looks for it in the
// [vdso] at 4-byte steps: every POWER vDSO function that falls back to the
// real syscall has one (arch/powerpc/kernel/vdso/*.S).
func (p *Power) Gadget() []byte { return p.gadget }

// GadgetPCOffset: at the syscall-exit stop nip is past "sc"; the kernel's
// own restart subtracts 4 (regs_add_return_ip(regs, -4) in
// check_syscall_restart, arch/powerpc/kernel/signal.c).
func (p *Power) GadgetPCOffset() int { return insnLen }

// GPRSize is ELF_NGREG (48, arch/powerpc/include/uapi/asm/elf.h) words:
// 384 bytes for a 64-bit task, 192 for a 32-bit one (elf_gregset_t32).
func (p *Power) GPRSize() int { return elfNGReg * p.word }

// MmapUsesPages: a ppc32 task maps with mmap2, whose offset is in
// 4096-byte units whatever the page size (compat_sys_mmap2 shifts it by 12,
// "This should remain 12 even if PAGE_SIZE changes",
// arch/powerpc/kernel/sys_ppc32.c; sys_mmap2 passes PAGE_SHIFT-12 to
// do_mmap2, arch/powerpc/kernel/syscalls.c). 64-bit tasks use mmap with a
// byte offset.
func (p *Power) MmapUsesPages() bool { return p.word == 4 }

func (p *Power) DecodeRegs(raw []byte) (arch.Regs, error) {
	if want := p.GPRSize(); len(raw) != want {
		return nil, fmt.Errorf("%s NT_PRSTATUS of %d bytes, want %d: %w", p.name, len(raw), want, arch.ErrRegsetSize)
	}
	return &regs{b: raw, w: p.word, o: p.order}, nil
}

// Register sets. NT_PRSTATUS is user_pt_regs; NT_PRFPREG is FPR[32] and
// FPSCR (ELF_NFPREG 33 doubles, 264 bytes); NT_PPC_VMX is VR[32], VSCR and
// VRSAVE (ELF_NVRREG 34 quadwords); NT_PPC_VSX is the second doublewords
// of VSR0-31 (ELF_NVSRHALFREG 32, arch/powerpc/include/uapi/asm/elf.h);
// DSCR, TAR and PPR are one u64 each and EBB is EBBRR, EBBHR, BESCR
// (arch/powerpc/kernel/ptrace/ptrace-view.c, native_regsets[]).
//
// The compat view a 64-bit tracer gets of a 32-bit task
// (compat_regsets[] in ptrace-view.c) has no VSX set (EINVAL, seen in
// e2e/power/testdata/regs-ppc32.txt), so ppc32 does not list it.
var (
	regsets64 = []arch.RegsetSpec{
		{Note: arch.NT_PRSTATUS, Name: "gpr", Required: true},
		{Note: arch.NT_PRFPREG, Name: "fpr", Required: true},
		{Note: arch.NT_PPC_VMX, Name: "vmx"},
		{Note: arch.NT_PPC_VSX, Name: "vsx"},
		{Note: arch.NT_PPC_DSCR, Name: "dscr"},
		{Note: arch.NT_PPC_TAR, Name: "tar"},
		{Note: arch.NT_PPC_PPR, Name: "ppr"},
		{Note: arch.NT_PPC_EBB, Name: "ebb"},
	}
	regsets32 = []arch.RegsetSpec{
		{Note: arch.NT_PRSTATUS, Name: "gpr", Required: true},
		{Note: arch.NT_PRFPREG, Name: "fpr", Required: true},
		{Note: arch.NT_PPC_VMX, Name: "vmx"},
		{Note: arch.NT_PPC_DSCR, Name: "dscr"},
		{Note: arch.NT_PPC_TAR, Name: "tar"},
		{Note: arch.NT_PPC_PPR, Name: "ppr"},
		{Note: arch.NT_PPC_EBB, Name: "ebb"},
	}
)

// powerSigLoop: r14 = the slot, r15 = the signal, r16 = the syscall number
// (sc clobbers r0, r3-r12, cr0, ctr and xer only). After "sc", CR0.SO set
// means r3 is a positive errno: the loop stores r3 and the CR.
//
//	loop: mr r0,r16; mr r3,r15; li r4,0; mr r5,r14; li r6,8; sc
//	      std r3,32(r14) (stw on ppc32); mfcr r7; stw r7,40(r14)
//	      addi r14,r14,48; addi r15,r15,1; cmpwi r15,65; bne loop; trap
var powerSigLoop = []uint32{
	0x7e008378, 0x7de37b78, 0x38800000, 0x7dc57378, 0x38c00008, 0x44000002,
	0xf86e0020, 0x7ce00026, 0x90ee0028, 0x39ce0030, 0x39ef0001, 0x2c0f0041,
	0x4082ffd0, 0x7fe00008,
}

const (
	insnSTDr3  = 0xf86e0020 // std r3,32(r14)
	insnSTWr3  = 0x906e0020 // stw r3,32(r14)
	sigLoopReg = 14         // r14, r15, r16
)

func (p *Power) SigactionLoop(set bool) ([]byte, uint64) {
	words := append([]uint32(nil), powerSigLoop...)
	if p.word == 4 {
		words[6] = insnSTWr3 // r3 is a word of 32 bits
	}
	if set {
		words[2], words[3] = 0x7dc47378, 0x38a00000 // act = the slot (mr r4,r14), oact = NULL (li r5,0)
	}
	code := encode(p.order, words...)
	return code, uint64(len(code) - 4) // NIP stays at the trap
}

func (p *Power) SetSigactionLoop(r arch.Regs, code, buf uint64) {
	x := r.(*regs)
	x.set(ptNIP, code)
	x.set(ptTrap, 0) // no restart of the stop we leave
	x.set(sigLoopReg, buf)
	x.set(sigLoopReg+1, 1)
	x.set(sigLoopReg+2, uint64(p.sys.RtSigaction))
}

func (p *Power) SigLoopErrno(slot []byte) arch.Errno {
	var r3 uint64
	if p.word == 4 {
		r3 = uint64(p.order.Uint32(slot[arch.SigLoopResult:]))
	} else {
		r3 = p.order.Uint64(slot[arch.SigLoopResult:])
	}
	if p.order.Uint32(slot[arch.SigLoopResult+8:])&crSO != 0 {
		return arch.Errno(r3)
	}
	return 0
}
