package powerpc

import (
	"encoding/binary"

	"github.com/migrated/migrated/arch"
)

// Instruction words (Power ISA 3.1, Book I).
const (
	insnLen = 4
	// insnSC is "sc" (sc LEV=0): primary opcode 17, bit 30 set.
	insnSC = 0x44000002
	// insnTrap is "tw 31,0,0", the unconditional trap ("trap"): a stub
	// that is ever let run on its own takes SIGTRAP and stops or dies
	// instead of doing anything.
	insnTrap = 0x7fe00008
)

func encode(o binary.ByteOrder, words ...uint32) []byte {
	b := make([]byte, 4*len(words))
	for i, w := range words {
		o.PutUint32(b[4*i:], w)
	}
	return b
}

// Stub code layout, relative to the start of the code (right after the ELF
// headers): restore/restore.go takes the gadget at code+4.
const (
	stubTrapOff = 0 // entry: trap
	stubSCOff   = 4 // the gadget
	// stubDescOff is where the ELFv1 entry descriptor lies: after the
	// trap that follows "sc" and one more trap as padding, 8-byte aligned
	// (the code starts at 120, a multiple of 8, in a 64-bit stub).
	stubDescOff = 16
)

// StubELF builds the static stub the destination starts the new process
// from: "trap; sc; trap" at base+headers. For ppc64le (ELFv2) and ppc32
// e_entry is the first trap. For ppc64 (ELFv1) e_entry is a function
// descriptor {entry, TOC, environment}, from which start_thread takes the
// entry point and r2 (arch/powerpc/kernel/process.c); its entry is that
// same trap.
func (p *Power) StubELF(base, pageSize uint64) ([]byte, error) {
	class := arch.ELFCLASS64
	if p.word == 4 {
		class = arch.ELFCLASS32
	}
	s := arch.StubImage{Class: class, Order: p.order, Machine: p.machine, Flags: p.eflags,
		Base: base, PageSize: pageSize}
	s.Code = encode(p.order, insnTrap, insnSC, insnTrap)
	if p.abi == arch.ABIPPC64ELFv1 {
		s.Code = append(s.Code, encode(p.order, insnTrap)...) // pad to stubDescOff
		desc := make([]byte, 24)
		p.order.PutUint64(desc, base+s.HeaderSize()+stubTrapOff) // entry
		// TOC and environment pointer: 0, the stub has no data.
		s.Code = append(s.Code, desc...)
		s.EntryOffset = stubDescOff
	}
	return s.Build()
}

// Instructions that make a thread take its vector state as in use.
const (
	// insnXXLOR0 is "xxlor vs0,vs0,vs0" (xxmr vs0,vs0): XX3-form, primary
	// opcode 60, extended opcode 146; VSX.
	insnXXLOR0 = 0xf0000490
	// insnVOR0 is "vor v0,v0,v0" (vmr v0,v0): VX-form, primary opcode 4,
	// extended opcode 1156; VMX (AltiVec).
	insnVOR0 = 0x10000484
)

// Offsets of the two gadgets in VectorUseCode.
const (
	VSXUseOffset = 0
	VMXUseOffset = 12
)

// VectorUseCode returns two injection gadgets, "xxlor vs0,vs0,vs0; sc;
// trap" at VSXUseOffset and "vor v0,v0,v0; sc; trap" at VMXUseOffset, in
// byte order o. Run as a syscall gadget in a thread whose MSR has VSX
// (VEC) off, the first instruction takes the VSX (AltiVec) unavailable
// exception: the kernel loads the thread's FP, VMX and VSX (VMX) state and
// sets thread.used_vsr and used_vr (load_up_vsx, load_up_altivec in
// arch/powerpc/kernel/vector.S). PTRACE_SETREGSET never sets those flags,
// and a thread without them loses VSX state at its next signal return
// (restore_sigcontext zeroes the low halves of vs0-vs31,
// arch/powerpc/kernel/signal_64.c) and does not have its VMX registers
// saved around a signal handler. The instructions copy vs0 and v0 onto
// themselves.
func VectorUseCode(o binary.ByteOrder) []byte {
	return encode(o, insnXXLOR0, insnSC, insnTrap, insnVOR0, insnSC, insnTrap)
}
