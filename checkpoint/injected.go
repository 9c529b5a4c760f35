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
	sz := f.PageSize
	addr, err := mmapAnon(in, a, sz)
	if err != nil {
		return err
	}
	s := scratch{addr: addr, size: sz}
	defer in.Call("munmap", sc.Munmap, s.addr, s.size)

	buf := make([]byte, 256)
	saSize := arch.SigactionSize(a)
	for sig := 1; sig <= maxSignal; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		if _, err := in.Call("rt_sigaction", sc.RtSigaction, uint64(sig), 0, s.addr, 8); err != nil {
			return fmt.Errorf("read handler of signal %d: %w", sig, err)
		}
		if err := inject.ReadMem(f.PID, s.addr, buf[:saSize]); err != nil {
			return err
		}
		sa, err := arch.DecodeSigaction(a, buf[:saSize])
		if err != nil {
			return err
		}
		if sa.Handler == 0 && sa.Flags == 0 && sa.Mask == 0 && sa.Restorer == 0 {
			continue // SIG_DFL with nothing set: the default of a new process
		}
		t.Sigactions = append(t.Sigactions, &image.SigAction{Signo: int32(sig), Handler: sa.Handler, Flags: sa.Flags, Restorer: sa.Restorer, Mask: sa.Mask})
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
