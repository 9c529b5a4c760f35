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
