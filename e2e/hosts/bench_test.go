package hosts_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/hosts"
	"github.com/migrated/migrated/e2e/workload"
	"github.com/migrated/migrated/precopy"
)

// vmHWM reads the peak RSS of a process on the machine.
func vmHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkMove moves the mixed workload of FACTS.md (a quarter zero pages,
// half random, a quarter text, 1000 dirty pages/s) between two namespace
// hosts with `migrated move` and reports: the downtime the agent measured
// (freeze to Running), the longest gap in the workload's own 1 ms heartbeat,
// the total time, memory and wire bytes, and both agents' peak RSS. CRIU
// 4.2.1's page-server dump + restore on this machine (FACTS.md): 1.36 s
// downtime and 269 MB for 256 MiB, 3.48 s and 1076 MB for 1 GiB.
// MIGRATED_BENCH_DOWNTIME sets --downtime-limit (default: the agent's 300ms).
func BenchmarkMove(b *testing.B) {
	for _, mib := range []int{256, 1024} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			env, ctx := setupB(b)
			set := workload.Build(b)
			// MIGRATED_BENCH_RENICE=N runs both agents at nice N (they
			// start at their default, 10).
			if v := os.Getenv("MIGRATED_BENCH_RENICE"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil {
					b.Fatalf("MIGRATED_BENCH_RENICE=%q: %v", v, err)
				}
				for _, a := range env.Agents {
					reniceAll(a.Process.RootPID, n)
				}
			}
			var down, gap, total, mem, wire, rssA, rssB, cpuSrc, cpuDst float64
			for i := 0; i < b.N; i++ {
				p := set.Start(b, "mixed", env.WorkloadOpts(ctx, env.Host(i%2), fmt.Sprintf("--size-mib=%d", mib)))
				pid, err := p.WaitReady()
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(2 * time.Second)
				args := []string{"move", strconv.Itoa(pid), env.Host((i + 1) % 2).Name, "--json"}
				srcA, dstA := env.Agents[i%2], env.Agents[(i+1)%2]
				cpu0 := []float64{cpuSeconds(srcA.Process.RootPID), cpuSeconds(dstA.Process.RootPID)}
				logs := []string{srcA.Log, dstA.Log}
				offs := []int64{logSize(srcA.Log), logSize(dstA.Log)}
				t0 := precopy.MonotonicMs()
				if d := os.Getenv("MIGRATED_BENCH_DOWNTIME"); d != "" {
					args = append(args, "--downtime-limit", d)
				}
				out, err := env.Host(i%2).Command(ctx, env.Bin, args...).CombinedOutput()
				if err != nil {
					b.Fatalf("move: %v\n%s", err, out)
				}
				cpuSrc += cpuSeconds(srcA.Process.RootPID) - cpu0[0]
				cpuDst += cpuSeconds(dstA.Process.RootPID) - cpu0[1]
				rep := parseReport(b, out)
				b.Logf("report: %s", out)
				res, err := p.Finish(pid)
				if err != nil || !res.Passed() {
					b.Fatalf("workload after the move: %v %s", err, res.Status)
				}
				b.Logf("heartbeat gaps (end ms:length us): %s", res.Fields["gaps"])
				if os.Getenv(benchTimelineEnv) != "" {
					b.Logf("time line (CLOCK_MONOTONIC since the move command):\n%s",
						timeline(logs, offs, []string{"source", "destination"}, res.Fields["gaps"], t0))
				}
				g, _ := res.Int("max_gap_us")
				down += rep.DowntimeMs
				gap += float64(g) / 1000
				total += rep.TotalMs
				mem += float64(rep.MemoryBytes)
				wire += float64(rep.WireBytes)
			}
			rssA = vmHWM(env.Agents[0].Process.RootPID)
			rssB = vmHWM(env.Agents[1].Process.RootPID)
			n := float64(b.N)
			b.ReportMetric(down/n, "downtime-ms")
			b.ReportMetric(gap/n, "heartbeat-gap-ms")
			b.ReportMetric(total/n, "total-ms")
			b.ReportMetric(wire/mem, "wire/memory")
			b.ReportMetric(mem/n/(1<<20), "memory-MiB")
			b.ReportMetric(max(rssA, rssB), "agent-peak-rss-MiB")
			gib := mem / (1 << 30)
			b.ReportMetric(cpuSrc/gib, "src-cpu-s/GiB")
			b.ReportMetric(cpuDst/gib, "dst-cpu-s/GiB")
		})
	}
}

func setupB(b *testing.B) (*hosts.Env, ctxT) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	ctx, cancel := contextWithTimeout(30 * time.Minute)
	b.Cleanup(cancel)
	o := hosts.Options{Hosts: 2, Bin: migratedBin(b)}
	benchAgentOptions(&o)
	env, err := hosts.Setup(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.Close)
	return env, ctx
}

// reniceAll sets the nice value of every thread of pid (nice is per thread).
func reniceAll(pid, nice int) {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
		}
	}
}
