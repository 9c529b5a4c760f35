package x86

import (
	"encoding/binary"
	"fmt"

	"github.com/migrated/migrated/arch"
)

// Word indices into struct user_regs_struct32 (arch/x86/include/asm/user32.h),
// the layout a 64-bit tracer gets for an i386 tracee.
const (
	eEBX = iota
	eECX
	eEDX
	eESI
	eEDI
	eEBP
	eEAX
	eDS
	eES
	eFS
	eGS
	eOrigEAX
	eEIP
	eCS
	eEFLAGS
	eESP
	eSS
	i386Words
)

// I386GPRSize is sizeof(struct user_regs_struct32): 68 bytes.
const I386GPRSize = i386Words * 4

// i386Gadget is "int 0x80" (cd 80): a 64-bit "syscall" from a 32-bit task
// does not reach the compat table.
var i386Gadget = []byte{0xcd, 0x80}

// I386 is the arch of a 32-bit x86 task on an amd64 kernel.
type I386 struct{}

var _ arch.Arch = I386{}
var _ arch.Regs = (*i386Regs)(nil)

func init() { arch.Register(I386{}) }

func (I386) Kind() arch.Kind             { return arch.KindI386 }
func (I386) Name() string                { return "i386" }
func (I386) WordSize() int               { return 4 }
func (I386) ByteOrder() binary.ByteOrder { return binary.LittleEndian }
func (I386) ABI() arch.ABI               { return arch.ABISysVI386 }
func (I386) ELFMachine() uint16          { return arch.EM_386 }
func (I386) GPRSize() int                { return I386GPRSize }
func (I386) Gadget() []byte              { return i386Gadget }
func (I386) GadgetPCOffset() int         { return len(i386Gadget) }
func (I386) MmapUsesPages() bool         { return true }
func (I386) Syscalls() *arch.Syscalls    { return &i386Syscalls }
func (I386) Regsets() []arch.RegsetSpec  { return i386Regsets }

var i386Regsets = []arch.RegsetSpec{
	{Note: arch.NT_PRSTATUS, Name: "gpr", Required: true},
	{Note: arch.NT_PRFPREG, Name: "fpr", Required: true},
	{Note: arch.NT_X86_XSTATE, Name: "xstate"},
	{Note: arch.NT_386_TLS, Name: "tls"},
}

func (I386) DecodeRegs(raw []byte) (arch.Regs, error) {
	if len(raw) != I386GPRSize {
		return nil, fmt.Errorf("i386 NT_PRSTATUS of %d bytes, want %d: %w", len(raw), I386GPRSize, arch.ErrRegsetSize)
	}
	return &i386Regs{b: raw}, nil
}

func (I386) StubELF(base, pageSize uint64) ([]byte, error) {
	s := arch.StubImage{Class: arch.ELFCLASS32, Order: binary.LittleEndian, Machine: arch.EM_386,
		Base: base, PageSize: pageSize, Code: []byte{0xcc, 0xcd, 0x80, 0xcc}}
	return s.Build()
}

type i386Regs struct{ b []byte }

func (r *i386Regs) get(i int) uint32    { return binary.LittleEndian.Uint32(r.b[i*4:]) }
func (r *i386Regs) set(i int, v uint32) { binary.LittleEndian.PutUint32(r.b[i*4:], v) }

func (r *i386Regs) Bytes() []byte    { return r.b }
func (r *i386Regs) Clone() arch.Regs { return &i386Regs{b: append([]byte(nil), r.b...)} }
func (r *i386Regs) PC() uint64       { return uint64(r.get(eEIP)) }
func (r *i386Regs) SetPC(v uint64)   { r.set(eEIP, uint32(v)) }
func (r *i386Regs) SP() uint64       { return uint64(r.get(eESP)) }
func (r *i386Regs) SetSP(v uint64)   { r.set(eESP, uint32(v)) }
func (r *i386Regs) TLS() uint64      { return uint64(r.get(eGS)) } // a selector: the base is in NT_386_TLS
func (r *i386Regs) Arg(i int) uint64 { return uint64(r.get(i386Args[i])) }

// int 0x80 argument registers.
var i386Args = [6]int{eEBX, eECX, eEDX, eESI, eEDI, eEBP}

func (r *i386Regs) InSyscall() (int64, int64, bool) {
	nr := int32(r.get(eOrigEAX))
	if nr < 0 {
		return -1, 0, false
	}
	return int64(nr), int64(int32(r.get(eEAX))), true
}

func (r *i386Regs) SetSyscall(gadget, nr uint64, args ...uint64) {
	r.set(eEIP, uint32(gadget))
	r.set(eEAX, uint32(nr))
	r.set(eOrigEAX, 0xffffffff)
	for i := range i386Args {
		var v uint32
		if i < len(args) {
			v = uint32(args[i])
		}
		r.set(i386Args[i], v)
	}
}

func (r *i386Regs) SyscallResult() (uint64, arch.Errno) {
	v := int32(r.get(eEAX))
	if v < 0 && v >= -4095 {
		return 0, arch.Errno(-v)
	}
	return uint64(uint32(v)), 0
}

func (r *i386Regs) FixRestart() string {
	nr, ret, ok := r.InSyscall()
	if !ok {
		return ""
	}
	switch -ret {
	case arch.ERESTARTSYS, arch.ERESTARTNOINTR, arch.ERESTARTNOHAND:
		r.set(eEAX, uint32(nr))
		r.set(eEIP, r.get(eEIP)-uint32(len(i386Gadget)))
		r.set(eOrigEAX, 0xffffffff)
		return fmt.Sprintf("syscall %d restarted", nr)
	case arch.ERESTART_RESTARTBLOCK:
		eintr := int32(-arch.EINTR)
		r.set(eEAX, uint32(eintr))
		r.set(eOrigEAX, 0xffffffff)
		return fmt.Sprintf("syscall %d returns EINTR (restart block)", nr)
	}
	return ""
}

// i386Syscalls: arch/x86/entry/syscalls/syscall_32.tbl. The uid/gid calls
// are the 32-bit-id variants (setresuid32...), getrlimit is ugetrlimit, mmap
// is mmap2 (offset in 4096-byte units).
var i386Syscalls = arch.Syscalls{
	RestartSyscall: 0, Exit: 1, Read: 3, Write: 4, Open: 5, Close: 6, Chdir: 12, Lseek: 19, Getpid: 20,
	Pause: 29, Kill: 37, Brk: 45, Ioctl: 54, Fcntl: 55, Setpgid: 57, Umask: 60, Dup2: 63, Setsid: 66,
	Munmap: 91, Ftruncate: 93, Setitimer: 104, Getitimer: 105, Fstat: 108, Mprotect: 125,
	Getpgid: 132, Fchdir: 133, Personality: 136, Llseek: 140, Getsid: 147, Munlock: 151,
	Nanosleep: 162, Mremap: 163, Prctl: 172, RtSigaction: 174, RtSigprocmask: 175,
	RtSigqueueinfo: 178, Pread64: 180, Pwrite64: 181, Getcwd: 183, Capget: 184, Capset: 185,
	Sigaltstack: 186, Getrlimit: 191, Mmap: 192, Setresuid: 208, Setresgid: 210, Setgroups: 206,
	Madvise: 219, Gettid: 224, ExitGroup: 252, SetTidAddress: 258, ClockGettime: 265, Openat: 295,
	SetRobustList: 311, GetRobustList: 312, Dup3: 330, RtTgsigqueueinfo: 335, Unshare: 310, EpollCtl: 255, Eventfd2: 328, EpollCreate1: 329, Prlimit64: 340, MemfdCreate: 356,
	Userfaultfd: 374, Rseq: 386, Clone3: 435,
	TimerCreate: 259, TimerSettime: 260, TimerGettime: 261, TimerDelete: 263,
}

// i386SigLoop: ebp = the slot, edi = the signal; rt_sigaction is 174 in
// the i386 ABI (int 0x80 clobbers eax only).
//
//	loop: mov $174,%eax; mov %edi,%ebx; xor %ecx,%ecx; mov %ebp,%edx
//	      mov $8,%esi; int $0x80; mov %eax,32(%ebp); add $48,%ebp
//	      inc %edi; cmp $65,%edi; jne loop; int3
var i386SigLoop = []byte{
	0xb8, 0xae, 0x00, 0x00, 0x00, 0x89, 0xfb, 0x31, 0xc9, 0x89, 0xea,
	0xbe, 0x08, 0x00, 0x00, 0x00, 0xcd, 0x80, 0x89, 0x45, 0x20, 0x83, 0xc5, 0x30,
	0x47, 0x83, 0xff, 0x41, 0x75, 0xe2, 0xcc,
}

func (I386) SigactionLoop(set bool) ([]byte, uint64) {
	code := append([]byte(nil), i386SigLoop...)
	if set {
		// act = the slot, oact = NULL: mov %ebp,%ecx; xor %edx,%edx
		copy(code[7:], []byte{0x89, 0xe9, 0x31, 0xd2})
	}
	return code, uint64(len(code)) // the PC after int3
}

func (I386) SetSigactionLoop(r arch.Regs, code, buf uint64) {
	x := r.(*i386Regs)
	x.set(eEIP, uint32(code))
	x.set(eOrigEAX, 0xffffffff)
	x.set(eEBP, uint32(buf))
	x.set(eEDI, 1)
}

func (I386) SigLoopErrno(slot []byte) arch.Errno {
	v := int32(binary.LittleEndian.Uint32(slot[arch.SigLoopResult:]))
	if v < 0 && v >= -4095 {
		return arch.Errno(-v)
	}
	return 0
}
