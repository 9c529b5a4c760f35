package hosts_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/agent/move"
	"github.com/migrated/migrated/e2e/hosts"
	"github.com/migrated/migrated/e2e/nshost"
)

// The link goes down right after COMMIT, for longer than the session's idle
// timeout: the source cannot hear RUNNING, keeps the original frozen (in
// doubt), and once the link is back learns the outcome from the
// destination and kills the original. At no moment do two copies run.
func TestLinkDownAfterCommit(t *testing.T) {
	env, ctx := setupHoldingRunning(t, "5s")
	a, b := env.Host(0), env.Host(1)
	p, pid := startOn(t, env, "simple", "--mode=busy")
	// Once the destination has resumed the task (it then holds RUNNING
	// back for 5 s), cut the link.
	mv, out := moveUntilResumed(t, env, ctx, pid)
	if err := env.Cluster.LinkDown(a, b); err != nil {
		t.Fatal(err)
	}
	// A signal for the original while it is kept frozen: it must reach the
	// task on the destination once the doubt is resolved.
	if err := a.Signal(pid, syscall.SIGUSR1); err != nil {
		t.Fatalf("SIGUSR1 to the frozen original: %v", err)
	}
	// While the link is down (longer than the 15 s idle timeout): the
	// source's copy, if any, must be frozen; never two running copies.
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
		if st := hosts.ProcState(a, pid); st != 0 && st != 't' {
			t.Fatalf("two copies run: the original is in state %c on the source while the destination runs it", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := env.Cluster.LinkUp(a, b); err != nil {
		t.Fatal(err)
	}
	err := mv.Wait()
	t.Logf("move (err %v):\n%s", err, out.String())
	// The move was in doubt: its original stayed frozen while the link was
	// down (with the link cut too late, RUNNING would have come within
	// the 5 s delay, and this test would have tested nothing).
	var rep move.Report
	if err == nil {
		if json.Unmarshal([]byte(out.String()), &rep) != nil || rep.FreezeMs < 15000 {
			t.Fatalf("the move was never in doubt (frozen %.0f ms, not past the 15 s idle timeout):\n%s", rep.FreezeMs, out.String())
		}
		if rep.SignalsForwarded != 1 {
			t.Errorf("%d signals forwarded, want the one SIGUSR1 sent while in doubt", rep.SignalsForwarded)
		}
	}
	// The outcome is learned and acted on: the original goes.
	for end := time.Now().Add(60 * time.Second); a.HasPID(pid); {
		if time.Now().After(end) {
			t.Fatalf("the original is still on the source a minute after the link came back (state %c)", hosts.ProcState(a, pid))
		}
		if st := hosts.ProcState(a, pid); st != 0 && st != 't' {
			t.Fatalf("the original runs again (state %c) although the destination runs the task", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !b.HasPID(pid) {
		t.Fatal("the task is on neither host")
	}
	res, err := p.Finish(pid)
	if err != nil || !res.Passed() {
		t.Fatalf("the task on the destination: %v %s", err, res.Status)
	}
	// One SIGUSR1 forwarded, one raised by the check itself.
	if n, _ := res.Int("usr1"); n != 2 {
		t.Errorf("the task counted %d SIGUSR1, want 2 (the one sent while in doubt, and its check's)", n)
	}
}

// setupHoldingRunning starts two hosts whose destination, b, holds Running
// back for delay after it resumed a task: the original stays frozen on a
// that long after the task runs on b.
func setupHoldingRunning(t *testing.T, delay string) (*hosts.Env, context.Context) {
	return setup(t, hosts.Options{Hosts: 2, AgentEnv: func(i int) []string {
		if i == 1 {
			return []string{"MIGRATED_TEST_RUNNING_DELAY=" + delay}
		}
		return nil
	}})
}

// moveUntilResumed starts `migrated move PID b --json` on host a and
// returns once b runs the task, with the move running on and its output.
func moveUntilResumed(t *testing.T, env *hosts.Env, ctx context.Context, pid int) (*nshost.Cmd, *strings.Builder) {
	t.Helper()
	b := env.Host(1)
	mv := env.Host(0).Command(ctx, env.Bin, "move", strconv.Itoa(pid), "b", "--json")
	out := &strings.Builder{}
	mv.Stdout, mv.Stderr = out, out
	if err := mv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !(b.HasPID(pid) && hosts.ProcState(b, pid) != 't' && hosts.ProcState(b, pid) != 0 && tracerOf(b, pid) == 0) {
		if time.Now().After(deadline) {
			t.Fatalf("the task never resumed on the destination:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return mv, out
}

// tracerOf returns the TracerPid of pid on host h (0 when untraced or gone).
func tracerOf(h *nshost.Host, pid int) int {
	b, err := hosts.ProcFile(h, pid, "status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
