// Package powerpc implements arch.Arch for the three POWER task arches a
// 64-bit POWER kernel runs: ppc64le (little-endian, ELFv2), ppc64
// (big-endian, ELFv1 with function descriptors) and ppc32 (big-endian
// 32-bit tasks under CONFIG_COMPAT).
//
// Register layouts are those a 64-bit tracer sees through PTRACE_GETREGSET:
// struct user_pt_regs (arch/powerpc/include/uapi/asm/ptrace.h) padded to
// ELF_NGREG (48) words (arch/powerpc/include/uapi/asm/elf.h), 8-byte words
// for a 64-bit tracee (384 bytes) and 4-byte words for a 32-bit one (192
// bytes, the compat view), always in the tracee's byte order. Syscall
// numbers come from arch/powerpc/kernel/syscalls/syscall.tbl; the syscall
// and restart conventions from arch/powerpc/kernel/signal.c,
// arch/powerpc/kernel/interrupt.c and arch/powerpc/include/asm/ptrace.h
// (all cited from Linux 6.1, the kernel of the POWER test guests).
//
// The package knows register layouts, instruction encodings and syscall
// numbers. It must not know ptrace, processes or images: it imports only
// package arch.
package powerpc
