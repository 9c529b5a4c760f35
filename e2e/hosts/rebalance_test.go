package hosts_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/hosts"
	"github.com/migrated/migrated/e2e/workload"
)

// TestRebalanceMovesOffHotHost: three hosts whose agents rebalance every
// second; three CPU-bound managed tasks (`migrated run`) start on host a.
// At least one must move off a by itself, keep making progress, pass its
// self-check, and no task may come back to a host it left while we watch.
func TestRebalanceMovesOffHotHost(t *testing.T) {
	env, ctx := setup(t, hosts.Options{Hosts: 3, AgentArgs: func(int) []string {
		return []string{"--rebalance", "--rebalance-interval", "1s", "--rebalance-cooldown", "5s", "--refresh", "1s"}
	}})
	set := workload.Build(t)
	a := env.Host(0)
	const tasks = 3
	var procs []*workload.Proc
	var pids []int
	for i := 0; i < tasks; i++ {
		name := fmt.Sprintf("busy%d", i)
		opts := env.WorkloadOpts(ctx, a, "--mode=busy")
		opts.Launch = func(l workload.Launch) (int, error) {
			// The output file is in the work directory, which every host
			// sees: a move reopens it there.
			args := append([]string{"run", "--name", name, "--log", l.Output.Name(), "--json", "--"}, l.Argv...)
			cmd := a.Command(ctx, env.Bin, args...)
			cmd.Env, cmd.Dir = l.Env, l.Dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				return 0, fmt.Errorf("migrated run: %v: %s", err, out)
			}
			var mt struct {
				PID int `json:"pid"`
			}
			if err := json.Unmarshal(out, &mt); err != nil || mt.PID <= 0 {
				return 0, fmt.Errorf("migrated run said %s", out)
			}
			return mt.PID, nil
		}
		p := set.Start(t, "simple", opts)
		pid, err := p.WaitReady()
		if err != nil {
			t.Fatal(err)
		}
		procs, pids = append(procs, p), append(pids, pid)
	}
	// where: "" while a task is nowhere or in its cutover.
	where := func(pid int) string {
		if h, _ := env.Where(pid); h != nil {
			return h.Name
		}
		return ""
	}
	// Watch where every task is, every 200 ms: until one moved and then
	// 20 s more (bounded by 60 s without a move), and on until nothing
	// moved for 3 s, so that the checks below do not race a late move
	// (bounded by 60 s more).
	type hop struct {
		task     int
		from, to string
		at       time.Duration
	}
	var hops []hop
	last := make([]string, tasks)
	for i, pid := range pids {
		last[i] = where(pid)
		if last[i] != a.Name {
			t.Fatalf("task %d (pid %d) starts on %q, not %s", i, pid, last[i], a.Name)
		}
	}
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	var settleBy time.Time
	for quiet := time.Now(); ; {
		now := time.Now()
		if now.After(deadline) {
			if settleBy.IsZero() {
				settleBy = now.Add(60 * time.Second)
			}
			if now.Sub(quiet) >= 3*time.Second || now.After(settleBy) {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
		for i, pid := range pids {
			h := where(pid)
			if h == "" {
				quiet = time.Now() // in a switch-over
				continue
			}
			if h == last[i] {
				continue
			}
			quiet = time.Now()
			hops = append(hops, hop{i, last[i], h, time.Since(start)})
			t.Logf("%.1fs: busy%d (pid %d) moved %s -> %s", time.Since(start).Seconds(), i, pid, last[i], h)
			last[i] = h
			if len(hops) == 1 {
				deadline = time.Now().Add(20 * time.Second)
			}
		}
	}
	// The agents say why.
	for _, d := range env.Agents {
		b, _ := os.ReadFile(d.Log)
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if l := sc.Text(); strings.Contains(l, "role=rebalance") && (!strings.Contains(l, "hot, no move")) {
				t.Logf("%s: %s", d.Host.Name, l)
			}
		}
	}
	if len(hops) == 0 {
		t.Fatalf("no task moved off %s in 60 s", a.Name)
	}
	visited := map[int]map[string]bool{}
	for _, h := range hops {
		if visited[h.task] == nil {
			visited[h.task] = map[string]bool{h.from: true}
		}
		if visited[h.task][h.to] {
			t.Errorf("busy%d came back to %s (ping-pong) at %.1fs", h.task, h.to, h.at.Seconds())
		}
		visited[h.task][h.to] = true
	}
	// Every task is managed where it is now, and only there.
	for i, h := range env.Cluster.Hosts {
		out, err := h.Command(ctx, env.Bin, "ps", "--json").Output()
		if err != nil {
			t.Fatalf("ps on %s: %v", h.Name, err)
		}
		var ps struct {
			Tasks []struct {
				Name      string `json:"name"`
				PID       int    `json:"pid"`
				MovedFrom string `json:"moved_from"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal(out, &ps); err != nil {
			t.Fatalf("ps --json on %s: %v: %s", h.Name, err, out)
		}
		listed := map[int]bool{}
		for _, mt := range ps.Tasks {
			listed[mt.PID] = true
		}
		for j, pid := range pids {
			if want := last[j] == h.Name; listed[pid] != want {
				t.Errorf("host %d (%s): busy%d (pid %d) managed %v, want %v: %s", i, h.Name, j, pid, listed[pid], want, out)
			}
		}
		t.Logf("ps on %s: %s", h.Name, bytes.TrimSpace(out))
	}
	// The dry run reads the same snapshot the agent plans on.
	out, err := a.Command(ctx, env.Bin, "rebalance", "--dry-run", "--json").Output()
	var dry struct {
		Self string `json:"self"`
	}
	if err != nil || json.Unmarshal(out, &dry) != nil || dry.Self != a.Name {
		t.Errorf("rebalance --dry-run on %s: %v: %s", a.Name, err, out)
	}
	t.Logf("rebalance --dry-run on %s: %s", a.Name, bytes.TrimSpace(out))
	// Every task keeps running where it is, and passes its self-check.
	for i, p := range procs {
		before, _ := p.Progress()
		if err := p.WaitProgress(before+2, 30*time.Second); err != nil {
			t.Errorf("busy%d on %s: no progress: %v", i, last[i], err)
			continue
		}
		res, err := p.Finish(pids[i])
		if err != nil {
			t.Errorf("busy%d: %v", i, err)
			continue
		}
		if !res.Passed() {
			t.Errorf("busy%d on %s: self-check: %s", i, last[i], res.Status)
		}
	}
}
