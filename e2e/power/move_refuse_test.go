package power

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkVerdict is `migrated check --json`.
type checkVerdict struct {
	Verdict string `json:"verdict"`
	Reasons []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"reasons"`
	Plan []string `json:"plan"`
}

// TestPowerMoveRefused asks a destination whose capabilities differ from the
// task's (a real difference of the guests: CPU generation, kernel byte order,
// 32-bit support) with `migrated check`: it must refuse with the documented
// reason codes, and the task keeps running where it is. A refused `migrated
// move` must fail before the cutover, naming the same reasons, and leave
// the task running and passing its own check.
func TestPowerMoveRefused(t *testing.T) {
	needGuests(t)
	type refused struct {
		w    moveWorkload
		want []string // reason codes of g0's task toward g1, all required
		// move also runs `migrated move`, which must fail and leave the
		// task running; the task's check then runs in g0.
		move bool
	}
	simple := moveWorkload{name: "simple", src: "simple.c", args: []string{"--mode=pause"}}
	tests := []struct {
		name         string
		arch0, arch1 string
		cpu0, cpu1   string
		tasks        []refused
		// reverse, when set, checks g1's simple task toward g0: the only
		// reason codes the refusal may give (none: an accept).
		reverse []string
	}{
		// A task started on POWER10 (ISA 3.1 in AT_HWCAP2) toward a POWER9.
		// The other way the CPU is no obstacle, but the same kernel build
		// has a different vDSO on POWER9 and POWER10 (the kernel patches
		// its CPU-feature sections at boot), so vdso is the only reason
		// allowed.
		{name: "power10-to-power9", arch0: ArchPPC64LE, arch1: ArchPPC64LE, cpu0: "POWER10", cpu1: "POWER9",
			tasks: []refused{{w: simple, want: []string{"hwcap2"}}}, reverse: []string{"vdso"}},
		// A big-endian task toward a little-endian kernel; a 32-bit one
		// toward the ppc64el kernel, which has no COMPAT either.
		{name: "be-to-le", arch0: ArchPPC64, arch1: ArchPPC64LE, cpu0: "POWER9", cpu1: "POWER9",
			tasks: []refused{
				{w: simple, want: []string{"endianness"}},
				{w: vecThreads32, want: []string{"no-compat32", "endianness"}, move: true},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			needArches(t, tc.arch0, tc.arch1)
			ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
			defer cancel()
			work := keptWorkDir(t)
			var wl []moveWorkload
			for _, r := range tc.tasks {
				wl = append(wl, r.w)
			}
			cfg := PairConfig{Arch: tc.arch0, WorkDir: work, Logf: t.Logf}
			cfg.Guests[0].CPU, cfg.Guests[1].CPU = tc.cpu0, tc.cpu1
			cfg.Guests[1].Arch = tc.arch1
			cfg.Guests[0].Files = buildMoveFiles(ctx, t, tc.arch0, work, wl)
			if tc.arch1 == tc.arch0 {
				cfg.Files, cfg.Guests[0].Files = cfg.Guests[0].Files, nil
			} else {
				cfg.Guests[1].Files = buildMoveFiles(ctx, t, tc.arch1, work, []moveWorkload{simple})
			}
			begin := time.Now()
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
			t.Logf("step agents up: %v", time.Since(begin).Round(time.Millisecond))
			defer func() {
				if t.Failed() {
					for _, g := range pair.Guests {
						b, err := g.ReadFile(context.Background(), "/tmp/agent.log")
						t.Logf("%s /tmp/agent.log (%v):\n%s", g.Name, err, tail(b, 6000))
					}
				}
			}()

			g0, g1 := pair.Guests[0], pair.Guests[1]
			for _, g := range pair.Guests {
				logCrossMemoryAttach(ctx, t, g)
			}
			for i, r := range tc.tasks {
				t.Run(r.w.name, func(t *testing.T) {
					pid, dir := startWorkload(ctx, t, g0, r.w, 5000+1000*i)
					time.Sleep(r.w.run)
					v := check(ctx, t, g0, pid, g1.Name)
					var codes []string
					for _, re := range v.Reasons {
						codes = append(codes, re.Code)
						t.Logf("%s/%s -> %s/%s: %s: %s", g0.Arch, g0.CPU, g1.Arch, g1.CPU, re.Code, re.Message)
					}
					if v.Verdict != "reject" || !containsAll(codes, r.want) {
						t.Errorf("check of %s (%s) toward %s/%s: verdict %q, reasons %v; want reject with %v",
							r.w.name, r.w.binArch(g0.Arch), g1.Arch, g1.CPU, v.Verdict, codes, r.want)
					}
					if _, err := g0.ReadFile(ctx, "/proc/"+strconv.Itoa(pid)+"/status"); err != nil {
						t.Fatalf("the task is gone from g0 after a refused check: %v", err)
					}
					if !r.move {
						return
					}
					begin := time.Now()
					out, err := g0.Run(ctx, "/bin/migrated", "move", strconv.Itoa(pid), g1.Name)
					t.Logf("step refused move of %s: %v; migrated move said (%v):\n%s", r.w.name,
						time.Since(begin).Round(time.Millisecond), err, bytes.TrimSpace(out))
					var ee *ExitError
					if !errors.As(err, &ee) {
						t.Fatalf("migrated move of a task %s cannot run: %v, want a non-zero exit", g1.Name, err)
					}
					for _, code := range r.want {
						if !bytes.Contains(out, []byte(code)) {
							t.Errorf("migrated move's refusal does not name reason %q", code)
						}
					}
					if _, err := g1.ReadFile(ctx, "/proc/"+strconv.Itoa(pid)+"/status"); err == nil {
						t.Errorf("pid %d exists in %s after a refused move", pid, g1.Name)
					}
					time.Sleep(r.w.run) // it keeps running where it is
					finishWorkload(ctx, t, g0, pid, dir, r.w, 0)
				})
			}
			if tc.reverse != nil {
				pid1 := startIdle(ctx, t, g1, 7000)
				v := check(ctx, t, g1, pid1, g0.Name)
				for _, r := range v.Reasons {
					t.Logf("reverse, %s -> %s: %s: %s", g1.CPU, g0.CPU, r.Code, r.Message)
					if !slices.Contains(tc.reverse, r.Code) {
						t.Errorf("reverse check: refused for %s (%s); only %v expected", r.Code, r.Message, tc.reverse)
					}
				}
				t.Logf("reverse verdict: %s", v.Verdict)
			}
		})
	}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// startIdle starts the simple workload in pause mode in g and waits until it is ready.
// Its PID is above lastPID, so that it is free in the other guest.
func startIdle(ctx context.Context, t *testing.T, g *Guest, lastPID int) int {
	t.Helper()
	if _, err := g.Run(ctx, "/bin/movefs", "write", "/proc/sys/kernel/ns_last_pid", strconv.Itoa(lastPID)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Run(ctx, "/bin/movefs", "mkdir", "/tmp/idle"); err != nil {
		t.Fatal(err)
	}
	pid, err := g.Start(ctx, "/tmp/idle/output", "/bin/simple", "--dir=/tmp/idle", "--mode=pause")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitFile(ctx, g, "/tmp/idle/ready", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	return pid
}

// check runs `migrated check pid host --json` in g; a refusal exits 1 with
// the verdict on stdout.
func check(ctx context.Context, t *testing.T, g *Guest, pid int, host string) checkVerdict {
	t.Helper()
	out, err := g.Run(ctx, "/bin/migrated", "check", strconv.Itoa(pid), host, "--json")
	var ee *ExitError
	if err != nil && !(errors.As(err, &ee) && ee.Exit == 1) {
		t.Fatalf("check: %v", err)
	}
	var v checkVerdict
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(first), &v); err != nil {
		t.Fatalf("check output: %v\n%s", err, out)
	}
	return v
}
