package restore

import (
	"fmt"
	"sort"

	"github.com/migrated/migrated/arch"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/inject"
)

// prctl options (include/uapi/linux/prctl.h, Linux 6.17): with
// PR_TIMER_CREATE_RESTORE_IDS on, timer_create takes the ID the caller
// put where the new ID goes.
const (
	prTimerCreateRestoreIDs    = 77
	prTimerCreateRestoreIDsOff = 0
	prTimerCreateRestoreIDsOn  = 1
)

// maxTimerIDGap bounds the placeholder timers made, on a kernel without
// PR_TIMER_CREATE_RESTORE_IDS, to reach a timer's ID (IDs are handed out
// in order from 0 in a new process, never reused).
const maxTimerIDGap = 4096

// setPosixTimers recreates the task's POSIX timers with their IDs, clocks,
// notification and the time they had left (relative). It runs after the
// threads exist: a timer may notify one of them (SIGEV_THREAD_ID).
func (p *Process) setPosixTimers(timers []*image.PosixTimer) error {
	if len(timers) == 0 {
		return nil
	}
	a, sc := p.Arch, p.sc()
	if sc.TimerCreate == 0 {
		return fmt.Errorf("%w: POSIX timers on %s", arch.ErrUnsupported, a.Name())
	}
	sorted := append([]*image.PosixTimer(nil), timers...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Id < sorted[j].Id })
	byID := false
	if !p.opts.NoTimerRestoreIDs {
		_, err := p.call("prctl", sc.Prctl, prTimerCreateRestoreIDs, prTimerCreateRestoreIDsOn, 0, 0, 0)
		byID = err == nil
	}
	var placeholders []int32
	next := int32(0)
	for _, tm := range sorted {
		if !byID {
			if tm.Id < next || tm.Id-next > maxTimerIDGap {
				return fmt.Errorf("POSIX timer %d: this kernel cannot recreate it with its ID (no PR_TIMER_CREATE_RESTORE_IDS, and %d timers would have to be made to reach it)", tm.Id, tm.Id-next)
			}
			for ; next < tm.Id; next++ {
				if err := p.timerCreate(1 /* CLOCK_MONOTONIC */, arch.EncodeSigevent(a, 0, 0, 1 /* SIGEV_NONE */, 0), next, false); err != nil {
					return fmt.Errorf("placeholder POSIX timer %d: %w", next, err)
				}
				placeholders = append(placeholders, next)
			}
		}
		sev := arch.EncodeSigevent(a, tm.Value, tm.Signo, tm.Notify, tm.Tid)
		if err := p.timerCreate(tm.Clock, sev, tm.Id, byID); err != nil {
			return fmt.Errorf("POSIX timer %d (clock %d): %w", tm.Id, tm.Clock, err)
		}
		next = tm.Id + 1
		value := tm.ValueNs
		if value == 0 && tm.IntervalNs != 0 {
			value = tm.IntervalNs // periodic, its signal pending: the next period
		}
		if value == 0 {
			continue
		}
		ptr, err := p.writeScratch(arch.EncodeITimerspec(a, tm.IntervalNs, value))
		if err != nil {
			return err
		}
		if _, err := p.call("timer_settime", sc.TimerSettime, uint64(tm.Id), 0, ptr, 0); err != nil {
			return fmt.Errorf("POSIX timer %d: arm: %w", tm.Id, err)
		}
	}
	if byID {
		if _, err := p.call("prctl", sc.Prctl, prTimerCreateRestoreIDs, prTimerCreateRestoreIDsOff, 0, 0, 0); err != nil {
			return err
		}
	}
	for _, id := range placeholders {
		if _, err := p.call("timer_delete", sc.TimerDelete, uint64(id)); err != nil {
			return fmt.Errorf("placeholder POSIX timer %d: %w", id, err)
		}
	}
	return nil
}

// timerCreate makes one timer from inside the task and checks it got ID
// want (asked for by ID when byID).
func (p *Process) timerCreate(clock int32, sev []byte, want int32, byID bool) error {
	a := p.Arch
	buf := make([]byte, arch.SigeventSize+8)
	copy(buf, sev)
	if byID {
		a.ByteOrder().PutUint32(buf[arch.SigeventSize:], uint32(want))
	}
	ptr, err := p.writeScratch(buf)
	if err != nil {
		return err
	}
	idAt := ptr + arch.SigeventSize
	if _, err := p.call("timer_create", p.sc().TimerCreate, uint64(uint32(clock)), ptr, idAt); err != nil {
		return err
	}
	got := make([]byte, 4)
	if err := inject.ReadMem(p.PID, idAt, got); err != nil {
		return err
	}
	if id := int32(a.ByteOrder().Uint32(got)); id != want {
		return fmt.Errorf("the kernel gave it ID %d, not %d", id, want)
	}
	return nil
}
