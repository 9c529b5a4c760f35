package hosts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/agent/move"
	"github.com/migrated/migrated/e2e/hosts"
	"github.com/migrated/migrated/e2e/nshost"
	"github.com/migrated/migrated/e2e/workload"
	"github.com/migrated/migrated/inject"
)

// moveJSON runs `migrated move PID HOST --json` inside host a.
func moveJSON(t *testing.T, env *hosts.Env, pid int, to string, extra ...string) (*move.Report, string, error) {
	t.Helper()
	args := append([]string{"move", strconv.Itoa(pid), to, "--json"}, extra...)
	out, err := env.Host(0).Command(t.Context(), env.Bin, args...).CombinedOutput()
	if err != nil {
		return nil, string(out), err
	}
	var r move.Report
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, string(out), err
	}
	return &r, string(out), nil
}

func TestMoveWorkloads(t *testing.T) {
	env, ctx := setup(t, hosts.Options{Hosts: 2})
	set := workload.Build(t)
	a := env.Host(0)
	cases := []struct {
		name, workload string
		args           []string
	}{
		{"simple", "simple", []string{"--mode=busy"}},
		{"threads", "threads", nil},
		{"fpthreads", "fpthreads", nil},
		{"go", "gowork", nil},
		{"python", "chain", nil},
		{"posix-timers", "zdtm/posixtimers", nil},
		{"mixed-1GiB", "mixed", []string{"--size-mib=1024"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, pid := startRunning(t, set, c.workload, env.WorkloadOpts(ctx, a, c.args...))
			moveToB(t, env, pid)
			passesOnDestination(t, p, pid, 30*time.Second)
			// It exits after its check: the destination's agent, its
			// parent now, reaps it.
			wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			if err := env.Host(1).WaitGone(wctx, pid); err != nil {
				t.Errorf("the moved task exited, but its PID stays taken on the destination (%c): %v", hosts.ProcState(env.Host(1), pid), err)
			}
		})
	}
}

// startRunning starts workload name and waits until it has made progress.
func startRunning(t *testing.T, set *workload.Set, name string, opts workload.Opts) (*workload.Proc, int) {
	t.Helper()
	p := set.Start(t, name, opts)
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitProgress(3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return p, pid
}

// moveToB moves pid from host a to host b and checks that it runs there
// alone, with its PID.
func moveToB(t *testing.T, env *hosts.Env, pid int) *move.Report {
	t.Helper()
	rep, out, err := moveJSON(t, env, pid, "b")
	if err != nil {
		t.Fatalf("move: %v\n%s", err, out)
	}
	t.Logf("report: %s", out)
	onlyOnB(t, env, rep, pid)
	return rep
}

// onlyOnB checks that a move to host b kept the PID and left the task on b
// alone. The original is killed when the move returns, but a dying task
// (nice 19, tearing down its memory) may hold its PID on a loaded machine
// for a while: it has that long to free it.
func onlyOnB(t *testing.T, env *hosts.Env, rep *move.Report, pid int) {
	t.Helper()
	a, b := env.Host(0), env.Host(1)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	gone := a.WaitGone(ctx, pid)
	if rep.NewPID != pid || gone != nil || !b.HasPID(pid) {
		t.Fatalf("pid %d: new pid %d, on the source %v (%v), on the destination %v", pid, rep.NewPID, a.HasPID(pid), gone, b.HasPID(pid))
	}
}

// passesOnDestination checks a moved workload: it makes progress within
// wait, then passes its own check.
func passesOnDestination(t *testing.T, p *workload.Proc, pid int, wait time.Duration) {
	t.Helper()
	before, _ := p.Progress()
	if err := p.WaitProgress(before+3, wait); err != nil {
		t.Fatalf("no progress on the destination: %v", err)
	}
	res, err := p.Finish(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatalf("self-check on the destination: %s", res.Status)
	}
}

// TestMoveWithoutCrossMemoryAttach moves a multi-threaded task with both
// agents reaching task memory through /proc/PID/mem only, as on a kernel
// without process_vm_readv/writev (inject.NoCrossMemoryEnv). The POWER
// guests' kernels all have them now, so this is where that path runs.
func TestMoveWithoutCrossMemoryAttach(t *testing.T) {
	env, ctx := setup(t, hosts.Options{Hosts: 2, AgentEnv: func(int) []string { return []string{inject.NoCrossMemoryEnv + "=1"} }})
	set := workload.Build(t)
	p, pid := startRunning(t, set, "threads", env.WorkloadOpts(ctx, env.Host(0)))
	moveToB(t, env, pid)
	passesOnDestination(t, p, pid, 30*time.Second)
}

// TestMoveKeepsClocksAhead moves a task whose clocks are an hour ahead of
// this kernel's (it runs in a time namespace, as a task from a host that
// booted an hour earlier would): the destination restores it into a time
// namespace whose offsets carry its clocks on, and the workload, which
// checks that CLOCK_MONOTONIC and CLOCK_BOOTTIME never go back, passes.
func TestMoveKeepsClocksAhead(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	env, ctx := setup(t, hosts.Options{Hosts: 2})
	set := workload.Build(t)
	a, b := env.Host(0), env.Host(1)
	opts := env.WorkloadOpts(ctx, a, "--mode=busy")
	launch := opts.Launch
	opts.Launch = func(l workload.Launch) (int, error) {
		l.Argv = append([]string{unshare, "--time", "--monotonic=3600", "--boottime=3600", "--fork", "--"}, l.Argv...)
		return launch(l)
	}
	p, pid := startRunning(t, set, "simple", opts)
	offsets := func(h *nshost.Host) string {
		t.Helper()
		rp, err := h.RootPID(pid)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timens_offsets", rp))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if off := offsets(a); !strings.Contains(off, "3600") {
		t.Fatalf("the workload is not an hour ahead:\n%s", off)
	}
	moveToB(t, env, pid)
	off := offsets(b)
	t.Logf("time namespace offsets on the destination:\n%s", off)
	for _, l := range strings.Split(strings.TrimSpace(off), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("timens_offsets line %q", l)
		}
		// 3600 s, give or take the manifest's transit and the margin;
		// that the clocks never went back, the workload checks itself.
		if s, _ := strconv.Atoi(f[1]); s < 3599 || s > 3600 {
			t.Errorf("%s offset %s.%s s, want 3600 s within a second", f[0], f[1], f[2])
		}
	}
	passesOnDestination(t, p, pid, 30*time.Second)
}
