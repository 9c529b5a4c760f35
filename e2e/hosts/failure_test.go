package hosts_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/hosts"
	"github.com/migrated/migrated/e2e/workload"
)

// survives checks the promise after a failed move: the original still runs
// on the source, makes progress, the destination has no copy, and the
// workload passes its own check.
func survives(t *testing.T, env *hosts.Env, p *workload.Proc, pid int) {
	t.Helper()
	a, b := env.Host(0), env.Host(1)
	if !a.HasPID(pid) {
		t.Fatalf("the original (pid %d) is gone from the source", pid)
	}
	// The destination drops its half-built copy when it learns of the
	// failure (at once, or when its session times out after a partition);
	// that copy never ran.
	for deadline := time.Now().Add(40 * time.Second); b.HasPID(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still exists on the destination 40 s after a failed move", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, err := os.ReadFile(a.Path("/proc/" + strconv.Itoa(pid) + "/status"))
	if err == nil && !strings.Contains(string(st), "TracerPid:\t0\n") {
		t.Errorf("the original is still traced:\n%s", st)
	}
	before, _ := p.Progress()
	if err := p.WaitProgress(before+3, 30*time.Second); err != nil {
		t.Fatalf("the original makes no progress after the failed move: %v", err)
	}
	res, err := p.Finish(pid)
	if err != nil || !res.Passed() {
		t.Fatalf("the original after the failed move: %v %s", err, res.Status)
	}
}

func startOn(t *testing.T, env *hosts.Env, name string, args ...string) (*workload.Proc, int) {
	t.Helper()
	set := workload.Build(t)
	p := set.Start(t, name, env.WorkloadOpts(t.Context(), env.Host(0), args...))
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitProgress(2, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return p, pid
}

// The destination refuses the task (it advertises 64 KiB pages): check and
// move both say why, with the stable reason code, and nothing moves.
func TestMoveRejectedByDestination(t *testing.T) {
	dir := t.TempDir()
	override := filepath.Join(dir, "caps.json")
	if err := os.WriteFile(override, []byte(`{"page_size": 65536}`), 0o644); err != nil {
		t.Fatal(err)
	}
	env, ctx := setup(t, hosts.Options{Hosts: 2, AgentArgs: func(i int) []string {
		if i == 1 {
			return []string{"--caps-override", override}
		}
		return nil
	}})
	p, pid := startOn(t, env, "simple", "--mode=busy")
	refusedBoth(t, env, ctx, pid, "page-size")
	survives(t, env, p, pid)
}

// checkVerdict is what `migrated check --json` prints.
type checkVerdict struct {
	Verdict string `json:"verdict"`
	Reasons []struct{ Code, Message string }
}

// checkJSON runs `migrated check PID b --json` on host a.
func checkJSON(t *testing.T, env *hosts.Env, ctx context.Context, pid int) (checkVerdict, error) {
	t.Helper()
	out, err := env.Host(0).Command(ctx, env.Bin, "check", strconv.Itoa(pid), "b", "--json").Output()
	var v checkVerdict
	if jerr := json.Unmarshal(out, &v); jerr != nil {
		t.Fatalf("check --json: %v %v: %s", err, jerr, out)
	}
	return v, err
}

// refusedBoth checks that check and move both refuse pid toward b naming
// code, and returns move's output.
func refusedBoth(t *testing.T, env *hosts.Env, ctx context.Context, pid int, code string) string {
	t.Helper()
	v, err := checkJSON(t, env, ctx, pid)
	if err == nil || v.Verdict != "reject" || !hasCode(v.Reasons, code) {
		t.Fatalf("check: err %v, verdict %+v; want reject with %s", err, v, code)
	}
	mout, err := env.Host(0).Command(ctx, env.Bin, "move", strconv.Itoa(pid), "b").CombinedOutput()
	if err == nil || !strings.Contains(string(mout), code) {
		t.Fatalf("move: err %v, output %s; want a refusal naming %s", err, mout, code)
	}
	t.Logf("move refused:\n%s", mout)
	return string(mout)
}

func hasCode(rs []struct{ Code, Message string }, code string) bool {
	for _, r := range rs {
		if r.Code == code {
			return true
		}
	}
	return false
}

// The destination fails after building the process, before Prepared: the
// source thaws the original.
func TestDestinationFailsBeforePrepared(t *testing.T) {
	env, ctx := setup(t, hosts.Options{Hosts: 2, AgentEnv: func(i int) []string {
		if i == 1 {
			return []string{"MIGRATED_TEST_FAIL_BEFORE_PREPARED=1"}
		}
		return nil
	}})
	p, pid := startOn(t, env, "threads")
	out, err := env.Host(0).Command(ctx, env.Bin, "move", strconv.Itoa(pid), "b").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "test-failure") {
		t.Fatalf("move: err %v, output %s; want the destination's failure", err, out)
	}
	survives(t, env, p, pid)
}

// The destination agent is killed during pre-copy (a bandwidth cap keeps
// pre-copy going long enough).
func TestDestinationKilledDuringPrecopy(t *testing.T) {
	env, ctx := setup(t, hosts.Options{Hosts: 2})
	failDuringPrecopy(t, env, ctx, func() error { return env.Agents[1].Process.Kill() }, nil)
}

// The link between the hosts goes down during pre-copy: the session times
// out and the original runs on.
func TestLinkDownDuringPrecopy(t *testing.T) {
	env, ctx := setup(t, hosts.Options{Hosts: 2})
	failDuringPrecopy(t, env, ctx,
		func() error { return env.Cluster.LinkDown(env.Host(0), env.Host(1)) },
		func() error { return env.Cluster.LinkUp(env.Host(0), env.Host(1)) })
}

// failDuringPrecopy starts moving a 128 MiB workload from a to b at 8 MB/s,
// calls fault 3 s in, waits for the move to fail, calls repair (if any),
// and checks that the original survived.
func failDuringPrecopy(t *testing.T, env *hosts.Env, ctx context.Context, fault, repair func() error) {
	t.Helper()
	p, pid := startOn(t, env, "mixed", "--size-mib=128")
	mv := env.Host(0).Command(ctx, env.Bin, "move", strconv.Itoa(pid), "b", "--max-bandwidth", "8M")
	var out strings.Builder
	mv.Stdout, mv.Stderr = &out, &out
	if err := mv.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := fault(); err != nil {
		t.Fatal(err)
	}
	err := mv.Wait()
	if repair != nil {
		if rerr := repair(); rerr != nil {
			t.Fatal(rerr)
		}
	}
	if err == nil {
		t.Fatalf("move succeeded despite the fault:\n%s", out.String())
	}
	t.Logf("move failed as it should:\n%s", out.String())
	survives(t, env, p, pid)
}

// A page frame is damaged on the way: the destination refuses it (checksum),
// the move fails, and the original runs on.
func TestCorruptedFrame(t *testing.T) {
	env, ctx := setup(t, hosts.Options{Hosts: 2, AgentEnv: func(i int) []string {
		if i == 0 {
			return []string{"MIGRATED_TEST_CORRUPT_FRAME=5"}
		}
		return nil
	}})
	p, pid := startOn(t, env, "simple", "--mode=busy")
	out, err := env.Host(0).Command(ctx, env.Bin, "move", strconv.Itoa(pid), "b").CombinedOutput()
	if err == nil {
		t.Fatalf("move succeeded with a damaged frame:\n%s", out)
	}
	if !strings.Contains(string(out), "bad page frame") && !strings.Contains(string(out), "checksum") {
		t.Errorf("the failure does not name the damaged frame:\n%s", out)
	}
	t.Logf("move failed as it should:\n%s", out)
	survives(t, env, p, pid)
}
