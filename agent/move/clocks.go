package move

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/restore"
)

// A task's CLOCK_MONOTONIC and CLOCK_BOOTTIME count from its host's boot.
// Moved to a host that booted later, they would go back, which no program
// expects: the destination then restores the task into a time namespace
// whose offsets carry its clocks on. The offsets must be set before the
// process exists, so at the start of the move, from the clocks the manifest
// carries (read by the source just before it sent them): the difference
// between the task's clocks and ours, measured that way, is short by the
// manifest's transit, which the margin (a round trip and some) covers. The
// clocks then resume about where they stopped. At the cutover, check
// measures against the clocks of the freeze how far they would still go
// back (what the margin missed, on a loaded host): the destination waits
// that out, up to a second, or refuses.

// clockPlan is how the task's clocks continue here.
type clockPlan struct {
	need       bool  // the task's clocks are ahead of ours
	mono, boot int64 // task's minus ours, plus the margin
}

type monoNow struct{ mono, boot int64 }

func readClocks() monoNow {
	var m, b unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &m)
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &b)
	return monoNow{m.Nano(), b.Nano()}
}

// smallSkew is how far ahead a task's clocks may be where no time namespace
// can be made: the move's downtime usually covers it (the clocks then stand
// still for a moment instead of going back), and the cutover checks that it
// did. Further ahead, the destination refuses the move at once (timens).
const smallSkew = int64(100 * time.Millisecond)

// clockMargin is added to the measured difference: the manifest's transit
// takes a round trip at most on the wire, and both agents' handling of it
// a few milliseconds more (4 ms measured here under load).
func clockMargin(rtt time.Duration) int64 { return int64(rtt + 10*time.Millisecond) }

// planClocks compares the task's clocks c (from the manifest; nil from an
// older source) with ours now. timeNS tells whether this kernel makes time
// namespaces. refuse: the task's clocks are too far ahead for a kernel
// without them.
func planClocks(c *image.Clocks, rtt time.Duration, timeNS bool) (p clockPlan, refuse bool) {
	if c == nil {
		return clockPlan{}, false
	}
	now := readClocks()
	p = clockPlan{mono: c.MonotonicNs - now.mono, boot: c.BoottimeNs - now.boot}
	ahead := max(p.mono, p.boot)
	if ahead <= 0 {
		return clockPlan{}, false
	}
	if !timeNS {
		return clockPlan{}, ahead > smallSkew
	}
	p.need = true
	p.mono += clockMargin(rtt)
	p.boot += clockMargin(rtt)
	return p, false
}

// taskNow is the task's clocks carried on to now (what restore.Start sets
// the time namespace from), or nil when the task needs no namespace.
func (p clockPlan) taskNow() *image.Clocks {
	if !p.need {
		return nil
	}
	now := readClocks()
	return &image.Clocks{MonotonicNs: now.mono + p.mono, BoottimeNs: now.boot + p.boot}
}

// maxClockWait bounds how long the cutover waits for this host's clocks to
// catch up with the task's (see check).
const maxClockWait = time.Second

// check tells, at the cutover, how long to wait before the task may run
// here so that its clocks do not go back: its clocks at the freeze (c)
// against ours now plus the offsets of the namespace proc runs in. The
// margin usually makes that 0; when the manifest's handling took longer
// than the margin (a loaded host), the shortfall is waited out, a little
// more downtime instead of a failed move. Beyond maxClockWait it is an
// error.
func (p clockPlan) check(c *image.Clocks, proc *restore.Process) (time.Duration, error) {
	if c == nil {
		return 0, nil
	}
	offMono, offBoot := proc.TimeOffsets()
	now := readClocks()
	backMono := time.Duration(c.MonotonicNs - (now.mono + offMono))
	backBoot := time.Duration(c.BoottimeNs - (now.boot + offBoot))
	if backMono > maxClockWait {
		return 0, fmt.Errorf("the task's CLOCK_MONOTONIC would go back by %v here (time namespace offset %v)", backMono, time.Duration(offMono))
	}
	if backBoot > maxClockWait {
		return 0, fmt.Errorf("the task's CLOCK_BOOTTIME would go back by %v here (time namespace offset %v)", backBoot, time.Duration(offBoot))
	}
	return max(backMono, backBoot, 0), nil
}
