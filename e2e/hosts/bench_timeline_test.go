package hosts_test

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/agent"
	"github.com/migrated/migrated/e2e/hosts"
	"github.com/migrated/migrated/e2e/workload"
)

// Benchmark instruments, by environment variable:
//
//	MIGRATED_BENCH_TIMELINE=1   agents log at debug level; after each move the
//	                            benchmark prints one time line of both agents'
//	                            phases and the workload's largest heartbeat gaps
//	MIGRATED_BENCH_PROFILE=DIR  each agent writes a CPU profile of each move
//	                            into DIR (see agent.CPUProfileEnv)
//	MIGRATED_BENCH_AGENT_ENV    extra environment for both agents, "K=V,K=V"
//	                            (e.g. GOGC=400 or GOMAXPROCS=2)
const (
	benchTimelineEnv = "MIGRATED_BENCH_TIMELINE"
	benchProfileEnv  = "MIGRATED_BENCH_PROFILE"
	benchAgentEnv    = "MIGRATED_BENCH_AGENT_ENV"
)

// benchAgentOptions sets the agents' flags and environment for the
// instruments asked for.
func benchAgentOptions(o *hosts.Options) {
	if os.Getenv(benchTimelineEnv) != "" {
		o.AgentArgs = func(int) []string { return []string{"--log-level", "debug"} }
	}
	var env []string
	if dir := os.Getenv(benchProfileEnv); dir != "" {
		env = append(env, agent.CPUProfileEnv+"="+dir)
	}
	if extra := os.Getenv(benchAgentEnv); extra != "" {
		env = append(env, strings.Split(extra, ",")...)
	}
	if len(env) > 0 {
		o.AgentEnv = func(int) []string { return env }
	}
}

// cpuSeconds is the user and system CPU time pid has used so far, all
// threads (fields 14 and 15 of /proc/PID/stat, in clock ticks of 1/100 s).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// timelineEvent is one line of the time line.
type timelineEvent struct {
	ms   float64 // CLOCK_MONOTONIC
	what string
}

// timeline merges the agents' debug lines that carry mono_ms (written since
// offset bytes of each log) and the workload's gaps ("end_ms:len_us,...")
// into one list, relative to t0 (CLOCK_MONOTONIC ms).
func timeline(logs []string, offsets []int64, names []string, gaps string, t0 float64) string {
	var ev []timelineEvent
	for i, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		f.Seek(offsets[i], 0)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			j := strings.Index(l, "mono_ms=")
			if j < 0 {
				continue
			}
			v := l[j+len("mono_ms="):]
			if k := strings.IndexByte(v, ' '); k >= 0 {
				v = v[:k]
			}
			ms, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			msg := l
			if k := strings.Index(l, "msg="); k >= 0 {
				msg = l[k:]
			}
			msg = strings.Replace(msg, " mono_ms="+v, "", 1)
			ev = append(ev, timelineEvent{ms, names[i] + ": " + msg})
		}
		f.Close()
	}
	for _, g := range strings.Split(gaps, ",") {
		end, length, ok := strings.Cut(g, ":")
		if !ok {
			continue
		}
		e, _ := strconv.ParseFloat(end, 64)
		us, _ := strconv.ParseFloat(length, 64)
		ev = append(ev, timelineEvent{e - us/1000, fmt.Sprintf("workload: heartbeat gap of %.1f ms starts", us/1000)})
	}
	sort.SliceStable(ev, func(a, b int) bool { return ev[a].ms < ev[b].ms })
	var b strings.Builder
	for _, e := range ev {
		fmt.Fprintf(&b, "%9.1f ms  %s\n", e.ms-t0, e.what)
	}
	return b.String()
}

func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// BenchmarkHeartbeatIdle runs the 1 GiB mixed workload in a namespace host
// for 12 s without moving it (agents up, idle) and reports its longest
// heartbeat gap: the noise floor of the downtime measure on this machine at
// this moment, to read BenchmarkMove's heartbeat-gap-ms against.
func BenchmarkHeartbeatIdle(b *testing.B) {
	env, ctx := setupB(b)
	set := workload.Build(b)
	var gap float64
	for i := 0; i < b.N; i++ {
		p := set.Start(b, "mixed", env.WorkloadOpts(ctx, env.Host(0), "--size-mib=1024"))
		pid, err := p.WaitReady()
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(12 * time.Second)
		res, err := p.Finish(pid)
		if err != nil || !res.Passed() {
			b.Fatalf("workload: %v %s", err, res.Status)
		}
		g, _ := res.Int("max_gap_us")
		gap += float64(g) / 1000
		b.Logf("heartbeat gaps (end ms:length us): %s", res.Fields["gaps"])
	}
	b.ReportMetric(gap/float64(b.N), "heartbeat-gap-ms")
}
