package checkpoint

import (
	"fmt"
	"unsafe"

	"github.com/migrated/migrated/arch"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
	"github.com/migrated/migrated/internal/procfs"
	"golang.org/x/sys/unix"
)

func uintptrOf(p *uint64) uintptr { return uintptr(unsafe.Pointer(p)) }

// scratch is a page mapped into the task for the arguments of injected calls.
type scratch struct {
	addr uint64
	size uint64
}

// captureInjected asks the task itself for what /proc does not show:
// signal handlers, itimers, and per thread the alternate signal stack and
// the clear-child-tid address.
func (f *Frozen) captureInjected(t *image.Task, maps []procfs.MapEntry) error {
	a := f.Arch
	sc := a.Syscalls()
	gadget, err := findGadget(f.PID, a, t.Vmas)
	if err != nil {
		return err
	}
	leader := f.Threads[0]
	in, err := inject.Begin(leader, gadget)
	if err != nil {
		return err
	}
	defer in.End()
	defer func() { f.Injected += in.Calls }()
	sz := f.PageSize
	addr, err := mmapAnon(in, a, sz)
	if err != nil {
		return err
	}
	s := scratch{addr: addr, size: sz}
	defer in.Call("munmap", sc.Munmap, s.addr, s.size)

	buf := make([]byte, 256)
	saSize := arch.SigactionSize(a)
	keep := func(sig int, raw []byte) error {
		sa, err := arch.DecodeSigaction(a, raw[:saSize])
		if err != nil {
			return err
		}
		if sa.Handler == 0 && sa.Flags == 0 && sa.Mask == 0 && sa.Restorer == 0 {
			return nil // SIG_DFL with nothing set: the default of a new process
		}
		t.Sigactions = append(t.Sigactions, &image.SigAction{Signo: int32(sig), Handler: sa.Handler, Flags: sa.Flags, Restorer: sa.Restorer, Mask: sa.Mask})
		return nil
	}
	looped, err := f.sigactionsInOneRun(in, t, s, keep)
	if err != nil {
		return err
	}
	for sig := 1; sig <= maxSignal && !looped; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		if _, err := in.Call("rt_sigaction", sc.RtSigaction, uint64(sig), 0, s.addr, 8); err != nil {
			return fmt.Errorf("read handler of signal %d: %w", sig, err)
		}
		if err := inject.ReadMem(f.PID, s.addr, buf[:saSize]); err != nil {
			return err
		}
		if err := keep(sig, buf); err != nil {
			return err
		}
	}
	itSize := arch.ITimervalSize(a)
	for which := 0; which < 3; which++ {
		if _, err := in.Call("getitimer", sc.Getitimer, uint64(which), s.addr); err != nil {
			return fmt.Errorf("read itimer %d: %w", which, err)
		}
		if err := inject.ReadMem(f.PID, s.addr, buf[:itSize]); err != nil {
			return err
		}
		iv, v, err := arch.DecodeITimerval(a, buf[:itSize])
		if err != nil {
			return err
		}
		if iv != 0 || v != 0 {
			t.Itimers = append(t.Itimers, &image.ITimer{Which: int32(which), IntervalNs: iv, ValueNs: v})
		}
	}
	if err := f.capturePosixTimers(in, t, s); err != nil {
		return err
	}
	// Per thread: each call must run in the thread it asks about.
	for i, th := range f.Threads {
		ti := in
		if i > 0 {
			if ti, err = inject.Begin(th, gadget); err != nil {
				return err
			}
		}
		err := captureThreadInjected(ti, f.PID, a, s, t.Threads[i])
		if i > 0 {
			f.Injected += ti.Calls
			if e := ti.End(); err == nil {
				err = e
			}
		}
		if err != nil {
			return fmt.Errorf("thread %d: %w", th.TID, err)
		}
	}
	return nil
}

// sigactionsInOneRun reads every signal's action with the arch's loop
// (arch.SigactionLooper) in one injected run, into the scratch page s,
// and hands each to keep. It returns false, having changed nothing, when
// the loop cannot be used: an arch without one, a SIGTRAP pending for the
// leader (the run unblocks SIGTRAP: it would be taken, and lost), a kernel
// or policy that refuses an executable page. A failure after the run has
// begun is an error: the task may be changed (its SIGTRAP action).
func (f *Frozen) sigactionsInOneRun(in *inject.Injector, t *image.Task, s scratch, keep func(sig int, raw []byte) error) (bool, error) {
	a := f.Arch
	l, ok := a.(arch.SigactionLooper)
	if !ok || s.size < arch.SigLoopBytes {
		return false, nil
	}
	for _, p := range append(append([]*image.SigInfo(nil), t.SharedPending...), t.Threads[0].Pending...) {
		if p.Signo == int32(unix.SIGTRAP) {
			return false, nil
		}
	}
	sc := a.Syscalls()
	code, trapPC := l.SigactionLoop(false)
	ran, err := in.RunCode(f.PageSize, code, trapPC, func(r arch.Regs, at uint64) { l.SetSigactionLoop(r, at, s.addr) })
	if err != nil {
		return false, fmt.Errorf("read the signal actions: %w", err)
	}
	if !ran {
		return false, nil
	}
	buf := make([]byte, arch.SigLoopBytes)
	if err := inject.ReadMem(f.PID, s.addr, buf); err != nil {
		return false, err
	}
	for sig := 1; sig <= arch.SigLoopSignals; sig++ {
		slot := buf[(sig-1)*arch.SigLoopSlot : sig*arch.SigLoopSlot]
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		if e := l.SigLoopErrno(slot); e != 0 {
			return false, fmt.Errorf("read handler of signal %d: %w", sig, unix.Errno(e))
		}
		if err := keep(sig, slot); err != nil {
			return false, err
		}
	}
	// The trap reset an ignored SIGTRAP to SIG_DFL: put the action back,
	// as the task had it (the slot holds it in the layout act takes).
	trap := buf[(unix.SIGTRAP-1)*arch.SigLoopSlot:]
	if sa, err := arch.DecodeSigaction(a, trap[:arch.SigactionSize(a)]); err == nil && sa.Handler == sigIgn {
		if _, err := in.Call("rt_sigaction", sc.RtSigaction, uint64(unix.SIGTRAP), s.addr+uint64(unix.SIGTRAP-1)*arch.SigLoopSlot, 0, 8); err != nil {
			return false, fmt.Errorf("put back the ignored SIGTRAP: %w", err)
		}
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// sigIgn is SIG_IGN.
const sigIgn = 1

func captureThreadInjected(in *inject.Injector, pid int, a arch.Arch, s scratch, it *image.Thread) error {
	sc := a.Syscalls()
	stSize := arch.StackSize(a)
	buf := make([]byte, 64)
	if _, err := in.Call("sigaltstack", sc.Sigaltstack, 0, s.addr); err != nil {
		return err
	}
	if err := inject.ReadMem(pid, s.addr, buf[:stSize]); err != nil {
		return err
	}
	sp, flags, size, err := arch.DecodeStack(a, buf[:stSize])
	if err != nil {
		return err
	}
	if flags&ssDisable == 0 {
		it.Altstack = &image.SigAltStack{Sp: sp, Flags: flags, Size: size}
	}
	// A 32-bit task registers its robust list through the compat call,
	// which the tracer's native get_robust_list does not see: ask the
	// thread itself (compat pointers and sizes are 32-bit words).
	if a.WordSize() == 4 {
		clear(buf)
		if err := inject.WriteMem(pid, s.addr, buf[:16]); err != nil {
			return err
		}
		if _, err := in.Call("get_robust_list", a.Syscalls().GetRobustList, 0, s.addr, s.addr+8); err != nil {
			return err
		}
		if err := inject.ReadMem(pid, s.addr, buf[:12]); err != nil {
			return err
		}
		if head := a.ByteOrder().Uint32(buf); head != 0 {
			it.RobustList = &image.RobustList{Head: uint64(head), Len: uint64(a.ByteOrder().Uint32(buf[8:]))}
		} else {
			it.RobustList = nil
		}
	}
	// PR_GET_TID_ADDRESS writes a pointer of the kernel's size
	// (put_user of an int __user *, kernel/sys.c), 8 bytes on the 64-bit
	// kernels the agent runs on, for a 32-bit task too: read it whole, in
	// the task's byte order (the first 4 bytes are the high half on a
	// big-endian ppc32 task).
	clear(buf)
	if err := inject.WriteMem(pid, s.addr, buf[:8]); err != nil {
		return err
	}
	if _, err := in.Call("prctl(PR_GET_TID_ADDRESS)", sc.Prctl, prGetTidAddress, s.addr); err != nil {
		return err
	}
	if err := inject.ReadMem(pid, s.addr, buf[:8]); err != nil {
		return err
	}
	it.ClearChildTid = a.ByteOrder().Uint64(buf)
	return nil
}

// mmapAnon maps size bytes of private anonymous read-write memory anywhere.
func mmapAnon(in *inject.Injector, a arch.Arch, size uint64) (uint64, error) {
	return in.Call("mmap", a.Syscalls().Mmap, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
}

// ssDisable is SS_DISABLE (include/uapi/linux/signal.h).
const ssDisable = 2
