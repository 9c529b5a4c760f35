package checkpoint

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/migrated/migrated/arch"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
	"github.com/migrated/migrated/internal/procfs"
)

// posixTimers lists the task's POSIX timers (timer_create) from
// /proc/PID/timers, and says why any cannot travel. Without that file
// (a kernel without CONFIG_CHECKPOINT_RESTORE) none can be seen.
func posixTimers(pid int) ([]procfs.Timer, []string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timers", pid))
	if err != nil {
		return nil, nil
	}
	timers, err := procfs.ParseTimers(b)
	if err != nil {
		return nil, []string{fmt.Sprintf("its POSIX timers cannot be read: %v", err)}
	}
	var problems []string
	for _, tm := range timers {
		if why := timerProblem(pid, tm); why != "" {
			problems = append(problems, fmt.Sprintf("POSIX timer %d %s", tm.ID, why))
		}
	}
	return timers, problems
}

// The clocks a timer can be recreated on (include/uapi/linux/time.h):
// REALTIME, MONOTONIC, BOOTTIME, REALTIME_ALARM, BOOTTIME_ALARM, TAI.
var timerClocks = map[int32]bool{0: true, 1: true, 7: true, 8: true, 9: true, 11: true}

// timerProblem says why timer tm of task pid cannot travel, or "".
func timerProblem(pid int, tm procfs.Timer) string {
	switch {
	case tm.Clock < 0:
		// A CPU-time clock (include/linux/posix-timers.h): ~pid << 3 |
		// per-thread bit 4 | clock kind. The task's own process clock
		// (pid 0: the caller's, or its own PID, which it keeps) works
		// the same after the move; a thread's is bound to the thread
		// that made the timer, which restore cannot tell.
		owner := ^(tm.Clock >> 3)
		if tm.Clock&4 != 0 {
			return "counts a thread's CPU time, which migrated does not recreate yet"
		}
		if owner != 0 && int(owner) != pid {
			return fmt.Sprintf("counts the CPU time of another process (%d)", owner)
		}
	case !timerClocks[tm.Clock]:
		return fmt.Sprintf("is on clock %d, which migrated does not recreate", tm.Clock)
	}
	if tm.Notify&4 != 0 { // SIGEV_THREAD_ID
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tm.Target)); err != nil {
			return fmt.Sprintf("notifies thread %d, which is not one of the task's", tm.Target)
		}
	}
	return ""
}

// capturePosixTimers reads each timer's setting from inside the task
// (timer IDs are per process: only the task can ask).
func (f *Frozen) capturePosixTimers(in *inject.Injector, t *image.Task, s scratch) error {
	timers, problems := posixTimers(f.PID)
	if len(problems) > 0 {
		return &UnsupportedError{PID: f.PID, Problems: problems}
	}
	a := f.Arch
	size := arch.ITimerspecSize(a)
	buf := make([]byte, size)
	for _, tm := range timers {
		if _, err := in.Call("timer_gettime", a.Syscalls().TimerGettime, uint64(tm.ID), s.addr); err != nil {
			return fmt.Errorf("read POSIX timer %d: %w", tm.ID, err)
		}
		if err := inject.ReadMem(f.PID, s.addr, buf); err != nil {
			return err
		}
		iv, v, err := arch.DecodeITimerspec(a, buf)
		if err != nil {
			return err
		}
		value := tm.Value
		if a.WordSize() == 4 {
			// The 64-bit kernel keeps a 32-bit task's sigev_value in the
			// sival_int of its union: the high half of the sival_ptr
			// /proc shows on a big-endian kernel (ppc32 on ppc64).
			if a.ByteOrder() == binary.BigEndian {
				value >>= 32
			}
			value &= 0xffffffff
		}
		pt := &image.PosixTimer{Id: tm.ID, Clock: tm.Clock, Notify: tm.Notify, Signo: tm.Signo, Value: value, IntervalNs: iv, ValueNs: v}
		if tm.Notify&4 != 0 {
			pt.Tid = tm.Target
		}
		t.PosixTimers = append(t.PosixTimers, pt)
	}
	return nil
}
