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
// ones; repeats count, and the timers' expiries are not late (the timers
// travel and fire on the destination).
func TestBeyond(t *testing.T) {
	usr1 := siginfo(int(unix.SIGUSR1), 0, 7)        // kill from pid 7
	rt := siginfo(34, -1, 8)                        // sigqueue of SIGRTMIN
	alrm := siginfo(int(unix.SIGALRM), siKernel, 0) // ITIMER_REAL
	ptimer := siginfo(35, siTimer, 0)               // a POSIX timer
	term := siginfo(int(unix.SIGTERM), -6, 9)       // tgkill
	before := []*image.SigInfo{{Signo: 34, Raw: rt}}
	now := [][]byte{rt, usr1, rt, alrm, ptimer, term}
	got := beyond(now, before, binary.NativeEndian.Uint32)
	want := []int32{int32(unix.SIGUSR1), 34, int32(unix.SIGTERM)}
	if len(got) != len(want) {
		t.Fatalf("late: %d signals, want %v", len(got), want)
	}
	for i, s := range got {
		if s.Signo != want[i] {
			t.Errorf("late %d: signal %d, want %d", i, s.Signo, want[i])
		}
	}
	if l := (&LateSignals{Shared: got, Threads: map[int32][]*image.SigInfo{5: got[:1]}}); l.Count() != 4 || l.Empty() {
		t.Errorf("Count %d Empty %v, want 4 false", l.Count(), l.Empty())
	}
	if got := beyond([][]byte{rt}, before, binary.NativeEndian.Uint32); len(got) != 0 {
		t.Errorf("nothing came late, got %d", len(got))
	}
}
