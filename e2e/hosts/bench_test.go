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
// the total time, memory and wire bytes, and both agents' peak RSS. Then,
// where CRIU 4 is at hand (see criuBinary), CRIU's page-server dump +
// restore moves the same workload between the same hosts as many times
// (alternately before and after ours), and the benchmark reports its figures (criu-*) and ours as ratios of its
// (vs-criu-*). FACTS.md measured CRIU 4.2.1 here once: 1.36 s downtime,
// 1.48 s total and 269 MB for 256 MiB; 3.48 s, 3.58 s and 1076 MB for 1 GiB.
// MIGRATED_BENCH_DOWNTIME sets --downtime-limit (default: the agent's 300ms).
func BenchmarkMove(b *testing.B) {
	criu, noCRIU := criuBinary(b)
	var criuDir string
	if criu == "" {
		b.Logf("no CRIU side by side: %s", noCRIU)
	} else {
		criuDir = criuTmpfs(b)
	}
	for _, mib := range []int{256, 1024} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			env, ctx := setupB(b)
			set := workload.Build(b)
			// MIGRATED_BENCH_RENICE=N runs both agents at nice N (they
			// start at their default, 0).
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
			var cDown, cTotal, cPages float64
			ours := func(i int) {
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
			crius := func(i int) {
				r := criuMove(b, env, ctx, set, criu, criuDir, mib, i%2, (i+1)%2)
				cDown += r.downtimeMs
				cTotal += r.totalMs
				cPages += float64(r.pageBytes)
			}
			for i := 0; i < b.N; i++ {
				// Each goes first every other time: the one that runs
				// second finds the machine's memory in another state.
				switch {
				case criu == "":
					ours(i)
				case i%2 == 0:
					ours(i)
					crius(i)
				default:
					crius(i)
					ours(i)
				}
			}
			rssA = vmHWM(env.Agents[0].Process.RootPID)
			rssB = vmHWM(env.Agents[1].Process.RootPID)
			n := float64(b.N)
			if criu != "" {
				b.ReportMetric(cDown/n, "criu-downtime-ms")
				b.ReportMetric(cTotal/n, "criu-total-ms")
				b.ReportMetric(cPages/mem, "criu-wire/memory")
				b.ReportMetric(gap/cDown, "vs-criu-downtime")
				b.ReportMetric(total/cTotal, "vs-criu-total")
				b.ReportMetric(wire/cPages, "vs-criu-wire")
			}
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
