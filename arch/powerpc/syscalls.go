package powerpc

import "github.com/migrated/migrated/arch"

// syscalls64 and syscalls32: arch/powerpc/kernel/syscalls/syscall.tbl
// (Linux 6.1). ppc64le and ppc64 share the "common", "nospu" and "64"
// rows; a 32-bit task on a 64-bit kernel goes through the "common",
// "nospu" and "32" rows (with their compat_ entry points). Where they
// differ:
//   - mmap: 90 on 64-bit; a 32-bit task maps with mmap2 (192, "32" only),
//     offset in 4096-byte units (see MmapUsesPages).
//   - getrlimit: 76 is sys_old_getrlimit for "32" and sys_ni_syscall for
//     "64"; ugetrlimit (190, common) is the real one everywhere.
//   - pread64/pwrite64 (179/180) are sys_ppc_pread64/compat_sys_ppc_pread64
//     for "32": the 64-bit offset is a register pair (r7:r8, aligned);
//     nanosleep (162) and clock_gettime (246) take the 32-bit time_t
//     structs for "32" (the *64 variants are 403/407 and not used here).
//   - _llseek (140) is common, so it exists for 64-bit tasks too.
//
// There is no arch_prctl on powerpc (the thread pointer is a GPR), and
// restart_syscall is 0. prlimit64 (325) takes struct rlimit64 (two u64) for
// every task; personality is sys_ppc64_personality for 64-bit tasks.
var syscalls64 = arch.Syscalls{
	RestartSyscall: 0, Exit: 1, Read: 3, Write: 4, Open: 5, Close: 6, Chdir: 12, Lseek: 19, Getpid: 20,
	Pause: 29, Kill: 37, Brk: 45, Ioctl: 54, Fcntl: 55, Setpgid: 57, Umask: 60, Dup2: 63, Setsid: 66,
	Setgroups: 81, Mmap: 90, Munmap: 91, Ftruncate: 93, Setitimer: 104, Getitimer: 105, Fstat: 108,
	Mprotect: 125, Getpgid: 132, Fchdir: 133, Personality: 136, Llseek: 140, Getsid: 147, Munlock: 151,
	Nanosleep: 162, Mremap: 163, Setresuid: 164, Setresgid: 169, Prctl: 171, RtSigaction: 173,
	RtSigprocmask: 174, RtSigqueueinfo: 177, Pread64: 179, Pwrite64: 180, Getcwd: 182, Capget: 183,
	Capset: 184, Sigaltstack: 185, Getrlimit: 190, Madvise: 205, Gettid: 207, SetTidAddress: 232,
	ExitGroup: 234, EpollCtl: 237, ClockGettime: 246, Openat: 286, GetRobustList: 299,
	SetRobustList: 300, Eventfd2: 314, EpollCreate1: 315, Dup3: 316, RtTgsigqueueinfo: 322,
	Unshare: 282, Prlimit64: 325, MemfdCreate: 360, Userfaultfd: 364, Rseq: 387, Clone3: 435,
	TimerCreate: 240, TimerSettime: 241, TimerGettime: 242, TimerDelete: 244,
}

var syscalls32 = func() arch.Syscalls {
	s := syscalls64
	s.Mmap = 192 // mmap2
	return s
}()
