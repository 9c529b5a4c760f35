package x86guest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/power"
	"github.com/migrated/migrated/e2e/workload"
	"github.com/migrated/migrated/e2e/x86guest/spec"
)

// TestI386 runs issue 8's i386 acceptance where a kernel executes i386
// programs: in the guest, the engine checkpoints and restores the i386
// workloads (e2e/engine), and two namespace hosts move them and refuse them
// toward a host that advertises no 32-bit support (e2e/hosts). The test
// binaries, the agent and the workloads are built here and copied in; the
// inner tests must run, not skip.
func TestI386(t *testing.T) {
	needGuest(t)
	if os.Getenv("MIGRATED_E2E_X86GUEST") == "0" {
		t.Skip("MIGRATED_E2E_X86GUEST=0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	set, err := workload.Load()
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := set.Available("fpthreads-i386"); !ok && !strings.Contains(why, "ENOEXEC") {
		t.Skipf("the i386 workloads cannot be built here: %s", why)
	}
	bin := t.TempDir()
	root := power.ModuleRoot()
	begin := time.Now()
	for _, b := range [][]string{
		{"build", "-o", filepath.Join(bin, "migrated"), "./cmd/migrated"},
		{"test", "-c", "-o", filepath.Join(bin, "engine.test"), "./e2e/engine"},
		{"test", "-c", "-o", filepath.Join(bin, "hosts.test"), "./e2e/hosts"},
	} {
		cmd := exec.CommandContext(ctx, "go", b...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", b, err, out)
		}
	}
	t.Logf("step build test binaries and agent: %v", time.Since(begin).Round(time.Millisecond))

	// The guest sees this machine's root, but its own /tmp: the binaries,
	// the built workloads and their sources (the build cache is keyed by
	// them, and a checkout may itself live under /tmp) are copied in.
	const gbin, gsrc = "/tmp/x86guest-bin", "/tmp/x86guest-workloads"
	run := func(test, pattern string) string {
		return fmt.Sprintf("%s/%s.test -test.v -test.count=1 -test.timeout=15m -test.run '%s'; r=$((r|$?))",
			gbin, test, pattern)
	}
	script := "r=0; " + run("engine", "TestCheckpointRestore/(fpthreads|i386)|TestDumpLeavesSignalActions/i386") + "; " +
		run("hosts", "TestMoveI386") + "; exit $r"
	res, err := Run(ctx, Config{Logf: t.Logf, Command: spec.Command{
		Argv: []string{"/bin/sh", "-c", script},
		Dir:  "/tmp",
		Env: []string{"PATH=" + os.Getenv("PATH"), "MIGRATED_BIN=" + gbin + "/migrated",
			"MIGRATED_WORKLOADS_SRC=" + gsrc, "GOROOT=" + os.Getenv("GOROOT")},
		Copy: []spec.Copy{
			{From: bin, To: filepath.Base(gbin)},
			{From: set.Dir, To: filepath.Base(set.Dir)},
			{From: filepath.Join(root, "e2e", "workloads"), To: filepath.Base(gsrc)},
		},
		Timeout: 20 * time.Minute,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("step guest (%s): boot %v, total %v", res.Kernel, res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	console := string(res.Console)
	if res.Exit != 0 {
		t.Errorf("the tests in the guest exited %d", res.Exit)
	}
	if m := regexp.MustCompile(`--- SKIP: \S+`).FindAllString(console, -1); len(m) > 0 {
		t.Errorf("tests skipped in the guest (they must run there): %v", m)
	}
	for _, want := range []string{
		"TestCheckpointRestore/i386-busy", "TestCheckpointRestore/i386-busy-static",
		"TestCheckpointRestore/i386-pause", "TestCheckpointRestore/i386-threads",
		"TestDumpLeavesSignalActions/i386",
		"TestCheckpointRestore/i386-fpthreads", "TestCheckpointRestore/i386-fpthreads-static",
		"TestCheckpointRestore/fpthreads", "TestCheckpointRestore/i386-posixtimers",
		"TestMoveI386/fpthreads-i386", "TestMoveI386/threads-i386", "TestMoveI386/simple-i386-static",
		"TestMoveI386Refused",
	} {
		if !strings.Contains(console, "--- PASS: "+want+" ") {
			t.Errorf("%s did not pass in the guest", want)
		}
	}
}
