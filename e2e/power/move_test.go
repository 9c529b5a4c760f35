package power

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/agent/move"
)

// moveWorkload is a self-checking workload (e2e/workload protocol) moved
// from guest 0 to guest 1.
type moveWorkload struct {
	name string   // e2e/workloads/<name>.c
	args []string // besides --dir; the workload must leave its files alone while idle
	// steps is how many SIGUSR1 steps (one progress line each, pause mode)
	// it takes before the move and again after it.
	steps int
	// stopped: the workload writes its progress log all the time, so it is
	// stopped (SIGSTOP) while its files are copied and moved so, then
	// continued (SIGCONT) on the destination.
	stopped bool
	// files of its directory that the destination must see (besides output).
	files []string
}

// TestPowerMove boots a pair of POWER9 guests, runs an agent in each, and
// moves self-checking C workloads from guest 0 to guest 1: the moved task
// keeps its PID, is gone from guest 0 and passes its own checks on guest 1.
func TestPowerMove(t *testing.T) {
	needGuests(t)
	tests := []struct {
		arch      string
		workloads []moveWorkload
	}{
		{arch: ArchPPC64LE, workloads: []moveWorkload{
			{name: "simple", args: []string{"--mode=pause"}, steps: 3, files: []string{"mapped.dat", "progress.log"}},
			{name: "threads", stopped: true, files: []string{"progress.log"}},
		}},
		{arch: ArchPPC64, workloads: []moveWorkload{
			{name: "simple", args: []string{"--mode=pause"}, steps: 3, files: []string{"mapped.dat", "progress.log"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.arch, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			work := keptWorkDir(t)
			files := buildMoveFiles(ctx, t, tc.arch, work, tc.workloads)

			begin := time.Now()
			pair, err := BootPair(ctx, PairConfig{Arch: tc.arch, CPU: "POWER9", Files: files, WorkDir: work, Logf: t.Logf})
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
				if err := needCrossMemoryAttach(ctx, g); err != nil {
					t.Fatal(err)
				}
			}
			for i, w := range tc.workloads {
				name := w.name
				if w.stopped {
					name += "-stopped"
				}
				t.Run(name, func(t *testing.T) {
					moveOne(ctx, t, pair, w, 5000+1000*i)
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
		out := filepath.Join(work, w.name+"-"+arch)
		flags := []string{"-g", "-Wall", "-Wextra", "-Wno-unused-function", "-pthread", "-I", src}
		if err := BuildC(ctx, arch, out, flags, filepath.Join(src, w.name+".c")); err != nil {
			t.Fatal(err)
		}
		files["bin/"+w.name] = File{HostPath: out}
	}
	fs, err := buildMoveFS(ctx, arch, work)
	if err != nil {
		t.Fatal(err)
	}
	files["bin/movefs"] = File{HostPath: fs}
	t.Logf("step cross-build C workloads + movefs: %v", time.Since(begin).Round(time.Millisecond))
	return files
}

// startAgents starts `migrated agent` in both guests (guest 1 joins guest 0)
// and waits until guest 0 lists both alive.
func startAgents(ctx context.Context, t *testing.T, pair *Pair) {
	t.Helper()
	for i, g := range pair.Guests {
		argv := []string{"/bin/migrated", "agent", "--name", g.Name, "--bind", g.Addr.String(), "--insecure"}
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

// moveOne starts w in guest 0 with a PID above lastPID, moves it to guest 1
// and has it check itself there.
func moveOne(ctx context.Context, t *testing.T, pair *Pair, w moveWorkload, lastPID int) {
	g0, g1 := pair.Guests[0], pair.Guests[1]
	dir := "/tmp/" + w.name
	// Bump guest 0's PID counter so that the workload's PID (and TIDs) are
	// free in guest 1, which has run far fewer processes.
	if _, err := g0.Run(ctx, "/bin/movefs", "write", "/proc/sys/kernel/ns_last_pid", strconv.Itoa(lastPID)); err != nil {
		t.Fatal(err)
	}
	for _, g := range pair.Guests {
		if _, err := g.Run(ctx, "/bin/movefs", "mkdir", dir); err != nil {
			t.Fatal(err)
		}
	}
	begin := time.Now()
	argv := append([]string{"/bin/" + w.name, "--dir=" + dir}, w.args...)
	pid, err := g0.Start(ctx, dir+"/output", argv...)
	if err != nil {
		t.Fatal(err)
	}
	ready, err := waitFile(ctx, g0, dir+"/ready", 2*time.Minute)
	if err != nil {
		out, _ := g0.ReadFile(ctx, dir+"/output")
		t.Fatalf("%v\noutput:\n%s", err, out)
	}
	if got := strings.TrimSpace(string(ready)); got != strconv.Itoa(pid) {
		t.Fatalf("ready says pid %q, started pid %d", got, pid)
	}
	t.Logf("step %s ready in g0 as pid %d: %v", w.name, pid, time.Since(begin).Round(time.Millisecond))

	if err := stepWorkload(ctx, g0, pid, dir, w.steps, 0); err != nil {
		t.Fatal(err)
	}
	if w.stopped {
		if err := g0.Signal(ctx, pid, 19); err != nil { // SIGSTOP
			t.Fatal(err)
		}
		if err := waitState(ctx, g0, pid, "T", 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// The guests share no filesystem; the engine expects the task's files
	// at the same paths with the same size and mtime on the destination
	// (shared storage). The workload is idle (pause mode): copy them.
	begin = time.Now()
	for _, name := range append(w.files, "output") {
		st, err := replicateFile(ctx, g0, g1, dir+"/"+name)
		if err != nil {
			t.Fatalf("replicate %s: %v", name, err)
		}
		t.Logf("replicated %s/%s to g1: %d bytes, mtime %d.%09d", dir, name, st.Size, st.Sec, st.Nsec)
	}
	t.Logf("step replicate the workload's files: %v", time.Since(begin).Round(time.Millisecond))

	begin = time.Now()
	mctx, mcancel := context.WithTimeout(ctx, 2*time.Minute)
	out, err := g0.Run(mctx, "/bin/migrated", "move", strconv.Itoa(pid), g1.Name, "--json")
	mcancel()
	moveTime := time.Since(begin)
	if err != nil {
		var states []string
		for tid := pid; tid <= pid+8; tid++ {
			st, serr := g0.ReadFile(ctx, fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
			if serr == nil {
				states = append(states, fmt.Sprintf("tid %d: %s", tid, firstLines(st, 3)))
			}
		}
		t.Fatalf("move after %v: %v\ng0 threads of %d:\n%s", moveTime.Round(time.Millisecond), err, pid, strings.Join(states, "\n"))
	}
	var rep move.Report
	if err := json.Unmarshal(bytes.TrimSpace(out), &rep); err != nil && json.Unmarshal(lastLine(out), &rep) != nil {
		t.Fatalf("move report: %v\n%s", err, out)
	}
	t.Logf("step move %s (wall, from the host): %v", w.name, moveTime.Round(time.Millisecond))
	t.Logf("move report: %s", bytes.TrimSpace(out))
	t.Logf("figures: downtime %.1f ms (freeze %.1f, final round %.1f, capture %.1f, prepare %.1f), total %.1f ms, %d rounds, tracker %s, memory %d bytes, wire %d bytes, verdict %s",
		rep.DowntimeMs, rep.FreezeMs, rep.FinalRoundMs, rep.CaptureMs, rep.PrepareMs, rep.TotalMs, rep.Rounds, rep.Tracker, rep.MemoryBytes, rep.WireBytes, rep.Verdict)
	if rep.PID != pid || rep.NewPID != pid || rep.Host != g1.Name {
		t.Errorf("report: pid %d new_pid %d host %q; want %d, %d, %q", rep.PID, rep.NewPID, rep.Host, pid, pid, g1.Name)
	}
	if rep.Tracker != "soft-dirty" {
		t.Errorf("tracker %q, want soft-dirty (POWER has no uffd-wp)", rep.Tracker)
	}

	if err := waitGone(ctx, g0, pid, 30*time.Second); err != nil {
		t.Error(err)
	}
	if status, err := g1.ReadFile(ctx, fmt.Sprintf("/proc/%d/status", pid)); err != nil {
		t.Fatalf("moved pid %d not in g1: %v", pid, err)
	} else {
		t.Logf("g1 /proc/%d/status: %s", pid, firstLines(status, 3))
	}

	begin = time.Now()
	if err := stepWorkload(ctx, g1, pid, dir, w.steps, w.steps); err != nil {
		t.Fatal(err)
	}
	if w.stopped {
		if err := g1.Signal(ctx, pid, 18); err != nil { // SIGCONT
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // let it run on the destination
	}
	if err := g1.Signal(ctx, pid, 12); err != nil { // SIGUSR2 (12 on powerpc too)
		t.Fatal(err)
	}
	res, err := waitFile(ctx, g1, dir+"/result", 2*time.Minute)
	if err != nil {
		o, _ := g1.ReadFile(ctx, dir+"/output")
		t.Fatalf("%v\ng1 output:\n%s", err, o)
	}
	t.Logf("step %s verdict on g1: %v", w.name, time.Since(begin).Round(time.Millisecond))
	t.Logf("g1 %s/result:\n%s", dir, bytes.TrimSpace(res))
	if first := firstLines(res, 1); first != "PASS" {
		o, _ := g1.ReadFile(ctx, dir+"/output")
		t.Errorf("%s on g1: %s\noutput:\n%s", w.name, first, o)
	}
	if want := fmt.Sprintf("progress=%d", 2*w.steps); w.steps > 0 && !strings.Contains("\n"+string(res)+"\n", "\n"+want+"\n") {
		t.Errorf("%s on g1: result has no line %q", w.name, want)
	}
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
