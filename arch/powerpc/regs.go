package powerpc

import (
	"encoding/binary"
	"fmt"

	"github.com/migrated/migrated/arch"
)

// Word indices into struct user_pt_regs (PT_* in
// arch/powerpc/include/uapi/asm/ptrace.h). The same indices hold for the
// 32-bit compat view, with 4-byte words.
const (
	ptR0     = 0 // PT_R0: the syscall number on entry
	ptR1     = 1 // PT_R1: the stack pointer
	ptR2     = 2 // PT_R2: the thread pointer of a 32-bit task
	ptR3     = 3 // PT_R3: first argument and return value
	ptR13    = 13
	ptNIP    = 32 // PT_NIP
	ptMSR    = 33 // PT_MSR
	ptOrigR3 = 34 // PT_ORIG_R3: r3 at syscall entry, for restarts
	ptCTR    = 35 // PT_CTR
	ptLNK    = 36 // PT_LNK
	ptXER    = 37 // PT_XER
	ptCCR    = 38 // PT_CCR
	ptSOFTE  = 39 // PT_SOFTE (PT_MQ on 32-bit)
	ptTrap   = 40 // PT_TRAP: the interrupt vector that entered the kernel
	ptDAR    = 41 // PT_DAR
	ptDSISR  = 42 // PT_DSISR
	ptResult = 43 // PT_RESULT

	// elfNGReg is ELF_NGREG (arch/powerpc/include/uapi/asm/elf.h): the
	// regset is padded to 48 words.
	elfNGReg = 48
)

// Trap values (arch/powerpc/include/asm/interrupt.h, INTERRUPT_SYSCALL and
// INTERRUPT_SYSCALL_VECTORED; trap_is_syscall and trap_is_scv in
// arch/powerpc/include/asm/ptrace.h).
const (
	trapSC      = 0xc00  // entered through "sc"
	trapSCV     = 0x3000 // entered through "scv 0"
	trapProgram = 0x700  // program check: a "trap" instruction
	// trapNoRestart is bit 0 of the trap word: set_trap_norestart sets it
	// once do_signal has dealt with a syscall's restart, and
	// check_syscall_restart then leaves the registers alone
	// (TRAP_FLAGS_MASK is 0x1 on 64-bit kernels,
	// arch/powerpc/include/asm/ptrace.h). A tracer cannot change it:
	// set_trap keeps the flag bits (ptrace-view.c, set_user_trap).
	trapNoRestart = 0x1
)

// crSO is CR0[SO] in the ccr word: the error flag of a syscall made with
// "sc" (syscall_exit_prepare sets it with r3 = -r3 for an error,
// arch/powerpc/kernel/interrupt.c; system_call_common clears it on entry,
// arch/powerpc/kernel/interrupt_64.S). "scv" returns -errno in r3 instead.
const crSO = 0x10000000

// maxErrno is MAX_ERRNO (include/linux/err.h).
const maxErrno = 4095

// regs is an NT_PRSTATUS buffer of word size w in byte order o.
type regs struct {
	b []byte
	w int
	o binary.ByteOrder
}

func (r *regs) get(i int) uint64 {
	if r.w == 8 {
		return r.o.Uint64(r.b[i*8:])
	}
	return uint64(r.o.Uint32(r.b[i*4:]))
}

func (r *regs) set(i int, v uint64) {
	if r.w == 8 {
		r.o.PutUint64(r.b[i*8:], v)
		return
	}
	r.o.PutUint32(r.b[i*4:], uint32(v))
}

// signed reads register i as a signed long of the task.
func (r *regs) signed(i int) int64 {
	if r.w == 8 {
		return int64(r.get(i))
	}
	return int64(int32(r.get(i)))
}

func (r *regs) Bytes() []byte    { return r.b }
func (r *regs) Clone() arch.Regs { return &regs{b: append([]byte(nil), r.b...), w: r.w, o: r.o} }
func (r *regs) PC() uint64       { return r.get(ptNIP) }
func (r *regs) SetPC(v uint64)   { r.set(ptNIP, v) }
func (r *regs) SP() uint64       { return r.get(ptR1) }
func (r *regs) SetSP(v uint64)   { r.set(ptR1, v) }

// TLS is r13 for a 64-bit task and r2 for a 32-bit one (the thread
// pointer of the ELFv1/ELFv2 and the 32-bit SysV ABIs; TLS_REG in glibc's
// sysdeps/powerpc/nptl/tls.h).
func (r *regs) TLS() uint64 {
	if r.w == 8 {
		return r.get(ptR13)
	}
	return r.get(ptR2)
}

// Arg is r3+i: syscall and function arguments are r3-r8 (r3-r10 for
// functions).
func (r *regs) Arg(i int) uint64 { return r.get(ptR3 + i) }

// trap is the trap word without its flag bit.
func (r *regs) trap() uint64 { return r.get(ptTrap) &^ trapNoRestart }

func (r *regs) isSCV() bool { return r.trap() == trapSCV }

// InSyscall: a thread is in a syscall when it entered the kernel through
// "sc" (trap 0xc00) or "scv" (0x3000) (trap_is_syscall) and the kernel has
// not yet settled that syscall's restart (trap_norestart: do_signal sets
// the bit once check_syscall_restart has run, and may have moved nip back
// already; such a thread is about to run user code, not in a call). nr is
// r0. ret is
// reported the kernel's way, as a negative errno when the call failed, for
// both conventions: after "sc" a failure shows as CR0.SO with a positive
// errno in r3, after "scv" as -errno in r3.
func (r *regs) InSyscall() (int64, int64, bool) {
	t := r.trap()
	if t != trapSC && t != trapSCV || r.get(ptTrap)&trapNoRestart != 0 {
		return -1, 0, false
	}
	nr := int64(r.get(ptR0))
	if t == trapSC && r.get(ptCCR)&crSO != 0 {
		return nr, -r.signed(ptR3), true
	}
	return nr, r.signed(ptR3), true
}

// SetSyscall: nip at the "sc" gadget, r0 the number, r3-r8 the arguments
// (orig_gpr3 = r3, as system_call_common saves it). trap = 0 so that the
// kernel's restart logic does not apply to the stop the thread leaves:
// check_syscall_restart returns at once when !trap_is_syscall
// (arch/powerpc/kernel/signal.c). The regset write keeps the trap flag bit
// (set_user_trap), which can only make a restart less likely.
func (r *regs) SetSyscall(gadget, nr uint64, args ...uint64) {
	r.set(ptNIP, gadget)
	r.set(ptR0, nr)
	for i := 0; i < 6; i++ {
		var v uint64
		if i < len(args) {
			v = args[i]
		}
		r.set(ptR3+i, v)
	}
	r.set(ptOrigR3, r.get(ptR3))
	r.set(ptTrap, 0)
}

// SyscallResult decodes r3 at the syscall-exit stop: after "sc", CR0.SO
// set means r3 is a positive errno; after "scv", r3 in [-4095, -1] is
// -errno (is_syscall_success and syscall_get_error in
// arch/powerpc/include/asm/ptrace.h and asm/syscall.h).
func (r *regs) SyscallResult() (uint64, arch.Errno) {
	if r.isSCV() {
		v := r.signed(ptR3)
		if v < 0 && v >= -maxErrno {
			return 0, arch.Errno(-v)
		}
		return r.get(ptR3), 0
	}
	if r.get(ptCCR)&crSO != 0 {
		return 0, arch.Errno(r.get(ptR3))
	}
	return r.get(ptR3), 0
}

// What a tracer can write back (gpr_set, arch/powerpc/kernel/ptrace/ptrace-view.c):
// r0-r31, nip, orig_gpr3 up to ccr (PT_MAX_PUT_REG, ptrace-decl.h), the
// debug bits of msr, and the trap value bits; softe, dar, dsisr and result
// are ignored. FixRestart still keeps result consistent with what the
// kernel would have left, for readers of the image.

// FixRestart does what check_syscall_restart (arch/powerpc/kernel/signal.c)
// does for a thread with no handler to run, and then marks the registers
// as handled (trap = 0) so that the kernel of the new process does not do
// it a second time:
//   - ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND: r3 = orig_gpr3 and
//     nip -= 4, so the "sc"/"scv" runs again; r0 still holds the number.
//   - ERESTART_RESTARTBLOCK: the kernel would call restart_syscall, whose
//     restart block stays behind in the old kernel; the call returns
//     EINTR instead, in its instruction's convention (r3 = EINTR with
//     CR0.SO for "sc", r3 = -EINTR for "scv").
//
// A trap word whose norestart bit is set has been dealt with already
// (InSyscall is false for it).
func (r *regs) FixRestart() string {
	nr, ret, ok := r.InSyscall()
	if !ok {
		return ""
	}
	switch -ret {
	case arch.ERESTARTSYS, arch.ERESTARTNOINTR, arch.ERESTARTNOHAND:
		r.set(ptR3, r.get(ptOrigR3))
		r.set(ptNIP, r.get(ptNIP)-insnLen)
		r.set(ptResult, 0)
		r.set(ptTrap, 0)
		return fmt.Sprintf("syscall %d restarted", nr)
	case arch.ERESTART_RESTARTBLOCK:
		eintr := -int64(arch.EINTR)
		if r.isSCV() {
			r.set(ptR3, uint64(eintr))
		} else {
			r.set(ptR3, arch.EINTR)
			r.set(ptCCR, r.get(ptCCR)|crSO)
		}
		r.set(ptResult, uint64(eintr))
		r.set(ptTrap, 0)
		return fmt.Sprintf("syscall %d returns EINTR (restart block)", nr)
	}
	return ""
}
