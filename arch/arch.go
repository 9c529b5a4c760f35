package arch

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind names a task architecture. Values equal image.Arch.
type Kind uint8

const (
	KindUnknown Kind = 0
	KindAMD64   Kind = 1
	KindI386    Kind = 2
	KindPPC64LE Kind = 3
	KindPPC64   Kind = 4 // big-endian 64-bit
	KindPPC32   Kind = 5 // big-endian 32-bit
)

func (k Kind) String() string {
	switch k {
	case KindAMD64:
		return "amd64"
	case KindI386:
		return "i386"
	case KindPPC64LE:
		return "ppc64le"
	case KindPPC64:
		return "ppc64"
	case KindPPC32:
		return "ppc32"
	}
	return fmt.Sprintf("arch(%d)", uint8(k))
}

// ABI of a task's code. Values equal image.ABI.
type ABI uint8

const (
	ABIUnknown    ABI = 0
	ABISysVAMD64  ABI = 1
	ABISysVI386   ABI = 2
	ABIPPC64ELFv1 ABI = 3 // function descriptors: an entry point is the address of a descriptor
	ABIPPC64ELFv2 ABI = 4
	ABIPPC32SysV  ABI = 5
)

// ELF note types of the register sets (include/uapi/linux/elf.h).
const (
	NT_PRSTATUS    = 1
	NT_PRFPREG     = 2
	NT_X86_XSTATE  = 0x202
	NT_PPC_VMX     = 0x100
	NT_PPC_SPE     = 0x101
	NT_PPC_VSX     = 0x102
	NT_PPC_TAR     = 0x103
	NT_PPC_PPR     = 0x104
	NT_PPC_DSCR    = 0x105
	NT_PPC_EBB     = 0x106
	NT_PPC_PMU     = 0x107
	NT_PPC_TM_CGPR = 0x108
	NT_PPC_PKEY    = 0x110
	NT_PPC_DEXCR   = 0x111
	NT_386_TLS     = 0x200
	NT_AUXV        = 6
)

// RegsetSpec names one register set the engine saves for a task of an arch.
type RegsetSpec struct {
	Note uint32 // NT_* above
	Name string // stable name used in images and manifests ("gpr", "fpr", "xstate", "vsx"...)
	// Required: a thread without this set cannot be captured. Optional sets
	// (ENODEV/EINVAL from the kernel, or absent hardware) are skipped and
	// their absence recorded by leaving them out of the image.
	Required bool
}

// Regs is the general-purpose register set (NT_PRSTATUS) of one stopped
// thread, in its arch's layout and byte order. Setters change the buffer in
// place; Bytes returns it for PTRACE_SETREGSET.
type Regs interface {
	Bytes() []byte
	Clone() Regs

	PC() uint64
	SetPC(uint64)
	SP() uint64
	SetSP(uint64)
	// TLS is the thread pointer (fs_base, gs base of i386, r13 on ppc64, r2 on ppc32).
	TLS() uint64

	// InSyscall reports the syscall the thread was stopped in, if any, and the
	// value of its return register (where -ERESTART* codes show).
	InSyscall() (nr int64, ret int64, ok bool)

	// SetSyscall prepares the registers to execute syscall nr with args from
	// the syscall instruction at gadget, and disables the kernel's restart
	// logic for this entry (orig_rax = -1 on amd64; trap cleared on powerpc).
	SetSyscall(gadget uint64, nr uint64, args ...uint64)
	// SyscallResult decodes the result after the syscall-exit stop: the
	// value, or the errno when the syscall failed.
	SyscallResult() (uint64, Errno)

	// FixRestart adjusts the registers of a thread captured while stopped in
	// an interrupted syscall so that, resumed in a new process, it behaves as
	// the kernel would have made it: ERESTARTSYS, ERESTARTNOINTR and
	// ERESTARTNOHAND re-execute the syscall instruction; ERESTART_RESTARTBLOCK
	// (whose kernel restart block does not travel) returns EINTR. It returns
	// a short description of what it did ("" when nothing).
	FixRestart() string

	// Arg returns syscall/function argument register i (0-based).
	Arg(i int) uint64
}

// Errno is a Linux errno value (positive), 0 for success.
type Errno int

func (e Errno) Error() string { return fmt.Sprintf("errno %d", int(e)) }

// Kernel-internal restart codes (include/linux/errno.h). They show in the
// return register of a thread interrupted in a syscall.
const (
	ERESTARTSYS           = 512
	ERESTARTNOINTR        = 513
	ERESTARTNOHAND        = 514
	ERESTART_RESTARTBLOCK = 516
	EINTR                 = 4
)

// Arch is the per-architecture surface of the engine.
type Arch interface {
	Kind() Kind
	Name() string
	// WordSize in bytes of the task (4 or 8).
	WordSize() int
	ByteOrder() binary.ByteOrder
	ABI() ABI
	// ELFMachine is e_machine for the stub (EM_X86_64 62, EM_386 3, EM_PPC64 21, EM_PPC 20).
	ELFMachine() uint16

	// Regsets lists the register sets to save, NT_PRSTATUS first.
	Regsets() []RegsetSpec
	// GPRSize is the length NT_PRSTATUS has for this task arch as a 64-bit
	// tracer sees it: the length check is how a 32-bit tracee shows itself.
	GPRSize() int
	// DecodeRegs wraps a NT_PRSTATUS buffer; it checks the length.
	DecodeRegs(raw []byte) (Regs, error)

	// Syscalls are the numbers of the syscalls the engine injects.
	Syscalls() *Syscalls
	// Gadget is the syscall instruction ("syscall", "int 0x80", "sc"), the
	// bytes the engine looks for in [vdso] or puts into the stub.
	Gadget() []byte
	// GadgetPCOffset is how far the PC has advanced past the gadget at the
	// syscall-exit stop (the instruction length), for restarts.
	GadgetPCOffset() int

	// StubELF builds the minimal static executable the destination starts
	// the new process from: one read+execute page at base holding the
	// syscall gadget followed by a trap, entry at base. pageSize aligns the
	// segment.
	StubELF(base, pageSize uint64) ([]byte, error)

	// MmapUsesPages is true when the mmap syscall this arch injects takes
	// its offset in 4096-byte units (mmap2 on i386 and ppc32).
	MmapUsesPages() bool
}

// ErrRegsetSize is returned when a register set has the wrong length for
// the arch: the tracee is not of the arch the caller thought.
var ErrRegsetSize = errors.New("register set has an unexpected size")

// Syscalls holds the numbers of the syscalls the engine injects, per task
// arch. A zero value means "does not exist on this arch".
type Syscalls struct {
	Read, Write, Open, Openat, Close, Lseek, Llseek                           int
	Mmap, Munmap, Mprotect, Mremap, Madvise, Brk                              int
	RtSigaction, RtSigprocmask, Sigaltstack, RtSigqueueinfo, RtTgsigqueueinfo int
	Getitimer, Setitimer, Prlimit64, Getrlimit                                int
	Prctl, ArchPrctl, Clone3, Exit, ExitGroup, Kill                           int
	Getpid, Gettid, Getcwd, Chdir, Fchdir, Umask                              int
	SetTidAddress, SetRobustList, GetRobustList, Rseq                         int
	Dup2, Dup3, Fcntl, Ioctl, Userfaultfd, MemfdCreate                        int
	Eventfd2, EpollCreate1, EpollCtl                                          int
	Unshare                                                                   int
	Setresuid, Setresgid, Setgroups, Capset, Capget                           int
	Personality, Pause, RestartSyscall, Nanosleep                             int
	ClockGettime, Setsid, Setpgid, Getpgid, Getsid                            int
	Ftruncate, Fstat, Pread64, Pwrite64, Munlock                              int
	TimerCreate, TimerSettime, TimerGettime, TimerDelete                      int
}

// registry of the arches compiled in.
var arches = map[Kind]Arch{}

// Register makes an Arch available through Lookup; implementations call it
// from init.
func Register(a Arch) { arches[a.Kind()] = a }

// Lookup returns the Arch of a task kind.
func Lookup(k Kind) (Arch, error) {
	a, ok := arches[k]
	if !ok {
		return nil, fmt.Errorf("arch %v: %w", k, ErrUnsupported)
	}
	return a, nil
}

// ErrUnsupported: no implementation for the arch.
var ErrUnsupported = errors.New("unsupported architecture")
