// Package inject drives stopped tracees: it runs every ptrace request for a
// task on one locked OS thread (Tracer), freezes and releases threads, reads
// and writes register sets, and runs system calls inside a stopped tracee
// (what CRIU calls compel): save the registers, point the PC at a syscall
// instruction (the gadget), step through the syscall-entry and syscall-exit
// stops with PTRACE_SYSCALL, read the result, restore the registers.
//
// It knows ptrace and the arch interface; it does not know images, /proc
// formats or what the syscalls it runs are for.
package inject
