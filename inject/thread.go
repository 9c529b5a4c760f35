package inject

import (
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"github.com/migrated/migrated/arch"
	"golang.org/x/sys/unix"
)

// Thread is one traced thread of a task.
type Thread struct {
	TID  int
	Arch arch.Arch
	t    *Tracer
	// GroupStopped: the thread was in a group-stop (SIGSTOP, SIGTSTP...)
	// when frozen; a detach leaves it stopped again.
	GroupStopped bool
}

// Thread returns a handle for tid, traced (or to be traced) by t.
func (t *Tracer) Thread(tid int, a arch.Arch) *Thread {
	return &Thread{TID: tid, Arch: a, t: t}
}

// Seize attaches without stopping (PTRACE_SEIZE).
func (th *Thread) Seize(options int) error {
	return th.t.Do(func() error {
		if err := ptrace(unix.PTRACE_SEIZE, th.TID, 0, uintptr(options)); err != nil {
			return fmt.Errorf("seize %d: %w", th.TID, err)
		}
		return nil
	})
}

// Freeze stops a seized thread with PTRACE_INTERRUPT and waits until it is in
// the interrupt stop. A signal that reaches the thread meanwhile (a
// signal-delivery stop) is delivered as the kernel would without us, with
// its own siginfo: its handler frame is set up (or its default action
// taken) before the interrupt stop, so nothing is lost or changed, whether
// the thread is thawed again or checkpointed.
func (th *Thread) Freeze() error {
	return th.t.Do(func() error {
		if err := ptrace(unix.PTRACE_INTERRUPT, th.TID, 0, 0); err != nil {
			return fmt.Errorf("interrupt %d: %w", th.TID, err)
		}
		for i := 0; i < 1000; i++ {
			ws, err := wait(th.TID)
			if err != nil {
				return err
			}
			switch {
			case ws.Exited() || ws.Signaled():
				return fmt.Errorf("freeze %d: %s: %w", th.TID, describe(ws), ErrGone)
			case ws.Stopped() && int(ws)>>16 == ptraceEventStop:
				// PTRACE_EVENT_STOP: our interrupt (SIGTRAP), or a
				// group-stop (the task was stopped by SIGSTOP and
				// friends): frozen either way. x/sys's TrapCause only
				// decodes SIGTRAP stops, hence the shift.
				th.GroupStopped = ws.StopSignal() != unix.SIGTRAP
				return nil
			case ws.Stopped():
				// A signal-delivery stop: deliver it. (Suppressing it
				// and re-sending it later loses it: a restart from the
				// interrupt stop ignores the signal argument, and only
				// the thread itself may queue a siginfo that claims the
				// kernel or tgkill as its sender.)
				if err := ptrace(unix.PTRACE_CONT, th.TID, 0, uintptr(ws.StopSignal())); err != nil {
					return fmt.Errorf("continue %d while freezing: %w", th.TID, err)
				}
			}
		}
		return fmt.Errorf("freeze %d: no interrupt stop after 1000 stops", th.TID)
	})
}

// Release resumes a frozen thread and detaches from it.
func (th *Thread) Release() error {
	return th.t.Do(func() error {
		if err := ptrace(unix.PTRACE_DETACH, th.TID, 0, 0); err != nil {
			return fmt.Errorf("detach %d: %w", th.TID, err)
		}
		return nil
	})
}

// Detach detaches a thread that is in a ptrace stop, delivering sig (0 for none).
func (th *Thread) Detach(sig unix.Signal) error {
	return th.t.Do(func() error {
		if err := ptrace(unix.PTRACE_DETACH, th.TID, 0, uintptr(sig)); err != nil {
			return fmt.Errorf("detach %d: %w", th.TID, err)
		}
		return nil
	})
}

// SetOptions sets ptrace options on a thread in a ptrace stop.
func (th *Thread) SetOptions(options int) error {
	return th.t.Do(func() error {
		if err := ptrace(unix.PTRACE_SETOPTIONS, th.TID, 0, uintptr(options)); err != nil {
			return fmt.Errorf("setoptions %d: %w", th.TID, err)
		}
		return nil
	})
}

// WaitStop waits for the next stop of the thread (on the tracer thread).
func (th *Thread) WaitStop() (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	err := th.t.Do(func() error {
		var err error
		ws, err = wait(th.TID)
		return err
	})
	return ws, err
}

// GetRegset reads one register set (PTRACE_GETREGSET); the returned slice
// has the length the kernel reported.
func (th *Thread) GetRegset(note uint32) ([]byte, error) {
	var out []byte
	err := th.t.Do(func() error {
		var err error
		out, err = getRegset(th.TID, note)
		return err
	})
	return out, err
}

func getRegset(tid int, note uint32) ([]byte, error) {
	buf := make([]byte, maxRegsetSize)
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	if err := ptrace(unix.PTRACE_GETREGSET, tid, uintptr(note), uintptr(unsafe.Pointer(&iov))); err != nil {
		return nil, fmt.Errorf("getregset %#x of %d: %w", note, tid, err)
	}
	return append([]byte(nil), buf[:iov.Len]...), nil
}

// SetRegset writes one register set (PTRACE_SETREGSET).
func (th *Thread) SetRegset(note uint32, data []byte) error {
	return th.t.Do(func() error { return setRegset(th.TID, note, data) })
}

func setRegset(tid int, note uint32, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("setregset %#x of %d: empty", note, tid)
	}
	iov := unix.Iovec{Base: &data[0]}
	iov.SetLen(len(data))
	if err := ptrace(unix.PTRACE_SETREGSET, tid, uintptr(note), uintptr(unsafe.Pointer(&iov))); err != nil {
		return fmt.Errorf("setregset %#x of %d: %w", note, tid, err)
	}
	return nil
}

// Regs reads and decodes NT_PRSTATUS.
func (th *Thread) Regs() (arch.Regs, error) {
	raw, err := th.GetRegset(arch.NT_PRSTATUS)
	if err != nil {
		return nil, err
	}
	return th.Arch.DecodeRegs(raw)
}

// SetRegs writes NT_PRSTATUS.
func (th *Thread) SetRegs(r arch.Regs) error { return th.SetRegset(arch.NT_PRSTATUS, r.Bytes()) }

// Sigmask reads the blocked-signal mask (PTRACE_GETSIGMASK).
func (th *Thread) Sigmask() (uint64, error) {
	var m uint64
	err := th.t.Do(func() error {
		if err := ptrace(ptraceGetSigmask, th.TID, 8, uintptr(unsafe.Pointer(&m))); err != nil {
			return fmt.Errorf("getsigmask %d: %w", th.TID, err)
		}
		return nil
	})
	return m, err
}

// SetSigmask writes the blocked-signal mask (PTRACE_SETSIGMASK).
func (th *Thread) SetSigmask(m uint64) error {
	return th.t.Do(func() error { return setSigmask(th.TID, m) })
}

func setSigmask(tid int, m uint64) error {
	if err := ptrace(ptraceSetSigmask, tid, 8, uintptr(unsafe.Pointer(&m))); err != nil {
		return fmt.Errorf("setsigmask %d: %w", tid, err)
	}
	return nil
}

// RseqConfig is struct ptrace_rseq_configuration (include/uapi/linux/ptrace.h).
type RseqConfig struct {
	Addr  uint64
	Len   uint32
	Flags uint32
	Sig   uint32
}

// Rseq reads the thread's rseq registration (PTRACE_GET_RSEQ_CONFIGURATION).
func (th *Thread) Rseq() (RseqConfig, error) {
	var c RseqConfig
	err := th.t.Do(func() error {
		var b [ptraceRseqConfigSize]byte
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, ptraceGetRseqConfig, uintptr(th.TID), uintptr(len(b)), uintptr(unsafe.Pointer(&b[0])), 0, 0)
		if e != 0 {
			return fmt.Errorf("get rseq configuration of %d: %w", th.TID, e)
		}
		// struct ptrace_rseq_configuration { __u64 rseq_abi_pointer; __u32 rseq_abi_size; __u32 signature; __u32 flags; __u32 pad; }
		c.Addr = binary.NativeEndian.Uint64(b[0:])
		c.Len = binary.NativeEndian.Uint32(b[8:])
		c.Sig = binary.NativeEndian.Uint32(b[12:])
		c.Flags = binary.NativeEndian.Uint32(b[16:])
		return nil
	})
	return c, err
}

// PendingSignals reads the thread's queued signals (PTRACE_PEEKSIGINFO),
// per-thread or, with shared, the process-wide queue. Each entry is a raw
// 128-byte siginfo_t.
func (th *Thread) PendingSignals(shared bool) ([][]byte, error) {
	var out [][]byte
	err := th.t.Do(func() error {
		// struct ptrace_peeksiginfo_args { __u64 off; __u32 flags; __s32 nr; }
		var args [16]byte
		var flags uint32
		if shared {
			flags = ptracePeekSiginfoShared
		}
		for off := uint64(0); off < 1<<16; {
			binary.NativeEndian.PutUint64(args[0:], off)
			binary.NativeEndian.PutUint32(args[8:], flags)
			binary.NativeEndian.PutUint32(args[12:], 32)
			buf := make([]byte, 32*siginfoSize)
			n, _, e := unix.Syscall6(unix.SYS_PTRACE, ptracePeekSiginfo, uintptr(th.TID), uintptr(unsafe.Pointer(&args[0])), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
			if e != 0 {
				return fmt.Errorf("peeksiginfo %d: %w", th.TID, e)
			}
			if n == 0 {
				break
			}
			for i := 0; i < int(n); i++ {
				out = append(out, append([]byte(nil), buf[i*siginfoSize:(i+1)*siginfoSize]...))
			}
			off += uint64(n)
		}
		return nil
	})
	return out, err
}

// WaitGone waits (at most a few seconds) until a killed thread has exited,
// stepping it through any ptrace stops on the way, and reaps it as its
// tracer. Wait for the other threads before the leader: the kernel reports
// a group leader's death only after all its threads are gone.
func (th *Thread) WaitGone() {
	_ = th.t.Do(func() error {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(th.TID, &ws, unix.WALL|unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err // ECHILD: gone already
			}
			if pid == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			if ws.Exited() || ws.Signaled() {
				return nil
			}
			_ = ptrace(unix.PTRACE_CONT, th.TID, 0, 0)
		}
		return nil
	})
}
