package hosts_test

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/agent/move"
	"github.com/migrated/migrated/e2e/hosts"
	"github.com/migrated/migrated/e2e/nshost"
	"github.com/migrated/migrated/e2e/workload"
)

// A signal sent to the original while it is frozen for the cutover, after
// its state was read, is not lost: the source forwards it and the task
// takes it on the destination. The workload waits in pause() and makes a
// step only for a SIGUSR1; the one SIGUSR1 goes to the frozen original on
// the source (the destination holds Running back for 2 s, after its
// resume, which keeps the original frozen that long).
func TestSignalDuringCutoverForwarded(t *testing.T) {
	env, ctx := setupHoldingRunning(t, "2s")
	a := env.Host(0)
	set := workload.Build(t)
	p := set.Start(t, "simple", env.WorkloadOpts(ctx, a, "--mode=pause"))
	pid, err := p.WaitReady()
	if err != nil {
		t.Fatal(err)
	}
	// One step, to see that a SIGUSR1 makes one.
	if err := a.Signal(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitProgress(1, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	mv, out := moveUntilResumed(t, env, ctx, pid)
	before, _ := p.Progress()
	if st := hosts.ProcState(a, pid); st != 't' {
		t.Fatalf("the original is in state %q, not frozen, while the destination holds Running back", st)
	}
	rep := signalAndFinish(t, a, pid, syscall.SIGUSR1, mv, out)
	if rep.SignalsForwarded != 1 || rep.SignalsLost != 0 {
		t.Errorf("report: %d signals forwarded, %d lost; want 1 and 0", rep.SignalsForwarded, rep.SignalsLost)
	}
	onlyOnB(t, env, rep, pid)
	if err := p.WaitProgress(before+1, 30*time.Second); err != nil {
		t.Fatalf("the SIGUSR1 sent during the cutover never reached the task on the destination: %v", err)
	}
	res, err := p.Finish(pid)
	if err != nil || !res.Passed() {
		t.Fatalf("the task on the destination: %v %s", err, res.Status)
	}
	if n, _ := res.Int("wakeups"); n != 2 {
		t.Errorf("the task woke %d times for a SIGUSR1, want 2 (one before the move, one during the cutover)", n)
	}
}

// The frozen original is SIGKILLed by someone else during the cutover: the
// task runs on at the destination (one copy), and the report says what
// happened to the original.
func TestOriginalKilledDuringCutover(t *testing.T) {
	env, ctx := setupHoldingRunning(t, "2s")
	a := env.Host(0)
	p, pid := startOn(t, env, "simple", "--mode=busy")
	mv, out := moveUntilResumed(t, env, ctx, pid)
	rep := signalAndFinish(t, a, pid, syscall.SIGKILL, mv, out)
	if !strings.Contains(rep.Warning, "died while frozen") {
		t.Errorf("report warning %q does not say the original died while frozen", rep.Warning)
	}
	onlyOnB(t, env, rep, pid)
	passesOnDestination(t, p, pid, 30*time.Second)
}

// signalAndFinish sends sig to the frozen original on host a, lets the move
// end, and returns its report.
func signalAndFinish(t *testing.T, a *nshost.Host, pid int, sig syscall.Signal, mv *nshost.Cmd, out *strings.Builder) *move.Report {
	t.Helper()
	if err := a.Signal(pid, sig); err != nil {
		t.Fatalf("%v to the frozen original: %v", sig, err)
	}
	if err := mv.Wait(); err != nil {
		t.Fatalf("move: %v\n%s", err, out.String())
	}
	t.Logf("report: %s", out.String())
	var rep move.Report
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}
