// Package x86 implements arch.Arch for amd64 tasks and for i386 tasks
// running on an amd64 kernel under IA32 emulation.
//
// Register layouts are those a 64-bit tracer sees through PTRACE_GETREGSET:
// struct user_regs_struct (arch/x86/include/asm/user_64.h, 27 x u64) for an
// amd64 tracee, and struct user_regs_struct32 (arch/x86/include/asm/user32.h,
// 17 x u32) for an i386 one. Syscall numbers come from
// arch/x86/entry/syscalls/syscall_64.tbl and syscall_32.tbl.
package x86
