package checkpoint

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
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
func (f *Frozen) LateSignals(t *image.Task) (*LateSignals, error) {
	if f.released {
		return nil, fmt.Errorf("late signals of %d: the task is no longer frozen", f.PID)
	}
	l := &LateSignals{}
	a := f.Arch
	now, err := f.Threads[0].PendingSignals(true)
	if err != nil {
		return nil, err
	}
	l.Shared = beyond(now, t.SharedPending, a.ByteOrder().Uint32)
	had := make(map[int32][]*image.SigInfo, len(t.Threads))
	for _, it := range t.Threads {
		had[it.Tid] = it.Pending
	}
	for _, th := range f.Threads {
		now, err := th.PendingSignals(false)
		if err != nil {
			return nil, err
		}
		if s := beyond(now, had[int32(th.TID)], a.ByteOrder().Uint32); len(s) > 0 {
			if l.Threads == nil {
				l.Threads = map[int32][]*image.SigInfo{}
			}
			l.Threads[int32(th.TID)] = s
		}
	}
	return l, nil
}

// beyond returns the entries of now (raw siginfos, in queue order) that
// were not in before, counting repeats (a queue of two identical realtime
// signals that had one before holds one late), less the timers' own: the
// move carries the timers, which fire on the destination.
func beyond(now [][]byte, before []*image.SigInfo, u32 func([]byte) uint32) []*image.SigInfo {
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
		if fromTimer(raw, u32) {
			continue
		}
		out = append(out, &image.SigInfo{Signo: int32(u32(raw)), Raw: raw})
	}
	return out
}

// siginfo si_code values (include/uapi/asm-generic/siginfo.h).
const (
	siKernel = 0x80 // sent by the kernel: the interval timers' signals
	siTimer  = -2   // a POSIX timer expired
)

// fromTimer reports whether a siginfo is a timer's expiry: a POSIX timer's,
// or SIGALRM, SIGVTALRM or SIGPROF from the kernel (setitimer). A frozen
// task's ITIMER_REAL and POSIX timers run on; their expiries during the
// cutover are not late signals, since the destination restores the timers
// with the time they had left, and they fire there.
func fromTimer(raw []byte, u32 func([]byte) uint32) bool {
	if len(raw) < 12 {
		return false
	}
	code := int32(u32(raw[8:12]))
	switch code {
	case siTimer:
		return true
	case siKernel:
		sig := u32(raw[0:4])
		return sig == uint32(unix.SIGALRM) || sig == uint32(unix.SIGVTALRM) || sig == uint32(unix.SIGPROF)
	}
	return false
}
