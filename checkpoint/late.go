package checkpoint

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/internal/procfs"
)

// LateSignals are signals queued for the frozen task after t, its captured
// state, was read: a kill or sigqueue that came during the cutover. The
// original never takes them (it is killed), and t does not carry them, so
// the move forwards them to the copy that runs on.
type LateSignals struct {
	Shared  []*image.SigInfo           // the process-wide queue
	Threads map[int32][]*image.SigInfo // by TID
}

// Empty reports whether no signal came late.
func (l *LateSignals) Empty() bool { return l == nil || len(l.Shared) == 0 && len(l.Threads) == 0 }

// Count is the number of late signals.
func (l *LateSignals) Count() int {
	if l == nil {
		return 0
	}
	n := len(l.Shared)
	for _, s := range l.Threads {
		n += len(s)
	}
	return n
}

// LateSignals reads every queue of the still frozen task again and returns
// what was queued beyond t's pending signals. A frozen task dequeues
// nothing, so the queues now hold t's entries plus the late ones; a
// standard signal already pending is merged by the kernel and comes late
// only if it was not pending before, as it would on a task never moved.
// A queue that cannot be read is skipped and named in the error, with
// what the others hold; ErrGone: the task died while frozen (a SIGKILL
// from someone else leaves no queue entry; it just kills).
func (f *Frozen) LateSignals(t *image.Task) (*LateSignals, error) {
	if f.released {
		return nil, fmt.Errorf("late signals of %d: the task is no longer frozen", f.PID)
	}
	l := &LateSignals{}
	a := f.Arch
	travels := timerTravels(t, a.ByteOrder().Uint32)
	var errs []error
	now, err := f.Threads[0].PendingSignals(true)
	if err != nil {
		errs = append(errs, err)
	}
	l.Shared = beyond(now, t.SharedPending, travels, a.ByteOrder().Uint32)
	had := make(map[int32][]*image.SigInfo, len(t.Threads))
	for _, it := range t.Threads {
		had[it.Tid] = it.Pending
	}
	for _, th := range f.Threads {
		now, err := th.PendingSignals(false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s := beyond(now, had[int32(th.TID)], travels, a.ByteOrder().Uint32); len(s) > 0 {
			if l.Threads == nil {
				l.Threads = map[int32][]*image.SigInfo{}
			}
			l.Threads[int32(th.TID)] = s
		}
	}
	if len(errs) > 0 {
		if !procAlive(f.PID) {
			return l, fmt.Errorf("%w: task %d died while frozen for the cutover", ErrGone, f.PID)
		}
		return l, errors.Join(errs...)
	}
	return l, nil
}

// ErrGone: the frozen task is gone.
var ErrGone = errors.New("task gone")

// procAlive reports whether pid is a process that has not exited (a
// zombie has).
func procAlive(pid int) bool {
	st, err := procfs.ReadStat(pid)
	return err == nil && !st.Exited()
}

// timerTravels tells, of a siginfo, whether it is the expiry of a timer t
// carries armed: an interval timer's (setitimer: SIGALRM, SIGVTALRM,
// SIGPROF from the kernel) or a POSIX timer's (SI_TIMER, by timer ID). The
// destination restores those timers, which fire there: such an expiry
// during the cutover is not a late signal.
func timerTravels(t *image.Task, u32 func([]byte) uint32) func(raw []byte) bool {
	sigOf := map[int32]uint32{0: uint32(unix.SIGALRM), 1: uint32(unix.SIGVTALRM), 2: uint32(unix.SIGPROF)}
	itimer := map[uint32]bool{}
	for _, it := range t.Itimers {
		if sig, ok := sigOf[it.Which]; ok && (it.ValueNs > 0 || it.IntervalNs > 0) {
			itimer[sig] = true
		}
	}
	posix := map[int32]bool{}
	for _, pt := range t.PosixTimers {
		if pt.ValueNs > 0 || pt.IntervalNs > 0 {
			posix[pt.Id] = true
		}
	}
	return func(raw []byte) bool {
		if len(raw) < 20 {
			return false
		}
		switch int32(u32(raw[8:12])) {
		case siKernel:
			return itimer[u32(raw[0:4])]
		case siTimer:
			// The union of siginfo starts at 16 in the 64-bit layout
			// PTRACE_PEEKSIGINFO gives a 64-bit tracer; si_timerid
			// opens it.
			return posix[int32(u32(raw[16:20]))]
		}
		return false
	}
}

// beyond returns the entries of now (raw siginfos, in queue order) that
// were not in before, counting repeats (a queue of two identical realtime
// signals that had one before holds one late), less the expiries of the
// timers that travel armed (travels).
func beyond(now [][]byte, before []*image.SigInfo, travels func([]byte) bool, u32 func([]byte) uint32) []*image.SigInfo {
	seen := make(map[string]int, len(before))
	for _, s := range before {
		seen[string(s.Raw)]++
	}
	var out []*image.SigInfo
	for _, raw := range now {
		if seen[string(raw)] > 0 {
			seen[string(raw)]--
			continue
		}
		if travels != nil && travels(raw) {
			continue
		}
		out = append(out, &image.SigInfo{Signo: int32(u32(raw)), Raw: raw})
	}
	return out
}

// si_code values (include/uapi/asm-generic/siginfo.h): a signal the kernel
// sends for itself (setitimer's SIGALRM, SIGVTALRM and SIGPROF carry it),
// a POSIX timer's expiry.
const (
	siKernel = 0x80
	siTimer  = -2
)
