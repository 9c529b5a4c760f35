package power

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/agent/move"
)

// moveWorkload is a self-checking workload (e2e/workload protocol) moved
// between the guests of a pair.
type moveWorkload struct {
	name string // subtest name and /bin/<name> in the guests
	// src is under e2e/workloads: a C file, or a Go package directory.
	src string
	// arch builds it for another architecture than the pair's (ArchPPC:
	// a 32-bit program on the BE COMPAT kernel).
	arch   string
	cflags []string
	args   []string // besides --dir
	// steps > 0: a pause-mode workload, stepped (SIGUSR1, one progress line
	// each) that many times before the move and again after it; idle, its
	// files can be copied to the destination by hand (see replicateFile).
	steps int
	// run > 0: the workload runs all the time (not stopped, not paused):
	// it runs that long before the move and again on the destination.
	// Such a workload must change no file by name while it runs (the
	// guests share no storage): its progress log is unlinked once open
	// (--log-unlinked), so its contents travel in the image.
	run time.Duration
	// files of its directory that the destination must see (besides output).
	files []string
	// moveArgs are extra flags of `migrated move`.
	moveArgs []string
	// back moves it the other way: into the guest whose clocks are behind
	// (see fromG1), so that it must get a time namespace there (the
	// kernel needs CONFIG_TIME_NS), which the test checks.
	back bool
}

// back is w moved the other way (moveWorkload.back), under its own name.
func back(w moveWorkload) moveWorkload {
	w.name += "-timens"
	w.back = true
	return w
}

// binArch is the architecture w is built for in a pair of arch.
func (w moveWorkload) binArch(arch string) string {
	return firstNonEmpty(w.arch, arch)
}

// The running workloads, scaled for TCG (one vCPU of an emulated POWER9,
// about 1/50 of the host's speed).
var (
	vecThreads = moveWorkload{name: "vecthreads", src: "vecthreads.c", cflags: []string{"-mcpu=power8"},
		args: []string{"--log-unlinked", "--threads=3"}, run: 3 * time.Second}
	// The 32-bit build holds FP and VMX (the compat view has no VSX regset).
	vecThreads32 = moveWorkload{name: "vecthreads32", src: "vecthreads.c", arch: ArchPPC, cflags: []string{"-maltivec"},
		args: []string{"--log-unlinked", "--threads=3"}, run: 3 * time.Second}
	// POSIX timers (periodic with a value, one-shot, a deleted ID,
	// SIGEV_NONE, thread-directed, the process CPU clock): the guests'
	// 6.1 kernels lack PR_TIMER_CREATE_RESTORE_IDS, so restore reaches
	// each ID through placeholder timers.
	posixTimers   = moveWorkload{name: "posixtimers", src: "zdtm/posixtimers.c", args: []string{"--log-unlinked"}, run: 3 * time.Second}
	posixTimers32 = moveWorkload{name: "posixtimers32", src: "zdtm/posixtimers.c", arch: ArchPPC, args: []string{"--log-unlinked"}, run: 3 * time.Second}
	goWork        = moveWorkload{name: "gowork", src: "gowork",
		args: []string{"--log-unlinked", "--heap-mib=16", "--workers=2"}, run: 3 * time.Second}
	// The "1 GiB-class" workload at mixedMiB (128 MiB, 2048 pages of 64
	// KiB), dirtying one page a second while it moves. The page pipeline
	// between two TCG guests moves 0.3-0.5 MB/s: the wire is capped
	// (uncapped, a frame queued behind others for over 30 s failed the
	// session: transport writeFrame's deadline), and the downtime limit is
	// what a few dirty pages take at that rate.
	mixedBig = moveWorkload{name: "mixed", src: "mixed.c",
		args: []string{"--log-unlinked", "--size-mib=" + strconv.Itoa(mixedMiB()), "--dirty-rate=1"}, run: 3 * time.Second,
		moveArgs: []string{"--max-bandwidth=512K", "--downtime-limit=5s"}}
)

// mixedMiB is the size of the mixed workload in the ppc64le moves:
// MIGRATED_E2E_POWER_MIXED_MIB, or 128.
func mixedMiB() int {
	if n, err := strconv.Atoi(os.Getenv("MIGRATED_E2E_POWER_MIXED_MIB")); err == nil && n > 0 {
		return n
	}
	return 128
}

// TestPowerMove boots a pair of POWER9 guests, runs an agent in each, and
// moves self-checking workloads between them: the moved task keeps its PID,
// is gone from the source and passes its own checks on the destination.
func TestPowerMove(t *testing.T) {
	needGuests(t)
	tests := []struct {
		arch      string
		workloads []moveWorkload
		// fromG1 moves from guest 1 to guest 0, which booted delay
		// earlier: its clocks are ahead, so the moved task's
		// CLOCK_MONOTONIC/BOOTTIME do not go back without a time
		// namespace. Workloads marked back go the other way and need one
		// (a kernel without CONFIG_TIME_NS refuses them with reason
		// timens; the project's BE kernel has it since be-compat.config
		// sets it).
		fromG1 bool
		delay  time.Duration
		// cmdline is added to both guests' kernel command line.
		cmdline string
	}{
		// Debian's ppc64el kernel runs THP "always", and soft-dirty marks a
		// whole 2 MiB huge page dirty for one written 64 KiB page: before
		// the tracker compared soft-dirty pages by contents, mixed at
		// 128 MiB never converged here (at 32 MiB: 152 MB sent for 161 page
		// writes, 42 s of downtime). This pair runs with THP on, as the
		// kernel ships.
		{arch: ArchPPC64LE, workloads: []moveWorkload{
			{name: "simple", src: "simple.c", args: []string{"--mode=pause"}, steps: 3, files: []string{"mapped.dat", "progress.log"}},
			vecThreads, goWork, mixedBig, posixTimers,
		}},
		{arch: ArchPPC64, fromG1: true, delay: 5 * time.Second, workloads: []moveWorkload{
			vecThreads, goWork, vecThreads32, back(vecThreads), back(vecThreads32), posixTimers, posixTimers32,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.arch, func(t *testing.T) {
			needArches(t, tc.arch)
			ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
			defer cancel()
			work := keptWorkDir(t)
			files := buildMoveFiles(ctx, t, tc.arch, work, tc.workloads)

			begin := time.Now()
			cfg := PairConfig{Arch: tc.arch, CPU: "POWER9", Files: files, WorkDir: work, Logf: t.Logf, Guest1Delay: tc.delay}
			cfg.Guests[0].Cmdline, cfg.Guests[1].Cmdline = tc.cmdline, tc.cmdline
			pair, err := BootPair(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := pair.Close(); err != nil {
					t.Error(err)
				}
			}()
			t.Logf("step boot pair: %v", time.Since(begin).Round(time.Millisecond))

			begin = time.Now()
			startAgents(ctx, t, pair)
			t.Logf("step agents up, cluster of 2 alive: %v", time.Since(begin).Round(time.Millisecond))
			defer func() {
				if t.Failed() {
					for _, g := range pair.Guests {
						b, err := g.ReadFile(context.Background(), "/tmp/agent.log")
						t.Logf("%s /tmp/agent.log (%v):\n%s", g.Name, err, tail(b, 6000))
					}
				}
			}()

			for _, g := range pair.Guests {
				if out, err := g.Run(ctx, "/bin/migrated", "doctor"); err != nil {
					t.Logf("%s: migrated doctor: %v", g.Name, err)
				} else {
					t.Logf("%s: migrated doctor:\n%s", g.Name, bytes.TrimSpace(out))
				}
				logCrossMemoryAttach(ctx, t, g)
			}
			for i, w := range tc.workloads {
				t.Run(w.name, func(t *testing.T) {
					src, dst := pair.Guests[0], pair.Guests[1]
					if tc.fromG1 != w.back {
						src, dst = dst, src
					}
					moveOne(ctx, t, src, dst, w, 5000+1000*i)
				})
			}
		})
	}
}

// buildMoveFiles cross-builds the agent, the workloads and movefs for arch.
func buildMoveFiles(ctx context.Context, t *testing.T, arch, work string, wls []moveWorkload) map[string]File {
	t.Helper()
	begin := time.Now()
	agent := filepath.Join(work, "migrated-"+arch)
	if err := BuildGo(ctx, arch, "./cmd/migrated", agent); err != nil {
		t.Fatal(err)
	}
	t.Logf("step cross-build migrated (GOARCH=%s): %v", arch, time.Since(begin).Round(time.Millisecond))
	begin = time.Now()
	files := map[string]File{"bin/migrated": {HostPath: agent}}
	src := filepath.Join(ModuleRoot(), "e2e", "workloads")
	for _, w := range wls {
		barch := w.binArch(arch)
		out := filepath.Join(work, w.name+"-"+barch)
		if strings.HasSuffix(w.src, ".c") {
			flags := append([]string{"-g", "-Wall", "-Wextra", "-Wno-unused-function", "-pthread", "-I", src}, w.cflags...)
			if err := BuildC(ctx, barch, out, flags, filepath.Join(src, w.src)); err != nil {
				t.Fatal(err)
			}
		} else if err := BuildGo(ctx, barch, "./e2e/workloads/"+w.src, out); err != nil {
			t.Fatal(err)
		}
		files["bin/"+w.name] = File{HostPath: out}
	}
	fs, err := buildMoveFS(ctx, arch, work)
	if err != nil {
		t.Fatal(err)
	}
	files["bin/movefs"] = File{HostPath: fs}
	t.Logf("step cross-build workloads + movefs: %v", time.Since(begin).Round(time.Millisecond))
	return files
}

// startAgents starts `migrated agent` in both guests (guest 1 joins guest 0)
// and waits until guest 0 lists both alive.
func startAgents(ctx context.Context, t *testing.T, pair *Pair) {
	t.Helper()
	for i, g := range pair.Guests {
		// --nice 0, whatever the default: a guest has one emulated vCPU
		// (TCG, about 1/50 of the host's speed); with the agent at nice 10
		// a running workload left it so little CPU that its session to the
		// other guest failed in pre-copy round 0 and its gossip missed
		// pings (measured: gowork and mixed failed so, paused and sleeping
		// workloads did not).
		argv := []string{"/bin/migrated", "agent", "--name", g.Name, "--bind", g.Addr.String(), "--insecure", "--nice", "0"}
		if i == 1 {
			argv = append(argv, "--join", pair.Guests[0].Addr.String())
		}
		pid, err := g.Start(ctx, "/tmp/agent.log", argv...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: agent pid %d: %s", g.Name, pid, strings.Join(argv, " "))
	}
	deadline := time.Now().Add(3 * time.Minute)
	var out []byte
	var err error
	for time.Now().Before(deadline) {
		out, err = pair.Run(ctx, 0, "/bin/migrated", "members", "--json")
		if err == nil && countAliveMembers(out) == 2 {
			t.Logf("g0: migrated members --json lists %d alive members", 2)
			return
		}
		time.Sleep(time.Second)
	}
	b0, _ := pair.Guests[0].ReadFile(ctx, "/tmp/agent.log")
	b1, _ := pair.Guests[1].ReadFile(ctx, "/tmp/agent.log")
	t.Fatalf("the cluster did not form in 3 min: members %s, %v\ng0 agent:\n%s\ng1 agent:\n%s", out, err, tail(b0, 3000), tail(b1, 3000))
}

func countAliveMembers(out []byte) int {
	var ms []struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(out, &ms) != nil {
		return 0
	}
	n := 0
	for _, m := range ms {
		if m.Status == "alive" {
			n++
		}
	}
	return n
}

// startWorkload starts w in g with a PID above lastPID (so that its PID and
// TIDs are free in the other guest, which has run fewer processes), in its
// own directory /tmp/<name>, and waits until it is ready.
func startWorkload(ctx context.Context, t *testing.T, g *Guest, w moveWorkload, lastPID int) (pid int, dir string) {
	t.Helper()
	dir = "/tmp/" + w.name
	if _, err := g.Run(ctx, "/bin/movefs", "write", "/proc/sys/kernel/ns_last_pid", strconv.Itoa(lastPID)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Run(ctx, "/bin/movefs", "mkdir", dir); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	argv := append([]string{"/bin/" + w.name, "--dir=" + dir}, w.args...)
	pid, err := g.Start(ctx, dir+"/output", argv...)
	if err != nil {
		t.Fatal(err)
	}
	ready, err := waitFile(ctx, g, dir+"/ready", 3*time.Minute)
	if err != nil {
		out, _ := g.ReadFile(ctx, dir+"/output")
		t.Fatalf("%v\noutput:\n%s", err, out)
	}
	if got := strings.TrimSpace(string(ready)); got != strconv.Itoa(pid) {
		t.Fatalf("ready says pid %q, started pid %d", got, pid)
	}
	t.Logf("step %s ready in %s as pid %d: %v", w.name, g.Name, pid, time.Since(begin).Round(time.Millisecond))
	return pid, dir
}

// finishWorkload asks the workload in g for its verdict (SIGUSR2) and
// checks it says PASS (and, for a stepped one, all its progress lines).
func finishWorkload(ctx context.Context, t *testing.T, g *Guest, pid int, dir string, w moveWorkload, wantProgress int) []byte {
	t.Helper()
	begin := time.Now()
	if err := g.Signal(ctx, pid, 12); err != nil { // SIGUSR2 (12 on powerpc too)
		t.Fatal(err)
	}
	res, err := waitFile(ctx, g, dir+"/result", 2*time.Minute)
	if err != nil {
		o, _ := g.ReadFile(ctx, dir+"/output")
		t.Fatalf("%v\n%s output:\n%s\nthreads:\n%s", err, g.Name, o, threadStates(ctx, g, pid))
	}
	t.Logf("step %s verdict in %s: %v", w.name, g.Name, time.Since(begin).Round(time.Millisecond))
	t.Logf("%s %s/result:\n%s", g.Name, dir, bytes.TrimSpace(res))
	if first := firstLines(res, 1); first != "PASS" {
		o, _ := g.ReadFile(ctx, dir+"/output")
		t.Errorf("%s in %s: %s\noutput:\n%s", w.name, g.Name, first, o)
	}
	if want := fmt.Sprintf("progress=%d", wantProgress); wantProgress > 0 && !strings.Contains("\n"+string(res)+"\n", "\n"+want+"\n") {
		t.Errorf("%s in %s: result has no line %q", w.name, g.Name, want)
	}
	if want := fmt.Sprintf("pid=%d", pid); !strings.Contains("\n"+string(res)+"\n", "\n"+want+"\n") {
		t.Errorf("%s in %s: result has no line %q", w.name, g.Name, want)
	}
	return res
}

// moveOne starts w in src, moves it to dst and has it check itself there.
func moveOne(ctx context.Context, t *testing.T, src, dst *Guest, w moveWorkload, lastPID int) {
	pid, dir := startWorkload(ctx, t, src, w, lastPID)
	if _, err := dst.Run(ctx, "/bin/movefs", "mkdir", dir); err != nil {
		t.Fatal(err)
	}
	if err := stepWorkload(ctx, src, pid, dir, w.steps, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(w.run)

	// The guests share no filesystem; the engine expects the task's files
	// at the same paths with the same size and mtime on the destination
	// (shared storage). A paused workload is idle, and a running one
	// changes no file by name (its output is empty): copy them.
	begin := time.Now()
	for _, name := range append(w.files, "output") {
		st, err := replicateFile(ctx, src, dst, dir+"/"+name)
		if err != nil {
			t.Fatalf("replicate %s: %v", name, err)
		}
		t.Logf("replicated %s/%s to %s: %d bytes, mtime %d.%09d", dir, name, dst.Name, st.Size, st.Sec, st.Nsec)
	}
	t.Logf("step replicate the workload's files: %v", time.Since(begin).Round(time.Millisecond))

	begin = time.Now()
	mctx, mcancel := context.WithTimeout(ctx, 10*time.Minute)
	out, err := src.Run(mctx, append([]string{"/bin/migrated", "move", strconv.Itoa(pid), dst.Name, "--json"}, w.moveArgs...)...)
	mcancel()
	moveTime := time.Since(begin)
	if err != nil {
		t.Fatalf("move after %v: %v\n%s\n%s threads of %d:\n%s", moveTime.Round(time.Millisecond), err, bytes.TrimSpace(out), src.Name, pid, threadStates(ctx, src, pid))
	}
	var rep move.Report
	if err := json.Unmarshal(bytes.TrimSpace(out), &rep); err != nil && json.Unmarshal(lastLine(out), &rep) != nil {
		t.Fatalf("move report: %v\n%s", err, out)
	}
	t.Logf("step move %s (wall, from the host): %v", w.name, moveTime.Round(time.Millisecond))
	t.Logf("move report: %s", bytes.TrimSpace(out))
	t.Logf("figures %s %s->%s: downtime %.1f ms (freeze %.1f, final round %.1f, capture %.1f, prepare %.1f), total %.1f ms, %d rounds, tracker %s, memory %d bytes, wire %d bytes, verdict %s",
		w.name, src.Name, dst.Name, rep.DowntimeMs, rep.FreezeMs, rep.FinalRoundMs, rep.CaptureMs, rep.PrepareMs, rep.TotalMs, rep.Rounds, rep.Tracker, rep.MemoryBytes, rep.WireBytes, rep.Verdict)
	if rep.PID != pid || rep.NewPID != pid || rep.Host != dst.Name {
		t.Errorf("report: pid %d new_pid %d host %q; want %d, %d, %q", rep.PID, rep.NewPID, rep.Host, pid, pid, dst.Name)
	}
	if rep.Tracker != "soft-dirty" {
		t.Errorf("tracker %q, want soft-dirty (POWER has no uffd-wp)", rep.Tracker)
	}

	if err := waitGone(ctx, src, pid, 30*time.Second); err != nil {
		t.Error(err)
	}
	if w.back {
		// Moved into the guest whose clocks are behind: a time namespace
		// carries the task's clocks on (and the workload checks that
		// they never went back).
		off, err := dst.ReadFile(ctx, fmt.Sprintf("/proc/%d/timens_offsets", pid))
		if err != nil {
			t.Fatalf("timens_offsets of %d in %s: %v", pid, dst.Name, err)
		}
		t.Logf("%s /proc/%d/timens_offsets:\n%s", dst.Name, pid, bytes.TrimSpace(off))
		if f := bytes.Fields(off); len(f) < 3 || string(f[1]) == "0" {
			t.Errorf("moved into %s without a time namespace offset:\n%s", dst.Name, off)
		}
	}
	if status, err := dst.ReadFile(ctx, fmt.Sprintf("/proc/%d/status", pid)); err != nil {
		t.Fatalf("moved pid %d not in %s: %v", pid, dst.Name, err)
	} else {
		t.Logf("%s /proc/%d/status: %s", dst.Name, pid, firstLines(status, 3))
	}

	if err := stepWorkload(ctx, dst, pid, dir, w.steps, w.steps); err != nil {
		t.Fatal(err)
	}
	time.Sleep(w.run)
	finishWorkload(ctx, t, dst, pid, dir, w, 2*w.steps)
}

// threadStates describes the threads of pid in g (TIDs pid..pid+8, as the
// workloads start them): state, wchan and the syscall each is in.
func threadStates(ctx context.Context, g *Guest, pid int) string {
	var states []string
	for tid := pid; tid <= pid+8; tid++ {
		st, err := g.ReadFile(ctx, fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if err != nil {
			continue
		}
		wchan, _ := g.ReadFile(ctx, fmt.Sprintf("/proc/%d/task/%d/wchan", pid, tid))
		sc, _ := g.ReadFile(ctx, fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
		states = append(states, fmt.Sprintf("tid %d: %s | wchan %s | syscall %s", tid, firstLines(st, 3), wchan, bytes.TrimSpace(sc)))
	}
	return strings.Join(states, "\n")
}

// stepWorkload sends n SIGUSR1 to a pause-mode workload, one at a time,
// each time waiting for its progress line (20 bytes) after the done ones.
func stepWorkload(ctx context.Context, g *Guest, pid int, dir string, n, done int) error {
	for i := range n {
		if err := g.Signal(ctx, pid, 10); err != nil { // SIGUSR1
			return err
		}
		want := int64(20 * (done + i + 1))
		deadline := time.Now().Add(time.Minute)
		for {
			out, err := g.Run(ctx, "/bin/movefs", "stat", dir+"/progress.log")
			if err != nil {
				return err
			}
			st, err := parseStamp(out)
			if err != nil {
				return err
			}
			if st.Size == want {
				break
			}
			if st.Size > want || time.Now().After(deadline) {
				return fmt.Errorf("%s: %s/progress.log is %d bytes after SIGUSR1 %d, want %d", g.Name, dir, st.Size, done+i+1, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// waitFile polls a guest for path until it exists and is not empty.
func waitFile(ctx context.Context, g *Guest, path string, limit time.Duration) ([]byte, error) {
	deadline := time.Now().Add(limit)
	for {
		b, err := g.ReadFile(ctx, path)
		if err == nil && len(b) > 0 {
			return b, nil
		}
		var ee *ExitError
		if err != nil && !errors.As(err, &ee) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no %s after %v: %v", g.Name, path, limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitState polls until pid's State in /proc/PID/status starts with state.
func waitState(ctx context.Context, g *Guest, pid int, state string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		b, err := g.ReadFile(ctx, fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "State:"); ok && strings.HasPrefix(strings.TrimSpace(v), state) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: pid %d not in state %s after %v:\n%s", g.Name, pid, state, limit, firstLines(b, 4))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone polls until pid has left the guest's /proc.
func waitGone(ctx context.Context, g *Guest, pid int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, err := g.ReadFile(ctx, fmt.Sprintf("/proc/%d/status", pid)); err != nil {
			var ee *ExitError
			if errors.As(err, &ee) {
				return nil
			}
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: pid %d still there %v after the move", g.Name, pid, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// logCrossMemoryAttach says whether the guest's kernel has
// process_vm_readv. Where it has not (the shared prebuilt big-endian kernel
// lacked CONFIG_CROSS_MEMORY_ATTACH; be-compat.config sets it now), the
// engine reads and writes task memory through /proc/PID/mem instead
// (inject.ReadMem/WriteMem): the moves there run that path.
func logCrossMemoryAttach(ctx context.Context, t *testing.T, g *Guest) {
	t.Helper()
	out, err := g.Run(ctx, "/bin/movefs", "vmread")
	var ee *ExitError
	switch {
	case err == nil:
		t.Logf("%s (%s kernel): process_vm_readv works", g.Name, g.Arch)
	case errors.As(err, &ee) && ee.Exit == 1:
		t.Logf("%s (%s kernel): process_vm_readv fails with %q: the engine uses /proc/PID/mem there",
			g.Name, g.Arch, strings.TrimSpace(string(out)))
	default:
		t.Fatal(err)
	}
}
