package checkpoint

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/image"
)

func siginfo(sig int, code int32, pid uint32) []byte {
	b := make([]byte, 128)
	binary.NativeEndian.PutUint32(b[0:], uint32(sig))
	binary.NativeEndian.PutUint32(b[8:], uint32(code))
	binary.NativeEndian.PutUint32(b[12:], pid)
	return b
}

// The queues read again at the kill hold the captured entries plus the late
// ones; repeats count; the expiries of a timer that travels armed (an
// interval timer, a POSIX timer by ID) are not late (it fires on the
// destination), other timers' are.
func TestBeyond(t *testing.T) {
	usr1 := siginfo(int(unix.SIGUSR1), 0, 7)        // kill from pid 7
	rt := siginfo(34, -1, 8)                        // sigqueue of SIGRTMIN
	alrm := siginfo(int(unix.SIGALRM), siKernel, 0) // ITIMER_REAL
	prof := siginfo(int(unix.SIGPROF), siKernel, 0) // ITIMER_PROF
	ptimer := siginfo(35, siTimer, 0)               // POSIX timer 0 (SI_TIMER), not carried
	ptimer3 := siginfo(36, siTimer, 0)              // POSIX timer 3, carried armed
	binary.NativeEndian.PutUint32(ptimer3[16:], 3)
	term := siginfo(int(unix.SIGTERM), -6, 9) // tgkill
	task := &image.Task{Itimers: []*image.ITimer{
		{Which: 0, IntervalNs: 20e6, ValueNs: 5e6}, // ITIMER_REAL armed
		{Which: 2}, // ITIMER_PROF disarmed
	}, PosixTimers: []*image.PosixTimer{{Id: 3, ValueNs: 1e9}}}
	before := []*image.SigInfo{{Signo: 34, Raw: rt}}
	now := [][]byte{rt, usr1, rt, alrm, prof, ptimer, ptimer3, term}
	got := beyond(now, before, timerTravels(task, binary.NativeEndian.Uint32), binary.NativeEndian.Uint32)
	want := []int32{int32(unix.SIGUSR1), 34, int32(unix.SIGPROF), 35, int32(unix.SIGTERM)}
	if len(got) != len(want) {
		t.Fatalf("late: %d signals, want %v", len(got), want)
	}
	for i, s := range got {
		if s.Signo != want[i] {
			t.Errorf("late %d: signal %d, want %d", i, s.Signo, want[i])
		}
	}
	if l := (&LateSignals{Shared: got, Threads: map[int32][]*image.SigInfo{5: got[:1]}}); l.Count() != 6 || l.Empty() {
		t.Errorf("Count %d Empty %v, want 6 false", l.Count(), l.Empty())
	}
	if got := beyond([][]byte{rt}, before, nil, binary.NativeEndian.Uint32); len(got) != 0 {
		t.Errorf("nothing came late, got %d", len(got))
	}
}
