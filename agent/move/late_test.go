package move

import (
	"encoding/binary"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/image"
)

func siginfo(sig unix.Signal, code int32) *image.SigInfo {
	b := make([]byte, 128)
	binary.NativeEndian.PutUint32(b[0:], uint32(sig))
	binary.NativeEndian.PutUint32(b[8:], uint32(code))
	binary.NativeEndian.PutUint32(b[12:], 4242) // si_pid: from the source's side
	return &image.SigInfo{Signo: int32(sig), Raw: b}
}

// Every forwarded signal reaches the task: kill's (sent with kill), a
// sigqueue's (queued with its siginfo), a thread's with tgkill, and a
// thread's whose thread is gone (to the process).
func TestDeliverForward(t *testing.T) {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
	defer signal.Stop(ch)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	late := &checkpoint.LateSignals{
		Shared: []*image.SigInfo{siginfo(unix.SIGUSR1, 0), siginfo(unix.SIGWINCH, -1)},
		Threads: map[int32][]*image.SigInfo{
			int32(unix.Gettid()): {siginfo(unix.SIGUSR2, -6)},
			1 << 22:              {siginfo(unix.SIGUSR2, -1)}, // no such thread
		},
	}
	fw := forwardOf("m", late)
	if len(fw.Threads) != 2 || fw.Threads[0].Tid > fw.Threads[1].Tid {
		t.Fatalf("Forward threads %v: want two, by TID", fw.Threads)
	}
	n, err := deliverForward(os.Getpid(), fw)
	if err != nil || n != 4 {
		t.Fatalf("delivered %d (err %v), want 4", n, err)
	}
	got := map[os.Signal]int{}
	timeout := time.After(10 * time.Second)
	for got[unix.SIGUSR1] < 1 || got[unix.SIGWINCH] < 1 || got[unix.SIGUSR2] < 1 {
		select {
		case s := <-ch:
			got[s]++
		case <-timeout:
			t.Fatalf("received %v", got)
		}
	}
	if _, err := deliverForward(os.Getpid(), &image.Forward{Shared: []*image.SigInfo{{Signo: 99}}}); err == nil {
		t.Error("signal 99 was forwarded")
	}
}

// A move in doubt may be resolved long after: its forwarded signals go to
// the task only while its PID still names it.
func TestOutcomesStillRunning(t *testing.T) {
	cmd := exec.Command("/bin/sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var o Outcomes
	o.setRunning("m", cmd.Process.Pid)
	if !o.stillRunning("m") {
		t.Fatal("a running task is not still running")
	}
	if o.stillRunning("other") {
		t.Error("an unknown move runs")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if o.stillRunning("m") {
		t.Error("an exited task (its pid free or another's) still runs")
	}
	o.set("a", image.Outcome_ABORTED, 0)
	if o.stillRunning("a") {
		t.Error("an aborted move runs")
	}
}
