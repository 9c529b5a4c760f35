package hosts_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/hosts"
	"github.com/migrated/migrated/e2e/workload"
)

// i386 tasks (issue 8): they skip, with the reason, where the kernel runs no
// i386 programs. This VM has IA-32 emulation off; e2e/x86guest runs these
// tests in an x86_64 guest whose kernel has it.

// skipUnlessI386 skips when the workload set cannot run i386 programs here.
func skipUnlessI386(t *testing.T, name string) {
	t.Helper()
	if ok, why := workload.Build(t).Available(name); !ok {
		t.Skipf("%s: %s", name, why)
	}
}

// An i386 program (threads holding x87/SSE registers, a signal handler
// doing FP) and the i386 thread workload move between two namespace hosts:
// the destination translates their compat state, and each passes its own
// check there with the same PID.
func TestMoveI386(t *testing.T) {
	skipUnlessI386(t, "fpthreads-i386")
	env, ctx := setup(t, hosts.Options{Hosts: 2})
	set := workload.Build(t)
	a := env.Host(0)
	for _, name := range []string{"fpthreads-i386", "threads-i386", "simple-i386-static"} {
		t.Run(name, func(t *testing.T) {
			p := set.Start(t, name, env.WorkloadOpts(ctx, a))
			pid, err := p.WaitReady()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.WaitProgress(3, 60*time.Second); err != nil {
				t.Fatal(err)
			}
			if v, err := checkJSON(t, env, ctx, pid); err != nil || v.Verdict != "translate" {
				t.Fatalf("check: %v %+v; want translate", err, v)
			}
			rep, mout, err := moveJSON(t, env, pid, "b")
			if err != nil {
				t.Fatalf("move: %v\n%s", err, mout)
			}
			t.Logf("report: %s", mout)
			onlyOnB(t, env, rep, pid)
			passesOnDestination(t, p, pid, 60*time.Second)
		})
	}
}

// The destination advertises no 32-bit support: check and move refuse the
// i386 task before the cutover, naming 32-bit support, and the original
// keeps running and passes its check.
func TestMoveI386Refused(t *testing.T) {
	skipUnlessI386(t, "fpthreads-i386")
	override := filepath.Join(t.TempDir(), "caps.json")
	if err := os.WriteFile(override, []byte(`{"compat32": false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	env, ctx := setup(t, hosts.Options{Hosts: 2, AgentArgs: func(i int) []string {
		if i == 1 {
			return []string{"--caps-override", override}
		}
		return nil
	}})
	p, pid := startOn(t, env, "fpthreads-i386")
	if out := refusedBoth(t, env, ctx, pid, "no-compat32"); !strings.Contains(out, "32-bit support") {
		t.Fatalf("move's refusal does not name 32-bit support:\n%s", out)
	}
	survives(t, env, p, pid)
}
