package inject

import (
	"errors"
	"fmt"

	"github.com/migrated/migrated/arch"
	"golang.org/x/sys/unix"
)

// Injector runs system calls inside one stopped thread. Begin saves the
// thread's registers and signal mask and blocks every signal, so nothing is
// delivered in the middle of an injected call; End puts both back. Between
// them, Call runs one system call at a time from the gadget.
type Injector struct {
	th     *Thread
	gadget uint64
	saved  arch.Regs
	mask   uint64
	active bool
	// Calls counts injected system calls (for metrics and tests).
	Calls int
}

// SyscallError is a failed injected system call.
type SyscallError struct {
	Name  string
	Errno unix.Errno
}

func (e *SyscallError) Error() string { return fmt.Sprintf("injected %s: %v", e.Name, e.Errno) }
func (e *SyscallError) Unwrap() error { return e.Errno }

// Begin prepares th for injection, running calls from the syscall
// instruction at gadget.
func Begin(th *Thread, gadget uint64) (*Injector, error) {
	in := &Injector{th: th, gadget: gadget}
	err := th.t.Do(func() error {
		raw, err := getRegset(th.TID, arch.NT_PRSTATUS)
		if err != nil {
			return err
		}
		if in.saved, err = th.Arch.DecodeRegs(raw); err != nil {
			return fmt.Errorf("thread %d: %w", th.TID, err)
		}
		var m uint64
		if err := ptraceGetSigmaskRaw(th.TID, &m); err != nil {
			return err
		}
		in.mask = m
		return setSigmask(th.TID, ^uint64(0))
	})
	if err != nil {
		return nil, err
	}
	in.active = true
	return in, nil
}

// TID is the thread the injector runs calls in.
func (in *Injector) TID() int { return in.th.TID }

// Gadget is the address calls run from.
func (in *Injector) Gadget() uint64 { return in.gadget }

// SetGadget moves where calls run from (after the mapping that held the old
// gadget moved or went away).
func (in *Injector) SetGadget(g uint64) { in.gadget = g }

// Saved returns the registers the thread had at Begin.
func (in *Injector) Saved() arch.Regs { return in.saved }

// SetSaved replaces the registers End restores (the restore side installs
// the task's own registers this way).
func (in *Injector) SetSaved(r arch.Regs) { in.saved = r }

// SetSavedMask replaces the signal mask End restores.
func (in *Injector) SetSavedMask(m uint64) { in.mask = m }

// Call runs system call nr with args and returns its result; a negative
// result becomes a *SyscallError named name.
func (in *Injector) Call(name string, nr int, args ...uint64) (uint64, error) {
	if !in.active {
		return 0, fmt.Errorf("injected %s: injector ended", name)
	}
	if nr <= 0 && name != "restart_syscall" {
		return 0, fmt.Errorf("injected %s: no such syscall on %s", name, in.th.Arch.Name())
	}
	var ret uint64
	var errno arch.Errno
	err := in.th.t.Do(func() error {
		r := in.saved.Clone()
		r.SetSyscall(in.gadget, uint64(nr), args...)
		if err := setRegset(in.th.TID, arch.NT_PRSTATUS, r.Bytes()); err != nil {
			return err
		}
		// Entry stop, then exit stop. Event stops (a fork or clone made
		// by the call itself) come in between and are stepped over.
		for _, want := range []string{"syscall entry", "syscall exit"} {
			if err := stepToSyscallStop(in.th.TID, want); err != nil {
				return fmt.Errorf("injected %s: %w", name, err)
			}
		}
		raw, err := getRegset(in.th.TID, arch.NT_PRSTATUS)
		if err != nil {
			return err
		}
		out, err := in.th.Arch.DecodeRegs(raw)
		if err != nil {
			return err
		}
		ret, errno = out.SyscallResult()
		return nil
	})
	in.Calls++
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, &SyscallError{Name: name, Errno: unix.Errno(errno)}
	}
	return ret, nil
}

// RunToTrap runs code in the thread from registers r (its PC at the code)
// until the trap that ends it: trapPC is the PC the trap's SIGTRAP stop
// shows. The code must make no system call that stops or forks. SIGTRAP
// is unblocked for the run (a trap while it is blocked would make the
// kernel reset the task's SIGTRAP action and unblock it in the task's
// own mask, force_sig_info_to_task in kernel/signal.c); a SIGTRAP action
// of SIG_IGN is reset to SIG_DFL all the same, which the caller must put
// back. The SIGTRAP is not delivered (the next resume passes no signal).
// Every other signal stays blocked; the registers are the caller's to
// read, and End restores the thread's own.
func (in *Injector) RunToTrap(r arch.Regs, trapPC uint64) (arch.Regs, error) {
	if !in.active {
		return nil, errors.New("run to trap: injector ended")
	}
	var out arch.Regs
	err := in.th.t.Do(func() error {
		tid := in.th.TID
		if err := setSigmask(tid, ^uint64(0)&^(1<<(uint(unix.SIGTRAP)-1))); err != nil {
			return err
		}
		defer setSigmask(tid, ^uint64(0))
		if err := setRegset(tid, arch.NT_PRSTATUS, r.Bytes()); err != nil {
			return err
		}
		if err := resumeToStop(tid, unix.PTRACE_CONT, int(unix.SIGTRAP), "the code's trap"); err != nil {
			return err
		}
		raw, err := getRegset(tid, arch.NT_PRSTATUS)
		if err != nil {
			return err
		}
		if out, err = in.th.Arch.DecodeRegs(raw); err != nil {
			return err
		}
		if out.PC() != trapPC {
			return fmt.Errorf("thread %d: SIGTRAP at %#x, not at the code's trap (%#x)", tid, out.PC(), trapPC)
		}
		return nil
	})
	in.Calls++
	return out, err
}

// RunCode maps code into the thread's process on a page of its own
// (mapped writable, filled, then made read-and-execute), runs it with
// RunToTrap from the registers setup makes of the thread's saved ones (at
// is where the code went), and unmaps the page. ran is false, with nothing
// run, when the page could not be mapped, filled or made executable (W^X
// policies such as SELinux execmem refuse that): the caller then goes the
// slow way. An error after the run began is returned as such.
func (in *Injector) RunCode(pageSize uint64, code []byte, trapPC uint64, setup func(r arch.Regs, at uint64)) (ran bool, err error) {
	if uint64(len(code)) > pageSize {
		return false, nil
	}
	sc := in.th.Arch.Syscalls()
	page, err := in.Call("mmap", sc.Mmap, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		return false, nil
	}
	defer func() {
		if _, e := in.Call("munmap", sc.Munmap, page, pageSize); e != nil && err == nil {
			err = e
		}
	}()
	if err := WriteMem(in.th.TID, page, code); err != nil {
		return false, nil
	}
	if _, err := in.Call("mprotect", sc.Mprotect, page, pageSize, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return false, nil
	}
	r := in.saved.Clone()
	setup(r, page)
	if _, err := in.RunToTrap(r, page+trapPC); err != nil {
		return true, err
	}
	return true, nil
}

func stepToSyscallStop(tid int, want string) error {
	return resumeToStop(tid, unix.PTRACE_SYSCALL, ptraceSyscallStopSignal, want)
}

// resumeToStop resumes tid with req (PTRACE_SYSCALL, PTRACE_CONT) until it
// stops with signal sig, stepping over PTRACE_EVENT stops (a fork or clone
// made by an injected call). Every blockable signal is blocked during
// injection; any other stop is a synchronous fault of the injected code.
func resumeToStop(tid, req, sig int, want string) error {
	for i := 0; i < 64; i++ {
		if err := ptrace(req, tid, 0, 0); err != nil {
			return fmt.Errorf("ptrace %d on %d: %w", req, tid, err)
		}
		ws, err := wait(tid)
		if err != nil {
			return err
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return fmt.Errorf("thread %d %s: %w", tid, describe(ws), ErrGone)
		case ws.Stopped() && int(ws.StopSignal()) == sig && ws.TrapCause() <= 0:
			return nil
		case ws.Stopped() && ws.TrapCause() > 0:
			continue // PTRACE_EVENT_* stop: step on
		case ws.Stopped():
			return &StopError{TID: tid, Status: ws, Want: want}
		}
	}
	return fmt.Errorf("thread %d: no %s stop", tid, want)
}

// End restores the registers and signal mask saved at Begin (or set with
// SetSaved/SetSavedMask). The thread stays stopped.
func (in *Injector) End() error {
	if !in.active {
		return nil
	}
	in.active = false
	return in.th.t.Do(func() error {
		if err := setRegset(in.th.TID, arch.NT_PRSTATUS, in.saved.Bytes()); err != nil {
			return err
		}
		return setSigmask(in.th.TID, in.mask)
	})
}

func ptraceGetSigmaskRaw(tid int, m *uint64) error {
	if err := ptrace(ptraceGetSigmask, tid, 8, uintptrOf(m)); err != nil {
		return fmt.Errorf("getsigmask %d: %w", tid, err)
	}
	return nil
}
