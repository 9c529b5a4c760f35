package engine_test

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/e2e/workload"
	"github.com/migrated/migrated/image"
	"github.com/migrated/migrated/internal/procfs"
	"github.com/migrated/migrated/restore"
)

// move checkpoints pid into memory (killing it), restores it and resumes
// it; it returns the restored PID.
func move(t *testing.T, p *workload.Proc, pid int) int {
	t.Helper()
	return moveWith(t, p, pid, restore.Options{})
}

// moveWith is move with restore options.
func moveWith(t *testing.T, p *workload.Proc, pid int, opts restore.Options) int {
	t.Helper()
	var img bytes.Buffer
	task, st, err := checkpoint.Dump(pid, &img, checkpoint.DumpOptions{})
	if err != nil {
		t.Fatalf("checkpoint %d: %v", pid, err)
	}
	if err := p.Reap(10 * time.Second); err != nil {
		t.Fatalf("reap original %d: %v", pid, err)
	}
	t.Logf("checkpoint: %d VMAs, %d pages, %d image bytes, frozen %v", len(task.Vmas), st.Pages, st.ImageBytes, st.Frozen.Round(time.Millisecond))
	start := time.Now()
	proc, rst, err := restore.FromImage(&img, opts)
	if err != nil {
		t.Fatalf("restore %d: %v", pid, err)
	}
	if err := proc.Resume(); err != nil {
		t.Fatalf("resume %d: %v", pid, err)
	}
	t.Logf("restore: %d pages in %v", rst.Pages, time.Since(start).Round(time.Millisecond))
	if proc.PID != pid {
		t.Fatalf("restored as pid %d, want %d", proc.PID, pid)
	}
	return proc.PID
}

func TestCheckpointRestore(t *testing.T) {
	needRoot(t)
	set := workload.Build(t)
	cases := []struct {
		name, workload string
		args           []string
		kick           bool // send SIGUSR1 after the restore (pause mode)
	}{
		{"busy-dynamic", "simple", []string{"--mode=busy"}, false},
		{"busy-static", "simple-static", []string{"--mode=busy"}, false},
		{"nanosleep", "simple", []string{"--mode=nanosleep"}, false},
		{"pause", "simple", []string{"--mode=pause"}, true},
		{"threads", "threads", nil, false},
		{"threads-static", "threads-static", nil, false},
		{"fpthreads", "fpthreads", nil, false},
		// i386 tasks: they skip where the kernel runs no i386 programs
		// (this VM: IA-32 emulation off); e2e/x86guest runs them in a guest.
		{"i386-busy", "simple-i386", []string{"--mode=busy"}, false},
		{"i386-busy-static", "simple-i386-static", []string{"--mode=busy"}, false},
		{"i386-pause", "simple-i386", []string{"--mode=pause"}, true},
		{"i386-threads", "threads-i386", nil, false},
		{"i386-fpthreads", "fpthreads-i386", nil, false},
		{"i386-fpthreads-static", "fpthreads-i386-static", nil, false},
		{"i386-posixtimers", "zdtm/posixtimers-i386", nil, false},
		{"go", "gowork", nil, false},
		{"python", "chain", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := set.Start(t, c.workload, workload.Opts{Args: c.args})
			pid, err := p.WaitReady()
			if err != nil {
				t.Fatal(err)
			}
			// kick sends SIGUSR1 every 20 ms until the function it returns
			// is called; that call returns once no more signal can come, so
			// the self-check's own raise(SIGUSR1) is counted alone.
			kick := func(pid int) (stop func()) {
				if !c.kick {
					return func() {}
				}
				quit, done := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(done)
					for {
						select {
						case <-quit:
							return
						case <-time.After(20 * time.Millisecond):
							_ = p.Signal(pid, syscall.SIGUSR1)
						}
					}
				}()
				var once sync.Once
				return func() { once.Do(func() { close(quit); <-done }) }
			}
			stop := kick(pid)
			defer stop()
			if err := p.WaitProgress(3, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			stop()
			before, _ := p.Progress()
			newPid := move(t, p, pid)
			stop = kick(newPid)
			defer stop()
			if err := p.WaitProgress(before+3, 20*time.Second); err != nil {
				t.Fatalf("no progress after the restore: %v\n%s", err, p.Output())
			}
			stop()
			res, err := p.Finish(newPid)
			if err != nil {
				t.Fatalf("finish: %v\n%s", err, p.Output())
			}
			if !res.Passed() {
				t.Fatalf("self-check after the restore: %s\n%s", res.Status, p.Output())
			}
		})
	}
}

// A task holding an fd the engine cannot carry is refused before it is
// frozen, with every such fd named, and keeps running untouched.
func TestUnsupportedFdRefusedBeforeFreeze(t *testing.T) {
	needRoot(t)
	set := workload.Build(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	p := set.Start(t, "simple", workload.Opts{Args: []string{"--mode=busy"}, Wrap: func(cmd *exec.Cmd) error {
		cmd.ExtraFiles = []*os.File{r, w}
		return nil
	}})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	ue := refusedUntouched(t, p, pid)
	if len(ue.Fds) != 2 {
		t.Fatalf("want an UnsupportedError naming 2 pipe fds, got %v", ue)
	}
	for _, f := range ue.Fds {
		if f.Kind != image.FdKind_FD_PIPE {
			t.Errorf("fd %d: kind %v, want pipe", f.Fd, f.Kind)
		}
	}
}

// A task with a POSIX timer the engine cannot recreate (one on a thread's
// CPU clock) is refused before it is frozen, the timer named: moved without
// it, the task would never hear from it again.
func TestPosixTimerRefusedBeforeFreeze(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/proc/self/timers"); err != nil {
		t.Skip("this kernel does not list POSIX timers in /proc/PID/timers")
	}
	set := workload.Build(t)
	p := set.Start(t, "simple", workload.Opts{Args: []string{"--mode=busy", "--posix-timer"}})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	ue := refusedUntouched(t, p, pid)
	if len(ue.Fds) != 0 || len(ue.Problems) != 1 || !strings.Contains(ue.Problems[0], "POSIX timer 0 counts a thread's CPU time") {
		t.Fatalf("want the POSIX timer on the thread's clock named, got %v", ue)
	}
}

// zdtm/posixtimers restored the way a kernel without
// PR_TIMER_CREATE_RESTORE_IDS needs (the POWER guests' 6.1): placeholder
// timers up to each ID, deleted afterwards. (TestZDTM restores it with the
// prctl on this kernel.)
func TestPosixTimersWithoutRestoreIDs(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/proc/self/timers"); err != nil {
		t.Skip("this kernel does not list POSIX timers in /proc/PID/timers")
	}
	set := workload.Build(t)
	p := set.Start(t, "zdtm/posixtimers", workload.Opts{})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	newPid := moveWith(t, p, pid, restore.Options{NoTimerRestoreIDs: true})
	res, err := p.Finish(newPid)
	if err != nil || !res.Passed() {
		t.Fatalf("after the restore: %v %s\n%s", err, res.Status, p.Output())
	}
}

// refusedUntouched dumps pid, which must be refused with an
// *UnsupportedError before anything is written or the task stopped, and
// checks that the task is not traced, goes on and passes its check.
func refusedUntouched(t *testing.T, p *workload.Proc, pid int) *checkpoint.UnsupportedError {
	t.Helper()
	var img bytes.Buffer
	_, _, err := checkpoint.Dump(pid, &img, checkpoint.DumpOptions{})
	var ue *checkpoint.UnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("want an UnsupportedError, got %v", err)
	}
	if img.Len() != 0 {
		t.Errorf("an image was written (%d bytes)", img.Len())
	}
	// Never stopped: /proc says it is not traced, and it finishes clean.
	st, _ := os.ReadFile("/proc/" + itoa(pid) + "/status")
	if !bytes.Contains(st, []byte("TracerPid:\t0\n")) {
		t.Errorf("task is traced after the refusal")
	}
	before, _ := p.Progress()
	if err := p.WaitProgress(before+3, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := p.Finish(pid)
	if err != nil || !res.Passed() {
		t.Fatalf("after the refusal: %v %v", err, res.Status)
	}
	t.Logf("refusal: %v", ue)
	return ue
}

// A restore refused for a taken PID leaves the original alone; a restore
// that fails half-way (a file the task holds open changed) leaves nothing
// behind, and the same image restores once the file is back.
func TestFailedRestoreLeavesNothing(t *testing.T) {
	needRoot(t)
	set := workload.Build(t)
	p := set.Start(t, "simple", workload.Opts{Args: []string{"--mode=busy"}})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	if _, _, err := checkpoint.Dump(pid, &img, checkpoint.DumpOptions{LeaveRunning: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err = restore.FromImage(bytes.NewReader(img.Bytes()), restore.Options{}); !errors.Is(err, restore.ErrPIDTaken) {
		t.Fatalf("restore while the original runs: %v, want ErrPIDTaken", err)
	}
	before, _ := p.Progress()
	if err := p.WaitProgress(before+2, 10*time.Second); err != nil {
		t.Fatalf("original stopped after the refused restore: %v", err)
	}

	img.Reset()
	if _, _, err := checkpoint.Dump(pid, &img, checkpoint.DumpOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Reap(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	log := p.Dir + "/progress.log"
	st, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(log, st.ModTime(), st.ModTime().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, _, err = restore.FromImage(bytes.NewReader(img.Bytes()), restore.Options{})
	if !errors.Is(err, restore.ErrFileChanged) {
		t.Fatalf("restore with a changed file: %v, want ErrFileChanged", err)
	}
	if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
		t.Fatalf("pid %d exists after a failed restore", pid)
	}
	if left := p.Pids(); len(left) != 0 {
		t.Fatalf("processes of the workload left behind: %v", left)
	}
	if err := os.Chtimes(log, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	proc, _, err := restore.FromImage(bytes.NewReader(img.Bytes()), restore.Options{})
	if err != nil {
		t.Fatalf("restore with the file back: %v", err)
	}
	if err := proc.Resume(); err != nil {
		t.Fatal(err)
	}
	res, err := p.Finish(proc.PID)
	if err != nil || !res.Passed() {
		t.Fatalf("after the restore: %v %v", err, res.Status)
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// A task running as another uid (nobody) is checkpointed and restored with
// its credentials; root here has no CAP_SYS_RESOURCE, so its limits come
// from /proc and are set from inside the task.
func TestOtherUID(t *testing.T) {
	needRoot(t)
	set := workload.Build(t)
	p := set.Start(t, "threads", workload.Opts{Cred: &syscall.Credential{Uid: 65534, Gid: 65534}})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitProgress(2, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	newPid := move(t, p, pid)
	st, err := os.ReadFile("/proc/" + itoa(newPid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(st, []byte("Uid:\t65534\t65534\t65534\t65534\n")) {
		t.Fatalf("restored task's credentials:\n%s", st)
	}
	res, err := p.Finish(newPid)
	if err != nil || !res.Passed() {
		t.Fatalf("after the restore: %v %s", err, res.Status)
	}
}

// A task whose clocks are ahead of this host's (it runs in a time namespace
// 1 h ahead, as a task from a host that booted an hour earlier would be) is
// restored into a new time namespace that carries its clocks on: its
// CLOCK_MONOTONIC and CLOCK_BOOTTIME never go back, which it checks itself.
func TestTimeNamespaceKeepsClocks(t *testing.T) {
	needRoot(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare (util-linux) to start a task in a time namespace")
	}
	set := workload.Build(t)
	p := set.Start(t, "simple", workload.Opts{Args: []string{"--mode=busy"}, Wrap: func(cmd *exec.Cmd) error {
		// unshare(1) itself writes nothing into the workload's output
		// (a file the restore checks): its stdout and stderr are
		// /dev/null, and the workload gets the output back as 1 and 2.
		out, ok := cmd.Stdout.(*os.File)
		if !ok {
			return errors.New("workload output is not a file")
		}
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		cmd.ExtraFiles = []*os.File{out}
		cmd.Stdout, cmd.Stderr = devnull, devnull
		cmd.Args = append([]string{unshare, "--time", "--monotonic=3600", "--boottime=3600", "--fork", "--",
			"/bin/sh", "-c", `exec 1>&3 2>&3 3>&-; exec "$@"`, "sh"}, cmd.Args...)
		cmd.Path = unshare
		return nil
	}})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	if off, err := os.ReadFile("/proc/" + itoa(pid) + "/timens_offsets"); err != nil || !bytes.Contains(off, []byte("3600")) {
		t.Fatalf("the workload is not 1 h ahead: %q %v", off, err)
	}
	if err := p.WaitProgress(3, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	newPid := move(t, p, pid)
	off, err := os.ReadFile("/proc/" + itoa(newPid) + "/timens_offsets")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restored task's time namespace offsets:\n%s", off)
	if bytes.HasPrefix(bytes.Fields(off)[1], []byte("0")) && len(bytes.Fields(off)[1]) == 1 {
		t.Fatalf("restored without a time namespace offset:\n%s", off)
	}
	res, err := p.Finish(newPid)
	if err != nil || !res.Passed() {
		t.Fatalf("after the restore: %v %s", err, res.Status)
	}
}

// A task stopped by SIGSTOP is refused before anything touches it (it
// used to hang the freeze), stays stopped, and runs on after SIGCONT.
func TestStoppedTaskRefused(t *testing.T) {
	needRoot(t)
	set := workload.Build(t)
	for _, name := range []string{"simple", "threads"} {
		t.Run(name, func(t *testing.T) {
			p := set.Start(t, name, workload.Opts{})
			pid, err := p.WaitReady()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.WaitProgress(2, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := p.Signal(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			waitState(t, pid, 'T')
			var img bytes.Buffer
			_, _, err = checkpoint.Dump(pid, &img, checkpoint.DumpOptions{})
			if !errors.Is(err, checkpoint.ErrUnsupported) || !strings.Contains(err.Error(), "stopped") {
				t.Fatalf("checkpoint of a stopped task: %v, want a refusal naming the stop", err)
			}
			waitState(t, pid, 'T')
			before, _ := p.Progress()
			if err := p.Signal(pid, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if err := p.WaitProgress(before+2, 20*time.Second); err != nil {
				t.Fatalf("no progress after SIGCONT: %v", err)
			}
			res, err := p.Finish(pid)
			if err != nil || !res.Passed() {
				t.Fatalf("after the refusal: %v %s", err, res.Status)
			}
		})
	}
}

// waitState waits (bounded) until pid is in state c ('T': stopped).
func waitState(t *testing.T, pid int, c byte) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		if err == nil {
			if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == c {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never reached state %c: %s", pid, c, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Each thread keeps its own niceness, negative ones too: the task runs as
// an unprivileged user, who could not set those again itself.
func TestNicePerThread(t *testing.T) {
	needRoot(t)
	set := workload.Build(t)
	p := set.Start(t, "threads", workload.Opts{Cred: &syscall.Credential{Uid: 65534, Gid: 65534}})
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitProgress(2, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	niceOf := func(pid int) map[int]int {
		t.Helper()
		ents, err := os.ReadDir("/proc/" + itoa(pid) + "/task")
		if err != nil {
			t.Fatal(err)
		}
		out := map[int]int{}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + itoa(pid) + "/task/" + e.Name() + "/stat")
			if err != nil {
				t.Fatal(err)
			}
			st, err := procfs.ParseStat(b)
			if err != nil {
				t.Fatal(err)
			}
			out[tid] = st.Nice
		}
		return out
	}
	values := []int{-7, 0, 5, 19, -20, 11, 3, 17, -1}
	want := map[int]int{}
	i := 0
	for tid := range niceOf(pid) {
		want[tid] = values[i%len(values)]
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, want[tid]); err != nil {
			t.Fatal(err)
		}
		i++
	}
	if len(want) < 2 {
		t.Fatalf("workload has %d threads", len(want))
	}
	newPid := move(t, p, pid)
	if got := niceOf(newPid); !maps.Equal(got, want) {
		t.Fatalf("niceness by thread after the restore: %v, want %v", got, want)
	}
	res, err := p.Finish(newPid)
	if err != nil || !res.Passed() {
		t.Fatalf("after the restore: %v %s", err, res.Status)
	}
}

// A dump that leaves the task running leaves its signal actions as they
// were: the capture reads them with code ending in a trap, which resets an
// ignored SIGTRAP to SIG_DFL in the kernel; the capture must put it back.
// zdtm/sigactions checks its actions (SIGTRAP ignored among them) itself,
// in the original after two such dumps and in a restored copy. The i386
// build runs where the kernel runs i386 programs (e2e/x86guest).
func TestDumpLeavesSignalActions(t *testing.T) {
	needRoot(t)
	set := workload.Build(t)
	for _, tc := range []struct{ name, workload string }{
		{"amd64", "zdtm/sigactions"},
		{"i386", "zdtm/sigactions-i386"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, why := set.Available(tc.workload); !ok {
				t.Skip(why)
			}
			p := set.Start(t, tc.workload, workload.Opts{})
			pid, err := p.WaitReady()
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				_, st, err := checkpoint.Dump(pid, io.Discard, checkpoint.DumpOptions{LeaveRunning: true})
				if err != nil {
					t.Fatalf("dump %d: %v", i, err)
				}
				// One run reads the 64 actions: a call for each would
				// make this 70 or more.
				t.Logf("dump %d: %d injected calls and runs", i, st.Injected)
				if st.Injected == 0 || st.Injected > 30 {
					t.Errorf("dump %d injected %d calls and runs, want the signal actions read in one", i, st.Injected)
				}
			}
			res, err := p.Finish(pid)
			if err != nil || !res.Passed() {
				t.Fatalf("the original after two dumps: %v %s\n%s", err, res.Status, p.Output())
			}
			p = set.Start(t, tc.workload, workload.Opts{})
			if pid, err = p.WaitReady(); err != nil {
				t.Fatal(err)
			}
			newPid := move(t, p, pid)
			if res, err := p.Finish(newPid); err != nil || !res.Passed() {
				t.Fatalf("the restored copy: %v %s\n%s", err, res.Status, p.Output())
			}
		})
	}
}
