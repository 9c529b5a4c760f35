package checkpoint

import (
	"errors"
	"fmt"
	"os"

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
	armed := armedItimers(t)
	var errs []error
	now, err := f.Threads[0].PendingSignals(true)
	if err != nil {
		errs = append(errs, err)
	}
	l.Shared = beyond(now, t.SharedPending, armed, a.ByteOrder().Uint32)
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
		if s := beyond(now, had[int32(th.TID)], armed, a.ByteOrder().Uint32); len(s) > 0 {
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
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st, err := procfs.ParseStat(b)
	return err == nil && st.State != 'Z' && st.State != 'X'
}

// armedItimers are the signals of the interval timers t carries armed:
// the destination restores those timers, which fire there.
func armedItimers(t *image.Task) map[uint32]bool {
	sigOf := map[int32]uint32{0: uint32(unix.SIGALRM), 1: uint32(unix.SIGVTALRM), 2: uint32(unix.SIGPROF)}
	armed := map[uint32]bool{}
	for _, it := range t.Itimers {
		if sig, ok := sigOf[it.Which]; ok && (it.ValueNs > 0 || it.IntervalNs > 0) {
			armed[sig] = true
		}
	}
	return armed
}

// beyond returns the entries of now (raw siginfos, in queue order) that
// were not in before, counting repeats (a queue of two identical realtime
// signals that had one before holds one late), less the expiries of the
// interval timers that travel armed (armed, by signal).
func beyond(now [][]byte, before []*image.SigInfo, armed map[uint32]bool, u32 func([]byte) uint32) []*image.SigInfo {
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
		if len(raw) >= 12 && int32(u32(raw[8:12])) == siKernel && armed[u32(raw[0:4])] {
			continue
		}
		out = append(out, &image.SigInfo{Signo: int32(u32(raw)), Raw: raw})
	}
	return out
}

// siKernel is the si_code of a signal the kernel sends for itself
// (include/uapi/asm-generic/siginfo.h): setitimer's SIGALRM, SIGVTALRM and
// SIGPROF carry it. (POSIX timers, SI_TIMER, do not travel with a task yet:
// their expiries are forwarded like any signal.)
const siKernel = 0x80
