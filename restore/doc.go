// Package restore is the destination side of the engine: it builds a new
// process from an image, disconnected from everything, and activates it at
// the last moment.
//
// The new process starts as a stub: a minimal static ELF generated for the
// task's arch (arch.StubELF) and started under ptrace. When the task's PID
// must be kept, clone3 with set_tid, injected into the stub, makes a copy
// of it with that PID and the stub is dropped. Every change to the new
// process is then an injected system call or a process_vm_writev: the
// VMAs are mapped at their addresses (writable while they are filled), the
// pages are written straight in, and at the end come the mm fields
// (PR_SET_MM_MAP), the vDSO, signal handlers, fds, cwd, umask, limits,
// timers, per-thread state, registers and, last, credentials. Until Resume
// the process stays stopped; Kill removes it without a trace.
//
// It knows images and the arch interface; it does not know where the image
// comes from (a file or a move).
package restore
