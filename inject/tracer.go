package inject

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Tracer owns one locked OS thread; the kernel requires every ptrace request
// for a tracee to come from the thread that attached it. All methods of
// Thread run their ptrace calls through Do.
type Tracer struct {
	reqs chan func()
	once sync.Once
	quit chan struct{}
}

// ErrClosed: the tracer was closed.
var ErrClosed = errors.New("tracer closed")

// NewTracer starts the tracer thread.
func NewTracer() *Tracer {
	t := &Tracer{reqs: make(chan func()), quit: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		// The thread stays locked for the tracer's whole life and is
		// thrown away afterwards (the goroutine returns while locked), so
		// no other goroutine ever runs on a thread that traces.
		runtime.LockOSThread()
		close(ready)
		for {
			select {
			case f := <-t.reqs:
				f()
			case <-t.quit:
				return
			}
		}
	}()
	<-ready
	return t
}

// Do runs f on the tracer thread and returns its error.
func (t *Tracer) Do(f func() error) error {
	errc := make(chan error, 1)
	select {
	case t.reqs <- func() { errc <- f() }:
	case <-t.quit:
		return ErrClosed
	}
	return <-errc
}

// Close ends the tracer thread. Detach or kill every tracee first: when a
// tracer thread exits, the kernel detaches its tracees.
func (t *Tracer) Close() {
	t.once.Do(func() { close(t.quit) })
}

// Ptrace requests and options missing from x/sys or used raw
// (include/uapi/linux/ptrace.h).
const (
	ptraceGetSigmask          = 0x420a
	ptraceSetSigmask          = 0x420b
	ptraceGetRseqConfig       = 0x420f
	ptraceEventStop           = 128
	PtraceOptions             = unix.PTRACE_O_TRACESYSGOOD
	ptraceSyscallStopSignal   = int(unix.SIGTRAP) | 0x80
	maxRegsetSize             = 64 << 10
	ptraceRseqConfigSize      = 32
	ptraceGetSyscallInfo      = 0x420e
	ptraceSyscallInfoSize     = 88
	ptracePeekSiginfo         = 0x4209
	ptracePeekSiginfoShared   = 1
	siginfoSize               = 128
	ptraceGetSiginfo          = unix.PTRACE_GETSIGINFO
	ptraceInterruptStopReason = "interrupt"
)

func ptrace(req int, pid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// StopError tells why a tracee was not in the stop the caller expected.
type StopError struct {
	TID    int
	Status unix.WaitStatus
	Want   string
}

func (e *StopError) Error() string {
	return fmt.Sprintf("thread %d: %s while waiting for %s", e.TID, describe(e.Status), e.Want)
}

// ErrGone: the tracee exited or was killed.
var ErrGone = errors.New("tracee is gone")

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %v", ws.Signal())
	case ws.Stopped():
		if ev := ws.TrapCause(); ev > 0 {
			return fmt.Sprintf("stopped by event %d", ev)
		}
		return fmt.Sprintf("stopped by %v", ws.StopSignal())
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

// wait waits for one state change of tid (__WALL: threads too).
func wait(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for %d: %w", tid, err)
		}
		return ws, nil
	}
}
