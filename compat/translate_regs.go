package compat

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/migrated/migrated/image"
)

// A 64-bit tracer sees a 32-bit tracee's registers in the compat layout:
// this file converts those register sets to and from named fields.

// Sizes of the compat register sets.
const (
	// SizeI386PRStatus is struct user_regs_struct32: 17 u32
	// (arch/x86/include/asm/user32.h).
	SizeI386PRStatus = 17 * 4
	// SizeI387FPRegs is struct user_i387_ia32_struct: 7 u32 + st_space[20]
	// (arch/x86/include/asm/user32.h).
	SizeI387FPRegs = 7*4 + 20*4
	// SizePPC32PRStatus is ELF_NGREG (48) u32 of the compat view: the
	// registers up to PT_REGS_COUNT (44) and zero padding
	// (arch/powerpc/kernel/ptrace/ptrace-view.c, gpr32_get_common).
	SizePPC32PRStatus = 48 * 4
)

// ErrSize is the sentinel of a buffer whose length does not fit the layout
// it is decoded as.
var ErrSize = errors.New("wrong size")

func sizeErr(what string, got, want int) error {
	return fmt.Errorf("decode %s: %d bytes, want %d: %w", what, got, want, ErrSize)
}

// I386Regs is NT_PRSTATUS of an i386 task as a 64-bit tracer reads it:
// struct user_regs_struct32, little-endian, in this order.
type I386Regs struct {
	EBX, ECX, EDX, ESI, EDI, EBP, EAX uint32
	DS, ES, FS, GS                    uint32
	OrigEAX                           uint32
	EIP, CS, EFLAGS, ESP, SS          uint32
}

func (r *I386Regs) fields() []*uint32 {
	return []*uint32{&r.EBX, &r.ECX, &r.EDX, &r.ESI, &r.EDI, &r.EBP, &r.EAX,
		&r.DS, &r.ES, &r.FS, &r.GS, &r.OrigEAX, &r.EIP, &r.CS, &r.EFLAGS, &r.ESP, &r.SS}
}

// DecodeI386Regs decodes a 68-byte NT_PRSTATUS of an i386 task.
func DecodeI386Regs(b []byte) (*I386Regs, error) {
	if len(b) != SizeI386PRStatus {
		return nil, sizeErr("i386 NT_PRSTATUS", len(b), SizeI386PRStatus)
	}
	r := &I386Regs{}
	for i, f := range r.fields() {
		*f = binary.LittleEndian.Uint32(b[i*4:])
	}
	return r, nil
}

// Encode returns the 68-byte NT_PRSTATUS for PTRACE_SETREGSET.
func (r *I386Regs) Encode() []byte {
	b := make([]byte, SizeI386PRStatus)
	for i, f := range r.fields() {
		binary.LittleEndian.PutUint32(b[i*4:], *f)
	}
	return b
}

// CPU is the engine's arch-independent view of these registers. The
// syscall number is orig_eax (-1 outside a syscall), its return eax, both
// sign-extended; the TLS word is the gs selector (the TLS base itself is a
// GDT entry, NT_386_TLS).
func (r *I386Regs) CPU() *image.CPU {
	return &image.CPU{
		Pc:         uint64(r.EIP),
		Sp:         uint64(r.ESP),
		SyscallNr:  int64(int32(r.OrigEAX)),
		SyscallRet: int64(int32(r.EAX)),
		Tls:        uint64(r.GS),
	}
}

// I387Regs is NT_PRFPREG of an i386 task as a 64-bit tracer reads it:
// struct user_i387_ia32_struct (the fsave layout), little-endian.
type I387Regs struct {
	CWD, SWD, TWD uint32 // control, status, tag words
	FIP, FCS      uint32 // last instruction pointer and its selector
	FOO, FOS      uint32 // last operand offset and its selector
	// ST are st0-st7, 10 bytes each (80-bit extended precision).
	ST [8][10]byte
}

// DecodeI387Regs decodes a 108-byte NT_PRFPREG of an i386 task.
func DecodeI387Regs(b []byte) (*I387Regs, error) {
	if len(b) != SizeI387FPRegs {
		return nil, sizeErr("i386 NT_PRFPREG", len(b), SizeI387FPRegs)
	}
	r := &I387Regs{}
	for i, f := range []*uint32{&r.CWD, &r.SWD, &r.TWD, &r.FIP, &r.FCS, &r.FOO, &r.FOS} {
		*f = binary.LittleEndian.Uint32(b[i*4:])
	}
	for i := range r.ST {
		copy(r.ST[i][:], b[28+i*10:])
	}
	return r, nil
}

// Encode returns the 108-byte NT_PRFPREG.
func (r *I387Regs) Encode() []byte {
	b := make([]byte, SizeI387FPRegs)
	for i, v := range []uint32{r.CWD, r.SWD, r.TWD, r.FIP, r.FCS, r.FOO, r.FOS} {
		binary.LittleEndian.PutUint32(b[i*4:], v)
	}
	for i := range r.ST {
		copy(b[28+i*10:], r.ST[i][:])
	}
	return b
}

// PPC32Regs is NT_PRSTATUS of a 32-bit powerpc task as a 64-bit tracer
// reads it: 48 big-endian u32, indexed as PT_* of
// arch/powerpc/include/uapi/asm/ptrace.h (PT_R0 0 ... PT_RESULT 43).
type PPC32Regs struct {
	GPR      [32]uint32
	NIP      uint32 // PT_NIP 32
	MSR      uint32 // PT_MSR 33 (the low word of the 64-bit MSR)
	OrigGPR3 uint32 // PT_ORIG_R3 34
	CTR      uint32 // PT_CTR 35
	Link     uint32 // PT_LNK 36
	XER      uint32 // PT_XER 37
	CCR      uint32 // PT_CCR 38
	// Softe is word 39: PT_SOFTE of the 64-bit kernel's pt_regs (PT_MQ on
	// a 32-bit kernel); ptrace shows 1.
	Softe  uint32
	Trap   uint32 // PT_TRAP 40
	DAR    uint32 // PT_DAR 41
	DSISR  uint32 // PT_DSISR 42
	Result uint32 // PT_RESULT 43
	// Pad is words 44-47, zero as the kernel writes them; kept so that a
	// set decodes and encodes to the same bytes.
	Pad [4]uint32
}

func (r *PPC32Regs) fields() []*uint32 {
	f := make([]*uint32, 0, 48)
	for i := range r.GPR {
		f = append(f, &r.GPR[i])
	}
	f = append(f, &r.NIP, &r.MSR, &r.OrigGPR3, &r.CTR, &r.Link, &r.XER, &r.CCR,
		&r.Softe, &r.Trap, &r.DAR, &r.DSISR, &r.Result)
	for i := range r.Pad {
		f = append(f, &r.Pad[i])
	}
	return f
}

// DecodePPC32Regs decodes a 192-byte NT_PRSTATUS of a 32-bit powerpc task.
func DecodePPC32Regs(b []byte) (*PPC32Regs, error) {
	if len(b) != SizePPC32PRStatus {
		return nil, sizeErr("ppc32 NT_PRSTATUS", len(b), SizePPC32PRStatus)
	}
	r := &PPC32Regs{}
	for i, f := range r.fields() {
		*f = binary.BigEndian.Uint32(b[i*4:])
	}
	return r, nil
}

// Encode returns the 192-byte NT_PRSTATUS.
func (r *PPC32Regs) Encode() []byte {
	b := make([]byte, SizePPC32PRStatus)
	for i, f := range r.fields() {
		binary.BigEndian.PutUint32(b[i*4:], *f)
	}
	return b
}

// trapSyscall is the vector of a system call (sc): 0xc00; the low bits of
// trap carry flags (arch/powerpc/include/asm/ptrace.h, TRAP()).
const trapSyscall = 0xc00

// CPU is the engine's arch-independent view: pc is nip, sp r1, the syscall
// number r0 when the thread stopped in a system call (trap 0xc00; -1
// otherwise), its return r3, TLS r2 (the ppc32 thread pointer).
func (r *PPC32Regs) CPU() *image.CPU {
	nr := int64(-1)
	if r.Trap&^0xf == trapSyscall {
		nr = int64(int32(r.GPR[0]))
	}
	return &image.CPU{
		Pc:         uint64(r.NIP),
		Sp:         uint64(r.GPR[1]),
		SyscallNr:  nr,
		SyscallRet: int64(int32(r.GPR[3])),
		Tls:        uint64(r.GPR[2]),
	}
}

// PPCFPRegs is NT_PRFPREG of a powerpc task: fpr[32] and fpscr, doubles in
// the task's byte order; the layout is the same for 32- and 64-bit tasks.
type PPCFPRegs struct {
	FPR   [32]uint64
	FPSCR uint64
}

// DecodePPCFPRegs decodes a 264-byte NT_PRFPREG in byte order o.
func DecodePPCFPRegs(o binary.ByteOrder, b []byte) (*PPCFPRegs, error) {
	if len(b) != SizePPCFPRegs {
		return nil, sizeErr("powerpc NT_PRFPREG", len(b), SizePPCFPRegs)
	}
	r := &PPCFPRegs{}
	for i := range r.FPR {
		r.FPR[i] = o.Uint64(b[i*8:])
	}
	r.FPSCR = o.Uint64(b[32*8:])
	return r, nil
}

// Encode returns the 264-byte NT_PRFPREG in byte order o.
func (r *PPCFPRegs) Encode(o binary.ByteOrder) []byte {
	b := make([]byte, SizePPCFPRegs)
	for i, v := range r.FPR {
		o.PutUint64(b[i*8:], v)
	}
	o.PutUint64(b[32*8:], r.FPSCR)
	return b
}
