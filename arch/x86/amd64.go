package x86

import (
	"encoding/binary"
	"fmt"

	"github.com/migrated/migrated/arch"
)

// Word indices into struct user_regs_struct (arch/x86/include/asm/user_64.h).
const (
	rR15 = iota
	rR14
	rR13
	rR12
	rRBP
	rRBX
	rR11
	rR10
	rR9
	rR8
	rRAX
	rRCX
	rRDX
	rRSI
	rRDI
	rOrigRAX
	rRIP
	rCS
	rEFLAGS
	rRSP
	rSS
	rFSBase
	rGSBase
	rDS
	rES
	rFS
	rGS
	amd64Words
)

// AMD64GPRSize is sizeof(struct user_regs_struct).
const AMD64GPRSize = amd64Words * 8

// amd64Gadget is "syscall" (0f 05).
var amd64Gadget = []byte{0x0f, 0x05}

// AMD64 is the amd64 task arch.
type AMD64 struct{}

var _ arch.Arch = AMD64{}
var _ arch.Regs = (*amd64Regs)(nil)

func init() { arch.Register(AMD64{}) }

func (AMD64) Kind() arch.Kind             { return arch.KindAMD64 }
func (AMD64) Name() string                { return "amd64" }
func (AMD64) WordSize() int               { return 8 }
func (AMD64) ByteOrder() binary.ByteOrder { return binary.LittleEndian }
func (AMD64) ABI() arch.ABI               { return arch.ABISysVAMD64 }
func (AMD64) ELFMachine() uint16          { return arch.EM_X86_64 }
func (AMD64) GPRSize() int                { return AMD64GPRSize }
func (AMD64) Gadget() []byte              { return amd64Gadget }
func (AMD64) GadgetPCOffset() int         { return len(amd64Gadget) }
func (AMD64) MmapUsesPages() bool         { return false }
func (AMD64) Syscalls() *arch.Syscalls    { return &amd64Syscalls }
func (AMD64) Regsets() []arch.RegsetSpec  { return amd64Regsets }

var amd64Regsets = []arch.RegsetSpec{
	{Note: arch.NT_PRSTATUS, Name: "gpr", Required: true},
	{Note: arch.NT_PRFPREG, Name: "fpr", Required: true},
	{Note: arch.NT_X86_XSTATE, Name: "xstate"},
}

func (AMD64) DecodeRegs(raw []byte) (arch.Regs, error) {
	if len(raw) != AMD64GPRSize {
		return nil, fmt.Errorf("amd64 NT_PRSTATUS of %d bytes, want %d: %w", len(raw), AMD64GPRSize, arch.ErrRegsetSize)
	}
	return &amd64Regs{b: raw}, nil
}

// StubELF: entry is an int3 (a stub that is ever let run on its own traps
// and dies instead of doing anything); the gadget "syscall; int3" follows.
func (AMD64) StubELF(base, pageSize uint64) ([]byte, error) {
	s := arch.StubImage{Class: arch.ELFCLASS64, Order: binary.LittleEndian, Machine: arch.EM_X86_64,
		Base: base, PageSize: pageSize, Code: []byte{0xcc, 0x0f, 0x05, 0xcc}}
	return s.Build()
}

type amd64Regs struct{ b []byte }

func (r *amd64Regs) get(i int) uint64    { return binary.LittleEndian.Uint64(r.b[i*8:]) }
func (r *amd64Regs) set(i int, v uint64) { binary.LittleEndian.PutUint64(r.b[i*8:], v) }

func (r *amd64Regs) Bytes() []byte { return r.b }
func (r *amd64Regs) Clone() arch.Regs {
	return &amd64Regs{b: append([]byte(nil), r.b...)}
}
func (r *amd64Regs) PC() uint64       { return r.get(rRIP) }
func (r *amd64Regs) SetPC(v uint64)   { r.set(rRIP, v) }
func (r *amd64Regs) SP() uint64       { return r.get(rRSP) }
func (r *amd64Regs) SetSP(v uint64)   { r.set(rRSP, v) }
func (r *amd64Regs) TLS() uint64      { return r.get(rFSBase) }
func (r *amd64Regs) Arg(i int) uint64 { return r.get(amd64Args[i]) }

// System V syscall argument registers.
var amd64Args = [6]int{rRDI, rRSI, rRDX, rR10, rR8, rR9}

func (r *amd64Regs) InSyscall() (int64, int64, bool) {
	nr := int64(r.get(rOrigRAX))
	if nr < 0 {
		return -1, 0, false
	}
	return nr, int64(r.get(rRAX)), true
}

func (r *amd64Regs) SetSyscall(gadget, nr uint64, args ...uint64) {
	r.set(rRIP, gadget)
	r.set(rRAX, nr)
	// orig_rax = -1: the kernel must not apply its restart logic to the
	// stop we are leaving (arch/x86/kernel/signal.c, arch_do_signal_or_restart).
	r.set(rOrigRAX, ^uint64(0))
	for i := range amd64Args {
		var v uint64
		if i < len(args) {
			v = args[i]
		}
		r.set(amd64Args[i], v)
	}
}

func (r *amd64Regs) SyscallResult() (uint64, arch.Errno) {
	v := int64(r.get(rRAX))
	if v < 0 && v >= -4095 {
		return 0, arch.Errno(-v)
	}
	return uint64(v), 0
}

func (r *amd64Regs) FixRestart() string {
	nr, ret, ok := r.InSyscall()
	if !ok {
		return ""
	}
	switch -ret {
	case arch.ERESTARTSYS, arch.ERESTARTNOINTR, arch.ERESTARTNOHAND:
		r.set(rRAX, uint64(nr))
		r.set(rRIP, r.get(rRIP)-uint64(len(amd64Gadget)))
		r.set(rOrigRAX, ^uint64(0))
		return fmt.Sprintf("syscall %d restarted", nr)
	case arch.ERESTART_RESTARTBLOCK:
		// The restart block lives in the kernel's task_struct and does
		// not travel: the syscall returns EINTR, as CRIU does.
		eintr := int64(-arch.EINTR)
		r.set(rRAX, uint64(eintr))
		r.set(rOrigRAX, ^uint64(0))
		return fmt.Sprintf("syscall %d returns EINTR (restart block)", nr)
	}
	return ""
}

// amd64Syscalls: arch/x86/entry/syscalls/syscall_64.tbl.
var amd64Syscalls = arch.Syscalls{
	Read: 0, Write: 1, Open: 2, Close: 3, Fstat: 5, Lseek: 8, Mmap: 9, Mprotect: 10, Munmap: 11, Brk: 12,
	RtSigaction: 13, RtSigprocmask: 14, Ioctl: 16, Pread64: 17, Pwrite64: 18, Mremap: 25, Madvise: 28,
	Dup2: 33, Pause: 34, Nanosleep: 35, Getitimer: 36, Setitimer: 38, Getpid: 39, Exit: 60, Kill: 62,
	Fcntl: 72, Ftruncate: 77, Getcwd: 79, Chdir: 80, Fchdir: 81, Umask: 95, Getrlimit: 97,
	Setpgid: 109, Setsid: 112, Setgroups: 116, Setresuid: 117, Setresgid: 119, Getpgid: 121, Getsid: 124,
	Capget: 125, Capset: 126, RtSigqueueinfo: 129, Sigaltstack: 131, Personality: 135, Munlock: 150,
	Prctl: 157, ArchPrctl: 158, Gettid: 186, SetTidAddress: 218, RestartSyscall: 219, ClockGettime: 228,
	ExitGroup: 231, Openat: 257, SetRobustList: 273, GetRobustList: 274, Dup3: 292, Prlimit64: 302,
	RtTgsigqueueinfo: 297, Unshare: 272, EpollCtl: 233, Eventfd2: 290, EpollCreate1: 291, MemfdCreate: 319, Userfaultfd: 323, Rseq: 334, Clone3: 435,
	TimerCreate: 222, TimerSettime: 223, TimerGettime: 224, TimerDelete: 226,
}

// amd64SigLoop: r12 = the slot, r13 = the signal, r14 = 65, r15 = the
// syscall number (rt_sigaction clobbers rax, rcx and r11 only).
//
//	loop: mov %r15d,%eax; mov %r13d,%edi; xor %esi,%esi; mov %r12,%rdx
//	      mov $8,%r10d; syscall; mov %rax,32(%r12); add $48,%r12
//	      inc %r13d; cmp %r14d,%r13d; jne loop; int3
var amd64SigLoop = []byte{
	0x44, 0x89, 0xf8, 0x44, 0x89, 0xef, 0x31, 0xf6, 0x4c, 0x89, 0xe2,
	0x41, 0xba, 0x08, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x49, 0x89, 0x44, 0x24, 0x20,
	0x49, 0x83, 0xc4, 0x30, 0x41, 0xff, 0xc5, 0x45, 0x39, 0xf5, 0x75, 0xdc, 0xcc,
}

func (AMD64) SigactionLoop(set bool) ([]byte, uint64) {
	code := append([]byte(nil), amd64SigLoop...)
	if set {
		// act = the slot, oact = NULL: mov %r12,%rsi; xor %edx,%edx
		copy(code[6:], []byte{0x4c, 0x89, 0xe6, 0x31, 0xd2})
	}
	return code, uint64(len(code)) // the PC after int3
}

func (a AMD64) SetSigactionLoop(r arch.Regs, code, buf uint64) {
	x := r.(*amd64Regs)
	x.set(rRIP, code)
	x.set(rOrigRAX, ^uint64(0)) // no restart of the stop we leave
	x.set(rR12, buf)
	x.set(rR13, 1)
	x.set(rR14, arch.SigLoopSignals+1)
	x.set(rR15, uint64(a.Syscalls().RtSigaction))
}

func (AMD64) SigLoopErrno(slot []byte) arch.Errno {
	v := int64(binary.LittleEndian.Uint64(slot[arch.SigLoopResult:]))
	if v < 0 && v >= -4095 {
		return arch.Errno(-v)
	}
	return 0
}
